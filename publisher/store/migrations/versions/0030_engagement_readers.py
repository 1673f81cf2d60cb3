"""Engagement conditions of segments read without joining every copy.

A per-person `engagement` row carries its copy's reader (`subscriber_id`) beside the copy
(`delivery_id`), so "opened one of the last 3 issues" reads the issue's opens by index
instead of joining each of them to the ledger (a million readers on PostgreSQL: about 1 s
before, benchmarks/segments.py). Rows already kept per person get the reader of their
copy; rows kept without a person, and those an erasure cut loose, stay without one.

The column's backfill holds `engagement` for the migration's transaction, so its indexes
are built in it (`live_indexes.can_build_beside` says no); on a large list the table is
a quarter of the ledger or less, and the ledger is only read.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from publisher.store import live_indexes

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_engagement_issue_reader", ["issue_id", "kind", "machine", "subscriber_id"]),
    ("ix_engagement_reader", ["subscriber_id", "issue_id"]),
)


def upgrade() -> None:
    with op.batch_alter_table("engagement") as batch:
        batch.add_column(sa.Column("subscriber_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_engagement_subscriber_id_subscribers", "subscribers", ["subscriber_id"], ["id"], ondelete="SET NULL"
        )
    op.execute(
        "UPDATE engagement SET subscriber_id = "
        "(SELECT deliveries.subscriber_id FROM deliveries WHERE deliveries.id = engagement.delivery_id) "
        "WHERE delivery_id IS NOT NULL"
    )
    bind = op.get_bind()
    if live_indexes.can_build_beside(bind, {"engagement"}):
        live_indexes.build_beside(bind, [(name, f"ON engagement ({', '.join(cols)})") for name, cols in INDEXES])
        return
    for name, columns in INDEXES:
        op.create_index(name, "engagement", columns)


def downgrade() -> None:
    for name, _ in INDEXES:
        op.drop_index(name, table_name="engagement")
    with op.batch_alter_table("engagement") as batch:
        batch.drop_constraint("fk_engagement_subscriber_id_subscribers", type_="foreignkey")
        batch.drop_column("subscriber_id")
