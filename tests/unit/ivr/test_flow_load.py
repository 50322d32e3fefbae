"""Loading flows: the example's exact model, and one exact message per kind of mistake."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from assistline.ivr.flow import (
    BranchStep,
    Case,
    CollectStep,
    Condition,
    FetchStep,
    Flow,
    FlowError,
    GotoStep,
    HangupStep,
    MenuStep,
    Option,
    PaymentStep,
    Placeholder,
    Prompt,
    PromptStep,
    SetStep,
    TransferStep,
    targets,
)
from assistline.ivr.flow_fields import parse_template
from assistline.ivr.flow_load import BUNDLED_FLOWS, load_flow, load_flows, parse_flow

SOURCE = "flows/pay.toml"


def flow(text: str) -> Flow:
    return parse_flow(textwrap.dedent(text), name="pay", source=SOURCE)


def error(text: str) -> str:
    with pytest.raises(FlowError) as raised:
        flow(text)
    return str(raised.value)


def test_the_example_loads_with_every_step_type() -> None:
    example = load_flow(BUNDLED_FLOWS / "example.toml")
    assert (example.name, example.source) == ("example", str(BUNDLED_FLOWS / "example.toml"))
    assert example.inputs == ("caller_number",)
    assert example.defaults == (("attempts", 0),)
    kinds = {type(step) for step in example.steps}
    assert kinds == {
        PromptStep, MenuStep, CollectStep, BranchStep, SetStep, FetchStep,
        PaymentStep, TransferStep, HangupStep, GotoStep,
    }  # fmt: skip
    assert example.first == PromptStep(
        "welcome", Prompt("example.welcome", file="welcome.wav"), False, "ask_account"
    )
    assert example.step("ask_zip") == CollectStep(
        name="ask_zip",
        prompt=Prompt(
            "example.ask_zip",
            text=("Please enter the five digit ZIP code of your billing address.",),
        ),
        into="zip",
        min_digits=5,
        max_digits=5,
        terminator="",
        first_digit_timeout=5.0,
        inter_digit_timeout=3.0,
        overall_timeout=15.0,
        pattern=re.compile("[0-9]{5}"),
        retries=2,
        reprompt=Prompt("example.ask_zip.reprompt", text=("Your five digit ZIP code, please.",)),
        invalid_prompt=Prompt("example.ask_zip.invalid", text=("Sorry, that is not a ZIP code.",)),
        no_input_prompt=None,
        barge_in=True,
        next="verify",
        on_failure="to_agent",
    )
    menu = example.step("main_menu")
    assert isinstance(menu, MenuStep)
    assert menu.options[1] == Option(
        "2",
        "pay_minimum",
        Prompt(
            "example.main_menu.2",
            text=(
                "To pay the minimum due of",
                Placeholder("minimum_due", "currency"),
                ", press 2.",
            ),
        ),
        Condition("minimum_due", "is_set", True),
    )
    assert [option.prompt.key for option in menu.options if option.prompt] == [
        "example.main_menu.1",
        "example.main_menu.2",
        "example.main_menu.0",
        "example.main_menu.star",
    ]
    assert example.step("check_verified") == BranchStep(
        "check_verified",
        (Case(Condition("verified", "equals", True), "say_balance"),),
        "count_attempt",
    )
    assert example.step("count_attempt") == SetStep(
        "count_attempt", (), (), ("attempts",), ("account", "zip"), "too_many"
    )
    assert example.step("take_payment") == PaymentStep(
        "take_payment", "amount", ("account",), ("confirmation", "last4"),
        "thanks", "declined", "to_agent", "goodbye",
    )  # fmt: skip
    assert example.step("goodbye") == HangupStep(
        "goodbye",
        Prompt("common.goodbye", text=("Thank you for calling. Goodbye.",)),
        "done",
        True,
    )
    assert targets(example.step("verify")) == (("next", "check_verified"), ("on_error", "to_agent"))


def test_a_step_without_next_goes_on_to_the_step_after_it() -> None:
    loaded = flow(
        """
        [[step]]
        name = "a"
        type = "say"
        text = "One."

        [[step]]
        name = "b"
        type = "hangup"
        """
    )
    assert loaded.first == PromptStep("a", Prompt("pay.a", text=("One.",)), True, "b")


def test_templates_are_words_and_typed_placeholders() -> None:
    assert parse_template("Pay {amount:currency} by {due:date}.") == (
        "Pay",
        Placeholder("amount", "currency"),
        "by",
        Placeholder("due", "date"),
        ".",
    )
    assert parse_template("{n:number}{o:ordinal}") == (
        Placeholder("n", "number"),
        Placeholder("o", "ordinal"),
    )


def test_load_flows_loads_a_directory_and_checks_goto_targets(tmp_path: Path) -> None:
    (tmp_path / "main.toml").write_text('[[step]]\nname = "go"\ntype = "goto"\nflow = "pay"\n')
    (tmp_path / "pay.toml").write_text('[[step]]\nname = "bye"\ntype = "hangup"\n')
    (tmp_path / "notes.txt").write_text("not a flow")
    flows = load_flows(tmp_path)
    assert sorted(flows) == ["main", "pay"]
    assert flows["main"].first == GotoStep("go", "pay")
    (tmp_path / "pay.toml").unlink()
    with pytest.raises(FlowError) as raised:
        load_flows(tmp_path)
    assert str(raised.value) == (
        f'{tmp_path / "main.toml"}: step "go": field "flow": no flow is named "pay"'
    )


def test_the_bundled_flows_load_together() -> None:
    assert list(load_flows(BUNDLED_FLOWS)) == ["example", "payment_line"]


def test_a_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    with pytest.raises(FlowError) as raised:
        load_flow(tmp_path / "gone.toml")
    assert (
        str(raised.value) == f"{tmp_path / 'gone.toml'}: cannot be read: No such file or directory"
    )


def test_a_file_name_must_be_a_flow_name(tmp_path: Path) -> None:
    path = tmp_path / "pay-now.toml"
    path.write_text('[[step]]\nname = "bye"\ntype = "hangup"\n')
    with pytest.raises(FlowError) as raised:
        load_flow(path)
    assert str(raised.value) == f'{path}: "pay-now" is not a flow name: use letters, digits and _'


HANGUP = '\n[[step]]\nname = "bye"\ntype = "hangup"\n'
ASK = """
[[step]]
name = "ask_zip"
type = "collect"
prompt = "ZIP?"
into = "zip"
min_digits = 5
max_digits = 5
on_failure = "bye"
"""
MENU = """
[[step]]
name = "menu"
type = "menu"
prompt = "Choose."
no_match = "bye"
options = [{ digit = "1", next = "bye" }]
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "[[step]\n",
            f"{SOURCE}: not valid TOML: Expected ']]' at the end of an array declaration "
            "(at line 1, column 7)",
            id="toml syntax",
        ),
        pytest.param(
            'colour = "red"\n' + HANGUP,
            f'{SOURCE}: field "colour": not a field of a flow',
            id="unknown flow field",
        ),
        pytest.param(
            'description = "x"\n',
            f'{SOURCE}: field "step": a flow needs at least one step',
            id="no steps",
        ),
        pytest.param(
            "[[step]]\n" + 'type = "hangup"\n',
            f'{SOURCE}: step #1: field "name": required',
            id="unnamed step",
        ),
        pytest.param(
            HANGUP + HANGUP,
            f'{SOURCE}: step "bye": field "name": an earlier step has the same name',
            id="duplicate name",
        ),
        pytest.param(
            '[[step]]\nname = "x"\ntype = "speak"\n',
            f'{SOURCE}: step "x": field "type": unknown step type "speak"; use say, play, menu, '
            "collect, branch, set, fetch, payment, transfer, hangup, goto",
            id="unknown step type",
        ),
        pytest.param(
            ASK.replace('into = "zip"', 'into = "zip"\ncolour = 1') + HANGUP,
            f'{SOURCE}: step "ask_zip": field "colour": not a field of a collect step',
            id="unknown step field",
        ),
        pytest.param(
            ASK.replace('into = "zip"\n', "") + HANGUP,
            f'{SOURCE}: step "ask_zip": field "into": required',
            id="missing field",
        ),
        pytest.param(
            ASK.replace('into = "zip"', 'into = "card_number"') + HANGUP,
            f'{SOURCE}: step "ask_zip": field "into": "card_number" names card data: a payment '
            "step takes card details, a collect never",
            id="collect into card data",
        ),
        pytest.param(
            ASK.replace("max_digits = 5", 'max_digits = "5"') + HANGUP,
            f'{SOURCE}: step "ask_zip": field "max_digits": must be an integer, not a string',
            id="wrong type",
        ),
        pytest.param(
            ASK.replace("max_digits = 5", "max_digits = true") + HANGUP,
            f'{SOURCE}: step "ask_zip": field "max_digits": must be an integer, not a boolean',
            id="boolean for an integer",
        ),
        pytest.param(
            ASK.replace("max_digits = 5", "max_digits = 4") + HANGUP,
            f'{SOURCE}: step "ask_zip": field "max_digits": must be ≥ min_digits (5)',
            id="min above max",
        ),
        pytest.param(
            ASK.replace("max_digits = 5", "max_digits = 65") + HANGUP,
            f'{SOURCE}: step "ask_zip": field "max_digits": must be 1..64, not 65',
            id="out of range",
        ),
        pytest.param(
            ASK.replace('on_failure = "bye"', 'on_failure = "nowhere"') + HANGUP,
            f'{SOURCE}: step "ask_zip": field "on_failure": no step is named "nowhere"',
            id="target naming no step",
        ),
        pytest.param(
            ASK,
            f'{SOURCE}: step "ask_zip": field "next": required on the last step',
            id="last step without next",
        ),
        pytest.param(
            ASK.replace('into = "zip"', 'into = "zip"\nterminator = "x"') + HANGUP,
            f'{SOURCE}: step "ask_zip": field "terminator": "x" is not a key: use 0-9, *, # or ""',
            id="bad terminator",
        ),
        pytest.param(
            ASK.replace('into = "zip"', 'into = "zip"\npattern = "[0-9"') + HANGUP,
            f'{SOURCE}: step "ask_zip": field "pattern": not a regular expression: '
            "unterminated character set at position 0",
            id="bad pattern",
        ),
        pytest.param(
            ASK.replace('into = "zip"', 'into = "zip"\nfirst_digit_timeout = 0') + HANGUP,
            f'{SOURCE}: step "ask_zip": field "first_digit_timeout": must be a number of '
            "seconds > 0, not 0",
            id="timeout not positive",
        ),
        pytest.param(
            ASK.replace('into = "zip"', 'into = "zip"\nretries = 11') + HANGUP,
            f'{SOURCE}: step "ask_zip": field "retries": must be 0..10, not 11',
            id="too many retries",
        ),
        pytest.param(
            MENU.replace('digit = "1"', 'digit = "11"') + HANGUP,
            f'{SOURCE}: step "menu": field "options[0].digit": "11" is not a key: use one of '
            "0-9, * or #",
            id="bad option key",
        ),
        pytest.param(
            MENU.replace(
                '{ digit = "1", next = "bye" }',
                '{ digit = "1", next = "bye" }, { digit = "1", next = "bye" }',
            )
            + HANGUP,
            f'{SOURCE}: step "menu": field "options[1].digit": key "1" has an earlier option',
            id="option key twice",
        ),
        pytest.param(
            MENU.replace('prompt = "Choose."\n', "") + HANGUP,
            f'{SOURCE}: step "menu": field "prompt": required when no option has a prompt',
            id="menu says nothing",
        ),
        pytest.param(
            MENU.replace('next = "bye" }', 'next = "bye", when = { variable = "v" } }') + HANGUP,
            f'{SOURCE}: step "menu": field "options[0].when.variable": give exactly one test: '
            "equals, not_equals, greater_than, less_than, in, is_set",
            id="condition without a test",
        ),
        pytest.param(
            '[[step]]\nname = "b"\ntype = "branch"\nelse = "bye"\n'
            'cases = [{ variable = "v", greater_than = "5", next = "bye" }]\n' + HANGUP,
            f'{SOURCE}: step "b": field "cases[0].greater_than": must be an integer or a date, '
            "not a string",
            id="ordering a string",
        ),
        pytest.param(
            '[[step]]\nname = "b"\ntype = "branch"\nelse = "bye"\n'
            'cases = [{ variable = "v", in = [], next = "bye" }]\n' + HANGUP,
            f'{SOURCE}: step "b": field "cases[0].in": must be a non-empty array, not an array',
            id="empty in",
        ),
        pytest.param(
            '[[step]]\nname = "b"\ntype = "branch"\nelse = "bye"\n'
            'cases = [{ variable = "unknown", is_set = true, next = "bye" }]\n' + HANGUP,
            f'{SOURCE}: step "b": field "cases[0].variable": variable "unknown" is never set: '
            "set it in a step, or list it in inputs or [variables]",
            id="variable never set",
        ),
        pytest.param(
            '[[step]]\nname = "s"\ntype = "say"\ntext = "You owe {balance}."\n' + HANGUP,
            f'{SOURCE}: step "s": field "text": "{{balance}}" is not a placeholder: write '
            "{name:kind}, kind one of currency, number, ordinal, digits, date",
            id="bad placeholder",
        ),
        pytest.param(
            '[[step]]\nname = "s"\ntype = "say"\ntext = "You owe {balance:currency"\n' + HANGUP,
            f'{SOURCE}: step "s": field "text": a "{{" or "}}" outside a placeholder {{name:kind}}',
            id="unclosed brace",
        ),
        pytest.param(
            '[[step]]\nname = "s"\ntype = "say"\ntext = " "\n' + HANGUP,
            f'{SOURCE}: step "s": field "text": must say something',
            id="empty text",
        ),
        pytest.param(
            '[[step]]\nname = "s"\ntype = "play"\nfile = "../secret.wav"\n' + HANGUP,
            f'{SOURCE}: step "s": field "file": "../secret.wav" must be a .wav path inside the '
            "prompts directory",
            id="file outside prompts",
        ),
        pytest.param(
            '[[step]]\nname = "s"\ntype = "hangup"\nprompt = { say = "Bye.", play = "bye.wav" }\n',
            f'{SOURCE}: step "s": field "prompt": give exactly one of "say" and "play"',
            id="prompt says and plays",
        ),
        pytest.param(
            '[[step]]\nname = "s"\ntype = "hangup"\nprompt = { say = "Bye.", key = "a/b" }\n',
            f'{SOURCE}: step "s": field "prompt.key": "a/b" is not a prompt key: use letters, '
            "digits, _ . -",
            id="bad prompt key",
        ),
        pytest.param(
            '[[step]]\nname = "t"\ntype = "transfer"\nqueue = "q"\nagent = "a"\n',
            f'{SOURCE}: step "t": field "queue": give exactly one of "queue" and "agent"',
            id="queue and agent",
        ),
        pytest.param(
            '[[step]]\nname = "s"\ntype = "set"\nnext = "bye"\n' + HANGUP,
            f'{SOURCE}: step "s": field "values": a set step needs values, copy, increment or '
            "clear",
            id="empty set",
        ),
        pytest.param(
            "[variables]\nrate = 1.5\n" + HANGUP,
            f'{SOURCE}: field "variables.rate": must be a string, an integer, a boolean or a '
            "date, not a float",
            id="float variable",
        ),
        pytest.param(
            '[[step]]\nname = "f"\ntype = "fetch"\nrequest = "a b"\non_error = "bye"\n' + HANGUP,
            f'{SOURCE}: step "f": field "request": "a b" is not a request name',
            id="bad request name",
        ),
        pytest.param(
            'inputs = ["ok", "not ok"]\n' + HANGUP,
            f"{SOURCE}: field \"inputs\": 'not ok' is not a name: use letters, digits and _",
            id="bad variable name",
        ),
        pytest.param(
            HANGUP + '[[step]]\nname = "orphan"\ntype = "hangup"\n',
            f'{SOURCE}: step "orphan": unreachable from the first step "bye"',
            id="unreachable step",
        ),
    ],
)
def test_each_mistake_is_named_with_file_step_and_field(text: str, message: str) -> None:
    assert error(text) == message


@pytest.mark.parametrize(
    "name",
    ["pan", "card_pan", "cvv", "cvc2", "expiry", "card_expiration", "cardnumber", "security_code"],
)
def test_a_collect_never_takes_card_data(name: str) -> None:
    assert "names card data" in error(ASK.replace('into = "zip"', f'into = "{name}"') + HANGUP)


@pytest.mark.parametrize("name", ["zip", "account", "card_last4", "pantry", "expected", "panel_id"])
def test_names_that_only_look_like_card_data_are_allowed(name: str) -> None:
    flow(ASK.replace('into = "zip"', f'into = "{name}"') + HANGUP)


def test_cycles_are_allowed() -> None:
    loaded = flow(ASK.replace('on_failure = "bye"', 'on_failure = "ask_zip"') + HANGUP)
    assert targets(loaded.first) == (("next", "bye"), ("on_failure", "ask_zip"))
