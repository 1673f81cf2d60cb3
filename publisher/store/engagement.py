"""Opens and clicks as the store keeps them: rows per request, read back as counts.

Nothing here runs unless the author turned `analytics.enabled` on; the mail carries no
pixel and no rewritten link otherwise, so these tables stay empty.

A row of `engagement` is one request for the pixel (`open`) or one click link (`click`,
with the number of the link in `links`): the total loads and clicks. `machine` rows are
requests the filter (`services/machine_traffic`) took for a proxy, a scanner or a HEAD
request: they are kept with their reason, reported apart, and never counted as readers.

Once per copy, without a per-person record: `engagement_seen` keeps, per issue, one row
per copy that loaded the pixel, one per copy that clicked, and one per copy and link
clicked, each under `digest(issue, message key)` and with the subject the copy carried in
a subject test (whose "opened" counts a copy that clicked too: `per_variant`). A reader
who loads the pixel ten times or clicks five times counts once: that is what the unique
counts, and a subject test's decision, read. Why a digest of the
message key: the key is 96 random bits the database drew for the copy, named by the copy's
tokens and by nothing about the reader, so its SHA-256 can neither be reversed nor be
computed from an address or a subscriber id; it names no ledger row, so a copy of this
table alone says who opened nothing. Only someone holding the ledger can recompute it, and
that is how an erasure finds the rows (`forget`): their digest is replaced by a random one,
so the counts stay true and nothing leads back. A keyed hash (under PUBLISHER_SECRET) would
protect nothing more against someone holding the ledger, and would make the erasure depend
on the secret. A copy of an erased reader that loads the pixel again counts once more.

Per person, or not: while `analytics.per_person` is off, `engagement` rows carry no
`delivery_id` and no `subscriber_id`; while it is on, `delivery_id` names the ledger row
(one copy to one reader), which `reader_history` shows the reader on their page, and
`subscriber_id` that copy's reader, which a segment's "opened in the last N issues" reads
without the ledger. `forget` cuts the rows of an erased reader loose from both (the counts
stay true).

`links` holds the links that were in an issue, numbered from 1 in the order they appear;
a click link is only ever redirected to a URL read from it, so the redirect cannot be
pointed anywhere else.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Select, bindparam, delete, distinct, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from publisher.store.engine import begin_write, reader
from publisher.store.schema import deliveries, engagement, engagement_seen, links

__all__ = [
    "CLICK",
    "OPEN",
    "LinkCount",
    "Totals",
    "copy_clicks_since",
    "copy_sent_at",
    "digest",
    "forget",
    "link_url",
    "per_variant",
    "reader_history",
    "record",
    "record_links",
    "totals",
]

OPEN = "open"
CLICK = "click"


@dataclass(frozen=True, slots=True)
class LinkCount:
    """One link of an issue and the clicks it had (readers only; machines apart)."""

    link_id: int
    url: str
    clicks: int
    unique_clicks: int | None
    machine_clicks: int


@dataclass(frozen=True, slots=True)
class Totals:
    """An issue's opens and clicks. Unique counts are None when per-person analytics were off."""

    opens: int = 0
    unique_opens: int | None = None
    clicks: int = 0
    unique_clicks: int | None = None
    machine_opens: int = 0
    machine_clicks: int = 0
    noted_opens: Mapping[str, int] = field(default_factory=dict)  # reader opens through a proxy, by reason
    machine_reasons: Mapping[str, int] = field(default_factory=dict)
    links: tuple[LinkCount, ...] = ()

    @property
    def machine_share(self) -> float:
        """The part of all requests (opens and clicks) that machines made, 0.0 to 1.0."""
        every = self.opens + self.clicks + self.machine_opens + self.machine_clicks
        return (self.machine_opens + self.machine_clicks) / every if every else 0.0


