"""Reading one TOML table of a flow file: typed fields with errors that say where.

:class:`Table` wraps a table of a flow file (the file itself, a step, a menu
option, a condition) and reads its fields one type at a time, raising
:class:`~assistline.ivr.flow.FlowError` with the file, the step and the field
(``options[0].digit`` inside a step) in every message. The loader
(:mod:`assistline.ivr.flow_load`) decides what the fields mean; this module
only knows TOML's types and the shapes fields take: names, seconds, prompts.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping
from typing import TypeVar

from assistline.ivr.flow import KINDS, FlowError, Placeholder, Prompt, Template, Value

#: Variable and step names: what a placeholder can name, and safe in a prompt key.
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: A prompt key: a file name (the recorded WAV's) without a path.
KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_PLACEHOLDER_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*):([a-z]+)\Z")


_T = TypeVar("_T")


class _Missing:
    pass


MISSING = _Missing()


def type_name(value: object) -> str:
    """A TOML value's type, as a message names it."""
    match value:
        case bool():
            return "a boolean"
        case int():
            return "an integer"
        case float():
            return "a float"
        case str():
            return "a string"
        case datetime.datetime():
            return "a date-time"
        case datetime.date():
            return "a date"
        case datetime.time():
            return "a time"
        case list():
            return "an array"
        case _:
            return "a table"


def parse_template(text: str) -> Template:
    """``text`` as words and placeholders; ValueError says what is wrong with it."""
    parts: list[str | Placeholder] = []
    position = 0
    for match in _PLACEHOLDER.finditer(text):
        parts.append(text[position : match.start()])
        body = _PLACEHOLDER_BODY.match(match[1])
        if body is None or body[2] not in KINDS:
            raise ValueError(
                f'"{match[0]}" is not a placeholder: write {{name:kind}}, kind one of '
                + ", ".join(KINDS)
            )
        parts.append(Placeholder(body[1], body[2]))
        position = match.end()
    parts.append(text[position:])
    for part in parts:
        if isinstance(part, str) and ("{" in part or "}" in part):
            raise ValueError('a "{" or "}" outside a placeholder {name:kind}')
    return tuple(
        part.strip() if isinstance(part, str) else part
        for part in parts
        if not isinstance(part, str) or part.strip()
    )


class Table:
    """A table of a flow file; ``where`` prefixes every message ("flows/a.toml: step "x"")."""

    def __init__(self, data: Mapping[str, object], where: str, prefix: str = "") -> None:
        self.data = data
        self.where = where
        self.prefix = prefix

    def error(self, field: str, message: str) -> FlowError:
        """An error about ``field`` of this table."""
        return FlowError(f'{self.where}: field "{self.prefix}{field}": {message}')

    def only(self, allowed: Iterable[str], what: str) -> None:
        """Refuse the first field not in ``allowed``, saying it is not a field of ``what``."""
        known = set(allowed)
        for field in self.data:
            if field not in known:
                raise self.error(field, f"not a field of {what}")

    def has(self, field: str) -> bool:
        """Whether the table gives ``field``."""
        return field in self.data

    def raw(self, field: str) -> object:
        """The field's value, required."""
        if field not in self.data:
            raise self.error(field, "required")
        return self.data[field]

    def _typed(self, field: str, kind: type[_T], default: _T | _Missing) -> _T:
        if field not in self.data and not isinstance(default, _Missing):
            return default
        value = self.raw(field)
        # bool is an int in Python, never in a flow file.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(field, f"must be {type_name(kind())}, not {type_name(value)}")
        return value

    def text(self, field: str, default: str | _Missing = MISSING) -> str:
        """A string field."""
        return self._typed(field, str, default)

    def flag(self, field: str, default: bool | _Missing = MISSING) -> bool:
        """A boolean field."""
        return self._typed(field, bool, default)

    def integer(self, field: str, low: int, high: int, default: int | _Missing = MISSING) -> int:
        """An integer field within low..high."""
        value = self._typed(field, int, default)
        if not low <= value <= high:
            raise self.error(field, f"must be {low}..{high}, not {value}")
        return value

    def seconds(self, field: str, default: float | _Missing = MISSING) -> float:
        """A positive number of seconds (an integer or a float)."""
        if field not in self.data and not isinstance(default, _Missing):
            return default
        value = self.raw(field)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            shown = value if isinstance(value, int | float) else type_name(value)
            raise self.error(field, f"must be a number of seconds > 0, not {shown}")
        return float(value)

    def name(self, field: str, default: str | _Missing = MISSING) -> str:
        """A variable or step name."""
        value = self.text(field, default)
        if not NAME.match(value):
            raise self.error(field, f'"{value}" is not a name: use letters, digits and _')
        return value

    def names(self, field: str) -> tuple[str, ...]:
        """An array of variable names, empty when absent."""
        values = self._typed(field, list, [])
        for value in values:
            if not isinstance(value, str) or not NAME.match(value):
                raise self.error(field, f"{value!r} is not a name: use letters, digits and _")
        if len(set(values)) != len(values):
            raise self.error(field, "names a variable twice")
        return tuple(values)

    def table(self, field: str) -> Mapping[str, object]:
        """A table field, required."""
        return self._typed(field, dict, MISSING)

    def tables(self, field: str) -> list[Mapping[str, object]]:
        """A non-empty array of tables, required."""
        values = self._typed(field, list, MISSING)
        if not values or not all(isinstance(value, dict) for value in values):
            raise self.error(field, "must be a non-empty array of tables")
        return values

    def value(self, field: str) -> Value:
        """A variable's value: a string, an integer, a boolean or a date."""
        return self.as_value(field, self.raw(field))

    def as_value(self, field: str, value: object) -> Value:
        """``value`` if it is a variable's value, else an error about ``field``."""
        ok = isinstance(value, str | int | datetime.date) and not isinstance(
            value, datetime.datetime
        )
        if not ok:
            raise self.error(
                field,
                f"must be a string, an integer, a boolean or a date, not {type_name(value)}",
            )
        return value  # type: ignore[return-value]  # narrowed just above

    def prompt(self, field: str, key: str) -> Prompt | None:
        """A prompt: text to say, or a table ``{say = …}`` / ``{play = …}`` with ``key``."""
        if field not in self.data:
            return None
        value = self.data[field]
        if isinstance(value, str):
            return Prompt(key, text=self.template(field, value))
        if not isinstance(value, dict):
            raise self.error(field, f"must be text or a table, not {type_name(value)}")
        inner = Table(value, self.where, f"{self.prefix}{field}.")
        inner.only(("say", "play", "key"), "a prompt")
        if inner.has("key"):
            key = inner.text("key")
            if not KEY.match(key):
                raise inner.error("key", f'"{key}" is not a prompt key: use letters, digits, _ . -')
        if inner.has("say") == inner.has("play"):
            raise self.error(field, 'give exactly one of "say" and "play"')
        if inner.has("say"):
            return Prompt(key, text=inner.template("say", inner.text("say")))
        return Prompt(key, file=inner.file("play"))

    def template(self, field: str, text: str) -> Template:
        """``text`` parsed as a prompt template."""
        try:
            template = parse_template(text)
        except ValueError as error:
            raise self.error(field, str(error)) from None
        if not template:
            raise self.error(field, "must say something")
        return template

    def file(self, field: str) -> str:
        """A WAV file's path relative to the prompts directory."""
        path = self.text(field)
        if not path.endswith(".wav") or path.startswith("/") or ".." in path.split("/"):
            raise self.error(field, f'"{path}" must be a .wav path inside the prompts directory')
        return path
