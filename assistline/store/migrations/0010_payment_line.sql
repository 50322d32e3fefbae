-- The payment line: accounts callers identify themselves with, and the
-- payments they make. A payment row keeps only what PCI DSS allows to be
-- kept after authorisation: the gateway's id, brand, last four digits,
-- amount and result. Never the number, the expiry or the security code.
CREATE TABLE account (
    number text PRIMARY KEY CHECK (number ~ '^[0-9]{4,19}$'),
    customer_id text NOT NULL CHECK (length(customer_id) BETWEEN 1 AND 128),
    name text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    postal_code text NOT NULL CHECK (postal_code ~ '^[0-9]{5}$'),
    birth_date date,
    balance_cents bigint NOT NULL CHECK (balance_cents >= 0),
    minimum_due_cents bigint NOT NULL DEFAULT 0 CHECK (minimum_due_cents >= 0),
    due_date date NOT NULL,
    days_past_due integer NOT NULL DEFAULT 0 CHECK (days_past_due >= 0),
    currency text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    -- Failed identifications in a row, and until when the line refuses the account.
    failed_checks integer NOT NULL DEFAULT 0,
    locked_until timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE payment (
    id uuid PRIMARY KEY,
    -- The account paid: the payment line's, or a contact's (the business's own ids).
    account text NOT NULL CHECK (length(account) BETWEEN 1 AND 64),
    channel text NOT NULL CHECK (channel IN ('ivr', 'agent', 'web')),
    call_id text NOT NULL,
    amount_cents bigint NOT NULL CHECK (amount_cents > 0),
    fee_cents bigint NOT NULL DEFAULT 0 CHECK (fee_cents >= 0),
    currency text NOT NULL DEFAULT 'USD',
    outcome text NOT NULL CHECK (outcome IN ('approved', 'declined', 'failed', 'abandoned')),
    -- The gateway's payment id (its token), and what identifies the card to a person.
    gateway_payment_id text,
    brand text,
    last4 text CHECK (last4 ~ '^[0-9]{4}$'),
    decline_code text,
    idempotency_key text,
    -- What the caller reads back: digits only, not the gateway's id.
    confirmation text CHECK (confirmation ~ '^[0-9]{8}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX payment_account_created ON payment (account, created_at);
