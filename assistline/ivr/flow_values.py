"""A call's variables at run time: reading them into prompts and conditions, strictly.

The loader proves that every variable a flow reads is set somewhere; only
the call can tell whether it is set *yet*, and whether it holds the type its
reader needs. Each function here takes ``error``, which makes the engine's
:class:`~assistline.ivr.flow.FlowError` naming the flow and the step, so a
message reads ``flow "pay": step "say_balance": variable "balance" is a
string; {balance:currency} needs integer cents``.

Types are exact: ``True`` is not the integer 1, ``"5"`` is not 5, and a
condition comparing a variable with a literal of another type is an error
rather than quietly false, because it is always a mistake in the flow (a
collected ``"1"`` compared with ``equals = 1``).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping

from assistline.ivr.flow import Condition, FlowError, Placeholder, Template, Value
from assistline.ivr.flow_fields import type_name
from assistline.ivr.utterance import Amount, Date, Digits, Number, Ordinal, Part, Utterance, Words

Variables = Mapping[str, Value]
ErrorAt = Callable[[str], FlowError]

_NEEDS = {
    "currency": "integer cents",
    "number": "an integer",
    "ordinal": "an integer",
    "digits": "digits",
    "date": "a date",
}


def is_value(value: object) -> bool:
    """Whether ``value`` may be a variable's: a str, an int, a bool or a date (not a datetime)."""
    return isinstance(value, str | int | datetime.date) and not isinstance(value, datetime.datetime)


def value_of(variables: Variables, variable: str, error: ErrorAt) -> Value:
    """The variable's value; an error naming it when it is not set."""
    if variable not in variables:
        raise error(f'variable "{variable}" is not set')
    return variables[variable]


def render(template: Template, variables: Variables, error: ErrorAt) -> Utterance:
    """A prompt's template with its placeholders' values, as the text-to-speech takes it."""
    return tuple(
        Words(part) if isinstance(part, str) else _part(part, variables, error) for part in template
    )


def _part(placeholder: Placeholder, variables: Variables, error: ErrorAt) -> Part:
    value = value_of(variables, placeholder.variable, error)
    integer = type(value) is int
    match placeholder.kind, value:
        case "currency", int() if integer:
            return Amount(value)
        case "number", int() if integer:
            return Number(value)
        case "ordinal", int() if integer:
            return Ordinal(value)
        case "digits", str() if value.isascii() and value.isdigit():
            return Digits(value)
        case "digits", int() if integer and value >= 0:
            return Digits(str(value))
        case "date", datetime.date():
            return Date(value)
        case "date", str():
            try:
                return Date(datetime.date.fromisoformat(value))
            except ValueError:
                pass
    raise error(
        f'variable "{placeholder.variable}" is {type_name(value)}; '
        f"{{{placeholder.variable}:{placeholder.kind}}} needs {_NEEDS[placeholder.kind]}"
    )


def holds(condition: Condition, variables: Variables, error: ErrorAt) -> bool:
    """Whether ``condition`` holds; a test other than ``is_set`` needs the variable set."""
    variable, test, wanted = condition.variable, condition.test, condition.value
    if test == "is_set":
        return (variable in variables) == wanted
    value = value_of(variables, variable, error)
    literals = wanted if isinstance(wanted, tuple) else (wanted,)
    for literal in literals:
        if type(literal) is not type(value):
            raise error(
                f'variable "{variable}" is {type_name(value)}; the condition compares it '
                f"with {type_name(literal)}"
            )
    match test:
        case "equals":
            return value == wanted
        case "not_equals":
            return value != wanted
        case "in":
            return value in literals
        case "greater_than":
            return value > wanted  # type: ignore[operator]  # both int, or both date
        case "less_than":
            return value < wanted  # type: ignore[operator]  # both int, or both date
