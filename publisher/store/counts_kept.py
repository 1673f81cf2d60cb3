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

import functools
from collections import Counter
from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, func, select, text, union_all

__all__ = ["COUNTED_KINDS", "add_moved", "fold", "kept", "kept_on", "list_share"]


def fold(engine: Engine) -> None:
    """Move the committed change lines into the kept rows (PostgreSQL; nothing on SQLite)."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT fold_counts()"))


def kept(engine: Engine, table: Table, changes: Table) -> Any:
    """`table`'s rows, with the lines of `changes` added on PostgreSQL: the same columns, to
    select from (`.c.number` is the count)."""
    return kept_on(engine.dialect.name, table, changes)


@functools.cache
def kept_on(dialect: str, table: Table, changes: Table) -> Any:
    """`kept` for a dialect by name, built once: a statement built on it can be built once too."""
    if dialect != "postgresql":
        return table
    both = union_all(select(*table.c), select(*changes.c)).subquery()
    keys = [column for column in both.c if column.name != "number"]
    return select(*keys, func.sum(both.c.number).label("number")).group_by(*keys).subquery()


COUNTED_KINDS = frozenset({"subscribe", "confirm", "unsubscribe", "bounce", "complaint"})
"""The kinds of event `event_days` counts (migration 0027's triggers)."""

_SHARE = text(
    "SELECT status, '' AS tag, COUNT(*) FROM subscribers WHERE id IN :ids GROUP BY status "
    "UNION ALL SELECT s.status, t.tag, COUNT(*) FROM subscriber_tags AS t "
    "JOIN subscribers AS s ON s.id = t.subscriber_id WHERE t.subscriber_id IN :ids GROUP BY s.status, t.tag"
).bindparams(bindparam("ids", expanding=True))


def list_share(conn: Connection, ids: Collection[int]) -> Counter[tuple[str, str]]:
    """What readers `ids` add to `list_counts` as they stand in `conn`'s transaction."""
    if not ids:
        return Counter()
    return Counter({(status, tag): number for status, tag, number in conn.execute(_SHARE, {"ids": list(ids)})})


def add_moved(
    conn: Connection, lists: Mapping[tuple[str, str], int], days: Mapping[tuple[str, str], int]
) -> None:
    """Add to `list_counts` ((status, tag): number) and `event_days` ((day, kind): number) what
    a writer that held the triggers back moved (an import on SQLite, migration 0032), in its
    own transaction."""
    moved = [{"a": status, "b": tag, "n": number} for (status, tag), number in lists.items() if number]
    if moved:
        conn.execute(text(
            "INSERT INTO list_counts (status, tag, number) VALUES (:a, :b, :n) "
            "ON CONFLICT (status, tag) DO UPDATE SET number = number + excluded.number"
        ), moved)
    moved = [{"a": day, "b": kind, "n": number} for (day, kind), number in days.items() if number]
    if moved:
        conn.execute(text(
            "INSERT INTO event_days (day, kind, number) VALUES (:a, :b, :n) "
            "ON CONFLICT (day, kind) DO UPDATE SET number = number + excluded.number"
        ), moved)
