"""Desk users: an address, a role and an Argon2 hash of their password.

The hash is made and checked by `publisher.accounts`; this module only keeps it. A
user's sessions go with the user (the foreign key cascades), and a new password ends
every session the old one opened (`set_password`).

`remove` and `set_role` can keep a role from emptying (the desk's last owner): the check
and the change are one transaction that first locks every member of that role (SQLite's
`BEGIN IMMEDIATE`; PostgreSQL's `FOR UPDATE`, in id order so that two of them cannot
deadlock). Two owners removing or demoting each other at the same moment take turns, and
the second finds itself the last one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from publisher.errors import AccountError, NotFound
from publisher.store.engine import begin_write
from publisher.store.schema import desk_sessions, users

__all__ = ["User", "add", "count_role", "find", "get", "list_users", "remove", "set_password", "set_role"]


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    role: str
    password_hash: str
    created_at: datetime


def _user(row: Any) -> User:
    return User(
        id=row.id, email=row.email, role=row.role, password_hash=row.password_hash,
        created_at=row.created_at,
    )


def add(engine: Engine, email: str, *, role: str, password_hash: str, now: datetime) -> User:
    """A new user; AccountError when the address already has an account."""
    try:
        with begin_write(engine) as conn:
            new_id = conn.execute(
                insert(users)
                .values(email=email, role=role, password_hash=password_hash, created_at=now, updated_at=now)
                .returning(users.c.id)
            ).scalar_one()
    except IntegrityError as exc:
        raise AccountError(
            f"{email} already has an account; use `publisher users reset-password {email}` "
            "to give it a new password"
        ) from exc
    return User(id=int(new_id), email=email, role=role, password_hash=password_hash, created_at=now)


def get(engine: Engine, user_id: int) -> User | None:
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.id == user_id)).first()
    return _user(row) if row is not None else None


def find(engine: Engine, email: str) -> User | None:
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.email == email)).first()
    return _user(row) if row is not None else None


def list_users(engine: Engine) -> list[User]:
    with engine.connect() as conn:
        rows = conn.execute(select(users).order_by(users.c.email)).all()
    return [_user(row) for row in rows]


def count_role(engine: Engine, role: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(users.c.role == role)).scalar_one())


def _missing(email: str) -> NotFound:
    return NotFound(f"there is no desk user {email}; `publisher users list` shows who there is")


def _members(conn: Connection, role: str) -> list[int]:
    """The ids holding `role`, each locked until the transaction ends."""
    query = select(users.c.id).where(users.c.role == role).order_by(users.c.id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return [int(row.id) for row in conn.execute(query)]


def _last(email: str, role: str, doing: str) -> AccountError:
    return AccountError(f"{email} is the last {role}; add another {role} before {doing} this one")


def remove(engine: Engine, email: str, *, keep_one: str | None = None) -> None:
    """Delete the user and, with them, every session they have open; with `keep_one`, not
    the last user holding that role (AccountError)."""
    with begin_write(engine) as conn:
        members = _members(conn, keep_one) if keep_one else []
        row = conn.execute(select(users.c.id, users.c.role).where(users.c.email == email)).first()
        if row is None:
            raise _missing(email)
        if keep_one and row.role == keep_one and members == [row.id]:
            raise _last(email, keep_one, "removing")
        conn.execute(delete(users).where(users.c.id == row.id))


def set_password(engine: Engine, email: str, password_hash: str, *, now: datetime) -> None:
    """Store a new hash and end every session of this user."""
    with begin_write(engine) as conn:
        row = conn.execute(select(users.c.id).where(users.c.email == email)).first()
        if row is None:
            raise _missing(email)
        conn.execute(
            update(users).where(users.c.id == row.id).values(password_hash=password_hash, updated_at=now)
        )
        conn.execute(delete(desk_sessions).where(desk_sessions.c.user_id == row.id))


def set_role(engine: Engine, email: str, role: str, *, now: datetime, keep_one: str | None = None) -> None:
    """Give the user `role`; with `keep_one`, never take the last user out of that role
    (AccountError)."""
    with begin_write(engine) as conn:
        members = _members(conn, keep_one) if keep_one else []
        row = conn.execute(select(users.c.id, users.c.role).where(users.c.email == email)).first()
        if row is None:
            raise _missing(email)
        if keep_one and row.role == keep_one != role and members == [row.id]:
            raise _last(email, keep_one, "giving another role to")
        conn.execute(update(users).where(users.c.id == row.id).values(role=role, updated_at=now))
