"""The AR payment policy: exact cents, and the rule behind each amount."""

from __future__ import annotations

import dataclasses
import datetime
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from assistline.ivr.policy import (
    AccountError,
    AccountState,
    AmountError,
    AmountLimits,
    Kind,
    LateFee,
    Money,
    NothingToPayError,
    Override,
    OverrideError,
    PaymentOptions,
    PlanError,
    Quote,
    Waiver,
    add_months,
    check_amount,
    choose_plan,
    convenience_fee,
    dollars,
    due_dates,
    payment_options,
    percent,
    split,
    verify_override,
)
from assistline.ivr.policy_load import (
    Channel,
    ConvenienceFee,
    Fees,
    IntervalUnit,
    OtherAmountRule,
    OverrideRule,
    PlanRule,
    Policy,
    WaiverRule,
    hash_override_code,
    parse_code_hash,
)

D = datetime.date
TODAY = D(2025, 3, 5)
IVR, AGENT, WEB = Channel.IVR, Channel.AGENT, Channel.WEB
IVR_FEE = "convenience_fee.ivr: 2.5% capped at $3.95"
CODE = "246810"
# The weakest scrypt parameters accepted, so each verification takes ~0.05 s.
CODE_HASH = parse_code_hash(hash_override_code(CODE, n=2**14))

GOODWILL = WaiverRule("goodwill", max_days_past_due=30, lookback_months=12, max_prior_waivers=0)
POLICY = Policy(
    fees=Fees(
        ivr=ConvenienceFee(percent_bp=250, cap_cents=395),
        agent=ConvenienceFee(flat_cents=495, waive_for_hardship=True),
        web=ConvenienceFee(),
    ),
    other_amount=OtherAmountRule(min_cents=500),
    plan=PlanRule(min_instalment_cents=2500, min_balance_cents=10000),
    waivers=(GOODWILL,),
    override=OverrideRule(CODE_HASH, max_instalments=12, max_first_within_days=60),
)


def account(balance: int = 12345, minimum: int = 4210, **fields: Any) -> AccountState:
    return dataclasses.replace(AccountState(balance, minimum, D(2025, 2, 20)), **fields)


def options(
    state: AccountState | None = None, channel: Channel = IVR, policy: Policy = POLICY
) -> PaymentOptions:
    return payment_options(policy, state or account(), channel, TODAY)


@pytest.fixture(scope="module")
def override() -> Override:
    return verify_override(POLICY, CODE)


# ------------------------------------------------------------ money, dates and fees


@pytest.mark.parametrize(
    ("cents", "text"), [(0, "$0.00"), (5, "$0.05"), (395, "$3.95"), (123456789, "$1,234,567.89")]
)
def test_dollars(cents: int, text: str) -> None:
    assert dollars(cents) == text


@pytest.mark.parametrize(("bp", "text"), [(250, "2.5%"), (199, "1.99%"), (300, "3%"), (5, "0.05%")])
def test_percent(bp: int, text: str) -> None:
    assert percent(bp) == text


@pytest.mark.parametrize(
    ("day", "months", "moved"),
    [
        (D(2025, 1, 31), 1, D(2025, 2, 28)),
        (D(2024, 1, 31), 1, D(2024, 2, 29)),  # leap year
        (D(2025, 1, 31), 2, D(2025, 3, 31)),
        (D(2025, 3, 31), 1, D(2025, 4, 30)),
        (D(2025, 12, 15), 1, D(2026, 1, 15)),
        (D(2024, 2, 29), 12, D(2025, 2, 28)),
        (D(2025, 3, 31), -1, D(2025, 2, 28)),
        (D(2025, 1, 15), -13, D(2023, 12, 15)),
    ],
)
def test_add_months_clamps_to_the_months_end(day: D, months: int, moved: D) -> None:
    assert add_months(day, months) == moved


