"""Subject tests: each variant and the copies that carried it.

`subject_tests` keeps an issue's subjects, its sample, when and by what the winner is
chosen, and the decision; `deliveries.variant` says which subject each copy carried. The
readers outside the sample wait as `held` ledger rows until the decision.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

UTC_TIME = sa.DateTime(timezone=True)

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("variant", sa.Integer(), nullable=True))
    op.create_table(
        "subject_tests",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("subjects", sa.Text(), nullable=False),
        sa.Column("sample_percent", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(8), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("decide_at", UTC_TIME, nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("sampled_at", UTC_TIME, nullable=True),
        sa.Column("decided_at", UTC_TIME, nullable=True),
        sa.Column("winner", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("figures", sa.Text(), nullable=False),
        sa.Column("released_at", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("issue_id", name="pk_subject_tests"),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], name="fk_subject_tests_issue_id_issues", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_subject_tests_decide_at", "subject_tests", ["decided_at", "decide_at"])


def downgrade() -> None:
    op.drop_index("ix_subject_tests_decide_at", table_name="subject_tests")
    op.drop_table("subject_tests")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("variant")
