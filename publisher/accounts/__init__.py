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

Two steps. An account with a second factor on (`totp`) is not signed in by its password,
nor by its OpenID Connect provider (`oidc`): either first step ends in `CodeNeeded`, a
half-done sign-in held for `CODE_WINDOW`, and `sign_in_with_code` finishes it with the
authenticator's code or one of the account's recovery codes. Codes are throttled like
passwords, per account and per client; a code, or a recovery code, is taken once.
`desk.require_two_factor` names who must have one ("owners", "everyone"); such an
account that has none may only set it up (`needs_two_factor`) until it has.

The parts: `roles` (roles and the session policy), `totp` (codes, pure), `factors`
(codes taken once, setting the second factor up and down), `oidc` (the provider's
client and its ID token checks); this module signs in and out.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine

from publisher.accounts import oidc, resets
from publisher.accounts.factors import (
    STALE,
    TwoFactorState,
    begin_two_factor,
    code_keys,
    confirm_two_factor,
    renew_recovery_codes,
    reset_two_factor,
    take_code,
    throttled,
    turn_off_two_factor,
    two_factor_state,
)
from publisher.accounts.oidc import OidcClient
from publisher.accounts.resets import RESET_WINDOW, ResetLink
from publisher.accounts.roles import LOGIN_WINDOW, Role, SessionPolicy, allows, email_of, needs_two_factor
from publisher.accounts.totp import Enrolment
from publisher.errors import AccountError, SignInThrottled
from publisher.store import sessions as session_store
from publisher.store import users as user_store
from publisher.store.sessions import DEVICE_LIFETIME, DeskSession, SessionLine
from publisher.store.subscribers import normalize_email
from publisher.store.users import User

__all__ = [
    "ACCOUNT_SPREAD",
    "CODE_WINDOW",
    "DEVICE_LIFETIME",
    "LOGIN_WINDOW",
    "MIN_PASSWORD",
    "NO_PASSWORD",
    "OIDC_WINDOW",
    "RESET_WINDOW",
    "CodeNeeded",
    "DeskSession",
    "Enrolment",
    "OidcClient",
    "OidcStart",
    "ResetLink",
    "Role",
    "SessionLine",
    "SessionPolicy",
    "SignedIn",
    "TwoFactorState",
    "User",
    "add_user",
    "allows",
    "ask_password_reset",
    "begin_two_factor",
    "change_role",
    "code_pending",
    "confirm_two_factor",
    "current_session",
    "finish_oidc",
    "finish_password_reset",
    "list_sessions",
    "list_users",
    "needs_two_factor",
    "remove_user",
    "renew_recovery_codes",
    "reset_holder",
    "reset_password",
    "reset_two_factor",
    "session_key",
    "sign_in",
    "sign_in_with_code",
    "sign_out",
    "sign_out_everywhere",
    "start_oidc",
    "turn_off_two_factor",
    "two_factor_state",
]

ACCOUNT_SPREAD = 20
"""The account-wide cap, in units of `desk.login_failures`: high, so that it takes many
clients to reach and it only ever stops browsers the account has not signed in with."""
MIN_PASSWORD = 10
CODE_WINDOW = timedelta(minutes=5)
"""How long a right password waits for its code."""
RECOVERY_USED_PATH = "/desk/account?m=recovery-used"
"""Where a sign-in with a recovery code leads: the account's page says how many are left."""
OIDC_WINDOW = timedelta(minutes=10)
"""How long a browser may stay at the OpenID Connect provider."""
MAX_PASSWORD = 1024
_REFUSED = "that email address and password do not match an account"

_hasher = PasswordHasher()
# Checked when an address has no account, so that both answers take as long.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


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


NO_PASSWORD = "!"  # noqa: S105  (a marker no Argon2 hash can equal, not a password)
"""What an account without a password keeps instead of a hash: no password matches it."""


def add_user(engine: Engine, email: str, *, role: str, password: str | None, now: datetime) -> User:
    """A new desk user; with `password` None, one who signs in only through the OpenID
    Connect provider (until an owner gives them a password). AccountError for a bad
    address, role or password, or a taken address."""
    password_hash = NO_PASSWORD if password is None else _hash(password)
    return user_store.add(engine, email_of(email), role=_role(role).value, password_hash=password_hash, now=now)


def list_users(engine: Engine) -> list[User]:
    return user_store.list_users(engine)


