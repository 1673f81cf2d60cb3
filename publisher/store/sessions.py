"""Desk sessions and failed sign-ins, kept in the database so that every process sees them.

A session row is keyed by the SHA-256 of the cookie's value, never the value itself, so
a copy of the database (a backup, a leaked file) signs nobody in. A session ends at its
`expires_at`, after `idle` without a request, when its user signs out (this session) or
signs out everywhere (all of theirs), when the password changes, and when the user goes.

Sign-in attempts are counted per throttle key (which keys, and their limits, are
`publisher.accounts`' policy) in fixed windows: one row per key holds when its window
began and how many attempts it has let through. `take` raises every key of an attempt
in one transaction that holds a lock on each row (SQLite's `BEGIN IMMEDIATE`,
PostgreSQL's `FOR UPDATE`, keys in one order so two attempts cannot deadlock): the
attempt goes through with all of them or none, and however many arrive at once, no
more than a key's limit pass in its window. An attempt is counted before the password
is checked; a success gives its count back (`give_back`, `forget`).

A browser that signed in keeps a device cookie; its SHA-256 and the user are kept here
(`remember_device`) so that the next sign-in can tell the user's own browser from
strangers. A device is forgotten `DEVICE_LIFETIME` after it was given, or with its user.

A sign-in that is half done is a step (`open_step`): after the password, while the code
is awaited ("code"), or while the browser is at the OpenID Connect provider ("oidc").
Like a session, it is keyed by the SHA-256 of the value the browser holds, and ends at
its `expires_at`; `end_step` takes it away in one DELETE, so that only one request can
finish it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Select, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from publisher.store.engine import begin_write, reader
from publisher.store.schema import desk_sessions, login_failures, sign_in_devices, sign_in_factors, sign_in_steps, users
from publisher.store.users import User

__all__ = [
    "DeskSession",
    "SessionLine",
    "Step",
    "create",
    "device_user",
    "end_step",
    "find_step",
    "forget",
    "forget_ended",
    "give_back",
    "list_sessions",
    "lookup",
    "open_step",
    "purge",
    "remember_device",
    "revoke",
    "revoke_user",
    "take",
    "user_sessions",
]

SEEN_EVERY = timedelta(minutes=1)
"""`seen_at` is written at most this often per session, not on every request."""
DEVICE_LIFETIME = timedelta(days=365)


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
    with reader(engine) as conn:
        row = conn.execute(_lookup_query(), {"key": key}).first()
    if row is None or row.expires_at <= now or row.seen_at + idle <= now:
        return None
    if now - row.seen_at >= SEEN_EVERY:
        with engine.begin() as conn:
            conn.execute(update(desk_sessions).where(desk_sessions.c.id == key).values(seen_at=now))
    user = User(
        id=row.user_id, email=row.email, role=row.role, password_hash=row.password_hash,
        created_at=row.user_created, two_factor=row.factor_on is not None,
    )
    return DeskSession(
        id=row.id, user=user, csrf=row.csrf, address=row.address,
        created_at=row.created_at, seen_at=max(row.seen_at, now), expires_at=row.expires_at,
    )


@functools.cache
def _lookup_query() -> Select[Any]:
    """Built once: every desk request reads its session by it."""
    return (
        select(
            desk_sessions, users.c.email, users.c.role, users.c.password_hash,
            users.c.created_at.label("user_created"), sign_in_factors.c.enabled_at.label("factor_on"),
        )
        .join(users, users.c.id == desk_sessions.c.user_id)
        .outerjoin(sign_in_factors, sign_in_factors.c.user_id == desk_sessions.c.user_id)
        .where(desk_sessions.c.id == bindparam("key"))
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
    """Forget expired sessions and devices, and throttle counts whose window has ended."""
    with engine.begin() as conn:
        conn.execute(delete(desk_sessions).where(desk_sessions.c.expires_at <= now))
        conn.execute(delete(sign_in_devices).where(sign_in_devices.c.created_at <= now - DEVICE_LIFETIME))
        conn.execute(delete(sign_in_steps).where(sign_in_steps.c.expires_at <= now))
    forget_ended(engine, now=now, window=keep_failures)


def forget_ended(engine: Engine, *, now: datetime, window: timedelta) -> None:
    """Drop the throttle counts whose window has ended, passing over any that an attempt
    holds at this moment (PostgreSQL's `SKIP LOCKED`), so that this never waits for, or
    deadlocks with, a sign-in."""
    ended = (
        select(login_failures.c.key)
        .where(login_failures.c.window_start <= now - window)
        .with_for_update(skip_locked=True)
    )
    with engine.begin() as conn:
        conn.execute(delete(login_failures).where(login_failures.c.key.in_(ended)))


class _Refused(Exception):
    def __init__(self, wait: float) -> None:
        self.wait = wait


def take(engine: Engine, limits: Sequence[tuple[str, int]], *, now: datetime, window: timedelta) -> float:
    """Count one attempt against every `(key, limit)`: 0.0 when all of them let it through
    (and it is counted), else the seconds until the first refusing key's window ends (and
    nothing is counted)."""
    try:
        with begin_write(engine) as conn:
            for key, limit in sorted(limits):
                wait = _take_one(conn, key[:400], limit, now=now, window=window)
                if wait:
                    raise _Refused(wait)
    except _Refused as refused:
        return float(refused.wait)
    return 0.0


def _take_one(conn: Connection, key: str, limit: int, *, now: datetime, window: timedelta) -> float:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    row = None
    while row is None:  # again when `forget_ended` took the row between the two statements
        conn.execute(
            dialect.insert(login_failures)
            .values(key=key, window_start=now, failures=0)
            .on_conflict_do_nothing(index_elements=["key"])
        )
        row = conn.execute(
            select(login_failures.c.window_start, login_failures.c.failures)
            .where(login_failures.c.key == key)
            .with_for_update()
        ).first()
    start, failures = row.window_start, int(row.failures)
    # A window that has ended starts again. One that seems to start after `now` is no reason
    # to: a request that read the clock a moment before another opened the window takes
    # the lock after it, and must count in that window, not start its own.
    if start + window <= now:
        start, failures = now, 0
    if failures >= limit:
        return float(max(1.0, (start + window - now).total_seconds()))
    conn.execute(
        update(login_failures).where(login_failures.c.key == key).values(window_start=start, failures=failures + 1)
    )
    return 0.0


def give_back(engine: Engine, keys: Sequence[str]) -> None:
    """Take back one counted attempt from each key (a sign-in that succeeded)."""
    with engine.begin() as conn:
        for key in sorted(keys):
            conn.execute(
                update(login_failures)
                .where(login_failures.c.key == key[:400], login_failures.c.failures > 0)
                .values(failures=login_failures.c.failures - 1)
            )


def forget(engine: Engine, key: str) -> None:
    """Drop a key's count altogether."""
    with engine.begin() as conn:
        conn.execute(delete(login_failures).where(login_failures.c.key == key[:400]))


