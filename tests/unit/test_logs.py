from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from assistline.logs import configure_logging, request_id_var
from assistline.settings import LogSettings

CANARY = "4000056655665556"


@pytest.fixture
def capture() -> Iterator[tuple[io.StringIO, logging.Logger]]:
    stream = io.StringIO()
    handler = configure_logging(LogSettings(level="DEBUG", format="text"), stream)
    try:
        yield stream, logging.getLogger("assistline.test")
    finally:
        logging.getLogger().removeHandler(handler)


def test_card_numbers_are_masked_in_messages_and_arguments(
    capture: tuple[io.StringIO, logging.Logger],
) -> None:
    stream, log = capture
    log.info("card %s", CANARY)
    log.info(f"inline {CANARY}")
    log.info("spaced %s", "4000 0566 5566 5556")
    log.info("mapping %(pan)s", {"pan": CANARY})
    output = stream.getvalue()
    assert CANARY not in output
    assert "0566 5566" not in output
    assert output.count("[card …5556]") == 4


def test_exception_text_is_masked(capture: tuple[io.StringIO, logging.Logger]) -> None:
    stream, log = capture
    try:
        raise ValueError(f"bad card {CANARY}")
    except ValueError:
        log.exception("failed")
    assert CANARY not in stream.getvalue()
    assert "[card …5556]" in stream.getvalue()


def test_json_lines_carry_request_id_extras_and_masked_values() -> None:
    stream = io.StringIO()
    handler = configure_logging(LogSettings(level="INFO", format="json"), stream)
    token = request_id_var.set("req-1")
    try:
        logging.getLogger("assistline.test").warning(
            "paid %s", CANARY, extra={"contact": "c-9", "note": CANARY}
        )
    finally:
        request_id_var.reset(token)
        logging.getLogger().removeHandler(handler)
    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "assistline.test"
    assert entry["message"] == "paid [card …5556]"
    assert entry["request_id"] == "req-1"
    assert entry["contact"] == "c-9"
    assert entry["note"] == "[card …5556]"
    assert CANARY not in line


def test_a_bad_format_string_is_still_logged_masked(
    capture: tuple[io.StringIO, logging.Logger],
) -> None:
    stream, log = capture
    log.info("%d and %d", CANARY)
    assert CANARY not in stream.getvalue()
    assert "[card …5556]" in stream.getvalue()


def test_reconfiguring_replaces_only_our_handler() -> None:
    other = logging.NullHandler()
    root = logging.getLogger()
    root.addHandler(other)
    first = configure_logging(LogSettings(), io.StringIO())
    second = configure_logging(LogSettings(), io.StringIO())
    try:
        assert other in root.handlers
        assert first not in root.handlers
        assert second in root.handlers
    finally:
        root.removeHandler(other)
        root.removeHandler(second)
