"""Calls in progress and their recordings: list, pause and resume, metadata.

``POST …/recording/pause`` and ``…/resume`` are idempotent: pausing a
paused recording answers 200 with ``"changed": false``. Each accepted
request writes an ``audit_event`` row (actor, action, the call, the
recording, whether it changed, the request id): never digits, never
audio. Every route asks for an API key (``Authorization: Bearer``, one of
``http.api_keys``, as the contacts API does): calls name callers and
recordings' paths, which are nobody else's business.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web

from assistline.signalling.api_keys import API_KEY_PROBLEMS, require_api_key
from assistline.signalling.keys import CALLS_KEY, DATABASE_KEY
from assistline.signalling.openapi import API_KEY, Operation, json_content, problem
from assistline.signalling.problems import HttpProblem
from assistline.signalling.request_id import REQUEST_ID_KEY
from assistline.sip.pool import WorkerCommandError
from assistline.sip.recordings import get_recording
from assistline.sip.routing import AgentCall, CallNotFoundError, NotRecordingError
from assistline.store.queries import QUERIES

#: Who the audit trail names for API requests until the API authenticates its callers.
API_ACTOR = "api"

_NULLABLE_STRING = {"type": ["string", "null"]}
_RECORDING_STATE = {
    "type": "object",
    "required": ["id", "state"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "state": {"enum": ["starting", "recording", "paused", "stopped", "failed"]},
    },
}
CALL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "contact", "state", "worker", "started_at", "caller", "agent", "recording"],
    "properties": {
        "id": {"type": "string"},
        "contact": {"type": "string", "description": "the contact id the agent was given"},
        "state": {"enum": ["routing", "ringing", "connecting", "connected"]},
        "worker": {"type": "string"},
        "started_at": {"type": "string", "format": "date-time"},
        "connected_at": _NULLABLE_STRING,
        "caller": {
            "type": "object",
            "properties": {
                "leg": {"type": "string"},
                "from": {"type": "string"},
                "to": {"type": "string"},
            },
        },
        "agent": {
            "type": ["object", "null"],
            "properties": {
                "id": {"type": "string"},
                "sip_username": {"type": "string"},
                "leg": _NULLABLE_STRING,
            },
        },
        "recording": {"oneOf": [_RECORDING_STATE, {"type": "null"}]},
    },
}
_PAUSE_SCHEMA = {
    "type": "object",
    "required": ["call", "recording", "changed"],
    "properties": {
        "call": {"type": "string"},
        "recording": _RECORDING_STATE,
        "changed": {"type": "boolean", "description": "false when it was already so"},
    },
}
_PAUSE_INTERVAL = {
    "type": "object",
    "properties": {
        "start_sample": {"type": "integer"},
        "end_sample": {"type": ["integer", "null"]},
        "start_seconds": {"type": "number"},
        "end_seconds": {"type": ["number", "null"]},
    },
}
RECORDING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "call_id", "path", "started_at", "status", "pauses"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "call_id": {"type": "string"},
        "worker": {"type": "string"},
        "caller_leg": {"type": "string"},
        "agent_leg": {"type": "string"},
        "caller_record": {"type": ["integer", "null"], "description": "call_record id"},
        "agent_record": {"type": ["integer", "null"], "description": "call_record id"},
        "agent_id": _NULLABLE_STRING,
        "path": {"type": "string", "description": "the stereo WAV file on the server"},
        "channels": {"type": "integer"},
        "sample_rate": {"type": "integer"},
        "started_at": {"type": "string", "format": "date-time"},
        "ended_at": _NULLABLE_STRING,
        "duration_seconds": {"type": ["number", "null"]},
        "pauses": {"type": "array", "items": _PAUSE_INTERVAL},
        "status": {"enum": ["recording", "complete", "interrupted", "failed"]},
        "live_state": {
            "enum": ["recording", "paused", None],
            "description": "while the call is in progress: recording or paused",
        },
    },
}


def _call_id(request: web.Request) -> str:
    return request.match_info["call_id"]


async def list_calls(request: web.Request) -> web.StreamResponse:
    """Calls in progress, with their legs and recording state."""
    require_api_key(request)
    calls = request.app.get(CALLS_KEY)
    found = [] if calls is None else sorted(calls.calls.values(), key=lambda c: c.started_at)
    return web.json_response({"calls": [call.as_json() for call in found]})


async def _pause_or_resume(request: web.Request, pause: bool) -> web.StreamResponse:
    require_api_key(request)
    call_id = _call_id(request)
    calls = request.app.get(CALLS_KEY)
    try:
        if calls is None:
            raise CallNotFoundError(f"no call {call_id!r} is in progress")
        call, changed = await (calls.pause(call_id) if pause else calls.resume(call_id))
    except CallNotFoundError as error:
        raise HttpProblem(404, "call-not-found", str(error)) from None
    except NotRecordingError as error:
        raise HttpProblem(409, "not-recording", str(error)) from None
    except (WorkerCommandError, TimeoutError):
        raise HttpProblem(
            503, "media-worker-unavailable", "the media worker carrying the call did not comply"
        ) from None
    recording = call.recording
    assert recording is not None
    await _audit(request, call, "recording.pause" if pause else "recording.resume", changed)
    return web.json_response(
        {
            "call": call.id,
            "recording": {"id": str(recording.id), "state": recording.state.value},
            "changed": changed,
        }
    )


async def _audit(request: web.Request, call: AgentCall, action: str, changed: bool) -> None:
    assert call.recording is not None
    detail = {
        "recording": str(call.recording.id),
        "leg": call.caller_leg,
        "changed": changed,
        "request_id": request.get(REQUEST_ID_KEY),
    }
    await request.app[DATABASE_KEY].pool.execute(
        QUERIES["insert_audit_event"], API_ACTOR, action, f"call:{call.id}", json.dumps(detail)
    )


async def pause_recording(request: web.Request) -> web.StreamResponse:
    """Pause a call's recording (silence is recorded instead); idempotent."""
    return await _pause_or_resume(request, True)


