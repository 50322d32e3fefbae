"""The AR policy file: the shipped default, and errors naming file and field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from assistline.errors import ConfigurationError
from assistline.ivr.policy import verify_override
from assistline.ivr.policy_load import (
    DEFAULT_POLICY_FILE,
    Channel,
    CodeHashError,
    ConvenienceFee,
    Fees,
    IntervalUnit,
    OtherAmountRule,
    OverrideRule,
    PlanRule,
    Policy,
    PolicyFileError,
    WaiverRule,
    hash_override_code,
    load_policy,
    parse_code_hash,
    parse_policy,
)

DEFAULT = DEFAULT_POLICY_FILE.read_text(encoding="utf-8")
SOURCE = "ar.toml"
# A valid scrypt hash at N = 2**14 (of "246810"), so tests stay fast.
SALT = "AAECAwQFBgcICQoLDA0ODw"
KEY = "A" * 43


def edited(old: str, new: str) -> str:
    """The default file with ``old`` (which occurs once) replaced by ``new``."""
    assert DEFAULT.count(old) == 1, old
    return DEFAULT.replace(old, new)


def refused(text: str) -> str:
    with pytest.raises(PolicyFileError) as raised:
        parse_policy(text, SOURCE)
    return str(raised.value)


def test_the_shipped_default() -> None:
    assert load_policy() == Policy(
        fees=Fees(
            ivr=ConvenienceFee(flat_cents=0, percent_bp=250, cap_cents=395),
            agent=ConvenienceFee(flat_cents=495, waive_for_hardship=True),
            web=ConvenienceFee(),
        ),
        other_amount=OtherAmountRule(min_cents=500, at_least_minimum_due=False, max_cents=500000),
        plan=PlanRule(
            min_instalments=2,
            max_instalments=6,
            interval=1,
            interval_unit=IntervalUnit.MONTHS,
            first_within_days=30,
            min_instalment_cents=2500,
            min_balance_cents=10000,
        ),
        waivers=(
            WaiverRule(
                "goodwill_pay_in_full",
                max_days_past_due=30,
                lookback_months=12,
                max_prior_waivers=0,
                waive_all=False,
                applies_to=frozenset({"full"}),
                channels=frozenset(Channel),
            ),
        ),
        override=None,
        currency_symbol="$",
    )


def test_every_key_of_the_shipped_default_is_commented() -> None:
    lines = DEFAULT.splitlines()
    keys = [i for i, line in enumerate(lines) if re.match(r"[a-z_]+ = ", line)]
    assert len(keys) == 32
    assert [lines[i] for i in keys if not lines[i - 1].startswith("# ")] == []


def test_the_default_ships_with_overrides_off() -> None:
    assert 'code_hash = ""' in DEFAULT


def test_a_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "ar.toml"
    path.write_text(edited("min_cents = 500\n", "min_cents = 700\n"), encoding="utf-8")
    assert load_policy(path).other_amount.min_cents == 700


def test_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "none.toml"
    with pytest.raises(PolicyFileError) as raised:
        load_policy(path)
    assert str(raised.value) == f"{path}: the AR policy file does not exist"
    assert isinstance(raised.value, ConfigurationError)


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'currency_symbol = "\xa3"\n')
    with pytest.raises(PolicyFileError) as raised:
        load_policy(path)
    assert str(raised.value).startswith(f"{path}: the AR policy file cannot be read (")


def test_toml_syntax() -> None:
    assert refused("currency_symbol\n") == (
        "ar.toml: Expected '=' after a key in a key/value pair (at line 1, column 16)"
    )


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('currency_symbol = "$"\n', "", "ar.toml: currency_symbol is missing"),
        (
            'currency_symbol = "$"\n',
            'currency_symbol = "US$10"\n',
            "ar.toml: currency_symbol must be 1 to 5 characters, no digits, not 'US$10'",
        ),
        (
            "min_cents = 500\n",
            "min_cents = 0\n",
            "ar.toml: other_amount.min_cents must be an integer from 1 to 100000000000, not 0",
        ),
        (
            "min_cents = 500\n",
            "min_cents = 5.0\n",
            "ar.toml: other_amount.min_cents must be an integer from 1 to 100000000000, not 5.0",
        ),
        (
            "min_cents = 500\n",
            "min_cents = true\n",
            "ar.toml: other_amount.min_cents must be an integer from 1 to 100000000000, not True",
        ),
        (
            "max_cents = 500000\n",
            "max_cents = 499\n",
            "ar.toml: other_amount.max_cents must be an integer from 500 to 100000000000, not 499",
        ),
        (
            "at_least_minimum_due = false\n",
            "at_least_minimum_due = 0\n",
            "ar.toml: other_amount.at_least_minimum_due must be true or false, not 0",
        ),
        (
            "min_cents = 500\n",
            "min_cents = 500\nmin_cent = 500\n",
            "ar.toml: unknown key other_amount.min_cent",
        ),
        (
            "max_instalments = 6\n",
            "max_instalments = 1\n",
            "ar.toml: plan.max_instalments must be an integer from 2 to 120, not 1",
        ),
        (
            "min_instalments = 2\n",
            "min_instalments = 1\n",
            "ar.toml: plan.min_instalments must be an integer from 2 to 120, not 1",
        ),
        (
            'interval_unit = "months"\n',
            'interval_unit = "weeks"\n',
            "ar.toml: plan.interval_unit must be one of days, months, not 'weeks'",
        ),
        ("first_within_days = 30\n", "", "ar.toml: plan.first_within_days is missing"),
        ("[plan]\n", "[plans]\n", "ar.toml: plan is missing"),
        (
            "percent_bp = 250\n",
            "percent_bp = 10001\n",
            "ar.toml: fees.ivr.percent_bp must be an integer from 0 to 10000, not 10001",
        ),
        (
            "cap_cents = 395\n",
            "cap_cents = -1\n",
            "ar.toml: fees.ivr.cap_cents must be an integer from 0 to 100000000000, not -1",
        ),
        ("[fees.web]\n", "[fees.sms]\n", "ar.toml: fees.web is missing"),
        (
            "[fees.web]\n",
            "[fees.sms]\nflat_cents = 0\n[fees.web]\n",
            "ar.toml: unknown key fees.sms",
        ),
        (
            'name = "goodwill_pay_in_full"\n',
            'name = "Goodwill"\n',
            "ar.toml: late_fee_waivers[0].name must be lower-case letters, digits and _"
            " (at most 40), not 'Goodwill'",
        ),
        (
            'waive = "one"\n',
            'waive = "first"\n',
            "ar.toml: late_fee_waivers[0].waive must be one of one, all, not 'first'",
        ),
        (
            'applies_to = ["full"]\n',
            "applies_to = []\n",
            "ar.toml: late_fee_waivers[0].applies_to must be a list of one or more of"
            " full, plan, not []",
        ),
        (
            'applies_to = ["full"]\n',
            'applies_to = ["full", "full"]\n',
            "ar.toml: late_fee_waivers[0].applies_to must be a list of one or more of"
            " full, plan, not ['full', 'full']",
        ),
        (
            'channels = ["ivr", "agent", "web"]\n',
            'channels = ["ivr", "sms"]\n',
            "ar.toml: late_fee_waivers[0].channels must be a list of one or more of"
            " ivr, agent, web, not ['ivr', 'sms']",
        ),
        (
            "max_prior_waivers = 0\n",
            "",
            "ar.toml: late_fee_waivers[0].max_prior_waivers is missing",
        ),
        (
            "max_instalments = 24\n",
            "max_instalments = 5\n",
            "ar.toml: override.max_instalments must be an integer from 6 to 360, not 5",
        ),
        (
            "max_first_within_days = 90\n",
            "max_first_within_days = 29\n",
            "ar.toml: override.max_first_within_days must be an integer from 30 to 366, not 29",
        ),
        (
            'code_hash = ""\n',
            'code_hash = "sha256$abc"\n',
            "ar.toml: override.code_hash is not a scrypt$N$r$p$salt$key string",
        ),
        (
            'code_hash = ""\n',
            f'code_hash = "scrypt$1024$8$1${SALT}${KEY}"\n',
            "ar.toml: override.code_hash needs N a power of two from 16384 to 1048576",
        ),
        (
            "[override]\n",
            "[overide]\n",
            "ar.toml: override is missing",
        ),
    ],
)
def test_errors_name_the_file_and_the_field(old: str, new: str, message: str) -> None:
    assert refused(edited(old, new)) == message


WAIVER = DEFAULT[DEFAULT.index("[[late_fee_waivers]]\n") : DEFAULT.index("# Supervisor override")]


def test_waiver_names_are_unique() -> None:
    text = edited("[[late_fee_waivers]]\n", WAIVER + "[[late_fee_waivers]]\n")
    assert refused(text) == (
        "ar.toml: late_fee_waivers[1].name repeats 'goodwill_pay_in_full':"
        " each rule needs its own name"
    )


def test_waivers_are_an_array_of_tables() -> None:
    text = "late_fee_waivers = 1\n" + DEFAULT.replace(WAIVER, "")
    assert refused(text) == (
        "ar.toml: late_fee_waivers must be an array of tables ([[late_fee_waivers]])"
    )


def test_plans_off_and_no_waivers() -> None:
    policy = parse_policy(edited("enabled = true\n", "enabled = false\n").replace(WAIVER, ""))
    assert (policy.plan, policy.waivers) == (None, ())


def test_a_code_hash_turns_overrides_on() -> None:
    code_hash = hash_override_code("246810", n=2**14)
    policy = parse_policy(edited('code_hash = ""\n', f'code_hash = "{code_hash}"\n'), SOURCE)
    assert policy.override == OverrideRule(parse_code_hash(code_hash), 24, 90)
    assert verify_override(policy, "246810").code_hash == parse_code_hash(code_hash)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the override code hash is not a scrypt$N$r$p$salt$key string"),
        ("scrypt$16384$8$1$salt", "the override code hash is not a scrypt$N$r$p$salt$key string"),
        (f"scrypt$x$8$1${SALT}${KEY}", "the override code hash has an N that is not a number"),
        (f"scrypt$16384$8$１${SALT}${KEY}", "the override code hash has an p that is not a number"),
        (
            f"scrypt$20000$8$1${SALT}${KEY}",
            "the override code hash needs N a power of two from 16384 to 1048576",
        ),
        (
            f"scrypt$2097152$8$1${SALT}${KEY}",
            "the override code hash needs N a power of two from 16384 to 1048576",
        ),
        (
            f"scrypt$16384$7$1${SALT}${KEY}",
            "the override code hash needs r 8..32, p 1..16 and at most 256 MiB",
        ),
        (
            f"scrypt$1048576$8$1${SALT}${KEY}",
            "the override code hash needs r 8..32, p 1..16 and at most 256 MiB",
        ),
        (f"scrypt$16384$8$1$sa-t${KEY}", "the override code hash has a salt that is not base64"),
        (f"scrypt$16384$8$1${SALT}$A", "the override code hash has a key that is not base64"),
        (
            f"scrypt$16384$8$1$AAAA${KEY}",
            "the override code hash needs a salt of 16..64 bytes, a key of 32..64",
        ),
    ],
)
def test_code_hash_formats_refused(text: str, message: str) -> None:
    with pytest.raises(CodeHashError) as raised:
        parse_code_hash(text)
    assert str(raised.value) == message


def test_a_code_hash_round_trips_and_hides_salt_and_key() -> None:
    code_hash = parse_code_hash(f"scrypt$16384$8$1${SALT}${KEY}")
    assert (code_hash.n, code_hash.r, code_hash.p) == (16384, 8, 1)
    assert code_hash.salt == bytes(range(16)) and code_hash.key == bytes(32)
    assert repr(code_hash) == "CodeHash(n=16384, r=8, p=1)"
    made = hash_override_code("12345678", n=2**14)
    assert re.fullmatch(r"scrypt\$16384\$8\$1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}", made)
    assert "12345678" not in made


@pytest.mark.parametrize("code", ["12345", "123456789012345678901", "12345a", "１２３４５６"])
def test_override_codes_are_6_to_20_keypad_digits(code: str) -> None:
    with pytest.raises(CodeHashError) as raised:
        hash_override_code(code)
    assert str(raised.value) == "an override code is 6 to 20 keypad digits"
    assert code not in str(raised.value)
