"""Changing subscribers: adding, editing, statuses, suppression and confirmation, each with its event.

A row is never deleted to unsubscribe someone: the status (unsubscribed, bounced,
complained) stays, so a later import or `add` cannot quietly put them back on the list.
Each change writes its event and the outbound webhook it announces in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError

from publisher.errors import NotFound, SubscriberError
from publisher.models import Subscriber, SubscriberStatus
from publisher.store import outbox
from publisher.store.engine import begin_write
from publisher.store.schema import (
    deliveries,
    events,
    subscriber_tags,
    subscribers,
)
from publisher.store.subscriber_csv import ImportReport
from publisher.store.subscribers.reading import _load, tags_of
from publisher.store.subscribers.values import (
    _HOOK_EVENTS,
    _KIND_STATUS,
    _RANK,
    MAX_ADDRESS,
    MAX_TAGS,
    SUPPRESSED,
    S,
    _source,
    check_timezone,
    clean_name,
    clean_tags,
    normalize_email,
)

__all__ = [
    "AFTER_ISSUE", "add", "can_confirm", "confirm", "edit", "import_csv", "issue_for_event", "mark_confirm_sent",
    "set_status", "suppress",
]

AFTER_ISSUE = timedelta(days=7)
"""How long after a copy went out a bounce or complaint about its reader counts for its issue."""


def _event(
    conn: Connection,
    subscriber_id: int | None,
    email: str,
    kind: str,
    now: datetime,
    *,
    provider: str = "",
    detail: str = "",
    event_key: str | None = None,
    issue_id: int | None = None,
) -> None:
    conn.execute(
        insert(events).values(
            subscriber_id=subscriber_id,
            email=email,
            kind=kind,
            provider=provider[:32],
            detail=detail,
            created_at=now,
            event_key=event_key,
            issue_id=issue_id,
        )
    )
    hook = _HOOK_EVENTS.get(kind)
    if hook is not None and subscriber_id is not None:
        data = {"id": subscriber_id, "email": email, "source": provider, "detail": detail}
        outbox.emit(conn, hook, data, now=now)


def _add_tags(conn: Connection, subscriber_id: int, tags: Sequence[str]) -> None:
    have = set(tags_of(conn, [subscriber_id]).get(subscriber_id, ()))
    missing = [{"subscriber_id": subscriber_id, "tag": tag} for tag in tags if tag not in have]
    if len(have) + len(missing) > MAX_TAGS:
        raise SubscriberError(
            f"subscriber {subscriber_id} has {len(have)} tags; {len(missing)} more would pass the "
            f"{MAX_TAGS} one subscriber may carry: remove some first"
        )
    if missing:
        conn.execute(insert(subscriber_tags), missing)


def _joined(conn: Connection, subscriber_id: int, email: str, tags: set[str], now: datetime, source: str) -> None:
    """A `topic_joined` event per tag a subscriber newly carries: it starts a sequence on
    that topic, and webhook receivers hear `subscriber.topic_joined`."""
    for tag in sorted(tags):
        _event(conn, subscriber_id, email, "topic_joined", now, provider=source, detail=tag)


_MIRRORED = ("email", "name", "status", "tags", "timezone")
"""The fields a `subscriber.updated` event carries, for receivers that mirror the list."""


def _updated(conn: Connection, before: Subscriber, after: Subscriber, now: datetime) -> None:
    """Tell webhook receivers what changed, if anything did (`subscriber.updated`)."""
    changed = [field for field in _MIRRORED if getattr(before, field) != getattr(after, field)]
    if changed:
        data: dict[str, Any] = {"id": after.id, "changed": changed}
        data.update({field: getattr(after, field) for field in _MIRRORED})
        data["status"] = after.status.value
        data["tags"] = list(after.tags)
        outbox.emit(conn, "subscriber.updated", data, now=now)


def add(
    engine: Engine,
    email: str,
    *,
    name: str = "",
    tags: Iterable[str] = (),
    status: SubscriberStatus = S.ACTIVE,
    timezone: str | None = None,
    source: str = "cli",
    now: datetime,
    resubscribe: bool = False,
    detail: str = "",
    consent_text: str = "",
) -> Subscriber:
    """Add a subscriber, or update the name, tags and zone of the one with this address.

    `detail` is kept with the subscribe event (a consent note, say); `consent_text`, what
    a new subscriber agreed to at the door they came by, is kept on the row.

    An existing active subscriber stays active even when `status` is pending; a pending
    one becomes active when `status` is active. An address that unsubscribed, bounced or
    complained is refused (SubscriberError) unless `resubscribe` says they asked to come
    back. Raises SubscriberError for an invalid address, name, tag or zone.
    """
    if status in SUPPRESSED:
        raise SubscriberError(f"add takes status pending or active, not {status.value}")
    address = normalize_email(email)
    clean = clean_name(name)
    tag_list = clean_tags(tags)
    zone = check_timezone(timezone)
    for attempt in (1, 2):
        try:
            with begin_write(engine) as conn:
                return _add(
                    conn, address, clean, tag_list, status, zone, source, now, resubscribe, detail, consent_text
                )
        except IntegrityError:
            # Another process added the same address between our look and our insert
            # (PostgreSQL; SQLite's write lock rules this out). The second look finds it.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _add(
    conn: Connection,
    address: str,
    name: str,
    tags: tuple[str, ...],
    status: SubscriberStatus,
    zone: str | None,
    source: str,
    now: datetime,
    resubscribe: bool,
    detail: str = "",
    consent_text: str = "",
) -> Subscriber:
    existing = _load(conn, subscribers.c.email == address)
    if existing is None:
        subscriber_id = conn.execute(
            insert(subscribers)
            .values(
                email=address,
                name=name,
                status=status.value,
                timezone=zone,
                source=_source(source),
                created_at=now,
                updated_at=now,
                confirmed_at=now if status is S.ACTIVE else None,
                consent_text=consent_text or None,
            )
            .returning(subscribers.c.id)
        ).scalar_one()
        _event(conn, subscriber_id, address, "subscribe", now, provider=source, detail=detail)
    else:
        subscriber_id = existing.id
        values: dict[str, Any] = {"updated_at": now}
        if name:
            values["name"] = name
        if zone is not None:
            values["timezone"] = zone
        if existing.status in SUPPRESSED:
            if not resubscribe:
                raise SubscriberError(
                    f"{address} is {existing.status.value}: it stays off the list. Add it again "
                    "with resubscribe (publisher subscribers add --resubscribe) only if they "
                    "asked to come back."
                )
            values["status"] = status.value
            why = f"resubscribed after {existing.status.value}" + (f": {detail}" if detail else "")
            _event(conn, subscriber_id, address, "subscribe", now, provider=source, detail=why)
        elif existing.status is S.PENDING and status is S.ACTIVE:
            values["status"] = S.ACTIVE.value
            values["confirmed_at"] = now
        conn.execute(update(subscribers).where(subscribers.c.id == subscriber_id).values(values))
    _add_tags(conn, subscriber_id, tags)
    _joined(conn, subscriber_id, address, set(tags) - set(existing.tags if existing else ()), now, source)
    loaded = _load(conn, subscribers.c.id == subscriber_id)
    assert loaded is not None
    if existing is not None and existing.status not in SUPPRESSED:
        _updated(conn, existing, loaded, now)
    return loaded


def edit(
    engine: Engine,
    subscriber_id: int,
    *,
    now: datetime,
    name: str | None = None,
    tags: Iterable[str] | None = None,
    timezone: str | None = None,
    check: Callable[[Subscriber], None] | None = None,
) -> Subscriber:
    """Change the name, zone or tags (`tags` replaces the whole set); None leaves a field as it is.

    `check` is called with the subscriber as stored, inside the writing transaction, and
    may raise to refuse the change (a precondition such as an HTTP If-Match).

    An empty `timezone` clears the zone. Nothing is written, `updated_at` included, when
    nothing changes; a change is told to webhook receivers (`subscriber.updated`).
    Raises SubscriberError for a bad name, tag or zone and NotFound for an unknown id;
    the status is never touched here.
    """
    values: dict[str, Any] = {}
    if name is not None:
        values["name"] = clean_name(name)
    if timezone is not None:
        values["timezone"] = check_timezone(timezone)
    tag_list = clean_tags(tags) if tags is not None else None
    with begin_write(engine) as conn:
        before = _load(conn, subscribers.c.id == subscriber_id)
        if before is None:
            raise NotFound(f"no subscriber with id {subscriber_id}")
        if check is not None:
            check(before)
        values = {key: value for key, value in values.items() if getattr(before, key) != value}
        retag = tag_list is not None and set(tag_list) != set(before.tags)
        if not values and not retag:
            return before
        values["updated_at"] = now
        conn.execute(update(subscribers).where(subscribers.c.id == subscriber_id).values(values))
        if retag and tag_list is not None:
            conn.execute(delete(subscriber_tags).where(subscriber_tags.c.subscriber_id == subscriber_id))
            _add_tags(conn, subscriber_id, tag_list)
            _joined(conn, subscriber_id, before.email, set(tag_list) - set(before.tags), now, "")
        loaded = _load(conn, subscribers.c.id == subscriber_id)
        assert loaded is not None
        _updated(conn, before, loaded, now)
    return loaded


def set_status(
    engine: Engine,
    subscriber_id: int,
    status: SubscriberStatus,
    *,
    now: datetime,
    kind: str,
    provider: str = "",
    detail: str = "",
) -> Subscriber:
    """Set a subscriber's status and record why (`kind`: confirm, unsubscribe, bounce, ...).

    Becoming active stamps `confirmed_at` the first time. Raises NotFound for an unknown id.
    """
    values: dict[str, Any] = {"status": status.value, "updated_at": now}
    if status is S.ACTIVE:
        stamp = literal(now, subscribers.c.confirmed_at.type)
        values["confirmed_at"] = func.coalesce(subscribers.c.confirmed_at, stamp)
    with engine.begin() as conn:
        # The write comes first, so SQLite takes its write lock at once.
        changed = conn.execute(
            update(subscribers).where(subscribers.c.id == subscriber_id).values(values)
        ).rowcount
        if not changed:
            raise NotFound(f"no subscriber with id {subscriber_id}")
        loaded = _load(conn, subscribers.c.id == subscriber_id)
        assert loaded is not None
        _event(conn, subscriber_id, loaded.email, kind, now, provider=provider, detail=detail)
    return loaded


def suppress(
    engine: Engine,
    email: str,
    kind: str,
    *,
    provider: str,
    detail: str = "",
    now: datetime,
    event_key: str | None = None,
    message_key: str | None = None,
) -> Subscriber | None:
    """Keep an address off the list after a bounce, complaint or unsubscribe (`kind`).

    The event is recorded even for an address we do not know. A status only moves to a
    stronger one (unsubscribed < bounced < complained). Returns the subscriber, if any.
    `event_key` is the provider's id of the event: one already recorded for `provider`
    (a provider's retry, a replay) changes nothing. Raises SubscriberError for an
    address longer than any mailbox can be.

    The event is recorded with the issue it answers (`issue_for_event`): the one whose
    message carried the link (`message_key`, from an unsubscribe link), else, for a
    bounce or complaint, the reader's latest copy.
    """
    status = _KIND_STATUS.get(kind)
    if status is None:
        raise SubscriberError(f"suppress kind must be one of {', '.join(_KIND_STATUS)}, not {kind!r}")
    try:
        address = normalize_email(email)
    except SubscriberError:
        address = email.strip().lower()  # a provider's report is kept even if oddly written
    if len(address) > MAX_ADDRESS:
        raise SubscriberError(f"address of {len(address)} characters is longer than any mailbox ({MAX_ADDRESS})")
    key = event_key[:255] if event_key else None
    weaker = [s.value for s in SubscriberStatus if _RANK[s] < _RANK[status]]
    try:
        with engine.begin() as conn:
            if key is not None and conn.execute(
                select(events.c.id).where(events.c.provider == provider[:32], events.c.event_key == key)
            ).first():
                return _load(conn, subscribers.c.email == address)
            conn.execute(
                update(subscribers)
                .where(subscribers.c.email == address, subscribers.c.status.in_(weaker))
                .values(status=status.value, updated_at=now)
            )
            loaded = _load(conn, subscribers.c.email == address)
            subscriber_id = loaded.id if loaded else None
            issue_id = issue_for_event(conn, subscriber_id, kind, now=now, message_key=message_key)
            _event(conn, subscriber_id, address, kind, now, provider=provider, detail=detail, event_key=key,
                   issue_id=issue_id)
    except IntegrityError:
        if key is None:
            raise
        # The same event, recorded by another process between our look and our insert.
        with engine.connect() as conn:
            return _load(conn, subscribers.c.email == address)
    return loaded


def issue_for_event(
    conn: Connection, subscriber_id: int | None, kind: str, *, now: datetime, message_key: str | None
) -> int | None:
    """The issue a reader's unsubscribe, bounce or complaint answers, if one can be named.

    An unsubscribe counts for an issue only when it came by a link from that issue's
    message (the message key is checked against the reader's own ledger row); one by any
    other way (the desk, the CLI, the reader's page opened from the website) counts for
    none. Providers' bounce and complaint reports name the address, not the message: they
    count for the reader's latest copy, if it went out within `AFTER_ISSUE` before.
    """
    if subscriber_id is None:
        return None
    if message_key:
        found = conn.execute(
            select(deliveries.c.issue_id).where(
                deliveries.c.message_key == message_key, deliveries.c.subscriber_id == subscriber_id
            )
        ).scalar()
        return None if found is None else int(found)
    if kind == "unsubscribe":
        return None
    latest = conn.execute(
        select(deliveries.c.issue_id)
        .where(
            deliveries.c.subscriber_id == subscriber_id,
            deliveries.c.sent_at.is_not(None),
            deliveries.c.sent_at <= now,
            deliveries.c.sent_at >= now - AFTER_ISSUE,
        )
        .order_by(deliveries.c.sent_at.desc(), deliveries.c.id.desc())
        .limit(1)
    ).scalar()
    return None if latest is None else int(latest)


def mark_confirm_sent(
    engine: Engine, subscriber_id: int, *, now: datetime, interval: timedelta
) -> bool:
    """Claim the right to send a confirmation mail now: at most one per `interval`.

    Atomic across processes: of two racing requests only one gets True.
    """
    with engine.begin() as conn:
        claimed = conn.execute(
            update(subscribers)
            .where(
                subscribers.c.id == subscriber_id,
                or_(
                    subscribers.c.confirm_sent_at.is_(None),
                    subscribers.c.confirm_sent_at <= now - interval,
                ),
            )
            .values(confirm_sent_at=now)
        ).rowcount
    return bool(claimed)


_ENDS_CONFIRM_LINKS = ("confirm", "unsubscribe", "bounce", "complaint")


def _confirmable(subscriber_id: int, sent_at: datetime) -> Any:
    """A confirmation mail sent at `sent_at` may activate its subscriber while they are
    pending, unsubscribed or bounced and nothing has confirmed, unsubscribed, bounced or
    complained them since: a link from before a later unsubscribe activates no one.

    Events, not `updated_at`: a second sign-up of the same address at the same moment
    touches the row but must not void the mail the first one sent.
    """
    waiting = [S.PENDING.value, S.UNSUBSCRIBED.value, S.BOUNCED.value]
    since = (
        select(events.c.id)
        .where(
            events.c.subscriber_id == subscriber_id,
            events.c.kind.in_(_ENDS_CONFIRM_LINKS),
            events.c.created_at > sent_at,
        )
        .exists()
    )
    return (subscribers.c.id == subscriber_id) & subscribers.c.status.in_(waiting) & ~since


def can_confirm(engine: Engine, subscriber_id: int, *, sent_at: datetime) -> bool:
    """Whether `confirm` with this confirmation mail would activate the subscriber now."""
    with engine.connect() as conn:
        query = select(subscribers.c.id).where(_confirmable(subscriber_id, sent_at))
        return conn.execute(query).first() is not None


def confirm(
    engine: Engine, subscriber_id: int, *, sent_at: datetime, now: datetime, detail: str = ""
) -> bool:
    """Activate a subscriber from the confirmation mail sent at `sent_at` (double opt-in).

    Check and change are one statement, so a status written meanwhile (an unsubscribe, a
    bounce) is never overwritten. False when the link no longer applies (see `_confirmable`).
    """
    stamp = literal(now, subscribers.c.confirmed_at.type)
    with engine.begin() as conn:
        changed = conn.execute(
            update(subscribers)
            .where(_confirmable(subscriber_id, sent_at))
            .values(
                status=S.ACTIVE.value,
                updated_at=now,
                confirmed_at=func.coalesce(subscribers.c.confirmed_at, stamp),
            )
        ).rowcount
        if changed:
            email = conn.execute(
                select(subscribers.c.email).where(subscribers.c.id == subscriber_id)
            ).scalar_one()
            _event(conn, subscriber_id, email, "confirm", now, provider="web", detail=detail)
    return bool(changed)


def import_csv(
    engine: Engine,
    lines: Iterable[str],
    *,
    now: datetime,
    origin: str,
    pending: bool = False,
    tags: Iterable[str] = (),
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a CSV export (Mailchimp, Substack, Buttondown, Ghost, listmonk, Wix or our own) in one transaction.

    `lines` is streamed (open the file with newline="" and encoding "utf-8-sig"); `origin`
    names it in messages and in each subscriber's source. Rows are imported as active
    (they consented on the other platform), or pending with `pending`; rows the platform
    marks unsubscribed or bounced are imported as such so they stay off the list. An address
    already here keeps an unsubscribed, bounced or complained status. Rows with a bad
    address, name or zone, and repeats of an address, are rejected with their line.
    A file that cannot be read as CSV raises SubscriberError and imports nothing.
    Each subscriber keeps the consent the file records (`confirmed_at`, `source`); an
    address the file brings nothing new for is counted as unchanged. `progress` is
    called with the number of records read after each chunk.
    """
    # Imported here: the importer builds on this module's validators and queries.
    from publisher.store.subscriber_import import import_rows

    return import_rows(engine, lines, now=now, origin=origin, pending=pending, tags=tags, progress=progress)
