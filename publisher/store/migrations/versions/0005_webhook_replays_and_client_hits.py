"""Webhook replays and client limits: the provider's event id on events (unique per
provider), the one-time tokens of signed webhook calls, and per-client request counts.

No table is rebuilt (the unique key on events is an index), as in 0002.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("events", sa.Column("event_key", sa.String(length=255), nullable=True))
    op.create_index("uq_events_provider_event_key", "events", ["provider", "event_key"], unique=True)

    op.create_table(
        "webhook_tokens",
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("token", sa.String(length=255), nullable=False),
        sa.Column("expires_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("provider", "token", name="pk_webhook_tokens"),
    )
    op.create_index("ix_webhook_tokens_expires_at", "webhook_tokens", ["expires_at"])

    op.create_table(
        "client_hits",
        sa.Column("client", sa.String(length=100), nullable=False),
        sa.Column("window_start", UTC_TIME, nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("client", name="pk_client_hits"),
    )
    op.create_index("ix_client_hits_window_start", "client_hits", ["window_start"])


def downgrade() -> None:
    op.drop_table("client_hits")
    op.drop_table("webhook_tokens")
    op.drop_index("uq_events_provider_event_key", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("event_key")
