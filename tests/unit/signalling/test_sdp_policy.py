"""The DTLS-SRTP offer policy: browsers' real offers pass, every weaker offer is refused by name."""

from __future__ import annotations

import pytest

from assistline.errors import AssistlineError
from assistline.signalling.sdp_policy import MAX_SDP, OfferSummary, SdpRefused, check_offer

CHROMIUM_FINGERPRINT = (
    "sha-256 DD:F8:D3:10:D2:16:93:30:8B:1E:D6:55:3E:49:72:C3:80:73:53:7B:65:6B:6E:8B:95:F6:35:"
    "B2:B1:29:AA:56"
)
FIREFOX_FINGERPRINT = (
    "sha-256 16:E5:F6:0F:20:7A:1A:00:73:45:1C:35:A9:D3:15:D1:7F:DC:17:D7:FA:B6:64:49:B0:0C:DF:"
    "AA:DC:8B:24:9E"
)

# Chromium, getUserMedia({audio: true, video: true}), trickle ICE: no candidates yet.
CHROMIUM_LINES = [
    "v=0",
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0 1",
    "a=extmap-allow-mixed",
    "a=msid-semantic: WMS 5c3e4a1f-8b2d-4e6a-9f1c-2d7b8e9a0c3d",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
    "c=IN IP4 0.0.0.0",
    "a=rtcp:9 IN IP4 0.0.0.0",
    "a=ice-ufrag:Kf9h",
    "a=ice-pwd:0xY4nS6dP1qW2eR3tY5uI7oP",
    "a=ice-options:trickle",
    f"a=fingerprint:{CHROMIUM_FINGERPRINT}",
    "a=setup:actpass",
    "a=mid:0",
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
    "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=sendrecv",
    "a=msid:5c3e4a1f-8b2d-4e6a-9f1c-2d7b8e9a0c3d 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
    "a=rtcp-mux",
    "a=rtcp-rsize",
    "a=rtpmap:111 opus/48000/2",
    "a=rtcp-fb:111 transport-cc",
    "a=fmtp:111 minptime=10;useinbandfec=1",
    "a=rtpmap:63 red/48000/2",
    "a=fmtp:63 111/111",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:13 CN/8000",
    "a=rtpmap:110 telephone-event/48000",
    "a=rtpmap:126 telephone-event/8000",
    "a=ssrc:3735928559 cname:Zm9vYmFyYmF6cXV4",
    "a=ssrc:3735928559 msid:5c3e4a1f-8b2d-4e6a-9f1c-2d7b8e9a0c3d "
    "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100 101 45 46 102 103",
    "c=IN IP4 0.0.0.0",
    "a=rtcp:9 IN IP4 0.0.0.0",
    "a=ice-ufrag:Kf9h",
    "a=ice-pwd:0xY4nS6dP1qW2eR3tY5uI7oP",
    "a=ice-options:trickle",
    f"a=fingerprint:{CHROMIUM_FINGERPRINT}",
    "a=setup:actpass",
    "a=mid:1",
    "a=extmap:14 urn:ietf:params:rtp-hdrext:toffset",
    "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "a=extmap:13 urn:3gpp:video-orientation",
    "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
    "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=sendrecv",
    "a=msid:5c3e4a1f-8b2d-4e6a-9f1c-2d7b8e9a0c3d 9a8b7c6d-5e4f-3a2b-1c0d-e9f8a7b6c5d4",
    "a=rtcp-mux",
    "a=rtcp-rsize",
    "a=rtpmap:96 VP8/90000",
    "a=rtcp-fb:96 goog-remb",
    "a=rtcp-fb:96 transport-cc",
    "a=rtcp-fb:96 ccm fir",
    "a=rtcp-fb:96 nack",
    "a=rtcp-fb:96 nack pli",
    "a=rtpmap:97 rtx/90000",
    "a=fmtp:97 apt=96",
    "a=rtpmap:98 VP9/90000",
    "a=fmtp:98 profile-id=0",
    "a=rtpmap:99 rtx/90000",
    "a=fmtp:99 apt=98",
    "a=rtpmap:100 VP9/90000",
    "a=fmtp:100 profile-id=2",
    "a=rtpmap:101 rtx/90000",
    "a=fmtp:101 apt=100",
    "a=rtpmap:45 AV1/90000",
    "a=rtpmap:46 rtx/90000",
    "a=fmtp:46 apt=45",
    "a=rtpmap:102 H264/90000",
    "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
    "a=rtpmap:103 rtx/90000",
    "a=fmtp:103 apt=102",
    "a=ssrc-group:FID 2882400001 2882400002",
    "a=ssrc:2882400001 cname:Zm9vYmFyYmF6cXV4",
    "a=ssrc:2882400002 cname:Zm9vYmFyYmF6cXV4",
]