def test_monthly_dates_count_from_the_start_so_the_31st_comes_back() -> None:
    assert due_dates(PlanRule(), D(2024, 1, 31), 4) == (
        D(2024, 1, 31),
        D(2024, 2, 29),
        D(2024, 3, 31),
        D(2024, 4, 30),
    )
    every_two = PlanRule(interval=2)
    assert due_dates(every_two, D(2025, 12, 31), 2) == (D(2025, 12, 31), D(2026, 2, 28))


def test_dates_every_k_days() -> None:
    rule = PlanRule(interval=14, interval_unit=IntervalUnit.DAYS)
    assert due_dates(rule, D(2024, 2, 20), 3) == (D(2024, 2, 20), D(2024, 3, 5), D(2024, 3, 19))


@pytest.mark.parametrize(
    ("cents", "count", "parts"),
    [
        (10000, 3, (3334, 3333, 3333)),
        (10001, 3, (3334, 3334, 3333)),
        (10002, 3, (3334, 3334, 3334)),
        (12345, 2, (6173, 6172)),
        (7, 4, (2, 2, 2, 1)),
    ],
)
def test_split_puts_remainder_cents_on_the_first_instalments(
    cents: int, count: int, parts: tuple[int, ...]
) -> None:
    assert split(cents, count) == parts


@given(st.integers(1, 10**9), st.integers(1, 120))
def test_split_always_sums_exactly(cents: int, count: int) -> None:
    parts = split(cents, count)
    assert sum(parts) == cents and len(parts) == count
    assert list(parts) == sorted(parts, reverse=True) and parts[0] - parts[-1] <= 1


@pytest.mark.parametrize(
    ("cents", "fee"),
    [
        (10000, 250),
        (100, 3),  # 2.5 cents rounds half up
        (99, 2),  # 2.475
        (20, 1),  # 0.5
        (19, 0),  # 0.475
        (15800, 395),  # exactly the cap
        (15780, 395),  # 394.5 rounds up to the cap
        (15760, 394),
        (15820, 395),  # 395.5, capped
        (1_000_000, 395),
    ],
)
def test_ivr_fee_is_a_capped_percentage_rounded_half_up(cents: int, fee: int) -> None:
    assert convenience_fee(POLICY, IVR, cents, hardship=False) == Money(fee, IVR_FEE)


def test_the_cap_applies_to_flat_plus_percent() -> None:
    policy = dataclasses.replace(
        POLICY, fees=dataclasses.replace(POLICY.fees, web=ConvenienceFee(100, 199, 300))
    )
    rule = "convenience_fee.web: $1.00 + 1.99% capped at $3.00"
    assert convenience_fee(policy, WEB, 10000, False) == Money(299, rule)
    assert convenience_fee(policy, WEB, 10051, False) == Money(300, rule)  # 100 + 200.01
    assert convenience_fee(policy, WEB, 20000, False) == Money(300, rule)


def test_fees_per_channel_and_the_hardship_waiver() -> None:
    assert convenience_fee(POLICY, AGENT, 10000, False) == Money(
        495, "convenience_fee.agent: $4.95"
    )
    assert convenience_fee(POLICY, AGENT, 10000, True) == Money(
        0, "convenience_fee.agent: waived for hardship"
    )
    # The IVR fee is not waived for hardship; the web has none.
    assert convenience_fee(POLICY, IVR, 10000, True) == Money(250, IVR_FEE)
    assert convenience_fee(POLICY, WEB, 10000, False) == Money(0, "convenience_fee.web: none")


@given(st.integers(0, 10**10), st.integers(0, 10_000), st.integers(0, 10_000))
def test_fee_is_half_up_of_the_exact_fraction(cents: int, bp: int, flat: int) -> None:
    fees = Fees(ConvenienceFee(flat, bp), ConvenienceFee(), ConvenienceFee())
    fee = convenience_fee(dataclasses.replace(POLICY, fees=fees), IVR, cents, False).cents
    exact = flat + Fraction(cents * bp, 10_000)
    assert fee - Fraction(1, 2) <= exact < fee + Fraction(1, 2)  # a half rounds up


