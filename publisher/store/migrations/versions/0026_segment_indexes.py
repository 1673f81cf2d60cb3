"""Indexes that segment counts read on a large list.

A segment's time-zone conditions read `(status, timezone)` among active readers instead
of every row (the zone is known for a few readers, and one zone holds fewer still).

On PostgreSQL the indexes are built CONCURRENTLY beside the migration's transaction
(`publisher.store.live_indexes`), so a list at 0025 keeps taking signups, unsubscribes
and sends while they are built; an index a failed build left invalid is built again. A
concurrent build cannot run beside a transaction that has written, and alembic stamps
each revision as it goes: in a run that starts further back they are built plainly,
like every index after the run's first revision. SQLite builds them plainly: its writers
wait for the build (about a second per 100,000 readers).

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

from publisher.store import live_indexes

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

INDEXES = (("ix_subscribers_status_timezone", "subscribers", ["status", "timezone"]),)


def upgrade() -> None:
    bind = op.get_bind()
    if live_indexes.can_build_beside(bind, {table for _, table, _ in INDEXES}):
        live_indexes.build_beside(
            bind, [(name, f"ON {table} ({', '.join(columns)})") for name, table, columns in INDEXES]
        )
        return
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)
