"""The HTTP API, `/api/v1`: what the CLI does, for other programs, as JSON.

A FastAPI app mounted in the publisher's Starlette app. Each route checks the API key's
scope, calls one function of `publisher.services` and turns its dataclasses into the
models of `api.models`; it holds no rule of its own. The OpenAPI 3.1 document at
`/api/v1/openapi.json` is generated from these routes and is the reference.

    GET    /subscribers              list (status, tag, created_since, search; cursor pages)
    POST   /subscribers              add (double opt-in, or admin + consent note)
    GET    /subscribers/{id}         one subscriber          PATCH  name, tags, timezone
    POST   /subscribers/{id}/unsubscribe                     DELETE erase (GDPR)
    GET    /subscribers/{id}/export  everything kept about them (GDPR access)
    GET    /tags                     tags with counts
    POST   /imports   GET /imports/{id}                     bulk import as a job
    GET    /articles  POST /articles  GET|PUT /articles/{slug}  GET /articles/{slug}/preview
    GET    /issues    POST /issues    GET /issues/{id}     GET /issues/{id}/failures
    POST   /issues/{id}/test | send | schedule | cancel
    GET    /schedules                POST /schedules/{id}/cancel
    GET    /stats/subscribers        GET /stats/issues/{id}  GET /stats/issues/{id}/pace

Errors are RFC 9457 problem details (`api.problems`); every POST honours Idempotency-Key
(`api.idempotency`); keys, scopes and the rate limit are in `api.auth`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp

from publisher import __version__
from publisher.api import content, problems, stats, subscribers
from publisher.api.auth import ApiRefusal, Authenticator
from publisher.api.context import ApiContext
from publisher.api.idempotency import IdempotencyKeys
from publisher.config import Config
from publisher.delivery.base import Provider
from publisher.errors import PublisherError

__all__ = ["PREFIX", "create_api"]

log = logging.getLogger(__name__)

PREFIX = "/api/v1"

DESCRIPTION = """\
Everything the `publisher` command line does with subscribers, issues, schedules and
reports, for other programs. Authenticate with an API key from `publisher keys create
NAME --scope ...` sent as `Authorization: Bearer KEY`. Errors are RFC 9457
`application/problem+json` with a stable `type` (`urn:publisher:problem:...`). Every POST
accepts an `Idempotency-Key` header: a retry with the same key and body gets the first
answer; the same key with another body gets 409.
"""


def create_api(
    config: Config,
    db: Engine,
    *,
    clock: Callable[[], datetime],
    provider_factory: Callable[[Config], Provider],
) -> ASGIApp:
    """The API app, to be mounted at PREFIX."""
    auth = Authenticator(db, per_minute=int(config["api.rate_limit"]), clock=clock)
    ctx = ApiContext(config=config, db=db, clock=clock, auth=auth, provider_factory=provider_factory)
    app = FastAPI(
        title=f"{config['publication.title']} API",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    for module in (subscribers, content, stats):
        app.include_router(module.router(ctx))
    _handle_errors(app)
    app.openapi = _openapi(app)  # type: ignore[method-assign]
    return IdempotencyKeys(app, db=db, clock=clock)


def _handle_errors(app: FastAPI) -> None:
    @app.exception_handler(PublisherError)
    async def publisher_error(request: Request, exc: PublisherError) -> Response:
        return problems.problem_response(problems.for_error(exc), str(exc))

    @app.exception_handler(ApiRefusal)
    async def refused(request: Request, exc: ApiRefusal) -> Response:
        extra = {"errors": exc.errors} if exc.errors is not None else {}
        return problems.problem_response(exc.problem, exc.detail, headers=exc.headers, **extra)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        found = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in found[:5])
        detail = where or "invalid request"
        return problems.problem_response(problems.VALIDATION, detail, errors=jsonable_encoder(found))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        problem = {404: problems.NO_ROUTE, 405: problems.METHOD, 413: problems.TOO_LARGE}.get(
            exc.status_code, problems.Problem(exc.status_code, "http", "HTTP error")
        )
        return problems.problem_response(problem, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:
        log.exception("API %s %s failed", request.method, request.url.path)
        return problems.problem_response(problems.INTERNAL, "the server failed; the error is in its log")


_SUBSCRIBER = "/subscribers/{subscriber_id}"
_ISSUE = "/issues/{issue_id}"
_LINKS: dict[tuple[str, str, str], tuple[str, str, tuple[tuple[str, str], ...]]] = {
    ("/subscribers", "post", "201"): ("subscriber_id", "$response.body#/id", (
        (_SUBSCRIBER, "get"), (_SUBSCRIBER, "patch"), (_SUBSCRIBER + "/unsubscribe", "post"),
        (_SUBSCRIBER + "/export", "get"), (_SUBSCRIBER, "delete"),
    )),
    ("/issues", "post", "201"): ("issue_id", "$response.body#/id", (
        (_ISSUE, "get"), (_ISSUE + "/failures", "get"), (_ISSUE + "/test", "post"), (_ISSUE + "/schedule", "post"),
        (_ISSUE + "/send", "post"), (_ISSUE + "/cancel", "post"), ("/stats/issues/{issue_id}", "get"),
        ("/stats/issues/{issue_id}/pace", "get"),
    )),
    ("/imports", "post", "202"): ("job_id", "$response.body#/id", (("/imports/{job_id}", "get"),)),
    (_ISSUE + "/schedule", "post", "201"): ("schedule_id", "$response.body#/id", (
        ("/schedules/{schedule_id}/cancel", "post"),
    )),
    ("/articles", "post", "201"): ("slug", "$response.body#/slug", (
        ("/articles/{slug}", "get"), ("/articles/{slug}", "put"), ("/articles/{slug}/preview", "get"),
    )),
}
"""OpenAPI links: where the id a POST answers with can be used next (clients and fuzzers follow them)."""


def _add_links(schema: dict[str, Any]) -> None:
    paths = schema["paths"]
    for (path, method, status), (parameter, expression, targets) in _LINKS.items():
        answer = paths[path][method]["responses"][status]
        answer["links"] = {
            paths[target][verb]["operationId"]: {
                "operationId": paths[target][verb]["operationId"],
                "parameters": {parameter: expression},
            }
            for target, verb in targets
        }


def _openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """FastAPI's document, with error answers declared as application/problem+json and links."""
    original = app.openapi

    def generate() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = original()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for code, answer in operation.get("responses", {}).items():
                    found = answer.get("content", {})
                    if code.isdigit() and int(code) >= 400 and "application/json" in found:
                        found[problems.MEDIA_TYPE] = found.pop("application/json")
        _add_links(schema)
        app.openapi_schema = schema
        return schema

    return generate
