"""The worker's codec order in SDP answers (sans-IO).

pjmedia's SDP negotiator, answering an offer, takes the *caller's* first
codec among those both sides have: ``PJMEDIA_SDP_NEG_PREFER_REMOTE_CODEC_ORDER``
is compiled into the pjsua2 wheel, and pjsua2 offers no setting to turn it off
per call. What it does offer is ``Call.onCallSdpCreated``, which may rewrite
the local SDP before the negotiator sees it. :func:`prefer_local_codec` does
that rewrite: pjsua writes our codecs in our priority order (the worker sets
the priorities from ``--codecs``), so the first of them the offer also has is
the one we want, and the answer keeps only that codec. The negotiator, left
one choice, answers with it. Non-codec formats (``telephone-event``, ``red``)
are kept, so RFC 4733 digits are negotiated as before.

Formats match as pjmedia matches them: an offered static payload type
(below 96) by number, an offered dynamic one by the encoding name, clock rate
and channels of its ``rtpmap`` against ours.
"""

from __future__ import annotations

import dataclasses
import re

#: Encoding names the negotiator treats as something other than a codec.
NOT_CODECS = frozenset({"telephone-event", "red"})

_RTPMAP = re.compile(r"^a=rtpmap:(\d+)\s+([^/\s]+)/(\d+)(?:/(\d+))?", re.IGNORECASE)
_FORMAT_ATTRIBUTE = re.compile(r"^a=(?:rtpmap|fmtp|rtcp-fb):(\d+)[\s]", re.IGNORECASE)


@dataclasses.dataclass
class _Media:
    """One ``m=`` section: its line index, formats, and rtpmaps by payload type."""

    line: int
    formats: tuple[str, ...]
    rtpmaps: dict[str, tuple[str, int, int]]

    def is_codec(self, fmt: str) -> bool:
        rtpmap = self.rtpmaps.get(fmt)
        return rtpmap is None or rtpmap[0] not in NOT_CODECS

    def keys(self, fmt: str) -> set[tuple[str, int, int] | int]:
        """What a format matches by: its number if static, its rtpmap if it has one."""
        found: set[tuple[str, int, int] | int] = set()
        if fmt.isdigit() and int(fmt) < 96:
            found.add(int(fmt))
        if fmt in self.rtpmaps:
            found.add(self.rtpmaps[fmt])
        return found

    def offered(self, fmt: str) -> tuple[str, int, int] | int | None:
        """How pjmedia looks an offered format up in ours: by number if static, else by rtpmap."""
        if fmt.isdigit() and int(fmt) < 96:
            return int(fmt)
        return self.rtpmaps.get(fmt)


def _sections(lines: list[str]) -> list[_Media]:
    found: list[_Media] = []
    for index, line in enumerate(lines):
        if line.startswith("m="):
            fields = line.split()
            found.append(_Media(index, tuple(fields[3:]), {}))
        elif found and (rtpmap := _RTPMAP.match(line)):
            pt, name, rate, channels = rtpmap.groups()
            found[-1].rtpmaps[pt] = (name.lower(), int(rate), int(channels or 1))
    return found


def prefer_local_codec(local: str, remote: str) -> str:
    """The answer ``local`` with, per stream, only our first codec that ``remote`` offers.

    Returns ``local`` unchanged when it is an offer (``remote`` empty), when a
    stream has one codec at most, or when the offer has none of ours (the
    negotiator then refuses the offer, as it would have anyway).
    """
    if not remote.strip():
        return local
    newline = "\r\n" if "\r\n" in local else "\n"
    lines = local.split(newline)
    offered = _sections(remote.replace("\r\n", "\n").split("\n"))
    dropped: set[tuple[int, str]] = set()  # (m= line, payload type)
    for position, ours in enumerate(_sections(lines)):
        if position >= len(offered):
            break
        theirs = {offered[position].offered(fmt) for fmt in offered[position].formats}
        codecs = [fmt for fmt in ours.formats if ours.is_codec(fmt)]
        chosen = next((fmt for fmt in codecs if ours.keys(fmt) & theirs), None)
        if chosen is None or len(codecs) < 2:
            continue
        gone = {fmt for fmt in codecs if fmt != chosen}
        dropped |= {(ours.line, fmt) for fmt in gone}
        fields = lines[ours.line].split()
        lines[ours.line] = " ".join(fields[:3] + [f for f in fields[3:] if f not in gone])
    if not dropped:
        return local
    kept: list[str] = []
    section = -1
    for index, line in enumerate(lines):
        if line.startswith("m="):
            section = index
        attribute = _FORMAT_ATTRIBUTE.match(line)
        if attribute and (section, attribute.group(1)) in dropped:
            continue
        kept.append(line)
    return newline.join(kept)
