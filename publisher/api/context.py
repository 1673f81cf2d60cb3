"""What every route of the API shares: the config, the store, the clock, the key checks
and the conditional writes (ETag, If-Match)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Header
from pydantic import StringConstraints
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy import Engine

from publisher.api import problems
from publisher.api.auth import ApiRefusal, Authenticator
from publisher.api.models import Problem
from publisher.config import Config
from publisher.services.providers import Provider

__all__ = ["ApiContext", "IfMatch", "etag", "matches", "responses", "stale"]


@dataclass(frozen=True, slots=True)
class ApiContext:
    config: Config
    db: Engine
    clock: Callable[[], datetime]
    auth: Authenticator
    provider_factory: Callable[[Config], Provider]


_DESCRIPTIONS = {
    400: "The request cannot be done as asked, or its body is not JSON (see `detail`).",
    401: "No API key, or one that is malformed, unknown or revoked.",
    403: "The API key lacks the route's scope.",
    404: "No such resource.",
    409: "A conflict with what exists, or an Idempotency-Key reused or still running.",
    412: "If-Match named a version that is no longer the current one: read it again.",
    413: "The request body is too large.",
    422: "The body or a parameter is invalid, or the data cannot be used (see `detail`).",
    429: "This API key's rate limit was reached; see Retry-After.",
    502: "The mail provider or a remote server refused.",
    503: "The server's configuration, templates or database prevent this.",
}


def responses(*codes: int, post: bool = False) -> dict[int | str, dict[str, Any]]:
    """The problem answers a route documents, besides the ones every route has."""
    every = {400, 401, 403, 422, 429, 503}
    if post:
        every |= {409, 413}
    return {
        code: {"model": Problem, "description": _DESCRIPTIONS[code]}
        for code in sorted(every | set(codes))
    }


IfMatch = Annotated[
    Annotated[str, StringConstraints(max_length=2000)] | SkipJsonSchema[None],
    Header(
        description="The ETag of the version this write starts from (or `*`): a resource changed since is "
        "left as it is and the answer is 412 (so is anything that names no current version).",
    ),
]


def etag(version: str) -> str:
    """A strong entity tag for `version` (a fingerprint of the resource)."""
    return f'"{version}"'


def matches(if_match: str, current: str) -> bool:
    """Whether an If-Match value names `current` (RFC 9110: `*`, or a list of tags; a weak
    tag never matches, since If-Match compares strongly)."""
    if if_match.strip() == "*":
        return True
    return any(tag.strip() == current for tag in if_match.split(","))


def stale(if_match: str, detail: str = "") -> ApiRefusal:
    """The 412 for a write whose If-Match is no longer the resource's ETag."""
    return ApiRefusal(
        problems.PRECONDITION_FAILED,
        detail or f"If-Match {if_match[:100]!r} is not the current version: GET it again, then retry with its ETag",
    )
