"""Sequences started by an import or limited to a segment.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sequence_doors",
        sa.Column("sequence", sa.String(100), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id"], ["subscribers.id"], ondelete="CASCADE",
            name="fk_sequence_doors_subscriber_id_subscribers",
        ),
        sa.PrimaryKeyConstraint("sequence", "subscriber_id", name="pk_sequence_doors"),
    )
    op.create_index("ix_sequence_doors_subscriber", "sequence_doors", ["subscriber_id"])


def downgrade() -> None:
    op.drop_table("sequence_doors")
