"""The page ↔ server signalling protocol: exact frames, named errors, a schema that never drifts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from assistline.signalling import messages
from assistline.signalling.messages import (
    MAX_FRAME,
    MessageError,
    encode,
    parse_client,
    parse_server,
    schema,
    schema_json,
)

SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
SDP_JSON = r"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
CANDIDATE = "candidate:842163049 1 udp 1677729535 192.0.2.7 46154 typ srflx raddr 0.0.0.0 rport 0"

#: (frame exactly as encoded, message) from the page.
CLIENT: list[tuple[str, messages.ClientMessage]] = [
    ('{"type":"offer","sdp":"%s"}'.replace("%s", SDP_JSON), messages.Offer(SDP)),
    ('{"type":"answer","sdp":"%s"}'.replace("%s", SDP_JSON), messages.Answer(SDP)),
    (
        '{"type":"candidate","candidate":"%s","sdpMid":"0","sdpMLineIndex":0}'.replace(
            "%s", CANDIDATE
        ),
        messages.Candidate(CANDIDATE, "0", 0),
    ),
    (
        (
            '{"type":"candidate","candidate":"%s","sdpMid":null,"sdpMLineIndex":1,'
            '"usernameFragment":"Kf9h"}'
        ).replace("%s", CANDIDATE),
        messages.Candidate(CANDIDATE, None, 1, "Kf9h"),
    ),
    (
        '{"type":"candidate","candidate":"","sdpMid":null,"sdpMLineIndex":null}',
        messages.Candidate("", None, None),
    ),
    ('{"type":"digit","digit":"#"}', messages.Digit("#")),
    ('{"type":"digit","digit":"D"}', messages.Digit("D")),
    ('{"type":"chat","text":"Can I pay on Friday? 👍"}', messages.Chat("Can I pay on Friday? 👍")),
    ('{"type":"escalate_video"}', messages.EscalateVideo()),
    ('{"type":"hangup"}', messages.Hangup()),
    ('{"type":"ping"}', messages.Ping()),
]
#: (frame exactly as encoded, message, or None for "parse it") from the server.
SERVER_FRAMES: list[tuple[str, messages.ServerMessage | None]] = [
    (
        '{"type":"hello","contact":"c-1","media":"audio","ice_servers":[{"urls":'
        '["stun:stun.example.net:3478"]},{"urls":["turn:turn.example.net:3478?transport=udp"],'
        '"username":"1700003600:c-1","credential":"ACX/evCoIh0TNKP1BeTtkYr+FFE="}],"version":1}',
        messages.Hello(
            "c-1",
            "audio",
            (
                {"urls": ["stun:stun.example.net:3478"]},
                {
                    "urls": ["turn:turn.example.net:3478?transport=udp"],
                    "username": "1700003600:c-1",
                    "credential": "ACX/evCoIh0TNKP1BeTtkYr+FFE=",
                },
            ),
        ),
    ),
    ('{"type":"hello","contact":"c-2","media":"video","ice_servers":[],"version":1}', None),
    ('{"type":"answer","sdp":"%s"}'.replace("%s", SDP_JSON), messages.Answer(SDP)),
    ('{"type":"offer","sdp":"%s"}'.replace("%s", SDP_JSON), messages.Offer(SDP)),
    (
        '{"type":"candidate","candidate":"","sdpMid":"0","sdpMLineIndex":null}',
        messages.Candidate("", "0", None),
    ),
    ('{"type":"state","state":"queued","position":3}', messages.State("queued", position=3)),
    ('{"type":"state","state":"ringing","agent":"Ana"}', messages.State("ringing", agent="Ana")),
    (
        '{"type":"state","state":"connected","agent":"Ana"}',
        messages.State("connected", agent="Ana"),
    ),
    ('{"type":"state","state":"on_hold"}', messages.State("on_hold")),
    (
        '{"type":"state","state":"ended","reason":"agent_hangup"}',
        messages.State("ended", reason="agent_hangup"),
    ),
    ('{"type":"chat","text":"Hello, I am Ana.","from":"agent"}', None),
    ('{"type":"chat","text":"Friday?","from":"customer"}', None),
    ('{"type":"video_unavailable","reason":"the agent has no camera"}', None),
    ('{"type":"error","code":"bad_value","message":"chat.text must be 1..2000 characters"}', None),
    ('{"type":"pong"}', messages.Pong()),
]
SERVER = [(frame, message or parse_server(frame)) for frame, message in SERVER_FRAMES]


@pytest.mark.parametrize(("frame", "message"), CLIENT, ids=lambda v: str(v)[:40])
def test_client_frames_parse_and_encode_exactly(
    frame: str, message: messages.ClientMessage
) -> None:
    assert parse_client(frame) == message
    assert encode(message) == frame


@pytest.mark.parametrize(("frame", "message"), SERVER, ids=lambda v: str(v)[:40])
def test_server_frames_parse_and_encode_exactly(
    frame: str, message: messages.ServerMessage
) -> None:
    assert parse_server(frame) == message
    assert encode(message) == frame


def test_named_server_messages() -> None:
    assert parse_server('{"type":"chat","text":"Hi","from":"agent"}') == messages.ChatLine(
        "Hi", "agent"
    )
    assert parse_server('{"type":"video_unavailable","reason":"r"}') == (
        messages.VideoUnavailable("r")
    )
    assert messages.Hello("c", "video", ()).version == messages.VERSION == 1


def test_whitespace_and_key_order_do_not_matter() -> None:
    frame = '{ "sdpMLineIndex": 0,\n "sdpMid": "0", "candidate": "", "type": "candidate" }'
    assert parse_client(frame) == messages.Candidate("", "0", 0)


@pytest.mark.parametrize(
    ("frame", "code", "error"),
    [
        ("ofer", "not_json", "not JSON: Expecting value: line 1 column 1 (char 0)"),
        (
            '{"type":"ping"',
            "not_json",
            "not JSON: Expecting ',' delimiter: line 1 column 15 (char 14)",
        ),
        ("", "not_json", "not JSON: Expecting value: line 1 column 1 (char 0)"),
        ('["offer"]', "not_json", "not a JSON object"),
        ('"offer"', "not_json", "not a JSON object"),
        ('{"type":"ping","n":NaN}', "not_json", "not JSON: NaN is not a JSON number"),
        (
            '{"type":"ping","n":%s}' % ("9" * 21),
            "not_json",
            "not JSON: an integer is longer than 20 digits",
        ),
        ("[" * 60_000, "not_json", "not JSON: nested too deeply"),
        ('{"sdp":"v=0"}', "missing_key", "type is missing"),
        ('{"type":null}', "missing_key", "type is missing"),
        ('{"type":7}', "bad_value", "type must be a string"),
        ('{"type":"ofer","sdp":"v=0"}', "unknown_type", "unknown type 'ofer'"),
        ('{"type":"%s"}' % ("x" * 100), "unknown_type", "unknown type '%s'" % ("x" * 40)),
        ('{"type":"OFFER","sdp":"v=0"}', "unknown_type", "unknown type 'OFFER'"),
        ('{"type":"pong"}', "unknown_type", "type 'pong' is only sent by the server"),
        (
            '{"type":"state","state":"ended"}',
            "unknown_type",
            "type 'state' is only sent by the server",
        ),
        ('{"type":"offer"}', "missing_key", "offer.sdp is missing"),
        ('{"type":"offer","spd":"v=0"}', "unknown_key", "offer has unknown key 'spd'"),
        ('{"type":"ping","id":1}', "unknown_key", "ping has unknown key 'id'"),
        ('{"type":"offer","sdp":""}', "bad_value", "offer.sdp must be 1..16384 characters"),
        ('{"type":"offer","sdp":7}', "bad_value", "offer.sdp must be a string"),
        (
            '{"type":"answer","sdp":"%s"}' % ("a" * 16_385),
            "bad_value",
            "answer.sdp must be 1..16384 characters",
        ),
        ('{"type":"chat","text":""}', "bad_value", "chat.text must be 1..2000 characters"),
        (
            '{"type":"chat","text":"%s"}' % ("é" * 2001),
            "bad_value",
            "chat.text must be 1..2000 characters",
        ),
        ('{"type":"chat","text":["hi"]}', "bad_value", "chat.text must be a string"),
        (
            '{"type":"chat","text":"\\ud800"}',
            "bad_value",
            "chat.text is not valid Unicode (a lone surrogate)",
        ),
        (
            '{"type":"digit","digit":"12"}',
            "bad_value",
            "digit.digit must be one key: 0-9, *, #, A-D",
        ),
        (
            '{"type":"digit","digit":"a"}',
            "bad_value",
            "digit.digit must be one key: 0-9, *, #, A-D",
        ),
        ('{"type":"digit","digit":1}', "bad_value", "digit.digit must be one key: 0-9, *, #, A-D"),
        ('{"type":"digit"}', "missing_key", "digit.digit is missing"),
        (
            '{"type":"candidate","candidate":"%s","sdpMid":"0"}'.replace("%s", CANDIDATE),
            "missing_key",
            "candidate.sdpMLineIndex is missing",
        ),
        (
            '{"type":"candidate","candidate":"%s","sdpMid":null,"sdpMLineIndex":null}'.replace(
                "%s", CANDIDATE
            ),
            "bad_value",
            "candidate needs sdpMid or sdpMLineIndex",
        ),
        (
            '{"type":"candidate","candidate":"a=candidate:1","sdpMid":"0","sdpMLineIndex":0}',
            "bad_value",
            "candidate.candidate must be empty or one line starting with 'candidate:'",
        ),
        (
            '{"type":"candidate","candidate":"candidate:1\\r\\na=x","sdpMid":"0",'
            '"sdpMLineIndex":0}',
            "bad_value",
            "candidate.candidate must be empty or one line starting with 'candidate:'",
        ),
        (
            '{"type":"candidate","candidate":"candidate:%s","sdpMid":"0","sdpMLineIndex":0}'
            % ("1" * 1015),
            "bad_value",
            "candidate.candidate must be 0..1024 characters",
        ),
        (
            '{"type":"candidate","candidate":"","sdpMid":"0","sdpMLineIndex":-1}',
            "bad_value",
            "candidate.sdpMLineIndex must be an integer 0..65535 or null",
        ),
        (
            '{"type":"candidate","candidate":"","sdpMid":"0","sdpMLineIndex":true}',
            "bad_value",
            "candidate.sdpMLineIndex must be an integer 0..65535 or null",
        ),
        (
            '{"type":"candidate","candidate":"","sdpMid":"a b","sdpMLineIndex":0}',
            "bad_value",
            "candidate.sdpMid must be printable ASCII or null",
        ),
        (
            '{"type":"candidate","candidate":"","sdpMid":0,"sdpMLineIndex":0}',
            "bad_value",
            "candidate.sdpMid must be a string or null",
        ),
    ],
)
def test_malformed_frames_get_an_error_naming_the_problem(
    frame: str, code: str, error: str
) -> None:
    with pytest.raises(MessageError) as raised:
        parse_client(frame)
    assert (raised.value.code, str(raised.value), raised.value.fatal) == (code, error, False)
    assert messages.Error.of(raised.value) == messages.Error(raised.value.code, error)


def test_after_an_error_the_next_frame_parses() -> None:
    with pytest.raises(MessageError):
        parse_client('{"type":"chat","text":""}')
    assert parse_client('{"type":"ping"}') == messages.Ping()


def test_frames_over_64_kib_are_fatal() -> None:
    assert parse_client('{"type":"ping"}' + " " * (MAX_FRAME - 15)) == messages.Ping()
    for frame in ('{"type":"ping"}' + " " * (MAX_FRAME - 14), "é" * (MAX_FRAME // 2 + 1)):
        with pytest.raises(MessageError) as raised:
            parse_client(frame)
        size = len(frame.encode())
        assert (raised.value.code, raised.value.fatal) == ("too_large", True)
        assert str(raised.value) == f"frame is {size} bytes, more than 65536"


NOT_AN_ICE_SERVER: Any = {"urls": ["stun:x"], "password": "p"}


def test_messages_check_themselves_when_the_server_builds_them() -> None:
    cases: list[tuple[Any, str]] = [
        (lambda: messages.State("queued"), "state.position is missing"),
        (
            lambda: messages.State("queued", position=0),
            "state.position must be an integer 1..100000",
        ),
        (lambda: messages.State("ringing"), "state.agent is missing"),
        (lambda: messages.State("ended"), "state.reason is missing"),
        (
            lambda: messages.State("ended", reason="hangup", agent="Ana"),
            "state.agent does not go with state 'ended'",
        ),
        (
            lambda: messages.State("on_hold", position=1),
            "state.position does not go with state 'on_hold'",
        ),
        (lambda: messages.ChatLine("x" * 2001, "agent"), "chat.text must be 1..2000 characters"),
        (
            lambda: messages.Hello("c", "audio", ({"urls": []},)),
            "hello.ice_servers[0].urls must be a list of URLs",
        ),
        (
            lambda: messages.Hello("c", "audio", ({"urls": ["http://x"]},)),
            "hello.ice_servers[0].urls must be a stun:, stuns:, turn: or turns: URL",
        ),
        (
            lambda: messages.Hello("c", "audio", (NOT_AN_ICE_SERVER,)),
            "hello.ice_servers[0] must be an object with urls",
        ),
        (
            lambda: messages.Hello("c", "audio", (), version=2),
            "hello.version must be an integer 1..1",
        ),
        (
            lambda: messages.Error("oops", "m"),  # type: ignore[arg-type]  # the point of the test
            "error.code must be one of not_json, missing_key, unknown_key, unknown_type, "
            "bad_value, too_large, sdp_refused, not_now",
        ),
    ]
    for build, error in cases:
        with pytest.raises(MessageError) as raised:
            build()
        assert str(raised.value) == error


def test_repr_masks_digits_card_numbers_and_turn_credentials() -> None:
    assert repr(messages.Digit("7")) == "Digit(digit='*')"
    assert "7" not in str(messages.Digit("7"))
    chat = messages.Chat("my card is 4111 1111 1111 1111 ok")
    assert repr(chat) == "Chat(text='my card is [card …1111] ok')"
    line = messages.ChatLine("4111111111111111", "customer")
    assert repr(line) == "ChatLine(text='[card …1111]', sender='customer')"
    hello = messages.Hello(
        "c", "audio", ({"urls": ["turn:t"], "username": "1:c", "credential": "s3"},)
    )
    assert repr(hello) == (
        "Hello(contact='c', media='audio', ice_servers=[{'urls': ['turn:t'], "
        "'username': '1:c', 'credential': '<masked>'}])"
    )


def test_encode_refuses_what_is_not_a_message() -> None:
    with pytest.raises(TypeError, match="str is not a signalling message"):
        encode("ping")  # type: ignore[arg-type]


def test_sizes_agree_with_the_sdp_policy() -> None:
    from assistline.signalling import sdp_policy

    assert messages.MAX_SDP == sdp_policy.MAX_SDP == 16_384


# ------------------------------------------------------------------- schema

SCHEMA_FILE = Path(__file__).parents[3] / "web_client" / "signalling.schema.json"


def test_the_shipped_schema_file_is_generated_from_the_messages() -> None:
    assert SCHEMA_FILE.read_text() == schema_json(), (
        "regenerate: .venv/bin/python -c 'from assistline.signalling.messages import "
        'schema_json; open("web_client/signalling.schema.json", "w").write(schema_json())\''
    )
    assert schema_json() == json.dumps(schema(), indent=2, sort_keys=True) + "\n"


def _validate(value: Any, node: Any, root: dict[str, Any]) -> bool:
    """A structural JSON Schema check: the keywords the generated schema uses, no more."""
    if isinstance(node, bool):
        return node
    if "$ref" in node:
        return _validate(value, root["$defs"][node["$ref"].removeprefix("#/$defs/")], root)
    kinds: dict[str, type[Any]] = {
        "object": dict,
        "array": list,
        "string": str,
        "null": type(None),
        "integer": int,
    }
    if "type" in node and not (
        isinstance(value, kinds[node["type"]]) and not isinstance(value, bool)
    ):
        return False
    if "const" in node and value != node["const"]:
        return False
    if "enum" in node and value not in node["enum"]:
        return False
    if isinstance(value, str):
        if not node.get("minLength", 0) <= len(value) <= node.get("maxLength", len(value)):
            return False
        if "pattern" in node and not re.search(node["pattern"], value):
            return False
    if isinstance(value, int) and not isinstance(value, bool):
        if not node.get("minimum", value) <= value <= node.get("maximum", value):
            return False
    if isinstance(value, list):
        if len(value) < node.get("minItems", 0):
            return False
        if "items" in node and not all(_validate(v, node["items"], root) for v in value):
            return False
    if isinstance(value, dict):
        if any(key not in value for key in node.get("required", [])):
            return False
        properties = node.get("properties", {})
        for key, item in value.items():
            if key in properties:
                if not _validate(item, properties[key], root):
                    return False
            elif node.get("additionalProperties", True) is False:
                return False
    if "anyOf" in node and not any(_validate(value, n, root) for n in node["anyOf"]):
        return False
    if "oneOf" in node and sum(_validate(value, n, root) for n in node["oneOf"]) != 1:
        return False
    return True


def _valid(frame: str, direction: str | None = None) -> bool:
    root = schema()
    node = {"$ref": f"#/$defs/{direction}"} if direction else root
    return _validate(json.loads(frame), node, root)


def test_every_example_frame_validates_against_the_schema() -> None:
    for frame, _ in CLIENT:
        assert _valid(frame) and _valid(frame, "ClientMessage"), frame
    for frame, _ in SERVER:
        assert _valid(frame) and _valid(frame, "ServerMessage"), frame
    assert not _valid('{"type":"pong"}', "ClientMessage")
    assert not _valid('{"type":"ping"}', "ServerMessage")


@pytest.mark.parametrize(
    "frame",
    [
        '{"type":"ofer","sdp":"v=0"}',
        '{"type":"offer"}',
        '{"type":"offer","spd":"v=0"}',
        '{"type":"chat","text":""}',
        '{"type":"digit","digit":"12"}',
        '{"type":"candidate","candidate":"candidate:1","sdpMid":null,"sdpMLineIndex":null}',
        '{"type":"candidate","candidate":"","sdpMid":"0","sdpMLineIndex":true}',
        '{"type":"state","state":"queued"}',
        '{"type":"state","state":"ended","reason":"x","agent":"Ana"}',
        '{"type":"state","state":"on_hold","position":1}',
        '{"type":"chat","text":"x","from":"bot"}',
        '{"type":"hello","contact":"c","media":"audio","ice_servers":[{"urls":[]}],"version":1}',
        '{"type":"hello","contact":"c","media":"audio","ice_servers":[],"version":2}',
        '{"type":"error","code":"oops","message":"m"}',
        '{"type":"candidate","candidate":"a=candidate:1","sdpMid":"0","sdpMLineIndex":0}',
        '{"type":"candidate","candidate":"candidate:1\\r\\na=x","sdpMid":"0","sdpMLineIndex":0}',
        '{"type":"candidate","candidate":"","sdpMid":"a b","sdpMLineIndex":0}',
        '{"type":"hello","contact":"c","media":"audio","ice_servers":[{"urls":["http://x"]}],'
        '"version":1}',
    ],
)
def test_the_schema_refuses_what_the_parser_refuses(frame: str) -> None:
    assert not _valid(frame)
    with pytest.raises(MessageError):
        (parse_server if '"hello"' in frame or '"from"' in frame else _parse_any)(frame)


def _parse_any(frame: str) -> object:
    """Either direction's parser: a frame bad for both is bad."""
    try:
        return parse_client(frame)
    except MessageError:
        return parse_server(frame)


def test_the_schema_names_every_message_of_each_direction() -> None:
    defs = schema()["$defs"]
    client = {ref["$ref"].split("/")[-1] for ref in defs["ClientMessage"]["oneOf"]}
    server = {ref["$ref"].split("/")[-1] for ref in defs["ServerMessage"]["oneOf"]}
    assert client == {
        "Offer",
        "Answer",
        "Candidate",
        "Digit",
        "Chat",
        "EscalateVideo",
        "Hangup",
        "Ping",
    }
    assert server == {
        "Hello",
        "Offer",
        "Answer",
        "Candidate",
        "State",
        "ChatLine",
        "VideoUnavailable",
        "EscalateVideo",
        "Secure",
        "Error",
        "Pong",
    }
    assert defs["Offer"]["required"] == ["type", "sdp"]
    assert defs["Candidate"]["required"] == ["type", "candidate", "sdpMid", "sdpMLineIndex"]
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"
