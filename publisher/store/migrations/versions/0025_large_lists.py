"""Indexes a large list needs, built without locking it.

The desk's list filtered by status reads `(status, id)` in id order and stops after a page;
on PostgreSQL a search by a part of the address or the name reads trigram indexes
(`pg_trgm`, GIN) instead of every row. Where `pg_trgm` cannot be installed (a managed
database without it, a role that may not create extensions) the search stays a scan, and
nothing else changes.

On PostgreSQL the indexes are built CONCURRENTLY beside the migration's transaction
(`publisher.store.live_indexes`), so a live list keeps taking signups, unsubscribes and
sends while they are built; a database several revisions behind, whose earlier revisions
lock the list in the same run anyway, gets them plainly. SQLite builds them plainly: its
writers wait for the build (about a second per 100,000 readers).

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from publisher.store import live_indexes

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

PLAIN = (("ix_subscribers_status_id", "ON subscribers (status, id)"),)
TRIGRAM = (
    ("ix_subscribers_email_trgm", "ON subscribers USING gin (email gin_trgm_ops)"),
    ("ix_subscribers_name_trgm", "ON subscribers USING gin (lower(name) gin_trgm_ops)"),
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        op.create_index("ix_subscribers_status_id", "subscribers", ["status", "id"])
        return
    if live_indexes.can_build_beside(bind, ["subscribers"]):
        wanted = PLAIN + TRIGRAM if _trigrams(bind, in_transaction=False) else PLAIN
        live_indexes.build_beside(bind, wanted)
        return
    wanted = PLAIN + TRIGRAM if _trigrams(bind, in_transaction=True) else PLAIN
    for name, target in wanted:
        bind.exec_driver_sql(f"CREATE INDEX {name} {target}")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for name, _ in TRIGRAM:
            bind.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
    op.drop_index("ix_subscribers_status_id", table_name="subscribers")


def _trigrams(conn: sa.Connection, *, in_transaction: bool) -> bool:
    """Whether pg_trgm is there or could be installed now; False (a scan stays) when not."""
    if conn.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'").first():
        return True
    if not conn.exec_driver_sql("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'").first():
        return False
    if not in_transaction:
        with conn.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as own:
            try:
                own.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            except sa.exc.DBAPIError:
                return False  # a role that may not create extensions: the search stays a scan
        return True
    try:
        with conn.begin_nested():  # a refusal must not abort the migration's transaction
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except sa.exc.DBAPIError:
        return False
    return True
