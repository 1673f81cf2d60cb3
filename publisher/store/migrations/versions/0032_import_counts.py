"""A large import moves the kept counts once a chunk, not once a reader.

On SQLite the row triggers of 0027 cost an import of a million readers as much again as
its own writes: a row of `list_counts` and one of `event_days` updated in place for
every reader and every tag. The triggers that an import sets off (a reader added, a
status moved, a tag added, an event recorded) now stand aside while `counts_by_import`
holds a row, and the import adds what each chunk moved to the counts itself, in the
chunk's statements (`store.subscriber_import`).

The import writes that row first in its transaction and deletes it before committing,
so no other connection ever sees it: every other writer still goes through the
triggers, and a crash or a failed import rolls the row back with the readers and
their counts. SQLite has one writer at a time, so no change of another can slip into
a chunk's counts.

PostgreSQL keeps writing change lines that writers running at the same time never wait
on, but for a statement that adds readers, tags or events it now writes them once a
statement, not once a row: triggers FOR EACH STATEMENT read the rows added from their
transition table and append one line per status, tag or day (an import's chunk of 500
readers, written as one INSERT, is a few lines, not 1,500). They read the same
statuses the row triggers read, in the same statement, so every writer, the import or
any other, is counted exactly as before. Status moves, tags removed and erasures stay
row triggers. `counts_by_import` is made there too, to keep one schema, and stays empty.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None

_KINDS = "'subscribe', 'confirm', 'unsubscribe', 'bounce', 'complaint'"
_NO_IMPORT = "NOT EXISTS (SELECT 1 FROM counts_by_import)"

# 0027's triggers that an import sets off, with the guard; the others are left as they were.
_GUARDED = {
    "list_counts_subscriber_added": f"""CREATE TRIGGER list_counts_subscriber_added AFTER INSERT ON subscribers
    WHEN {_NO_IMPORT} BEGIN
        INSERT INTO list_counts (status, tag, number) VALUES (NEW.status, '', 1)
        ON CONFLICT (status, tag) DO UPDATE SET number = number + 1;
    END""",
    "list_counts_subscriber_moved": f"""CREATE TRIGGER list_counts_subscriber_moved
    AFTER UPDATE OF status ON subscribers WHEN OLD.status <> NEW.status AND {_NO_IMPORT} BEGIN
        UPDATE list_counts SET number = number - 1 WHERE status = OLD.status
            AND (tag = '' OR tag IN (SELECT tag FROM subscriber_tags WHERE subscriber_id = NEW.id));
        INSERT INTO list_counts (status, tag, number)
            SELECT NEW.status, '', 1
            UNION ALL SELECT NEW.status, tag, 1 FROM subscriber_tags WHERE subscriber_id = NEW.id
        ON CONFLICT (status, tag) DO UPDATE SET number = number + 1;
    END""",
    "list_counts_tag_added": f"""CREATE TRIGGER list_counts_tag_added AFTER INSERT ON subscriber_tags
    WHEN {_NO_IMPORT} BEGIN
        INSERT INTO list_counts (status, tag, number)
            SELECT status, NEW.tag, 1 FROM subscribers WHERE id = NEW.subscriber_id
        ON CONFLICT (status, tag) DO UPDATE SET number = number + 1;
    END""",
    "event_days_added": f"""CREATE TRIGGER event_days_added AFTER INSERT ON events
    WHEN NEW.kind IN ({_KINDS}) AND {_NO_IMPORT} BEGIN
        INSERT INTO event_days (day, kind, number) VALUES (substr(NEW.created_at, 1, 10), NEW.kind, 1)
        ON CONFLICT (day, kind) DO UPDATE SET number = number + 1;
    END""",
}

_UNGUARDED = {
    "list_counts_subscriber_added": """CREATE TRIGGER list_counts_subscriber_added AFTER INSERT ON subscribers BEGIN
        INSERT INTO list_counts (status, tag, number) VALUES (NEW.status, '', 1)
        ON CONFLICT (status, tag) DO UPDATE SET number = number + 1;
    END""",
    "list_counts_subscriber_moved": """CREATE TRIGGER list_counts_subscriber_moved AFTER UPDATE OF status ON subscribers
    WHEN OLD.status <> NEW.status BEGIN
        UPDATE list_counts SET number = number - 1 WHERE status = OLD.status
            AND (tag = '' OR tag IN (SELECT tag FROM subscriber_tags WHERE subscriber_id = NEW.id));
        INSERT INTO list_counts (status, tag, number)
            SELECT NEW.status, '', 1
            UNION ALL SELECT NEW.status, tag, 1 FROM subscriber_tags WHERE subscriber_id = NEW.id
        ON CONFLICT (status, tag) DO UPDATE SET number = number + 1;
    END""",
    "list_counts_tag_added": """CREATE TRIGGER list_counts_tag_added AFTER INSERT ON subscriber_tags BEGIN
        INSERT INTO list_counts (status, tag, number)
            SELECT status, NEW.tag, 1 FROM subscribers WHERE id = NEW.subscriber_id
        ON CONFLICT (status, tag) DO UPDATE SET number = number + 1;
    END""",
    "event_days_added": f"""CREATE TRIGGER event_days_added AFTER INSERT ON events WHEN NEW.kind IN ({_KINDS}) BEGIN
        INSERT INTO event_days (day, kind, number) VALUES (substr(NEW.created_at, 1, 10), NEW.kind, 1)
        ON CONFLICT (day, kind) DO UPDATE SET number = number + 1;
    END""",
}


PG_FUNCTIONS = (
    """CREATE FUNCTION list_counts_readers_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO list_count_changes (status, tag, number)
        SELECT status, '', COUNT(*) FROM new_readers GROUP BY status;
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION list_counts_tags_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO list_count_changes (status, tag, number)
        SELECT s.status, t.tag, COUNT(*) FROM new_tags AS t JOIN subscribers AS s ON s.id = t.subscriber_id
        GROUP BY s.status, t.tag;
        RETURN NULL;
    END $$""",
    f"""CREATE FUNCTION event_days_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO event_day_changes (day, kind, number)
        SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), kind, COUNT(*) FROM new_events
        WHERE kind IN ({_KINDS}) GROUP BY 1, 2;
        RETURN NULL;
    END $$""",
)
# (table, trigger): the statement triggers, and the row triggers of 0027 they replace.
PG_BY_STATEMENT = {
    ("subscribers", "list_counts_subscriber_added"):
        "CREATE TRIGGER list_counts_subscriber_added AFTER INSERT ON subscribers "
        "REFERENCING NEW TABLE AS new_readers FOR EACH STATEMENT EXECUTE FUNCTION list_counts_readers_added()",
    ("subscriber_tags", "list_counts_tag_added"):
        "CREATE TRIGGER list_counts_tag_added AFTER INSERT ON subscriber_tags "
        "REFERENCING NEW TABLE AS new_tags FOR EACH STATEMENT EXECUTE FUNCTION list_counts_tags_added()",
    ("subscriber_tags", "list_counts_tag_changed"):
        "CREATE TRIGGER list_counts_tag_changed AFTER UPDATE OR DELETE ON subscriber_tags "
        "FOR EACH ROW EXECUTE FUNCTION list_counts_tag()",
    ("events", "event_days_added"):
        "CREATE TRIGGER event_days_added AFTER INSERT ON events "
        "REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION event_days_added()",
}
PG_BY_ROW = {
    ("subscribers", "list_counts_subscriber_added"):
        "CREATE TRIGGER list_counts_subscriber_added AFTER INSERT ON subscribers "
        "FOR EACH ROW EXECUTE FUNCTION list_counts_subscriber()",
    ("subscriber_tags", "list_counts_tag_changed"):
        "CREATE TRIGGER list_counts_tag_changed AFTER INSERT OR UPDATE OR DELETE ON subscriber_tags "
        "FOR EACH ROW EXECUTE FUNCTION list_counts_tag()",
    ("events", "event_days_added"):
        f"CREATE TRIGGER event_days_added AFTER INSERT ON events FOR EACH ROW WHEN (NEW.kind IN ({_KINDS})) "
        "EXECUTE FUNCTION event_days_count()",
}


def _swap(drop: dict[tuple[str, str], str], create: dict[tuple[str, str], str]) -> None:
    bind = op.get_bind()
    for table, name in drop:
        bind.exec_driver_sql(f"DROP TRIGGER {name} ON {table}")
    for statement in create.values():
        bind.exec_driver_sql(statement)


def _replace(triggers: dict[str, str]) -> None:
    bind = op.get_bind()
    for name, statement in triggers.items():
        bind.exec_driver_sql(f"DROP TRIGGER {name}")
        bind.exec_driver_sql(statement)


def upgrade() -> None:
    op.create_table(
        "counts_by_import",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_counts_by_import"),
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for statement in PG_FUNCTIONS:
            bind.exec_driver_sql(statement)
        _swap(PG_BY_ROW, PG_BY_STATEMENT)
    else:
        _replace(_GUARDED)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        _swap(PG_BY_STATEMENT, PG_BY_ROW)
        for function in ("list_counts_readers_added()", "list_counts_tags_added()", "event_days_added()"):
            bind.exec_driver_sql(f"DROP FUNCTION {function}")
    else:
        _replace(_UNGUARDED)
    op.drop_table("counts_by_import")
