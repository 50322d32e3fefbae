-- The audit trail: who did what to which subject. Written by secure capture,
-- agent actions and administration; it never holds card data.
CREATE TABLE audit_event (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    action text NOT NULL,
    subject text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX audit_event_subject_at ON audit_event (subject, at);
