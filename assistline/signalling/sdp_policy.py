"""What a browser's SDP offer must be before a media worker sees it: DTLS-SRTP only.

A WebRTC leg takes audio (and video, and a data channel) over ICE with
DTLS-SRTP keys, nothing else. :func:`check_offer` reads an offer line by
line, refuses anything weaker with :class:`SdpRefused` naming the problem,
and sums up what was offered in an :class:`OfferSummary`. Refused:

- text that is not an SDP (it must start with ``v=0`` and every line be
  ``<letter>=<value>``), or longer than :data:`MAX_SDP` bytes;
- more than :data:`MAX_M_LINES` m-lines, or a media kind other than audio,
  video and application;
- an audio or video m-line whose protocol is not ``UDP/TLS/RTP/SAVPF`` (or
  ``UDP/TLS/RTP/SAVP``): plain ``RTP/AVP`` and SDES ``RTP/SAVP(F)`` alike;
  an application m-line that is not DTLS/SCTP;
- any ``a=crypto:`` line (SDES keys in the signalling, readable by whoever
  relays it);
- an m-line in use with no ``a=fingerprint:`` (its own or the session's),
  or a fingerprint whose hash is not sha-256, sha-384 or sha-512;
- an m-line in use without ``a=ice-ufrag`` and ``a=ice-pwd``;
- no audio m-line in use.

An m-line with port 0 and no ``a=bundle-only`` is rejected by the offerer
itself: allowed, noted, and not checked for ICE or DTLS. Error messages
never quote the offer beyond short tokens (a media kind, a protocol name).
"""

from __future__ import annotations

import dataclasses
import re

from assistline.errors import AssistlineError

#: Longest offer accepted, in bytes of UTF-8.
MAX_SDP = 16_384
#: Most m-lines accepted: audio, video, a data channel and one spare.
MAX_M_LINES = 4
#: Fingerprint hashes accepted, with their digest sizes in bytes.
FINGERPRINT_HASHES = {"sha-256": 32, "sha-384": 48, "sha-512": 64}
#: Protocols accepted per media kind.
PROTOCOLS = {
    "audio": ("UDP/TLS/RTP/SAVPF", "UDP/TLS/RTP/SAVP"),
    "video": ("UDP/TLS/RTP/SAVPF", "UDP/TLS/RTP/SAVP"),
    "application": ("UDP/DTLS/SCTP", "TCP/DTLS/SCTP", "DTLS/SCTP"),
}
#: Video codecs a media worker (aiortc) can take, as rtpmap names.
VIDEO_CODECS = ("VP8", "H264")


class SdpRefused(AssistlineError, ValueError):
    """The SDP offer was refused: WebRTC legs take DTLS-SRTP media only; the message says why."""


@dataclasses.dataclass(frozen=True, slots=True)
class MediaLine:
    """One m-line of an offer, as far as the policy cares."""

    index: int  # 1-based, as error messages count
    kind: str
    port: int
    protocol: str
    formats: tuple[str, ...]
    mid: str | None
    rejected: bool  # port 0 without a=bundle-only
    attributes: tuple[tuple[str, str], ...]  # (name, value) of its a= lines


@dataclasses.dataclass(frozen=True, slots=True)
class OfferSummary:
    """What an accepted offer carries."""

    has_audio: bool
    has_video: bool
    #: Payload type of Opus in the first audio m-line in use; None when not offered.
    opus_payload_type: int | None
    #: Video codecs from :data:`VIDEO_CODECS` offered, in the offer's order.
    video_codecs: tuple[str, ...]
    #: Hash of the DTLS fingerprint, lower case ("sha-256").
    fingerprint_hash: str
    #: The mids of the ``a=group:BUNDLE`` line; empty without one.
    bundle: tuple[str, ...]
    #: An m=application (DTLS/SCTP data channel) in use.
    data_channel: bool
    #: 1-based indexes of the m-lines the offerer rejected (port 0).
    rejected: tuple[int, ...]
    media: tuple[MediaLine, ...]


_LINE = re.compile(r"[a-z]=")
_M_LINE = re.compile(r"m=(\S+) (\d+)(?:/\d+)? (\S+)((?: \S+)*)")
_TOKEN = re.compile(r"[\w/.+-]{1,40}")
_ICE_CHARS = re.compile(r"[A-Za-z0-9+/]+")
_RTPMAP = re.compile(r"(\d+) ([\w.-]+)/(\d+)")


def _token(value: str) -> str:
    """``value`` quoted when it is a short token, else a placeholder: never echo an offer."""
    return repr(value) if _TOKEN.fullmatch(value) else "(unreadable)"


def _split(sdp: str) -> tuple[list[tuple[str, str]], list[MediaLine]]:
    """Session-level attributes and the m-lines, after checking the text is SDP at all."""
    size = len(sdp.encode("utf-8", "surrogatepass"))
    if size > MAX_SDP:
        raise SdpRefused(f"offer is {size} bytes, more than {MAX_SDP}")
    if not re.match(r"v=0\r?\n", sdp):
        raise SdpRefused("not an SDP: it must start with v=0")
    lines = re.split(r"\r?\n", sdp.removesuffix("\n").removesuffix("\r"))
    session: list[tuple[str, str]] = []
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    for number, line in enumerate(lines, 1):
        if not _LINE.match(line):
            raise SdpRefused(f"not an SDP: line {number} is not <letter>=<value>")
        if line.startswith("m="):
            if len(sections) == MAX_M_LINES:
                count = sum(1 for other in lines if other.startswith("m="))
                raise SdpRefused(f"offer has {count} m-lines, at most {MAX_M_LINES} are accepted")
            sections.append((line, []))
        elif line.startswith("a="):
            name, _, value = line[2:].partition(":")
            (sections[-1][1] if sections else session).append((name, value))
    return session, [_media_line(index, *section) for index, section in enumerate(sections, 1)]


