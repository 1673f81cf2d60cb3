"""Importing a subscriber CSV export into the store: streamed, in one transaction.

The file is read lazily and applied a chunk at a time (one look-up of the chunk's
addresses, one multi-row insert, one multi-row update), all inside one write
transaction: a file that fails half-way imports nothing. Only the set of addresses seen so
far is kept, to reject an address the file repeats.

An address already here that the file brings nothing new for (same status, name, zone
and tags, and no consent where it had none) counts as unchanged, so importing one file
twice says so rather than "updated". A dry run takes the same decisions on the same
look-ups and writes none of them, so its counts are the import's; it reads without the
write lock, so a preview of a long list never holds up a reader subscribing meanwhile.
"""

from __future__ import annotations

import functools
import itertools
import sqlite3
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Column,
    ColumnDefault,
    Connection,
    Dialect,
    Engine,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)

from publisher.errors import SubscriberError
from publisher.models import SubscriberStatus
from publisher.store.counts_kept import COUNTED_KINDS, add_moved, list_share
from publisher.store.engine import begin_write
from publisher.store.schema import counts_by_import, events, subscriber_tags, subscribers
from publisher.store.sequences import add_doors
from publisher.store.subscriber_csv import ImportReport, Rejected, SourceRow, read_export
from publisher.store.subscribers.reading import tags_of
from publisher.store.subscribers.values import (
    MAX_SOURCE,
    MAX_TAGS,
    STATUS_KIND,
    SUPPRESSED,
    check_timezone,
    clean_name,
    clean_tags,
    normalize_email,
)

__all__ = ["import_records", "import_rows"]

S = SubscriberStatus
T = TypeVar("T")

PAGE = 2000
"""Rows a chunk: its look-ups and each table's insert are one statement (or a few, within
SQLite's limit of parameters), and its rows are what the import holds at once."""


@dataclass(slots=True)
class _Tally:
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    kept: int = 0
    new_by_status: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class _Valid:
    line: int
    email: str
    name: str
    tags: tuple[str, ...]
    timezone: str | None
    status: SubscriberStatus
    consented_at: datetime | None
    source: str
    opted_in_at: datetime | None = None
    consent_text: str = ""
    added_at: datetime | None = None


def _validate(row: SourceRow, extra_tags: tuple[str, ...], pending: bool) -> _Valid:
    status = S.PENDING if pending and row.status is S.ACTIVE else row.status
    return _Valid(
        line=row.line,
        email=normalize_email(row.email),
        name=clean_name(row.name),
        tags=_clean_tags((*row.tags, *extra_tags)),
        timezone=check_timezone(row.timezone),
        status=status,
        consented_at=row.consented_at,
        source=row.source[:MAX_SOURCE],
        opted_in_at=row.opted_in_at,
        consent_text=row.consent_text,
        added_at=row.added_at,
    )


@functools.lru_cache(maxsize=1024)
def _clean_tags(tags: tuple[str, ...]) -> tuple[str, ...]:
    """`clean_tags`, remembered: a list's readers share a few sets of tags (a refusal is
    raised again each time, never remembered)."""
    return clean_tags(tags)


def _batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def checked_chunks(
    rows: Iterable[SourceRow | Rejected], extra: tuple[str, ...], pending: bool, rejected: list[Rejected]
) -> Iterator[tuple[int, list[_Valid]]]:
    """The rows a chunk at a time: (rows read, the valid ones). A row that fails its checks,
    or repeats an address of an earlier line, is added to `rejected` with its line. The
    import and its preview both read through here, so they reject the same rows.

    Every address read is kept to the end, to tell a repeat: the addresses alone, in the
    order read, with their first lines packed beside them (a line number as an object
    cost a fifth of a long import's memory). The line a repeat repeats is looked up once,
    after the last chunk, and `rejected` is left in the order of the file's lines."""
    seen: dict[str, None] = {}
    first_lines = array("Q")
    repeats: list[tuple[int, str]] = []
    for chunk in _batched(rows, PAGE):
        valid: list[_Valid] = []
        for row in chunk:
            if isinstance(row, Rejected):
                rejected.append(row)
                continue
            try:
                checked = _validate(row, extra, pending)
            except SubscriberError as exc:
                rejected.append(Rejected(row.line, str(exc)))
                continue
            if checked.email in seen:
                repeats.append((row.line, checked.email))
                continue
            seen[checked.email] = None
            first_lines.append(row.line)
            valid.append(checked)
        yield len(chunk), valid
    if repeats:
        repeated = {email for _, email in repeats}
        first = {email: first_lines[at] for at, email in enumerate(seen) if email in repeated}
        rejected.extend(Rejected(line, f"{email} repeats line {first[email]}") for line, email in repeats)
        rejected.sort(key=lambda item: item.line)


