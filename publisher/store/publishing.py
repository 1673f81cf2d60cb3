"""What the daemon has already noticed (articles) and owes feed hubs (WebSub pings).

An article is noticed once, by its stable id: an edit, a rename or a re-published remote
item never counts as new again, so it never sends again.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from publisher.store.engine import reader, written_in
from publisher.store.schema import articles_seen, pings

__all__ = [
    "CATALOGUE_FILED",
    "Ping",
    "catalogue_filed",
    "due_pings",
    "file_catalogue",
    "mark_digested",
    "mark_seen",
    "queue_pings",
    "record_ping",
    "seen_ids",
    "undigested",
    "waiting",
]


# A row under this id says the back catalogue has been filed: the daemon's first look is
# behind us, so from now on every unseen article is new (even on a publication that had none).
CATALOGUE_FILED = "publisher:catalogue-filed"


def seen_ids(db: sa.Engine) -> set[str]:
    """Ids of every article noticed so far."""
    query = sa.select(articles_seen.c.article_id).where(articles_seen.c.article_id != CATALOGUE_FILED)
    with db.connect() as conn:
        return {str(row[0]) for row in conn.execute(query)}


def catalogue_filed(db: sa.Engine) -> bool:
    """True once the first look at the publication has filed what existed then."""
    query = sa.select(articles_seen.c.article_id).where(articles_seen.c.article_id == CATALOGUE_FILED)
    with db.connect() as conn:
        return conn.execute(query).first() is not None


def file_catalogue(db: sa.Engine, *, now: datetime) -> bool:
    """Record that the back catalogue is filed. False when another process did it first."""
    return mark_seen(db, article_id=CATALOGUE_FILED, slug="", origin="", handled="marker", now=now)


def mark_seen(db: sa.Engine, *, article_id: str, slug: str, origin: str, handled: str, now: datetime) -> bool:
    """Record an article as noticed. False when someone (another daemon) noticed it first."""
    with db.begin() as conn:
        exists = conn.execute(
            sa.select(articles_seen.c.article_id).where(articles_seen.c.article_id == article_id)
        ).first()
        if exists:
            return False
        try:
            with conn.begin_nested():
                conn.execute(
                    articles_seen.insert().values(
                        article_id=article_id, slug=slug, origin=origin, handled=handled, first_seen_at=now
                    )
                )
        except sa.exc.IntegrityError:
            return False
    return True


def undigested(db: sa.Engine) -> list[str]:
    """Ids of articles noticed since the last digest (the back catalogue is never digested)."""
    query = sa.select(articles_seen.c.article_id).where(
        articles_seen.c.digested_at.is_(None), articles_seen.c.handled.not_in(("backlog", "marker"))
    )
    with db.connect() as conn:
        return [str(row[0]) for row in conn.execute(query)]


@dataclass(frozen=True, slots=True)
class Noticed:
    article_id: str
    slug: str
    first_seen_at: datetime


def waiting(db: sa.Engine, *, since: datetime) -> list[Noticed]:
    """Articles noticed since `since` whose newsletter waits for the author (policy "wait",
    or saved in the desk), newest first; the caller leaves out those sent or scheduled since."""
    with reader(db) as conn:
        rows = conn.execute(_waiting_query(), {"since": since}).all()
    return [
        Noticed(
            article_id=str(row.article_id), slug=str(row.slug),
            first_seen_at=row.first_seen_at if row.first_seen_at.tzinfo else row.first_seen_at.replace(tzinfo=UTC),
        )
        for row in rows
    ]


@functools.cache
def _waiting_query() -> sa.Select[tuple[object, ...]]:
    """Built once: Home asks on every request."""
    return (
        sa.select(articles_seen.c.article_id, articles_seen.c.slug, articles_seen.c.first_seen_at)
        .where(
            articles_seen.c.handled.in_(written_in(("wait", "draft"))),
            articles_seen.c.first_seen_at >= sa.bindparam("since"),
        )
        .order_by(articles_seen.c.first_seen_at.desc())
    )


def mark_digested(db: sa.Engine, article_ids: Iterable[str], *, now: datetime) -> None:
    ids = list(article_ids)
    if not ids:
        return
    with db.begin() as conn:
        conn.execute(
            articles_seen.update().where(articles_seen.c.article_id.in_(ids)).values(digested_at=now)
        )


@dataclass(frozen=True, slots=True)
class Ping:
    id: int
    hub: str
    topic: str
    attempts: int


def queue_pings(db: sa.Engine, hubs: Iterable[str], topics: Iterable[str], *, now: datetime) -> int:
    """Owe each hub a publish ping for each topic; an identical ping still pending is reused."""
    topic_list = list(topics)
    added = 0
    with db.begin() as conn:
        for hub in hubs:
            for topic in topic_list:
                pending = conn.execute(
                    sa.select(pings.c.id).where(
                        pings.c.hub == hub, pings.c.topic == topic, pings.c.state == "pending"
                    )
                ).first()
                if pending is None:
                    conn.execute(
                        pings.insert().values(
                            hub=hub, topic=topic, state="pending", attempts=0, not_before=now,
                            detail="", created_at=now,
                        )
                    )
                    added += 1
    return added


def due_pings(db: sa.Engine, *, now: datetime) -> list[Ping]:
    query = (
        sa.select(pings.c.id, pings.c.hub, pings.c.topic, pings.c.attempts, pings.c.not_before)
        .where(pings.c.state == "pending")
        .order_by(pings.c.id)
    )
    with db.connect() as conn:
        rows = conn.execute(query).all()
    due = []
    for row in rows:
        not_before = row.not_before if row.not_before.tzinfo else row.not_before.replace(tzinfo=UTC)
        if not_before <= now:
            due.append(Ping(id=row.id, hub=row.hub, topic=row.topic, attempts=row.attempts))
    return due


def record_ping(
    db: sa.Engine, ping: Ping, *, ok: bool, detail: str, now: datetime, max_attempts: int = 8
) -> None:
    """A hub answered (done) or did not (retry with backoff: 1, 2, 4 ... minutes, then failed)."""
    attempts = ping.attempts + 1
    if ok:
        values: dict[str, object] = {"state": "done", "attempts": attempts, "detail": detail}
    elif attempts >= max_attempts:
        values = {"state": "failed", "attempts": attempts, "detail": detail}
    else:
        delay = timedelta(minutes=2 ** (attempts - 1))
        values = {"attempts": attempts, "detail": detail, "not_before": now + delay}
    with db.begin() as conn:
        conn.execute(pings.update().where(pings.c.id == ping.id).values(**values))