# Firefox, audio + video + a data channel, after ICE gathering completed: the fingerprint
# sits at session level and the candidates are in the offer.
FIREFOX_LINES = [
    "v=0",
    "o=mozilla...THIS_IS_SDPARTA-115.0 5713476185524116522 0 IN IP4 0.0.0.0",
    "s=-",
    "t=0 0",
    f"a=fingerprint:{FIREFOX_FINGERPRINT}",
    "a=group:BUNDLE 0 1 2",
    "a=ice-options:trickle",
    "a=msid-semantic:WMS *",
    "m=audio 46154 UDP/TLS/RTP/SAVPF 109 9 0 8 101",
    "c=IN IP4 192.0.2.7",
    "a=candidate:0 1 UDP 2122252543 192.168.1.20 46154 typ host",
    "a=candidate:1 1 UDP 1686052863 192.0.2.7 46154 typ srflx raddr 192.168.1.20 rport 46154",
    "a=sendrecv",
    "a=end-of-candidates",
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "a=extmap:2/recvonly urn:ietf:params:rtp-hdrext:csrc-audio-level",
    "a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=fmtp:109 maxplaybackrate=48000;stereo=1;useinbandfec=1",
    "a=fmtp:101 0-15",
    "a=ice-pwd:633de4b0c14ca52ea2432a3c8a5c4c31",
    "a=ice-ufrag:cfaeedaf",
    "a=mid:0",
    "a=msid:{1f6a3a43-6d5c-4c3b-9b0e-2f1e0d9c8b7a} {7e6d5c4b-3a29-1807-f6e5-d4c3b2a19080}",
    "a=rtcp-mux",
    "a=rtpmap:109 opus/48000/2",
    "a=rtpmap:9 G722/8000/1",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=setup:actpass",
    "a=ssrc:2416437532 cname:{c2c2d5a8-1b3e-4f5a-8c7d-9e0f1a2b3c4d}",
    "m=video 46154 UDP/TLS/RTP/SAVPF 120 124 121 125 126 127 97 98",
    "c=IN IP4 192.0.2.7",
    "a=sendrecv",
    "a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=extmap:4 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "a=extmap:5 urn:ietf:params:rtp-hdrext:toffset",
    "a=extmap:6/recvonly http://www.webrtc.org/experiments/rtp-hdrext/playout-delay",
    "a=extmap:7 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
    "a=fmtp:126 profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1",
    "a=fmtp:97 profile-level-id=42e01f;level-asymmetry-allowed=1",
    "a=fmtp:120 max-fs=12288;max-fr=60",
    "a=fmtp:124 apt=120",
    "a=fmtp:121 max-fs=12288;max-fr=60",
    "a=fmtp:125 apt=121",
    "a=fmtp:127 apt=126",
    "a=fmtp:98 apt=97",
    "a=ice-pwd:633de4b0c14ca52ea2432a3c8a5c4c31",
    "a=ice-ufrag:cfaeedaf",
    "a=mid:1",
    "a=msid:{1f6a3a43-6d5c-4c3b-9b0e-2f1e0d9c8b7a} {0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9}",
    "a=rtcp-fb:120 nack",
    "a=rtcp-fb:120 nack pli",
    "a=rtcp-fb:120 ccm fir",
    "a=rtcp-fb:120 goog-remb",
    "a=rtcp-fb:120 transport-cc",
    "a=rtcp-mux",
    "a=rtcp-rsize",
    "a=rtpmap:120 VP8/90000",
    "a=rtpmap:124 rtx/90000",
    "a=rtpmap:121 VP9/90000",
    "a=rtpmap:125 rtx/90000",
    "a=rtpmap:126 H264/90000",
    "a=rtpmap:127 rtx/90000",
    "a=rtpmap:97 H264/90000",
    "a=rtpmap:98 rtx/90000",
    "a=setup:actpass",
    "a=ssrc:1371302210 cname:{c2c2d5a8-1b3e-4f5a-8c7d-9e0f1a2b3c4d}",
    "m=application 46154 UDP/DTLS/SCTP webrtc-datachannel",
    "c=IN IP4 192.0.2.7",
    "a=sendrecv",
    "a=ice-pwd:633de4b0c14ca52ea2432a3c8a5c4c31",
    "a=ice-ufrag:cfaeedaf",
    "a=mid:2",
    "a=setup:actpass",
    "a=sctp-port:5000",
    "a=max-message-size:1073741823",
]


