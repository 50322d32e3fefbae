"""Structured logging with card numbers masked in every line.

One handler on the root logger carries :class:`CardNumberFilter`, which
rewrites each record's message (arguments included) before any formatter
sees it; the formatters mask their final output once more, so an exception
trace or an ``extra`` field cannot carry a card number either. The request
id of the HTTP request being served rides along in a context variable.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any, TextIO

from assistline.redaction import mask_card_numbers
from assistline.settings import LogSettings

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "assistline_request_id", default=None
)

_HANDLER_NAME = "assistline"

# Attributes every LogRecord has; anything else came through ``extra=``.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class CardNumberFilter(logging.Filter):
    """Masks card numbers in a record's message and arguments, and tags its request id."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops it."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string still gets logged, masked
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = mask_card_numbers(message)
        record.args = None
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


class TextFormatter(logging.Formatter):
    """``time level logger [request] message`` for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(request_tag)s%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Format, then mask the whole line, exception text included."""
        request_id = getattr(record, "request_id", None)
        record.request_tag = f"[{request_id}] " if request_id else ""
        return mask_card_numbers(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        """Format as JSON and mask the whole line."""
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key != "request_tag" and value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return mask_card_numbers(json.dumps(entry, default=str, ensure_ascii=False))


def configure_logging(settings: LogSettings, stream: TextIO | None = None) -> logging.Handler:
    """Send every logger's records through one masking handler; returns that handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(CardNumberFilter())
    handler.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER_NAME:  # configured before: replace, keep others'
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level)
    # The access log of every request is aiohttp's; keep it at INFO only when asked.
    logging.getLogger("aiohttp.access").setLevel(
        logging.INFO if settings.level == "DEBUG" else logging.WARNING
    )
    logging.captureWarnings(True)
    return handler
