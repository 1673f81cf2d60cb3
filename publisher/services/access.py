"""Who may use the API, and who hears about events: API keys and outbound webhook endpoints.

A key's token and an endpoint's signing secret are returned once, by the call that makes
them, and never again. Errors: InvalidRequest for a bad name, scope, URL or event;
Conflict for a key name in use; NotFound for an unknown key or endpoint.

A webhook URL must name a host that resolves, and only to public addresses (`fetch`'s
rules): a loopback, private or unresolvable receiver would only fail, quietly, for the
27 hours of retries. A receiver on the owner's own machine or network is registered with
`allow_private=True` (`publisher hooks add --allow-private`), an explicit choice that the
delivery honours for that endpoint alone; only the owner may make it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import httpx
from sqlalchemy import Engine

from publisher.content import fetch
from publisher.errors import InvalidRequest, SourceError
from publisher.store import api_keys, outbox
from publisher.store.api_keys import SCOPES, ApiKey
from publisher.store.outbox import EVENTS, Endpoint, EndpointTrouble

__all__ = [
    "EVENTS",
    "SCOPES",
    "ApiKey",
    "Endpoint",
    "EndpointTrouble",
    "NewEndpoint",
    "NewKey",
    "add_endpoint",
    "create_key",
    "failing_endpoints",
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


def add_endpoint(
    db: Engine, url: str, events: Iterable[str], *, now: datetime, allow_private: bool = False,
    resolve: Callable[[str, int], list[fetch.IPAddress]] = fetch.resolve_host,
) -> NewEndpoint:
    """Send `events` to `url` from now on (https, or http for a receiver on your own network).

    Without `allow_private` (the owner's override), the host must resolve, through
    `resolve`, to public addresses only.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise InvalidRequest(f"{url!r} is not a URL: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidRequest(f"{url!r}: a webhook URL starts with https:// (or http://) and names a host")
    if not allow_private:
        _refuse_private(parsed, resolve)
    endpoint, secret = outbox.add_endpoint(db, url, events, now=now, allow_private=allow_private)
    return NewEndpoint(endpoint=endpoint, secret=secret)


_OVERRIDE = ("if the receiver runs on this machine or your own network, add it with --allow-private "
             "(API: \"allow_private\": true; owners only)")


def _refuse_private(url: httpx.URL, resolve: Callable[[str, int], list[fetch.IPAddress]]) -> None:
    host = url.raw_host.decode("ascii")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            addresses = resolve(host, port)
        except SourceError as exc:
            raise InvalidRequest(
                f"url: {host!r} does not resolve, so no event would ever arrive. Check the address; {_OVERRIDE}."
            ) from exc
    if not addresses:
        raise InvalidRequest(f"url: {host!r} does not resolve. Check the address; {_OVERRIDE}.")
    for address in addresses:
        reason = fetch.check_address(address)
        if reason:
            raise InvalidRequest(
                f"url: {host!r} is {address}, a {reason} address, which webhooks do not reach by default; "
                f"{_OVERRIDE}."
            )


def failing_endpoints(db: Engine) -> list[EndpointTrouble]:
    """Endpoints whose messages are failing: the last error, failures in a row, since when."""
    return outbox.failing_endpoints(db)


def list_endpoints(db: Engine) -> list[Endpoint]:
    return outbox.list_endpoints(db)


def remove_endpoint(db: Engine, endpoint_id: int) -> None:
    outbox.remove_endpoint(db, endpoint_id)
