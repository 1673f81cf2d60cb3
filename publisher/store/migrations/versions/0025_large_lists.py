"""Indexes a large list needs, built without locking it.

The desk's list filtered by status reads `(status, id)` in id order and stops after a page;
on PostgreSQL a search by a part of the address or the name reads trigram indexes
(`pg_trgm`, GIN) instead of every row. Where `pg_trgm` cannot be installed (a managed
database without it, a role that may not create extensions) the search stays a scan, and
nothing else changes.

On PostgreSQL the indexes are built CONCURRENTLY, on a connection of their own outside
the migration's transaction, so a live list keeps taking signups, unsubscribes and sends
while they are built. `open_store` runs the revisions in one transaction holding the
migration lock; a concurrent build waits for every transaction that holds a lock on its
table, so when an earlier revision of the same run has touched `subscribers` (a database
several revisions behind), this one builds them plainly inside the transaction, which
already locks the table. An index a failed concurrent build left invalid is dropped and
built again. SQLite builds them plainly: its writers wait for the build (about a second
per 100,000 readers).

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

PLAIN = (("ix_subscribers_status_id", "subscribers", ["status", "id"]),)
TRIGRAM = (
    ("ix_subscribers_email_trgm", "CREATE INDEX CONCURRENTLY ix_subscribers_email_trgm "
     "ON subscribers USING gin (email gin_trgm_ops)"),
    ("ix_subscribers_name_trgm", "CREATE INDEX CONCURRENTLY ix_subscribers_name_trgm "
     "ON subscribers USING gin (lower(name) gin_trgm_ops)"),
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        for name, table, columns in PLAIN:
            op.create_index(name, table, columns)
        return
    if _holds_lock_on(bind, "subscribers"):
        for name, table, columns in PLAIN:
            op.create_index(name, table, columns)
        if _trigrams(bind, in_transaction=True):
            for _, statement in TRIGRAM:
                bind.exec_driver_sql(statement.replace(" CONCURRENTLY", ""))
        return
    with bind.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as own:
        for name, table, columns in PLAIN:
            _drop_if_invalid(own, name)
            cols = ", ".join(columns)
            own.exec_driver_sql(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table} ({cols})")
        if _trigrams(own, in_transaction=False):
            for name, statement in TRIGRAM:
                _drop_if_invalid(own, name)
                own.exec_driver_sql(statement.replace("INDEX CONCURRENTLY", "INDEX CONCURRENTLY IF NOT EXISTS"))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for name, _ in TRIGRAM:
            bind.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
    for name, table, _ in PLAIN:
        op.drop_index(name, table_name=table)


def _holds_lock_on(conn: sa.Connection, table: str) -> bool:
    """Whether this transaction already holds a lock on `table` (an earlier revision touched it)."""
    return bool(
        conn.exec_driver_sql(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = pg_backend_pid() "
            f"AND relation = to_regclass('{table}'))"
        ).scalar()
    )


def _trigrams(conn: sa.Connection, *, in_transaction: bool) -> bool:
    """Whether pg_trgm is there or could be installed now; False (a scan stays) when not."""
    if conn.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'").first():
        return True
    if not conn.exec_driver_sql("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'").first():
        return False
    try:
        if in_transaction:
            with conn.begin_nested():  # a refusal must not abort the migration's transaction
                conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        else:
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except sa.exc.DBAPIError:
        return False  # a role that may not create extensions: the search stays a scan
    return True


def _drop_if_invalid(conn: sa.Connection, name: str) -> None:
    invalid = conn.exec_driver_sql(
        "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        f"WHERE c.relname = '{name}' AND NOT i.indisvalid"
    ).first()
    if invalid:
        conn.exec_driver_sql(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
