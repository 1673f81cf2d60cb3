"""Who may do what on the desk, and what the desk asks of a sign-in.

Three roles, each with everything the one before it may do (see `publisher.accounts`),
and the session policy read from `[desk]`: how long sessions live, how many failed
sign-ins are let through, and who must have a second factor.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta

from publisher.config import Config
from publisher.errors import AccountError
from publisher.store.subscribers import normalize_email
from publisher.store.users import User

__all__ = [
    "LOGIN_WINDOW",
    "Role",
    "SessionPolicy",
    "allows",
    "email_of",
    "needs_two_factor",
    "two_factor_required",
]

LOGIN_WINDOW = timedelta(minutes=15)
"""The fixed window sign-in attempts, passwords and codes alike, are counted in."""


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


def two_factor_required(role: str, policy: SessionPolicy) -> bool:
    """Whether `policy` requires a second factor of someone with `role`."""
    return policy.require_two_factor == "everyone" or (
        policy.require_two_factor == "owners" and role == Role.OWNER.value
    )


def needs_two_factor(user: User, policy: SessionPolicy) -> bool:
    """Whether `user` must set up a second factor before doing anything else."""
    return not user.two_factor and two_factor_required(user.role, policy)


def email_of(raw: str) -> str:
    """The address as accounts are kept under; AccountError for one that is not an address."""
    try:
        return normalize_email(raw)
    except Exception as exc:
        raise AccountError(f"{raw!r} is not an email address; give the address the user signs in with") from exc
