"""Old addresses that lead to their new pages.

`redirects` keeps, for each article moved in from another service, the path it had there
and its path here: the app answers the old one with a 301, and the build writes them as
`_redirects` and as small pages that send a browser on, for a static host.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

UTC_TIME = sa.DateTime(timezone=True)

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "redirects",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("old_path", sa.String(500), nullable=False),
        sa.Column("target", sa.String(500), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_redirects"),
        sa.UniqueConstraint("old_path", name="uq_redirects_old_path"),
    )


def downgrade() -> None:
    op.drop_table("redirects")
