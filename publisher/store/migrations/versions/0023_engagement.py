"""Opens and clicks, counted in aggregate when the author turns them on.

`engagement` keeps one row per open or click (a copy's ledger row only while per-person
analytics are on; machine traffic marked, with its reason); `links` keeps the links that
were in each issue, the only places a click link may lead.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

UTC_TIME = sa.DateTime(timezone=True)

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "engagement",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=True),
        sa.Column("at", UTC_TIME, nullable=False),
        sa.Column("machine", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_engagement"),
        sa.ForeignKeyConstraint(
            ["delivery_id"], ["deliveries.id"], name="fk_engagement_delivery_id_deliveries", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["issue_id"], ["issues.id"], name="fk_engagement_issue_id_issues", ondelete="CASCADE"),
    )
    op.create_index(
        "ix_engagement_issue_kind", "engagement", ["issue_id", "kind", "machine", "reason", "link_id", "delivery_id"]
    )
    op.create_index("ix_engagement_delivery", "engagement", ["delivery_id"])
    op.create_table(
        "links",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("issue_id", "link_id", name="pk_links"),
        sa.ForeignKeyConstraint(["issue_id"], ["issues.id"], name="fk_links_issue_id_issues", ondelete="CASCADE"),
    )


def downgrade() -> None:
    op.drop_table("links")
    op.drop_index("ix_engagement_delivery", table_name="engagement")
    op.drop_index("ix_engagement_issue_kind", table_name="engagement")
    op.drop_table("engagement")
