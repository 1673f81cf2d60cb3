"""Counts the desk shows kept ready instead of counted on each page.

`list_counts` holds how many subscribers have each status (`tag` ""), and how many of
each status carry each tag; `event_days` holds how many joins, confirmations,
unsubscribes, bounces and complaints were recorded on each UTC day; `sent_minutes` how
many copies of each issue the providers accepted in each UTC minute (an issue's pace,
and the complaint rate's denominator). All are kept by triggers of the database
itself, in the transaction of the change that moves a count: a signup, a confirmation,
an unsubscribe, a bounce, a complaint, an import, an edit of tags, an erasure, a
migration in, a restore and a copy marked sent all go through `subscribers`,
`subscriber_tags`, `events` and `deliveries`, so no path can forget them, and a count is
never stale, not even for a moment, and never below zero (a row leaves only with a row
that was counted). Reading them costs a few rows whatever the size of the list.

An erased subscriber's tags are removed before the row (a BEFORE DELETE trigger), so
each tag is taken off the count of the status the reader had, on SQLite and PostgreSQL
alike, whichever order their foreign-key cascades run in.

SQLite updates the count rows in place (it has one writer at a time anyway). PostgreSQL
would keep every version of a row updated again and again in one transaction (an import
of a million readers would walk ever longer chains), and writers of one count row would
wait for each other until commit: there the triggers only append +1 and -1 lines to
`*_changes` tables, and a reader adds them to the kept rows in the same snapshot, after
folding the committed ones in (`fold_counts()`, `store.counts_kept.fold`).

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

SQLITE_TRIGGERS = (
    """CREATE TRIGGER list_counts_subscriber_added AFTER INSERT ON subscribers BEGIN
        INSERT INTO list_counts (status, tag, number) VALUES (NEW.status, '', 1)
        ON CONFLICT (status, tag) DO UPDATE SET number = number + 1;
    END""",
    """CREATE TRIGGER list_counts_subscriber_moved AFTER UPDATE OF status ON subscribers
    WHEN OLD.status <> NEW.status BEGIN
        UPDATE list_counts SET number = number - 1 WHERE status = OLD.status
            AND (tag = '' OR tag IN (SELECT tag FROM subscriber_tags WHERE subscriber_id = NEW.id));
        INSERT INTO list_counts (status, tag, number)
            SELECT NEW.status, '', 1
            UNION ALL SELECT NEW.status, tag, 1 FROM subscriber_tags WHERE subscriber_id = NEW.id
        ON CONFLICT (status, tag) DO UPDATE SET number = number + 1;
    END""",
    """CREATE TRIGGER list_counts_subscriber_removed BEFORE DELETE ON subscribers BEGIN
        DELETE FROM subscriber_tags WHERE subscriber_id = OLD.id;
        UPDATE list_counts SET number = number - 1 WHERE status = OLD.status AND tag = '';
    END""",
    """CREATE TRIGGER list_counts_tag_added AFTER INSERT ON subscriber_tags BEGIN
        INSERT INTO list_counts (status, tag, number)
            SELECT status, NEW.tag, 1 FROM subscribers WHERE id = NEW.subscriber_id
        ON CONFLICT (status, tag) DO UPDATE SET number = number + 1;
    END""",
    """CREATE TRIGGER list_counts_tag_removed AFTER DELETE ON subscriber_tags BEGIN
        UPDATE list_counts SET number = number - 1 WHERE tag = OLD.tag
            AND status = (SELECT status FROM subscribers WHERE id = OLD.subscriber_id);
    END""",
    """CREATE TRIGGER list_counts_tag_changed AFTER UPDATE ON subscriber_tags BEGIN
        UPDATE list_counts SET number = number - 1 WHERE tag = OLD.tag
            AND status = (SELECT status FROM subscribers WHERE id = OLD.subscriber_id);
        INSERT INTO list_counts (status, tag, number)
            SELECT status, NEW.tag, 1 FROM subscribers WHERE id = NEW.subscriber_id
        ON CONFLICT (status, tag) DO UPDATE SET number = number + 1;
    END""",
    """CREATE TRIGGER event_days_added AFTER INSERT ON events WHEN NEW.kind IN (%(kinds)s) BEGIN
        INSERT INTO event_days (day, kind, number) VALUES (substr(NEW.created_at, 1, 10), NEW.kind, 1)
        ON CONFLICT (day, kind) DO UPDATE SET number = number + 1;
    END""",
    """CREATE TRIGGER event_days_removed AFTER DELETE ON events WHEN OLD.kind IN (%(kinds)s) BEGIN
        UPDATE event_days SET number = number - 1 WHERE day = substr(OLD.created_at, 1, 10) AND kind = OLD.kind;
    END""",
    """CREATE TRIGGER sent_minutes_added AFTER INSERT ON deliveries
    WHEN NEW.state = 'sent' AND NEW.sent_at IS NOT NULL BEGIN
        INSERT INTO sent_minutes (issue_id, minute, number) VALUES (NEW.issue_id, substr(NEW.sent_at, 1, 16), 1)
        ON CONFLICT (issue_id, minute) DO UPDATE SET number = number + 1;
    END""",
    """CREATE TRIGGER sent_minutes_changed AFTER UPDATE OF state, sent_at, issue_id ON deliveries
    WHEN (OLD.state = 'sent' AND OLD.sent_at IS NOT NULL) OR (NEW.state = 'sent' AND NEW.sent_at IS NOT NULL) BEGIN
        UPDATE sent_minutes SET number = number - 1
            WHERE issue_id = OLD.issue_id AND minute = substr(OLD.sent_at, 1, 16) AND OLD.state = 'sent';
        INSERT INTO sent_minutes (issue_id, minute, number)
            SELECT NEW.issue_id, substr(NEW.sent_at, 1, 16), 1 WHERE NEW.state = 'sent' AND NEW.sent_at IS NOT NULL
        ON CONFLICT (issue_id, minute) DO UPDATE SET number = number + 1;
    END""",
    """CREATE TRIGGER sent_minutes_removed AFTER DELETE ON deliveries
    WHEN OLD.state = 'sent' AND OLD.sent_at IS NOT NULL BEGIN
        UPDATE sent_minutes SET number = number - 1
            WHERE issue_id = OLD.issue_id AND minute = substr(OLD.sent_at, 1, 16);
    END""",
    """CREATE TRIGGER event_days_changed AFTER UPDATE OF kind, created_at ON events BEGIN
        UPDATE event_days SET number = number - 1 WHERE day = substr(OLD.created_at, 1, 10) AND kind = OLD.kind;
        INSERT INTO event_days (day, kind, number)
            SELECT substr(NEW.created_at, 1, 10), NEW.kind, 1 WHERE NEW.kind IN (%(kinds)s)
        ON CONFLICT (day, kind) DO UPDATE SET number = number + 1;
    END""",
)
SQLITE_DROP = (
    "list_counts_subscriber_added", "list_counts_subscriber_moved", "list_counts_subscriber_removed",
    "list_counts_tag_added", "list_counts_tag_removed", "list_counts_tag_changed",
    "event_days_added", "event_days_removed", "event_days_changed",
    "sent_minutes_added", "sent_minutes_changed", "sent_minutes_removed",
)

PG_FUNCTIONS = (
    """CREATE FUNCTION list_counts_move(old_status text, new_status text, the_tag text) RETURNS void
    LANGUAGE sql AS $$
        INSERT INTO list_count_changes (status, tag, number)
        SELECT old_status, the_tag, -1 WHERE old_status IS NOT NULL
        UNION ALL SELECT new_status, the_tag, 1 WHERE new_status IS NOT NULL
    $$""",
    """CREATE FUNCTION list_counts_subscriber() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            PERFORM list_counts_move(NULL, NEW.status, '');
            RETURN NEW;
        ELSIF TG_OP = 'UPDATE' THEN
            IF OLD.status IS DISTINCT FROM NEW.status THEN
                INSERT INTO list_count_changes (status, tag, number)
                SELECT OLD.status, '', -1 UNION ALL SELECT NEW.status, '', 1
                UNION ALL SELECT OLD.status, tag, -1 FROM subscriber_tags WHERE subscriber_id = NEW.id
                UNION ALL SELECT NEW.status, tag, 1 FROM subscriber_tags WHERE subscriber_id = NEW.id;
            END IF;
            RETURN NEW;
        END IF;
        DELETE FROM subscriber_tags WHERE subscriber_id = OLD.id;
        PERFORM list_counts_move(OLD.status, NULL, '');
        RETURN OLD;
    END $$""",
    """CREATE FUNCTION list_counts_tag() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('DELETE', 'UPDATE') THEN
            PERFORM list_counts_move(status, NULL, OLD.tag) FROM subscribers WHERE id = OLD.subscriber_id;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            PERFORM list_counts_move(NULL, status, NEW.tag) FROM subscribers WHERE id = NEW.subscriber_id;
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION event_days_count() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('DELETE', 'UPDATE') AND OLD.kind IN (%(kinds)s) THEN
            INSERT INTO event_day_changes (day, kind, number)
            VALUES (to_char(OLD.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), OLD.kind, -1);
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.kind IN (%(kinds)s) THEN
            INSERT INTO event_day_changes (day, kind, number)
            VALUES (to_char(NEW.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), NEW.kind, 1);
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION sent_minutes_count() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('DELETE', 'UPDATE') AND OLD.state = 'sent' AND OLD.sent_at IS NOT NULL THEN
            INSERT INTO sent_minute_changes (issue_id, minute, number)
            VALUES (OLD.issue_id, to_char(OLD.sent_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), -1);
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.state = 'sent' AND NEW.sent_at IS NOT NULL THEN
            INSERT INTO sent_minute_changes (issue_id, minute, number)
            VALUES (NEW.issue_id, to_char(NEW.sent_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), 1);
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION fold_counts() RETURNS void LANGUAGE sql AS $$
        WITH gone AS (DELETE FROM list_count_changes RETURNING status, tag, number)
        INSERT INTO list_counts (status, tag, number) SELECT status, tag, SUM(number) FROM gone GROUP BY status, tag
        ON CONFLICT (status, tag) DO UPDATE SET number = list_counts.number + EXCLUDED.number;
        WITH gone AS (DELETE FROM event_day_changes RETURNING day, kind, number)
        INSERT INTO event_days (day, kind, number) SELECT day, kind, SUM(number) FROM gone GROUP BY day, kind
        ON CONFLICT (day, kind) DO UPDATE SET number = event_days.number + EXCLUDED.number;
        WITH gone AS (DELETE FROM sent_minute_changes RETURNING issue_id, minute, number)
        INSERT INTO sent_minutes (issue_id, minute, number)
        SELECT issue_id, minute, SUM(number) FROM gone GROUP BY issue_id, minute
        ON CONFLICT (issue_id, minute) DO UPDATE SET number = sent_minutes.number + EXCLUDED.number;
    $$""",
)
PG_TRIGGERS = (
    "CREATE TRIGGER list_counts_subscriber_added AFTER INSERT ON subscribers "
    "FOR EACH ROW EXECUTE FUNCTION list_counts_subscriber()",
    "CREATE TRIGGER list_counts_subscriber_moved AFTER UPDATE OF status ON subscribers "
    "FOR EACH ROW EXECUTE FUNCTION list_counts_subscriber()",
    "CREATE TRIGGER list_counts_subscriber_removed BEFORE DELETE ON subscribers "
    "FOR EACH ROW EXECUTE FUNCTION list_counts_subscriber()",
    "CREATE TRIGGER list_counts_tag_changed AFTER INSERT OR UPDATE OR DELETE ON subscriber_tags "
    "FOR EACH ROW EXECUTE FUNCTION list_counts_tag()",
    "CREATE TRIGGER event_days_added AFTER INSERT ON events FOR EACH ROW WHEN (NEW.kind IN (%(kinds)s)) "
    "EXECUTE FUNCTION event_days_count()",
    "CREATE TRIGGER event_days_removed AFTER DELETE ON events FOR EACH ROW WHEN (OLD.kind IN (%(kinds)s)) "
    "EXECUTE FUNCTION event_days_count()",
    "CREATE TRIGGER event_days_changed AFTER UPDATE OF kind, created_at ON events "
    "FOR EACH ROW EXECUTE FUNCTION event_days_count()",
    "CREATE TRIGGER sent_minutes_added AFTER INSERT ON deliveries FOR EACH ROW "
    "WHEN (NEW.state = 'sent' AND NEW.sent_at IS NOT NULL) EXECUTE FUNCTION sent_minutes_count()",
    "CREATE TRIGGER sent_minutes_changed AFTER UPDATE OF state, sent_at, issue_id ON deliveries FOR EACH ROW "
    "WHEN ((OLD.state = 'sent' AND OLD.sent_at IS NOT NULL) OR (NEW.state = 'sent' AND NEW.sent_at IS NOT NULL)) "
    "EXECUTE FUNCTION sent_minutes_count()",
    "CREATE TRIGGER sent_minutes_removed AFTER DELETE ON deliveries FOR EACH ROW "
    "WHEN (OLD.state = 'sent' AND OLD.sent_at IS NOT NULL) EXECUTE FUNCTION sent_minutes_count()",
)

KINDS = ("subscribe", "confirm", "unsubscribe", "bounce", "complaint")
"""The events `event_days` counts: the ones the desk's Home and the API's daily figures show
(`services.stats.subscriber_days`); a tag joined or a sequence step is not counted."""
_KINDS = ", ".join(f"'{kind}'" for kind in KINDS)

_DAY = {
    "sqlite": "substr(created_at, 1, 10)",
    "postgresql": "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}
_MINUTE = {
    "sqlite": "substr(sent_at, 1, 16)",
    "postgresql": "to_char(sent_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')",
}


def upgrade() -> None:
    op.create_table(
        "list_counts",
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tag", sa.String(length=100), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("status", "tag", name="pk_list_counts"),
    )
    op.create_table(
        "event_days",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "kind", name="pk_event_days"),
    )
    op.create_table(
        "sent_minutes",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("minute", sa.String(length=16), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("issue_id", "minute", name="pk_sent_minutes"),
    )
    op.create_index("ix_sent_minutes_minute", "sent_minutes", ["minute"])
    op.create_table(
        "list_count_changes",
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tag", sa.String(length=100), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
    )
    op.create_table(
        "event_day_changes",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
    )
    op.create_table(
        "sent_minute_changes",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("minute", sa.String(length=16), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
    )
    bind = op.get_bind()
    postgresql = bind.dialect.name == "postgresql"
    if postgresql:
        # The list is counted once under a lock that lets readers read, so that no change
        # slips between the first count and the triggers that keep it.
        bind.exec_driver_sql("LOCK TABLE subscribers, subscriber_tags, events, deliveries IN SHARE ROW EXCLUSIVE MODE")
    bind.exec_driver_sql(
        "INSERT INTO list_counts (status, tag, number) SELECT status, '', COUNT(*) FROM subscribers GROUP BY status"
    )
    bind.exec_driver_sql(
        "INSERT INTO list_counts (status, tag, number) SELECT s.status, t.tag, COUNT(*) "
        "FROM subscriber_tags AS t JOIN subscribers AS s ON s.id = t.subscriber_id GROUP BY s.status, t.tag"
    )
    day = _DAY["postgresql" if postgresql else "sqlite"]
    bind.exec_driver_sql(
        f"INSERT INTO event_days (day, kind, number) SELECT {day}, kind, COUNT(*) FROM events "
        f"WHERE kind IN ({_KINDS}) GROUP BY {day}, kind"
    )
    minute = _MINUTE["postgresql" if postgresql else "sqlite"]
    bind.exec_driver_sql(
        f"INSERT INTO sent_minutes (issue_id, minute, number) SELECT issue_id, {minute}, COUNT(*) FROM deliveries "
        f"WHERE state = 'sent' AND sent_at IS NOT NULL GROUP BY issue_id, {minute}"
    )
    for statement in (PG_FUNCTIONS + PG_TRIGGERS) if postgresql else SQLITE_TRIGGERS:
        bind.exec_driver_sql(statement.replace("%(kinds)s", _KINDS))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.exec_driver_sql("DROP TRIGGER list_counts_subscriber_added ON subscribers")
        bind.exec_driver_sql("DROP TRIGGER list_counts_subscriber_moved ON subscribers")
        bind.exec_driver_sql("DROP TRIGGER list_counts_subscriber_removed ON subscribers")
        bind.exec_driver_sql("DROP TRIGGER list_counts_tag_changed ON subscriber_tags")
        for name in ("event_days_added", "event_days_removed", "event_days_changed"):
            bind.exec_driver_sql(f"DROP TRIGGER {name} ON events")
        for name in ("sent_minutes_added", "sent_minutes_changed", "sent_minutes_removed"):
            bind.exec_driver_sql(f"DROP TRIGGER {name} ON deliveries")
        for function in ("list_counts_subscriber()", "list_counts_tag()", "event_days_count()", "sent_minutes_count()",
                         "list_counts_move(text, text, text)", "fold_counts()"):
            bind.exec_driver_sql(f"DROP FUNCTION {function}")
    else:
        for name in SQLITE_DROP:
            bind.exec_driver_sql(f"DROP TRIGGER {name}")
    op.drop_table("sent_minute_changes")
    op.drop_table("event_day_changes")
    op.drop_table("list_count_changes")
    op.drop_table("sent_minutes")
    op.drop_table("event_days")
    op.drop_table("list_counts")