def sdp(lines: list[str], newline: str = "\r\n") -> str:
    return newline.join(lines) + newline


def edit(lines: list[str], old: str, new: str | None) -> list[str]:
    """``lines`` with every line starting with ``old`` replaced by ``new`` (None: removed)."""
    assert any(line.startswith(old) for line in lines), old
    edited = [new if line.startswith(old) else line for line in lines]
    return [line for line in edited if line is not None]


def without(lines: list[str], prefix: str) -> list[str]:
    return edit(lines, prefix, None)


def test_chromium_audio_and_video() -> None:
    summary = check_offer(sdp(CHROMIUM_LINES))
    assert (
        summary.has_audio,
        summary.has_video,
        summary.opus_payload_type,
        summary.video_codecs,
        summary.fingerprint_hash,
        summary.bundle,
        summary.data_channel,
        summary.rejected,
    ) == (True, True, 111, ("VP8", "H264"), "sha-256", ("0", "1"), False, ())
    assert [(m.index, m.kind, m.mid, m.rejected) for m in summary.media] == [
        (1, "audio", "0", False),
        (2, "video", "1", False),
    ]


def test_firefox_audio_video_and_data_channel_with_a_session_level_fingerprint() -> None:
    summary = check_offer(sdp(FIREFOX_LINES))
    assert summary == OfferSummary(
        has_audio=True,
        has_video=True,
        opus_payload_type=109,
        video_codecs=("VP8", "H264"),
        fingerprint_hash="sha-256",
        bundle=("0", "1", "2"),
        data_channel=True,
        rejected=(),
        media=summary.media,
    )
    assert summary.media[2].protocol == "UDP/DTLS/SCTP"
    assert summary.media[0].port == 46154


def test_audio_only_with_a_rejected_video_line_and_bare_newlines() -> None:
    start = CHROMIUM_LINES.index("m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100 101 45 46 102 103")
    lines = [*CHROMIUM_LINES[:start], "m=video 0 UDP/TLS/RTP/SAVPF 96", "c=IN IP4 0.0.0.0"]
    lines += ["a=mid:1", "a=inactive", "a=rtpmap:96 VP8/90000"]
    summary = check_offer(sdp(edit(lines, "a=group:BUNDLE", "a=group:BUNDLE 0"), "\n"))
    assert (summary.has_audio, summary.has_video, summary.video_codecs) == (True, False, ())
    assert (summary.rejected, summary.bundle, summary.media[1].rejected) == ((2,), ("0",), True)


def test_a_bundle_only_line_is_in_use_and_takes_the_bundles_transport() -> None:
    start = CHROMIUM_LINES.index("m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100 101 45 46 102 103")
    video = ["m=video 0 UDP/TLS/RTP/SAVPF 96", "a=bundle-only", "a=mid:1", "a=rtpmap:96 VP8/90000"]
    summary = check_offer(sdp(CHROMIUM_LINES[:start] + video))
    assert (summary.has_video, summary.video_codecs, summary.rejected) == (True, ("VP8",), ())