# ------------------------------------------------------------ the account


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"balance": -1}, "balance must be a whole number of cents, zero or more"),
        ({"balance": True}, "balance must be a whole number of cents, zero or more"),
        ({"minimum_due": -1}, "minimum_due must be a whole number of cents, zero or more"),
        ({"minimum_due": 12346}, "minimum_due must not exceed balance"),
        ({"days_past_due": -1}, "days_past_due must be a whole number, zero or more"),
        (
            {"late_fees": (LateFee(0, D(2025, 2, 1)),)},
            "late_fees must each be a whole number of cents above zero",
        ),
        (
            {"late_fees": (LateFee(10000, D(2025, 1, 1)), LateFee(2346, D(2025, 2, 1)))},
            "late_fees must not add up to more than balance",
        ),
    ],
)
def test_account_state_names_the_bad_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(AccountError) as raised:
        account(**fields)
    assert str(raised.value) == message


def test_a_zero_balance_has_nothing_to_pay() -> None:
    with pytest.raises(NothingToPayError) as raised:
        options(account(0, 0))
    assert str(raised.value) == "The account has no balance to pay."


# ------------------------------------------------------------ the options


def test_options_for_an_account_without_late_fees() -> None:
    got = options()
    assert got.full == Quote(
        Kind.FULL, Money(12345, "balance"), Money(309, IVR_FEE), Money(12654, "amount plus fee")
    )
    assert got.minimum == Quote(
        Kind.MINIMUM,
        Money(4210, "minimum_due"),
        Money(105, IVR_FEE),
        Money(4315, "amount plus fee"),
    )
    assert got.other == AmountLimits(
        Money(500, "other_amount.min_cents"), Money(12345, "pay_in_full")
    )
    # $123.45 in 2, 3 or 4 instalments; 5 would be $24.69, below $25.00.
    assert [len(plan.instalments) for plan in got.plans] == [2, 3, 4]
    assert got.plans_unavailable is None


def test_no_minimum_option_when_it_is_zero_or_pays_in_full() -> None:
    assert options(account(12345, 0)).minimum is None
    assert options(account(12345, 12345)).minimum is None


def test_the_lowest_other_amount_can_be_the_minimum_due() -> None:
    rule = OtherAmountRule(min_cents=500, at_least_minimum_due=True)
    policy = dataclasses.replace(POLICY, other_amount=rule)
    assert options(policy=policy).other == AmountLimits(
        Money(4210, "minimum_due"), Money(12345, "pay_in_full")
    )
    assert options(account(12345, 499), policy=policy).other == AmountLimits(
        Money(500, "other_amount.min_cents"), Money(12345, "pay_in_full")
    )


def test_the_highest_other_amount_can_be_a_cap() -> None:
    policy = dataclasses.replace(POLICY, other_amount=OtherAmountRule(500, max_cents=10000))
    assert options(policy=policy).other == AmountLimits(
        Money(500, "other_amount.min_cents"), Money(10000, "other_amount.max_cents")
    )
    got = options(policy=policy)
    assert check_amount(got, 10000).amount == Money(10000, "other_amount: $5.00 to $100.00")
    with pytest.raises(AmountError) as raised:
        check_amount(got, 10001)
    assert (
        str(raised.value) == "$100.01 is above the highest amount, $100.00 (other_amount.max_cents)"
    )
    assert raised.value.limit == "other_amount.max_cents"
    assert check_amount(got, 12345) == got.full  # paying in full is always allowed


# ------------------------------------------------------------ choosing an amount


