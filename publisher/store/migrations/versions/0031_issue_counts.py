"""An issue's copies counted per state, kept by the database.

`issue_counts` holds how many ledger rows of each issue are in each state (queued,
sending, sent, retry, failed, skipped), and, on the line of the pseudo-state
`uncertain`, how many of them may have been sent twice (whatever their state). Home, the
issue report and `publisher status` read these few rows instead of counting an issue's
copies, which at a million readers took seconds a page.

Triggers keep them in the transaction of every change to a copy, as 0027 keeps the
list's counts: a send's rows queued, claimed, sent, retried, failed, made uncertain,
skipped for a reader who left, cancelled, requeued, an issue or a reader erased, a
restore. No path writes the ledger around them.

SQLite updates the rows in place with a trigger per row, only when the state, the
uncertainty or the issue of a copy moves. PostgreSQL runs one trigger per statement that
reads the statement's transition tables and appends one aggregated line per (issue,
state) moved to `issue_count_changes` (a claim of a hundred copies is one -100 and one
+100, not two hundred lines, and no row is updated a million times in a send);
`fold_issue_counts()` moves the committed lines into `issue_counts` when they are read
(`store.issues.status`), one fold at a time (another one skips), and a reader adds the
lines not folded yet in its snapshot.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None

SQLITE_TRIGGERS = (
    """CREATE TRIGGER issue_counts_added AFTER INSERT ON deliveries BEGIN
        INSERT INTO issue_counts (issue_id, state, number)
            SELECT NEW.issue_id, NEW.state, 1
            UNION ALL SELECT NEW.issue_id, 'uncertain', 1 WHERE NEW.uncertain
        ON CONFLICT (issue_id, state) DO UPDATE SET number = number + 1;
    END""",
    """CREATE TRIGGER issue_counts_state_moved AFTER UPDATE OF state, issue_id ON deliveries
    WHEN OLD.state IS NOT NEW.state OR OLD.issue_id IS NOT NEW.issue_id BEGIN
        UPDATE issue_counts SET number = number - 1 WHERE issue_id = OLD.issue_id AND state = OLD.state;
        INSERT INTO issue_counts (issue_id, state, number) VALUES (NEW.issue_id, NEW.state, 1)
        ON CONFLICT (issue_id, state) DO UPDATE SET number = number + 1;
    END""",
    """CREATE TRIGGER issue_counts_uncertain_moved AFTER UPDATE OF uncertain, issue_id ON deliveries
    WHEN (OLD.uncertain OR NEW.uncertain)
        AND (OLD.uncertain IS NOT NEW.uncertain OR OLD.issue_id IS NOT NEW.issue_id) BEGIN
        UPDATE issue_counts SET number = number - 1
            WHERE OLD.uncertain AND issue_id = OLD.issue_id AND state = 'uncertain';
        INSERT INTO issue_counts (issue_id, state, number)
            SELECT NEW.issue_id, 'uncertain', 1 WHERE NEW.uncertain
        ON CONFLICT (issue_id, state) DO UPDATE SET number = number + 1;
    END""",
    """CREATE TRIGGER issue_counts_removed AFTER DELETE ON deliveries BEGIN
        UPDATE issue_counts SET number = number - 1
            WHERE issue_id = OLD.issue_id AND (state = OLD.state OR (OLD.uncertain AND state = 'uncertain'));
    END""",
)
SQLITE_DROP = ("issue_counts_added", "issue_counts_state_moved", "issue_counts_uncertain_moved",
               "issue_counts_removed")

PG_FUNCTIONS = (
    # One function for the three triggers: each branch names only the transition tables its
    # trigger declares (PL/pgSQL plans a statement when it first runs it).
    """CREATE FUNCTION issue_counts_moved() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO issue_count_changes (issue_id, state, number)
            SELECT issue_id, state, COUNT(*) FROM new_copies GROUP BY issue_id, state
            UNION ALL SELECT issue_id, 'uncertain', COUNT(*) FROM new_copies WHERE uncertain GROUP BY issue_id;
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO issue_count_changes (issue_id, state, number)
            SELECT issue_id, state, -COUNT(*) FROM old_copies GROUP BY issue_id, state
            UNION ALL SELECT issue_id, 'uncertain', -COUNT(*) FROM old_copies WHERE uncertain GROUP BY issue_id;
        ELSE
            INSERT INTO issue_count_changes (issue_id, state, number)
            SELECT issue_id, state, SUM(number) FROM (
                SELECT issue_id, state, -1 AS number FROM old_copies
                UNION ALL SELECT issue_id, state, 1 FROM new_copies
                UNION ALL SELECT issue_id, 'uncertain', -1 FROM old_copies WHERE uncertain
                UNION ALL SELECT issue_id, 'uncertain', 1 FROM new_copies WHERE uncertain
            ) AS moved GROUP BY issue_id, state HAVING SUM(number) <> 0;
        END IF;
        RETURN NULL;
    END $$""",
    # One fold at a time, and none waits for another: two folds deleting a long table of
    # lines could each hold lines the other wants (synchronised scans start them at
    # different places) and deadlock. A reading is exact without the fold it skips.
    """CREATE FUNCTION fold_issue_counts() RETURNS boolean LANGUAGE plpgsql AS $$
    BEGIN
        IF NOT pg_try_advisory_xact_lock(hashtext('publisher.fold_issue_counts')) THEN
            RETURN false;
        END IF;
        WITH gone AS (DELETE FROM issue_count_changes RETURNING issue_id, state, number)
        INSERT INTO issue_counts (issue_id, state, number)
        SELECT issue_id, state, SUM(number) FROM gone GROUP BY issue_id, state
        ON CONFLICT (issue_id, state) DO UPDATE SET number = issue_counts.number + EXCLUDED.number;
        RETURN true;
    END $$""",
)
# A trigger with transition tables may not name columns (UPDATE OF ...): the UPDATE one
# fires on every statement and appends nothing when no state moved.
PG_TRIGGERS = (
    "CREATE TRIGGER issue_counts_added AFTER INSERT ON deliveries REFERENCING NEW TABLE AS new_copies "
    "FOR EACH STATEMENT EXECUTE FUNCTION issue_counts_moved()",
    "CREATE TRIGGER issue_counts_moved AFTER UPDATE ON deliveries "
    "REFERENCING OLD TABLE AS old_copies NEW TABLE AS new_copies "
    "FOR EACH STATEMENT EXECUTE FUNCTION issue_counts_moved()",
    "CREATE TRIGGER issue_counts_removed AFTER DELETE ON deliveries REFERENCING OLD TABLE AS old_copies "
    "FOR EACH STATEMENT EXECUTE FUNCTION issue_counts_moved()",
)
PG_DROP = ("issue_counts_added", "issue_counts_moved", "issue_counts_removed")


def upgrade() -> None:
    op.create_table(
        "issue_counts",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("issue_id", "state", name="pk_issue_counts"),
    )
    op.create_table(
        "issue_count_changes",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
    )
    bind = op.get_bind()
    postgresql = bind.dialect.name == "postgresql"
    if postgresql:
        # The ledger is counted once under a lock that lets readers read, so that no copy
        # moves between the first count and the triggers that keep it.
        bind.exec_driver_sql("LOCK TABLE deliveries IN SHARE ROW EXCLUSIVE MODE")
    bind.exec_driver_sql(
        "INSERT INTO issue_counts (issue_id, state, number) "
        "SELECT issue_id, state, COUNT(*) FROM deliveries GROUP BY issue_id, state"
    )
    bind.exec_driver_sql(
        "INSERT INTO issue_counts (issue_id, state, number) "
        "SELECT issue_id, 'uncertain', COUNT(*) FROM deliveries WHERE uncertain GROUP BY issue_id"
    )
    for statement in (PG_FUNCTIONS + PG_TRIGGERS) if postgresql else SQLITE_TRIGGERS:
        bind.exec_driver_sql(statement)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for name in PG_DROP:
            bind.exec_driver_sql(f"DROP TRIGGER {name} ON deliveries")
        bind.exec_driver_sql("DROP FUNCTION issue_counts_moved()")
        bind.exec_driver_sql("DROP FUNCTION fold_issue_counts()")
    else:
        for name in SQLITE_DROP:
            bind.exec_driver_sql(f"DROP TRIGGER {name}")
    op.drop_table("issue_count_changes")
    op.drop_table("issue_counts")
