"""What a reader agreed to, and when, kept from where they came.

A reader moved in from another service brings the time they opted in there (confirmed_at
holds when they confirmed) and what that service recorded about their consent (the form,
the address they signed up from, the plan, the export file): proof that they asked for
the newsletter.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("subscribers", sa.Column("opted_in_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("subscribers", sa.Column("consent_text", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("consent_text")
        batch.drop_column("opted_in_at")
