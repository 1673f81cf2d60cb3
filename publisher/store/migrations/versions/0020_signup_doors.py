"""Where each signup came from, by door: networks whose signups were throttled.

Signups refused for coming too fast (past the limit per client or per network) are
counted by network (an IPv4 /24 or IPv6 /64); each such network keeps one row with how many requests were
refused and when, so that the author is told on Home. Where a signup came from and
the consent text it agreed to are kept on the subscriber (`source`, `consent_text`).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signup_throttles",
        sa.Column("network", sa.String(64), primary_key=True),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("refused", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("signup_throttles")
