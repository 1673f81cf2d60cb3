"""Subscribers: addresses, statuses, tags and time zones, and the events that change them.

Addresses are stored normalised and lower-cased, so one person is one row whatever the
case they typed. A row is never deleted to unsubscribe someone: the row keeps the status
(unsubscribed, bounced, complained), so a later import or `add` cannot quietly put them
back on the list. Only `remove(..., purge=True)` deletes, for erasure requests.

Lists are streamed a page at a time, never loaded whole.
"""

from __future__ import annotations

import csv
import json
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import IO, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import (
    Connection,
    Engine,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError

from publisher.errors import NotFound, SubscriberError
from publisher.models import Subscriber, SubscriberStatus
from publisher.store import outbox
from publisher.store.engine import begin_write
from publisher.store.schema import (
    deliveries,
    events,
    idempotency_keys,
    import_jobs,
    subscriber_tags,
    subscribers,
    webhook_messages,
)
from publisher.store.subscriber_csv import EXPORT_COLUMNS, ImportReport, Rejected, neutralize

__all__ = [
    "MAX_TAGS",
    "STATUS_KIND",
    "SUPPRESSED",
    "ImportReport",
    "Rejected",
    "add",
    "by_legacy_link",
    "by_link_key",
    "can_confirm",
    "check_timezone",
    "clean_name",
    "clean_tags",
    "confirm",
    "counts",
    "edit",
    "export_csv",
    "find",
    "get",
    "import_csv",
    "iter_subscribers",
    "link_key",
    "mark_confirm_sent",
    "normalize_email",
    "page",
    "remove",
    "set_status",
    "suppress",
    "tag_counts",
    "tags_of",
]

S = SubscriberStatus
SUPPRESSED = frozenset({S.UNSUBSCRIBED, S.BOUNCED, S.COMPLAINED})
"""Statuses that keep an address off every send until the person asks to come back."""

# How strongly a status keeps someone off the list; suppression only ever moves up.
_RANK = {S.PENDING: 0, S.ACTIVE: 0, S.UNSUBSCRIBED: 1, S.BOUNCED: 2, S.COMPLAINED: 3}
MAX_ADDRESS = 320
"""Characters of the `email` column: 64 for the local part, @, 255 for the domain."""
_KIND_STATUS = {"unsubscribe": S.UNSUBSCRIBED, "bounce": S.BOUNCED, "complaint": S.COMPLAINED}
STATUS_KIND = {
    S.ACTIVE: "subscribe",
    S.PENDING: "subscribe",
    S.UNSUBSCRIBED: "unsubscribe",
    S.BOUNCED: "bounce",
    S.COMPLAINED: "complaint",
}
PAGE = 500
# Outbound webhook event for each kind of event row; written in the same transaction.
_HOOK_EVENTS = {
    "subscribe": "subscriber.created",
    "confirm": "subscriber.confirmed",
    "unsubscribe": "subscriber.unsubscribed",
    "bounce": "subscriber.bounced",
    "complaint": "subscriber.complained",
}
MAX_NAME = subscribers.c.name.type.length or 200  # type: ignore[attr-defined]
MAX_TAG = subscriber_tags.c.tag.type.length or 100  # type: ignore[attr-defined]
MAX_TAGS = 50
"""The most tags one subscriber carries, whichever door they come through (API, CLI,
desk, import): more is refused, never cut."""
MAX_SOURCE = subscribers.c.source.type.length or 64  # type: ignore[attr-defined]


def normalize_email(raw: str) -> str:
    """The address as stored: validated (syntax only, no DNS), domain in ASCII, lower-case.

    International domains become their ASCII (punycode) form, so `bob@münchen.de` and
    `bob@xn--mnchen-3ya.de` are one subscriber and every provider can deliver to it.
    Raises SubscriberError naming the address and what is wrong with it.
    """
    # Imported here: reading the store (`publisher status`) should not pay for it.
    from email_validator import EmailNotValidError, validate_email

    text = raw.strip()
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise SubscriberError(f"{text!r} is not a valid address: {exc}") from exc
    return (checked.ascii_email or checked.normalized).lower()


def clean_name(raw: str) -> str:
    """A display name safe for headers: control characters (CR, LF, ...) become spaces."""
    name = " ".join("".join(ch if ch.isprintable() else " " for ch in raw).split())
    if len(name) > MAX_NAME:
        raise SubscriberError(f"name {name[:40]!r}... is longer than {MAX_NAME} characters")
    return name


def clean_tags(raw: Iterable[str]) -> tuple[str, ...]:
    """Tags lower-cased with single spaces, so that `--tag Clinicians` finds `clinicians`.

    Raises SubscriberError for a tag longer than MAX_TAG or more than MAX_TAGS tags.
    """
    tags: list[str] = []
    for tag in raw:
        clean = " ".join("".join(ch if ch.isprintable() else " " for ch in tag).split()).lower()
        if not clean:
            continue
        if len(clean) > MAX_TAG:
            raise SubscriberError(f"tag {clean[:40]!r}... is longer than {MAX_TAG} characters")
        if clean not in tags:
            tags.append(clean)
            if len(tags) > MAX_TAGS:
                raise SubscriberError(f"more than {MAX_TAGS} tags for one subscriber: keep at most {MAX_TAGS}")
    return tuple(tags)


def check_timezone(raw: str | None) -> str | None:
    """An IANA zone name such as "Europe/Berlin", or None; raises SubscriberError otherwise."""
    if raw is None or not raw.strip():
        return None
    zone = raw.strip()
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SubscriberError(
            f"time zone {zone!r} is not an IANA zone name such as \"America/New_York\""
        ) from exc
    return zone


def _source(text: str) -> str:
    return text[:MAX_SOURCE]


def tags_of(conn: Connection, ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
    """The tags of several subscribers in one query (a page of a listing, an import chunk)."""
    found: dict[int, list[str]] = {}
    if ids:
        query = (
            select(subscriber_tags.c.subscriber_id, subscriber_tags.c.tag)
            .where(subscriber_tags.c.subscriber_id.in_(ids))
            .order_by(subscriber_tags.c.subscriber_id, subscriber_tags.c.tag)
        )
        for subscriber_id, tag in conn.execute(query):
            found.setdefault(subscriber_id, []).append(tag)
    return {key: tuple(value) for key, value in found.items()}


_COLUMNS = (
    subscribers.c.id,
    subscribers.c.email,
    subscribers.c.name,
    subscribers.c.status,
    subscribers.c.timezone,
    subscribers.c.created_at,
    subscribers.c.confirmed_at,
    subscribers.c.source,
)


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
) -> Subscriber:
    """Add a subscriber, or update the name, tags and zone of the one with this address.

    `detail` is kept with the subscribe event (a consent note, say).

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
                return _add(conn, address, clean, tag_list, status, zone, source, now, resubscribe, detail)
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
) -> Subscriber | None:
    """Keep an address off the list after a bounce, complaint or unsubscribe (`kind`).

    The event is recorded even for an address we do not know. A status only moves to a
    stronger one (unsubscribed < bounced < complained). Returns the subscriber, if any.
    `event_key` is the provider's id of the event: one already recorded for `provider`
    (a provider's retry, a replay) changes nothing. Raises SubscriberError for an
    address longer than any mailbox can be.
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
            _event(conn, subscriber_id, address, kind, now, provider=provider, detail=detail, event_key=key)
    except IntegrityError:
        if key is None:
            raise
        # The same event, recorded by another process between our look and our insert.
        with engine.connect() as conn:
            return _load(conn, subscribers.c.email == address)
    return loaded


def remove(
    engine: Engine, email: str, *, now: datetime, purge: bool = False, provider: str = "cli"
) -> None:
    """Unsubscribe an address, keeping its row so that no import brings it back.

    `purge` erases the person instead (a request under GDPR Art. 17): the row, its tags
    and its events go; its delivery rows are emptied of address and name (they stay,
    anonymous, so each issue's counts stay true); webhook messages about them, the answers
    kept for Idempotency-Key retries and import reports that name them are dropped or
    cleared (see `_names_person`); then `subscriber.erased` tells webhook receivers the id,
    and nothing else. A purged address can be imported again later, under a new id.
    Raises NotFound for an unknown address.
    """
    address = normalize_email(email)
    if not purge:
        if find(engine, address) is None:
            raise NotFound(f"no subscriber with address {address}")
        # Like any unsubscribe: a bounced or complained status stays as strong as it is.
        suppress(engine, address, "unsubscribe", provider=provider, now=now)
        return
    with begin_write(engine) as conn:
        row = conn.execute(select(subscribers.c.id).where(subscribers.c.email == address)).first()
        if row is None:
            raise NotFound(f"no subscriber with address {address}")
        forms = _address_forms(address)
        mine = or_(events.c.subscriber_id == row.id, events.c.email.in_(forms))
        conn.execute(delete(events).where(mine))
        # The ledger keeps the rows, emptied of the person, so every issue's counts stay
        # true; deleting the subscriber below sets their subscriber_id to NULL.
        conn.execute(
            update(deliveries)
            .where(or_(deliveries.c.subscriber_id == row.id, deliveries.c.email.in_(forms)))
            .values(email="", name="", detail="", provider_id="")
        )
        _forget_mentions(conn, row.id, forms)
        conn.execute(delete(subscriber_tags).where(subscriber_tags.c.subscriber_id == row.id))
        conn.execute(delete(subscribers).where(subscribers.c.id == row.id))
        outbox.emit(conn, "subscriber.erased", {"id": row.id}, now=now)


def _address_forms(address: str) -> tuple[str, ...]:
    """Every way a stored address may be written elsewhere: as stored, and with its
    domain in Unicode and in ASCII (punycode), all NFC and lower-case."""
    import idna  # email_validator's own dependency

    local, _, domain = address.rpartition("@")
    domains = {domain}
    for convert in (idna.decode, lambda name: idna.encode(name).decode("ascii")):
        try:
            domains.add(convert(domain))
        except (idna.IDNAError, UnicodeError):
            continue
    return tuple(sorted({unicodedata.normalize("NFC", f"{local}@{name}").lower() for name in domains}))


def _names_person(text: str, subscriber_id: int | None, forms: tuple[str, ...]) -> bool:
    """Whether `text` (a JSON body, or plain text) names the person: one of its strings holds
    one of `forms`, or, for a subscriber event's data, its id is theirs.

    Decoded values are compared, never raw text: JSON may write "zoë" as "zo\\u00eb" or
    "zo\\u00EB", and a domain may come in Unicode or in punycode.
    """
    try:
        found: Any = json.loads(text)
    except ValueError:
        found = text
    if subscriber_id is not None and isinstance(found, dict):
        data = found.get("data")
        about = str(found.get("type", "")).startswith("subscriber.")
        if about and isinstance(data, dict) and data.get("id") == subscriber_id:
            return True
    return any(form in value for value in _strings(found) for form in forms)


def _strings(value: Any) -> Iterator[str]:
    """Every string inside a decoded JSON value (keys too), NFC and lower-case."""
    if isinstance(value, str):
        yield unicodedata.normalize("NFC", value).lower()
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _forget_mentions(conn: Connection, subscriber_id: int, forms: tuple[str, ...]) -> None:
    """Drop webhook messages and kept API answers that name the person; clear their rows
    from import reports. Read in pages by id, so a long history never sits in memory."""
    for table, column, person in (
        (webhook_messages, webhook_messages.c.payload, subscriber_id),
        (idempotency_keys, idempotency_keys.c.body, None),
    ):
        after = 0
        while True:
            rows = conn.execute(
                select(table.c.id, column).where(table.c.id > after).order_by(table.c.id).limit(PAGE)
            ).all()
            doomed = [row.id for row in rows if _names_person(row[1], person, forms)]
            if doomed:
                conn.execute(delete(table).where(table.c.id.in_(doomed)))
            if len(rows) < PAGE:
                break
            after = rows[-1].id
    for job in conn.execute(select(import_jobs.c.id, import_jobs.c.rejected, import_jobs.c.detail)).all():
        try:
            rejected = json.loads(job.rejected)
        except ValueError:
            rejected = []
        if not isinstance(rejected, list):
            rejected = []
        kept = [
            item if not _names_person(json.dumps(item), None, forms) else {**item, "reason": "erased on request"}
            for item in rejected
            if isinstance(item, dict)
        ]
        detail = "erased on request" if _names_person(job.detail, None, forms) else job.detail
        if kept != rejected or detail != job.detail:
            conn.execute(
                update(import_jobs).where(import_jobs.c.id == job.id).values(rejected=json.dumps(kept), detail=detail)
            )


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


def _filtered(query: Any, status: SubscriberStatus | None, tag: str | None) -> Any:
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
) -> Iterator[Subscriber]:
    """Every matching subscriber in id order, read `page_size` rows at a time.

    Keyset pages rather than one long cursor: no connection or read transaction is held
    while the caller works on a page, so a slow consumer never blocks SQLite's WAL
    checkpoints or a PostgreSQL vacuum. Rows added meanwhile may or may not appear.
    """
    after = 0
    while True:
        with engine.connect() as conn:
            query = _filtered(select(*_COLUMNS), status, tag)
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
) -> tuple[list[Subscriber], bool]:
    """One page of matching subscribers in id order after id `after`, and whether more follow.

    `since` keeps subscribers created at or after that instant; `search` matches a part of
    the address or the name, case-insensitively, its % and _ taken literally.
    """
    query = _filtered(select(*_COLUMNS), status, tag).where(subscribers.c.id > after)
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


