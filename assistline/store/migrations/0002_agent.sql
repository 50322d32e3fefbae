-- The agent directory: who can take contacts, how their phone signs in, and
-- their state for routing. SIP digest authentication can only check a
-- password against md5(username:realm:password) (HA1), so that hash is what
-- is stored; the password itself never is.
CREATE TABLE agent (
    id text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9._-]{1,64}$'),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    sip_username text NOT NULL UNIQUE CHECK (sip_username ~ '^[A-Za-z0-9._-]{1,64}$'),
    sip_realm text NOT NULL,
    sip_ha1 text NOT NULL CHECK (sip_ha1 ~ '^[0-9a-f]{32}$'),
    state text NOT NULL DEFAULT 'offline'
        CHECK (state IN ('offline', 'available', 'busy', 'wrap_up')),
    state_since timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now()
);
