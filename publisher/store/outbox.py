"""Outbound webhooks: the endpoints that want events, and the messages waiting for them.

An event is written as one row per endpoint that asked for it, in the same transaction
as the change it reports where the store makes that change (an unsubscribe, an issue
finishing), so an event is never lost and never told of a change that did not happen.
Writing a row is all an event costs the sender; delivery happens later, elsewhere
(`publisher.delivery.hooks`), at least once: a message keeps its `msg_id` on every attempt, so
a receiver can drop repeats.

Delivery claims what it sends (`claim`): a claimed message's `not_before` moves to the end
of a lease, so a second delivery round, here or in another process, leaves it alone while
it is in flight; a round that dies leaves it to be tried again when the lease ends. An
endpoint that fails holds its later messages back with it (`hold_endpoint`): they wait
behind the failing one, in order, without counting attempts of their own.

An endpoint registered with the owner's override for a private or loopback receiver keeps
that choice as a `+allow_private` word among its events (the schema has no column for it
yet); `list_endpoints` and `claim` read it back as `allow_private`.
"""

from __future__ import annotations

import base64
import functools
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Select, delete, func, insert, select, update

from publisher.errors import InvalidRequest, NotFound
from publisher.store.engine import reader
from publisher.store.schema import webhook_endpoints, webhook_messages

__all__ = [
    "EVENTS",
    "Endpoint",
    "EndpointTrouble",
    "Outgoing",
    "add_endpoint",
    "claim",
    "counts",
    "delivered",
    "due",
    "emit",
    "emit_now",
    "failing_endpoints",
    "hold_endpoint",
    "list_endpoints",
    "release",
    "remove_endpoint",
    "retry_later",
]

_ALLOW_PRIVATE = "+allow_private"

# subscriber.updated carries the changed record (id, email, name, status, tags, timezone,
# and `changed`, the fields that moved); subscriber.erased carries the id alone, never the
# address: a receiver mirroring the list deletes that record, and ids are never reused.

