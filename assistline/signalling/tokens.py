"""Join tokens: how a customer's page proves which contact it may join.

The business backend creates a contact and receives a token, which it puts
in the link it gives the customer (``…/?token=<token>``). The page presents
the token once, on the WebSocket; the server keeps only its SHA-256, so a
copy of the database joins nobody's contact. A token is 32 random bytes
(``secrets.token_urlsafe(32)``), valid for ``webrtc.token_ttl`` seconds
(at most 300) and for one use; it is never logged.

This module is pure: making, hashing and shape-checking tokens, and the
values :func:`assistline.signalling.contacts.consume_token` answers with.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import re
import secrets
import uuid

#: Random bytes in a token: 256 bits, beyond guessing.
TOKEN_BYTES = 32
#: Characters of a token: 32 bytes in unpadded base64url.
TOKEN_LENGTH = 43
# 43 characters carry 258 bits, so the last one holds 2 bits of nothing: the
# encoder leaves them zero, and only these 16 characters can end a token.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")


def new_token() -> str:
    """A fresh join token: 43 characters of base64url over 32 random bytes."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> bytes:
    """What is stored in place of a token: the SHA-256 of its ASCII text (32 bytes)."""
    return hashlib.sha256(token.encode("ascii")).digest()


def looks_like_token(text: object) -> bool:
    """Whether ``text`` has the shape :func:`new_token` gives, exactly.

    True only for a string of 43 base64url characters (``A-Z a-z 0-9 - _``,
    no padding) whose last character is one of the 16 that can end the
    encoding of 32 bytes. Anything else (empty, truncated by a mail client,
    padded, percent-encoded, too long) is refused before the database is
    asked, so garbage costs no query and never reaches a log through SQL.
    """
    # fullmatch, not match with "$": "$" also matches before a trailing newline.
    return isinstance(text, str) and _TOKEN.fullmatch(text) is not None


class TokenRefusal(enum.Enum):
    """Why a token did not admit its page, as the WebSocket tells the page."""

    #: No such token was ever issued (or it is not shaped like one).
    MISSING = "missing"
    #: It was issued, but its time ran out before it was used.
    EXPIRED = "expired"
    #: It was used already: a token admits one page, once.
    USED = "used"


@dataclasses.dataclass(frozen=True, slots=True)
class ContactRef:
    """The contact a token admitted its page to."""

    id: uuid.UUID
    media: str