def remove_user(engine: Engine, email: str) -> None:
    """Delete the user and end their sessions; the last owner cannot be removed, however
    many owners try at once."""
    user_store.remove(engine, email_of(email), keep_one=Role.OWNER.value)


def change_role(engine: Engine, email: str, *, role: str, now: datetime) -> None:
    """Give the user another role; the last owner keeps theirs, however many owners try
    at once."""
    user_store.set_role(engine, email_of(email), _role(role).value, now=now, keep_one=Role.OWNER.value)


def reset_password(engine: Engine, email: str, *, password: str, now: datetime) -> None:
    """A new password; every session the user has open ends."""
    user_store.set_password(engine, email_of(email), _hash(password), now=now)


def ask_password_reset(engine: Engine, email: str, *, secret: str, address: str, now: datetime) -> ResetLink | None:
    """The link to mail for a forgotten password (`resets.ask_reset`)."""
    return resets.ask_reset(engine, email, secret=secret, address=address, now=now)


def reset_holder(engine: Engine, token: str, *, secret: str, now: datetime) -> User:
    """The account a mailed link sets the password of (`resets.reset_holder`)."""
    return resets.reset_holder(engine, token, secret=secret, now=now)


def finish_password_reset(engine: Engine, token: str, password: str, *, secret: str, now: datetime) -> User:
    """A new password from a mailed link; every session of the account ends (`resets`)."""
    return resets.finish_reset(engine, token, password, secret=secret, now=now, make_hash=_hash)


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


@dataclass(frozen=True, slots=True)
class CodeNeeded:
    """A first step that worked for an account with a second factor: `token` (for a
    cookie) names the sign-in that waits for the code, for `CODE_WINDOW`."""

    token: str
    next_path: str


def _throttle_keys(
    engine: Engine, email: str, user: User | None, address: str, device: str, policy: SessionPolicy
) -> list[tuple[str, int]]:
    """The keys an attempt counts against (see the module's docstring)."""
    if user is not None and _known_device(engine, user, device):
        return [(f"pair {email} device {session_key(device)}", policy.per_account)]
    return [
        (f"pair {email} client {address}", policy.per_account),
        (f"client {address}", policy.per_address),
        (f"account {email}", policy.per_account * ACCOUNT_SPREAD),
    ]


def _known_device(engine: Engine, user: User, device: str) -> bool:
    return 0 < len(device) <= 100 and session_store.device_user(engine, session_key(device)) == user.id


