"""alembic's environment: migrations run on the connection `open_store` hands over.

`open_store` opens the transaction and holds the migration lock; this file only points
alembic at that connection and at the tables in `schema.py`. SQLite alters tables in
batch mode (copy and rename), so later revisions should use `op.batch_alter_table`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from publisher.store.schema import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
elif isinstance(connection, Connection):
    _run(connection)
else:
    # Run by hand (`alembic -x` style tooling): connect to sqlalchemy.url ourselves.
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite:///publisher.db")
    with engine.connect() as conn:
        _run(conn)
        conn.commit()
    engine.dispose()
