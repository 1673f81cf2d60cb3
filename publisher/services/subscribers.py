"""Subscriber actions: add, import, unsubscribe, erase, export one person, list, tags.

Every function takes the config, the store and `now` where it needs them and returns
dataclasses or raises from `publisher.errors`: SubscriberError for an unusable address,
name, tag or zone; NotFound for an address or id the list does not hold; InvalidRequest
for a page size out of range. Nothing here prints, parses arguments or knows HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO

from sqlalchemy import Engine

from publisher.errors import InvalidRequest, NotFound
from publisher.models import Subscriber, SubscriberStatus
from publisher.store import stats as store_stats
from publisher.store import subscribers as store
from publisher.store.stats import DeliveryRecord, EventRecord
from publisher.store.subscriber_csv import ImportReport

__all__ = [
    "MAX_PAGE",
    "ImportReport",
    "Subscribed",
    "SubscriberData",
    "SubscriberPage",
    "TagCount",
    "counts",
    "erase",
    "export_csv",
    "export_subscriber",
    "get_subscriber",
    "import_subscribers",
    "iter_subscribers",
    "list_subscribers",
    "subscribe",
    "tags",
    "unsubscribe",
    "update_subscriber",
]

MAX_PAGE = 1000
"""The most subscribers one page of a listing holds."""


@dataclass(frozen=True, slots=True)
class Subscribed:
    """What `subscribe` did: the subscriber as stored, and whether the address was new."""

    subscriber: Subscriber
    created: bool


@dataclass(frozen=True, slots=True)
class SubscriberPage:
    """One page of a listing. Pass `next_after` back as `after` for the next page."""

    items: tuple[Subscriber, ...]
    has_more: bool

    @property
    def next_after(self) -> int | None:
        return self.items[-1].id if self.has_more and self.items else None


@dataclass(frozen=True, slots=True)
class TagCount:
    """A tag (a segment) and how many subscribers carry it: active ones, and all."""

    tag: str
    active: int
    total: int


@dataclass(frozen=True, slots=True)
class SubscriberData:
    """Everything the store holds about one person (a GDPR access request)."""

    subscriber: Subscriber
    events: tuple[EventRecord, ...]
    deliveries: tuple[DeliveryRecord, ...]


def subscribe(
    db: Engine,
    email: str,
    *,
    now: datetime,
    name: str = "",
    tags: Iterable[str] = (),
    timezone: str | None = None,
    pending: bool = False,
    resubscribe: bool = False,
    source: str = "cli",
) -> Subscribed:
    """Add `email` as active (or `pending`, to confirm), or update the name, tags and zone
    of the subscriber who has it.

    An address that unsubscribed, bounced or complained stays off the list (SubscriberError)
    unless `resubscribe` says they asked to come back. Sending a confirmation mail to a
    pending subscriber is the caller's choice, not done here.
    """
    status = SubscriberStatus.PENDING if pending else SubscriberStatus.ACTIVE
    subscriber = store.add(
        db, email, name=name, tags=tags, timezone=timezone, status=status, now=now,
        resubscribe=resubscribe, source=source,
    )
    return Subscribed(subscriber=subscriber, created=subscriber.created_at == now)


def get_subscriber(db: Engine, key: int | str) -> Subscriber:
    """The subscriber with this id or address; NotFound otherwise."""
    found = store.get(db, key) if isinstance(key, int) else store.find(db, key)
    if found is None:
        what = f"id {key}" if isinstance(key, int) else f"address {store.normalize_email(key)}"
        raise NotFound(f"no subscriber with {what}")
    return found


def update_subscriber(
    db: Engine,
    key: int | str,
    *,
    now: datetime,
    name: str | None = None,
    tags: Iterable[str] | None = None,
    timezone: str | None = None,
) -> Subscriber:
    """Change a subscriber's name, zone or tags (`tags` replaces the set); None leaves a field.

    The status never changes here: use `unsubscribe`, or `subscribe` with resubscribe.
    """
    current = get_subscriber(db, key)
    return store.edit(db, current.id, name=name, tags=tags, timezone=timezone, now=now)


def unsubscribe(db: Engine, key: int | str, *, now: datetime, source: str = "cli") -> Subscriber:
    """Take a subscriber off the list, keeping the address so no import brings it back.

    Like a one-click unsubscribe, it takes effect for every batch not yet claimed by a
    sender. A bounced or complained status stays as it is.
    """
    current = get_subscriber(db, key)
    store.remove(db, current.email, now=now, provider=source)
    return get_subscriber(db, current.id)


def erase(db: Engine, key: int | str, *, now: datetime) -> str:
    """Delete a subscriber's personal data (an erasure request); returns the address erased.

    A later import may add the address again, since nothing remembers it.
    """
    current = get_subscriber(db, key)
    store.remove(db, current.email, now=now, purge=True)
    return current.email


def export_subscriber(db: Engine, key: int | str) -> SubscriberData:
    """What the store holds about one subscriber: the row, its events and its deliveries."""
    subscriber = get_subscriber(db, key)
    found, copies = store_stats.history(db, subscriber.id, subscriber.email)
    return SubscriberData(subscriber=subscriber, events=tuple(found), deliveries=tuple(copies))


def import_subscribers(
    db: Engine,
    lines: Iterable[str],
    *,
    now: datetime,
    origin: str,
    pending: bool = False,
    tags: Iterable[str] = (),
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a CSV export (Mailchimp, Substack, Buttondown, Ghost or publisher) in one transaction.

    Unusable rows are reported with their line and reason and nothing else of them is
    kept; a file that is not CSV raises SubscriberError and imports nothing. Bytes from
    a file or an upload become `lines` through `publisher.store.subscriber_csv.open_export`,
    which finds their encoding. `progress` hears the count of records read, chunk by chunk.
    """
    return store.import_csv(db, lines, now=now, origin=origin, pending=pending, tags=tags, progress=progress)