async def resume_recording(request: web.Request) -> web.StreamResponse:
    """Resume a call's paused recording; idempotent."""
    return await _pause_or_resume(request, False)


async def recording_metadata(request: web.Request) -> web.StreamResponse:
    """A recording's metadata: its call, legs, file, length and pause intervals."""
    require_api_key(request)
    text = request.match_info["recording_id"]
    try:
        recording_id = uuid.UUID(text)
    except ValueError:
        raise HttpProblem(404, "recording-not-found", f"no recording has id {text!r}") from None
    body = await get_recording(request.app[DATABASE_KEY].pool, recording_id)
    if body is None:
        raise HttpProblem(404, "recording-not-found", f"no recording has id {text!r}")
    body["live_state"] = None
    calls = request.app.get(CALLS_KEY)
    call = None if calls is None else calls.calls.get(body["call_id"])
    if call is not None and call.recording is not None and call.recording.id == recording_id:
        state = call.recording.state.value
        body["live_state"] = state if state in ("recording", "paused") else None
    return web.json_response(body)


_CALL_ID = {
    "name": "call_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "the id GET /api/v1/calls lists",
}
_PAUSE_RESPONSES = {
    "200": {"description": "done (or already so)", "content": json_content(_PAUSE_SCHEMA)},
    "404": problem("no such call in progress"),
    "409": problem("the call is not being recorded"),
    "503": problem("the media worker did not comply"),
    **API_KEY_PROBLEMS,
}

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/api/v1/calls",
        list_calls,
        "Calls in progress, with legs and recording state",
        {
            "200": {
                "description": "the calls",
                "content": json_content(
                    {
                        "type": "object",
                        "required": ["calls"],
                        "properties": {"calls": {"type": "array", "items": CALL_SCHEMA}},
                    }
                ),
            },
            **API_KEY_PROBLEMS,
        },
        tag="calls",
        security=API_KEY,
    ),
    Operation(
        "POST",
        "/api/v1/calls/{call_id}/recording/pause",
        pause_recording,
        "Pause a call's recording (idempotent; audited)",
        _PAUSE_RESPONSES,
        tag="calls",
        security=API_KEY,
        parameters=(_CALL_ID,),
    ),
    Operation(
        "POST",
        "/api/v1/calls/{call_id}/recording/resume",
        resume_recording,
        "Resume a call's recording (idempotent; audited)",
        _PAUSE_RESPONSES,
        tag="calls",
        security=API_KEY,
        parameters=(_CALL_ID,),
    ),
    Operation(
        "GET",
        "/api/v1/recordings/{recording_id}",
        recording_metadata,
        "A recording's metadata and pause intervals",
        {
            "200": {"description": "the recording", "content": json_content(RECORDING_SCHEMA)},
            "404": problem("no such recording"),
            **API_KEY_PROBLEMS,
        },
        tag="calls",
        security=API_KEY,
        parameters=(
            {
                "name": "recording_id",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "format": "uuid"},
            },
        ),
    ),
)
