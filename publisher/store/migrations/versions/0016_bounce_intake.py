"""Bounces read from mail, each decision, and the ones kept for review.

`bounce_messages` keeps every message the bounce mailbox or the MTA's pipe handed in,
once (its `key`), with what it was read as, what was done, and its first 256 KB, so that
a subscriber's page and an issue's report can show the message behind each decision,
and a person can decide on the ones no rule could read.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "bounce_messages",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("received_at", UTC_TIME, nullable=False),
        sa.Column("source", sa.String(32), nullable=False, server_default=""),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(24), nullable=False),
        sa.Column("address", sa.String(320)),
        sa.Column("subscriber_id", sa.Integer(),
                  sa.ForeignKey("subscribers.id", ondelete="SET NULL",
                                name="fk_bounce_messages_subscriber_id_subscribers")),
        sa.Column("issue_id", sa.Integer()),
        sa.Column("status", sa.String(16), nullable=False, server_default=""),
        sa.Column("detail", sa.Text(), nullable=False, server_default=""),
        sa.Column("size", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("decided_at", UTC_TIME),
        sa.Column("decision", sa.String(16)),
        sa.Column("decided_by", sa.String(320)),
        sa.UniqueConstraint("key", name="uq_bounce_messages_key"),
    )
    op.create_index("ix_bounce_messages_outcome", "bounce_messages", ["outcome", "decided_at"])
    op.create_index("ix_bounce_messages_subscriber", "bounce_messages", ["subscriber_id", "received_at"])
    op.create_index("ix_bounce_messages_address", "bounce_messages", ["address", "received_at"])


def downgrade() -> None:
    op.drop_table("bounce_messages")