def _not_utf8(origin: str, exc: UnicodeDecodeError) -> SubscriberError:
    return SubscriberError(
        f"{origin}: cannot be read as {exc.encoding} text ({exc.reason}); "
        "nothing was imported. Save the file as CSV UTF-8 and run again."
    )


def import_rows(
    engine: Engine,
    lines: Iterable[str],
    *,
    now: datetime,
    origin: str,
    pending: bool = False,
    tags: Iterable[str] = (),
    progress: Callable[[int], None] | None = None,
    sequence: str = "",
) -> ImportReport:
    """`subscribers.import_csv`, which documents it; `sequence` as for `import_records`."""
    try:
        platform, rows = read_export(lines, origin=origin)  # reads the header line
    except UnicodeDecodeError as exc:
        raise _not_utf8(origin, exc) from exc
    return import_records(
        engine, rows, platform=platform, now=now, origin=origin, pending=pending, tags=tags, progress=progress,
        sequence=sequence,
    )


def import_records(
    engine: Engine,
    rows: Iterable[SourceRow | Rejected],
    *,
    platform: str,
    now: datetime,
    origin: str,
    pending: bool = False,
    tags: Iterable[str] = (),
    progress: Callable[[int], None] | None = None,
    dry_run: bool = False,
    sequence: str = "",
) -> ImportReport:
    """Import records already mapped to our fields (from a CSV export or a JSON list), in
    one transaction, with the same checks as a CSV import. `progress` is called with the
    number of records read after each chunk (from inside the transaction). With `dry_run`
    nothing is written: the report says what the import would do. With `sequence`, the
    readers it adds as active are let into that sequence (`store.sequences.add_doors`),
    in the same transaction; readers already here, pending or unsubscribed are not."""
    extra = clean_tags(tags)
    source = f"import:{origin.replace(chr(92), '/').rsplit('/', 1)[-1]}"[:MAX_SOURCE]
    rejected: list[Rejected] = []
    tally = _Tally()
    read = 0
    try:
        with engine.connect() if dry_run else begin_write(engine) as conn:
            _plan_each_chunk(conn)
            counting = not dry_run and conn.dialect.name == "sqlite"
            if counting:
                conn.execute(insert(counts_by_import).values(id=1))
            for size, valid in checked_chunks(rows, extra, pending, rejected):
                read += size
                _apply(
                    conn, valid, now=now, source=source, origin=origin, tally=tally, rejected=rejected,
                    write=not dry_run, sequence=sequence, counting=counting,
                )
                if progress is not None:
                    progress(read)
            if counting:
                conn.execute(delete(counts_by_import))
    except UnicodeDecodeError as exc:
        raise _not_utf8(origin, exc) from exc
    return ImportReport(
        platform=platform,
        imported=tally.imported,
        updated=tally.updated,
        unchanged=tally.unchanged,
        kept=tally.kept,
        rejected=tuple(sorted(rejected, key=lambda item: item.line)),
        new_by_status=dict(tally.new_by_status),
        rows_read=read,
    )


