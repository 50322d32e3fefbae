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
