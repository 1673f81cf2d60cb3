"""Several providers in one pool, and each one's state.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "provider_state",
        sa.Column("member", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("opened_at", UTC_TIME, nullable=True),
        sa.Column("failing_since", UTC_TIME, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("member", name="pk_provider_state"),
    )


def downgrade() -> None:
    op.drop_table("provider_state")