def _plan_each_chunk(conn: Connection) -> None:
    """On PostgreSQL, look each chunk's addresses (and their tags) up by index, whatever the
    planner guesses of the list's size.

    Inside the import the planner has no figures for the rows it has added: it guessed a
    scan of the whole table cheaper than a chunk's look-ups by the unique address index,
    or took the address's trigram index (whose costs it reads from the index's size at its
    last vacuum); psycopg prepares a statement on its fifth run and PostgreSQL then keeps
    one generic plan, made while the table was still small. The table grows by a chunk
    each time, so a long import slowed with its square. For this transaction only, each
    run is planned afresh and by the B-tree indexes."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        conn.exec_driver_sql("SET LOCAL enable_bitmapscan = off")


def _apply(
    conn: Connection,
    rows: Sequence[_Valid],
    *,
    now: datetime,
    source: str,
    origin: str,
    tally: _Tally,
    rejected: list[Rejected],
    write: bool = True,
    sequence: str = "",
    counting: bool = False,
) -> None:
    """Look a chunk up, decide each row, and (with `write`) write the chunk. With `counting`
    (SQLite, the count triggers held back by `counts_by_import`) the chunk adds what it
    moved to the kept counts itself, once: the readers it changed are counted before and
    after, the new ones from what was inserted."""
    if not rows:
        return
    addresses = [r.email for r in rows]
    existing = {
        row.email: row
        for row in conn.execute(
            select(
                subscribers.c.id, subscribers.c.email, subscribers.c.status, subscribers.c.name,
                subscribers.c.timezone, subscribers.c.confirmed_at,
                subscribers.c.opted_in_at, subscribers.c.consent_text,
            ).where(subscribers.c.email.in_(addresses))
        )
    }
    had_tags = tags_of(conn, [row.id for row in existing.values()]) if existing else {}
    new = [r for r in rows if r.email not in existing]
    ids = {email: row.id for email, row in existing.items()}
    if new:
        if write:
            # The new readers' ids come back from their INSERT; a new id has no tags yet.
            added = _insert_many(conn, subscribers, [_new_row(r, now, source) for r in new], returning=_EMAIL_ID)
            ids.update((email, subscriber_id) for email, subscriber_id in added)
        tally.imported += len(new)
        tally.new_by_status.update(r.status.value for r in new)
    event_rows = [_event_row(ids[r.email], r, r.status, now, origin) for r in new if write]
    if sequence and write:
        add_doors(conn, sequence, [ids[r.email] for r in new if r.status is S.ACTIVE], now=now)
    updates: list[dict[str, Any]] = []
    touched: list[_Valid] = list(new)
    for r in rows:
        before = existing.get(r.email)
        if before is None:
            continue
        current = SubscriberStatus(before.status)
        if current in SUPPRESSED:
            tally.kept += 1
            continue
        merged = set(r.tags) | set(had_tags.get(before.id, ()))
        if len(merged) > MAX_TAGS:
            why = f"{len(merged)} tags with the ones this subscriber has; at most {MAX_TAGS}"
            rejected.append(Rejected(r.line, why))
            continue
        status, confirmed = current, None
        if r.status in SUPPRESSED:
            # The other platform knows they left: that wins over "active" here.
            status = r.status
        elif current is S.PENDING and r.status is S.ACTIVE:
            status, confirmed = S.ACTIVE, r.consented_at or now
        elif current is S.ACTIVE and before.confirmed_at is None:
            confirmed = r.consented_at
        if (
            status is current
            and confirmed is None
            and (not r.name or r.name == before.name)
            and (r.timezone is None or r.timezone == before.timezone)
            and set(r.tags) <= set(had_tags.get(before.id, ()))
            and (r.opted_in_at is None or before.opted_in_at is not None)
            and (not r.consent_text or before.consent_text)
        ):
            tally.unchanged += 1
            continue
        if r.status in SUPPRESSED:
            event_rows.append(_event_row(before.id, r, status, now, origin))
        updates.append(
            {
                "b_id": before.id,
                "b_status": status.value,
                "b_name": r.name or None,
                "b_timezone": r.timezone,
                "b_confirmed": confirmed,
                "b_opted_in": r.opted_in_at,
                "b_consent": r.consent_text or None,
                "b_now": now,
            }
        )
        touched.append(r)
        tally.updated += 1
    if not write:
        return
    moved = [update["b_id"] for update in updates]
    lists: Counter[tuple[str, str]] = Counter()
    if counting:
        lists.subtract(list_share(conn, moved))
    if updates:
        conn.execute(_UPDATE, updates)
    if event_rows:
        _insert_many(conn, events, event_rows)
    _add_tags(conn, [(ids[r.email], r.tags) for r in touched if r.tags], had_tags)
    if counting:
        _count_chunk(conn, lists, moved, new, event_rows, now)


def _count_chunk(
    conn: Connection,
    lists: Counter[tuple[str, str]],
    moved: list[int],
    new: Sequence[_Valid],
    event_rows: Sequence[dict[str, Any]],
    now: datetime,
) -> None:
    """Add a written chunk's moves to the kept counts: `lists` holds minus what the readers
    `moved` counted before the chunk changed them."""
    lists.update(list_share(conn, moved))
    # New readers by status and tags first: a chunk holds a few kinds, counted once each.
    for (status, tags), number in Counter((r.status, r.tags) for r in new).items():
        lists[(status.value, "")] += number
        for tag in tags:
            lists[(status.value, tag)] += number
    day = (now.astimezone(UTC) if now.tzinfo else now).strftime("%Y-%m-%d")  # as the column keeps it
    days = Counter((day, row["kind"]) for row in event_rows if row["kind"] in COUNTED_KINDS)
    add_moved(conn, lists, days)


def _insert_many(
    conn: Connection, table: Table, rows: list[dict[str, Any]], *, returning: tuple[str, ...] = ()
) -> list[tuple[Any, ...]]:
    """Insert a chunk's rows (dicts with the same keys) as few statements as each database
    takes them; the `returning` columns of the rows inserted, in no particular order.

    The rows go to the driver as plain values, converted by the columns' own types, each
    distinct value once a chunk (a chunk's timestamps are mostly the one `now`), without
    SQLAlchemy's work for each row (a dict of every parameter, each value through its type).

    On SQLite a chunk is multi-row VALUES (`ROWS_A_STATEMENT` rows a statement, within its
    limit of parameters), not an executemany of one-row INSERTs: a table with triggers makes
    SQLite open a statement journal for each statement and copy into it every page the
    statement changes, so one-row statements copied each index's page once a row (of an
    import's 100 µs a row, 70 went to SQLite; 25 with one statement a chunk).

    On PostgreSQL the chunk is copied (COPY) into a temporary table of the transaction and
    inserted from there by one INSERT ... SELECT: psycopg's executemany sends each row as
    its own INSERT, and the kept counts' triggers run once a statement (migration 0032),
    while a multi-row VALUES of a whole chunk cost the client twice the CPU of the rows."""
    keys = tuple(rows[0])
    names, fills, processors = _plain_insert(conn.dialect, table, keys)
    columns = [[row[key] for row in rows] for key in keys] + [[fill() for _ in rows] for fill in fills]
    for index, process in enumerate(processors):
        if process is not None:
            columns[index] = _each_once(process, columns[index])
    values = list(zip(*columns, strict=True))
    if conn.dialect.name == "postgresql":
        return _copy_in(conn, table.name, names, values, returning)
    head = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES "
    found: list[tuple[Any, ...]] = []
    start = 0
    for count in _statement_sizes(len(values), min(ROWS_A_STATEMENT, _variables(conn) // len(columns))):
        part = values[start : start + count]
        start += count
        statement = _values_statement(head, len(columns), count, returning)
        result = conn.exec_driver_sql(statement, tuple(itertools.chain.from_iterable(part)))
        if returning:
            found.extend(tuple(row) for row in result)
        else:
            result.close()
    return found


ROWS_A_STATEMENT = 256
"""The most rows one SQLite INSERT of an import carries: more saved no time measurable."""


def _statement_sizes(rows: int, most: int) -> Iterator[int]:
    """How many rows each statement takes: `most` at a time, then what is left in powers of
    two. The driver keeps up to 128 statements it has prepared (a hundred bytes or so a
    parameter): an import prepares a few shapes, whatever its chunks hold, not one a size."""
    most = max(1, most)
    while rows >= most:
        yield most
        rows -= most
    while rows:
        size = 1 << (rows.bit_length() - 1)
        yield size
        rows -= size


def _copy_in(
    conn: Connection, table: str, names: tuple[str, ...], values: list[tuple[Any, ...]], returning: tuple[str, ...]
) -> list[tuple[Any, ...]]:
    """`values` into PostgreSQL's `table` through a temporary table dropped at commit; rows
    get their ids in the order given (`n`, the row's place)."""
    listed = ", ".join(names)
    staging = f"import_{table}"
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} ON COMMIT DROP AS "
        f"SELECT 0 AS n, {listed} FROM {table} WITH NO DATA"
    )
    driver = conn.connection.driver_connection
    if driver is None:
        raise RuntimeError("the connection was closed during the import")
    with driver.cursor() as cursor, cursor.copy(f"COPY {staging} (n, {listed}) FROM STDIN") as copy:
        for n, row in enumerate(values):
            copy.write_row((n, *row))
    tail = f" RETURNING {', '.join(returning)}" if returning else ""
    result = conn.exec_driver_sql(f"INSERT INTO {table} ({listed}) SELECT {listed} FROM {staging} ORDER BY n{tail}")
    found = [tuple(row) for row in result] if returning else []
    result.close()
    conn.exec_driver_sql(f"TRUNCATE {staging}")
    return found


