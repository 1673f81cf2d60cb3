"""The second factor: codes taken once, and setting it up and taking it down.

A code is taken for an account at most once (`take_code`): an authenticator's code only
for a time step later than the last one taken (one conditional UPDATE, so two requests
with one code cannot both pass), a recovery code only while unused. Codes are counted
like passwords (`throttled`), per account and per client, before they are looked at.

An account turns its second factor on from its own page: `begin_two_factor` keeps a new
secret (sealed) while it is being set up, `confirm_two_factor` turns it on with a first
code and gives the ten recovery codes, which are shown once. An owner, or
`publisher users reset-2fa`, forgets someone's (`reset_two_factor`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from publisher.accounts import totp
from publisher.accounts.roles import LOGIN_WINDOW, SessionPolicy, email_of, two_factor_required
from publisher.accounts.totp import Enrolment
from publisher.errors import AccountError, SignInThrottled
from publisher.store import sessions as session_store
from publisher.store import users as user_store
from publisher.store.users import User

__all__ = [
    "STALE",
    "TwoFactorState",
    "begin_two_factor",
    "code_keys",
    "confirm_two_factor",
    "renew_recovery_codes",
    "reset_two_factor",
    "take_code",
    "throttled",
    "turn_off_two_factor",
    "two_factor_state",
]

STALE = "this sign-in has expired or was already finished; sign in again"
_CODE_REFUSED = "that code is not right; type the six digits your authenticator app shows now, or a recovery code"
_CODE_USED = "that code has been used already; wait for the next one in your authenticator app"


def looks_like_recovery(code: str) -> bool:
    return any(ch.isalpha() for ch in code) or len("".join(code.split())) > 8


def take_code(engine: Engine, user: User, code: str, *, now: datetime, secret: str, enable: bool = False) -> bool:
    """Take `code` for `user`'s second factor, once: whether it was a recovery code.
    With `enable`, the code must come from the secret being set up (a first phone's, or a
    new phone's), which then is the one in use. AccountError when it is wrong or spent."""
    factor = user_store.factor(engine, user.id)
    if factor is None:
        raise AccountError(STALE)
    if not enable and looks_like_recovery(code):
        if not user_store.use_recovery_code(engine, user.id, totp.recovery_hash(code), now=now):
            raise AccountError("that recovery code is not right, or has been used already")
        return True
    promote = enable and factor.enabled_at is not None
    if promote and factor.pending is None:
        raise AccountError("there is no new phone being set up for this account; start again")
    seed = totp.unseal(secret, factor.pending if promote and factor.pending else factor.sealed)
    step = totp.matching_step(seed, code, now=now, after=factor.last_step)
    if step is None:
        if totp.matching_step(seed, code, now=now, after=-1) is not None:
            raise AccountError(_CODE_USED)
        raise AccountError(_CODE_REFUSED)
    if not user_store.take_step(engine, user.id, step, now=now, enable=enable and not promote, promote=promote):
        raise AccountError(_CODE_USED)
    return False


def code_keys(user_id: int, address: str, policy: SessionPolicy) -> list[tuple[str, int]]:
    return [(f"code {user_id}", policy.per_account), (f"client {address}", policy.per_address)]


def throttled(engine: Engine, keys: list[tuple[str, int]], now: datetime) -> None:
    wait = session_store.take(engine, keys, now=now, window=LOGIN_WINDOW)
    if wait:
        raise SignInThrottled("too many wrong codes; wait a few minutes and try again", retry_after=wait)


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
    being_set_up = None if factor is None else factor.sealed if factor.enabled_at is None else factor.pending
    if being_set_up is not None:
        try:
            setting_up = totp.enrolment(totp.unseal(secret, being_set_up), account=user.email, issuer=issuer)
        except AccountError:
            setting_up = None  # sealed under another secret: starting again makes a new one
    return TwoFactorState(
        on=factor is not None and factor.enabled_at is not None,
        required=two_factor_required(user.role, policy),
        recovery_left=user_store.recovery_left(engine, user.id),
        setting_up=setting_up,
    )


def begin_two_factor(engine: Engine, user: User, *, now: datetime, secret: str, issuer: str) -> Enrolment:
    """A new secret for `user` to add to an authenticator app; the second factor is on
    (or, for a new phone, the new secret replaces the old) only once `confirm_two_factor`
    has taken a code made from it."""
    seed = totp.new_secret()
    user_store.start_factor(engine, user.id, totp.seal(secret, seed), now=now)
    return totp.enrolment(seed, account=user.email, issuer=issuer)


def confirm_two_factor(
    engine: Engine, user: User, code: str, *, address: str, now: datetime, policy: SessionPolicy, secret: str
) -> list[str]:
    """Turn the second factor on with a first code from the app: the ten recovery codes,
    to be shown once (only their hashes are kept)."""
    factor = user_store.factor(engine, user.id)
    if factor is None or (factor.enabled_at is not None and factor.pending is None):
        raise AccountError("there is no authenticator being set up for this account; start again")
    throttled(engine, code_keys(user.id, address, policy), now)
    take_code(engine, user, code[:100], now=now, secret=secret, enable=True)
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
    if two_factor_required(user.role, policy):
        raise AccountError(
            f"two-step sign-in is required for {'everyone' if policy.require_two_factor == 'everyone' else 'owners'} "
            "(desk.require_two_factor), so it stays on"
        )
    user_store.drop_factor(engine, user.email, end_sessions=False)


def reset_two_factor(engine: Engine, email: str) -> bool:
    """An owner's reset of someone's second factor (a lost phone): it and their recovery
    codes are forgotten and their sessions end; they sign in with their password alone,
    and set one up again where it is required. Whether they had one."""
    return user_store.drop_factor(engine, email_of(email), end_sessions=True)
