"""Indexes for the desk's Home figures: events by kind and time (the 90-day series and
what readers did after an issue), and each issue's uncertain copies.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_events_kind_created_at", "events", ["kind", "created_at"])
    op.create_index("ix_deliveries_issue_uncertain", "deliveries", ["issue_id", "uncertain"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_issue_uncertain", table_name="deliveries")
    op.drop_index("ix_events_kind_created_at", table_name="events")
