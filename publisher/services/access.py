"""Who may use the API, and who hears about events: API keys and outbound webhook endpoints.

A key's token and an endpoint's signing secret are returned once, by the call that makes
them, and never again. Errors: InvalidRequest for a bad name, scope, URL or event;
Conflict for a key name in use; NotFound for an unknown key or endpoint.

A webhook URL must name a host that resolves, and only to public addresses (`fetch`'s
rules): a loopback, private or unresolvable receiver would only fail, quietly, for the
27 hours of retries. A receiver on the owner's own machine or network is registered with
`allow_private=True` (`publisher hooks add --allow-private`), an explicit choice that the
delivery honours for that endpoint alone; only the owner may make it.

`authenticate` finds the live key a request's token names (None for a revoked or unknown
one); a key's last use is recorded at most once a minute (`due_for_touch`, `touch`), so
that reads stay reads. `claim_request`, `finish_request` and `release_request` keep the
first answer to each `Idempotency-Key`, per API key, for a day.
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
from publisher.store import api_keys, budgets, idempotency, outbox
from publisher.store.api_keys import SCOPES, ApiKey
from publisher.store.idempotency import Claimed, Replay, Running
from publisher.store.outbox import EVENTS, Endpoint, EndpointTrouble

__all__ = [
    "EVENTS",
    "SCOPES",
    "ApiKey",
    "Claimed",
    "Endpoint",
    "EndpointTrouble",
    "NewEndpoint",
    "NewKey",
    "Replay",
    "Running",
    "add_endpoint",
    "authenticate",
    "claim_request",
    "create_key",
    "due_for_touch",
    "failing_endpoints",
    "finish_request",
    "list_endpoints",
    "list_keys",
    "release_request",
    "remove_endpoint",
    "revoke_key",
    "touch",
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


def authenticate(db: Engine, token: str) -> ApiKey | None:
    """The live key `token` names; None for a revoked, unknown or malformed one."""
    return api_keys.authenticate(db, token)


def due_for_touch(key: ApiKey, now: datetime) -> bool:
    """Whether this use of `key` should be recorded (at most once a minute)."""
    return api_keys.due_for_touch(key, now)


def touch(db: Engine, key: ApiKey, *, now: datetime) -> None:
    api_keys.touch(db, key, now=now)


def take_requests(db: Engine, key_id: str, wanted: int, *, per: float, limit: int, now: float) -> tuple[int, float]:
    """Take up to `wanted` of key `key_id`'s `limit` requests per `per` seconds, shared by every process.

    Returns how many were granted and, when none, the seconds until the next one.
    """
    return budgets.take(db, f"api key {key_id}"[:64], wanted, rate=limit / per, capacity=float(limit), now=now)


def claim_request(
    db: Engine, key_id: int, idempotency_key: str, fingerprint: str, *, now: datetime
) -> Claimed | Replay | Running:
    """The first answer kept for this Idempotency-Key (Replay), one still running (Running),
    or the claim to run it now and keep its answer (Claimed)."""
    return idempotency.claim(db, key_id, idempotency_key, fingerprint, now=now)


def finish_request(db: Engine, record_id: int, *, status: int, content_type: str, body: str) -> None:
    idempotency.finish(db, record_id, status=status, content_type=content_type, body=body)


def release_request(db: Engine, record_id: int) -> None:
    """Give a claim back, keeping no answer: a retry runs again."""
    idempotency.release(db, record_id)


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
