"""Welcome and drip sequences, and who is at which step.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sequences",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_event_id", sa.Integer(), nullable=False),
        sa.Column("steps_key", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_sequences"),
    )
    op.create_table(
        "sequence_steps",
        sa.Column("sequence", sa.String(100), nullable=False),
        sa.Column("step", sa.String(100), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sequence", "step", name="pk_sequence_steps"),
    )
    op.create_table(
        "sequence_enrolments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.String(100), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id"], ["subscribers.id"], ondelete="CASCADE",
            name="fk_sequence_enrolments_subscriber_id_subscribers",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_sequence_enrolments"),
        sa.UniqueConstraint("sequence", "subscriber_id", name="uq_sequence_enrolments_sequence_subscriber"),
    )
    op.create_index("ix_sequence_enrolments_due", "sequence_enrolments", ["state", "next_at"])
    op.create_index("ix_sequence_enrolments_subscriber", "sequence_enrolments", ["subscriber_id"])
    op.create_table(
        "sequence_sends",
        sa.Column("sequence", sa.String(100), nullable=False),
        sa.Column("step", sa.String(100), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id"], ["subscribers.id"], ondelete="CASCADE",
            name="fk_sequence_sends_subscriber_id_subscribers",
        ),
        sa.PrimaryKeyConstraint("sequence", "step", "subscriber_id", name="pk_sequence_sends"),
    )
    op.create_index("ix_sequence_sends_subscriber", "sequence_sends", ["subscriber_id"])


def downgrade() -> None:
    op.drop_table("sequence_sends")
    op.drop_table("sequence_enrolments")
    op.drop_table("sequence_steps")
    op.drop_table("sequences")