def remember_device(engine: Engine, key: str, *, user_id: int, now: datetime) -> None:
    """Remember a browser the user signed in with (by the SHA-256 of its cookie)."""
    with engine.begin() as conn:
        conn.execute(insert(sign_in_devices).values(id=key, user_id=user_id, created_at=now))


def device_user(engine: Engine, key: str) -> int | None:
    """The user a device cookie was given to, or None."""
    with engine.connect() as conn:
        found = conn.execute(select(sign_in_devices.c.user_id).where(sign_in_devices.c.id == key)).first()
    return int(found.user_id) if found is not None else None


@dataclass(frozen=True, slots=True)
class SessionLine:
    """One of a user's open sessions, as their account page lists it."""

    id: str
    address: str
    created_at: datetime
    seen_at: datetime
    expires_at: datetime


def list_sessions(engine: Engine, user_id: int, *, now: datetime) -> list[SessionLine]:
    """The user's unexpired sessions, the most recently used first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(desk_sessions)
            .where(desk_sessions.c.user_id == user_id, desk_sessions.c.expires_at > now)
            .order_by(desk_sessions.c.seen_at.desc())
        ).all()
    return [
        SessionLine(id=r.id, address=r.address, created_at=r.created_at, seen_at=r.seen_at, expires_at=r.expires_at)
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class Step:
    """A sign-in half done (see the module's docstring)."""

    kind: str
    user_id: int | None
    nonce: str
    verifier: str
    next_path: str
    address: str
    expires_at: datetime


def open_step(
    engine: Engine, key: str, *, kind: str, user_id: int | None, now: datetime, lifetime: timedelta,
    next_path: str, address: str, nonce: str = "", verifier: str = "",
) -> None:
    with engine.begin() as conn:
        conn.execute(delete(sign_in_steps).where(sign_in_steps.c.expires_at <= now))
        conn.execute(
            insert(sign_in_steps).values(
                id=key, kind=kind, user_id=user_id, nonce=nonce, verifier=verifier,
                next_path=next_path[:2000], address=address[:64], expires_at=now + lifetime,
            )
        )


def find_step(engine: Engine, key: str, *, kind: str, now: datetime) -> Step | None:
    """The live step of `kind` with this key, or None."""
    with engine.connect() as conn:
        row = conn.execute(
            select(sign_in_steps).where(sign_in_steps.c.id == key, sign_in_steps.c.kind == kind)
        ).first()
    if row is None or row.expires_at <= now:
        return None
    return Step(
        kind=row.kind, user_id=row.user_id, nonce=row.nonce, verifier=row.verifier,
        next_path=row.next_path, address=row.address, expires_at=row.expires_at,
    )


def end_step(engine: Engine, key: str) -> bool:
    """Take the step away: True for the one request that does."""
    with engine.begin() as conn:
        return int(conn.execute(delete(sign_in_steps).where(sign_in_steps.c.id == key)).rowcount) == 1