def test_no_opus_is_noted_not_refused() -> None:
    lines = edit(CHROMIUM_LINES, "a=rtpmap:111 ", "a=rtpmap:111 ISAC/16000")
    assert check_offer(sdp(lines)).opus_payload_type is None


def test_other_fingerprint_hashes_are_accepted() -> None:
    sha512 = "sha-512 " + ":".join(["AB"] * 64)
    summary = check_offer(sdp(edit(FIREFOX_LINES, "a=fingerprint:", f"a=fingerprint:{sha512}")))
    assert summary.fingerprint_hash == "sha-512"


CRYPTO = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
ABOUT_CRYPTO = "offer carries SDES keys (a=crypto): only DTLS-SRTP is accepted"
AUDIO_M = "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126"


def _sdes_offer(protocol: str) -> list[str]:
    lines = edit(CHROMIUM_LINES, "m=audio", AUDIO_M.replace("UDP/TLS/RTP/SAVPF", protocol))
    return [*lines, CRYPTO]


REFUSED = [
    ("", "not an SDP: it must start with v=0"),
    ("hello", "not an SDP: it must start with v=0"),
    ('{"type": "offer"}', "not an SDP: it must start with v=0"),
    ("v=1\r\n", "not an SDP: it must start with v=0"),
    ("v=0", "not an SDP: it must start with v=0"),
    (
        sdp(CHROMIUM_LINES[:4] + ["hello"] + CHROMIUM_LINES[4:]),
        "not an SDP: line 5 is not <letter>=<value>",
    ),
    (
        sdp(CHROMIUM_LINES[:4] + [""] + CHROMIUM_LINES[4:]),
        "not an SDP: line 5 is not <letter>=<value>",
    ),
    ("v=0\r\ns=-\r\n", "offer has no audio m-line"),
    (
        sdp(edit(CHROMIUM_LINES, "m=audio", "m=audio 9 RTP/AVP 0 8")),
        "m-line 1 (audio) uses 'RTP/AVP': only DTLS-SRTP (UDP/TLS/RTP/SAVPF) is accepted",
    ),
    (
        sdp(edit(CHROMIUM_LINES, "m=video", "m=video 9 RTP/AVPF 96")),
        "m-line 2 (video) uses 'RTP/AVPF': only DTLS-SRTP (UDP/TLS/RTP/SAVPF) is accepted",
    ),
    (
        sdp(edit(CHROMIUM_LINES, "m=audio", "m=audio 9 RTP/SAVPF 111")),
        "m-line 1 (audio) uses 'RTP/SAVPF': only DTLS-SRTP (UDP/TLS/RTP/SAVPF) is accepted",
    ),
    (
        sdp(edit(CHROMIUM_LINES, "m=audio", "m=audio 9 UDP/TLS/RTP/SAVPF<b> 111")),
        "m-line 1 (audio) uses (unreadable): only DTLS-SRTP (UDP/TLS/RTP/SAVPF) is accepted",
    ),
    (sdp(_sdes_offer("RTP/SAVPF")), ABOUT_CRYPTO),
    (sdp(_sdes_offer("RTP/SAVP")), ABOUT_CRYPTO),
    (sdp(_sdes_offer("UDP/TLS/RTP/SAVPF")), ABOUT_CRYPTO),
    (
        sdp(without(CHROMIUM_LINES, "a=fingerprint:")),
        "m-line 1 (audio) has no DTLS fingerprint (a=fingerprint)",
    ),
    (
        sdp(without(FIREFOX_LINES, "a=fingerprint:")),
        "m-line 1 (audio) has no DTLS fingerprint (a=fingerprint)",
    ),
    (
        sdp(edit(CHROMIUM_LINES, "a=fingerprint:", "a=fingerprint:sha-1 " + ":".join(["AB"] * 20))),
        "offer's fingerprint uses 'sha-1': only sha-256, sha-384 and sha-512 are accepted",
    ),
    (
        sdp(edit(FIREFOX_LINES, "a=fingerprint:", "a=fingerprint:md5 " + ":".join(["AB"] * 16))),
        "offer's fingerprint uses 'md5': only sha-256, sha-384 and sha-512 are accepted",
    ),
    (
        sdp(edit(FIREFOX_LINES, "a=fingerprint:", "a=fingerprint:sha-256 AB:CD")),
        "offer's sha-256 fingerprint is malformed",
    ),
    (
        sdp(edit(FIREFOX_LINES, "a=fingerprint:", "a=fingerprint:sha-256")),
        "offer's sha-256 fingerprint is malformed",
    ),
    (
        sdp(without(CHROMIUM_LINES, "a=ice-ufrag:")),
        "m-line 1 (audio) has no ICE credentials (a=ice-ufrag and a=ice-pwd)",
    ),
    (
        sdp(without(FIREFOX_LINES, "a=ice-pwd:")),
        "m-line 1 (audio) has no ICE credentials (a=ice-ufrag and a=ice-pwd)",
    ),
    (
        sdp(edit(CHROMIUM_LINES, "a=ice-pwd:", "a=ice-pwd:short")),
        "m-line 1 (audio) has a malformed a=ice-pwd",
    ),
    (
        sdp(edit(CHROMIUM_LINES, "a=ice-ufrag:", "a=ice-ufrag:K f9h")),
        "m-line 1 (audio) has a malformed a=ice-ufrag",
    ),
    (
        sdp(edit(CHROMIUM_LINES, "m=audio", "m=audio 0 UDP/TLS/RTP/SAVPF 111")),
        "offer's audio m-line is rejected (port 0)",
    ),
    (
        sdp(
            CHROMIUM_LINES[:7]
            + CHROMIUM_LINES[
                CHROMIUM_LINES.index(
                    "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100 101 45 46 102 103"
                ) :
            ]
        ),
        "offer has no audio m-line",
    ),
    (
        sdp(edit(CHROMIUM_LINES, "m=audio", "m=audio nine UDP/TLS/RTP/SAVPF 111")),
        "m-line 1 is malformed",
    ),
    (
        sdp(FIREFOX_LINES + ["m=text 9 UDP/TLS/RTP/SAVPF 98"]),
        "m-line 4 offers 'text': only audio, video and application are accepted",
    ),
    (
        sdp(
            edit(FIREFOX_LINES, "m=application", "m=application 46154 UDP/SCTP webrtc-datachannel")
        ),
        "m-line 3 (application) uses 'UDP/SCTP': only a DTLS/SCTP data channel is accepted",
    ),
    (
        sdp(FIREFOX_LINES + ["m=video 0 UDP/TLS/RTP/SAVPF 120"] * 2),
        "offer has 5 m-lines, at most 4 are accepted",
    ),
]


