"""The desk's list of who an issue went to reads a page of copies in id order, per state.

A page of an issue's copies is read as one short range per state on
`(issue_id, state, id)` (`publisher.store.ledger.reading`): at a million copies the
thousandth page costs what the first does. SQLite's `(issue_id, state)` index keeps the
row id last and would serve alone; PostgreSQL's does not, and without this one a page
would sort every copy of the issue in the state.

On PostgreSQL the index is built CONCURRENTLY beside the migration's transaction
(`publisher.store.live_indexes`), so sends, signups and unsubscribes keep writing while it
is built; an index a failed build left invalid is built again. SQLite builds it plainly:
its writers wait for the build (about a second per 100,000 copies).

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

from publisher.store import live_indexes

revision = "0035"
down_revision = "0034"
branch_labels = None
depends_on = None

INDEXES = (("ix_deliveries_issue_state_id", "deliveries", ["issue_id", "state", "id"]),)


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
