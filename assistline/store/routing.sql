-- Named queries of routing (assistline.queue.routing's shell, not wired yet):
-- load them with load_queries("assistline.store", "routing.sql"). Times are
-- the database's now(), so every node agrees on them; $n seconds are numbers.
-- An offer claims both rows in one transaction: offer_oldest_waiting_contact
-- with set_agent_state(busy), or claim_longest_idle_agent with offer_contact.

-- name: enqueue_contact
-- A contact starts waiting; a contact put back after a decline keeps its place.
UPDATE contact SET state = 'queued', queued_at = coalesce(queued_at, now()),
                   offered_to = NULL, offer_lease_until = NULL
WHERE id = $1 AND state IN ('created', 'joined', 'offered')
RETURNING id, media, queued_at;

-- name: offer_oldest_waiting_contact
-- Agent $1 is free: offer it the oldest waiting contact that does not exclude
-- it, leased for $2 seconds. Nodes claiming at once skip each other's rows;
-- no row means nothing waits for this agent.
WITH next AS (
    SELECT c.id FROM contact c
    WHERE c.state = 'queued'
      AND NOT EXISTS (SELECT 1 FROM contact_exclusion x
                      WHERE x.contact_id = c.id AND x.agent_id = $1 AND x.excluded_until > now())
    ORDER BY c.queued_at, c.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE contact SET state = 'offered', offered_to = $1,
                   offer_lease_until = now() + make_interval(secs => $2)
FROM next WHERE contact.id = next.id
RETURNING contact.id, contact.media, contact.queued_at;

-- name: claim_longest_idle_agent
-- Contact $1 waits: claim the available agent idle longest that it does not
-- exclude (equal times: the smallest id), preferring console agents when
-- $2 (video) is true; the agent is busy from now. No row: every agent is taken.
WITH next AS (
    SELECT a.id FROM agent a
    WHERE a.state = 'available'
      AND NOT EXISTS (SELECT 1 FROM contact_exclusion x
                      WHERE x.contact_id = $1 AND x.agent_id = a.id AND x.excluded_until > now())
    ORDER BY ($2::boolean AND a.works_in = 'console') DESC, a.idle_since, a.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE agent SET state = 'busy', state_since = now()
FROM next WHERE agent.id = next.id
RETURNING agent.id, agent.works_in, agent.idle_since;

-- name: offer_contact
-- Contact $1 rings agent $2 (claimed by claim_longest_idle_agent), leased for $3 seconds.
UPDATE contact SET state = 'offered', offered_to = $2,
                   offer_lease_until = now() + make_interval(secs => $3)
WHERE id = $1 AND state = 'queued'
RETURNING id;

-- name: exclude_agent_for_contact
-- Agent $2 declined contact $1 (or did not answer): not again for $3 seconds.
INSERT INTO contact_exclusion (contact_id, agent_id, excluded_until)
VALUES ($1, $2, now() + make_interval(secs => $3))
ON CONFLICT (contact_id, agent_id) DO UPDATE SET excluded_until = excluded.excluded_until;

-- name: agent_declined
-- The declining agent is available again, idle from now (behind colleagues).
UPDATE agent SET state = 'available', state_since = now(), idle_since = now()
WHERE id = $1 AND state = 'busy'
RETURNING id;

-- name: reclaim_expired_offers
-- Offers whose lease ran out (their node died): the contacts wait again, in
-- their place. Reclaiming means an offer may ring twice: at least once.
-- offered_to: the agent it was ringing, to be made available again.
WITH expired AS (
    SELECT id, offered_to FROM contact
    WHERE state = 'offered' AND offer_lease_until < now()
    FOR UPDATE SKIP LOCKED
)
UPDATE contact SET state = 'queued', offered_to = NULL, offer_lease_until = NULL
FROM expired WHERE contact.id = expired.id
RETURNING contact.id, expired.offered_to;

-- name: queue_positions
SELECT id, row_number() OVER (ORDER BY queued_at, id) AS position
FROM contact WHERE state = 'queued'
ORDER BY queued_at, id;

-- name: start_wrap_up
-- Agent $1's call ended: it wraps up for $2 seconds.
UPDATE agent SET state = 'wrap_up', state_since = now(),
                 wrap_up_until = now() + make_interval(secs => $2)
WHERE id = $1 AND state = 'busy'
RETURNING id, wrap_up_until;

-- name: end_wrap_ups
-- Wrap-ups that are over: the agents are available, idle from the wrap-up's end.
UPDATE agent SET state = 'available', state_since = wrap_up_until,
                 idle_since = wrap_up_until, wrap_up_until = NULL
WHERE state = 'wrap_up' AND wrap_up_until <= now()
RETURNING id, idle_since;

-- name: forget_expired_exclusions
DELETE FROM contact_exclusion WHERE excluded_until <= now();