@pytest.mark.parametrize(("offer", "error"), REFUSED, ids=[e for _, e in REFUSED])
def test_refusals_name_the_problem(offer: str, error: str) -> None:
    with pytest.raises(SdpRefused) as raised:
        check_offer(offer)
    assert str(raised.value) == error


def test_four_m_lines_are_accepted() -> None:
    summary = check_offer(sdp([*FIREFOX_LINES, "m=video 0 UDP/TLS/RTP/SAVPF 120"]))
    assert summary.rejected == (4,)


def test_an_offer_over_16_kib_is_refused() -> None:
    padding = [f"a=x-padding:{'p' * 80}"] * 200
    offer = sdp(CHROMIUM_LINES + padding)
    size = len(offer.encode())
    assert size > MAX_SDP
    with pytest.raises(SdpRefused) as raised:
        check_offer(offer)
    assert str(raised.value) == f"offer is {size} bytes, more than 16384"


def test_refusals_never_quote_keys_and_are_assistline_errors() -> None:
    with pytest.raises(SdpRefused) as raised:
        check_offer(sdp(_sdes_offer("RTP/SAVPF")))
    assert "inline" not in str(raised.value)
    assert issubclass(SdpRefused, AssistlineError) and issubclass(SdpRefused, ValueError)
    assert SdpRefused().args[0].startswith("The SDP offer was refused")
