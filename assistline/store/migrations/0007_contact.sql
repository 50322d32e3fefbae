-- Contacts: one customer asking for help from a page of the business's
-- self-service (click-for-assistance), with what they were doing there, so
-- the agent who takes it sees it. Created by the business backend (or the
-- demo route); its state follows it through the queue to its end.
CREATE TABLE contact (
    id uuid PRIMARY KEY,
    customer_id text NOT NULL CHECK (length(customer_id) BETWEEN 1 AND 128),
    account text NOT NULL CHECK (length(account) BETWEEN 1 AND 64),
    balance_cents bigint CHECK (balance_cents >= 0),
    currency text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    -- The page or step the customer was on when they asked.
    step text CHECK (length(step) <= 200),
    -- Free-form context; the API bounds its JSON to 32 KB (jsonb's own text
    -- form is spaced differently, so the size is checked there, not here).
    fields jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(fields) = 'object'),
    -- [{at, step, detail}, …]: what the customer did before asking.
    context_trail jsonb NOT NULL DEFAULT '[]'::jsonb
        CHECK (jsonb_typeof(context_trail) = 'array' AND jsonb_array_length(context_trail) <= 50),
    media text NOT NULL CHECK (media IN ('voice', 'video')),
    state text NOT NULL DEFAULT 'created'
        CHECK (state IN ('created', 'joined', 'queued', 'offered', 'connected', 'ended',
                         'expired')),
    created_at timestamptz NOT NULL DEFAULT now(),
    ended_at timestamptz,
    end_reason text,
    CHECK ((state IN ('ended', 'expired')) = (ended_at IS NOT NULL))
);

CREATE INDEX contact_created_at ON contact (created_at);

-- Join tokens: what the customer's page presents once to join its contact.
-- Only the SHA-256 of a token is stored, so the table cannot be used to join
-- anyone's contact; a token is single-use (used_at) and short-lived.
CREATE TABLE contact_token (
    token_hash bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    contact_id uuid NOT NULL REFERENCES contact (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);

CREATE INDEX contact_token_contact_id ON contact_token (contact_id);