def test_amounts_at_and_around_the_limits() -> None:
    got = options()
    assert check_amount(got, 500) == Quote(
        Kind.OTHER,
        Money(500, "other_amount: $5.00 to $123.45"),
        Money(13, IVR_FEE),
        Money(513, "amount plus fee"),
    )
    assert check_amount(got, 12344).amount == Money(12344, "other_amount: $5.00 to $123.45")
    assert check_amount(got, 12345) is got.full
    assert check_amount(got, 4210) is got.minimum
    refusals = {
        499: (
            "$4.99 is below the lowest amount, $5.00 (other_amount.min_cents)",
            "other_amount.min_cents",
        ),
        12346: ("$123.46 is more than the $123.45 that pays in full (pay_in_full)", "pay_in_full"),
        0: ("the amount must be a whole number of cents above zero", "amount"),
        -500: ("the amount must be a whole number of cents above zero", "amount"),
    }
    for cents, (message, limit) in refusals.items():
        with pytest.raises(AmountError) as raised:
            check_amount(got, cents)
        assert (str(raised.value), raised.value.limit) == (message, limit)


def test_the_minimum_due_is_allowed_below_the_lowest_other_amount() -> None:
    got = options(account(12345, 300))
    assert check_amount(got, 300) == got.minimum
    with pytest.raises(AmountError):
        check_amount(got, 301)


def test_a_balance_below_the_lowest_amount_is_paid_in_full() -> None:
    got = options(account(400, 0))
    assert got.other is None
    assert check_amount(got, 400) is got.full
    with pytest.raises(AmountError) as raised:
        check_amount(got, 399)
    assert (
        str(raised.value)
        == "only paying in full ($4.00) is offered for this balance (other_amount.min_cents)"
    )


def test_a_supervisor_override_allows_an_amount_below_the_lowest(override: Override) -> None:
    quote = check_amount(options(), 100, override)
    assert quote == Quote(
        Kind.OTHER,
        Money(100, "supervisor_override"),
        Money(3, IVR_FEE),
        Money(103, "amount plus fee"),
        overridden=("other_amount.min_cents",),
    )
    # Within the limits the override is not used.
    assert check_amount(options(), 600, override).overridden == ()


def test_no_override_pays_more_than_the_full_amount(override: Override) -> None:
    with pytest.raises(AmountError) as raised:
        check_amount(options(), 12346, override)
    assert raised.value.limit == "pay_in_full"


# ------------------------------------------------------------ late-fee waivers

FEES = (LateFee(2500, D(2025, 1, 20)), LateFee(3500, D(2025, 2, 20)))


def test_one_late_fee_waived_when_paying_in_full() -> None:
    got = options(account(late_fees=FEES, days_past_due=30))
    waived = Money(3500, "late_fee_waiver.goodwill")
    assert got.full.amount == Money(8845, "balance less late_fee_waiver.goodwill")
    assert got.full.waiver == Waiver(waived, (FEES[1],))
    assert got.full.total == Money(8845 + 221, "amount plus fee")
    # Only paying in full earns it: the minimum, other amounts and plans owe the fee.
    assert got.minimum is not None and got.minimum.waiver is None
    assert got.other is not None and got.other.highest == Money(8845, "pay_in_full")
    assert got.plans[0].amount == Money(12345, "balance")


@pytest.mark.parametrize(
    ("fields", "waived"),
    [
        ({"days_past_due": 30}, True),
        ({"days_past_due": 31}, False),
        ({"waivers": (D(2024, 3, 5),)}, True),  # exactly 12 months ago: no longer counts
        ({"waivers": (D(2024, 3, 6),)}, False),
        ({"waivers": (D(2025, 3, 5),)}, False),
        ({"waivers": (D(2025, 3, 6),)}, True),  # a date after today is not a prior waiver
        ({"late_fees": ()}, False),
    ],
)
def test_waiver_eligibility(fields: dict[str, Any], waived: bool) -> None:
    state = account(**{"late_fees": FEES, **fields})
    assert (options(state).full.waiver is not None) is waived


