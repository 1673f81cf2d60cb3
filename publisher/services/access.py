"""Who may use the API, and who hears about events: API keys and outbound webhook endpoints.

A key's token and an endpoint's signing secret are returned once, by the call that makes
them, and never again. Errors: InvalidRequest for a bad name, scope, URL or event;
Conflict for a key name in use; NotFound for an unknown key or endpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import httpx
from sqlalchemy import Engine

from publisher.errors import InvalidRequest
from publisher.store import api_keys, outbox
from publisher.store.api_keys import SCOPES, ApiKey
from publisher.store.outbox import EVENTS, Endpoint

__all__ = [
    "EVENTS",
    "SCOPES",
    "ApiKey",
    "Endpoint",
    "NewEndpoint",
    "NewKey",
    "add_endpoint",
    "create_key",
    "list_endpoints",
    "list_keys",
    "remove_endpoint",
    "revoke_key",
]


@dataclass(frozen=True, slots=True)
class NewKey:
    key: ApiKey
    token: str
    """Shown once: only its hash is kept."""


@dataclass(frozen=True, slots=True)
class NewEndpoint:
    endpoint: Endpoint
    secret: str
    """The signing secret (whsec_...), shown once, for the receiver's Standard Webhooks check."""


def create_key(db: Engine, name: str, scopes: Iterable[str], *, now: datetime) -> NewKey:
    key, token = api_keys.create(db, name, scopes, now=now)
    return NewKey(key=key, token=token)


def list_keys(db: Engine) -> list[ApiKey]:
    return api_keys.list_keys(db)


def revoke_key(db: Engine, name: str, *, now: datetime) -> ApiKey:
    """Revoke at once: the next request with this key is refused."""
    return api_keys.revoke(db, name, now=now)


def add_endpoint(db: Engine, url: str, events: Iterable[str], *, now: datetime) -> NewEndpoint:
    """Send `events` to `url` from now on (https, or http for a receiver on your own network)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise InvalidRequest(f"{url!r} is not a URL: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidRequest(f"{url!r}: a webhook URL starts with https:// (or http://) and names a host")
    endpoint, secret = outbox.add_endpoint(db, url, events, now=now)
    return NewEndpoint(endpoint=endpoint, secret=secret)


def list_endpoints(db: Engine) -> list[Endpoint]:
    return outbox.list_endpoints(db)


def remove_endpoint(db: Engine, endpoint_id: int) -> None:
    outbox.remove_endpoint(db, endpoint_id)
