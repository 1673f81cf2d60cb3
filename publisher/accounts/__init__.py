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
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine

from publisher.accounts import oidc, totp
from publisher.accounts.oidc import OidcClient
from publisher.accounts.totp import Enrolment
from publisher.config import Config
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
    "OIDC_WINDOW",
    "CodeNeeded",
    "DeskSession",
    "Enrolment",
    "OidcClient",
    "OidcStart",
    "Role",
    "SessionLine",
    "SessionPolicy",
    "SignedIn",
    "TwoFactorState",
    "User",
    "add_user",
    "allows",
    "begin_two_factor",
    "change_role",
    "code_pending",
    "confirm_two_factor",
    "current_session",
    "finish_oidc",
    "list_sessions",
    "list_users",
    "needs_two_factor",
    "remove_user",
    "renew_recovery_codes",
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

LOGIN_WINDOW = timedelta(minutes=15)
ACCOUNT_SPREAD = 20
"""The account-wide cap, in units of `desk.login_failures`: high, so that it takes many
clients to reach and it only ever stops browsers the account has not signed in with."""
MIN_PASSWORD = 10
CODE_WINDOW = timedelta(minutes=5)
"""How long a right password waits for its code."""
OIDC_WINDOW = timedelta(minutes=10)
"""How long a browser may stay at the OpenID Connect provider."""
REQUIRE_CHOICES = ("off", "owners", "everyone")
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
    require_two_factor: str = "off"
    """Who must have a second factor: "off", "owners" or "everyone"."""

    @classmethod
    def from_config(cls, config: Config) -> SessionPolicy:
        return cls(
            lifetime=timedelta(hours=float(config["desk.session_hours"])),
            idle=timedelta(hours=float(config["desk.idle_hours"])),
            per_account=int(config["desk.login_failures"]),
            per_address=int(config["desk.login_failures_per_address"]),
            require_two_factor=str(config["desk.require_two_factor"]),
        )


def _required(role: str, policy: SessionPolicy) -> bool:
    """Whether `policy` requires a second factor of someone with `role`."""
    return policy.require_two_factor == "everyone" or (
        policy.require_two_factor == "owners" and role == Role.OWNER.value
    )


def needs_two_factor(user: User, policy: SessionPolicy) -> bool:
    """Whether `user` must set up a second factor before doing anything else."""
    return not user.two_factor and _required(user.role, policy)


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


_STALE = "this sign-in has expired or was already finished; sign in again"
_CODE_REFUSED = "that code is not right; type the six digits your authenticator app shows now, or a recovery code"
_CODE_USED = "that code has been used already; wait for the next one in your authenticator app"


def _looks_like_recovery(code: str) -> bool:
    return any(ch.isalpha() for ch in code) or len("".join(code.split())) > 8


def _take_code(engine: Engine, user: User, code: str, *, now: datetime, secret: str, enable: bool = False) -> None:
    """Take `code` for `user`'s second factor, once: AccountError when it is wrong or spent."""
    factor = user_store.factor(engine, user.id)
    if factor is None:
        raise AccountError(_STALE)
    if not enable and _looks_like_recovery(code):
        if not user_store.use_recovery_code(engine, user.id, totp.recovery_hash(code), now=now):
            raise AccountError("that recovery code is not right, or has been used already")
        return
    seed = totp.unseal(secret, factor.sealed)
    step = totp.matching_step(seed, code, now=now, after=factor.last_step)
    if step is None:
        if totp.matching_step(seed, code, now=now, after=-1) is not None:
            raise AccountError(_CODE_USED)
        raise AccountError(_CODE_REFUSED)
    if not user_store.take_step(engine, user.id, step, now=now, enable=enable):
        raise AccountError(_CODE_USED)


def _code_keys(user_id: int, address: str, policy: SessionPolicy) -> list[tuple[str, int]]:
    return [(f"code {user_id}", policy.per_account), (f"client {address}", policy.per_address)]


def _throttled(engine: Engine, keys: list[tuple[str, int]], now: datetime) -> None:
    wait = session_store.take(engine, keys, now=now, window=LOGIN_WINDOW)
    if wait:
        raise SignInThrottled("too many wrong codes; wait a few minutes and try again", retry_after=wait)


