"""Removing an address: an unsubscribe that keeps the row, or the erasure of a person.

`remove(..., purge=True)` is the one delete: the row, its tags and events go, delivery
rows are emptied of address and name, and the address's traces in stored webhook
messages, bounce messages, idempotency answers and import reports are dropped or cleared.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, or_, select, update

from publisher.errors import NotFound
from publisher.store import engagement, outbox
from publisher.store.engine import begin_write
from publisher.store.schema import (
    bounce_messages,
    deliveries,
    events,
    idempotency_keys,
    import_jobs,
    subscriber_tags,
    subscribers,
    webhook_messages,
)
from publisher.store.subscribers.changes import suppress
from publisher.store.subscribers.reading import find
from publisher.store.subscribers.values import PAGE, normalize_email

__all__ = ["remove"]


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
        # Opens and clicks kept per person lose the copy they name, and stay as counts.
        engagement.forget(conn, row.id)
        # The ledger keeps the rows, emptied of the person, so every issue's counts stay
        # true; deleting the subscriber below sets their subscriber_id to NULL.
        conn.execute(
            update(deliveries)
            .where(or_(deliveries.c.subscriber_id == row.id, deliveries.c.email.in_(forms)))
            .values(email="", name="", detail="", provider_id="")
        )
        _forget_mentions(conn, row.id, forms)
        # Bounce messages about them keep their place (one decision per message, issue
        # counts) but lose the address and the bytes that quote it.
        conn.execute(
            update(bounce_messages)
            .where(or_(bounce_messages.c.subscriber_id == row.id, bounce_messages.c.address.in_(forms)))
            .values(address=None, raw=b"", detail="(about a reader erased since)")
        )
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
