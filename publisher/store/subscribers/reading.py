"""Reading subscribers: one by id, link key or address, a page of the list, counts, the CSV export.

Lists are streamed a page at a time, never loaded whole; every row comes back as a
`Subscriber` with its tags, except on the desk's list page (`listing`), whose rows are
the four columns it shows.
"""

from __future__ import annotations

import csv
import functools
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import IO, Any, NamedTuple

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Select,
    String,
    bindparam,
    column,
    func,
    or_,
    select,
    table,
    text,
    true,
)

from publisher.errors import NotFound
from publisher.models import Subscriber, SubscriberStatus
from publisher.store.counts_kept import fold, kept_on
from publisher.store.engine import reader
from publisher.store.folding import now_and_then
from publisher.store.schema import (
    list_count_changes,
    list_counts,
    subscriber_tags,
    subscribers,
)
from publisher.store.subscriber_csv import EXPORT_COLUMNS, neutralize
from publisher.store.subscribers.values import PAGE, S, clean_tags, normalize_email

__all__ = [
    "Listed",
    "by_legacy_link",
    "by_link_key",
    "counts",
    "export_csv",
    "find",
    "get",
    "iter_subscribers",
    "link_key",
    "list_figures",
    "listing",
    "page",
    "search_page",
    "tag_counts",
    "tags_of",
]