def _media_line(index: int, line: str, attributes: list[tuple[str, str]]) -> MediaLine:
    match = _M_LINE.fullmatch(line)
    if match is None:
        raise SdpRefused(f"m-line {index} is malformed")
    kind, port, protocol, formats = match.groups()
    names = {name for name, _ in attributes}
    mid = next((value for name, value in attributes if name == "mid"), None)
    rejected = int(port) == 0 and "bundle-only" not in names
    return MediaLine(
        index, kind, int(port), protocol, tuple(formats.split()), mid, rejected, tuple(attributes)
    )


def _values(
    attributes: tuple[tuple[str, str], ...] | list[tuple[str, str]], name: str
) -> list[str]:
    return [value for key, value in attributes if key == name]


def _check_fingerprint(value: str) -> str:
    """The hash of one ``a=fingerprint:`` value, lower case, after checking its form."""
    algorithm, _, digest = value.partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in FINGERPRINT_HASHES:
        raise SdpRefused(
            f"offer's fingerprint uses {_token(algorithm)}: only sha-256, sha-384 and sha-512 "
            "are accepted"
        )
    size = FINGERPRINT_HASHES[algorithm]
    if not re.fullmatch(rf"[0-9A-Fa-f]{{2}}(?::[0-9A-Fa-f]{{2}}){{{size - 1}}}", digest.strip()):
        raise SdpRefused(f"offer's {algorithm} fingerprint is malformed")
    return algorithm


def _check_media(line: MediaLine, session: list[tuple[str, str]]) -> str | None:
    """Check one m-line; the hash of the fingerprint that covers it (None if not in use)."""
    if line.kind not in PROTOCOLS:
        raise SdpRefused(
            f"m-line {line.index} offers {_token(line.kind)}: only audio, video and "
            "application are accepted"
        )
    where = f"m-line {line.index} ({line.kind})"
    if line.protocol not in PROTOCOLS[line.kind]:
        wanted = PROTOCOLS[line.kind][0]
        raise SdpRefused(
            f"{where} uses {_token(line.protocol)}: only DTLS-SRTP ({wanted}) is accepted"
            if line.kind != "application"
            else f"{where} uses {_token(line.protocol)}: only a DTLS/SCTP data channel is accepted"
        )
    fingerprints = _values(line.attributes, "fingerprint") or _values(session, "fingerprint")
    hashes = [_check_fingerprint(value) for value in fingerprints]
    if line.port == 0:  # rejected, or bundle-only: the bundle's first m-line carries ICE
        return hashes[0] if hashes else None
    if not hashes:
        raise SdpRefused(f"{where} has no DTLS fingerprint (a=fingerprint)")
    for name, low in (("ice-ufrag", 4), ("ice-pwd", 22)):
        values = _values(line.attributes, name) or _values(session, name)
        if not values:
            raise SdpRefused(f"{where} has no ICE credentials (a=ice-ufrag and a=ice-pwd)")
        if not (low <= len(values[0]) <= 256 and _ICE_CHARS.fullmatch(values[0])):
            raise SdpRefused(f"{where} has a malformed a={name}")
    return hashes[0]


def _codecs(line: MediaLine) -> list[tuple[int, str]]:
    """(payload type, encoding name) of each rtpmap of the m-line's formats, in format order."""
    names: dict[str, str] = {}
    for value in _values(line.attributes, "rtpmap"):
        match = _RTPMAP.match(value)
        if match:
            names[match.group(1)] = match.group(2)
    return [(int(pt), names[pt]) for pt in line.formats if pt in names and pt.isdigit()]


def check_offer(sdp: str) -> OfferSummary:
    """Check a browser's SDP offer against the DTLS-SRTP policy; raise SdpRefused naming why."""
    session, media = _split(sdp)
    if not media:
        raise SdpRefused("offer has no audio m-line")
    if _values(session, "crypto") or any(_values(m.attributes, "crypto") for m in media):
        raise SdpRefused("offer carries SDES keys (a=crypto): only DTLS-SRTP is accepted")
    hashes = [_check_media(line, session) for line in media]
    in_use = [line for line in media if not line.rejected]
    audio = [line for line in in_use if line.kind == "audio"]
    if not audio:
        if any(line.kind == "audio" for line in media):
            raise SdpRefused("offer's audio m-line is rejected (port 0)")
        raise SdpRefused("offer has no audio m-line")
    video = [line for line in in_use if line.kind == "video"]
    opus = [pt for pt, name in _codecs(audio[0]) if name.lower() == "opus"]
    video_codecs: list[str] = []
    for line in video:
        for _, name in _codecs(line):
            upper = name.upper()
            if upper in VIDEO_CODECS and upper not in video_codecs:
                video_codecs.append(upper)
    groups = [value.split() for value in _values(session, "group")]
    bundle = next((group[1:] for group in groups if group[:1] == ["BUNDLE"]), [])
    return OfferSummary(
        has_audio=True,
        has_video=bool(video),
        opus_payload_type=opus[0] if opus else None,
        video_codecs=tuple(video_codecs),
        fingerprint_hash=next(h for h in hashes if h is not None),
        bundle=tuple(bundle),
        data_channel=any(line.kind == "application" for line in in_use),
        rejected=tuple(line.index for line in media if line.rejected),
        media=tuple(media),
    )
