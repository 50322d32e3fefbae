"""Pure helpers over SIP text and codec names used by SIP legs (sans-IO).

Kept apart from :mod:`assistline.sip.leg` so they are tested without pjsua2.
"""

from __future__ import annotations

from collections.abc import Sequence

from assistline.sip.protocol import Headers

#: pjsua2 codec ids of the codecs settings may name.
CODEC_IDS = {"PCMU": "PCMU/8000/1", "PCMA": "PCMA/8000/1", "G722": "G722/16000/1"}


def codec_priorities(preferred: Sequence[str], available: Sequence[str]) -> dict[str, int]:
    """pjsua2 priorities: ``preferred`` (names from settings) first in order, others off.

    ``available`` are the codec ids pjsua2 lists; every one gets a priority,
    0 (disabled) unless it is one of the preferred codecs.
    """
    unknown = [name for name in preferred if name not in CODEC_IDS]
    if unknown:
        raise ValueError(f"unknown codec {unknown[0]!r}; use PCMU, PCMA or G722")
    wanted = [CODEC_IDS[name] for name in preferred]
    return {codec: (255 - wanted.index(codec) if codec in wanted else 0) for codec in available}


def x_headers(message: str) -> Headers:
    """The ``X-`` headers of a SIP message's header section, in order.

    Folded continuation lines are joined; header names keep their spelling.
    """
    head = message.replace("\r\n", "\n").split("\n\n", 1)[0]
    fields: list[tuple[str, str]] = []
    for line in head.split("\n")[1:]:
        if line[:1] in (" ", "\t"):
            if fields:
                name, value = fields[-1]
                fields[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        if sep:
            fields.append((name.strip(), value.strip()))
    return tuple((name, value) for name, value in fields if name.lower().startswith("x-"))


ECHO_USER = "echo"
"""The user part of the echo extension every worker answers itself."""


def sip_user(uri: str) -> str:
    """The user part of a SIP URI (``"Echo" <sip:echo@host>`` → ``echo``)."""
    inner = uri.split("<", 1)[1].split(">", 1)[0] if "<" in uri else uri
    inner = inner.split(":", 1)[1] if ":" in inner else inner
    return inner.split("@", 1)[0] if "@" in inner else ""