def sign_in_with_code(
    engine: Engine, token: str, code: str, *, address: str, now: datetime, policy: SessionPolicy, secret: str,
    device: str = "",
) -> tuple[SignedIn, str]:
    """Finish the sign-in `token` holds with the authenticator's code or a recovery code:
    the new session and where to go next.

    Raises SignInThrottled after too many wrong codes (per account and per client, as for
    passwords), and AccountError for a wrong, spent or replayed code or a sign-in that has
    expired.
    """
    key = session_key(token) if token and len(token) <= 100 else ""
    step = session_store.find_step(engine, key, kind="code", now=now) if key else None
    user = user_store.get(engine, step.user_id) if step is not None and step.user_id is not None else None
    if step is None or user is None:
        raise AccountError(_STALE)
    keys = _code_keys(user.id, address, policy)
    _throttled(engine, keys, now)
    _take_code(engine, user, code[:100], now=now, secret=secret)
    if not session_store.end_step(engine, key):
        raise AccountError(_STALE)
    session_store.forget(engine, keys[0][0])
    session_store.give_back(engine, [keys[1][0]])
    return _open_session(engine, user, address=address, now=now, policy=policy, device=device), step.next_path


# The second factor, set up and taken down


@dataclass(frozen=True, slots=True)
class TwoFactorState:
    """An account's second factor as its own page shows it: on or not, the recovery codes
    left, and, only while it is being set up, the secret to add to an app."""

    on: bool
    required: bool
    recovery_left: int
    setting_up: Enrolment | None


def two_factor_state(engine: Engine, user: User, *, policy: SessionPolicy, secret: str, issuer: str) -> TwoFactorState:
    factor = user_store.factor(engine, user.id)
    setting_up = None
    if factor is not None and factor.enabled_at is None:
        try:
            setting_up = totp.enrolment(totp.unseal(secret, factor.sealed), account=user.email, issuer=issuer)
        except AccountError:
            setting_up = None  # sealed under another secret: starting again makes a new one
    return TwoFactorState(
        on=factor is not None and factor.enabled_at is not None,
        required=_required(user.role, policy),
        recovery_left=user_store.recovery_left(engine, user.id),
        setting_up=setting_up,
    )


def begin_two_factor(engine: Engine, user: User, *, now: datetime, secret: str, issuer: str) -> Enrolment:
    """A new secret for `user` to add to an authenticator app; the second factor is on
    only once `confirm_two_factor` has taken a code made from it."""
    seed = totp.new_secret()
    user_store.start_factor(engine, user.id, totp.seal(secret, seed), now=now)
    return totp.enrolment(seed, account=user.email, issuer=issuer)


def confirm_two_factor(
    engine: Engine, user: User, code: str, *, address: str, now: datetime, policy: SessionPolicy, secret: str
) -> list[str]:
    """Turn the second factor on with a first code from the app: the ten recovery codes,
    to be shown once (only their hashes are kept)."""
    factor = user_store.factor(engine, user.id)
    if factor is None or factor.enabled_at is not None:
        raise AccountError("there is no authenticator being set up for this account; start again")
    _throttled(engine, _code_keys(user.id, address, policy), now)
    _take_code(engine, user, code[:100], now=now, secret=secret, enable=True)
    session_store.forget(engine, f"code {user.id}")
    return _new_codes(engine, user)


def _new_codes(engine: Engine, user: User) -> list[str]:
    codes = totp.new_recovery_codes()
    user_store.set_recovery_codes(engine, user.id, [totp.recovery_hash(c) for c in codes])
    return codes


def renew_recovery_codes(engine: Engine, user: User) -> list[str]:
    """Ten new recovery codes; the old ones stop working."""
    factor = user_store.factor(engine, user.id)
    if factor is None or factor.enabled_at is None:
        raise AccountError("two-step sign-in is not on for this account, so it has no recovery codes")
    return _new_codes(engine, user)


def turn_off_two_factor(engine: Engine, user: User, *, policy: SessionPolicy) -> None:
    """The account's own choice to sign in with its password alone again, where allowed."""
    if _required(user.role, policy):
        raise AccountError(
            f"two-step sign-in is required for {'everyone' if policy.require_two_factor == 'everyone' else 'owners'} "
            "(desk.require_two_factor), so it stays on"
        )
    user_store.drop_factor(engine, user.email, end_sessions=False)


def reset_two_factor(engine: Engine, email: str) -> bool:
    """An owner's reset of someone's second factor (a lost phone): it and their recovery
    codes are forgotten and their sessions end; they sign in with their password alone,
    and set one up again where it is required. Whether they had one."""
    return user_store.drop_factor(engine, _email(email), end_sessions=True)


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