def _variables(conn: Connection) -> int:
    """The most parameters one SQLite statement takes (32,766 unless built otherwise)."""
    driver = conn.connection.driver_connection
    limit = driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if driver is not None else 999
    return int(limit)


@functools.lru_cache(maxsize=64)
def _values_statement(head: str, width: int, count: int, returning: tuple[str, ...]) -> str:
    row = "(" + ", ".join("?" * width) + ")"
    tail = f" RETURNING {', '.join(returning)}" if returning else ""
    return head + ", ".join([row] * count) + tail


def _each_once(process: Callable[[Any], Any], values: list[Any]) -> list[Any]:
    done: dict[Any, Any] = {}
    out: list[Any] = []
    for value in values:
        if value is None:
            out.append(None)
            continue
        converted = done.get(value)
        if converted is None:
            converted = done[value] = process(value)
        out.append(converted)
    return out


@functools.cache
def _plain_insert(
    dialect: Dialect, table: Table, keys: tuple[str, ...]
) -> tuple[tuple[str, ...], tuple[Callable[[], Any], ...], tuple[Callable[[Any], Any] | None, ...]]:
    """The columns an insert of `keys` writes, quoted: `keys` and the columns whose
    Python-side default SQLAlchemy would fill (a subscriber's token key, ...); those
    defaults; each column's bind processor (None where a value goes as it is)."""
    filled = [column for column in table.c if column.key not in keys and column.default is not None]
    fills = tuple(_fill(table, column) for column in filled)
    columns = [table.c[key] for key in keys] + filled
    names = tuple(dialect.identifier_preparer.quote(column.name) for column in columns)
    return names, fills, tuple(column.type.dialect_impl(dialect).bind_processor(dialect) for column in columns)