EVENTS = (
    "subscriber.created",
    "subscriber.confirmed",
    "subscriber.updated",
    "subscriber.unsubscribed",
    "subscriber.bounced",
    "subscriber.complained",
    "subscriber.topic_joined",
    "subscriber.erased",
    "issue.scheduled",
    "issue.held",
    "issue.sent",
    "issue.failed",
    "sequence.started",
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: int
    url: str
    events: tuple[str, ...]
    created_at: datetime
    allow_private: bool = False
    """The owner registered a receiver on a private or loopback address on purpose."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message due for an attempt, with what signing and sending it needs."""

    id: int
    msg_id: str
    url: str
    secret: str
    payload: str
    attempts: int
    created_at: datetime
    endpoint_id: int = 0
    allow_private: bool = False


@dataclass(frozen=True, slots=True)
class EndpointTrouble:
    """An endpoint whose messages are failing: what the author sees on Home and in `status`."""

    endpoint_id: int
    url: str
    last_error: str
    failures: int
    """Failed attempts in a row: every attempt since its last delivery."""
    since: datetime
    """When the oldest message it has failed to take was queued."""
    next_try: datetime | None
    """When the next attempt is due; None when its messages have expired."""


def _events_of(stored: str) -> tuple[tuple[str, ...], bool]:
    words = stored.split()
    return tuple(w for w in words if w != _ALLOW_PRIVATE), _ALLOW_PRIVATE in words


def check_events(events: Iterable[str]) -> tuple[str, ...]:
    wanted = tuple(dict.fromkeys(e.strip() for e in events if e.strip()))
    unknown = [e for e in wanted if e not in EVENTS]
    if unknown or not wanted:
        given = ", ".join(unknown) if unknown else "none"
        raise InvalidRequest(f"event must be one or more of {', '.join(EVENTS)}; got {given}")
    return wanted


def add_endpoint(
    engine: Engine, url: str, events: Iterable[str], *, now: datetime, allow_private: bool = False
) -> tuple[Endpoint, str]:
    """Register `url` for `events`; returns the endpoint and its signing secret (whsec_...)."""
    wanted = check_events(events)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    stored = " ".join((*wanted, _ALLOW_PRIVATE) if allow_private else wanted)
    with engine.begin() as conn:
        new_id = conn.execute(
            insert(webhook_endpoints)
            .values(url=url, events=stored, secret=secret, created_at=now)
            .returning(webhook_endpoints.c.id)
        ).scalar_one()
    return Endpoint(id=new_id, url=url, events=wanted, created_at=now, allow_private=allow_private), secret


def list_endpoints(engine: Engine) -> list[Endpoint]:
    with engine.connect() as conn:
        rows = conn.execute(select(webhook_endpoints).order_by(webhook_endpoints.c.id)).all()
    found = []
    for r in rows:
        events, allow_private = _events_of(r.events)
        found.append(Endpoint(id=r.id, url=r.url, events=events, created_at=r.created_at, allow_private=allow_private))
    return found


def remove_endpoint(engine: Engine, endpoint_id: int) -> None:
    """Forget an endpoint and every message still waiting for it."""
    with engine.begin() as conn:
        if not conn.execute(delete(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)).rowcount:
            raise NotFound(f"no webhook endpoint {endpoint_id}; `publisher hooks list` shows them")
        conn.execute(delete(webhook_messages).where(webhook_messages.c.endpoint_id == endpoint_id))


def emit(conn: Connection, event: str, data: Mapping[str, Any], *, now: datetime) -> int:
    """Queue `event` for every endpoint that asked for it, inside the caller's transaction."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    wanted = [
        row.id
        for row in conn.execute(select(webhook_endpoints.c.id, webhook_endpoints.c.events))
        if event in row.events.split()
    ]
    if not wanted:
        return 0
    payload = json.dumps(
        {"type": event, "timestamp": now.isoformat().replace("+00:00", "Z"), "data": dict(data)},
        separators=(",", ":"), ensure_ascii=False, default=str,
    )
    conn.execute(
        insert(webhook_messages),
        [
            {"endpoint_id": endpoint_id, "msg_id": f"msg_{secrets.token_hex(12)}", "event": event,
             "payload": payload, "state": "pending", "attempts": 0, "not_before": now, "last_error": "",
             "created_at": now}
            for endpoint_id in wanted
        ],
    )
    return len(wanted)


def emit_now(engine: Engine, event: str, data: Mapping[str, Any], *, now: datetime) -> int:
    """`emit` in a transaction of its own (for events with no store change to ride on)."""
    with engine.begin() as conn:
        return emit(conn, event, data, now=now)


def due(engine: Engine, *, now: datetime, limit: int = 100) -> list[Outgoing]:
    """Pending messages whose time has come, oldest first."""
    query = (
        select(webhook_messages, webhook_endpoints.c.url, webhook_endpoints.c.secret)
        .join(webhook_endpoints, webhook_endpoints.c.id == webhook_messages.c.endpoint_id)
        .where(webhook_messages.c.state == "pending", webhook_messages.c.not_before <= now)
        .order_by(webhook_messages.c.not_before, webhook_messages.c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [
            Outgoing(id=r.id, msg_id=r.msg_id, url=r.url, secret=r.secret, payload=r.payload,
                     attempts=r.attempts, created_at=r.created_at)
            for r in conn.execute(query)
        ]


def claim(
    engine: Engine, *, now: datetime, lease: float, limit: int = 100, per_endpoint: int = 20
) -> list[Outgoing]:
    """Take the due messages for one delivery round: oldest first, at most `per_endpoint`
    for each endpoint, each held for `lease` seconds per message of its endpoint taken
    (they go one after another) so that no other round takes them meanwhile."""
    query = (
        select(webhook_messages, webhook_endpoints.c.url, webhook_endpoints.c.secret,
               webhook_endpoints.c.events.label("endpoint_events"))
        .join(webhook_endpoints, webhook_endpoints.c.id == webhook_messages.c.endpoint_id)
        .where(webhook_messages.c.state == "pending", webhook_messages.c.not_before <= now)
        .order_by(webhook_messages.c.not_before, webhook_messages.c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    taken: dict[int, list[Any]] = {}
    for row in rows:
        batch = taken.setdefault(row.endpoint_id, [])
        if len(batch) < per_endpoint:
            batch.append(row)
    claimed: list[Outgoing] = []
    with engine.begin() as conn:
        for batch in taken.values():
            until = now + timedelta(seconds=lease * len(batch))
            for r in batch:
                won = conn.execute(
                    update(webhook_messages)
                    .where(webhook_messages.c.id == r.id, webhook_messages.c.state == "pending",
                           webhook_messages.c.not_before == r.not_before)
                    .values(not_before=until)
                ).rowcount
                if won:
                    claimed.append(
                        Outgoing(id=r.id, msg_id=r.msg_id, url=r.url, secret=r.secret, payload=r.payload,
                                 attempts=r.attempts, created_at=r.created_at, endpoint_id=r.endpoint_id,
                                 allow_private=_events_of(r.endpoint_events)[1])
                    )
    return claimed


def release(engine: Engine, message_ids: Iterable[int], *, not_before: datetime) -> None:
    """Hand claimed messages back, unattempted, to be taken again from `not_before`."""
    ids = list(message_ids)
    if not ids:
        return
    with engine.begin() as conn:
        conn.execute(
            update(webhook_messages)
            .where(webhook_messages.c.id.in_(ids), webhook_messages.c.state == "pending")
            .values(not_before=not_before)
        )


def hold_endpoint(engine: Engine, endpoint_id: int, *, until: datetime) -> None:
    """Keep every pending message of a failing endpoint waiting until `until` at least."""
    with engine.begin() as conn:
        conn.execute(
            update(webhook_messages)
            .where(webhook_messages.c.endpoint_id == endpoint_id, webhook_messages.c.state == "pending",
                   webhook_messages.c.not_before < until)
            .values(not_before=until)
        )


def failing_endpoints(engine: Engine) -> list[EndpointTrouble]:
    """Endpoints whose messages have failed since their last delivery (or ever), worst first."""
    found: dict[int, EndpointTrouble] = {}
    with reader(engine) as conn:
        for r in conn.execute(_failing_query()):
            pending = r.not_before if r.state == "pending" else None
            seen = found.get(r.endpoint_id)
            if seen is None:
                found[r.endpoint_id] = EndpointTrouble(
                    endpoint_id=r.endpoint_id, url=r.url, last_error=r.last_error, failures=r.attempts,
                    since=r.created_at, next_try=pending,
                )
                continue
            next_try = min((t for t in (seen.next_try, pending) if t is not None), default=None)
            # The oldest failing message is the one being retried: its error is the endpoint's.
            found[r.endpoint_id] = replace(seen, failures=seen.failures + r.attempts, next_try=next_try)
    return sorted(found.values(), key=lambda t: (-t.failures, t.endpoint_id))


@functools.cache
def _failing_query() -> Select[Any]:
    """Built once: Home asks on every request, and building it cost ten times running it."""
    last_delivery = (
        select(webhook_messages.c.endpoint_id, func.max(webhook_messages.c.delivered_at).label("at"))
        .where(webhook_messages.c.state == "delivered")
        .group_by(webhook_messages.c.endpoint_id)
        .subquery()
    )
    return (
        select(webhook_messages, webhook_endpoints.c.url)
        .join(webhook_endpoints, webhook_endpoints.c.id == webhook_messages.c.endpoint_id)
        .outerjoin(last_delivery, last_delivery.c.endpoint_id == webhook_messages.c.endpoint_id)
        .where(
            webhook_messages.c.state.in_(("pending", "expired")),
            webhook_messages.c.attempts > 0,
            webhook_messages.c.last_error != "",
            last_delivery.c.at.is_(None) | (webhook_messages.c.created_at >= last_delivery.c.at),
        )
        .order_by(webhook_messages.c.endpoint_id, webhook_messages.c.created_at, webhook_messages.c.id)
    )


def delivered(engine: Engine, message_id: int, *, now: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(webhook_messages)
            .where(webhook_messages.c.id == message_id)
            .values(state="delivered", delivered_at=now, attempts=webhook_messages.c.attempts + 1, last_error="")
        )


def retry_later(engine: Engine, message_id: int, *, error: str, not_before: datetime | None) -> None:
    """Record a failed attempt: try again at `not_before`, or give up (expired) when None."""
    values: dict[str, Any] = {"attempts": webhook_messages.c.attempts + 1, "last_error": error[:1000]}
    if not_before is None:
        values["state"] = "expired"
    else:
        values["not_before"] = not_before
    with engine.begin() as conn:
        conn.execute(update(webhook_messages).where(webhook_messages.c.id == message_id).values(values))


def counts(engine: Engine) -> dict[str, int]:
    """Messages per state (pending, delivered, expired)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(webhook_messages.c.state, func.count()).group_by(webhook_messages.c.state)
        ).all()
    return {state: int(n) for state, n in rows}
