"""The shipped payment line flow, run with the flow runner: exact prompts and outcomes."""

from __future__ import annotations

import datetime

from assistline.ivr.flow_load import BUNDLED_FLOWS, load_flow
from assistline.ivr.flow_messages import Ending, Outcome, Transfer
from assistline.ivr.flow_runner import Item, answer, hang_up, pay, press, run_flow, wait

FLOW = load_flow(BUNDLED_FLOWS / "payment_line.toml")
CALLER = {"caller_number": "15550100"}
VERIFIED = answer(
    "account.verify",
    verified=True,
    locked=False,
    balance=42_10,
    minimum_due=25_00,
    due_date=datetime.date(2026, 12, 1),
)
OPTIONS = answer(
    "ar.options",
    full=42_10,
    full_fee=0,
    has_minimum=True,
    minimum=25_00,
    has_other=True,
    other_min=5_00,
    other_max=42_10,
)


def test_a_verified_caller_pays_in_full_and_asks_for_a_receipt() -> None:
    run = run_flow(
        FLOW,
        [
            press("123456#"),
            press("94105"),
            VERIFIED,
            OPTIONS,
            press("1"),
            answer("ar.quote", amount_ok=True, amount=42_10, fee=1_05, total=43_15),
            pay("approved", confirmation="12345678", last4="4242"),
            press("1"),
            answer("receipt.request", receipt_requested=True),
        ],
        variables=CALLER,
    )
    assert run.prompts == [
        "payment_line.welcome",
        "payment_line.ask_account",
        "payment_line.ask_zip",
        "payment_line.say_balance",
        "payment_line.choose.1",
        "payment_line.choose.2",
        "payment_line.choose.3",
        "payment_line.choose.0",
        "payment_line.choose.9",
        "payment_line.say_total",
        "payment_line.approved",
        "payment_line.offer_receipt.1",
        "payment_line.offer_receipt.2",
        "payment_line.offer_receipt.9",
        "payment_line.receipt_sent",
        "payment_line.goodbye",
    ]
    said = run.said
    assert "Your balance is $42.10, due on 2026-12-01." in said
    assert "You are paying $42.10, with a fee of $1.05: $43.15 in all. Now, your card." in said
    assert run.variables["amount"] == 42_10 and run.variables["by"] == "sms"
    assert run.outcome == Outcome(Ending.HUNG_UP, "payment_line", "goodbye", "done")


def test_three_wrong_answers_go_to_an_agent_and_a_locked_account_is_refused() -> None:
    wrong = answer("account.verify", verified=False, locked=False)
    script: list[Item] = []
    for _ in range(3):
        script += [press("123456#"), press("00000"), wrong]
    run = run_flow(FLOW, script, variables=CALLER)
    assert run.prompts.count("payment_line.not_found") == 2
    assert run.outcome is not None
    assert (run.outcome.ending, run.outcome.step) == (Ending.TRANSFERRED, "to_agent_unverified")
    transfer = [a for a in run.actions if isinstance(a, Transfer)]
    assert transfer == [Transfer("collections", None, {"caller_number": "15550100"})]
    locked = run_flow(
        FLOW,
        [press("123456#"), press("00000"), answer("account.verify", verified=False, locked=True)],
        variables=CALLER,
    )
    assert locked.outcome == Outcome(Ending.HUNG_UP, "payment_line", "locked", "account locked")


def test_another_amount_outside_the_limits_is_refused_then_a_decline_offers_the_menu_again() -> (
    None
):
    run = run_flow(
        FLOW,
        [
            press("123456#"),
            press("94105"),
            VERIFIED,
            OPTIONS,
            press("3"),
            press("100#"),
            answer("ar.quote", amount_ok=False),
            press("2"),
            answer("ar.quote", amount_ok=True, amount=25_00, fee=0, total=25_00),
            pay("declined"),
            press("0"),
        ],
        variables=CALLER,
    )
    assert "payment_line.amount_refused" in run.prompts
    assert run.prompts.count("payment_line.declined") == 1
    assert run.outcome is not None and run.outcome.step == "to_agent"
    context = [a.context for a in run.actions if isinstance(a, Transfer)][0]
    assert context["account"] == "123456" and context["balance"] == 42_10


def test_a_caller_who_hangs_up_during_the_payment_ends_the_flow() -> None:
    script: list[Item] = [press("123456#"), press("94105"), VERIFIED, OPTIONS, press("1")]
    script += [answer("ar.quote", amount_ok=True, amount=42_10, fee=0, total=42_10), wait(1)]
    run = run_flow(FLOW, [*script, hang_up()], variables=CALLER)
    assert run.outcome is not None and run.outcome.ending is Ending.CALLER_HUNG_UP
