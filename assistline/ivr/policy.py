"""The accounts-receivable payment policy, sans-IO: what a payer may pay, and by which rule.

:func:`payment_options` takes a :class:`~assistline.ivr.policy_load.Policy`
(read from a TOML data file by :mod:`assistline.ivr.policy_load`, which also
defines its rules; ``ar_policy.toml`` is the shipped default), an
:class:`AccountState` from the account system, the channel and today's
date, and answers :class:`PaymentOptions`: pay in full, pay the minimum,
another amount within limits, and payment plans. :func:`check_amount` turns a
chosen amount into a :class:`Quote`, :func:`choose_plan` a chosen plan into a
:class:`Plan`; both refuse with a :class:`LimitError` naming the limit broken.
Every amount is a :class:`Money`: integer cents and the rule that produced
it, so an agent, a receipt or an audit says why a number is what it is.

The rules:

- **Cents, never floats.** Percent fees are basis points and round half up to
  the cent in integer arithmetic, ``(cents * bp + 5000) // 10000``. A
  channel's convenience fee is flat + percent, then the cap applies to the
  sum. A channel may waive its fee for accounts in hardship (agent-assisted
  hardship calls). A plan pays the fee on each instalment, as each is a
  payment through the channel.
- **Pay in full**: the balance, less a late-fee waiver whose rule applies.
- **Pay the minimum**: ``minimum_due``, offered only when it is above zero
  and below the pay-in-full amount (otherwise paying in full is the minimum).
- **Another amount**: from ``other_amount.min_cents`` (or ``minimum_due``
  when ``at_least_minimum_due`` and it is higher) up to the pay-in-full
  amount (or ``other_amount.max_cents`` when lower). Not offered when the
  lowest exceeds the highest (a small balance): pay in full then.
- **Plans**: ``min_instalments``..``max_instalments`` instalments summing
  exactly to the balance (less a waiver applying to plans). The remainder
  cents go one each to the *first* instalments, so earlier ones are never
  smaller than later ones. Dates: every ``interval`` days, or every
  ``interval`` months counted from the start each time with the day clamped
  to the month's end (Jan 31 → Feb 28, or 29 in a leap year → Mar 31, never
  Mar 28). Offered plans start today; :func:`choose_plan` takes a start up to
  ``first_within_days`` ahead. Not offered when plans are off or a plan
  already exists (never overridable), below ``min_balance_cents``, or for
  counts whose smallest instalment is below ``min_instalment_cents``.
- **Late-fee waivers**: rules in file order; the first eligible one applies:
  the channel is listed, the option paid (full or plan) is listed, the account
  is at most ``max_days_past_due``, and it had at most ``max_prior_waivers``
  waivers in the ``lookback_months`` before today (a waiver exactly that
  many months ago no longer counts). It waives the most recent late fee
  (``one``; ties go to the larger) or all of them, and never takes the amount
  to zero: a waiver rewards a payment.
- **Supervisor override**: :func:`verify_override` checks a code against the
  policy's scrypt hash (``scrypt$N$r$p$salt$key``, as agent console
  passwords: all million 6-digit codes under salted SHA-256 took 0.75 s in
  plain Python here, so only a memory-hard hash is accepted) and compares in
  constant time. An :class:`Override` lifts the amount and plan limits; the
  result names the limits lifted and says ``rule="supervisor_override"``. It
  never allows more than pays in full, a plan beyond
  ``override.max_instalments`` or ``override.max_first_within_days``, a start
  before today, fewer than ``min_instalments``, an instalment under one cent,
  or a second plan. Verifying costs 0.13 s of CPU (N = 2**15; 0.05 s at
  2**14): run it in a thread, and limit attempts.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime
import enum
import hmac

from assistline.errors import AssistlineError
from assistline.ivr import policy_load
from assistline.ivr.policy_load import Channel, IntervalUnit, PlanRule, Policy, scrypt_key


class PolicyError(AssistlineError, ValueError):
    """The payment policy refused the request; the message names the rule or field."""


class AccountError(PolicyError):
    """The account state is invalid; fix the named field in the account system's data."""


class NothingToPayError(PolicyError):
    """The account has no balance to pay."""


