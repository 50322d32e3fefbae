"""The AR policy file: what it holds (:class:`Policy` and its rules), reading and checking it.

A policy is a TOML file (``ar_policy.toml`` beside this module is the shipped
default, every key commented there). :func:`load_policy` reads one and
:func:`parse_policy` checks text; both refuse anything doubtful with a
:class:`PolicyFileError` naming the file and the field, e.g.
``ar.toml: plan.max_instalments must be an integer from 2 to 120, not 0``.
Every key is required, except the two limits whose absence means "none"
(``other_amount.max_cents``, ``fees.<channel>.cap_cents``); unknown keys are
refused, so a misspelt limit is an error rather than a default. Booleans are
not integers here, although Python says they are.

The supervisor override code is stored only as a scrypt hash,
``scrypt$N$r$p$salt$key`` (salt and key in base64 without padding), the
format of agent console passwords: :func:`hash_override_code` makes one for
``override.code_hash`` (N = 2**15, 0.13 s here) and :func:`parse_code_hash`
checks one, refusing parameters weaker or far heavier than these. An empty
``code_hash`` turns overrides off, and that is how the default ships: a
hash in a public file would only invite guessing.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
import re
import secrets
import tomllib
from collections.abc import Mapping
from pathlib import Path

from assistline.errors import AssistlineError, ConfigurationError

DEFAULT_POLICY_FILE = Path(__file__).with_name("ar_policy.toml")
#: The largest amount in cents any limit may name ($1 billion).
MAX_CENTS = 100_000_000_000
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32
_CODE = re.compile(r"[0-9]{6,20}")
_B64 = re.compile(r"[A-Za-z0-9+/]+")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


class PolicyFileError(ConfigurationError):
    """The AR policy file is invalid; fix the named field and start again."""


class CodeHashError(AssistlineError, ValueError):
    """The override code hash is not one assistline accepts; make it with hash_override_code."""


class Channel(enum.StrEnum):
    """Where a payment comes through; each has its own convenience fee."""

    IVR = "ivr"
    AGENT = "agent"
    WEB = "web"


class IntervalUnit(enum.StrEnum):
    """What a plan's interval counts."""

    DAYS = "days"
    MONTHS = "months"


@dataclasses.dataclass(frozen=True, slots=True)
class ConvenienceFee:
    """A channel's fee: flat cents plus basis points of the amount, the sum capped."""

    flat_cents: int = 0
    percent_bp: int = 0
    cap_cents: int | None = None
    waive_for_hardship: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Fees:
    """The convenience fee of each channel; ``fees[channel]`` picks one."""

    ivr: ConvenienceFee
    agent: ConvenienceFee
    web: ConvenienceFee

    def __getitem__(self, channel: Channel) -> ConvenienceFee:
        fee: ConvenienceFee = getattr(self, channel.value)
        return fee


@dataclasses.dataclass(frozen=True, slots=True)
class OtherAmountRule:
    """The limits on an amount the payer chooses."""

    min_cents: int = 500
    at_least_minimum_due: bool = False
    max_cents: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class PlanRule:
    """Which payment plans are offered."""

    min_instalments: int = 2
    max_instalments: int = 6
    interval: int = 1
    interval_unit: IntervalUnit = IntervalUnit.MONTHS
    first_within_days: int = 30
    min_instalment_cents: int = 2500
    min_balance_cents: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class WaiverRule:
    """When late fees are waived (``late_fee_waiver.<name>``), and which."""

    name: str
    max_days_past_due: int
    lookback_months: int
    max_prior_waivers: int
    waive_all: bool = False
    applies_to: frozenset[str] = frozenset({"full"})
    channels: frozenset[Channel] = frozenset(Channel)


@dataclasses.dataclass(frozen=True, slots=True)
class CodeHash:
    """A scrypt hash of the override code (``scrypt$N$r$p$salt$key`` in the file)."""

    n: int
    r: int
    p: int
    salt: bytes = dataclasses.field(repr=False)
    key: bytes = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True, slots=True)
class OverrideRule:
    """The supervisor override: the code's hash and the limits it can never pass."""

    code_hash: CodeHash
    max_instalments: int = 24
    max_first_within_days: int = 90


@dataclasses.dataclass(frozen=True, slots=True)
class Policy:
    """A whole AR payment policy (``plan`` None: plans off; ``override`` None: overrides off)."""

    fees: Fees
    other_amount: OtherAmountRule = OtherAmountRule()
    plan: PlanRule | None = PlanRule()
    waivers: tuple[WaiverRule, ...] = ()
    override: OverrideRule | None = None
    currency_symbol: str = "$"


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _b64decode(text: str, what: str) -> bytes:
    # The alphabet and length checks leave nothing b64decode could refuse.
    if not _B64.fullmatch(text) or len(text) % 4 == 1:
        raise CodeHashError(f"the override code hash has a {what} that is not base64")
    return base64.b64decode(text + "=" * (-len(text) % 4))


