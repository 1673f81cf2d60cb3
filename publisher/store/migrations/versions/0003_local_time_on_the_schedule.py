"""Local-time sends keep their date and minutes on the schedule, not an hour on the issue.

`issues.local_hour` held only the hour of a local-time send, and every later send of the
issue inherited it. The schedule row already keeps the wall-clock time the author gave
(`schedules.local_time`, with `timezone` "local"), which is all a local-time send needs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ALTER TABLE ... DROP COLUMN (SQLite 3.35 and later): rebuilding `issues`
    # would drop it first, and with foreign keys on that cascades into the ledger.
    op.drop_column("issues", "local_hour")


def downgrade() -> None:
    op.add_column("issues", sa.Column("local_hour", sa.Integer(), nullable=True))
