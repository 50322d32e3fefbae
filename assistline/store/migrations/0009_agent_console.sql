-- The agent console (assistline.signalling.agent_auth): an agent signs in
-- with a password of its own, stored only as a memory-hard scrypt hash in a
-- self-describing string (scrypt$N$r$p$salt$hash), never the password; and
-- the sessions a sign-in opens, by the SHA-256 of their random token (the
-- token is handed to the browser once and never stored), each ending at
-- expires_at or when revoked (signing out, a new console password).
ALTER TABLE agent
    ADD COLUMN console_password text CHECK (console_password LIKE 'scrypt$%');

CREATE TABLE agent_session (
    token_hash bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    agent_id text NOT NULL REFERENCES agent (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    CHECK (expires_at > created_at)
);

CREATE INDEX agent_session_agent_id ON agent_session (agent_id);
