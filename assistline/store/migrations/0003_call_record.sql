-- Call detail records: one row per SIP leg a media worker carried. Leg ids
-- restart when a worker restarts, so rows have their own id and a leg's open
-- row is the one not yet ended.
CREATE TABLE call_record (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    leg text NOT NULL,
    worker text NOT NULL,
    direction text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    from_uri text NOT NULL DEFAULT '',
    to_uri text NOT NULL DEFAULT '',
    started_at timestamptz NOT NULL DEFAULT now(),
    answered_at timestamptz,
    ended_at timestamptz,
    hangup_status integer,
    hangup_reason text,
    outcome text CHECK (outcome IN ('answered', 'unanswered', 'worker_died'))
);

CREATE UNIQUE INDEX call_record_open_leg ON call_record (leg) WHERE ended_at IS NULL;
CREATE INDEX call_record_started_at ON call_record (started_at);
