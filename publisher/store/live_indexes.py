"""Indexes built on PostgreSQL while the list stays live: CONCURRENTLY, beside the migration.

`open_store` runs the revisions in one transaction holding the migration lock, and
CREATE INDEX CONCURRENTLY cannot run inside a transaction. A revision that adds an index
to a table that may be large builds it on a connection of its own, in autocommit, while
the migration's transaction waits: signups, unsubscribes and sends keep writing meanwhile.

A concurrent build waits for every transaction holding a lock on its table and for
older transactions, so when the migration's own transaction has already written (an
earlier revision of the same run) or holds a lock on the table, `can_build_beside` says
no and the revision builds the index plainly inside its transaction. An index that a
failed concurrent build left invalid is dropped and built again.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection

__all__ = ["build_beside", "can_build_beside"]


def can_build_beside(conn: Connection, tables: Iterable[str]) -> bool:
    """Whether indexes on `tables` can be built beside `conn`'s transaction (PostgreSQL only)."""
    if conn.dialect.name != "postgresql":
        return False
    # A transaction that has written (an earlier revision of this run) is one a concurrent
    # build would wait for, while it waits for the build: never build beside it.
    if conn.exec_driver_sql("SELECT txid_current_if_assigned() IS NOT NULL").scalar():
        return False
    for table in set(tables):
        held = conn.exec_driver_sql(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = pg_backend_pid() "
            "AND relation = to_regclass(%(table)s))",
            {"table": table},
        ).scalar()
        if held:
            return False
    return True


def build_beside(conn: Connection, indexes: Iterable[tuple[str, str]]) -> None:
    """Build each (name, "ON table ...") CONCURRENTLY on a new autocommit connection."""
    # A statement sent with parameters (the extended protocol: `can_build_beside`'s own)
    # leaves the backend holding its catalog snapshot while idle, and a concurrent build
    # waits for every snapshot older than its own: it would wait for this transaction
    # for ever. A plain query's end lets go of it.
    conn.exec_driver_sql("SELECT 1")
    with conn.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as own:
        for name, target in indexes:
            invalid = own.exec_driver_sql(
                "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = %(name)s AND NOT i.indisvalid",
                {"name": name},
            ).first()
            if invalid:
                own.exec_driver_sql(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            own.exec_driver_sql(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} {target}")
