"""Per-issue reader numbers: each unsubscribe, bounce and complaint names its issue.

`events.issue_id` is the issue an event answers: the one whose message carried the
unsubscribe link, or for a provider's bounce or complaint the reader's latest copy
(`publisher.store.subscribers.issue_for_event`). Bounces and complaints already recorded
are given the issue of the reader's latest copy before them, within a week; unsubscribes
already recorded cannot say which message they came from and name none. Two indexes on
the ledger let each new event find its row: by message key, and by reader.

`import_jobs.unchanged` keeps an import job's addresses that the file brought nothing new
for, so that a job's summary adds up to the rows it read. Jobs that finished before count
them nowhere (0).

The column is added, not the table rebuilt, and refers to its issue without a foreign
key: SQLite cannot add one in place, and issues are never deleted.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_WEEK = timedelta(days=7)


def upgrade() -> None:
    op.add_column("events", sa.Column("issue_id", sa.Integer(), nullable=True))
    op.add_column("import_jobs", sa.Column("unchanged", sa.Integer(), nullable=False, server_default="0"))
    op.create_index("ix_events_issue_kind", "events", ["issue_id", "kind"])
    op.create_index("ix_deliveries_message_key", "deliveries", ["message_key"])
    op.create_index("ix_deliveries_subscriber_sent", "deliveries", ["subscriber_id", "sent_at"])
    conn = op.get_bind()
    events = sa.table(
        "events",
        sa.column("id", sa.Integer()),
        sa.column("subscriber_id", sa.Integer()),
        sa.column("kind", sa.String()),
        sa.column("created_at", sa.DateTime()),
        sa.column("issue_id", sa.Integer()),
    )
    deliveries = sa.table(
        "deliveries",
        sa.column("id", sa.Integer()),
        sa.column("issue_id", sa.Integer()),
        sa.column("subscriber_id", sa.Integer()),
        sa.column("sent_at", sa.DateTime()),
    )
    found = conn.execute(
        sa.select(events.c.id, events.c.subscriber_id, events.c.created_at).where(
            events.c.kind.in_(["bounce", "complaint"]), events.c.subscriber_id.is_not(None)
        )
    ).all()
    for event_id, subscriber_id, created_at in found:
        issue_id = conn.execute(
            sa.select(deliveries.c.issue_id)
            .where(
                deliveries.c.subscriber_id == subscriber_id,
                deliveries.c.sent_at.is_not(None),
                deliveries.c.sent_at <= created_at,
                deliveries.c.sent_at >= created_at - _WEEK,
            )
            .order_by(deliveries.c.sent_at.desc(), deliveries.c.id.desc())
            .limit(1)
        ).scalar()
        if issue_id is not None:
            conn.execute(events.update().where(events.c.id == event_id).values(issue_id=issue_id))


def downgrade() -> None:
    op.drop_index("ix_deliveries_subscriber_sent", table_name="deliveries")
    op.drop_index("ix_deliveries_message_key", table_name="deliveries")
    op.drop_index("ix_events_issue_kind", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("issue_id")
    with op.batch_alter_table("import_jobs") as batch:
        batch.drop_column("unchanged")