def _fill(table: Table, column: Column[Any]) -> Callable[[], Any]:
    default = column.default
    if not isinstance(default, ColumnDefault) or not (default.is_scalar or default.is_callable):
        raise TypeError(f"{table.name}.{column.key}: only a constant or a function fills a column here")
    arg = default.arg
    if default.is_callable:
        return lambda: arg(None)  # SQLAlchemy's wrapper of a function that takes no context
    return lambda: arg


def _new_row(r: _Valid, now: datetime, source: str) -> dict[str, Any]:
    # The consent the other platform recorded is kept; a pending import has yet to give one.
    consented = None if r.status is S.PENDING else r.consented_at
    return {
        "email": r.email,
        "name": r.name,
        "status": r.status.value,
        "timezone": r.timezone,
        "source": r.source or source,  # where they signed up, else this import
        "created_at": r.added_at or now,  # our own export says when they were added
        "updated_at": now,
        "confirmed_at": consented or (now if r.status is S.ACTIVE else None),
        "opted_in_at": r.opted_in_at,
        "consent_text": r.consent_text or None,
    }


_EMAIL_ID = ("email", "id")

# One statement for a whole chunk of existing subscribers; empty cells keep what is there.
_UPDATE = (
    update(subscribers)
    .where(subscribers.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        name=func.coalesce(bindparam("b_name", type_=subscribers.c.name.type), subscribers.c.name),
        timezone=func.coalesce(
            bindparam("b_timezone", type_=subscribers.c.timezone.type), subscribers.c.timezone
        ),
        confirmed_at=func.coalesce(
            subscribers.c.confirmed_at,
            bindparam("b_confirmed", type_=subscribers.c.confirmed_at.type),
        ),
        # Consent already kept here is never replaced by what a later file says.
        opted_in_at=func.coalesce(
            subscribers.c.opted_in_at, bindparam("b_opted_in", type_=subscribers.c.opted_in_at.type)
        ),
        consent_text=func.coalesce(
            subscribers.c.consent_text, bindparam("b_consent", type_=subscribers.c.consent_text.type)
        ),
        updated_at=bindparam("b_now", type_=subscribers.c.updated_at.type),
    )
)


def _event_row(
    subscriber_id: int, r: _Valid, status: SubscriberStatus, now: datetime, origin: str
) -> dict[str, Any]:
    return {
        "subscriber_id": subscriber_id,
        "email": r.email,
        "kind": STATUS_KIND[status],
        "provider": "import",
        "detail": f"{origin}:{r.line}",
        "created_at": now,
    }


def _add_tags(
    conn: Connection, wanted: Sequence[tuple[int, tuple[str, ...]]], have: Mapping[int, tuple[str, ...]]
) -> None:
    """Add the tags in `wanted` that a reader lacks: `have` holds the tags the chunk's readers
    already had (those of the readers here before it; its new readers have none)."""
    missing = [
        {"subscriber_id": subscriber_id, "tag": tag}
        for subscriber_id, tags in wanted
        for tag in tags
        if tag not in have.get(subscriber_id, ())
    ]
    if missing:
        _insert_many(conn, subscriber_tags, missing)