def test_waiver_rules_are_tried_in_order_and_name_the_one_applied() -> None:
    listed_only = WaiverRule("web_only", 30, 12, 0, channels=frozenset({WEB}))
    loyal = WaiverRule("loyal", 60, 12, 1, waive_all=True, applies_to=frozenset({"full", "plan"}))
    policy = dataclasses.replace(POLICY, waivers=(listed_only, loyal))
    state = account(22345, late_fees=FEES, days_past_due=45, waivers=(D(2024, 9, 1),))
    got = options(state, policy=policy)
    assert got.full.waiver == Waiver(Money(6000, "late_fee_waiver.loyal"), FEES)
    assert got.full.amount == Money(16345, "balance less late_fee_waiver.loyal")
    assert got.plans[0].amount == Money(16345, "balance less late_fee_waiver.loyal")
    assert got.plans[0].waiver == got.full.waiver
    web = options(account(late_fees=FEES), WEB, policy)
    assert web.full.waiver is not None and web.full.waiver.waived.rule == "late_fee_waiver.web_only"


def test_one_waives_the_most_recent_fee_ties_to_the_larger() -> None:
    fees = (
        LateFee(2500, D(2025, 2, 20)),
        LateFee(3000, D(2025, 2, 20)),
        LateFee(4000, D(2025, 1, 1)),
    )
    waiver = options(account(late_fees=fees)).full.waiver
    assert waiver == Waiver(Money(3000, "late_fee_waiver.goodwill"), (fees[1],))


def test_a_waiver_never_takes_the_amount_to_zero() -> None:
    state = account(2500, 2500, late_fees=(LateFee(2500, D(2025, 2, 1)),))
    assert options(state).full.amount == Money(2500, "balance")


# ------------------------------------------------------------ payment plans


def test_offered_plans_are_exact() -> None:
    plan = options(account(10000, 0), AGENT).plans[1]
    assert [(i.number, i.due, i.amount.cents, i.fee.cents) for i in plan.instalments] == [
        (1, D(2025, 3, 5), 3334, 495),
        (2, D(2025, 4, 5), 3333, 495),
        (3, D(2025, 5, 5), 3333, 495),
    ]
    assert (
        plan.instalments[0].amount.rule == "plan.instalment: 1 of 3 of $100.00, +1 remainder cent"
    )
    assert plan.instalments[1].amount.rule == "plan.instalment: 2 of 3 of $100.00"
    assert plan.instalments[0].total == Money(3829, "amount plus fee")
    assert plan.amount == Money(10000, "balance")
    assert plan.fee == Money(1485, "convenience_fee.agent: $4.95, per instalment")
    assert plan.total == Money(11485, "amount plus fee")
    assert (plan.rule, plan.waiver, plan.overridden) == ("plan", None, ())


@pytest.mark.parametrize(
    ("state", "policy", "why"),
    [
        (
            account(9999, 0),
            POLICY,
            "a plan needs a balance of at least $100.00 (plan.min_balance_cents)",
        ),
        (
            account(has_plan=True),
            POLICY,
            "the account already has a payment plan (plan.existing_plan)",
        ),
        (
            account(),
            dataclasses.replace(POLICY, plan=None),
            "payment plans are off (the policy has no [plan])",
        ),
        (
            account(),
            dataclasses.replace(POLICY, plan=PlanRule(min_instalment_cents=6200)),
            "an instalment is at least $62.00 (plan.min_instalment_cents)",
        ),
    ],
)
def test_why_no_plan_is_offered(state: AccountState, policy: Policy, why: str) -> None:
    got = options(state, policy=policy)
    assert (got.plans, got.plans_unavailable) == ((), why)


def test_choosing_a_plan_with_a_later_start() -> None:
    got = options()
    assert choose_plan(got, 2) == got.plans[0]
    plan = choose_plan(got, 3, D(2025, 4, 4))  # 30 days ahead, the last day allowed
    assert [i.due for i in plan.instalments] == [D(2025, 4, 4), D(2025, 5, 4), D(2025, 6, 4)]
    refusals = [
        (3, D(2025, 4, 5), "the first instalment is due within 30 days (plan.first_within_days)"),
        (3, D(2025, 3, 4), "a plan cannot start before today"),
        (7, None, "a plan has at most 6 instalments (plan.max_instalments)"),
        (5, None, "an instalment is at least $25.00 (plan.min_instalment_cents)"),
        (1, None, "a plan has at least 2 instalments (plan.min_instalments)"),
    ]
    for count, start, message in refusals:
        with pytest.raises(PlanError) as raised:
            choose_plan(got, count, start)
        assert str(raised.value) == message