def counts(engine: Engine) -> dict[str, int]:
    """Subscribers per status, every status present, active first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(subscribers.c.status, func.count()).group_by(subscribers.c.status)
        ).all()
    found = {status: number for status, number in rows}
    order = [S.ACTIVE, S.PENDING, S.UNSUBSCRIBED, S.BOUNCED, S.COMPLAINED]
    return {status.value: int(found.get(status.value, 0)) for status in order}


def tag_counts(engine: Engine, *, status: SubscriberStatus | None = S.ACTIVE) -> dict[str, int]:
    """Subscribers per tag (active ones by default), most used first: the segments."""
    query = select(subscriber_tags.c.tag, func.count()).join(
        subscribers, subscribers.c.id == subscriber_tags.c.subscriber_id
    )
    if status is not None:
        query = query.where(subscribers.c.status == status.value)
    query = query.group_by(subscriber_tags.c.tag).order_by(func.count().desc(), subscriber_tags.c.tag)
    with engine.connect() as conn:
        return {tag: int(number) for tag, number in conn.execute(query)}


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
    """Import a CSV export (Mailchimp, Substack, Buttondown, Ghost or our own) in one transaction.

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


def export_csv(
    engine: Engine,
    out: IO[str],
    *,
    status: SubscriberStatus | None = None,
    tag: str | None = None,
) -> int:
    """Write subscribers as CSV (EXPORT_COLUMNS: consent date and source too); returns rows.

    Every cell that a spreadsheet would run as a formula is neutralised. Streams: one page
    of subscribers in memory at a time.
    """
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    written = 0
    for subscriber in iter_subscribers(engine, status=status, tag=tag):
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
                )
            ]
        )
        written += 1
    return written

