"""Join tokens: their shape, their hash, and the shape check that guards the database."""

from __future__ import annotations

import base64
import hashlib

import pytest

from assistline.signalling.tokens import (
    TOKEN_LENGTH,
    TokenRefusal,
    looks_like_token,
    new_token,
    token_hash,
)

# The 32 bytes 0x00..0x1f, as secrets.token_urlsafe would encode them.
KNOWN = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"


def test_a_new_token_is_32_random_bytes_in_unpadded_base64url() -> None:
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert len(token) == TOKEN_LENGTH == 43
        assert looks_like_token(token)
        assert len(base64.urlsafe_b64decode(token + "=")) == 32


def test_the_stored_hash_is_the_sha256_of_the_token_text() -> None:
    assert KNOWN == base64.urlsafe_b64encode(bytes(range(32))).rstrip(b"=").decode()
    assert token_hash("A" * 43) == bytes.fromhex(
        "0f007385b6f9d4b7eeb2748605afe1a984a0a3bfa3f014d09e2a784ce9e5cd1a"
    )
    assert token_hash(KNOWN) == hashlib.sha256(KNOWN.encode()).digest()
    assert len(token_hash(KNOWN)) == 32


def test_only_what_an_encoder_could_write_ends_a_token() -> None:
    # 43 characters hold 258 bits: the last one's low 2 bits are always zero.
    endings = "".join(c for c in map(chr, range(128)) if looks_like_token(KNOWN[:42] + c))
    assert endings == "048AEIMQUYcgkosw"


@pytest.mark.parametrize(
    "text",
    [
        "",
        KNOWN[:42],  # truncated
        KNOWN + "A",  # too long
        KNOWN + "=",  # padded
        KNOWN[:42] + "9",  # a last character no 32 bytes encode to
        "+" + KNOWN[1:],  # base64, not base64url
        "/" + KNOWN[1:],
        KNOWN + "\n",  # "$" would have let this through
        " " + KNOWN[1:],
        "%41" + KNOWN[3:],  # percent-encoded
        "é" + KNOWN[1:],
        "\uff21" + KNOWN[1:],  # a fullwidth A
        "A" * 42 + "\x00",
    ],
)
def test_anything_else_is_not_a_token(text: str) -> None:
    assert not looks_like_token(text)


@pytest.mark.parametrize("value", [None, 43, KNOWN.encode(), [KNOWN]])
def test_only_strings_are_tokens(value: object) -> None:
    assert not looks_like_token(value)


def test_the_known_token_has_the_shape() -> None:
    assert looks_like_token(KNOWN)
    assert looks_like_token("A" * 43)


def test_refusals_are_named_as_the_websocket_says_them() -> None:
    assert [r.value for r in TokenRefusal] == ["missing", "expired", "used"]
