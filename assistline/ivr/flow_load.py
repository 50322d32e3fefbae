"""Loading IVR flows from TOML files, checked whole before a call ever runs them.

A flow is one TOML file; its name is the file's stem (``payment.toml`` is
flow ``payment``). :func:`load_flows` loads every ``*.toml`` in a directory
and checks that ``goto`` steps name flows that exist. Every mistake is a
:class:`~assistline.ivr.flow.FlowError` naming the file, the step and the
field, e.g. ``flows/payment.toml: step "ask_zip": field "max_digits": must
be ≥ min_digits (5)``. ``flows/example.toml`` beside this module shows every
step type.

The file::

    description = "Pay a balance"       # optional
    inputs = ["account"]                # variables the application must give
    [variables]                         # starting values (optional)
    attempts = 0
    [[step]]                            # the steps, in order; the first starts
    name = "welcome"
    type = "say"
    text = "Your balance is {balance:currency}."

Steps are an ordered ``[[step]]`` array rather than ``[steps.<name>]``
tables so that the file reads top to bottom as the call goes, a step can
fall through to the next one, and a duplicated name is our error (which
names the step) rather than a TOML syntax error. Each step has ``name``,
``type`` and the fields of its type; a field the type lacks is an error, so
a typo never passes. Where a step goes on to is ``next``; when a step that
needs one has none, it is the step after it in the file.

Step types and fields (``*`` required; seconds may be integers or floats):

- ``say``: text*, prompt_key, barge_in (true), next. ``text`` is literal
  words and ``{name:kind}`` placeholders, kind one of currency (int cents),
  number, ordinal, digits, date.
- ``play``: file* (a .wav path relative to the prompts directory),
  prompt_key, barge_in (true), next.
- ``menu``: prompt, options* (array of tables: digit*, next*, prompt, when),
  into (stores the key pressed), timeout (5), retries (2), reprompt,
  invalid_prompt, no_input_prompt, barge_in (true), no_match*. ``when`` is a
  condition: an option whose condition fails is not offered or accepted.
- ``collect``: prompt*, into*, min_digits (1), max_digits*, terminator
  ("#"; "" for none), first_digit_timeout (5), inter_digit_timeout (3),
  overall_timeout (none), pattern (a regular expression the digits must
  match whole), retries (2), reprompt, invalid_prompt, no_input_prompt,
  barge_in (true), next, on_failure*.
- ``branch``: cases* (array of conditions, each with next*), else*.
- ``set``: values (table of literals), copy (table of target = "source"),
  increment (array of names; an unset variable counts as 0), clear (array
  of names), next; applied in that order.
- ``fetch``: request* (the application's name for it, e.g.
  "account.verify"), args (variables sent), results (variables the answer
  may set), timeout (10), next, on_error*.
- ``payment``: amount* (a variable holding int cents), args, results,
  on_approved*, on_declined*, on_failed*, on_abandoned*.
- ``transfer``: queue or agent (exactly one), context (variables handed to
  the agent), prompt, barge_in (true). Ends the flow.
- ``hangup``: prompt (a goodbye), reason, barge_in (true). Ends the flow.
- ``goto``: flow* (another flow's name). Goes on at that flow's first step.

A prompt field is either text (said, like ``say``) or a table
``{ say = "…", key = "…" }`` / ``{ play = "x.wav", key = "…" }``. A
condition is a table with ``variable`` and one test: ``equals``,
``not_equals``, ``greater_than``, ``less_than`` (integers or dates),
``in`` (an array) or ``is_set`` (true or false).

A collect whose ``into`` names card data (``card_number``, ``pan``,
``cvv``, ``expiry``, ``security_code`` …) is refused: card details are
taken only by secure capture through a ``payment`` step, so they never sit
in a flow's variables, its transcript or the context an agent sees.

Beyond each field, the whole flow is checked: names are unique, every
target names a step, every step can be reached from the first (an
unreachable step is an error, not a warning: it is always a mistake and is
cheap to delete), and every variable a step reads is set somewhere, listed
in ``inputs`` or given in ``[variables]``. Whether it is set *before* it is
read depends on the call, so the engine checks that when it runs. Cycles are
allowed: retry loops are cycles.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path

from assistline.ivr.flow import (
    MENU_KEYS,
    PAYMENT_OUTCOMES,
    TESTS,
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
    Step,
    TransferStep,
    Value,
    check_gotos,
    targets,
)
from assistline.ivr.flow_fields import KEY, NAME, Table, type_name

#: The flows shipped with assistline (the documented example).
BUNDLED_FLOWS = Path(__file__).with_name("flows")
MAX_DIGITS = 64
MAX_RETRIES = 10
_REQUEST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
_KEY_NAMES = {"*": "star", "#": "pound"}
# Variable names a collect must not fill: card data goes through secure capture only.
_CARD_DATA = re.compile(
    r"(^|_)(pan|cvv2?|cvc2?|cid|expiry|expiration)(_|$)|card_?(number|no|num)|security_?code"
)

_STEP_FIELDS = {
    "say": ("text", "prompt_key", "barge_in", "next"),
    "play": ("file", "prompt_key", "barge_in", "next"),
    "menu": (
        "prompt", "options", "into", "timeout", "retries", "reprompt", "invalid_prompt",
        "no_input_prompt", "barge_in", "no_match",
    ),
    "collect": (
        "prompt", "into", "min_digits", "max_digits", "terminator", "first_digit_timeout",
        "inter_digit_timeout", "overall_timeout", "pattern", "retries", "reprompt",
        "invalid_prompt", "no_input_prompt", "barge_in", "next", "on_failure",
    ),
    "branch": ("cases", "else"),
    "set": ("values", "copy", "increment", "clear", "next"),
    "fetch": ("request", "args", "results", "timeout", "next", "on_error"),
    "payment": ("amount", "args", "results", *(f"on_{o}" for o in PAYMENT_OUTCOMES)),
    "transfer": ("queue", "agent", "context", "prompt", "barge_in"),
    "hangup": ("prompt", "reason", "barge_in"),
    "goto": ("flow",),
}  # fmt: skip


def load_flow(path: Path | str) -> Flow:
    """The flow in the TOML file at ``path``, checked; FlowError names what is wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise FlowError(f"{path}: cannot be read: {reason}") from None
    return parse_flow(text, name=path.stem, source=str(path))


