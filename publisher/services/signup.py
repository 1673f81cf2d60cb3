"""The public subscribe flow's rules: a request to subscribe, its confirmation, an unsubscribe link.

`register` records a request: a new address is added as pending; an existing row is not
changed, because whoever types an address into a form has not proved they own it. A
confirmation link works while the subscriber's status is as it was when the link was
sent (`confirm_state`); someone who confirmed and later left comes back only through a
new one. An unsubscribe by link is committed before its answer, so a batch claimed after
it leaves the address out, and it only ever strengthens a status (a bounce stays one).
`count_attempt` is the per-client limit, kept in the database so that it holds across
restarts and processes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from publisher.errors import PublisherError, TokenError
from publisher.mail import tokens
from publisher.mail.mime import clean_header_text
from publisher.models import Subscriber, SubscriberStatus
from publisher.services.subscribers import link_holder
from publisher.store import client_hits, subscribers

__all__ = [
    "MAX_NAME",
    "UNSUBSCRIBABLE",
    "address",
    "clean_name",
    "confirm_state",
    "count_attempt",
    "register",
    "unsubscribe_by_link",
]

MAX_NAME = 200
UNSUBSCRIBABLE = frozenset({SubscriberStatus.ACTIVE, SubscriberStatus.PENDING})


def count_attempt(db: Engine, client: str, *, now: datetime, limit: int) -> float:
    """Count one subscribe request from `client`; seconds to wait when over `limit` an hour, else 0."""
    return client_hits.hit(db, client, now=now, limit=limit, window=3600.0)


def address(raw: str) -> str:
    """The address as stored; SubscriberError when it is none."""
    return subscribers.normalize_email(raw)


def clean_name(raw: str) -> str:
    """A typed name made safe for a header, at most MAX_NAME characters."""
    return clean_header_text(raw, limit=MAX_NAME)


def register(db: Engine, email: str, name: str, *, now: datetime) -> Subscriber:
    """Record the request; whether a confirmation goes out is the mailer's rule.

    An existing row is never changed here beyond its confirmation time: whoever
    types an address into the form has not proved they own it.
    """
    found = subscribers.find(db, email)
    if found is None:
        try:
            found = subscribers.add(db, email, name=name, status=SubscriberStatus.PENDING, source="web", now=now)
        except PublisherError:
            # The same address submitted twice at once: the other request added it.
            found = subscribers.find(db, email)
            if found is None:
                raise
    return found


def confirm_state(db: Engine, secret: str, token: str, now: datetime | None) -> str:
    """What a confirm link's page says: ask (pressing would activate), done (active
    now) or invalid. With `now` (a POST) the link is used."""
    try:
        key, sent_at = tokens.verify_confirm(secret, token)
    except TokenError:
        return "invalid"
    holder = subscribers.by_link_key(db, key)
    if holder is None:
        return "invalid"
    subscriber_id = holder.id
    if now is None:
        if subscribers.can_confirm(db, subscriber_id, sent_at=sent_at):
            return "ask"
    elif subscribers.confirm(db, subscriber_id, sent_at=sent_at, now=now, detail="double opt-in"):
        return "done"
    found = subscribers.get(db, subscriber_id)
    if found is not None and found.status is SubscriberStatus.ACTIVE:
        return "done"  # a second press, or an old link of someone who is subscribed
    return "invalid"


def unsubscribe_by_link(db: Engine, secret: str, token: str, *, now: datetime, how: str) -> bool:
    """Unsubscribe whom an unsubscribe link names; False for a bad token and for nobody alike."""
    holder = link_holder(db, secret, token, purposes=("unsubscribe",))
    if holder is None:
        return False
    found = holder.subscriber
    if found.status in UNSUBSCRIBABLE:
        # Committed before this answer, so a batch claimed after it leaves the address
        # out. `suppress` only ever strengthens a status: a bounce recorded meanwhile
        # stays a bounce.
        subscribers.suppress(
            db, found.email, "unsubscribe", provider="web", detail=how, now=now, message_key=holder.message_key,
        )
    return True
