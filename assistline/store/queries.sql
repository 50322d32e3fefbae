-- Named queries of the store. Each starts with "-- name: <name>" and may
-- carry a comment line after it; load them with assistline.store.queries.

-- name: ping
SELECT 1;

-- name: create_migration_table
CREATE TABLE IF NOT EXISTS schema_migration (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: lock_migrations
-- Serialises migrations across nodes starting at once; released at commit.
SELECT pg_advisory_xact_lock(hashtext('assistline.schema_migration'));

-- name: applied_migrations
SELECT version, name, applied_at FROM schema_migration ORDER BY version;

-- name: record_migration
INSERT INTO schema_migration (version, name) VALUES ($1, $2);

-- name: database_exists
SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1);

-- name: insert_audit_event
INSERT INTO audit_event (actor, action, subject, detail)
VALUES ($1, $2, $3, $4)
RETURNING id;

-- name: insert_agent
INSERT INTO agent (id, name, sip_username, sip_realm, sip_ha1)
VALUES ($1, $2, $3, $4, $5)
RETURNING id, name, sip_username, state, state_since, works_in;

-- name: get_agent
SELECT id, name, sip_username, state, state_since, works_in FROM agent WHERE id = $1;

-- name: list_agents
SELECT id, name, sip_username, state, state_since, works_in FROM agent ORDER BY id;

-- name: set_agent_state
-- $3: where the agent takes calls ('sip' or 'console'); NULL keeps it.
UPDATE agent SET state = $2, state_since = now(), works_in = coalesce($3, works_in)
WHERE id = $1
RETURNING id, name, sip_username, state, state_since, works_in;

-- name: set_agent_password
UPDATE agent SET sip_realm = $2, sip_ha1 = $3 WHERE id = $1 RETURNING id;

-- name: agent_credentials
-- What the SIP edge checks digest authentication against, for one realm.
SELECT sip_username, sip_ha1 FROM agent WHERE sip_realm = $1 ORDER BY sip_username;

-- name: insert_call_record
INSERT INTO call_record (leg, worker, direction, from_uri, to_uri)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (leg) WHERE ended_at IS NULL DO NOTHING;

-- name: answer_call_record
UPDATE call_record SET answered_at = now()
WHERE leg = $1 AND ended_at IS NULL AND answered_at IS NULL;

-- name: records_without_flush_wait
-- Inside a call records batch only (see sip/records.py).
SET LOCAL synchronous_commit = off;

-- name: end_call_record
UPDATE call_record
SET ended_at = now(), hangup_status = $2, hangup_reason = $3,
    outcome = CASE WHEN $2 = 0 THEN 'worker_died'
                   WHEN answered_at IS NOT NULL THEN 'answered'
                   ELSE 'unanswered' END
WHERE leg = $1 AND ended_at IS NULL;

-- name: media_stats_call_record
-- A leg's latest record on that worker; stats may arrive just after its hangup.
UPDATE call_record
SET rx_packets = coalesce(rx_packets, 0) + $3,
    rx_lost = coalesce(rx_lost, 0) + $4,
    rx_jitter_max_ms = greatest(coalesce(rx_jitter_max_ms, 0), $5),
    jbuf_lost = coalesce(jbuf_lost, 0) + $6,
    jbuf_discarded = coalesce(jbuf_discarded, 0) + $7,
    jbuf_delay_max_ms = greatest(coalesce(jbuf_delay_max_ms, 0), $8)
WHERE id = (SELECT max(id) FROM call_record WHERE leg = $1 AND worker = $2);

-- name: agent_by_sip_username
-- Routing: the agent an internal extension (a SIP username) belongs to.
SELECT id, name, sip_username, state, state_since, works_in FROM agent WHERE sip_username = $1;

-- name: insert_recording
-- The legs' call records are the latest rows of those legs on that worker.
INSERT INTO recording (id, call_id, worker, caller_leg, agent_leg, agent_id, path,
                       channels, sample_rate, caller_record, agent_record)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
        (SELECT max(id) FROM call_record WHERE worker = $3 AND leg = $4),
        (SELECT max(id) FROM call_record WHERE worker = $3 AND leg = $5));

-- name: complete_recording
-- $4 is the final status; a row is completed once.
UPDATE recording
SET ended_at = now(), duration_seconds = $2, pauses = $3::jsonb, status = $4,
    caller_record = coalesce(caller_record,
        (SELECT max(id) FROM call_record WHERE worker = recording.worker
                                          AND leg = recording.caller_leg)),
    agent_record = coalesce(agent_record,
        (SELECT max(id) FROM call_record WHERE worker = recording.worker
                                          AND leg = recording.agent_leg))
WHERE id = $1 AND status = 'recording';

-- name: get_recording
SELECT id, call_id, worker, caller_leg, agent_leg, caller_record, agent_record, agent_id,
       path, channels, sample_rate, started_at, ended_at, duration_seconds, pauses, status
FROM recording WHERE id = $1;

-- name: insert_contact
INSERT INTO contact (id, customer_id, account, balance_cents, currency, step, fields,
                     context_trail, media)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9)
RETURNING created_at;

-- name: insert_contact_token
-- $1 is the token's SHA-256: the token itself is never stored.
INSERT INTO contact_token (token_hash, contact_id, expires_at)
VALUES ($1, $2, now() + make_interval(secs => $3))
RETURNING expires_at;

-- name: get_contact
SELECT id, customer_id, account, balance_cents, currency, step, fields, context_trail,
       media, state, created_at, ended_at, end_reason
