"""The control ↔ worker protocol: exact bytes, exact round trips, named errors."""

from __future__ import annotations

import pytest

from assistline.sip import protocol
from assistline.sip.protocol import ProtocolError
from assistline.sip.protocol_wire import Decoder, encode, parse

COMMANDS: list[protocol.Message] = [
    protocol.Answer(1, "w1-1"),
    protocol.Reject(2, "w1-1", 486, "Busy Here"),
    protocol.PlaceCall(3, "sip:+15551234567@trunk", "sip:ar@assistline", (("X-A", "1"),)),
    protocol.Play(4, "w1-1", file="/prompts/hello.wav"),
    protocol.Play(5, "w1-1", tone="dial"),
    protocol.CollectDigits(6, "w1-1", 1, 16, "#", 5000, 3000),
    protocol.Bridge(7, "w1-1", "w1-2"),
    protocol.Record(8, "w1-1", "/rec/1.wav"),
    protocol.PauseRecording(9, "w1-1"),
    protocol.ResumeRecording(10, "w1-1"),
    protocol.Hangup(11, "w1-1", 603),
    protocol.SendDtmf(12, "w1-1", "123#"),
    protocol.Stop(13),
    protocol.WebRtcOffer(14, "c-1", "v=0\r\n", (("stun:127.0.0.1:3478", "", ""),)),
    protocol.WebRtcOffer(15, "c-1", "v=0\r\n"),
    protocol.WebRtcCandidate(16, "w1-3", "candidate:1 1 udp 1 127.0.0.1 9 typ host", "0", 0),
    protocol.WebRtcCandidate(17, "w1-3", ""),
]
EVENTS: list[protocol.Message] = [
    protocol.Hello(1, "w1", 1234, 5080, 4),
    protocol.Result(1, ""),
    protocol.Result(2, "w1-3", "v=0\r\n"),
    protocol.Error(2, 404, "no leg w1-9"),
    protocol.IncomingCall("w1-1", "<sip:a@b>", "<sip:echo@c>", (("X-Assistline-Contact", "c"),)),
    protocol.Ringing("w1-2"),
    protocol.Answered("w1-1"),
    protocol.Digit("w1-1", "7", "rfc4733"),
    protocol.Digit("w1-1", "#", "info"),
    protocol.Digit("w1-1", "0", "inband"),
    protocol.Hold("w1-1"),
    protocol.Unhold("w1-1"),
    protocol.CallEnded("w1-1", 200, "Normal call clearing"),
    protocol.DigitsCollected("w1-1", "4242", "terminator", True),
    protocol.DigitsCollected("w1-1", "", "no_input", False),
    protocol.MediaStats(
        "w1-1",
        packets=1500,
        lost=2,
        jitter_ms=4,
        jbuf_lost=1,
        jbuf_discarded=0,
        jbuf_delay_ms=30,
    ),
    protocol.Health(2, 4),
]


