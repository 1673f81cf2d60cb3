"""Errors as RFC 9457 problem details: one stable `type` per class of publisher's errors.

Every answer that is not a success is `application/problem+json` with `type`, `title`,
`status` and a `detail` that says what to change. The `type` names the class of error
and never changes, so a client can branch on it; the `detail` is for people.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.responses import JSONResponse

from publisher import errors

__all__ = ["PREFIX", "PROBLEM_TYPES", "Problem", "for_error", "problem_response", "without_paths"]

PREFIX = "urn:publisher:problem:"
MEDIA_TYPE = "application/problem+json"


@dataclass(frozen=True, slots=True)
class Problem:
    status: int
    slug: str
    title: str

    @property
    def type(self) -> str:
        return PREFIX + self.slug


# Most specific first: the first class an error is an instance of decides.
_BY_CLASS: Sequence[tuple[type[errors.PublisherError], Problem]] = (
    (errors.NotFound, Problem(404, "not-found", "Not found")),
    (errors.InvalidRequest, Problem(400, "invalid-request", "Invalid request")),
    (errors.Conflict, Problem(409, "conflict", "Conflict")),
    (errors.SubscriberError, Problem(422, "invalid-subscriber", "Unusable subscriber data")),
    (errors.ContentError, Problem(422, "invalid-content", "Unusable article")),
    (errors.TokenError, Problem(400, "invalid-token", "Invalid token")),
    (errors.ConfigError, Problem(503, "configuration", "The server's configuration prevents this")),
    (errors.TemplateError, Problem(503, "template", "A template failed")),
    (errors.BuildError, Problem(503, "build", "Output cannot be written")),
    (errors.StoreError, Problem(503, "store", "The database refused")),
    (errors.DeliveryError, Problem(502, "delivery", "The mail provider refused")),
    (errors.WebhookError, Problem(400, "webhook", "Webhook refused")),
    (errors.SourceError, Problem(502, "source", "A remote source failed")),
    (errors.PublisherError, Problem(400, "error", "Error")),
)

# Problems of the API itself, not of an action.
UNAUTHORIZED = Problem(401, "unauthorized", "Unauthorized")
FORBIDDEN = Problem(403, "forbidden", "Forbidden")
RATE_LIMITED = Problem(429, "rate-limited", "Too many requests")
VALIDATION = Problem(422, "validation", "Invalid request body or parameters")
IDEMPOTENCY_REUSED = Problem(409, "idempotency-key-reused", "Idempotency-Key used for another request")
IDEMPOTENCY_RUNNING = Problem(409, "idempotency-key-in-use", "A request with this Idempotency-Key is running")
BAD_IDEMPOTENCY_KEY = Problem(400, "invalid-idempotency-key", "Invalid Idempotency-Key")
NO_ROUTE = Problem(404, "no-route", "No such route")
METHOD = Problem(405, "method-not-allowed", "Method not allowed")
TOO_LARGE = Problem(413, "too-large", "Request body too large")
UNREADABLE_BODY = Problem(400, "unreadable-body", "The request body is not readable JSON")
PRECONDITION_FAILED = Problem(412, "precondition-failed", "The resource changed since the version named")
INTERNAL = Problem(500, "internal", "Internal error")

PROBLEM_TYPES: Mapping[str, Problem] = {
    p.type: p
    for p in (
        *(problem for _, problem in _BY_CLASS),
        UNAUTHORIZED, FORBIDDEN, RATE_LIMITED, VALIDATION, IDEMPOTENCY_REUSED, IDEMPOTENCY_RUNNING,
        BAD_IDEMPOTENCY_KEY, NO_ROUTE, METHOD, TOO_LARGE, UNREADABLE_BODY, PRECONDITION_FAILED, INTERNAL,
    )
}
"""Every problem type the API answers with (the README lists them)."""


# An absolute file path: a slash not after a letter, digit, colon or slash (so not inside a
# URL or a relative path), then folders.
_ABSOLUTE = re.compile(r"(?<![\w:/.~-])(?:/[\w.@+~-]+)+/?")
# A database URL naming a file: sqlite:////srv/data/publisher.db.
_FILE_URL = re.compile(r"(\b[a-z][\w+]*:///)/?(?:[\w.@+~-]+/)*([\w.@+~-]+)")


def without_paths(detail: str, root: Path) -> str:
    """`detail` with the server's own paths taken out: a file in the publication's folder
    named relative to it, any other absolute path by its last part only. Where the server
    keeps its files is nobody's business but the author's (the CLI shows them)."""
    base = str(root.resolve()).rstrip("/") + "/"
    text = detail.replace(base, "").replace(str(root).rstrip("/") + "/", "")
    text = _FILE_URL.sub(r"\1\2", text)
    return _ABSOLUTE.sub(lambda found: found.group(0).rstrip("/").rsplit("/", 1)[-1], text)


def for_error(exc: errors.PublisherError) -> Problem:
    return next(problem for cls, problem in _BY_CLASS if isinstance(exc, cls))


def problem_response(
    problem: Problem, detail: str, *, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"type": problem.type, "title": problem.title, "status": problem.status, "detail": detail, **extra}
    return JSONResponse(body, status_code=problem.status, headers=dict(headers or {}), media_type=MEDIA_TYPE)