class LimitError(PolicyError):
    """A choice breaks a limit of the payment policy; ``limit`` names the rule."""

    def __init__(self, message: str, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


class AmountError(LimitError):
    """The amount breaks a limit of the payment policy; offer an amount within the limits."""


class PlanError(LimitError):
    """The payment plan breaks a limit of the payment policy; offer one of the plans offered."""


class OverrideError(PolicyError):
    """The supervisor override was refused; a supervisor must key the code again."""


class Kind(enum.StrEnum):
    """Which single-payment option a quote is."""

    FULL = "full"
    MINIMUM = "minimum"
    OTHER = "other"


@dataclasses.dataclass(frozen=True, slots=True)
class Money:
    """An amount in integer cents and the rule that produced it."""

    cents: int
    rule: str


@dataclasses.dataclass(frozen=True, slots=True)
class LateFee:
    """A late fee charged to the account."""

    cents: int
    charged_on: datetime.date


def _cents(name: str, value: object) -> None:
    if type(value) is not int or value < 0:
        raise AccountError(f"{name} must be a whole number of cents, zero or more")


@dataclasses.dataclass(frozen=True, slots=True)
class AccountState:
    """What the account system says about the account being paid; amounts in cents.

    ``days_past_due`` comes from the account system (it counts from the oldest
    unpaid cycle, which ``due_date`` alone does not tell); ``waivers`` are the
    dates of late-fee waivers granted before.
    """

    balance: int
    minimum_due: int
    due_date: datetime.date
    days_past_due: int = 0
    late_fees: tuple[LateFee, ...] = ()
    waivers: tuple[datetime.date, ...] = ()
    has_plan: bool = False
    hardship: bool = False

    def __post_init__(self) -> None:
        _cents("balance", self.balance)
        _cents("minimum_due", self.minimum_due)
        if self.minimum_due > self.balance:
            raise AccountError("minimum_due must not exceed balance")
        if type(self.days_past_due) is not int or self.days_past_due < 0:
            raise AccountError("days_past_due must be a whole number, zero or more")
        for fee in self.late_fees:
            if type(fee.cents) is not int or fee.cents <= 0:
                raise AccountError("late_fees must each be a whole number of cents above zero")
        if sum(fee.cents for fee in self.late_fees) > self.balance:
            raise AccountError("late_fees must not add up to more than balance")


@dataclasses.dataclass(frozen=True, slots=True)
class Waiver:
    """Late fees waived for a payment: the total (its rule is the waiver rule) and which fees."""

    waived: Money
    fees: tuple[LateFee, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Quote:
    """One payment today: its amount, fee and total, and any override used."""

    kind: Kind
    amount: Money
    fee: Money
    total: Money
    waiver: Waiver | None = None
    overridden: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class AmountLimits:
    """The lowest and highest amount the payer may choose."""

    lowest: Money
    highest: Money


@dataclasses.dataclass(frozen=True, slots=True)
class Instalment:
    """One payment of a plan (numbered from 1)."""

    number: int
    due: datetime.date
    amount: Money
    fee: Money
    total: Money


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """A payment plan: ``rule`` is ``plan`` or ``supervisor_override``."""

    instalments: tuple[Instalment, ...]
    amount: Money
    fee: Money
    total: Money
    rule: str = "plan"
    waiver: Waiver | None = None
    overridden: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class PaymentOptions:
    """What the payer is offered; ``plans_unavailable`` says why there are no plans."""

    policy: Policy
    account: AccountState
    channel: Channel
    today: datetime.date
    full: Quote
    minimum: Quote | None
    other: AmountLimits | None
    plans: tuple[Plan, ...]
    plans_unavailable: str | None


_ISSUED = object()


@dataclasses.dataclass(frozen=True, slots=True)
class Override:
    """A supervisor override; only :func:`verify_override` makes one."""

    code_hash: policy_load.CodeHash
    _token: object = dataclasses.field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._token is not _ISSUED:
            raise OverrideError("an override comes only from verify_override")


def dollars(cents: int, symbol: str = "$") -> str:
    """``cents`` as ``$1,234.56``."""
    return f"{symbol}{cents // 100:,}.{cents % 100:02d}"


def percent(bp: int) -> str:
    """Basis points as a percentage: 250 → ``2.5%``, 199 → ``1.99%``, 300 → ``3%``."""
    whole, hundredths = divmod(bp, 100)
    return f"{whole}.{hundredths:02d}".rstrip("0") + "%" if hundredths else f"{whole}%"


def add_months(day: datetime.date, months: int) -> datetime.date:
    """``day`` moved by ``months``, the day clamped to the month's last day."""
    year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return datetime.date(year, month + 1, min(day.day, last))


def split(cents: int, count: int) -> tuple[int, ...]:
    """``cents`` in ``count`` parts summing exactly, the remainder one cent each to the first."""
    share, remainder = divmod(cents, count)
    return tuple(share + 1 if i < remainder else share for i in range(count))


def due_dates(rule: PlanRule, start: datetime.date, count: int) -> tuple[datetime.date, ...]:
    """The dates of ``count`` instalments from ``start``, months counted from the start."""
    if rule.interval_unit is IntervalUnit.MONTHS:
        return tuple(add_months(start, i * rule.interval) for i in range(count))
    step = datetime.timedelta(days=rule.interval)
    return tuple(start + i * step for i in range(count))


def convenience_fee(policy: Policy, channel: Channel, cents: int, hardship: bool) -> Money:
    """The channel's fee on a payment of ``cents``, with the rule that set it."""
    fee = policy.fees[channel]
    name = f"convenience_fee.{channel}"
    if hardship and fee.waive_for_hardship:
        return Money(0, f"{name}: waived for hardship")
    parts = [dollars(fee.flat_cents, policy.currency_symbol)] if fee.flat_cents else []
    if fee.percent_bp:
        parts.append(percent(fee.percent_bp))
    if not parts:
        return Money(0, f"{name}: none")
    text = " + ".join(parts)
    cents = fee.flat_cents + (cents * fee.percent_bp + 5000) // 10000
    if fee.cap_cents is not None:
        text += f" capped at {dollars(fee.cap_cents, policy.currency_symbol)}"
        cents = min(cents, fee.cap_cents)
    return Money(cents, f"{name}: {text}")


def _waiver(
    policy: Policy, account: AccountState, channel: Channel, today: datetime.date, option: str
) -> Waiver | None:
    for rule in policy.waivers:
        since = add_months(today, -rule.lookback_months)
        prior = sum(1 for day in account.waivers if since < day <= today)
        if (
            channel not in rule.channels
            or option not in rule.applies_to
            or not account.late_fees
            or account.days_past_due > rule.max_days_past_due
            or prior > rule.max_prior_waivers
        ):
            continue
        if rule.waive_all:
            fees = account.late_fees
        else:
            fees = (max(account.late_fees, key=lambda fee: (fee.charged_on, fee.cents)),)
        waived = sum(fee.cents for fee in fees)
        if waived < account.balance:
            return Waiver(Money(waived, f"late_fee_waiver.{rule.name}"), fees)
    return None


def _amount_due(
    policy: Policy, account: AccountState, channel: Channel, today: datetime.date, option: str
) -> tuple[Money, Waiver | None]:
    waiver = _waiver(policy, account, channel, today, option)
    if waiver is None:
        return Money(account.balance, "balance"), None
    rule = f"balance less {waiver.waived.rule}"
    return Money(account.balance - waiver.waived.cents, rule), waiver


def _quote(
    context: tuple[Policy, AccountState, Channel],
    kind: Kind,
    amount: Money,
    waiver: Waiver | None = None,
    overridden: tuple[str, ...] = (),
) -> Quote:
    policy, account, channel = context
    fee = convenience_fee(policy, channel, amount.cents, account.hardship)
    total = Money(amount.cents + fee.cents, "amount plus fee")
    return Quote(kind, amount, fee, total, waiver, overridden)


def _limits(policy: Policy, account: AccountState, full: Money) -> AmountLimits | None:
    rule = policy.other_amount
    lowest = Money(rule.min_cents, "other_amount.min_cents")
    if rule.at_least_minimum_due and account.minimum_due > rule.min_cents:
        lowest = Money(account.minimum_due, "minimum_due")
    highest = Money(full.cents, "pay_in_full")
    if rule.max_cents is not None and rule.max_cents < full.cents:
        highest = Money(rule.max_cents, "other_amount.max_cents")
    return AmountLimits(lowest, highest) if lowest.cents <= highest.cents else None


def payment_options(
    policy: Policy, account: AccountState, channel: Channel, today: datetime.date
) -> PaymentOptions:
    """The options offered to pay ``account`` through ``channel`` today."""
    if account.balance == 0:
        raise NothingToPayError()
    context = (policy, account, channel)
    full_amount, full_waiver = _amount_due(policy, account, channel, today, "full")
    full = _quote(context, Kind.FULL, full_amount, full_waiver)
    minimum = None
    if 0 < account.minimum_due < full_amount.cents:
        minimum = _quote(context, Kind.MINIMUM, Money(account.minimum_due, "minimum_due"))
    other = _limits(policy, account, full_amount)
    plans: list[Plan] = []
    unavailable = _plan_closed(policy, account)
    if unavailable is None and policy.plan is not None:
        amount, waiver = _amount_due(policy, account, channel, today, "plan")
        for count in range(policy.plan.min_instalments, policy.plan.max_instalments + 1):
            broken = _plan_breaks(policy, amount, count, today, today)
            if not broken:
                plans.append(_plan(context, amount, waiver, count, today, ()))
            elif count == policy.plan.min_instalments:
                unavailable = broken[0][1]
    return PaymentOptions(
        policy, account, channel, today, full, minimum, other, tuple(plans), unavailable
    )


def check_amount(options: PaymentOptions, cents: int, override: Override | None = None) -> Quote:
    """The quote for paying ``cents`` today, or :class:`AmountError` naming the limit broken."""
    if type(cents) is not int or cents <= 0:
        raise AmountError("the amount must be a whole number of cents above zero", "amount")
    full = options.full
    if cents == full.amount.cents:
        return full
    if options.minimum is not None and cents == options.minimum.amount.cents:
        return options.minimum
    symbol = options.policy.currency_symbol
    if cents > full.amount.cents:
        raise AmountError(
            f"{dollars(cents, symbol)} is more than the {dollars(full.amount.cents, symbol)}"
            " that pays in full (pay_in_full)",
            "pay_in_full",
        )
    limits = options.other
    context = (options.policy, options.account, options.channel)
    if limits is None:
        limit = "other_amount.min_cents"
        message = f"only paying in full ({dollars(full.amount.cents, symbol)}) is offered"
        message += f" for this balance ({limit})"
    elif limits.lowest.cents <= cents <= limits.highest.cents:
        rule = f"other_amount: {dollars(limits.lowest.cents, symbol)}"
        rule += f" to {dollars(limits.highest.cents, symbol)}"
        return _quote(context, Kind.OTHER, Money(cents, rule))
    elif cents < limits.lowest.cents:
        limit = limits.lowest.rule
        message = f"{dollars(cents, symbol)} is below the lowest amount, "
        message += f"{dollars(limits.lowest.cents, symbol)} ({limit})"
    else:
        limit = limits.highest.rule
        message = f"{dollars(cents, symbol)} is above the highest amount, "
        message += f"{dollars(limits.highest.cents, symbol)} ({limit})"
    if override is None:
        raise AmountError(message, limit)
    _check_override(options.policy, override)
    return _quote(context, Kind.OTHER, Money(cents, "supervisor_override"), None, (limit,))


def _plan_closed(policy: Policy, account: AccountState) -> str | None:
    if policy.plan is None:
        return "payment plans are off (the policy has no [plan])"
    if account.has_plan:
        return "the account already has a payment plan (plan.existing_plan)"
    return None


def _plan_breaks(
    policy: Policy, amount: Money, count: int, start: datetime.date, today: datetime.date
) -> list[tuple[str, str]]:
    """The limits a plan breaks that an override may lift, with their messages."""
    rule, symbol = policy.plan, policy.currency_symbol
    assert rule is not None
    broken = []
    if count > rule.max_instalments:
        limit = "plan.max_instalments"
        broken.append((limit, f"a plan has at most {rule.max_instalments} instalments ({limit})"))
    if (start - today).days > rule.first_within_days:
        limit = "plan.first_within_days"
        text = f"the first instalment is due within {rule.first_within_days} days ({limit})"
        broken.append((limit, text))
    if amount.cents < rule.min_balance_cents:
        limit = "plan.min_balance_cents"
        least = dollars(rule.min_balance_cents, symbol)
        text = f"a plan needs a balance of at least {least} ({limit})"
        broken.append((limit, text))
    if amount.cents // count < rule.min_instalment_cents:
        limit = "plan.min_instalment_cents"
        text = f"an instalment is at least {dollars(rule.min_instalment_cents, symbol)} ({limit})"
        broken.append((limit, text))
    return broken


def _plan(
    context: tuple[Policy, AccountState, Channel],
    amount: Money,
    waiver: Waiver | None,
    count: int,
    start: datetime.date,
    overridden: tuple[str, ...],
) -> Plan:
    policy, account, channel = context
    assert policy.plan is not None
    symbol = policy.currency_symbol
    shares = split(amount.cents, count)
    remainder = amount.cents % count
    instalments = []
    fee_rule = ""
    dates = due_dates(policy.plan, start, count)
    for number, (due, cents) in enumerate(zip(dates, shares, strict=True), 1):
        rule = f"plan.instalment: {number} of {count} of {dollars(amount.cents, symbol)}"
        if number <= remainder:
            rule += ", +1 remainder cent"
        fee = convenience_fee(policy, channel, cents, account.hardship)
        fee_rule = fee.rule
        total = Money(cents + fee.cents, "amount plus fee")
        instalments.append(Instalment(number, due, Money(cents, rule), fee, total))
    fees = sum(instalment.fee.cents for instalment in instalments)
    return Plan(
        tuple(instalments),
        amount,
        Money(fees, f"{fee_rule}, per instalment"),
        Money(amount.cents + fees, "amount plus fee"),
        "supervisor_override" if overridden else "plan",
        waiver,
        overridden,
    )


def choose_plan(
    options: PaymentOptions,
    instalments: int,
    start: datetime.date | None = None,
    override: Override | None = None,
) -> Plan:
    """The plan of ``instalments`` from ``start`` (today if None), or :class:`PlanError`."""
    policy, account, today = options.policy, options.account, options.today
    closed = _plan_closed(policy, account)
    if closed is not None:
        raise PlanError(closed, "plan")
    rule = policy.plan
    assert rule is not None  # _plan_closed says so when it is None
    start = today if start is None else start
    if type(instalments) is not int or instalments < rule.min_instalments:
        limit = "plan.min_instalments"
        raise PlanError(f"a plan has at least {rule.min_instalments} instalments ({limit})", limit)
    if start < today:
        raise PlanError("a plan cannot start before today", "plan.start")
    amount, waiver = _amount_due(policy, account, options.channel, today, "plan")
    broken = _plan_breaks(policy, amount, instalments, start, today)
    if broken and override is None:
        raise PlanError(broken[0][1], broken[0][0])
    if override is not None and broken:
        hard = _check_override(policy, override)
        if instalments > min(hard.max_instalments, amount.cents):
            limit = "override.max_instalments"
            most = min(hard.max_instalments, amount.cents)
            raise PlanError(f"even an override allows at most {most} instalments ({limit})", limit)
        if (start - today).days > hard.max_first_within_days:
            limit = "override.max_first_within_days"
            text = "even an override needs the first instalment within "
            raise PlanError(f"{text}{hard.max_first_within_days} days ({limit})", limit)
    context = (policy, account, options.channel)
    return _plan(context, amount, waiver, instalments, start, tuple(limit for limit, _ in broken))


def verify_override(policy: Policy, code: str) -> Override:
    """An :class:`Override` when ``code`` matches the policy's hash; CPU-heavy, run in a thread."""
    if policy.override is None:
        raise OverrideError("supervisor overrides are off (the policy has no override.code_hash)")
    stored = policy.override.code_hash
    # Derived for any code, well-formed or not, so a refusal takes as long either way.
    if not hmac.compare_digest(scrypt_key(code, stored), stored.key):
        raise OverrideError("the supervisor override code is wrong")
    return Override(stored, _ISSUED)


def _check_override(policy: Policy, override: Override) -> policy_load.OverrideRule:
    if policy.override is None or override.code_hash != policy.override.code_hash:
        raise OverrideError("the override was verified against another policy")
    return policy.override
