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
    POST   /articles/{slug}/schedule
    GET    /issues    POST /issues    GET /issues/{id}     GET /issues/{id}/failures
    POST   /issues/{id}/test | send | schedule | cancel
    GET    /schedules                POST /schedules/{id}/cancel
    GET    /stats/subscribers        GET /stats/issues/{id}  GET /stats/issues/{id}/pace
    GET    /sequences   GET /sequences/{name}   GET /sequences/{name}/readers   (read-only)

Errors are RFC 9457 problem details (`api.problems`); every POST honours Idempotency-Key
(`api.idempotency`); keys, scopes and the rate limit are in `api.auth`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from publisher import __version__
from publisher.api import content, idempotency, problems, segments, sequences, stats, subscribers
from publisher.api.auth import ApiRefusal, Authenticator
from publisher.api.context import ApiContext
from publisher.api.idempotency import IdempotencyKeys
from publisher.config import Config
from publisher.errors import PublisherError
from publisher.services.access import EVENTS
from publisher.services.providers import Provider

__all__ = ["PREFIX", "create_api", "mount"]

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
    for module in (subscribers, content, stats, segments, sequences):
        app.include_router(module.router(ctx))
    _handle_errors(app, root=config.root)
    app.openapi = _openapi(app)  # type: ignore[method-assign]
    return IdempotencyKeys(_Head(app), db=db, clock=clock)


def mount(api: ASGIApp) -> Mount:
    """The route that hands every path under PREFIX to `api`, control characters
    included: Starlette's own pattern stops at a newline ("%0A" in a slug), and the path
    would fall through to a plain-text 404 instead of the API's problem answer."""
    route = Mount(PREFIX, app=api)
    route.path_regex = re.compile(route.path_regex.pattern, re.DOTALL)
    return route


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """The methods the request's path takes, as the OpenAPI document has them (and HEAD
    wherever GET is): what `Allow` lists. Empty for a path the API does not have."""
    root = str(scope.get("root_path", ""))
    path = str(scope["path"])
    path = path[len(root):] if root and path.startswith(root) else path
    found = {"GET"} if path == app.openapi_url else set()
    for pattern, methods in _method_table(app):
        if pattern.fullmatch(path):
            found |= methods
    if "GET" in found:
        found.add("HEAD")
    return sorted(found)


def _method_table(app: FastAPI) -> list[tuple[re.Pattern[str], frozenset[str]]]:
    table: list[tuple[re.Pattern[str], frozenset[str]]] | None = getattr(app.state, "method_table", None)
    if table is None:
        table = [
            (
                re.compile("".join(
                    "[^/]+" if part.startswith("{") else re.escape(part)
                    for part in re.split(r"(\{[^}]+\})", template)
                )),
                frozenset(method.upper() for method in operations),
            )
            for template, operations in app.openapi()["paths"].items()
        ]
        app.state.method_table = table
    return table


class _Head:
    """HEAD answers as GET would, without the body, wherever GET is allowed (RFC 9110 9.3.2)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD" or "GET" not in allowed_methods(self.app, scope):
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


def _handle_errors(app: FastAPI, *, root: Path) -> None:
    @app.exception_handler(PublisherError)
    async def publisher_error(request: Request, exc: PublisherError) -> Response:
        return problems.problem_response(problems.for_error(exc), problems.without_paths(str(exc), root))

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
        problem = {
            400: problems.UNREADABLE_BODY, 404: problems.NO_ROUTE, 405: problems.METHOD, 413: problems.TOO_LARGE,
        }.get(
            exc.status_code, problems.Problem(exc.status_code, "http", "HTTP error")
        )
        headers = dict(exc.headers or {})
        detail = str(exc.detail)
        if exc.status_code == 405:
            allowed = allowed_methods(app, request.scope)
            headers = {"allow": ", ".join(allowed)}
            detail = f"{request.method} is not allowed here; this path takes {', '.join(allowed)}"
        elif exc.status_code == 404:
            detail = "no such route: see the OpenAPI document at /api/v1/openapi.json"
        return problems.problem_response(problem, detail, headers=headers)

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
    ("/articles/{slug}/schedule", "post", "201"): ("schedule_id", "$response.body#/id", (
        ("/schedules/{schedule_id}/cancel", "post"),
    )),
    ("/articles", "post", "201"): ("slug", "$response.body#/slug", (
        ("/articles/{slug}", "get"), ("/articles/{slug}", "put"), ("/articles/{slug}/preview", "get"),
        ("/articles/{slug}/schedule", "post"),
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


def _declare_idempotency_key(schema: dict[str, Any]) -> None:
    """Every POST honours Idempotency-Key (`api.idempotency`): say so where clients look."""
    for operations in schema["paths"].values():
        post = operations.get("post")
        if post is not None:
            post.setdefault("parameters", []).append({
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Any string of your own (1 to 255 visible ASCII characters, inner spaces allowed): "
                "a retry with the same key and body gets the first answer, marked `Idempotent-Replayed: true`; "
                "the same key with another body gets 409. Kept a day.",
                "schema": {"type": "string", "minLength": 1, "maxLength": idempotency.MAX_KEY,
                           "pattern": idempotency.KEY_PATTERN},
            })


_EVENT_DATA: dict[str, dict[str, Any]] = {
    "subscriber.erased": {
        "type": "object", "required": ["id"], "additionalProperties": False,
        "properties": {"id": {"type": "integer", "description": "The erased subscriber's id; never given again."}},
    },
    "subscriber.updated": {
        "type": "object", "required": ["id", "changed"],
        "properties": {
            "id": {"type": "integer"}, "email": {"type": "string"}, "name": {"type": "string"},
            "status": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
            "timezone": {"type": ["string", "null"]},
            "changed": {"type": "array", "items": {"type": "string"}, "description": "The fields that changed."},
        },
    },
}


def _webhooks() -> dict[str, Any]:
    """The outbound events (`publisher hooks add URL --event ...`), as OpenAPI 3.1 webhooks."""
    return {
        event: {
            "post": {
                "operationId": "webhook_" + event.replace(".", "_"),
                "summary": f"{event}, signed per Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature)",
                "requestBody": {"content": {"application/json": {"schema": {
                    "type": "object", "required": ["type", "timestamp", "data"],
                    "properties": {
                        "type": {"const": event},
                        "timestamp": {"type": "string", "format": "date-time"},
                        "data": _EVENT_DATA.get(event, {"type": "object"}),
                    },
                }}}},
                "responses": {"200": {"description": "Any 2xx: received; anything else is retried."}},
            }
        }
        for event in EVENTS
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
        _declare_idempotency_key(schema)
        schema["webhooks"] = _webhooks()
        app.openapi_schema = schema
        return schema

    return generate