def sign_in(
    engine: Engine, email: str, password: str, *, address: str, now: datetime, policy: SessionPolicy,
    device: str = "", next_path: str = "/desk/",
) -> SignedIn | CodeNeeded:
    """A new session for the account, from the client at `address` holding the device
    cookie `device` (empty when it has none); for an account with a second factor, the
    sign-in that waits for its code.

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
        # An account without a password costs the same check as an address without an account.
        usable = user is not None and user.password_hash != NO_PASSWORD
        _hasher.verify(user.password_hash if user is not None and usable else _DUMMY_HASH, password[:MAX_PASSWORD])
        ok = usable
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
    return _first_step_done(engine, user, address=address, now=now, policy=policy, device=device, next_path=next_path)


def _first_step_done(
    engine: Engine, user: User, *, address: str, now: datetime, policy: SessionPolicy, device: str, next_path: str
) -> SignedIn | CodeNeeded:
    if user.two_factor:
        token = secrets.token_urlsafe(32)
        session_store.open_step(
            engine, session_key(token), kind="code", user_id=user.id, now=now, lifetime=CODE_WINDOW,
            next_path=next_path, address=address,
        )
        return CodeNeeded(token, next_path)
    return _open_session(engine, user, address=address, now=now, policy=policy, device=device)


def _open_session(
    engine: Engine, user: User, *, address: str, now: datetime, policy: SessionPolicy, device: str
) -> SignedIn:
    if _known_device(engine, user, device):  # a browser this account knows keeps its cookie
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


def code_pending(engine: Engine, token: str, *, now: datetime) -> str | None:
    """The address of the account whose sign-in `token` holds for its code, or None when
    there is no such sign-in (never started, finished, or expired)."""
    if not token or len(token) > 100:
        return None
    step = session_store.find_step(engine, session_key(token), kind="code", now=now)
    user = user_store.get(engine, step.user_id) if step is not None and step.user_id is not None else None
    return user.email if user is not None else None


def sign_in_with_code(
    engine: Engine, token: str, code: str, *, address: str, now: datetime, policy: SessionPolicy, secret: str,
    device: str = "",
) -> tuple[SignedIn, str]:
    """Finish the sign-in `token` holds with the authenticator's code or a recovery code:
    the new session and where to go next (after a recovery code, the account's page, which
    says how many are left).

    Raises SignInThrottled after too many wrong codes (per account and per client, as for
    passwords), and AccountError for a wrong, spent or replayed code or a sign-in that has
    expired.
    """
    key = session_key(token) if token and len(token) <= 100 else ""
    step = session_store.find_step(engine, key, kind="code", now=now) if key else None
    user = user_store.get(engine, step.user_id) if step is not None and step.user_id is not None else None
    if step is None or user is None:
        raise AccountError(STALE)
    keys = code_keys(user.id, address, policy)
    throttled(engine, keys, now)
    recovery = take_code(engine, user, code[:100], now=now, secret=secret)
    if not session_store.end_step(engine, key):
        raise AccountError(STALE)
    session_store.forget(engine, keys[0][0])
    session_store.give_back(engine, [keys[1][0]])
    target = RECOVERY_USED_PATH if recovery else step.next_path
    return _open_session(engine, user, address=address, now=now, policy=policy, device=device), target


# OpenID Connect


@dataclass(frozen=True, slots=True)
class OidcStart:
    """Where to send the browser, and the state it must come back with (for a cookie)."""

    url: str
    state: str


def start_oidc(
    engine: Engine, client: OidcClient, *, redirect_uri: str, next_path: str, address: str, now: datetime
) -> OidcStart:
    """Begin a sign-in at the provider: a fresh state, nonce and PKCE verifier, kept here
    for `OIDC_WINDOW` under the state's hash."""
    info = oidc.discover(client)
    state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(64)
    session_store.open_step(
        engine, session_key(state), kind="oidc", user_id=None, now=now, lifetime=OIDC_WINDOW,
        next_path=next_path, address=address, nonce=nonce, verifier=verifier,
    )
    url = oidc.authorization_url(info, client, redirect_uri=redirect_uri, state=state, nonce=nonce, verifier=verifier)
    return OidcStart(url=url, state=state)


def finish_oidc(
    engine: Engine, client: OidcClient, *, state: str, browser_state: str, code: str, redirect_uri: str,
    address: str, now: datetime, policy: SessionPolicy, device: str = "",
) -> tuple[SignedIn | CodeNeeded, str]:
    """Finish a sign-in the provider sent back: the session (or, for an account with a
    second factor, the sign-in that waits for its code) and where to go next. The state
    must be this browser's and unused, the ID token must pass every check
    (`oidc.verified_email`), and its verified address must be an account's: AccountError
    otherwise, saying why."""
    if not state or len(state) > 100 or not hmac.compare_digest(state.encode(), browser_state.encode()):
        raise AccountError("this sign-in was started in another browser or tab, or has expired; start it again")
    key = session_key(state)
    step = session_store.find_step(engine, key, kind="oidc", now=now)
    if step is None or not session_store.end_step(engine, key):
        raise AccountError("this sign-in has expired or was already used; start it again")
    if not code:
        raise AccountError("the sign-in provider sent no code back; start the sign-in again")
    info = oidc.discover(client)
    id_token = oidc.exchange_code(info, client, code=code[:2000], redirect_uri=redirect_uri, verifier=step.verifier)
    keys = oidc.fetch_keys(info, client)
    email = oidc.verified_email(
        id_token, keys, issuer=client.issuer, client_id=client.client_id, nonce=step.nonce, now=now
    )
    try:
        address_key = normalize_email(email)
    except Exception as exc:
        raise AccountError(f"the sign-in provider's address {email[:320]!r} is not an email address") from exc
    user = user_store.find(engine, address_key)
    if user is None:
        raise AccountError(
            f"there is no account for {address_key} on this desk. Nobody signs themselves up here: "
            "ask an owner to add you (Settings, People who use the desk), then sign in again"
        )
    session_store.purge(engine, now=now, keep_failures=LOGIN_WINDOW)
    done = _first_step_done(
        engine, user, address=address, now=now, policy=policy, device=device, next_path=step.next_path
    )
    return done, step.next_path


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


def list_sessions(engine: Engine, user: User, *, now: datetime) -> list[SessionLine]:
    """The account's open sessions, the most recently used first."""
    return session_store.list_sessions(engine, user.id, now=now)
