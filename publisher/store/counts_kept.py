"""The counts the database keeps ready (migration 0027), read as of one snapshot.

On SQLite the triggers update `list_counts`, `event_days` and `sent_minutes` in place. On
PostgreSQL they append +1 and -1 lines to `list_count_changes`, `event_day_changes` and
`sent_minute_changes` instead (a row updated a million times in one import would leave a
million versions to walk, and concurrent writers would queue on it): `fold` moves the
committed lines into the kept rows in one short transaction, and `kept` reads a kept
table with the lines not yet folded added, so a count is exact in the reader's snapshot
whatever is folded meanwhile.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Table, func, select, text, union_all

__all__ = ["fold", "kept"]


def fold(engine: Engine) -> None:
    """Move the committed change lines into the kept rows (PostgreSQL; nothing on SQLite)."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT fold_counts()"))


def kept(engine: Engine, table: Table, changes: Table) -> Any:
    """`table`'s rows, with the lines of `changes` added on PostgreSQL: the same columns, to
    select from (`.c.number` is the count)."""
    if engine.dialect.name != "postgresql":
        return table
    both = union_all(select(*table.c), select(*changes.c)).subquery()
    keys = [column for column in both.c if column.name != "number"]
    return select(*keys, func.sum(both.c.number).label("number")).group_by(*keys).subquery()