def load_flows(directory: Path | str) -> dict[str, Flow]:
    """Every ``*.toml`` flow in ``directory`` by name, with ``goto`` targets checked."""
    flows = {path.stem: load_flow(path) for path in sorted(Path(directory).glob("*.toml"))}
    check_gotos(flows)
    return flows


def parse_flow(text: str, *, name: str, source: str) -> Flow:
    """The flow ``name`` written in TOML ``text``; ``source`` (its path) starts every message."""
    if not NAME.match(name):
        raise FlowError(f'{source}: "{name}" is not a flow name: use letters, digits and _')
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise FlowError(f"{source}: not valid TOML: {error}") from None
    return _Loader(name, source).flow(Table(document, source))


class _Loader:
    """One file's loading: steps, then the checks across steps."""

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.assigned: set[str] = set()
        self.reads: list[tuple[Table, str, str]] = []  # (table, field, variable)
        self.names_seen: set[str] = set()

    def flow(self, top: Table) -> Flow:
        top.only(("description", "inputs", "variables", "step"), "a flow")
        description = top.text("description", "")
        inputs = top.names("inputs")
        defaults: list[tuple[str, Value]] = []
        if top.has("variables"):
            variables = Table(top.table("variables"), self.source, "variables.")
            for variable in variables.data:
                if not NAME.match(variable):
                    raise variables.error(variable, "is not a name: use letters, digits and _")
                defaults.append((variable, variables.value(variable)))
        self.assigned.update(inputs, (variable for variable, _ in defaults))
        if not top.has("step"):
            raise top.error("step", "a flow needs at least one step")
        tables = [self._step_table(i, data) for i, data in enumerate(top.tables("step"))]
        names = [table.text("name") for table in tables]
        steps = tuple(
            self.step(table, names[i + 1] if i + 1 < len(names) else None)
            for i, table in enumerate(tables)
        )
        flow = Flow(self.name, self.source, steps, inputs, tuple(defaults), description)
        self._check_targets(flow, tables)
        self._check_reads()
        return flow

    def _step_table(self, index: int, data: Mapping[str, object]) -> Table:
        table = Table(data, f"{self.source}: step #{index + 1}")
        name = table.name("name")
        table.where = f'{self.source}: step "{name}"'
        if name in self.names_seen:
            raise table.error("name", "an earlier step has the same name")
        self.names_seen.add(name)
        return table

    def step(self, table: Table, following: str | None) -> Step:
        """One step; ``following`` is the next step's name (where ``next`` defaults to)."""
        kind = table.text("type")
        if kind not in _STEP_FIELDS:
            raise table.error("type", f'unknown step type "{kind}"; use ' + ", ".join(_STEP_FIELDS))
        table.only(("name", "type", *_STEP_FIELDS[kind]), f"a {kind} step")
        name = table.text("name")
        key = f"{self.name}.{name}"
        if kind in ("say", "play"):
            return self._prompt_step(table, key, following)
        if kind == "menu":
            return self._menu(table, key)
        if kind == "collect":
            return self._collect(table, key, following)
        if kind == "branch":
            cases = []
            for i, data in enumerate(table.tables("cases")):
                case = Table(data, table.where, f"cases[{i}].")
                cases.append(Case(self._condition(case, "next"), case.name("next")))
            return BranchStep(name, tuple(cases), table.name("else"))
        if kind == "set":
            return self._set(table, following)
        if kind == "fetch":
            return self._fetch(table, following)
        if kind == "payment":
            return self._payment(table)
        if kind in ("transfer", "hangup"):
            return self._ending(table, key, kind)
        return GotoStep(name, table.name("flow"))

    def _next(self, table: Table, following: str | None) -> str:
        if not table.has("next") and following is None:
            raise table.error("next", "required on the last step")
        return table.name("next", following if following is not None else "")

    def _prompt_fields(self, table: Table, key: str, field: str) -> Prompt | None:
        prompt = table.prompt(field, key)
        if prompt is not None:
            self._reads_template(table, field, prompt)
        return prompt

    def _reads_template(self, table: Table, field: str, prompt: Prompt) -> None:
        for part in prompt.text:
            if isinstance(part, Placeholder):
                self.reads.append((table, field, part.variable))

    def _prompt_step(self, table: Table, key: str, following: str | None) -> PromptStep:
        if table.has("prompt_key"):
            key = table.text("prompt_key")
            if not KEY.match(key):
                raise table.error("prompt_key", f'"{key}" is not a prompt key')
        if table.text("type") == "say":
            prompt = Prompt(key, text=table.template("text", table.text("text")))
            self._reads_template(table, "text", prompt)
        else:
            prompt = Prompt(key, file=table.file("file"))
        return PromptStep(
            table.text("name"), prompt, table.flag("barge_in", True), self._next(table, following)
        )

    def _retry_prompts(self, table: Table, key: str) -> tuple[Prompt | None, ...]:
        return tuple(
            self._prompt_fields(table, f"{key}.{role}", field)
            for field, role in (
                ("reprompt", "reprompt"),
                ("invalid_prompt", "invalid"),
                ("no_input_prompt", "no_input"),
            )
        )

    def _menu(self, table: Table, key: str) -> MenuStep:
        prompt = self._prompt_fields(table, key, "prompt")
        options: list[Option] = []
        for i, data in enumerate(table.tables("options")):
            entry = Table(data, table.where, f"options[{i}].")
            entry.only(("digit", "next", "prompt", "when"), "a menu option")
            digit = entry.text("digit")
            if len(digit) != 1 or digit not in MENU_KEYS:
                raise entry.error("digit", f'"{digit}" is not a key: use one of 0-9, * or #')
            if any(option.digit == digit for option in options):
                raise entry.error("digit", f'key "{digit}" has an earlier option')
            when = None
            if entry.has("when"):
                condition = Table(entry.table("when"), table.where, f"{entry.prefix}when.")
                when = self._condition(condition)
            option_key = f"{key}.{_KEY_NAMES.get(digit, digit)}"
            option_prompt = self._prompt_fields(entry, option_key, "prompt")
            options.append(Option(digit, entry.name("next"), option_prompt, when))
        if prompt is None and all(option.prompt is None for option in options):
            raise table.error("prompt", "required when no option has a prompt")
        into = table.name("into") if table.has("into") else None
        self.assigned.update([into] if into else [])
        reprompt, invalid, no_input = self._retry_prompts(table, key)
        return MenuStep(
            table.text("name"), prompt, tuple(options), into,
            table.seconds("timeout", 5.0), table.integer("retries", 0, MAX_RETRIES, 2),
            reprompt, invalid, no_input, table.flag("barge_in", True), table.name("no_match"),
        )  # fmt: skip

    def _collect(self, table: Table, key: str, following: str | None) -> CollectStep:
        prompt = self._prompt_fields(table, key, "prompt")
        if prompt is None:
            raise table.error("prompt", "required")
        into = table.name("into")
        if _CARD_DATA.search(into.lower()):
            raise table.error(
                "into",
                f'"{into}" names card data: a payment step takes card details, a collect never',
            )
        self.assigned.add(into)
        low = table.integer("min_digits", 1, MAX_DIGITS, 1)
        high = table.integer("max_digits", 1, MAX_DIGITS)
        if high < low:
            raise table.error("max_digits", f"must be ≥ min_digits ({low})")
        terminator = table.text("terminator", "#")
        if terminator and (len(terminator) != 1 or terminator not in MENU_KEYS):
            raise table.error("terminator", f'"{terminator}" is not a key: use 0-9, *, # or ""')
        pattern = None
        if table.has("pattern"):
            try:
                pattern = re.compile(table.text("pattern"))
            except re.error as error:
                raise table.error("pattern", f"not a regular expression: {error}") from None
        reprompt, invalid, no_input = self._retry_prompts(table, key)
        return CollectStep(
            table.text("name"), prompt, into, low, high, terminator,
            table.seconds("first_digit_timeout", 5.0),
            table.seconds("inter_digit_timeout", 3.0),
            table.seconds("overall_timeout") if table.has("overall_timeout") else None, pattern,
            table.integer("retries", 0, MAX_RETRIES, 2), reprompt, invalid, no_input,
            table.flag("barge_in", True), self._next(table, following), table.name("on_failure"),
        )  # fmt: skip

    def _condition(self, table: Table, *extra: str) -> Condition:
        table.only(("variable", *TESTS, *extra), "a condition")
        variable = table.name("variable")
        self.reads.append((table, "variable", variable))
        given = [test for test in TESTS if table.has(test)]
        if len(given) != 1:
            raise table.error("variable", "give exactly one test: " + ", ".join(TESTS))
        test = given[0]
        value: Value | tuple[Value, ...]
        if test == "is_set":
            value = table.flag(test)
        elif test == "in":
            items = table.raw(test)
            if not isinstance(items, list) or not items:
                raise table.error(test, f"must be a non-empty array, not {type_name(items)}")
            value = tuple(table.as_value(test, item) for item in items)
        else:
            value = table.value(test)
            if test in ("greater_than", "less_than") and isinstance(value, str | bool):
                raise table.error(test, f"must be an integer or a date, not {type_name(value)}")
        return Condition(variable, test, value)

    def _set(self, table: Table, following: str | None) -> SetStep:
        values: list[tuple[str, Value]] = []
        copies: list[tuple[str, str]] = []
        for field in ("values", "copy"):
            if not table.has(field):
                continue
            inner = Table(table.table(field), table.where, f"{field}.")
            for variable in inner.data:
                if not NAME.match(variable):
                    raise inner.error(variable, "is not a name: use letters, digits and _")
                if field == "values":
                    values.append((variable, inner.value(variable)))
                else:
                    copies.append((variable, inner.name(variable)))
                    self.reads.append((inner, variable, copies[-1][1]))
        increment, clear = table.names("increment"), table.names("clear")
        if not (values or copies or increment or clear):
            raise table.error("values", "a set step needs values, copy, increment or clear")
        self.assigned.update(name for name, _ in values)
        self.assigned.update(name for name, _ in copies)
        self.assigned.update(increment)
        self.reads.extend((table, "clear", variable) for variable in clear)
        return SetStep(
            table.text("name"), tuple(values), tuple(copies), increment, clear,
            self._next(table, following),
        )  # fmt: skip

    def _request(self, table: Table) -> str:
        request = table.text("request")
        if not _REQUEST.match(request):
            raise table.error("request", f'"{request}" is not a request name')
        return request

    def _fetch(self, table: Table, following: str | None) -> FetchStep:
        args, results = table.names("args"), table.names("results")
        self.reads.extend((table, "args", variable) for variable in args)
        self.assigned.update(results)
        return FetchStep(
            table.text("name"), self._request(table), args, results,
            table.seconds("timeout", 10.0), self._next(table, following),
            table.name("on_error"),
        )  # fmt: skip

    def _payment(self, table: Table) -> PaymentStep:
        amount = table.name("amount")
        args, results = table.names("args"), table.names("results")
        self.reads.append((table, "amount", amount))
        self.reads.extend((table, "args", variable) for variable in args)
        self.assigned.update(results)
        on = [table.name(f"on_{outcome}") for outcome in PAYMENT_OUTCOMES]
        return PaymentStep(table.text("name"), amount, args, results, *on)

    def _ending(self, table: Table, key: str, kind: str) -> TransferStep | HangupStep:
        prompt = self._prompt_fields(table, key, "prompt")
        barge_in = table.flag("barge_in", True)
        if kind == "hangup":
            return HangupStep(table.text("name"), prompt, table.text("reason", ""), barge_in)
        if table.has("queue") == table.has("agent"):
            raise table.error("queue", 'give exactly one of "queue" and "agent"')
        queue = table.text("queue") if table.has("queue") else None
        agent = table.text("agent") if table.has("agent") else None
        context = table.names("context")
        self.reads.extend((table, "context", variable) for variable in context)
        return TransferStep(table.text("name"), queue, agent, context, prompt, barge_in)

    def _check_targets(self, flow: Flow, tables: list[Table]) -> None:
        names = {step.name for step in flow.steps}
        for step, table in zip(flow.steps, tables, strict=True):
            for field, target in targets(step):
                if target not in names:
                    raise FlowError(f'{table.where}: field "{field}": no step is named "{target}"')
        reached = {flow.first.name}
        todo = [flow.first]
        while todo:
            for _, target in targets(todo.pop()):
                if target not in reached:
                    reached.add(target)
                    todo.append(flow.step(target))
        for step in flow.steps:
            if step.name not in reached:
                raise FlowError(
                    f'{self.source}: step "{step.name}": unreachable from the first step '
                    f'"{flow.first.name}"'
                )

    def _check_reads(self) -> None:
        for table, field, variable in self.reads:
            if variable not in self.assigned:
                raise table.error(
                    field,
                    f'variable "{variable}" is never set: set it in a step, or list it in '
                    "inputs or [variables]",
                )