def tags_of(conn: Connection, ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
    """The tags of several subscribers in one query (a page of a listing, an import chunk)."""
    found: dict[int, list[str]] = {}
    if ids:
        for subscriber_id, tag in conn.execute(_tags_query(), {"ids": list(ids)}):
            found.setdefault(subscriber_id, []).append(tag)
    return {key: tuple(value) for key, value in found.items()}


# The statements the Subscribers page reads on every request are built once for each
# shape (which filters are set), their values bound at each call: building and keying a
# statement cost more than running it on a page of fifty rows. The SQL is the same.


@functools.cache
def _tags_query() -> Select[Any]:
    return (
        select(subscriber_tags.c.subscriber_id, subscriber_tags.c.tag)
        .where(subscriber_tags.c.subscriber_id.in_(bindparam("ids", expanding=True)))
        .order_by(subscriber_tags.c.subscriber_id, subscriber_tags.c.tag)
    )


_COLUMNS = (
    subscribers.c.id,
    subscribers.c.email,
    subscribers.c.name,
    subscribers.c.status,
    subscribers.c.timezone,
    subscribers.c.created_at,
    subscribers.c.confirmed_at,
    subscribers.c.source,
    subscribers.c.opted_in_at,
    subscribers.c.consent_text,
)


class Listed(NamedTuple):
    """A reader as a page of the list shows them (`listing`): read as a plain row of four
    columns, without a `Subscriber`'s dates and consent, which a list page never shows
    and which cost a page of fifty more to read and build than its query."""

    id: int
    email: str
    name: str
    status: str
    """A `SubscriberStatus` value."""
    tags: tuple[str, ...]


_LISTED_COLUMNS = (subscribers.c.id, subscribers.c.email, subscribers.c.name, subscribers.c.status)


def _made(rows: Sequence[Any], tags: dict[int, tuple[str, ...]], listed: bool) -> list[Any]:
    if listed:
        return [Listed(row[0], row[1], row[2], row[3], tags.get(row[0], ())) for row in rows]
    return [_subscriber(row, tags.get(row.id, ())) for row in rows]


def _subscriber(row: Any, tags: tuple[str, ...]) -> Subscriber:
    return Subscriber(
        id=row.id,
        email=row.email,
        name=row.name,
        status=SubscriberStatus(row.status),
        tags=tags,
        timezone=row.timezone,
        created_at=row.created_at,
        confirmed_at=row.confirmed_at,
        source=row.source,
        opted_in_at=row.opted_in_at,
        consent_text=row.consent_text or "",
    )


def _load(conn: Connection, *where: Any) -> Subscriber | None:
    row = conn.execute(select(*_COLUMNS).where(*where)).first()
    if row is None:
        return None
    return _subscriber(row, tags_of(conn, [row.id]).get(row.id, ()))


def get(engine: Engine, subscriber_id: int) -> Subscriber | None:
    """The subscriber with this id, or None."""
    with engine.connect() as conn:
        return _load(conn, subscribers.c.id == subscriber_id)


def by_link_key(engine: Engine, key: str) -> Subscriber | None:
    """The subscriber whose unsubscribe and confirmation links carry `key`, or None."""
    with engine.connect() as conn:
        return _load(conn, subscribers.c.token_key == key)


def by_legacy_link(engine: Engine, subscriber_id: int) -> Subscriber | None:
    """The subscriber an older id-only link was mailed to, or None when this database
    cannot tell that the row with this id is still that person (see `publisher.mail.tokens`)."""
    with engine.connect() as conn:
        return _load(conn, subscribers.c.id == subscriber_id, subscribers.c.legacy_links == true())


def link_key(engine: Engine, subscriber_id: int) -> str:
    """The key the subscriber's links carry (NotFound when there is no such subscriber)."""
    with engine.connect() as conn:
        key = conn.execute(
            select(subscribers.c.token_key).where(subscribers.c.id == subscriber_id)
        ).scalar()
    if key is None:
        raise NotFound(f"no subscriber with id {subscriber_id}")
    return str(key)


def find(engine: Engine, email: str) -> Subscriber | None:
    """The subscriber with this address in any case, or None (SubscriberError if invalid)."""
    with engine.connect() as conn:
        return _load(conn, subscribers.c.email == normalize_email(email))


def _filtered(query: Any, status: SubscriberStatus | None, tag: str | None, where: Sequence[Any] = ()) -> Any:
    if where:
        query = query.where(*where)
    if status is not None:
        query = query.where(subscribers.c.status == status.value)
    if tag is not None:
        wanted = clean_tags([tag])
        tagged = select(subscriber_tags.c.subscriber_id).where(
            subscriber_tags.c.tag == (wanted[0] if wanted else "")
        )
        query = query.where(subscribers.c.id.in_(tagged))
    return query


def iter_subscribers(
    engine: Engine,
    *,
    status: SubscriberStatus | None = None,
    tag: str | None = None,
    page_size: int = PAGE,
    where: Sequence[Any] = (),
) -> Iterator[Subscriber]:
    """Every matching subscriber in id order, read `page_size` rows at a time.

    Keyset pages rather than one long cursor: no connection or read transaction is held
    while the caller works on a page, so a slow consumer never blocks SQLite's WAL
    checkpoints or a PostgreSQL vacuum. Rows added meanwhile may or may not appear.
    `where` adds conditions on `subscribers` (a segment's).
    """
    after = 0
    while True:
        with engine.connect() as conn:
            query = _filtered(select(*_COLUMNS), status, tag, where)
            rows = conn.execute(
                query.where(subscribers.c.id > after).order_by(subscribers.c.id).limit(page_size)
            ).all()
            tags = tags_of(conn, [row.id for row in rows])
        for row in rows:
            yield _subscriber(row, tags.get(row.id, ()))
        if len(rows) < page_size:
            return
        after = rows[-1].id


def _like(text: str) -> str:
    """`text` as a LIKE pattern matching itself anywhere: its wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def page(
    engine: Engine,
    *,
    status: SubscriberStatus | None = None,
    tag: str | None = None,
    since: datetime | None = None,
    search: str | None = None,
    after: int = 0,
    limit: int = 100,
    where: Sequence[Any] = (),
) -> tuple[list[Subscriber], bool]:
    """One page of matching subscribers in id order after id `after`, and whether more follow.

    `since` keeps subscribers created at or after that instant; `search` matches a part of
    the address or the name, case-insensitively, its % and _ taken literally.
    """
    if not where:
        return _page(engine, status=status, tag=tag, since=since, search=search, after=after, limit=limit)
    query = _filtered(select(*_COLUMNS), status, tag, where).where(subscribers.c.id > after)
    if since is not None:
        query = query.where(subscribers.c.created_at >= since)
    if search:
        pattern = _like(search.lower())
        query = query.where(
            or_(
                subscribers.c.email.like(pattern, escape="\\"),
                func.lower(subscribers.c.name).like(pattern, escape="\\"),
            )
        )
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(subscribers.c.id).limit(limit + 1)).all()
        shown = rows[:limit]
        tags = tags_of(conn, [row.id for row in shown])
    return [_subscriber(row, tags.get(row.id, ())) for row in shown], len(rows) > limit


def _page(
    engine: Engine,
    *,
    status: SubscriberStatus | None,
    tag: str | None,
    since: datetime | None,
    search: str | None,
    after: int,
    limit: int,
    upto: int | None = None,
    listed: bool = False,
) -> tuple[list[Any], bool]:
    """`page` without conditions of the caller's own, by a statement built once per shape;
    `upto` keeps ids up to it (a step of `search_page`). Its readers are `Listed` rows
    with `listed`, else `Subscriber`s."""
    wanted = clean_tags([tag]) if tag is not None else []
    values = {
        "status": status.value if status is not None else None,
        "tag": wanted[0] if wanted else "",
        "since": since,
        "pattern": _like(search.lower()) if search else None,
        "after": after,
        "upto": upto,
        "limit": limit + 1,
    }
    query = _page_query(status is not None, tag is not None, since is not None, bool(search), upto is not None, listed)
    with reader(engine) as conn:
        rows = conn.execute(query, values).all()
        shown = rows[:limit]
        tags = tags_of(conn, [row[0] for row in shown])
    return _made(shown, tags, listed), len(rows) > limit


@functools.cache
def _page_query(status: bool, tag: bool, since: bool, search: bool, upto: bool, listed: bool = False) -> Select[Any]:
    query = select(*(_LISTED_COLUMNS if listed else _COLUMNS))
    if upto:
        query = query.where(subscribers.c.id <= bindparam("upto", type_=Integer))
    if status:
        query = query.where(subscribers.c.status == bindparam("status"))
    if tag:
        tagged = select(subscriber_tags.c.subscriber_id).where(subscriber_tags.c.tag == bindparam("tag"))
        query = query.where(subscribers.c.id.in_(tagged))
    query = query.where(subscribers.c.id > bindparam("after", type_=Integer))
    if since:
        query = query.where(subscribers.c.created_at >= bindparam("since"))
    if search:
        pattern = bindparam("pattern", type_=String)
        query = query.where(
            or_(
                subscribers.c.email.like(pattern, escape="\\"),
                func.lower(subscribers.c.name).like(pattern, escape="\\"),
            )
        )
    return query.order_by(subscribers.c.id).limit(bindparam("limit", type_=Integer))


SEARCH_STEP = 10_000
"""Ids a search on SQLite reads in one step."""
SEARCH_TIME = 0.05
"""Seconds a search on SQLite goes on to further steps to fill its page."""


def search_page(
    engine: Engine,
    search: str,
    *,
    status: SubscriberStatus | None = None,
    tag: str | None = None,
    after: int = 0,
    limit: int = 100,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[list[Subscriber], bool, int | None]:
    """`page` for a search by a part of the address or the name, bounded in time on SQLite.

    PostgreSQL reads its trigram indexes (migration 0025), and SQLite its FTS5 trigram
    index (migration 0034) for a fragment of TRIGRAM characters or more, so the page costs
    what the matches cost. A shorter fragment on SQLite (or a library without FTS5) has no
    index to read: the list is read in steps of SEARCH_STEP ids after `after`, stopping
    at a full page, at the end of the list, or once SEARCH_TIME has passed after a step.
    Returns (subscribers, more, looked_to): `looked_to` is the last id read when the
    search stopped for time before the end of the list (pass it back as `after` to look
    further), else None.
    """
    return _search(engine, search, status=status, tag=tag, after=after, limit=limit, clock=clock, listed=False)


def listing(
    engine: Engine,
    *,
    search: str = "",
    status: SubscriberStatus | None = None,
    tag: str | None = None,
    after: int = 0,
    limit: int = 100,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[list[Listed], bool, int | None]:
    """A page of the list as the desk shows it, its readers as `Listed` rows: `page`, or
    with a `search` `search_page` (whose `looked_to` it returns; None without a search)."""
    if search:
        return _search(engine, search, status=status, tag=tag, after=after, limit=limit, clock=clock, listed=True)
    items, more = _page(
        engine, status=status, tag=tag, since=None, search=None, after=after, limit=limit, listed=True
    )
    return items, more, None


def _search(
    engine: Engine,
    search: str,
    *,
    status: SubscriberStatus | None,
    tag: str | None,
    after: int,
    limit: int,
    clock: Callable[[], float],
    listed: bool,
) -> tuple[list[Any], bool, int | None]:
    if engine.dialect.name != "sqlite":
        items, more = _page(
            engine, status=status, tag=tag, since=None, search=search, after=after, limit=limit, listed=listed
        )
        return items, more, None
    if len(search) >= TRIGRAM and "\x00" not in search:  # FTS5 ends a string at a NUL; LIKE does not
        found_by_index = _indexed_page(
            engine, search, status=status, tag=tag, after=after, limit=limit, listed=listed
        )
        if found_by_index is not None:
            return (*found_by_index, None)
    with reader(engine) as conn:
        last = int(conn.execute(_last_id_query()).scalar() or 0)
    started = clock()
    found: list[Any] = []
    low = after
    while low < last:
        high = min(low + SEARCH_STEP, last)
        items, more = _page(
            engine, status=status, tag=tag, since=None, search=search, after=low, limit=limit - len(found),
            upto=high, listed=listed,
        )
        found.extend(items)
        if more or len(found) >= limit:
            return found, True, None
        low = high
        if clock() - started >= SEARCH_TIME:
            break
    return (found, False, None) if low >= last else (found, True, low)


TRIGRAM = 3
"""Characters a search needs to read SQLite's trigram index (migration 0034)."""
_SEARCH_INDEX = table("subscriber_search", column("rowid", Integer))
_HAS_INDEX = "publisher_search_index"


def _indexed_page(
    engine: Engine, search: str, *, status: SubscriberStatus | None, tag: str | None, after: int, limit: int,
    listed: bool,
) -> tuple[list[Any], bool] | None:
    """A search's page read through the trigram index `subscriber_search`, or None where
    the database has none (an SQLite library without FTS5).

    The index finds every row holding the fragment's trigrams in order, with case folded
    further than LIKE folds it; the same LIKE as the scan's then keeps exactly the rows
    the scan would, in the same id order.
    """
    wanted = clean_tags([tag]) if tag is not None else []
    values = {
        "match": '"' + search.lower().replace('"', '""') + '"',
        "status": status.value if status is not None else None,
        "tag": wanted[0] if wanted else "",
        "pattern": _like(search.lower()),
        "after": after,
        "limit": limit + 1,
    }
    with reader(engine) as conn:
        indexed = conn.info.get(_HAS_INDEX)
        if indexed is None:  # once per pooled connection: the schema is migrated before it opens
            indexed = conn.info[_HAS_INDEX] = conn.execute(_has_index_query()).first() is not None
        if not indexed:
            return None
        rows = conn.execute(_indexed_query(status is not None, tag is not None, listed), values).all()
        shown = rows[:limit]
        tags = tags_of(conn, [row[0] for row in shown])
    return _made(shown, tags, listed), len(rows) > limit


@functools.cache
def _has_index_query() -> Select[Any]:
    master = table("sqlite_master", column("type", String), column("name", String))
    return select(master.c.name).where(master.c.type == "table", master.c.name == _SEARCH_INDEX.name)


@functools.cache
def _indexed_query(status: bool, tag: bool, listed: bool) -> Select[Any]:
    # The index is read in rowid order from `after` on and stops at a full page.
    pattern = bindparam("pattern", type_=String)
    query = (
        select(*(_LISTED_COLUMNS if listed else _COLUMNS))
        .select_from(_SEARCH_INDEX.join(subscribers, subscribers.c.id == _SEARCH_INDEX.c.rowid))
        .where(
            text("subscriber_search MATCH :match"),
            _SEARCH_INDEX.c.rowid > bindparam("after", type_=Integer),
            or_(
                subscribers.c.email.like(pattern, escape="\\"),
                func.lower(subscribers.c.name).like(pattern, escape="\\"),
            ),
        )
    )
    if status:
        query = query.where(subscribers.c.status == bindparam("status"))
    if tag:
        tagged = select(subscriber_tags.c.subscriber_id).where(subscriber_tags.c.tag == bindparam("tag"))
        query = query.where(subscribers.c.id.in_(tagged))
    return query.order_by(_SEARCH_INDEX.c.rowid).limit(bindparam("limit", type_=Integer))


@functools.cache
def _last_id_query() -> Select[Any]:
    return select(func.max(subscribers.c.id))


def counts(engine: Engine) -> dict[str, int]:
    """Subscribers per status, every status present, active first.

    Read from `list_counts`, which the database keeps in the transaction of every change
    (migration 0027, `store.counts_kept`): a few rows, however long the list.
    """
    now_and_then(engine, fold)
    with reader(engine) as conn:
        rows = conn.execute(_counts_query(engine.dialect.name)).all()
    found = {status: number for status, number in rows}
    order = [S.ACTIVE, S.PENDING, S.UNSUBSCRIBED, S.BOUNCED, S.COMPLAINED]
    return {status.value: int(found.get(status.value, 0)) for status in order}


def tag_counts(engine: Engine, *, status: SubscriberStatus | None = S.ACTIVE) -> dict[str, int]:
    """Subscribers per tag (active ones by default, every status with `status=None`), most
    used first: the segments. Read from `list_counts`, as `counts`; a tag nobody carries
    any more is left out."""
    now_and_then(engine, fold)
    query = _tag_counts_query(engine.dialect.name, status is not None)
    with reader(engine) as conn:
        return {
            tag: int(found)
            for tag, found in conn.execute(query, {"status": status.value if status is not None else None})
        }


def list_figures(engine: Engine) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """`counts()`, `tag_counts()` and `tag_counts(status=None)` from one reading of
    `list_counts` (a few rows: a status and a tag each), for a page that shows all three."""
    now_and_then(engine, fold)
    with reader(engine) as conn:
        rows = conn.execute(_figures_query(engine.dialect.name)).all()
    found: dict[str, int] = {}
    active: dict[str, int] = {}
    total: dict[str, int] = {}
    for status, tag, number in rows:
        if tag == "":
            found[status] = found.get(status, 0) + int(number)
            continue
        total[tag] = total.get(tag, 0) + int(number)
        if status == S.ACTIVE.value:
            active[tag] = active.get(tag, 0) + int(number)
    order = [S.ACTIVE, S.PENDING, S.UNSUBSCRIBED, S.BOUNCED, S.COMPLAINED]
    counts = {status.value: found.get(status.value, 0) for status in order}
    return counts, {t: n for t, n in active.items() if n > 0}, {t: n for t, n in total.items() if n > 0}


@functools.cache
def _figures_query(dialect: str) -> Select[Any]:
    table = kept_on(dialect, list_counts, list_count_changes)
    return select(table.c.status, table.c.tag, table.c.number)


@functools.cache
def _counts_query(dialect: str) -> Select[Any]:
    table = kept_on(dialect, list_counts, list_count_changes)
    return select(table.c.status, table.c.number).where(table.c.tag == "")


@functools.cache
def _tag_counts_query(dialect: str, by_status: bool) -> Select[Any]:
    table = kept_on(dialect, list_counts, list_count_changes)
    number = func.sum(table.c.number)
    query = select(table.c.tag, number).where(table.c.tag != "")
    if by_status:
        query = query.where(table.c.status == bindparam("status"))
    return query.group_by(table.c.tag).having(number > 0).order_by(number.desc(), table.c.tag)


def export_csv(
    engine: Engine,
    out: IO[str],
    *,
    status: SubscriberStatus | None = None,
    tag: str | None = None,
    where: Sequence[Any] = (),
) -> int:
    """Write subscribers as CSV (EXPORT_COLUMNS: consent dates, text and source too); returns rows.

    Every cell that a spreadsheet would run as a formula is neutralised. Streams: one page
    of subscribers in memory at a time.
    """
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    written = 0
    for subscriber in iter_subscribers(engine, status=status, tag=tag, where=where):
        created = subscriber.created_at.isoformat() if subscriber.created_at else ""
        confirmed = subscriber.confirmed_at.isoformat() if subscriber.confirmed_at else ""
        writer.writerow(
            [
                neutralize(cell)
                for cell in (
                    subscriber.email,
                    subscriber.name,
                    subscriber.status.value,
                    ",".join(subscriber.tags),
                    subscriber.timezone or "",
                    created,
                    confirmed,
                    subscriber.source,
                    subscriber.opted_in_at.isoformat() if subscriber.opted_in_at else "",
                    subscriber.consent_text,
                )
            ]
        )
        written += 1
    return written