def record_links(db: Engine | Connection, issue_id: int, urls: Iterable[str]) -> dict[str, int]:
    """Number an issue's links (the first time) and return URL -> link number.

    An issue is rendered again for every send and resume: links already numbered keep
    their number, and a new one is added after them.
    """
    wanted = list(dict.fromkeys(urls))

    def run(conn: Connection) -> dict[str, int]:
        known = {
            str(r.url): int(r.link_id)
            for r in conn.execute(select(links.c.url, links.c.link_id).where(links.c.issue_id == issue_id))
        }
        fresh = [u for u in wanted if u not in known]
        start = max(known.values(), default=0)
        if fresh:
            conn.execute(
                insert(links),
                [{"issue_id": issue_id, "link_id": start + n, "url": u} for n, u in enumerate(fresh, 1)],
            )
            known.update({u: start + n for n, u in enumerate(fresh, 1)})
        return {u: known[u] for u in wanted}

    if isinstance(db, Connection):
        return run(db)
    try:
        with begin_write(db) as conn:
            return run(conn)
    except IntegrityError:
        # Another worker numbered the same links a moment before: the same order gives the
        # same numbers, so read theirs.
        with begin_write(db) as conn:
            return run(conn)


def link_url(db: Engine, issue_id: int, link_id: int) -> str | None:
    """The URL of an issue's link number, or None: the only thing a click may lead to."""
    with db.connect() as conn:
        url = conn.execute(
            select(links.c.url).where(links.c.issue_id == issue_id, links.c.link_id == link_id)
        ).scalar()
    return None if url is None else str(url)


def copy_sent_at(db: Engine, delivery_id: int, issue_id: int) -> datetime | None:
    """When the provider accepted the copy (its ledger row's sent_at), if it is of that issue."""
    with db.connect() as conn:
        return conn.execute(
            select(deliveries.c.sent_at).where(deliveries.c.id == delivery_id, deliveries.c.issue_id == issue_id)
        ).scalar()


def copy_clicks_since(db: Engine, delivery_id: int, since: datetime) -> set[int]:
    """The link numbers one copy had clicked from `since` on (machine or not)."""
    with db.connect() as conn:
        rows = conn.execute(
            select(engagement.c.link_id).where(
                engagement.c.delivery_id == delivery_id,
                engagement.c.kind == CLICK,
                engagement.c.at >= since,
            )
        )
        return {int(r.link_id) for r in rows if r.link_id is not None}


def digest(issue_id: int, message_key: str) -> str:
    """The name a copy is counted under in `engagement_seen` (see the module's docstring)."""
    return hashlib.sha256(f"publisher.seen\0{issue_id}\0{message_key}".encode()).hexdigest()[:32]


def record(
    db: Engine,
    *,
    issue_id: int,
    kind: str,
    at: datetime,
    link_id: int | None = None,
    delivery_id: int | None = None,
    machine: bool = False,
    reason: str = "",
    also_machine: Iterable[int] = (),
    copy: str = "",
    variant: int | None = None,
) -> None:
    """Keep one open or click; `also_machine` re-marks this copy's earlier clicks on those links.

    `copy` (a `digest`, "" for a token that names no copy) counts a reader's request once
    per copy, with the `variant` it carried. When a copy's burst of clicks shows a scanner
    only at its last click, its earlier clicks (taken for a reader a moment before) are
    moved to the machines too, and its clicks leave the unique counts.
    """
    # The copy's reader as the ledger names them now: None for a copy of an erased reader.
    reader = None if delivery_id is None else (
        select(deliveries.c.subscriber_id).where(deliveries.c.id == delivery_id).scalar_subquery()
    )
    with begin_write(db) as conn:
        conn.execute(
            insert(engagement).values(
                issue_id=issue_id, kind=kind, at=at, link_id=link_id, delivery_id=delivery_id,
                subscriber_id=reader, machine=machine, reason=reason[:64],
            )
        )
        if copy and not machine:
            marks = [(OPEN, 0)] if kind == OPEN else [(CLICK, 0), (CLICK, link_id or 0)]
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            conn.execute(
                dialect.insert(engagement_seen).on_conflict_do_nothing(
                    index_elements=["issue_id", "kind", "link_id", "digest"]
                ),
                [
                    {"issue_id": issue_id, "kind": seen_kind, "link_id": seen_link, "digest": copy, "variant": variant}
                    for seen_kind, seen_link in marks
                ],
            )
        earlier = list(also_machine)
        if earlier and delivery_id is not None:
            conn.execute(
                update(engagement)
                .where(
                    engagement.c.delivery_id == delivery_id,
                    engagement.c.kind == CLICK,
                    engagement.c.link_id.in_(earlier),
                    engagement.c.machine.is_(False),
                )
                .values(machine=True, reason=reason[:64])
            )
            if copy:
                conn.execute(
                    delete(engagement_seen).where(
                        engagement_seen.c.issue_id == issue_id, engagement_seen.c.kind == CLICK,
                        engagement_seen.c.digest == copy,
                    )
                )


