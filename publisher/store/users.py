"""Desk users: an address, a role and an Argon2 hash of their password, and their second factor.

The hash is made and checked by `publisher.accounts`; this module only keeps it. A
user's sessions go with the user (the foreign key cascades), and a new password ends
every session the old one opened (`set_password`).

A second factor is a sealed TOTP secret (`publisher.accounts.totp`), on from `enabled_at`,
with the last time step a code was taken for: `take_step` moves it forward in one
conditional UPDATE, so of two requests carrying the same code (two tabs, two processes,
a replay) exactly one gets through. Recovery codes are kept by hash and used the same
way (`use_recovery_code`). `drop_factor` forgets both.

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

from sqlalchemy import Connection, Engine, Select, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from publisher.errors import AccountError, NotFound
from publisher.store.engine import begin_write
from publisher.store.schema import desk_sessions, recovery_codes, sign_in_factors, users

__all__ = [
    "Factor",
    "User",
    "add",
    "count_role",
    "drop_factor",
    "factor",
    "find",
    "get",
    "list_users",
    "recovery_left",
    "remove",
    "replace_password",
    "set_password",
    "set_recovery_codes",
    "set_role",
    "start_factor",
    "take_step",
    "use_recovery_code",
]


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    role: str
    password_hash: str
    created_at: datetime
    two_factor: bool = False
    """Whether sign-in asks this user for a code after the password."""


def _user(row: Any) -> User:
    return User(
        id=row.id, email=row.email, role=row.role, password_hash=row.password_hash,
        created_at=row.created_at, two_factor=row.factor_on is not None,
    )


def _users() -> Select[Any]:
    """Users with whether their second factor is on (`factor_on`)."""
    return select(users, sign_in_factors.c.enabled_at.label("factor_on")).outerjoin(
        sign_in_factors, sign_in_factors.c.user_id == users.c.id
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
        row = conn.execute(_users().where(users.c.id == user_id)).first()
    return _user(row) if row is not None else None


def find(engine: Engine, email: str) -> User | None:
    with engine.connect() as conn:
        row = conn.execute(_users().where(users.c.email == email)).first()
    return _user(row) if row is not None else None


def list_users(engine: Engine) -> list[User]:
    with engine.connect() as conn:
        rows = conn.execute(_users().order_by(users.c.email)).all()
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


def replace_password(engine: Engine, user_id: int, old_hash: str, new_hash: str, *, now: datetime) -> bool:
    """Store `new_hash` only if the user's hash is still `old_hash`, and end every session of
    this user; False (nothing changed) when it is not, so of two changes made from the same
    sight of the old hash (a reset link used twice at once) exactly one lands."""
    with begin_write(engine) as conn:
        changed = conn.execute(
            update(users)
            .where(users.c.id == user_id, users.c.password_hash == old_hash)
            .values(password_hash=new_hash, updated_at=now)
        ).rowcount
        if changed:
            conn.execute(delete(desk_sessions).where(desk_sessions.c.user_id == user_id))
    return bool(changed)


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


@dataclass(frozen=True, slots=True)
class Factor:
    """A user's TOTP secret (sealed), since when it is on (None while being set up), the
    last time step a code was taken for, and a new phone's secret being set up (sealed)."""

    sealed: str
    enabled_at: datetime | None
    last_step: int
    pending: str | None = None


def factor(engine: Engine, user_id: int) -> Factor | None:
    with engine.connect() as conn:
        row = conn.execute(select(sign_in_factors).where(sign_in_factors.c.user_id == user_id)).first()
    if row is None:
        return None
    return Factor(
        sealed=row.secret, enabled_at=row.enabled_at, last_step=int(row.last_step), pending=row.pending_secret
    )


def start_factor(engine: Engine, user_id: int, sealed: str, *, now: datetime) -> None:
    """Keep a new secret being set up (replacing one still being set up); for a user whose
    second factor is on, as the new phone's, while the old secret keeps working."""
    with begin_write(engine) as conn:
        row = conn.execute(
            select(sign_in_factors.c.enabled_at).where(sign_in_factors.c.user_id == user_id)
        ).first()
        if row is not None and row.enabled_at is not None:
            conn.execute(
                update(sign_in_factors).where(sign_in_factors.c.user_id == user_id).values(pending_secret=sealed)
            )
            return
        conn.execute(delete(sign_in_factors).where(sign_in_factors.c.user_id == user_id))
        conn.execute(
            insert(sign_in_factors).values(user_id=user_id, secret=sealed, enabled_at=None, last_step=0, created_at=now)
        )


def take_step(
    engine: Engine, user_id: int, step: int, *, now: datetime, enable: bool = False, promote: bool = False
) -> bool:
    """Record that a code for `step` was taken: True for the one request that moves the
    user's last step forward to it, False for any other (a replay, an older code). With
    `enable`, the second factor is on from `now` as well; with `promote`, the new phone's
    secret takes the old one's place (and the code must have been the new phone's)."""
    values: dict[str, Any] = {"last_step": step}
    conditions = [sign_in_factors.c.user_id == user_id, sign_in_factors.c.last_step < step]
    if enable:
        values["enabled_at"] = now
    if promote:
        values.update(secret=sign_in_factors.c.pending_secret, pending_secret=None)
        conditions.append(sign_in_factors.c.pending_secret.is_not(None))
    with engine.begin() as conn:
        result = conn.execute(update(sign_in_factors).where(*conditions).values(**values))
    return int(result.rowcount) == 1


def set_recovery_codes(engine: Engine, user_id: int, hashes: list[str]) -> None:
    """Replace the user's recovery codes (by hash): the old ones stop working."""
    with begin_write(engine) as conn:
        conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
        conn.execute(insert(recovery_codes), [{"user_id": user_id, "code_hash": h, "used_at": None} for h in hashes])


def use_recovery_code(engine: Engine, user_id: int, code_hash: str, *, now: datetime) -> bool:
    """Spend one recovery code: True once, for the request that spends it."""
    with engine.begin() as conn:
        result = conn.execute(
            update(recovery_codes)
            .where(
                recovery_codes.c.user_id == user_id, recovery_codes.c.code_hash == code_hash,
                recovery_codes.c.used_at.is_(None),
            )
            .values(used_at=now)
        )
    return int(result.rowcount) == 1


def recovery_left(engine: Engine, user_id: int) -> int:
    """How many recovery codes the user has not used."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(recovery_codes.c.user_id == user_id, recovery_codes.c.used_at.is_(None))
            ).scalar_one()
        )


def drop_factor(engine: Engine, email: str, *, end_sessions: bool) -> bool:
    """Forget the user's second factor and recovery codes (whether they had one: True
    when they did); with `end_sessions`, every session they have open ends too."""
    with begin_write(engine) as conn:
        row = conn.execute(select(users.c.id).where(users.c.email == email)).first()
        if row is None:
            raise _missing(email)
        had = conn.execute(delete(sign_in_factors).where(sign_in_factors.c.user_id == row.id)).rowcount
        conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == row.id))
        if end_sessions:
            conn.execute(delete(desk_sessions).where(desk_sessions.c.user_id == row.id))
    return bool(had)
