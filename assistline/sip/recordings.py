"""Recordings of bridged calls in PostgreSQL: started, then completed from the sidecar.

A media worker writes a recording (stereo WAV) and its JSON sidecar of
pause intervals (:mod:`assistline.media.recorder`); the control process
keeps one ``recording`` row per file (migration 0004). The row is created
when the worker has accepted the ``record`` command (status
``recording``) and completed when the recorded leg's ``hangup`` event
arrives: the worker closes the WAV and writes the final sidecar *before*
it sends that event (the protocol's promise), so the sidecar then holds
the length and every pause. Its outcome is:

- ``complete``: the sidecar says the recorder was closed;
- ``interrupted``: the sidecar is there but was never finalised (the
  worker died); the WAV holds everything up to its last flush, and a pause
  still open has no end;
- ``failed``: no readable sidecar.

Changes go through one queue and one writer task, like the call records,
so a recording's completion never overtakes its creation. The sidecar is
read in a thread (a file read must not block the event loop). Rows hold
lengths, times and pause intervals only: never audio, never digits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from assistline.media.recorder import METADATA_FORMAT, sidecar_path
from assistline.store.queries import QUERIES
from assistline.tasks import TaskRegistry

logger = logging.getLogger(__name__)
QUEUE_LIMIT = 10_000


@dataclasses.dataclass(frozen=True, slots=True)
class RecordingStarted:
    """A recording the worker accepted: which call, which legs, which file."""

    id: uuid.UUID
    call_id: str
    worker: str
    caller_leg: str
    agent_leg: str  # "" for a call with no agent (the payment line)
    agent_id: str | None
    path: Path
    channels: int = 2
    sample_rate: int = 16000


@dataclasses.dataclass(frozen=True, slots=True)
class RecordingOutcome:
    """What a finished recording's sidecar says."""

    status: str
    duration_seconds: float | None
    pauses: tuple[dict[str, int | float | None], ...]


def outcome_from_sidecar(document: object) -> RecordingOutcome:
    """The outcome a sidecar document describes; ValueError when it is not one."""
    if not isinstance(document, dict) or document.get("format") != METADATA_FORMAT:
        raise ValueError(f"not an {METADATA_FORMAT} document")
    seconds = document.get("seconds")
    pauses = document.get("pauses")
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
        raise ValueError("the sidecar has no valid 'seconds'")
    if not isinstance(pauses, list):
        raise ValueError("the sidecar has no 'pauses' list")
    kept: list[dict[str, int | float | None]] = []
    for pause in pauses:
        if not isinstance(pause, dict):
            raise ValueError("a pause is not an object")
        interval: dict[str, int | float | None] = {}
        for key in ("start_sample", "end_sample", "start_seconds", "end_seconds"):
            value = pause.get(key)
            if value is not None and (
                not isinstance(value, int | float) or isinstance(value, bool)
            ):
                raise ValueError(f"a pause's {key} is not a number")
            interval[key] = value
        if interval["start_sample"] is None or interval["start_seconds"] is None:
            raise ValueError("a pause has no start")
        kept.append(interval)
    status = "complete" if document.get("complete") is True else "interrupted"
    return RecordingOutcome(status, float(seconds), tuple(kept))


def read_outcome(path: Path) -> RecordingOutcome:
    """The outcome of the recording at ``path``, from its sidecar (blocking: use a thread)."""
    try:
        document = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
        return outcome_from_sidecar(document)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        logger.error("recording %s has no readable sidecar: %s", path.name, error)
        return RecordingOutcome("failed", None, ())


class RecordingStore:
    """Writes ``recording`` rows in the order recordings start and end."""

    def __init__(self, pool: asyncpg.Pool, tasks: TaskRegistry) -> None:
        self._pool = pool
        self._queue: asyncio.Queue[tuple[str, tuple[Any, ...]]] = asyncio.Queue(QUEUE_LIMIT)
        self._writer = tasks.spawn("recordings writer", self._write())

    def started(self, recording: RecordingStarted) -> None:
        """Queue the row of a recording the worker has just started."""
        self._put(
            "insert",
            (
                recording.id,
                recording.call_id,
                recording.worker,
                recording.caller_leg,
                recording.agent_leg,
                recording.agent_id,
                str(recording.path),
                recording.channels,
                recording.sample_rate,
            ),
        )

    def ended(self, recording_id: uuid.UUID, path: Path) -> None:
        """Queue the completion of a recording whose leg has ended (its sidecar is final)."""
        self._put("complete", (recording_id, path))

    def _put(self, kind: str, args: tuple[Any, ...]) -> None:
        try:
            self._queue.put_nowait((kind, args))
        except asyncio.QueueFull:
            logger.error("recordings queue full; a recording %s was dropped", kind)

    async def drain(self) -> None:
        """Wait until every queued change is written."""
        await self._queue.join()

    async def _write(self) -> None:
        while True:
            kind, args = await self._queue.get()
            try:
                if kind == "insert":
                    await self._pool.execute(QUERIES["insert_recording"], *args)
                else:
                    recording_id, path = args
                    outcome = await asyncio.to_thread(read_outcome, path)
                    await self._pool.execute(
                        QUERIES["complete_recording"],
                        recording_id,
                        outcome.duration_seconds,
                        json.dumps(list(outcome.pauses)),
                        outcome.status,
                    )
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                logger.error("recording row not written (%s): %s", kind, error)
            finally:
                self._queue.task_done()


async def get_recording(pool: asyncpg.Pool, recording_id: uuid.UUID) -> dict[str, Any] | None:
    """A recording's metadata as JSON-ready values, or None when there is none."""
    row = await pool.fetchrow(QUERIES["get_recording"], recording_id)
    if row is None:
        return None
    return {
        "id": str(row["id"]),
        "call_id": row["call_id"],
        "worker": row["worker"],
        "caller_leg": row["caller_leg"],
        "agent_leg": row["agent_leg"],
        "caller_record": row["caller_record"],
        "agent_record": row["agent_record"],
        "agent_id": row["agent_id"],
        "path": row["path"],
        "channels": row["channels"],
        "sample_rate": row["sample_rate"],
        "started_at": row["started_at"].isoformat(),
        "ended_at": row["ended_at"].isoformat() if row["ended_at"] else None,
        "duration_seconds": row["duration_seconds"],
        "pauses": json.loads(row["pauses"]),
        "status": row["status"],
    }
