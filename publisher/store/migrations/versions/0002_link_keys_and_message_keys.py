"""Per-subscriber link keys, and a stored Message-ID part for every ledger row.

`subscribers.token_key` is what unsubscribe and confirmation links carry from now on;
existing rows get a random one. `subscribers.legacy_links` marks the rows that mail
carrying the older id-only links went to (a ledger row with their id and address), so
those links keep working for exactly those people and for nobody a rebuilt database
gives the same id. `deliveries.message_key` keeps each row's Message-ID; rows already
in the ledger keep the one they were sent with (`i<issue>.d<row>`), so a resume after
the upgrade repeats it.

No table is rebuilt: on SQLite that would drop `subscribers`, and with foreign keys on,
the drop would cascade into the ledger. Columns are added with a server default, filled,
and the key made unique by an index.

That index is built plainly, inside the migration's transaction, on purpose: adding the
columns already takes `subscribers` exclusively until the run commits, and filling
`token_key` rewrites every row, so a concurrent build (`publisher.store.live_indexes`)
would only wait for this very transaction, and a build after the run would leave links
unguarded meanwhile. The list is held for the length of the run either way; on a large
list run this upgrade at a quiet hour.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "subscribers",
        sa.Column("token_key", sa.String(length=32), nullable=False, server_default=""),
    )
    op.add_column(
        "subscribers",
        sa.Column("legacy_links", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "deliveries",
        sa.Column("message_key", sa.String(length=64), nullable=False, server_default=""),
    )
    conn = op.get_bind()
    subscribers = sa.table(
        "subscribers",
        sa.column("id", sa.Integer()),
        sa.column("email", sa.String()),
        sa.column("token_key", sa.String()),
        sa.column("legacy_links", sa.Boolean()),
    )
    deliveries = sa.table(
        "deliveries",
        sa.column("id", sa.Integer()),
        sa.column("issue_id", sa.Integer()),
        sa.column("subscriber_id", sa.Integer()),
        sa.column("email", sa.String()),
        sa.column("message_key", sa.String()),
    )
    ids = [row[0] for row in conn.execute(sa.select(subscribers.c.id))]
    if ids:
        conn.execute(
            subscribers.update()
            .where(subscribers.c.id == sa.bindparam("b_id"))
            .values(token_key=sa.bindparam("b_key")),
            [{"b_id": i, "b_key": secrets.token_hex(16)} for i in ids],
        )
    mailed = sa.exists().where(
        deliveries.c.subscriber_id == subscribers.c.id, deliveries.c.email == subscribers.c.email
    )
    conn.execute(subscribers.update().where(mailed).values(legacy_links=True))
    conn.execute(
        deliveries.update().values(
            message_key=sa.literal("i")
            + sa.cast(deliveries.c.issue_id, sa.String())
            + sa.literal(".d")
            + sa.cast(deliveries.c.id, sa.String())
        )
    )
    op.create_index("ix_subscribers_token_key", "subscribers", ["token_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_subscribers_token_key", table_name="subscribers")
    op.drop_column("deliveries", "message_key")
    op.drop_column("subscribers", "legacy_links")
    op.drop_column("subscribers", "token_key")
