"""Sign-in throttling counted atomically, per address and client.

The failed sign-ins of 0007 (one row per failure, counted after the fact) give way to
one counter per throttle key in a fixed window, raised by a conditional UPDATE before
the password is checked; and browsers that have signed in keep a device cookie whose
hash is remembered here. Old failure rows are not carried over: they only ever
mattered for 15 minutes.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.drop_index("ix_login_failures_address", table_name="login_failures")
    op.drop_index("ix_login_failures_email", table_name="login_failures")
    op.drop_table("login_failures")
    op.create_table(
        "login_failures",
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("window_start", UTC_TIME, nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_login_failures"),
    )
    op.create_index("ix_login_failures_window_start", "login_failures", ["window_start"])
    op.create_table(
        "sign_in_devices",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_sign_in_devices_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_sign_in_devices"),
    )
    op.create_index("ix_sign_in_devices_user_id", "sign_in_devices", ["user_id"])


def downgrade() -> None:
    op.drop_table("sign_in_devices")
    op.drop_index("ix_login_failures_window_start", table_name="login_failures")
    op.drop_table("login_failures")
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_login_failures"),
    )
    op.create_index("ix_login_failures_email", "login_failures", ["email", "created_at"])
    op.create_index("ix_login_failures_address", "login_failures", ["address", "created_at"])
