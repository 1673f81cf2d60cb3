"""A forgotten password, set again from a link mailed to the account's address.

`ask_reset` takes an address typed on the sign-in page. It is throttled like a sign-in
(`RESETS_PER_WINDOW` links per account and per client in `LOGIN_WINDOW`), and says the
same thing whether or not the address has an account: it returns the link to mail, or
None, and the desk answers alike either way (the mail goes after the answer).

The link carries a token signed with the publication's secret, salted for this purpose,
naming the account, the moment it was made, and a fingerprint of the account's password
hash at that moment. It is good for `RESET_WINDOW`, and for one change: the change gives
the account a new hash, so the fingerprint no longer matches, and a second use of the
same link (or a link made before any later change) is refused. Two uses at the same
moment cannot both land: the change is made only while the hash is still the one the
link saw (`store.users.replace_password`). Nothing about resets is stored.

Setting the password ends every session the account had, as a new password always does.
A second factor stays on: the next sign-in still asks for the code, so a mailbox alone
does not open an account that has one. An account that signs in only through the
OpenID Connect provider has no password to reset and gets no link.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from itsdangerous import BadData, URLSafeSerializer
from sqlalchemy import Engine

from publisher.accounts.roles import LOGIN_WINDOW, email_of
from publisher.errors import AccountError, SignInThrottled
from publisher.store import sessions as session_store
from publisher.store import users as user_store
from publisher.store.users import User

__all__ = ["RESETS_PER_WINDOW", "RESET_WINDOW", "ResetLink", "ask_reset", "finish_reset", "reset_holder"]

RESET_WINDOW = timedelta(hours=1)
"""How long a mailed link may be used."""
RESETS_PER_WINDOW = 3
"""Links one account, or one client, may ask for in `LOGIN_WINDOW`."""
_SALT = "desk password reset"
_EXPIRED = (
    "this link to set a new password has expired or was used already; ask for a new one "
    "from the sign-in page (“Forgotten your password?”)"
)


@dataclass(frozen=True, slots=True)
class ResetLink:
    """A link to mail: to whom, and the path on the desk that sets the password."""

    email: str
    path: str


def _fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode("utf-8")).hexdigest()[:32]


def _serializer(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=_SALT)


def ask_reset(engine: Engine, email: str, *, secret: str, address: str, now: datetime) -> ResetLink | None:
    """The link to mail for `email`, or None when there is no account with a password
    there. SignInThrottled when this account or this client asked too often; the count is
    kept whether or not the account exists, so the answer tells nothing about it."""
    try:
        cleaned = email_of(email)
    except AccountError:
        return None
    wait = session_store.take(
        engine,
        [(f"reset account {cleaned}", RESETS_PER_WINDOW), (f"reset client {address}", RESETS_PER_WINDOW * 3)],
        now=now,
        window=LOGIN_WINDOW,
    )
    if wait:
        raise SignInThrottled(
            "a link to set a new password was asked for too often; wait a few minutes, and look in your "
            "mailbox (and its spam folder) for the link already sent",
            retry_after=wait,
        )
    user = user_store.find(engine, cleaned)
    if user is None or not user.password_hash.startswith("$argon2"):
        return None
    token = _serializer(secret).dumps([user.id, int(now.timestamp()), _fingerprint(user.password_hash)])
    return ResetLink(email=user.email, path=f"/desk/login/reset/{token}")


def reset_holder(engine: Engine, token: str, *, secret: str, now: datetime) -> User:
    """The account a link sets the password of; AccountError for a link that is not one
    of ours, has expired, or was used."""
    try:
        user_id, made, fingerprint = _serializer(secret).loads(token)
        made_at = datetime.fromtimestamp(int(made), UTC)
    except (BadData, TypeError, ValueError, OverflowError, OSError) as exc:
        raise AccountError(_EXPIRED) from exc
    if not isinstance(user_id, int) or not isinstance(fingerprint, str):
        raise AccountError(_EXPIRED)
    if not made_at <= now <= made_at + RESET_WINDOW:
        raise AccountError(_EXPIRED)
    user = user_store.get(engine, user_id)
    if user is None or not hmac.compare_digest(_fingerprint(user.password_hash), fingerprint):
        raise AccountError(_EXPIRED)
    return user


def finish_reset(
    engine: Engine,
    token: str,
    password: str,
    *,
    secret: str,
    now: datetime,
    make_hash: Callable[[str], str],
) -> User:
    """Set the password a link was mailed for (hashed by `make_hash`, which refuses one too
    short or too long with AccountError); every session of the account ends. AccountError
    for a link that `reset_holder` refuses, or that was used meanwhile. The link is checked
    before the password is hashed, so a made-up link costs no hash."""
    user = reset_holder(engine, token, secret=secret, now=now)
    if not user_store.replace_password(engine, user.id, user.password_hash, make_hash(password), now=now):
        raise AccountError(_EXPIRED)
    return user
