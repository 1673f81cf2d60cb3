"""The desk's search by a part of the address or the name reads an index on SQLite too.

SQLite has no ordinary index for a part of a text: a search read the list in steps for
at most 50 ms and, on a long list, stopped before the end with a "Look further" link.
Now an FTS5 table with the trigram tokenizer, `subscriber_search`, indexes every
reader's address and name. It is an external-content table: the text stays in
`subscribers` only, the index holds its trigrams. Three triggers keep it in step in the
transaction of every insert, every change of the address or the name (a change of status
does not touch it) and every delete, erasures included. A search of three characters or
more reads it (`store.subscribers.search_page`); a shorter one cannot, a trigram having
three, and scans as before. Where the SQLite library was built without FTS5 nothing is
made and every search scans.

An erased reader's trigrams are marked deleted at once, as the row is; like the row's
own bytes in SQLite's free pages, they leave the file as later writes merge the index.

A later revision that rebuilds `subscribers` (SQLite's batch ALTER: copy, drop, rename)
drops these triggers with the old table and must make them again, and rebuild the index.

PostgreSQL reads pg_trgm's indexes (0025): nothing changes there.

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None

TABLE = (
    "CREATE VIRTUAL TABLE subscriber_search USING fts5("
    "email, name, content='subscribers', content_rowid='id', tokenize='trigram')"
)
TRIGGERS = (
    """CREATE TRIGGER subscriber_search_insert AFTER INSERT ON subscribers BEGIN
        INSERT INTO subscriber_search (rowid, email, name) VALUES (new.id, new.email, new.name);
    END""",
    """CREATE TRIGGER subscriber_search_update AFTER UPDATE OF email, name ON subscribers BEGIN
        INSERT INTO subscriber_search (subscriber_search, rowid, email, name)
        VALUES ('delete', old.id, old.email, old.name);
        INSERT INTO subscriber_search (rowid, email, name) VALUES (new.id, new.email, new.name);
    END""",
    """CREATE TRIGGER subscriber_search_delete AFTER DELETE ON subscribers BEGIN
        INSERT INTO subscriber_search (subscriber_search, rowid, email, name)
        VALUES ('delete', old.id, old.email, old.name);
    END""",
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite" or not _has_fts5(bind):
        return
    bind.exec_driver_sql(TABLE)
    bind.exec_driver_sql("INSERT INTO subscriber_search (subscriber_search) VALUES ('rebuild')")
    for trigger in TRIGGERS:
        bind.exec_driver_sql(trigger)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    for name in ("insert", "update", "delete"):
        bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS subscriber_search_{name}")
    bind.exec_driver_sql("DROP TABLE IF EXISTS subscriber_search")


def _has_fts5(conn: sa.Connection) -> bool:
    return bool(conn.exec_driver_sql("SELECT sqlite_compileoption_used('ENABLE_FTS5')").scalar())
