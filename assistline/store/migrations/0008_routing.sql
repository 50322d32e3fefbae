-- Routing (assistline.queue.routing): where each agent works (a SIP phone or
-- the browser console, the only place that takes video), since when it is
-- idle (when it last became available; longest idle is offered first) and
-- when its wrap-up ends; when each contact started waiting (its place in the
-- queue, kept when a declined offer puts it back), which agent its offer is
-- ringing, until when that offer's lease holds (a node that dies leaves it
-- to be reclaimed), and which agents it must not be offered to again yet.
ALTER TABLE agent
    ADD COLUMN works_in text NOT NULL DEFAULT 'sip' CHECK (works_in IN ('sip', 'console')),
    ADD COLUMN idle_since timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN wrap_up_until timestamptz;

-- An available agent became available when its state last changed.
UPDATE agent SET idle_since = state_since;

CREATE INDEX agent_available ON agent (idle_since, id) WHERE state = 'available';

ALTER TABLE contact
    ADD COLUMN queued_at timestamptz,
    ADD COLUMN offered_to text REFERENCES agent (id) ON DELETE SET NULL,
    ADD COLUMN offer_lease_until timestamptz,
    ADD CONSTRAINT contact_queued_has_queued_at
        CHECK (state NOT IN ('queued', 'offered') OR queued_at IS NOT NULL);

CREATE INDEX contact_waiting ON contact (queued_at, id) WHERE state = 'queued';
-- No agent holds two offers, whichever node made them.
CREATE UNIQUE INDEX contact_one_offer_per_agent ON contact (offered_to) WHERE state = 'offered';

CREATE TABLE contact_exclusion (
    contact_id uuid NOT NULL REFERENCES contact (id) ON DELETE CASCADE,
    agent_id text NOT NULL REFERENCES agent (id) ON DELETE CASCADE,
    excluded_until timestamptz NOT NULL,
    PRIMARY KEY (contact_id, agent_id)
);
