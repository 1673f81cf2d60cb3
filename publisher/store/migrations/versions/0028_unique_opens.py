"""Subject tests without per-person analytics, and opens counted once per copy.

`engagement_seen` keeps, per issue, a digest of each copy that opened or clicked (and of
each link it clicked), with the subject the copy carried: unique counts, and a subject
test's numbers, without a per-person record. `subject_tests.wait_seconds` keeps the wait
of a test planned with a schedule, which starts when the schedule does.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "engagement_seen",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(32), nullable=False),
        sa.Column("variant", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("issue_id", "kind", "link_id", "digest", name="pk_engagement_seen"),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], name="fk_engagement_seen_issue_id_issues", ondelete="CASCADE"
        ),
    )
    with op.batch_alter_table("subject_tests") as batch:
        batch.add_column(sa.Column("wait_seconds", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subject_tests") as batch:
        batch.drop_column("wait_seconds")
    op.drop_table("engagement_seen")
