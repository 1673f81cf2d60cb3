"""A reader's own choices, made on their manage-your-subscription page.

    frequency   "every" article as it is sent, or the "digest" only
    topics      the public tags (`subscribe.public_tags`) they want articles on; None
                for every topic. An article whose public tags match none of a reader's
                topics is not sent to them; an article without public tags goes to all.
    name, timezone

`publisher.store.ledger` applies frequency and topics when it picks an issue's readers,
so every way of sending (the CLI, the API, the desk, the daemon's schedules) honours
them. Topics are stored comma-separated, so a tag with a comma cannot be a topic.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select, update

from publisher.errors import NotFound, SubscriberError
from publisher.store.engine import begin_write
from publisher.store.schema import subscribers
from publisher.store.subscribers.changes import _event
from publisher.store.subscribers.values import check_timezone, clean_name, clean_tags

__all__ = ["FREQUENCIES", "Preferences", "get_preferences", "rename_topic", "set_preferences"]

FREQUENCIES = ("every", "digest")


@dataclass(frozen=True, slots=True)
class Preferences:
    subscriber_id: int
    email: str
    status: str
    name: str
    timezone: str | None
    frequency: str
    topics: tuple[str, ...] | None


def get_preferences(engine: Engine, subscriber_id: int) -> Preferences | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(
                subscribers.c.id, subscribers.c.email, subscribers.c.status, subscribers.c.name,
                subscribers.c.timezone, subscribers.c.frequency, subscribers.c.topics,
            ).where(subscribers.c.id == subscriber_id)
        ).first()
    if row is None:
        return None
    topics = None if row.topics is None else tuple(t for t in row.topics.split(",") if t)
    return Preferences(row.id, row.email, row.status, row.name, row.timezone, row.frequency, topics)


def set_preferences(
    engine: Engine,
    subscriber_id: int,
    *,
    name: str,
    timezone: str | None,
    frequency: str,
    topics: Iterable[str] | None,
    allowed_topics: Iterable[str],
    now: datetime,
) -> Preferences:
    """Store a reader's choices; SubscriberError for a value they could not have chosen."""
    if frequency not in FREQUENCIES:
        raise SubscriberError(f"frequency must be one of {', '.join(FREQUENCIES)}, got {frequency!r}")
    allowed = {t for t in clean_tags(allowed_topics) if "," not in t}
    chosen = None
    if topics is not None:
        chosen = clean_tags(topics)
        unknown = [t for t in chosen if t not in allowed]
        if unknown:
            raise SubscriberError(f"{', '.join(unknown)} cannot be chosen as a topic")
    values = {
        "name": clean_name(name),
        "timezone": check_timezone(timezone),
        "frequency": frequency,
        "topics": None if chosen is None else ",".join(chosen),
        "updated_at": now,
    }
    with begin_write(engine) as conn:
        row = conn.execute(
            select(subscribers.c.email, subscribers.c.topics).where(subscribers.c.id == subscriber_id)
        ).first()
        if row is None:
            raise NotFound(f"subscriber {subscriber_id} does not exist")
        email, had = row.email, {t for t in (row.topics or "").split(",") if t}
        conn.execute(update(subscribers).where(subscribers.c.id == subscriber_id).values(**values))
        detail = f"frequency={frequency}; topics={'all' if chosen is None else ','.join(chosen) or 'none'}"
        _event(conn, subscriber_id, email, "preferences", now, provider="web", detail=detail)
        for topic in sorted(set(chosen or ()) - had):
            _event(conn, subscriber_id, email, "topic_joined", now, provider="web", detail=topic)
    found = get_preferences(engine, subscriber_id)
    assert found is not None
    return found


def rename_topic(engine: Engine, old: str, new: str) -> int:
    """Every reader who chose the topic `old` has `new` instead (the owner renamed it); returns how many."""
    pattern = f"%{old}%"
    moved = 0
    with begin_write(engine) as conn:
        rows = conn.execute(
            select(subscribers.c.id, subscribers.c.topics).where(subscribers.c.topics.like(pattern))
        ).all()
        for row in rows:
            topics = [t for t in row.topics.split(",") if t]
            if old not in topics:
                continue
            renamed = list(dict.fromkeys(new if t == old else t for t in topics))
            conn.execute(update(subscribers).where(subscribers.c.id == row.id).values(topics=",".join(renamed)))
            moved += 1
    return moved
