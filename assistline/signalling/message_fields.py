"""The value checks behind :mod:`assistline.signalling.messages`, and its error.

Each check validates one field's JSON value, names the field in its
:class:`MessageError`, and describes itself as JSON Schema, so parsing,
building and the shipped schema come from the same definition. Kept apart
so ``messages.py`` holds the protocol itself.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any, Literal, Protocol

from assistline.errors import AssistlineError

ErrorCode = Literal[
    "not_json",
    "missing_key",
    "unknown_key",
    "unknown_type",
    "bad_value",
    "too_large",
    "sdp_refused",
    "not_now",
]


class MessageError(AssistlineError, ValueError):
    """A signalling frame was refused; fix what the message names and send it again."""

    def __init__(self, code: ErrorCode, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        #: The session cannot go on (``too_large``): send the error, then close.
        self.fatal = fatal


class Spec(Protocol):
    """What every check offers."""

    def check(self, where: str, value: Any) -> Any:
        """``value`` as the field holds it; MessageError naming ``where`` otherwise."""

    def schema(self) -> dict[str, Any]:
        """The same rule as JSON Schema keywords."""


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclasses.dataclass(frozen=True, slots=True)
class Text:
    """A string of ``low``..``high`` characters, matching ``pattern`` when given."""

    low: int
    high: int
    pattern: str = ""
    says: str = ""

    def check(self, where: str, value: Any) -> Any:
        """See :meth:`Spec.check`."""
        if type(value) is not str:
            raise MessageError("bad_value", f"{where} must be a string")
        if not self.low <= len(value) <= self.high:
            raise MessageError("bad_value", f"{where} must be {self.low}..{self.high} characters")
        if _LONE_SURROGATE.search(value):
            raise MessageError("bad_value", f"{where} is not valid Unicode (a lone surrogate)")
        if self.pattern and not re.fullmatch(self.pattern, value):
            raise MessageError("bad_value", f"{where} {self.says}")
        return value

    def schema(self) -> dict[str, Any]:
        """See :meth:`Spec.schema`."""
        schema: dict[str, Any] = {"type": "string", "minLength": self.low, "maxLength": self.high}
        # JSON Schema patterns match anywhere: anchored, they mean what re.fullmatch does.
        return schema | ({"pattern": f"^(?:{self.pattern})$"} if self.pattern else {})


@dataclasses.dataclass(frozen=True, slots=True)
class Choice:
    """One string of ``values``."""

    values: tuple[str, ...]
    says: str = ""

    def check(self, where: str, value: Any) -> Any:
        """See :meth:`Spec.check`."""
        if type(value) is not str or value not in self.values:
            raise MessageError(
                "bad_value", f"{where} {self.says or 'must be one of ' + ', '.join(self.values)}"
            )
        return value

    def schema(self) -> dict[str, Any]:
        """See :meth:`Spec.schema`."""
        return {"type": "string", "enum": list(self.values)}


@dataclasses.dataclass(frozen=True, slots=True)
class Integer:
    """An integer in ``low``..``high`` (not a bool)."""

    low: int
    high: int

    def check(self, where: str, value: Any) -> Any:
        """See :meth:`Spec.check`."""
        if type(value) is not int or not self.low <= value <= self.high:
            raise MessageError("bad_value", f"{where} must be an integer {self.low}..{self.high}")
        return value

    def schema(self) -> dict[str, Any]:
        """See :meth:`Spec.schema`."""
        return {"type": "integer", "minimum": self.low, "maximum": self.high}


@dataclasses.dataclass(frozen=True, slots=True)
class OrNull:
    """``inner``, or null."""

    inner: Spec

    def check(self, where: str, value: Any) -> Any:
        """See :meth:`Spec.check`."""
        try:
            return None if value is None else self.inner.check(where, value)
        except MessageError as error:
            raise MessageError(error.code, f"{error} or null") from None

    def schema(self) -> dict[str, Any]:
        """See :meth:`Spec.schema`."""
        return {"anyOf": [self.inner.schema(), {"type": "null"}]}


_URL = Text(1, 512, r"(stuns?|turns?):\S+", "must be a stun:, stuns:, turn: or turns: URL")
_CREDENTIAL = Text(1, 512)


@dataclasses.dataclass(frozen=True, slots=True)
class IceServersCheck:
    """A list of ``RTCIceServer`` objects: urls, and username and credential."""

    def check(self, where: str, value: Any) -> Any:
        """See :meth:`Spec.check`."""
        if not isinstance(value, list | tuple):
            raise MessageError("bad_value", f"{where} must be a list")
        for index, server in enumerate(value):
            at = f"{where}[{index}]"
            if not isinstance(server, dict) or not {"urls"} <= server.keys() <= _ICE_KEYS:
                raise MessageError("bad_value", f"{at} must be an object with urls")
            if not isinstance(server["urls"], list) or not server["urls"]:
                raise MessageError("bad_value", f"{at}.urls must be a list of URLs")
            for url in server["urls"]:
                _URL.check(f"{at}.urls", url)
            for key in sorted(server.keys() - {"urls"}):
                _CREDENTIAL.check(f"{at}.{key}", server[key])
        return tuple(value)

    def schema(self) -> dict[str, Any]:
        """See :meth:`Spec.schema`."""
        return {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "urls": {"type": "array", "minItems": 1, "items": _URL.schema()},
                    "username": _CREDENTIAL.schema(),
                    "credential": _CREDENTIAL.schema(),
                },
                "required": ["urls"],
                "additionalProperties": False,
            },
        }


_ICE_KEYS = frozenset({"urls", "username", "credential"})


class Field(typing.NamedTuple):
    """One message field: its name, its JSON key, its check, whether it may be left out."""

    name: str
    key: str  # in JSON: the field's name unless its Annotated extras give another
    spec: Spec
    optional: bool  # default None: the key may be left out, and is when None


def fields_of(cls: type[Any]) -> tuple[Field, ...]:
    """The fields of a message class, from its ``Annotated`` hints."""
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = []
    for field in dataclasses.fields(cls):
        extras = hints[field.name].__metadata__
        key = extras[1] if len(extras) > 1 else field.name
        fields.append(Field(field.name, key, extras[0], field.default is None))
    return tuple(fields)
