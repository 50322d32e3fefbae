"""The control socket's wire format: :mod:`assistline.sip.protocol`'s messages as JSON lines.

:func:`encode` turns a message into one line; :func:`parse` turns one line
back into a message, checking every field against the message class's type
hints (checks built once per class, since parsing runs per message: the
control process parses every event of every call); :class:`Decoder` cuts a
byte stream into lines. Errors are :class:`~assistline.sip.protocol.ProtocolError`
naming the message and field.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any, Literal, Union

from assistline.sip.protocol import (
    CLASSES,
    MAX_LINE,
    TO_CONTROL,
    TO_WORKER,
    Direction,
    Headers,
    IceServers,
    Message,
    Play,
    ProtocolError,
)


def encode(message: Message) -> bytes:
    """One message as one JSON line."""
    cls = type(message)
    if cls not in _FIELDS:
        raise TypeError(f"{cls.__name__} is not a protocol message")
    body: dict[str, Any] = {"type": cls.TYPE}
    for name, *_ in _FIELDS[cls]:
        value = getattr(message, name)
        body[name] = [list(item) for item in value] if name in _LISTS else value
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


#: Checks a field's JSON value (``where`` names it in errors) and returns its Python shape.
_Checker = Callable[[str, Any], Any]


def _checker(hint: Any) -> _Checker:
    """The check for a field typed ``hint``, built once per field (parsing is per message)."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [_checker(option) for option in typing.get_args(hint)]

        def check_union(where: str, value: Any) -> Any:
            for option in options:
                try:
                    return option(where, value)
                except ProtocolError:
                    continue
            raise ProtocolError(f"{where} has the wrong type ({type(value).__name__})")

        return check_union
    if origin is Literal:
        allowed = typing.get_args(hint)

        def check_literal(where: str, value: Any) -> Any:
            if value not in allowed:
                raise ProtocolError(f"{where} must be one of {', '.join(allowed)}")
            return value

        return check_literal
    if hint in _SCALARS:
        return _scalar(hint, _SCALARS[hint])
    if hint == Headers:
        return _check_headers
    if hint == IceServers:
        return _check_ice_servers
    raise TypeError(f"no check for {hint!r}")  # pragma: no cover - a bug in this module


#: Exact types: JSON gives exact ones, and True must not pass for an integer.
_SCALARS = {
    type(None): "must be null",
    int: "must be an integer",
    bool: "must be true or false",
    str: "must be a string",
}


def _scalar(kind: type[Any], error: str) -> _Checker:
    def check(where: str, value: Any) -> Any:
        if type(value) is not kind:
            raise ProtocolError(f"{where} {error}")
        return value

    return check


def _check_headers(where: str, value: Any) -> Headers:
    if not isinstance(value, list) or not all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(s, str) for s in pair)
        for pair in value
    ):
        raise ProtocolError(f"{where} must be a list of [name, value] strings")
    return tuple((pair[0], pair[1]) for pair in value)


def _check_ice_servers(where: str, value: Any) -> IceServers:
    if not isinstance(value, list) or not all(
        isinstance(item, list) and len(item) == 3 and all(isinstance(s, str) for s in item)
        for item in value
    ):
        raise ProtocolError(f"{where} must be a list of [url, username, credential] strings")
    return tuple((item[0], item[1], item[2]) for item in value)


#: Fields whose tuples of tuples travel as JSON lists of lists.
_LISTS = frozenset({"headers", "ice_servers"})


#: Per message class, in field order: (name, "kind.name", required, check).
def _field_checks(cls: type[Any]) -> tuple[tuple[str, str, bool, _Checker], ...]:
    """(name, "kind.name", required, check) for each field of ``cls``, in order."""
    hints, required = typing.get_type_hints(cls), dataclasses.MISSING
    return tuple(
        (f.name, f"{cls.TYPE}.{f.name}", f.default is required, _checker(hints[f.name]))
        for f in dataclasses.fields(cls)
    )


_FIELDS = {cls: _field_checks(cls) for cls in CLASSES}
_NAMES = {cls: {field[0] for field in fields} for cls, fields in _FIELDS.items()}


def parse(line: bytes, direction: Direction) -> Message:
    """One JSON line (without its terminator) sent in ``direction``, as a message."""
    try:
        body = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ProtocolError("line is not JSON") from None
    if not isinstance(body, dict):
        raise ProtocolError("line is not a JSON object")
    kind = body.pop("type", None)
    if not isinstance(kind, str):
        raise ProtocolError("message has no type")
    cls = (TO_WORKER if direction == "to_worker" else TO_CONTROL).get(kind)
    if cls is None:
        raise ProtocolError(f"unknown message type {kind[:40]!r} {direction.replace('_', ' ')}")
    if not _NAMES[cls] >= body.keys():
        unknown = sorted(set(body) - _NAMES[cls])
        raise ProtocolError(f"{kind} has unknown field {unknown[0][:40]!r}")
    values: dict[str, Any] = {}
    for name, where, required, check in _FIELDS[cls]:
        if name not in body:
            if required:
                raise ProtocolError(f"{kind} lacks field {name!r}")
            continue
        values[name] = check(where, body[name])
    message: Message = cls(**values)
    if isinstance(message, Play) and (message.file is None) == (message.tone is None):
        raise ProtocolError("play needs exactly one of file and tone")
    return message


class Decoder:
    """Streaming decoder: feed bytes as they arrive, get whole messages back.

    ``direction`` is the direction of the bytes fed: a worker decodes
    ``"to_worker"`` (commands), the control process ``"to_control"``.
    """

    def __init__(self, direction: Direction) -> None:
        self.direction: Direction = direction
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[Message]:
        """Messages completed by ``data``; raises ProtocolError at the first bad line."""
        self._buffer += data
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) >= MAX_LINE:
                    self._buffer.clear()
                    raise ProtocolError(f"line longer than {MAX_LINE} bytes")
                return
            if end + 1 > MAX_LINE:
                del self._buffer[: end + 1]
                raise ProtocolError(f"line longer than {MAX_LINE} bytes")
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            yield parse(line, self.direction)

    @property
    def pending(self) -> int:
        """Bytes received but not yet a whole line."""
        return len(self._buffer)
