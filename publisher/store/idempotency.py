"""Idempotency records: the first answer to a POST, kept so a retry gets it again.

A record is claimed before the request runs (`status` NULL) under a unique (key, API key)
pair, so two copies of one request racing each other cannot both run: the second finds
the claim and is told to retry. A record whose request raised is released, so a retry
runs it again. Records older than `MAX_AGE` are removed as new ones are claimed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from publisher.store.schema import idempotency_keys

__all__ = ["MAX_AGE", "Claimed", "Replay", "Running", "claim", "finish", "release"]

MAX_AGE = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Claimed:
    """This request is the first with its key: run it, then `finish` or `release`."""

    record_id: int


@dataclass(frozen=True, slots=True)
class Replay:
    """The key was used before: `fingerprint` tells whether for the same request."""

    same_request: bool
    status: int
    content_type: str
    body: str


@dataclass(frozen=True, slots=True)
class Running:
    """The first request with this key has not been answered yet."""


def claim(engine: Engine, api_key_id: int, key: str, fingerprint: str, *, now: datetime) -> Claimed | Replay | Running:
    """Claim `key` for this request, or say what became of the first request that used it."""
    mine = (idempotency_keys.c.api_key_id == api_key_id) & (idempotency_keys.c.key == key)
    with engine.begin() as conn:
        conn.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < now - MAX_AGE))
    try:
        with engine.begin() as conn:
            record_id = conn.execute(
                insert(idempotency_keys)
                .values(api_key_id=api_key_id, key=key, fingerprint=fingerprint, content_type="", body="",
                        created_at=now)
                .returning(idempotency_keys.c.id)
            ).scalar_one()
        return Claimed(record_id=record_id)
    except IntegrityError:
        pass
    with engine.connect() as conn:
        row = conn.execute(select(idempotency_keys).where(mine)).first()
    if row is None:  # released between our insert and our look: the caller may retry
        return Running()
    if row.fingerprint != fingerprint:
        return Replay(same_request=False, status=0, content_type="", body="")
    if row.status is None:
        return Running()
    return Replay(same_request=True, status=row.status, content_type=row.content_type, body=row.body)


def finish(engine: Engine, record_id: int, *, status: int, content_type: str, body: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.id == record_id)
            .values(status=status, content_type=content_type[:100], body=body)
        )


def release(engine: Engine, record_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(delete(idempotency_keys).where(idempotency_keys.c.id == record_id))
