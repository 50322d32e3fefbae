"""Store: PostgreSQL as the system of record, through asyncpg.

It owns the embedded PostgreSQL started when no ``DATABASE_URL`` is given,
numbered SQL migrations applied at start-up, named queries kept in ``.sql``
files, and the connection pool every other component borrows from.
"""
