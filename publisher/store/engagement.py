"""Opens and clicks as the store keeps them: rows per request, read back as counts.

Nothing here runs unless the author turned `analytics.enabled` on; the mail carries no
pixel and no rewritten link otherwise, so these tables stay empty.

A row is one request for the pixel (`open`) or one click link (`click`, with the number of
the link in `links`). `machine` rows are requests the filter (`services/analytics_filter`)
took for a proxy, a scanner or a HEAD request: they are kept with their reason, reported
apart, and never counted as readers.

Per person, or not: while `analytics.per_person` is off the token in the mail names the
issue only, and rows are written with `delivery_id` NULL. Then the totals hold, but no
unique counts can be made and `per_copy` returns {}: a subject test reading it falls back
to the totals per variant it can make from elsewhere, or to its first subject. While
per-person is on, `delivery_id` names the ledger row (one copy to one reader), and
`forget` cuts the rows of an erased reader loose from them (the counts stay true).

`links` holds the links that were in an issue, numbered from 1 in the order they appear;
a click link is only ever redirected to a URL read from it, so the redirect cannot be
pointed anywhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, Engine, distinct, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from publisher.store.engine import begin_write
from publisher.store.schema import deliveries, engagement, links

__all__ = [
    "CLICK",
    "OPEN",
    "LinkCount",
    "Totals",
    "copy_clicks_since",
    "copy_sent_at",
    "forget",
    "link_url",
    "per_copy",
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
) -> None:
    """Keep one open or click; `also_machine` re-marks this copy's earlier clicks on those links.

    When a copy's burst of clicks shows a scanner only at its last click, its earlier
    clicks (taken for a reader a moment before) are moved to the machines too.
    """
    with begin_write(db) as conn:
        conn.execute(
            insert(engagement).values(
                issue_id=issue_id, kind=kind, at=at, link_id=link_id, delivery_id=delivery_id,
                machine=machine, reason=reason[:64],
            )
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


def per_copy(db: Engine, issue_id: int) -> dict[int, tuple[bool, bool]]:
    """Ledger row id -> (opened, clicked) for an issue's copies, readers only.

    Empty when per-person analytics were off (rows carry no copy). A click counts as an
    open too: an image blocked by the mail program does not mean the mail was unread.
    """
    seen: dict[int, tuple[bool, bool]] = {}
    with db.connect() as conn:
        rows = conn.execute(
            select(engagement.c.delivery_id, engagement.c.kind)
            .where(
                engagement.c.issue_id == issue_id,
                engagement.c.delivery_id.is_not(None),
                engagement.c.machine.is_(False),
            )
            .distinct()
        )
        for row in rows:
            opened, clicked = seen.get(int(row.delivery_id), (False, False))
            if row.kind == CLICK:
                opened, clicked = True, True
            else:
                opened = True
            seen[int(row.delivery_id)] = (opened, clicked)
    return seen


def totals(db: Engine, issue_id: int) -> Totals:
    """Every count of an issue's opens and clicks, per link too, with machines apart.

    Each query walks the covering index (issue_id, kind, machine, reason, link_id,
    delivery_id) without reading the table; the distinct counts, which need sorting, are
    made only when rows name copies (per-person analytics).
    """
    where = engagement.c.issue_id == issue_id
    with db.connect() as conn:
        by_kind = conn.execute(
            select(
                engagement.c.kind, engagement.c.machine, engagement.c.reason,
                func.count().label("n"), func.max(engagement.c.delivery_id).label("some_copy"),
            )
            .where(where)
            .group_by(engagement.c.kind, engagement.c.machine, engagement.c.reason)
        ).all()
        per_person = any(r.some_copy is not None for r in by_kind)
        unique: dict[str, int] = {}
        if per_person:
            unique = {
                str(r.kind): int(r.people)
                for r in conn.execute(
                    select(engagement.c.kind, func.count(distinct(engagement.c.delivery_id)).label("people"))
                    .where(where, engagement.c.machine.is_(False))
                    .group_by(engagement.c.kind)
                )
            }
        columns = [engagement.c.link_id, engagement.c.machine, func.count().label("n")]
        if per_person:
            columns.append(func.count(distinct(engagement.c.delivery_id)).label("people"))
        clicked = conn.execute(
            select(*columns)
            .where(where, engagement.c.kind == CLICK)
            .group_by(engagement.c.link_id, engagement.c.machine)
        ).all()
        urls = conn.execute(select(links.c.link_id, links.c.url).where(links.c.issue_id == issue_id)).all()
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
    human: dict[int, tuple[int, int]] = {}
    machine: dict[int, int] = {}
    for r in clicked:
        if r.link_id is None:
            continue
        if r.machine:
            machine[int(r.link_id)] = machine.get(int(r.link_id), 0) + int(r.n)
        else:
            human[int(r.link_id)] = (int(r.n), int(r.people) if per_person else 0)
    link_counts = tuple(
        sorted(
            (
                LinkCount(
                    int(r.link_id), str(r.url), human.get(int(r.link_id), (0, 0))[0],
                    human.get(int(r.link_id), (0, 0))[1] if per_person else None, machine.get(int(r.link_id), 0),
                )
                for r in urls
            ),
            key=lambda c: (-c.clicks, c.link_id),
        )
    )
    return Totals(
        opens=opens,
        unique_opens=unique.get(OPEN, 0) if per_person else None,
        clicks=clicks,
        unique_clicks=unique.get(CLICK, 0) if per_person else None,
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
    """Cut an erased reader's opens and clicks loose from their copies; returns how many.

    Run in the erasure's transaction, before the ledger rows are emptied of them: the rows
    stay as anonymous counts, as if per-person analytics had been off.
    """
    copies = select(deliveries.c.id).where(deliveries.c.subscriber_id == subscriber_id)
    result = conn.execute(
        update(engagement).where(engagement.c.delivery_id.in_(copies)).values(delivery_id=None)
    )
    return int(result.rowcount or 0)
