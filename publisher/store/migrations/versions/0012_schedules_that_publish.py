"""A schedule says whether it puts its article on the site when it runs.

An author may schedule a draft: at its time the article comes out and is sent. An article
that was on the site when it was scheduled, and was made a draft again since, must not be
put back: its schedule is skipped. `publishes` tells the two apart.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "schedules", sa.Column("publishes", sa.Boolean(), nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    with op.batch_alter_table("schedules") as batch:
        batch.drop_column("publishes")
