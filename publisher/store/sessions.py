"""Desk sessions and failed sign-ins, kept in the database so that every process sees them.

A session row is keyed by the SHA-256 of the cookie's value, never the value itself, so
a copy of the database (a backup, a leaked file) signs nobody in. A session ends at its
`expires_at`, after `idle` without a request, when its user signs out (this session) or
signs out everywhere (all of theirs), when the password changes, and when the user goes.

Failed sign-ins are rows with the address typed and the client's network address; the
throttle counts them over a window. A success clears the account's failures, not the
address's, so one good password does not reopen an address that guesses at many accounts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, delete, func, insert, select, update

from publisher.store.engine import begin_write
from publisher.store.schema import desk_sessions, login_failures, users
from publisher.store.users import User

__all__ = [
    "DeskSession",
    "clear_failures",
    "create",
    "failures_since",
    "lookup",
    "purge",
    "record_failure",
    "revoke",
    "revoke_user",
    "user_sessions",
]

SEEN_EVERY = timedelta(minutes=1)
"""`seen_at` is written at most this often per session, not on every request."""


@dataclass(frozen=True, slots=True)
class DeskSession:
    id: str
    """The SHA-256 of the cookie value, hex."""
    user: User
    csrf: str
    address: str
    created_at: datetime
    seen_at: datetime
    expires_at: datetime


def create(
    engine: Engine, key: str, *, user_id: int, csrf: str, address: str, now: datetime, lifetime: timedelta
) -> None:
    with begin_write(engine) as conn:
        conn.execute(
            insert(desk_sessions).values(
                id=key, user_id=user_id, csrf=csrf, address=address[:64],
                created_at=now, seen_at=now, expires_at=now + lifetime,
            )
        )


def lookup(engine: Engine, key: str, *, now: datetime, idle: timedelta) -> DeskSession | None:
    """The live session with this key and its user, or None (unknown, expired or idle)."""
    query = (
        select(
            desk_sessions, users.c.email, users.c.role, users.c.password_hash,
            users.c.created_at.label("user_created"),
        )
        .join(users, users.c.id == desk_sessions.c.user_id)
        .where(desk_sessions.c.id == key)
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None or row.expires_at <= now or row.seen_at + idle <= now:
        return None
    if now - row.seen_at >= SEEN_EVERY:
        with engine.begin() as conn:
            conn.execute(update(desk_sessions).where(desk_sessions.c.id == key).values(seen_at=now))
    user = User(
        id=row.user_id, email=row.email, role=row.role, password_hash=row.password_hash,
        created_at=row.user_created,
    )
    return DeskSession(
        id=row.id, user=user, csrf=row.csrf, address=row.address,
        created_at=row.created_at, seen_at=max(row.seen_at, now), expires_at=row.expires_at,
    )


def user_sessions(engine: Engine, user_id: int, *, now: datetime) -> int:
    """How many unexpired sessions the user has."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(
                    desk_sessions.c.user_id == user_id, desk_sessions.c.expires_at > now
                )
            ).scalar_one()
        )


def revoke(engine: Engine, key: str) -> None:
    with engine.begin() as conn:
        conn.execute(delete(desk_sessions).where(desk_sessions.c.id == key))


def revoke_user(engine: Engine, user_id: int) -> int:
    """End every session of the user; how many there were."""
    with engine.begin() as conn:
        return int(conn.execute(delete(desk_sessions).where(desk_sessions.c.user_id == user_id)).rowcount)


def purge(engine: Engine, *, now: datetime, keep_failures: timedelta) -> None:
    """Forget expired sessions and failures older than the throttle's window."""
    with engine.begin() as conn:
        conn.execute(delete(desk_sessions).where(desk_sessions.c.expires_at <= now))
        conn.execute(delete(login_failures).where(login_failures.c.created_at < now - keep_failures))


def record_failure(engine: Engine, *, email: str, address: str, now: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(insert(login_failures).values(email=email[:320], address=address[:64], created_at=now))


def failures_since(engine: Engine, *, email: str, address: str, since: datetime) -> tuple[int, int, datetime | None]:
    """Failures for the account and for the address since `since`, and the oldest of them."""
    recent = login_failures.c.created_at > since
    with engine.connect() as conn:
        by_email = conn.execute(
            select(func.count(), func.min(login_failures.c.created_at)).where(
                and_(login_failures.c.email == email, recent)
            )
        ).one()
        by_address = conn.execute(
            select(func.count(), func.min(login_failures.c.created_at)).where(
                and_(login_failures.c.address == address, recent)
            )
        ).one()
    oldest = [t for t in (by_email[1], by_address[1]) if t is not None]
    return int(by_email[0]), int(by_address[0]), (min(oldest) if oldest else None)


def clear_failures(engine: Engine, *, email: str) -> None:
    with engine.begin() as conn:
        conn.execute(delete(login_failures).where(login_failures.c.email == email))

