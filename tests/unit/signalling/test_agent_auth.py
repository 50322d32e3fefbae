"""Console passwords: the scrypt string's exact format, verification, and refused formats."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from assistline.queue.agents import AgentError
from assistline.signalling.agent_auth import (
    PasswordHashError,
    check_console_password,
    hash_password,
    parse_password_hash,
    session_token_hash,
    verify_password,
)

PASSWORD = "correct horse battery staple"
SALT = bytes(range(16))
FORMAT = re.compile(r"^scrypt\$32768\$8\$1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$")


@pytest.fixture(scope="module")
def stored() -> str:
    return hash_password(PASSWORD)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def test_the_string_names_its_parameters_salt_and_key_exactly() -> None:
    text = hash_password(PASSWORD, salt=SALT)
    assert FORMAT.match(text)
    expected = hashlib.scrypt(
        PASSWORD.encode(), salt=SALT, n=2**15, r=8, p=1, maxmem=64 * 2**20, dklen=32
    )
    assert text == f"scrypt$32768$8$1${_b64(SALT)}${_b64(expected)}"
    parsed = parse_password_hash(text)
    assert (parsed.n, parsed.r, parsed.p, parsed.salt, parsed.key) == (2**15, 8, 1, SALT, expected)
    assert "hidden" in repr(parsed) and _b64(expected) not in repr(parsed)


def test_each_hash_has_its_own_salt(stored: str) -> None:
    assert FORMAT.match(stored)
    assert stored != hash_password(PASSWORD)


def test_verify_accepts_the_password_only(stored: str) -> None:
    assert verify_password(PASSWORD, stored) is True
    assert verify_password(PASSWORD + " ", stored) is False
    assert verify_password("", stored) is False


def _replace_part(text: str, index: int, value: str) -> str:
    parts = text.split("$")
    parts[index] = value
    return "$".join(parts)


def _flip(b64: str) -> str:
    raw = bytearray(base64.b64decode(b64 + "=" * (-len(b64) % 4)))
    raw[0] ^= 1
    return _b64(bytes(raw))


def test_a_tampered_salt_or_key_does_not_verify(stored: str) -> None:
    parts = stored.split("$")
    assert verify_password(PASSWORD, _replace_part(stored, 4, _flip(parts[4]))) is False
    assert verify_password(PASSWORD, _replace_part(stored, 5, _flip(parts[5]))) is False


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("5f4dcc3b5aa765d61d8327deb882cf99", "not a scrypt"),
        ("argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", "not a scrypt"),
        ("scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA", "not a scrypt"),
        ("scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43, "N must be"),
        ("scrypt$30000$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43, "N must be"),
        ("scrypt$2097152$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43, "N must be"),
        ("scrypt$32768$4$1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43, "r must be"),
        ("scrypt$32768$8$0$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43, "r must be"),
        ("scrypt$1048576$32$1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43, "256 MiB"),
        ("scrypt$-1$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43, "N is not a number"),
        ("scrypt$32768$8$1$AAAA$" + "A" * 43, "the salt must be 16..64 bytes"),
        ("scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAA", "the key 32..64"),
        ("scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAA!$" + "A" * 43, "the salt is not base64"),
        ("scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 41, "the key is not base64"),
    ],
)
def test_unknown_weak_and_malformed_strings_are_refused(text: str, why: str) -> None:
    with pytest.raises(PasswordHashError, match=re.escape(why)):
        parse_password_hash(text)
    with pytest.raises(PasswordHashError):
        verify_password(PASSWORD, text)


def test_console_passwords_are_12_to_1024_characters() -> None:
    check_console_password("x" * 12)
    check_console_password("x" * 1024)
    for refused in ("x" * 11, "x" * 1025):
        with pytest.raises(AgentError, match="password must be 12 to 1024 characters"):
            check_console_password(refused)


def test_a_session_token_is_kept_as_its_sha256() -> None:
    assert session_token_hash("abc") == hashlib.sha256(b"abc").digest()