def list_subscribers(
    db: Engine,
    *,
    status: SubscriberStatus | None = None,
    tag: str | None = None,
    since: datetime | None = None,
    search: str | None = None,
    after: int | None = None,
    limit: int = 100,
) -> SubscriberPage:
    """One page of subscribers in id order, after the subscriber with id `after`.

    Filters: `status`, `tag`, created at or after `since`, and `search` (part of the
    address or name). `limit` is 1 to MAX_PAGE (InvalidRequest otherwise).
    """
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
    items, more = store.page(
        db, status=status, tag=tag, since=since, search=search, after=after or 0, limit=limit
    )
    return SubscriberPage(items=tuple(items), has_more=more)


def iter_subscribers(
    db: Engine, *, status: SubscriberStatus | None = None, tag: str | None = None
) -> Iterator[Subscriber]:
    """Every matching subscriber in id order, streamed a page at a time (for listings and exports)."""
    return store.iter_subscribers(db, status=status, tag=tag)


def export_csv(
    db: Engine, out: IO[str], *, status: SubscriberStatus | None = None, tag: str | None = None
) -> int:
    """Write matching subscribers as CSV (email, name, status, tags, timezone, created_at) to
    `out`, streamed; returns the rows written. Formula-like cells are neutralised."""
    return store.export_csv(db, out, status=status, tag=tag)


def counts(db: Engine) -> dict[str, int]:
    """Subscribers per status, every status present, active first."""
    return store.counts(db)


def tags(db: Engine) -> list[TagCount]:
    """Every tag in use with its active and total subscribers, most active first."""
    active = store.tag_counts(db)
    total = store.tag_counts(db, status=None)
    ordered = sorted(total, key=lambda tag: (-active.get(tag, 0), -total[tag], tag))
    return [TagCount(tag=tag, active=active.get(tag, 0), total=total[tag]) for tag in ordered]
