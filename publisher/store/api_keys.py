"""API keys: created once, shown once, kept only as a hash, revoked by name.

A key reads `pub_<key_id>_<secret>`. `key_id` is stored as it is, to find the row; the
whole key is stored only as its SHA-256 (a key carries 256 random bits, so a slow hash
buys nothing) and compared in constant time. A revoked key stays in the table, so its
name cannot quietly be given to a new key and its last use stays on record.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from publisher.errors import Conflict, InvalidRequest, NotFound
from publisher.store.schema import api_keys

__all__ = [
    "SCOPES", "ApiKey", "authenticate", "check_scopes", "create", "due_for_touch", "list_keys", "revoke", "touch",
]

SCOPES = (
    "subscribers:read",
    "subscribers:write",
    "issues:read",
    "issues:write",
    "articles:write",
    "stats:read",
    "admin",
)
"""What a key may do. `admin` allows everything, including adding subscribers without opt-in."""
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_TOKEN_RE = re.compile(r"^pub_([A-Za-z0-9]{16})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    name: str
    key_id: str
    scopes: frozenset[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _key(row: object) -> ApiKey:
    return ApiKey(
        id=row.id,  # type: ignore[attr-defined]
        name=row.name,  # type: ignore[attr-defined]
        key_id=row.key_id,  # type: ignore[attr-defined]
        scopes=frozenset(row.scopes.split()),  # type: ignore[attr-defined]
        created_at=row.created_at,  # type: ignore[attr-defined]
        last_used_at=row.last_used_at,  # type: ignore[attr-defined]
        revoked_at=row.revoked_at,  # type: ignore[attr-defined]
    )


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    wanted = tuple(dict.fromkeys(s.strip() for s in scopes if s.strip()))
    unknown = [s for s in wanted if s not in SCOPES]
    if unknown or not wanted:
        given = ", ".join(unknown) if unknown else "none"
        raise InvalidRequest(f"scope must be one or more of {', '.join(SCOPES)}; got {given}")
    return wanted


def create(engine: Engine, name: str, scopes: Iterable[str], *, now: datetime) -> tuple[ApiKey, str]:
    """A new key called `name`; returns it with the token, which is never shown again.

    InvalidRequest for a bad name or scope, Conflict for a name already used.
    """
    if not _NAME_RE.match(name):
        raise InvalidRequest(
            f"key name {name!r} must be 1 to 100 letters, digits, dots, hyphens or underscores"
        )
    wanted = check_scopes(scopes)
    key_id = secrets.token_hex(8)
    token = f"pub_{key_id}_{secrets.token_urlsafe(32)}"
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(api_keys).values(
                    name=name, key_id=key_id, key_hash=_digest(token), scopes=" ".join(wanted), created_at=now
                )
            )
            row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).one()
    except IntegrityError as exc:
        raise Conflict(f"a key called {name!r} exists already; pick another name (or revoke it)") from exc
    return _key(row), token


def list_keys(engine: Engine) -> list[ApiKey]:
    with engine.connect() as conn:
        return [_key(row) for row in conn.execute(select(api_keys).order_by(api_keys.c.id))]


def revoke(engine: Engine, name: str, *, now: datetime) -> ApiKey:
    """Revoke the key called `name` at once; NotFound if there is none, Conflict if already revoked."""
    with engine.begin() as conn:
        row = conn.execute(select(api_keys).where(api_keys.c.name == name)).first()
        if row is None:
            raise NotFound(f"no API key called {name!r}; `publisher keys list` shows them")
        if row.revoked_at is not None:
            raise Conflict(f"API key {name!r} was revoked already")
        conn.execute(update(api_keys).where(api_keys.c.id == row.id).values(revoked_at=now))
        return _key(conn.execute(select(api_keys).where(api_keys.c.id == row.id)).one())


def authenticate(engine: Engine, token: str) -> ApiKey | None:
    """The live key this token is, or None (malformed, unknown, wrong secret or revoked).

    One database look-up by the public part, then a constant-time comparison of hashes;
    a malformed token is compared against a dummy so it takes the same path.
    """
    match = _TOKEN_RE.match(token)
    key_id = match.group(1) if match else ""
    with engine.connect() as conn:
        row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).first()
    stored = row.key_hash if row is not None else "0" * 64
    same = hmac.compare_digest(stored, _digest(token))
    if row is None or not same or row.revoked_at is not None:
        return None
    return _key(row)


def due_for_touch(key: ApiKey, now: datetime) -> bool:
    """Whether a use should be recorded: at most once a minute per key, so reads stay reads."""
    return key.last_used_at is None or (now - key.last_used_at).total_seconds() >= 60


def touch(engine: Engine, key: ApiKey, *, now: datetime) -> None:
    """Record a use of the key (`keys list` shows it)."""
    with engine.begin() as conn:
        conn.execute(update(api_keys).where(api_keys.c.id == key.id).values(last_used_at=now))
