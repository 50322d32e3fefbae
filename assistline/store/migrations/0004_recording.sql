-- Recordings of bridged calls: one row per WAV file a media worker wrote.
-- A row is created when the recording starts (status 'recording') and
-- completed from the recording's JSON sidecar when the recorded leg ends:
-- its length and the intervals where it was paused (secure capture, or the
-- API), as sample counts and seconds. Never audio, never digits.
CREATE TABLE recording (
    id uuid PRIMARY KEY,
    call_id text NOT NULL,
    worker text NOT NULL,
    caller_leg text NOT NULL,
    agent_leg text NOT NULL,
    caller_record bigint REFERENCES call_record (id),
    agent_record bigint REFERENCES call_record (id),
    agent_id text,
    path text NOT NULL UNIQUE,
    channels smallint NOT NULL DEFAULT 2,
    sample_rate integer NOT NULL DEFAULT 16000,
    started_at timestamptz NOT NULL DEFAULT now(),
    ended_at timestamptz,
    duration_seconds double precision CHECK (duration_seconds >= 0),
    pauses jsonb NOT NULL DEFAULT '[]'::jsonb,
    status text NOT NULL DEFAULT 'recording'
        CHECK (status IN ('recording', 'complete', 'interrupted', 'failed')),
    CHECK ((status = 'recording') = (ended_at IS NULL))
);

CREATE INDEX recording_call_id ON recording (call_id);
CREATE INDEX recording_started_at ON recording (started_at);