def per_variant(db: Engine, issue_id: int) -> dict[int, tuple[int, int]]:
    """Subject-test variant -> (copies opened, copies clicked), readers only, each copy once.

    A click counts as an open too (a picture blocked by the mail program does not mean the
    mail was unread). Copies whose tokens named none (mail sent before copies were counted
    once) are not in it.
    """
    where = (
        engagement_seen.c.issue_id == issue_id,
        engagement_seen.c.link_id == 0,
        engagement_seen.c.variant.is_not(None),
    )
    with db.connect() as conn:
        opened: dict[int, int] = dict(conn.execute(
            select(engagement_seen.c.variant, func.count(distinct(engagement_seen.c.digest)))
            .where(*where)
            .group_by(engagement_seen.c.variant)
        ).all())
        clicked: dict[int, int] = dict(conn.execute(
            select(engagement_seen.c.variant, func.count())
            .where(*where, engagement_seen.c.kind == CLICK)
            .group_by(engagement_seen.c.variant)
        ).all())
    return {int(v): (int(n), int(clicked.get(v, 0))) for v, n in opened.items()}


@functools.cache
def _totals_queries() -> tuple[Select[Any], Select[Any], Select[Any], Select[Any]]:
    """`totals`' statements, built once: an issue's report reads them on every request."""
    where = engagement.c.issue_id == bindparam("issue_id")
    return (
        select(engagement.c.kind, engagement.c.machine, engagement.c.reason, func.count().label("n"))
        .where(where)
        .group_by(engagement.c.kind, engagement.c.machine, engagement.c.reason),
        select(engagement.c.link_id, engagement.c.machine, func.count().label("n"))
        .where(where, engagement.c.kind == CLICK)
        .group_by(engagement.c.link_id, engagement.c.machine),
        select(engagement_seen.c.kind, engagement_seen.c.link_id, func.count().label("n"))
        .where(engagement_seen.c.issue_id == bindparam("issue_id"))
        .group_by(engagement_seen.c.kind, engagement_seen.c.link_id),
        select(links.c.link_id, links.c.url).where(links.c.issue_id == bindparam("issue_id")),
    )


