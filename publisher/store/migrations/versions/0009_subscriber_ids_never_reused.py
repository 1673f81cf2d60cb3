"""Subscriber ids are never reused, on SQLite as on PostgreSQL.

SQLite gives a new row the highest id in the table plus one, so erasing the newest
subscriber handed their id to the next person; with AUTOINCREMENT it never goes back.
PostgreSQL's serial column draws from a sequence that never goes back already.

On SQLite the table is rebuilt in batch mode (copy, drop, rename), keeping its rows,
indexes and constraints. Dropping a table that others reference with foreign keys
switched on deletes their tags and empties the events' and deliveries' subscriber_id
(the pragma cannot be switched off inside the migration's transaction), so those links
are kept aside in temporary tables first and put back after. Ids erased before this
revision cannot be known; the counter starts at the highest id kept.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_KEPT = (
    ("keep_subscriber_tags", "SELECT subscriber_id, tag FROM subscriber_tags"),
    ("keep_event_subscribers", "SELECT id, subscriber_id FROM events WHERE subscriber_id IS NOT NULL"),
    ("keep_delivery_subscribers", "SELECT id, subscriber_id FROM deliveries WHERE subscriber_id IS NOT NULL"),
)


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name, query in _KEPT:
        op.execute(f"CREATE TEMP TABLE {name} AS {query}")
    with op.batch_alter_table(
        "subscribers", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass
    op.execute("DELETE FROM subscriber_tags")
    op.execute("INSERT INTO subscriber_tags (subscriber_id, tag) SELECT subscriber_id, tag FROM keep_subscriber_tags")
    for table, kept in (("events", "keep_event_subscribers"), ("deliveries", "keep_delivery_subscribers")):
        op.execute(
            f"UPDATE {table} SET subscriber_id = (SELECT k.subscriber_id FROM {kept} k WHERE k.id = {table}.id) "
            f"WHERE id IN (SELECT id FROM {kept})"
        )
    for name, _ in _KEPT:
        op.execute(f"DROP TABLE {name}")


def upgrade() -> None:
    _rebuild(autoincrement=True)


def downgrade() -> None:
    _rebuild(autoincrement=False)