def parse_code_hash(text: str) -> CodeHash:
    """The parts of a ``scrypt$N$r$p$salt$key`` string; weak or excessive parameters refused."""
    parts = text.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise CodeHashError("the override code hash is not a scrypt$N$r$p$salt$key string")
    numbers = []
    for part, name in zip(parts[1:4], "Nrp", strict=True):
        if not part.isascii() or not part.isdigit() or len(part) > 8:
            raise CodeHashError(f"the override code hash has an {name} that is not a number")
        numbers.append(int(part))
    n, r, p = numbers
    if n & (n - 1) or not 2**14 <= n <= 2**20:
        raise CodeHashError("the override code hash needs N a power of two from 16384 to 1048576")
    if not SCRYPT_R <= r <= 32 or not SCRYPT_P <= p <= 16 or 128 * n * r > 256 * 2**20:
        raise CodeHashError("the override code hash needs r 8..32, p 1..16 and at most 256 MiB")
    salt, key = _b64decode(parts[4], "salt"), _b64decode(parts[5], "key")
    if not SALT_BYTES <= len(salt) <= 64 or not KEY_BYTES <= len(key) <= 64:
        raise CodeHashError("the override code hash needs a salt of 16..64 bytes, a key of 32..64")
    return CodeHash(n, r, p, salt, key)


def scrypt_key(code: str, code_hash: CodeHash) -> bytes:
    """The key ``code`` derives with ``code_hash``'s parameters, salt and key length."""
    n, r, p = code_hash.n, code_hash.r, code_hash.p
    # OpenSSL needs 128·r·(N + p + 2) bytes; a little more leaves room for its own.
    maxmem = 128 * r * (n + p + 2) + 2**20
    secret = code.encode("utf-8", "surrogatepass")
    salt, length = code_hash.salt, len(code_hash.key)
    return hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=length)


def hash_override_code(code: str, n: int = SCRYPT_N) -> str:
    """The ``scrypt$…`` string for ``override.code_hash``; ``code`` is 6 to 20 keypad digits."""
    if not _CODE.fullmatch(code):
        raise CodeHashError("an override code is 6 to 20 keypad digits")
    salt = secrets.token_bytes(SALT_BYTES)
    key = scrypt_key(code, CodeHash(n, SCRYPT_R, SCRYPT_P, salt, bytes(KEY_BYTES)))
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${_b64encode(salt)}${_b64encode(key)}"


_MISSING = object()


class _Table:
    """One TOML table being read: every read names its field; unread keys are errors."""

    def __init__(self, source: str, path: str, data: Mapping[str, object]) -> None:
        self.source, self.path, self.data = source, path, data
        self.read: set[str] = set()

    def error(self, key: str, problem: str) -> PolicyFileError:
        return PolicyFileError(f"{self.source}: {self.path}{key} {problem}")

    def get(self, key: str, optional: bool = False) -> object:
        self.read.add(key)
        if key not in self.data:
            if optional:
                return _MISSING
            raise self.error(key, "is missing")
        return self.data[key]

    def integer(self, key: str, lowest: int, highest: int, optional: bool = False) -> int | None:
        value = self.get(key, optional)
        if value is _MISSING:
            return None
        if type(value) is not int or not lowest <= value <= highest:
            raise self.error(key, f"must be an integer from {lowest} to {highest}, not {value!r}")
        return value

    def number(self, key: str, lowest: int, highest: int) -> int:
        value = self.integer(key, lowest, highest)
        assert value is not None  # a required key is never missing
        return value

    def boolean(self, key: str) -> bool:
        value = self.get(key)
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, not {value!r}")
        return value

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        value = self.get(key)
        if value not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)}, not {value!r}")
        assert isinstance(value, str)
        return value

    def choices(self, key: str, choices: tuple[str, ...]) -> frozenset[str]:
        value = self.get(key)
        if (
            not isinstance(value, list)
            or not value
            or any(item not in choices for item in value)
            or len(set(value)) != len(value)
        ):
            problem = f"must be a list of one or more of {', '.join(choices)}, not {value!r}"
            raise self.error(key, problem)
        return frozenset(value)

    def string(self, key: str) -> str:
        value = self.get(key)
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, not {value!r}")
        return value

    def table(self, key: str) -> _Table:
        value = self.get(key)
        if not isinstance(value, dict):
            raise self.error(key, "must be a table")
        return _Table(self.source, f"{self.path}{key}.", value)

    def tables(self, key: str) -> list[_Table]:
        value = self.get(key, optional=True)
        if value is _MISSING:
            return []
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self.error(key, f"must be an array of tables ([[{self.path}{key}]])")
        return [
            _Table(self.source, f"{self.path}{key}[{i}].", item) for i, item in enumerate(value)
        ]

    def done(self) -> None:
        for key in self.data:
            if key not in self.read:
                raise PolicyFileError(f"{self.source}: unknown key {self.path}{key}")