@pytest.mark.parametrize(
    ("message", "direction"),
    [(m, "to_worker") for m in COMMANDS] + [(m, "to_control") for m in EVENTS],
    ids=lambda m: type(m).__name__ if not isinstance(m, str) else m,
)
def test_every_message_round_trips_exactly(
    message: protocol.Message, direction: protocol.Direction
) -> None:
    line = encode(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert parse(line[:-1], direction) == message


def test_hangup_is_a_command_one_way_and_an_event_the_other() -> None:
    assert parse(b'{"type":"hangup","id":1,"leg":"x","cause":486}', "to_worker") == (
        protocol.Hangup(1, "x", 486)
    )
    assert parse(
        b'{"type":"hangup","leg":"x","status":0,"reason":"worker died"}', "to_control"
    ) == (protocol.CallEnded("x", 0, "worker died"))
    with pytest.raises(ProtocolError, match="unknown message type 'answer' to control"):
        parse(b'{"type":"answer","id":1,"leg":"x"}', "to_control")


def test_collected_digits_are_masked_in_repr_and_typed_on_the_wire() -> None:
    event = protocol.DigitsCollected("w1-1", "4111111111111111", "max_digits", True)
    assert "4111" not in repr(event) and "'****************'" in repr(event)
    line = b'{"type":"digits","leg":"x","digits":"12","outcome":"timeout","valid":1}'
    with pytest.raises(ProtocolError, match="valid must be true or false"):
        parse(line, "to_control")
    line = b'{"type":"digits","leg":"x","digits":"12","outcome":"late","valid":true}'
    with pytest.raises(ProtocolError, match="outcome must be one of max_digits"):
        parse(line, "to_control")


def test_encoding_is_exact() -> None:
    assert encode(protocol.Reject(2, "w1-1", 486, "Busy Here")) == (
        b'{"type":"reject","id":2,"leg":"w1-1","status":486,"reason":"Busy Here"}\n'
    )
    assert encode(protocol.IncomingCall("l", "f", "t", (("X-A", "é"),))) == (
        b'{"type":"incoming_call","leg":"l","from_uri":"f","to_uri":"t",'
        b'"headers":[["X-A","\xc3\xa9"]]}\n'
    )


def test_decoder_reassembles_lines_split_anywhere() -> None:
    data = b"".join(encode(m) for m in EVENTS)
    decoder = Decoder("to_control")
    decoded: list[protocol.Message] = []
    for index in range(0, len(data), 7):
        decoded.extend(decoder.feed(data[index : index + 7]))
    assert decoded == EVENTS
    assert decoder.pending == 0


def test_defaults_may_be_left_out() -> None:
    assert parse(b'{"type":"result","id":5}', "to_control") == protocol.Result(5, "")
    assert parse(b'{"type":"hangup","id":1,"leg":"x"}', "to_worker") == protocol.Hangup(1, "x", 603)


def test_digit_repr_masks_the_digit() -> None:
    digit = protocol.Digit("w1-1", "9", "rfc4733")
    assert repr(digit) == "Digit(leg='w1-1', digit='*', method='rfc4733')"
    assert "1234" not in repr(protocol.SendDtmf(1, "w1-1", "1234"))
    assert "9" not in str(digit)


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"not json", "line is not JSON"),
        (b"\xff\xfe", "line is not JSON"),
        (b"[1, 2]", "line is not a JSON object"),
        (b'{"id": 1}', "message has no type"),
        (b'{"type": 7}', "message has no type"),
        (b'{"type": "dance"}', "unknown message type 'dance' to worker"),
        (
            b'{"type": "health", "calls": 0, "capacity": 4}',
            "unknown message type 'health' to worker",
        ),
        (b'{"type": "answer", "id": 1}', "answer lacks field 'leg'"),
        (
            b'{"type": "answer", "id": 1, "leg": "x", "extra": 1}',
            "answer has unknown field 'extra'",
        ),
        (b'{"type": "answer", "id": "1", "leg": "x"}', "answer.id must be an integer"),
        (b'{"type": "answer", "id": true, "leg": "x"}', "answer.id must be an integer"),
        (b'{"type": "answer", "id": 1, "leg": 5}', "answer.leg must be a string"),
        (
            b'{"type": "place_call", "id": 1, "destination": "d", "caller_id": "c", '
            b'"headers": [["X-A"]]}',
            "place_call.headers must be a list of [name, value] strings",
        ),
        (b'{"type": "play", "id": 1, "leg": "x"}', "play needs exactly one of file and tone"),
        (
            b'{"type": "play", "id": 1, "leg": "x", "file": "a", "tone": "b"}',
            "play needs exactly one of file and tone",
        ),
        (b'{"type": "play", "id": 1, "leg": "x", "file": 3}', "play.file has the wrong type (int)"),
        (
            b'{"type": "webrtc_offer", "id": 1, "contact": "c", "sdp": "v=0", '
            b'"ice_servers": [["stun:x", ""]]}',
            "webrtc_offer.ice_servers must be a list of [url, username, credential] strings",
        ),
        (
            b'{"type": "webrtc_candidate", "id": 1, "leg": "x", "candidate": "", '
            b'"sdp_mline_index": "0"}',
            "webrtc_candidate.sdp_mline_index has the wrong type (str)",
        ),
    ],
)
def test_bad_lines_name_what_is_wrong(line: bytes, error: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        parse(line, "to_worker")
    assert str(raised.value) == error


def test_bad_digit_method() -> None:
    line = b'{"type": "digit", "leg": "x", "digit": "1", "method": "smoke"}'
    with pytest.raises(ProtocolError) as raised:
        parse(line, "to_control")
    assert str(raised.value) == "digit.method must be one of rfc4733, info, inband"


def test_bad_line_in_a_stream_raises_and_the_next_line_still_decodes() -> None:
    decoder = Decoder("to_control")
    with pytest.raises(ProtocolError, match="unknown message type"):
        list(decoder.feed(b'{"type":"x"}\n'))
    assert list(decoder.feed(encode(protocol.Health(0, 4)))) == [protocol.Health(0, 4)]


def test_overlong_line_is_refused() -> None:
    decoder = Decoder("to_worker")
    with pytest.raises(ProtocolError, match="line longer than 65536 bytes"):
        list(decoder.feed(b"x" * protocol.MAX_LINE))
    assert decoder.pending == 0
    with pytest.raises(ProtocolError, match="line longer than 65536 bytes"):
        list(decoder.feed(b"y" * protocol.MAX_LINE + b"\n" + encode(protocol.Stop(1))))
    assert list(decoder.feed(b"")) == [protocol.Stop(1)]


def test_encode_refuses_what_is_not_a_message() -> None:
    with pytest.raises(TypeError, match="str is not a protocol message"):
        encode("hello")  # type: ignore[arg-type]


def test_stream_totals_difference_keeps_the_largest_jitter() -> None:
    from assistline.sip.leg import StreamTotals

    earlier = StreamTotals(
        500, lost=1, jitter_ms=9, jbuf_lost=2, jbuf_discarded=3, jbuf_delay_ms=40
    )
    now = StreamTotals(750, lost=1, jitter_ms=12, jbuf_lost=5, jbuf_discarded=3, jbuf_delay_ms=30)
    assert now.minus(earlier) == StreamTotals(250, 0, 12, 3, 0, 30)
    assert now.minus(StreamTotals()) == now