def test_an_override_lifts_plan_limits_and_says_which(override: Override) -> None:
    plan = choose_plan(options(), 12, D(2025, 5, 4), override)
    assert plan.rule == "supervisor_override"
    assert plan.overridden == (
        "plan.max_instalments",
        "plan.first_within_days",
        "plan.min_instalment_cents",
    )
    assert [i.amount.cents for i in plan.instalments] == [1029] * 9 + [1028] * 3
    assert plan.instalments[-1].due == D(2026, 4, 4)
    hard = [
        (13, None, "even an override allows at most 12 instalments (override.max_instalments)"),
        (
            2,
            D(2025, 5, 5),
            "even an override needs the first instalment within 60 days"
            " (override.max_first_within_days)",
        ),
        (1, None, "a plan has at least 2 instalments (plan.min_instalments)"),
    ]
    for count, start, message in hard:
        with pytest.raises(PlanError) as raised:
            choose_plan(options(), count, start, override)
        assert str(raised.value) == message
    with pytest.raises(PlanError) as raised:
        choose_plan(options(account(has_plan=True)), 2, None, override)
    assert raised.value.limit == "plan"


def test_an_override_cannot_split_a_balance_into_zero_cent_instalments(override: Override) -> None:
    with pytest.raises(PlanError) as raised:
        choose_plan(options(account(10, 0)), 11, None, override)
    assert (
        str(raised.value)
        == "even an override allows at most 10 instalments (override.max_instalments)"
    )
    plan = choose_plan(options(account(10, 0)), 10, None, override)
    assert [i.amount.cents for i in plan.instalments] == [1] * 10


@given(st.integers(1, 10**8), st.integers(2, 12), st.sampled_from(list(Channel)))
def test_plan_instalments_always_sum_to_the_plan(
    balance: int, count: int, channel: Channel
) -> None:
    rule = PlanRule(max_instalments=12, min_instalment_cents=1, min_balance_cents=0)
    policy = dataclasses.replace(POLICY, plan=rule)
    got = payment_options(policy, AccountState(balance, 0, TODAY), channel, TODAY)
    for plan in got.plans:
        assert sum(i.amount.cents for i in plan.instalments) == plan.amount.cents == balance
        assert sum(i.total.cents for i in plan.instalments) == plan.total.cents
        assert plan.total.cents == plan.amount.cents + plan.fee.cents


# ------------------------------------------------------------ supervisor override


def test_override_refused() -> None:
    for code in ("246811", "", "24681O", CODE + "0"):
        with pytest.raises(OverrideError) as raised:
            verify_override(POLICY, code)
        assert str(raised.value) == "the supervisor override code is wrong"
    with pytest.raises(OverrideError) as raised:
        verify_override(dataclasses.replace(POLICY, override=None), CODE)
    assert (
        str(raised.value) == "supervisor overrides are off (the policy has no override.code_hash)"
    )


def test_an_override_is_made_only_by_verify_and_holds_to_its_policy(override: Override) -> None:
    with pytest.raises(OverrideError) as raised:
        Override(CODE_HASH, object())
    assert str(raised.value) == "an override comes only from verify_override"
    other = dataclasses.replace(
        POLICY, override=OverrideRule(parse_code_hash(hash_override_code(CODE, n=2**14)))
    )
    with pytest.raises(OverrideError) as raised:
        check_amount(options(policy=other), 100, override)
    assert str(raised.value) == "the override was verified against another policy"


def test_nothing_shows_the_override_code_or_its_hash(override: Override) -> None:
    assert repr(override) == "Override(code_hash=CodeHash(n=16384, r=8, p=1))"
    assert repr(POLICY.override) == (
        "OverrideRule(code_hash=CodeHash(n=16384, r=8, p=1),"
        " max_instalments=12, max_first_within_days=60)"
    )