def _fee(fees: _Table, channel: Channel) -> ConvenienceFee:
    table = fees.table(channel.value)
    fee = ConvenienceFee(
        flat_cents=table.number("flat_cents", 0, MAX_CENTS),
        percent_bp=table.number("percent_bp", 0, 10_000),
        cap_cents=table.integer("cap_cents", 0, MAX_CENTS, optional=True),
        waive_for_hardship=table.boolean("waive_for_hardship"),
    )
    table.done()
    return fee


def _other_amount(table: _Table) -> OtherAmountRule:
    min_cents = table.number("min_cents", 1, MAX_CENTS)
    rule = OtherAmountRule(
        min_cents=min_cents,
        at_least_minimum_due=table.boolean("at_least_minimum_due"),
        max_cents=table.integer("max_cents", min_cents, MAX_CENTS, optional=True),
    )
    table.done()
    return rule


def _plan(table: _Table) -> PlanRule | None:
    enabled = table.boolean("enabled")
    min_instalments = table.number("min_instalments", 2, 120)
    rule = PlanRule(
        min_instalments=min_instalments,
        max_instalments=table.number("max_instalments", min_instalments, 120),
        interval=table.number("interval", 1, 366),
        interval_unit=IntervalUnit(table.choice("interval_unit", tuple(IntervalUnit))),
        first_within_days=table.number("first_within_days", 0, 366),
        min_instalment_cents=table.number("min_instalment_cents", 1, MAX_CENTS),
        min_balance_cents=table.number("min_balance_cents", 0, MAX_CENTS),
    )
    table.done()
    return rule if enabled else None


def _waiver(table: _Table, names: set[str]) -> WaiverRule:
    name = table.string("name")
    if not _NAME.fullmatch(name):
        problem = f"must be lower-case letters, digits and _ (at most 40), not {name!r}"
        raise table.error("name", problem)
    if name in names:
        raise table.error("name", f"repeats {name!r}: each rule needs its own name")
    names.add(name)
    rule = WaiverRule(
        name=name,
        max_days_past_due=table.number("max_days_past_due", 0, 3660),
        lookback_months=table.number("lookback_months", 0, 120),
        max_prior_waivers=table.number("max_prior_waivers", 0, 100),
        waive_all=table.choice("waive", ("one", "all")) == "all",
        applies_to=table.choices("applies_to", ("full", "plan")),
        channels=frozenset(Channel(c) for c in table.choices("channels", tuple(Channel))),
    )
    table.done()
    return rule


def _override(table: _Table, plan: PlanRule | None) -> OverrideRule | None:
    text = table.string("code_hash")
    most = table.number("max_instalments", plan.max_instalments if plan else 2, 360)
    within = table.number("max_first_within_days", plan.first_within_days if plan else 0, 366)
    table.done()
    if not text:
        return None
    try:
        code_hash = parse_code_hash(text)
    except CodeHashError as error:
        problem = str(error).removeprefix("the override code hash ")
        raise table.error("code_hash", problem) from None
    return OverrideRule(code_hash, most, within)


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """The policy in TOML ``text``; errors name ``source`` (the file) and the field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PolicyFileError(f"{source}: {error}") from None
    root = _Table(source, "", data)
    symbol = root.string("currency_symbol")
    if not 1 <= len(symbol) <= 5 or any(c.isdigit() for c in symbol):
        raise root.error("currency_symbol", f"must be 1 to 5 characters, no digits, not {symbol!r}")
    fees = root.table("fees")
    all_fees = Fees(*(_fee(fees, channel) for channel in Channel))
    fees.done()
    other_amount = _other_amount(root.table("other_amount"))
    plan = _plan(root.table("plan"))
    names: set[str] = set()
    waivers = tuple(_waiver(table, names) for table in root.tables("late_fee_waivers"))
    override = _override(root.table("override"), plan)
    root.done()
    return Policy(all_fees, other_amount, plan, waivers, override, symbol)


def load_policy(path: Path = DEFAULT_POLICY_FILE) -> Policy:
    """The policy in the TOML file at ``path`` (the shipped default if not given)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyFileError(f"{path}: the AR policy file does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise PolicyFileError(f"{path}: the AR policy file cannot be read ({error})") from None
    return parse_policy(text, str(path))