def totals(db: Engine, issue_id: int) -> Totals:
    """Every count of an issue's opens and clicks, per link too, with machines apart.

    The totals walk the covering index (issue_id, kind, machine, reason, link_id, ...) of
    `engagement` without reading the table; the unique counts are the number of
    `engagement_seen` rows under the issue's part of its key. A unique count is None when
    readers opened (or clicked) and no copy was seen: mail whose tokens named no copy,
    sent before copies were counted once.
    """
    by_kind_query, clicked_query, seen_query, urls_query = _totals_queries()
    values = {"issue_id": issue_id}
    with reader(db) as conn:
        by_kind = conn.execute(by_kind_query, values).all()
        clicked = conn.execute(clicked_query, values).all()
        seen = {(str(r.kind), int(r.link_id)): int(r.n) for r in conn.execute(seen_query, values)}
        urls = conn.execute(urls_query, values).all()
    opens = clicks = machine_opens = machine_clicks = 0
    noted: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for r in by_kind:
        n = int(r.n)
        if r.machine:
            reasons[str(r.reason)] = reasons.get(str(r.reason), 0) + n
            if r.kind == OPEN:
                machine_opens += n
            else:
                machine_clicks += n
        elif r.kind == OPEN:
            opens += n
            if r.reason:
                noted[str(r.reason)] = noted.get(str(r.reason), 0) + n
        else:
            clicks += n
    human: dict[int, int] = {}
    machine: dict[int, int] = {}
    for r in clicked:
        if r.link_id is None:
            continue
        into = machine if r.machine else human
        into[int(r.link_id)] = into.get(int(r.link_id), 0) + int(r.n)
    counted = bool(seen)

    def unique(kind: str, link_id: int, requests: int) -> int | None:
        found = seen.get((kind, link_id), 0)
        return None if requests and not counted else found

    link_counts = tuple(
        sorted(
            (
                LinkCount(
                    int(r.link_id), str(r.url), human.get(int(r.link_id), 0),
                    unique(CLICK, int(r.link_id), human.get(int(r.link_id), 0)), machine.get(int(r.link_id), 0),
                )
                for r in urls
            ),
            key=lambda c: (-c.clicks, c.link_id),
        )
    )
    return Totals(
        opens=opens,
        unique_opens=unique(OPEN, 0, opens + clicks),
        clicks=clicks,
        unique_clicks=unique(CLICK, 0, clicks),
        machine_opens=machine_opens,
        machine_clicks=machine_clicks,
        noted_opens=noted,
        machine_reasons=reasons,
        links=link_counts,
    )


def reader_history(db: Engine, subscriber_id: int, *, last: int = 5) -> tuple[int, int]:
    """(issues opened, issues sent) over a reader's `last` copies sent, readers' requests only.

    A click counts as an open. Only rows kept per person count, so a reader sees what is
    kept about them and nothing is guessed.
    """
    with db.connect() as conn:
        recent = conn.execute(
            select(deliveries.c.id)
            .where(deliveries.c.subscriber_id == subscriber_id, deliveries.c.sent_at.is_not(None))
            .order_by(deliveries.c.sent_at.desc(), deliveries.c.id.desc())
            .limit(last)
        ).scalars().all()
        if not recent:
            return 0, 0
        opened = conn.execute(
            select(func.count(distinct(engagement.c.delivery_id))).where(
                engagement.c.delivery_id.in_(recent), engagement.c.machine.is_(False)
            )
        ).scalar_one()
    return int(opened), len(recent)


def forget(conn: Connection, subscriber_id: int) -> int:
    """Cut an erased reader's opens and clicks loose from their copies; returns how many rows.

    Run in the erasure's transaction, before the ledger rows are emptied of them: the
    `engagement` rows, cut from their copy and their reader, stay as anonymous counts, as
    if per-person analytics had been off,
    and each of their copies' `engagement_seen` rows, found by recomputing its digest from
    the ledger, gets a random digest instead (still counted once, leading to no one).
    """
    copies = select(deliveries.c.id).where(deliveries.c.subscriber_id == subscriber_id)
    result = conn.execute(
        update(engagement)
        .where(or_(engagement.c.delivery_id.in_(copies), engagement.c.subscriber_id == subscriber_id))
        .values(delivery_id=None, subscriber_id=None)
    )
    cut = int(result.rowcount or 0)
    keyed = conn.execute(
        select(deliveries.c.issue_id, deliveries.c.message_key).where(
            deliveries.c.subscriber_id == subscriber_id, deliveries.c.message_key != ""
        )
    ).all()
    for row in keyed:
        # The issue first: the update reads the issue's part of the key, never the whole table.
        result = conn.execute(
            update(engagement_seen)
            .where(
                engagement_seen.c.issue_id == row.issue_id,
                engagement_seen.c.digest == digest(int(row.issue_id), str(row.message_key)),
            )
            .values(digest="x" + secrets.token_hex(16)[:31])
        )
        cut += int(result.rowcount or 0)
    return cut
