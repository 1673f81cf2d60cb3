"""The list's counts fold one at a time: a fold under way elsewhere is not waited for.

`fold_counts()` (revision 0027) moves the change lines of the list's counts into the kept
rows. Two folds run at once, by two processes of one publication, lock the same kept rows
in different orders and can deadlock: one of them fails, and the page that asked for it
with it. Now a fold first takes a transaction-level advisory lock without waiting; when
another fold holds it, this one returns and leaves the lines, which every reading adds
in (`store.counts_kept.kept`), so no figure changes. The issue counts' fold (0031) works
the same way. SQLite keeps its counts in place and has nothing to fold.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None

_FOLD = """
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
"""

ONE_AT_A_TIME = f"""CREATE OR REPLACE FUNCTION fold_counts() RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        IF NOT pg_try_advisory_xact_lock(hashtext('publisher.fold_counts')) THEN
            RETURN;
        END IF;{_FOLD}    END $$"""

AS_BEFORE = f"""CREATE OR REPLACE FUNCTION fold_counts() RETURNS void LANGUAGE sql AS $${_FOLD}$$"""


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.exec_driver_sql(ONE_AT_A_TIME)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.exec_driver_sql(AS_BEFORE)
