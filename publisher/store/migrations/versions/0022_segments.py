"""Saved segments of readers, and the segment a send went to.

`segments` keeps each saved rule tree by name; `issues` records the segment a send went
to (its id, its name then) and how many copies that queued. The indexes serve a segment's
count on a large list: tag membership read from the index alone, signup dates and sources
among active readers.

On PostgreSQL the indexes are built CONCURRENTLY beside the migration's transaction
(`publisher.store.live_indexes`) when nothing has been written in that transaction yet,
which is why they come first here: a database at 0021 upgrading keeps taking signups,
unsubscribes and sends while they are built. A concurrent build cannot run beside a
transaction that has written (alembic's own version stamp after each revision counts),
so a database further behind, and a fresh one (empty tables, instant), get them plainly
inside the transaction, as earlier revisions of the same run already hold the list;
so does SQLite. A database already past 0022 has them and is not touched.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from publisher.store import live_indexes

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
    # The indexes first: before this revision writes anything, a run that starts here can
    # still build them beside its transaction (see the module's docstring).
    bind = op.get_bind()
    if live_indexes.can_build_beside(bind, ["subscribers", "subscriber_tags"]):
        live_indexes.build_beside(
            bind, [(name, f"ON {table} ({', '.join(columns)})") for name, table, columns in INDEXES]
        )
    else:
        for name, table, columns in INDEXES:
            op.create_index(name, table, columns)
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


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)
    with op.batch_alter_table("issues") as batch:
        batch.drop_column("segment_count")
        batch.drop_column("segment_name")
        batch.drop_column("segment_id")
    op.drop_table("segments")
