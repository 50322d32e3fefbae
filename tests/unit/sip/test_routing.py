"""The pure pieces of agent routing and of the recordings' rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from assistline.media.frame import FRAME_SAMPLES, AudioFrame
from assistline.media.recorder import Recorder
from assistline.settings import HttpSettings
from assistline.sip.recordings import outcome_from_sidecar, read_outcome
from assistline.sip.routing import (
    agent_destination,
    caller_status,
    caller_uri,
    console_base_url,
    contact_id,
    edge_uri_host,
    screen_pop_url,
)


@pytest.mark.parametrize(
    ("agent_status", "timed_out", "expected"),
    [
        (486, False, (486, "Agent Busy")),
        (600, False, (486, "Agent Busy")),
        (603, False, (486, "Agent Busy")),
        (404, False, (404, "Not Found")),
        (480, False, (480, "Temporarily Unavailable")),
        (408, False, (480, "Temporarily Unavailable")),
        (503, False, (480, "Temporarily Unavailable")),
        (0, False, (480, "Temporarily Unavailable")),
        # Cancelled by us after the answer timeout: whatever the phone said.
        (487, True, (480, "Temporarily Unavailable")),
        (486, True, (480, "Temporarily Unavailable")),
    ],
)
def test_the_caller_gets_the_agents_status(
    agent_status: int, timed_out: bool, expected: tuple[int, str]
) -> None:
    assert caller_status(agent_status, timed_out) == expected


def test_the_agent_is_called_at_the_edge() -> None:
    assert edge_uri_host("127.0.0.1", 5060) == "127.0.0.1:5060"
    assert edge_uri_host("0.0.0.0", 5070) == "127.0.0.1:5070"
    assert edge_uri_host("::", 5060) == "[::1]:5060"
    assert edge_uri_host("2001:db8::1", 5060) == "[2001:db8::1]:5060"
    assert agent_destination("ada.b-1", "127.0.0.1:5060") == "sip:ada.b-1@127.0.0.1:5060"
    with pytest.raises(ValueError, match="not an agent's SIP username"):
        agent_destination("ada@evil", "127.0.0.1:5060")


def test_caller_uri_is_the_bare_uri_or_nothing() -> None:
    assert caller_uri('"Ann" <sip:ann@example.com:5070>') == "sip:ann@example.com:5070"
    assert caller_uri("<sips:ann@example.com>") == "sips:ann@example.com"
    assert caller_uri("sip:bob@host") == "sip:bob@host"
    assert caller_uri("tel:+441234") == ""
    assert caller_uri("") == ""


def test_contact_id_is_a_plain_caller_header_or_the_call_id() -> None:
    assert contact_id((("X-Assistline-Contact", "contact-42"),), "c1") == "contact-42"
    assert contact_id((("x-assistline-contact", "ctx:9.a_b"),), "c1") == "ctx:9.a_b"
    assert contact_id((("X-Assistline-Contact", "has space"),), "c1") == "c1"
    assert contact_id((("X-Other", "contact-42"),), "c1") == "c1"
    assert contact_id((), "c1") == "c1"


def test_screen_pop_links_to_the_agent_console() -> None:
    assert console_base_url(HttpSettings(host="0.0.0.0", port=8080)) == "http://127.0.0.1:8080"
    assert console_base_url(HttpSettings(host="::1", port=8443)) == "http://[::1]:8443"
    public = HttpSettings(public_url="https://cc.example.com/")
    assert console_base_url(public) == "https://cc.example.com"
    assert screen_pop_url("https://cc.example.com", "ab/c d") == (
        "https://cc.example.com/agent?call=ab%2Fc%20d"
    )


def _frame(value: int) -> AudioFrame:
    return AudioFrame(np.full(FRAME_SAMPLES, value, np.int16), 0)


def test_a_closed_recordings_sidecar_gives_its_length_and_pauses(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    with Recorder(path) as recorder:
        for _ in range(10):
            recorder.write(_frame(100), _frame(200))
        recorder.pause()
        for _ in range(5):
            recorder.write(_frame(100), _frame(200))
        recorder.resume()
        recorder.write(_frame(100), _frame(200))
    outcome = read_outcome(path)
    assert outcome.status == "complete"
    assert outcome.duration_seconds == 16 * FRAME_SAMPLES / 16000
    assert outcome.pauses == (
        {
            "start_sample": 10 * FRAME_SAMPLES,
            "end_sample": 15 * FRAME_SAMPLES,
            "start_seconds": 0.2,
            "end_seconds": 0.3,
        },
    )


def test_an_unfinished_recording_is_interrupted_with_its_open_pause(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    recorder = Recorder(path)
    recorder.write(_frame(1), _frame(2))
    recorder.pause()  # the sidecar is rewritten here; then the worker "dies"
    outcome = read_outcome(path)
    assert outcome.status == "interrupted"
    assert outcome.pauses[0]["end_sample"] is None
    recorder.close()


def test_a_missing_or_foreign_sidecar_fails_the_recording(tmp_path: Path) -> None:
    assert read_outcome(tmp_path / "none.wav").status == "failed"
    (tmp_path / "odd.json").write_text(json.dumps({"format": "something/else"}))
    assert read_outcome(tmp_path / "odd.wav").status == "failed"
    (tmp_path / "bad.json").write_text("{not json")
    assert read_outcome(tmp_path / "bad.wav").duration_seconds is None
    base = {"format": "assistline.recording/1", "seconds": 1.0, "complete": True}
    with pytest.raises(ValueError, match="pauses"):
        outcome_from_sidecar(base)
    with pytest.raises(ValueError, match="seconds"):
        outcome_from_sidecar({**base, "seconds": True, "pauses": []})
    with pytest.raises(ValueError, match="start_sample is not a number"):
        outcome_from_sidecar({**base, "pauses": [{"start_sample": "1"}]})
    with pytest.raises(ValueError, match="no start"):
        outcome_from_sidecar({**base, "pauses": [{"end_sample": 5}]})
