"""Outbound webhooks: the endpoints that want events, and the messages waiting for them.

An event is written as one row per endpoint that asked for it, in the same transaction
as the change it reports where the store makes that change (an unsubscribe, an issue
finishing), so an event is never lost and never told of a change that did not happen.
Writing a row is all an event costs the sender; delivery happens later, elsewhere
(`publisher.webhooks`), at least once: a message keeps its `msg_id` on every attempt, so
a receiver can drop repeats.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from publisher.errors import InvalidRequest, NotFound
from publisher.store.schema import webhook_endpoints, webhook_messages

__all__ = [
    "EVENTS",
    "Endpoint",
    "Outgoing",
    "add_endpoint",
    "counts",
    "delivered",
    "due",
    "emit",
    "emit_now",
    "list_endpoints",
    "remove_endpoint",
    "retry_later",
]

EVENTS = (
    "subscriber.created",
    "subscriber.confirmed",
    "subscriber.unsubscribed",
    "subscriber.bounced",
    "subscriber.complained",
    "issue.scheduled",
    "issue.sent",
    "issue.failed",
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: int
    url: str
    events: tuple[str, ...]
    created_at: datetime


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


def check_events(events: Iterable[str]) -> tuple[str, ...]:
    wanted = tuple(dict.fromkeys(e.strip() for e in events if e.strip()))
    unknown = [e for e in wanted if e not in EVENTS]
    if unknown or not wanted:
        given = ", ".join(unknown) if unknown else "none"
        raise InvalidRequest(f"event must be one or more of {', '.join(EVENTS)}; got {given}")
    return wanted


def add_endpoint(engine: Engine, url: str, events: Iterable[str], *, now: datetime) -> tuple[Endpoint, str]:
    """Register `url` for `events`; returns the endpoint and its signing secret (whsec_...)."""
    wanted = check_events(events)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    with engine.begin() as conn:
        new_id = conn.execute(
            insert(webhook_endpoints)
            .values(url=url, events=" ".join(wanted), secret=secret, created_at=now)
            .returning(webhook_endpoints.c.id)
        ).scalar_one()
    return Endpoint(id=new_id, url=url, events=wanted, created_at=now), secret


def list_endpoints(engine: Engine) -> list[Endpoint]:
    with engine.connect() as conn:
        rows = conn.execute(select(webhook_endpoints).order_by(webhook_endpoints.c.id)).all()
    return [Endpoint(id=r.id, url=r.url, events=tuple(r.events.split()), created_at=r.created_at) for r in rows]


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
