"""The worker's codec order in SDP answers: the local SDP narrowed to one codec per stream."""

from __future__ import annotations

import pytest

from assistline.sip.sdp import prefer_local_codec

#: A local SDP as pjsua writes it when answering, G.722 first (``--codecs G722,PCMU,PCMA``).
LOCAL = "\r\n".join(
    [
        "v=0",
        "o=- 3923374500 3923374501 IN IP4 127.0.0.1",
        "s=pjmedia",
        "t=0 0",
        "m=audio 20000 RTP/AVP 9 0 8 120 121",
        "c=IN IP4 127.0.0.1",
        "a=rtcp:20001 IN IP4 127.0.0.1",
        "a=sendrecv",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=fmtp:8 annexb=no",
        "a=rtpmap:120 telephone-event/16000",
        "a=fmtp:120 0-16",
        "a=rtpmap:121 telephone-event/8000",
        "a=fmtp:121 0-16",
        "a=ssrc:1234 cname:worker",
        "",
    ]
)


def _offer(formats: str, *attributes: str, newline: str = "\r\n") -> str:
    lines = ["v=0", "o=sipp 1 1 IN IP4 127.0.0.1", "s=-", "t=0 0"]
    lines += [f"m=audio 6000 RTP/AVP {formats}", "c=IN IP4 127.0.0.1"]
    return newline.join([*lines, *(f"a={a}" for a in attributes), ""])


def _narrowed(*keep: str) -> str:
    """LOCAL with only ``keep`` of its codecs (telephone-event stays)."""
    gone = {"9", "0", "8"} - set(keep)
    lines = []
    for line in LOCAL.split("\r\n"):
        if line.startswith("m=audio"):
            line = " ".join(f for f in line.split() if f not in gone)
        elif any(line.startswith(f"a={kind}:{pt} ") for kind in ("rtpmap", "fmtp") for pt in gone):
            continue
        lines.append(line)
    return "\r\n".join(lines)


@pytest.mark.parametrize(
    ("offer", "kept"),
    [
        pytest.param(_offer("0 9"), "9", id="ours-first-offered-second"),
        pytest.param(_offer("9 0"), "9", id="ours-first-offered-first"),
        pytest.param(_offer("8 0"), "0", id="neither-first-ours-second-wins"),
        pytest.param(_offer("8"), "8", id="only-our-last"),
        pytest.param(_offer("0 101", "rtpmap:101 telephone-event/8000"), "0", id="with-digits"),
        pytest.param(_offer("96 8", "rtpmap:96 PCMU/8000"), "0", id="ours-as-dynamic-type"),
        pytest.param(_offer("0 9", newline="\n"), "9", id="offer-with-bare-newlines"),
    ],
)
def test_the_answer_keeps_only_our_first_offered_codec(offer: str, kept: str) -> None:
    assert prefer_local_codec(LOCAL, offer) == _narrowed(kept)


def test_the_narrowed_answer_keeps_both_telephone_event_rates_and_other_attributes() -> None:
    answer = prefer_local_codec(LOCAL, _offer("0 9"))
    assert answer.split("\r\n")[4:] == [
        "m=audio 20000 RTP/AVP 9 120 121",
        "c=IN IP4 127.0.0.1",
        "a=rtcp:20001 IN IP4 127.0.0.1",
        "a=sendrecv",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:120 telephone-event/16000",
        "a=fmtp:120 0-16",
        "a=rtpmap:121 telephone-event/8000",
        "a=fmtp:121 0-16",
        "a=ssrc:1234 cname:worker",
        "",
    ]


@pytest.mark.parametrize(
    "remote",
    [
        pytest.param("", id="an-offer-not-an-answer"),
        pytest.param(_offer("3", "rtpmap:3 GSM/8000"), id="no-codec-of-ours"),
        pytest.param(_offer("96", "rtpmap:96 X-NOSUCH/8000"), id="unknown-dynamic-type"),
        pytest.param(_offer("101", "rtpmap:101 telephone-event/8000"), id="digits-only"),
        pytest.param(_offer("96", "rtpmap:96 PCMU/16000"), id="our-name-another-rate"),
        pytest.param("v=0\r\ns=-\r\n", id="offer-without-streams"),
    ],
)
def test_nothing_to_narrow_leaves_the_answer_as_pjsua_wrote_it(remote: str) -> None:
    assert prefer_local_codec(LOCAL, remote) == LOCAL


def test_an_answer_with_one_codec_is_left_alone() -> None:
    local = _narrowed("0")
    assert prefer_local_codec(local, _offer("8 0")) == local


def test_each_stream_is_narrowed_against_its_own_offered_stream() -> None:
    second = ["m=audio 20002 RTP/AVP 0 8", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000", ""]
    local = LOCAL + "\r\n".join(second)
    offer = _offer("0 9") + "m=audio 6002 RTP/AVP 8\r\n"
    assert prefer_local_codec(local, offer) == _narrowed("9") + "\r\n".join(
        ["m=audio 20002 RTP/AVP 8", "a=rtpmap:8 PCMA/8000", ""]
    )


def test_a_stream_the_offer_lacks_is_left_alone() -> None:
    unanswered = "m=audio 20002 RTP/AVP 0 8\r\n"
    assert prefer_local_codec(LOCAL + unanswered, _offer("0 9")) == _narrowed("9") + unanswered
