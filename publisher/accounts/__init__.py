"""Desk accounts: roles, passwords, sign-in with its throttle, and sessions.

Three roles, each with everything the one before it may do:

    viewer   reads every page of the desk
    editor   also writes articles, manages subscribers, test-sends, schedules and sends
    owner    also manages settings, users and API keys

Passwords are hashed with Argon2id (argon2-cffi's defaults, which follow RFC 9106); a
hash made with weaker parameters is upgraded at the next sign-in. A sign-in for an
address without an account costs the same hash check, so the answer's timing does not
tell whether the address has an account.

A sign-in is throttled in the database, before the password is looked at. Each attempt
is counted, atomically and before the hash check, against up to three keys in fixed
windows of `LOGIN_WINDOW` (see `store.sessions.take`; a success gives its count back):

    the account from this client   `desk.login_failures`: a lockout that binds only the
                                   client that made the mistakes
    this client, any account       `desk.login_failures_per_address`: one client guessing
                                   at many accounts
    the account, from anywhere     `desk.login_failures` x `ACCOUNT_SPREAD`: many clients
                                   guessing at one account

The client is the address the connection came from (behind a trusted proxy, the one the
proxy saw: `web.limits.Proxies.client`), or, for a browser that has signed in to this
account before, that browser's device cookie. Such a known browser is counted on its own
key only: its own mistakes throttle it, nobody else's do, so someone hammering at the
owner's address from elsewhere (from one client or a thousand) cannot keep the owner's
own browser out, while a stranger's browser is held to all three limits. However many
attempts arrive at once, at most a key's limit of them reach the password check in its
window.

Every sign-in makes a new session id (nothing a visitor held before signing in becomes a
session), and every session has its own CSRF token.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine

from publisher.config import Config
from publisher.errors import AccountError, SignInThrottled
from publisher.store import sessions as session_store
from publisher.store import users as user_store
from publisher.store.sessions import DEVICE_LIFETIME, DeskSession
from publisher.store.subscribers import normalize_email
from publisher.store.users import User

__all__ = [
    "ACCOUNT_SPREAD",
    "DEVICE_LIFETIME",
    "LOGIN_WINDOW",
    "MIN_PASSWORD",
    "DeskSession",
    "Role",
    "SessionPolicy",
    "SignedIn",
    "User",
    "add_user",
    "allows",
    "change_role",
    "current_session",
    "list_users",
    "remove_user",
    "reset_password",
    "session_key",
    "sign_in",
    "sign_out",
    "sign_out_everywhere",
]

LOGIN_WINDOW = timedelta(minutes=15)
ACCOUNT_SPREAD = 20
"""The account-wide cap, in units of `desk.login_failures`: high, so that it takes many
clients to reach and it only ever stops browsers the account has not signed in with."""
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
_REFUSED = "that email address and password do not match an account"

_hasher = PasswordHasher()
# Checked when an address has no account, so that both answers take as long.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class Role(enum.StrEnum):
    VIEWER = "viewer"
    EDITOR = "editor"
    OWNER = "owner"


_RANK = {Role.VIEWER: 0, Role.EDITOR: 1, Role.OWNER: 2}


def allows(role: str, needed: Role) -> bool:
    """Whether `role` may do what needs `needed` (an unknown role may do nothing)."""
    try:
        return _RANK[Role(role)] >= _RANK[needed]
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """How long sessions live and how many failed sign-ins are let through."""

    lifetime: timedelta
    idle: timedelta
    per_account: int
    per_address: int

    @classmethod
    def from_config(cls, config: Config) -> SessionPolicy:
        return cls(
            lifetime=timedelta(hours=float(config["desk.session_hours"])),
            idle=timedelta(hours=float(config["desk.idle_hours"])),
            per_account=int(config["desk.login_failures"]),
            per_address=int(config["desk.login_failures_per_address"]),
        )


def _email(raw: str) -> str:
    try:
        return normalize_email(raw)
    except Exception as exc:
        raise AccountError(f"{raw!r} is not an email address; give the address the user signs in with") from exc


def _role(raw: str) -> Role:
    try:
        return Role(raw)
    except ValueError as exc:
        raise AccountError(f"role must be one of {', '.join(r.value for r in Role)}, got {raw!r}") from exc


def _hash(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password is too short: use at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password is too long: use at most {MAX_PASSWORD} characters")
    return _hasher.hash(password)


def add_user(engine: Engine, email: str, *, role: str, password: str, now: datetime) -> User:
    """A new desk user. AccountError for a bad address, role or password, or a taken address."""
    return user_store.add(
        engine, _email(email), role=_role(role).value, password_hash=_hash(password), now=now
    )


def list_users(engine: Engine) -> list[User]:
    return user_store.list_users(engine)


def remove_user(engine: Engine, email: str) -> None:
    """Delete the user and end their sessions; the last owner cannot be removed, however
    many owners try at once."""
    user_store.remove(engine, _email(email), keep_one=Role.OWNER.value)


def change_role(engine: Engine, email: str, *, role: str, now: datetime) -> None:
    """Give the user another role; the last owner keeps theirs, however many owners try
    at once."""
    user_store.set_role(engine, _email(email), _role(role).value, now=now, keep_one=Role.OWNER.value)


def reset_password(engine: Engine, email: str, *, password: str, now: datetime) -> None:
    """A new password; every session the user has open ends."""
    user_store.set_password(engine, _email(email), _hash(password), now=now)


def session_key(token: str) -> str:
    """What the database keeps for a session cookie's value."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A sign-in that worked: the session cookie's value, the session, and the device
    cookie's value for this browser (new, or the one it presented)."""

    token: str
    session: DeskSession
    device: str