FROM contact WHERE id = $1;

-- name: consume_contact_token
-- Marks a token used, once, while it is valid; $2 is the time to judge by
-- (NULL: the database's clock). One statement, so two pages presenting the
-- same token at once cannot both win.
UPDATE contact_token AS t SET used_at = coalesce($2::timestamptz, now())
FROM contact AS c
WHERE t.token_hash = $1 AND t.used_at IS NULL
  AND t.expires_at > coalesce($2::timestamptz, now())
  AND c.id = t.contact_id
RETURNING t.contact_id, c.media;

-- name: join_contact
-- The page joined (its token spent): a contact not yet joined and not ended.
UPDATE contact SET state = 'joined' WHERE id = $1 AND state = 'created' RETURNING id;

-- name: end_contact
-- The page hung up or went away; a contact ended already keeps its first reason.
UPDATE contact SET state = 'ended', ended_at = now(), end_reason = $2
WHERE id = $1 AND ended_at IS NULL;

-- name: contact_token_status
-- Why consume_contact_token found nothing: no row means no such token.
SELECT used_at IS NOT NULL AS used, expires_at <= coalesce($2::timestamptz, now()) AS expired
FROM contact_token WHERE token_hash = $1;

-- name: lock_demo_client
-- Serialises one client's demo contacts, so its rate limit is counted exactly.
SELECT pg_advisory_xact_lock(hashtext('assistline.demo_contact:' || $1));

-- name: recent_demo_contacts
-- Demo contacts of one client ($1, the audit subject) in the last $2 seconds,
-- and how many seconds until the oldest of them leaves that window.
SELECT count(*) AS created,
       ceil(extract(epoch FROM min(at) + make_interval(secs => $2) - now()))::integer
           AS retry_after
FROM audit_event
WHERE subject = $1 AND action = 'contact.create' AND at > now() - make_interval(secs => $2);

-- name: set_agent_console_password
-- A new console password (its scrypt string) signs out every console session of the agent.
WITH revoked AS (
    UPDATE agent_session SET revoked_at = now()
    WHERE agent_id = $1 AND revoked_at IS NULL AND expires_at > now()
)
UPDATE agent SET console_password = $2 WHERE id = $1 RETURNING id;

-- name: agent_console_password
SELECT id, name, console_password FROM agent WHERE id = $1;

-- name: lock_agent_sign_in
-- Serialises the sign-ins of one (agent, address) key ($1), so its failures are counted exactly.
SELECT pg_advisory_xact_lock(hashtext('assistline.agent_sign_in:' || $1));

-- name: recent_sign_in_failures
-- Failed sign-ins of one key ($1, the audit subject) in the last $2 seconds and
-- since its last success, and seconds until the oldest of them leaves the window.
SELECT count(*) AS failures,
       ceil(extract(epoch FROM min(at) + make_interval(secs => $2) - now()))::integer
           AS retry_after
FROM audit_event
WHERE subject = $1 AND action = 'agent.sign_in_failed'
  AND at > now() - make_interval(secs => $2)
  AND at > coalesce((SELECT max(at) FROM audit_event
                     WHERE subject = $1 AND action = 'agent.sign_in'), '-infinity');

-- name: insert_agent_session
INSERT INTO agent_session (token_hash, agent_id, expires_at)
VALUES ($1, $2, now() + make_interval(secs => $3))
RETURNING expires_at;

-- name: agent_by_session
-- The agent of a session that is neither expired nor revoked.
SELECT a.id, a.name, a.state, extract(epoch FROM s.expires_at - now()) AS seconds_left
FROM agent_session AS s JOIN agent AS a ON a.id = s.agent_id
WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now();

-- name: revoke_agent_session
UPDATE agent_session SET revoked_at = now()
WHERE token_hash = $1 AND revoked_at IS NULL
RETURNING agent_id;

-- name: account_for_check
-- The payment line: an account a caller names, with its lock.
SELECT number, customer_id, name, postal_code, birth_date, balance_cents, minimum_due_cents,
       due_date, days_past_due, currency, failed_checks, locked_until
FROM account WHERE number = $1;

-- name: account_check_failed
-- $2: failures after which the account is locked; $3: for how long.
UPDATE account
SET failed_checks = failed_checks + 1,
    locked_until = CASE WHEN failed_checks + 1 >= $2 THEN now() + $3::interval END
WHERE number = $1
RETURNING failed_checks, locked_until;

-- name: account_check_passed
UPDATE account SET failed_checks = 0, locked_until = NULL WHERE number = $1;

-- name: upsert_account
INSERT INTO account (number, customer_id, name, postal_code, birth_date, balance_cents,
                     minimum_due_cents, due_date, days_past_due, currency)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (number) DO UPDATE SET
    customer_id = excluded.customer_id, name = excluded.name,
    postal_code = excluded.postal_code, birth_date = excluded.birth_date,
    balance_cents = excluded.balance_cents, minimum_due_cents = excluded.minimum_due_cents,
    due_date = excluded.due_date, days_past_due = excluded.days_past_due,
    currency = excluded.currency, updated_at = now();

-- name: insert_payment
INSERT INTO payment (id, account, channel, call_id, amount_cents, fee_cents, currency, outcome,
                     gateway_payment_id, brand, last4, decline_code, idempotency_key,
                     confirmation)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14);

-- name: apply_payment
UPDATE account
SET balance_cents = greatest(balance_cents - $2, 0),
    minimum_due_cents = greatest(minimum_due_cents - $2, 0),
    updated_at = now()
WHERE number = $1;
