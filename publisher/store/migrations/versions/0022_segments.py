"""Saved segments of readers, and the segment a send went to.

`segments` keeps each saved rule tree by name; `issues` records the segment a send went
to (its id, its name then) and how many copies that queued. The indexes serve a segment's
count on a large list: tag membership read from the index alone, signup dates and sources
among active readers. On PostgreSQL they are built CONCURRENTLY, so that a live list keeps
taking subscribers while they are built.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

UTC_TIME = sa.DateTime(timezone=True)

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_subscriber_tags_tag_subscriber", "subscriber_tags", ["tag", "subscriber_id"]),
    ("ix_subscribers_status_created_at", "subscribers", ["status", "created_at"]),
    ("ix_subscribers_status_source", "subscribers", ["status", "source"]),
)


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("rules", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.Column("updated_by", sa.String(320), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_segments"),
        sa.UniqueConstraint("name", name="uq_segments_name"),
    )
    op.add_column("issues", sa.Column("segment_id", sa.Integer(), nullable=True))
    op.add_column("issues", sa.Column("segment_name", sa.String(100), nullable=True))
    op.add_column("issues", sa.Column("segment_count", sa.Integer(), nullable=True))
    context = op.get_context()
    # CONCURRENTLY cannot run inside a transaction. alembic run by hand owns its transaction
    # and can step out of it; `open_store` runs every revision in one transaction that holds
    # the migration lock, and stepping out there would let a second process migrate too, so
    # there the indexes are built plainly (writes to the list wait for the build: seconds
    # at a million readers; see benchmarks/segments.py).
    if context.dialect.name == "postgresql" and getattr(context, "_transaction", None) is not None:
        with context.autocommit_block():
            for name, table, columns in INDEXES:
                op.create_index(name, table, columns, postgresql_concurrently=True, if_not_exists=True)
    else:
        for name, table, columns in INDEXES:
            op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)
    with op.batch_alter_table("issues") as batch:
        batch.drop_column("segment_count")
        batch.drop_column("segment_name")
        batch.drop_column("segment_id")
    op.drop_table("segments")