def _throttle_keys(
    engine: Engine, email: str, user: User | None, address: str, device: str, policy: SessionPolicy
) -> list[tuple[str, int]]:
    """The keys an attempt counts against (see the module's docstring)."""
    if user is not None and 0 < len(device) <= 100 and (
        session_store.device_user(engine, session_key(device)) == user.id
    ):
        return [(f"pair {email} device {session_key(device)}", policy.per_account)]
    return [
        (f"pair {email} client {address}", policy.per_account),
        (f"client {address}", policy.per_address),
        (f"account {email}", policy.per_account * ACCOUNT_SPREAD),
    ]


def sign_in(
    engine: Engine, email: str, password: str, *, address: str, now: datetime, policy: SessionPolicy,
    device: str = "",
) -> SignedIn:
    """A new session for the account, from the client at `address` holding the device
    cookie `device` (empty when it has none).

    Raises SignInThrottled while one of the attempt's keys is throttled, and AccountError
    (one message for every kind of mismatch) otherwise.
    """
    try:
        address_key = normalize_email(email)
    except Exception:
        address_key = email.strip().lower()[:320]
    user = user_store.find(engine, address_key)
    keys = _throttle_keys(engine, address_key, user, address, device, policy)
    wait = session_store.take(engine, keys, now=now, window=LOGIN_WINDOW)
    if wait:
        raise SignInThrottled("too many failed sign-ins; wait a few minutes and try again", retry_after=wait)
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password[:MAX_PASSWORD])
        ok = user is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None:
        session_store.forget_ended(engine, now=now, window=LOGIN_WINDOW)
        raise AccountError(_REFUSED)
    pair, *others = (key for key, _ in keys)
    session_store.forget(engine, pair)
    session_store.give_back(engine, others)
    if _hasher.check_needs_rehash(user.password_hash):
        user_store.set_password(engine, user.email, _hasher.hash(password), now=now)
    session_store.purge(engine, now=now, keep_failures=LOGIN_WINDOW)
    if not others:  # a browser this account knows keeps its cookie
        known = device
    else:
        known = secrets.token_urlsafe(32)
        session_store.remember_device(engine, session_key(known), user_id=user.id, now=now)
    token = secrets.token_urlsafe(32)
    key = session_key(token)
    session_store.create(
        engine, key, user_id=user.id, csrf=secrets.token_urlsafe(32), address=address,
        now=now, lifetime=policy.lifetime,
    )
    found = session_store.lookup(engine, key, now=now, idle=policy.idle)
    if found is None:  # pragma: no cover - just written
        raise AccountError("the session could not be started; try again")
    return SignedIn(token, found, known)


def current_session(engine: Engine, token: str, *, now: datetime, policy: SessionPolicy) -> DeskSession | None:
    """The live session a cookie names, or None."""
    if not token or len(token) > 100:
        return None
    return session_store.lookup(engine, session_key(token), now=now, idle=policy.idle)


def sign_out(engine: Engine, session: DeskSession) -> None:
    session_store.revoke(engine, session.id)


def sign_out_everywhere(engine: Engine, session: DeskSession) -> int:
    """End every session of this session's user, this one included."""
    return session_store.revoke_user(engine, session.user.id)
