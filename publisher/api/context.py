"""What every route of the API shares: the config, the store, the clock and the key checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from publisher.api.auth import Authenticator
from publisher.api.models import Problem
from publisher.config import Config
from publisher.delivery.base import Provider

__all__ = ["ApiContext", "responses"]


@dataclass(frozen=True, slots=True)
class ApiContext:
    config: Config
    db: Engine
    clock: Callable[[], datetime]
    auth: Authenticator
    provider_factory: Callable[[Config], Provider]


_DESCRIPTIONS = {
    400: "The request cannot be done as asked (see `detail`).",
    401: "No API key, or one that is malformed, unknown or revoked.",
    403: "The API key lacks the route's scope.",
    404: "No such resource.",
    409: "A conflict with what exists, or an Idempotency-Key reused or still running.",
    413: "The request body is too large.",
    422: "The body or a parameter is invalid, or the data cannot be used (see `detail`).",
    429: "This API key's rate limit was reached; see Retry-After.",
    502: "The mail provider or a remote server refused.",
    503: "The server's configuration, templates or database prevent this.",
}


def responses(*codes: int, post: bool = False) -> dict[int | str, dict[str, Any]]:
    """The problem answers a route documents, besides the ones every route has."""
    every = {401, 403, 422, 429, 503}
    if post:
        every |= {400, 409, 413}
    return {
        code: {"model": Problem, "description": _DESCRIPTIONS[code]}
        for code in sorted(every | set(codes))
    }
