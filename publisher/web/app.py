"""The HTTP app: feeds and archive from the build output, the subscription pages,
provider webhooks and a health check, in one Starlette application.

    GET  /healthz                      200 {"status": "ok"} once the database answers
    GET  /subscribe   POST /subscribe  the form; double opt-in (a copied form posts here too)
    GET  /subscribe/{topic}    POST    the form with that topic chosen
    POST /subscribe.json  OPTIONS      the JSON door, CORS for `subscribe.allowed_origins` only
    GET  /subscribe.js                 the optional script that answers a copied form inline
    GET  /confirm/{token}      POST    confirm page; its button activates
    GET  /unsubscribe/{token}  POST    page with a button; POST (RFC 8058 one-click) leaves
    GET  /manage/{token}       POST    the reader's own choices: frequency, topics, name, zone
    POST /webhooks/{provider}          postmark, sendgrid, mailgun, ses, resend
    /api/v1/...                        the HTTP API (publisher.api), OpenAPI at /api/v1/openapi.json
    /desk/...                          the author's desk (publisher.web.desk), behind sign-in
    GET  anything else                 a file under build.output (feeds, archive pages)
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import Engine, literal, select
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from publisher.api import create_api
from publisher.api import mount as api_mount
from publisher.config import Config
from publisher.errors import WebhookError
from publisher.services import bounces, issues, site
from publisher.services import pages as site_pages
from publisher.services import redirects as old_addresses
from publisher.services.providers import Provider, make_provider
from publisher.store import open_store, shared_reads
from publisher.web import signatures, webhooks
from publisher.web.desk import Desk, DeskSettings
from publisher.web.limits import BodyLimit
from publisher.web.manage import ManageFlow
from publisher.web.pages import Pages
from publisher.web.routing import IndexedRouter
from publisher.web.static import StaticSite
from publisher.web.subscribe import PAGES, FlowSettings, SubscribeFlow
from publisher.web.tracking import Tracking

__all__ = ["APP_PATHS", "APP_PREFIXES", "LiveApp", "PublisherApp", "create_app"]

log = logging.getLogger(__name__)

APP_PATHS = frozenset({"/subscribe", "/subscribe.json", "/subscribe.js", "/healthz", "/desk"})
APP_PREFIXES = ("/subscribe/", "/confirm/", "/unsubscribe/", "/manage/", "/webhooks/", "/api/", "/desk/", "/o/", "/c/")
"""Paths the app answers itself; every other request is for a file of the build output."""
FORM_LIMIT = 64 * 1024
WEBHOOK_LIMIT = 8 * 1024 * 1024
"""Also the desk's limit: articles and subscriber CSV uploads."""
OWN_LIMIT = frozenset({"/desk/media"})
"""Paths that hold a limit of their own while the body streams in: the desk's picture
upload takes 20 MB (a phone's photo), more than the desk's other forms."""
FETCH_LIMIT = 256 * 1024
API_LARGE = ("/api/v1/imports", "/api/v1/articles")
"""API routes whose bodies may be as large as a webhook batch: imports and article files."""


class PublisherApp(Starlette):
    """A Starlette app whose static files skip the routing and middleware stack.

    Feed polls are most of the traffic and the cheapest answers; sending them past the
    router, the error middleware and the body limit would cost more than answering. The
    app's own paths are routed by their first segment (`IndexedRouter`).
    """

    static: StaticSite
    moved: OldAddresses | None = None

    def __init__(self, *, routes: Sequence[BaseRoute], middleware: Sequence[Middleware]) -> None:
        super().__init__(routes=routes, middleware=middleware)
        self.router = IndexedRouter(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path not in APP_PATHS and not path.startswith(APP_PREFIXES):
                target = await self.moved.target(scope) if self.moved is not None else None
                if target is not None:
                    await RedirectResponse(target, status_code=301)(scope, receive, send)
                    return
                await self.static(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


class OldAddresses:
    """Old addresses of moved-in articles (`publisher.services.redirects`), answered with a 301.

    The table is read again at most every `REFRESH` seconds, so a feed poll costs a dict
    lookup, and a migration's redirects are served within seconds of it.
    """

    REFRESH = 5.0

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.loaded_at: float | None = None
        self.targets: dict[str, str] = {}

    def _load(self) -> dict[str, str]:
        try:
            return old_addresses.old_addresses(self.engine)
        except SQLAlchemyError as exc:
            log.warning("redirects cannot be read: %s", exc)
            return self.targets

    async def target(self, scope: Scope) -> str | None:
        if scope["method"] not in ("GET", "HEAD"):
            return None
        if self.loaded_at is None or time.monotonic() - self.loaded_at > self.REFRESH:
            self.targets = await run_in_threadpool(self._load)
            self.loaded_at = time.monotonic()
        if not self.targets:
            return None
        query = scope.get("query_string", b"").decode("latin-1")
        return self.targets.get(old_addresses.normal_path(scope["path"], query))


class LiveApp:
    """An app that `publisher serve` swaps for one built from new settings while it serves.

    A request already under way finishes on the app it started on; the next one reaches
    the new app. The database engine is shared, so nothing else changes hands.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def swap(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def fetch_sns(url: str) -> bytes:
    """GET an SNS certificate or subscription URL (already checked to be an AWS SNS host).

    AWS refusing (4xx) refuses the call; AWS or the network failing (5xx, no answer)
    raises Unavailable, so that SNS is told to try again later.
    """
    try:
        with httpx.Client(timeout=10.0, follow_redirects=False) as client:
            response = client.get(url)
    except httpx.HTTPError as exc:
        raise webhooks.Unavailable(f"{url} could not be fetched: {exc}") from exc
    if response.status_code >= 500:
        raise webhooks.Unavailable(f"{url} answered {response.status_code}")
    if response.status_code != 200 or len(response.content) > FETCH_LIMIT:
        raise WebhookError(f"{url} answered {response.status_code}: the request is refused")
    return response.content


def create_app(
    config: Config,
    *,
    engine: Engine | None = None,
    provider_factory: Callable[[Config], Provider] | None = None,
    clock: Callable[[], datetime] | None = None,
    fetch: Callable[[str], bytes] | None = None,
) -> Starlette:
    """The app for one publication.

    `engine` defaults to the configured store, `provider_factory` to the configured
    mail provider (called per confirmation mail), `clock` to the system clock and
    `fetch` (SNS certificates and subscription confirmations) to a plain HTTPS GET.
    Raises ConfigError, BuildError (an output folder that would expose the publication's
    own files) or TemplateError at once rather than on the first request.
    """
    output = site.output_folder(config)
    db = engine if engine is not None else open_store(config.store_url)
    now = clock or _utc_now
    secret = issues.send_secret(config)
    pages = Pages(config)
    pages.check(*PAGES)
    flow = SubscribeFlow(
        FlowSettings(
            config=config,
            engine=db,
            secret=secret,
            provider_factory=provider_factory or make_provider,
            clock=now,
        ),
        pages,
    )
    hooks = _Webhooks(config, db, now, fetch or fetch_sns)
    # The reader's page takes the footer's manage links and the unsubscribe page's tokens.
    manage = ManageFlow(config, db, pages, secret, now)
    tracking = Tracking(config, db, secret, now)
    desk = Desk(
        DeskSettings(
            config=config, engine=db, secret=secret, clock=now,
            provider_factory=provider_factory or make_provider,
        )
    )
    # A page that only reads reads through one connection, not one a query.
    desk.auth.page_reads = functools.partial(shared_reads, db)

    health = Health(db)

    async def healthz(request: Request) -> Response:
        if not await health.answers():
            return JSONResponse({"status": "error", "detail": "database"}, status_code=503)
        return JSONResponse({"status": "ok"}, headers={"cache-control": "no-store"})

    app = PublisherApp(
        routes=[
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/subscribe", flow.form, methods=["GET", "HEAD"]),
            Route("/subscribe", flow.subscribe, methods=["POST"]),
            Route("/subscribe.json", flow.subscribe_json, methods=["POST"]),
            Route("/subscribe.json", flow.preflight, methods=["OPTIONS"]),
            Route("/subscribe.js", flow.script, methods=["GET", "HEAD"]),
            Route("/subscribe/{topic}", flow.form, methods=["GET", "HEAD"]),
            Route("/subscribe/{topic}", flow.subscribe, methods=["POST"]),
            # {token:path}: whatever follows the prefix, slashes included, is the token, so
            # every mangled link gets the same "does not work" page.
            Route("/confirm/{token:path}", flow.confirm_page, methods=["GET", "HEAD"]),
            Route("/confirm/{token:path}", flow.confirm, methods=["POST"]),
            Route("/unsubscribe/{token:path}", flow.unsubscribe_page, methods=["GET", "HEAD"]),
            Route("/unsubscribe/{token:path}", flow.unsubscribe, methods=["POST"]),
            Route("/manage/{token:path}", manage.page, methods=["GET", "HEAD"]),
            Route("/manage/{token:path}", manage.save, methods=["POST"]),
            Route("/webhooks/{provider}", hooks.receive, methods=["POST"]),
            Route("/o/{token:path}", tracking.pixel, methods=["GET", "HEAD"]),
            Route("/c/{token:path}", tracking.click, methods=["GET", "HEAD"]),
            api_mount(create_api(config, db, clock=now, provider_factory=provider_factory or make_provider)),
            Route("/desk", _to_desk, methods=["GET", "HEAD"]),
            desk.mount(),
        ],
        middleware=[
            Middleware(
                BodyLimit, limit=FORM_LIMIT, large=("/webhooks/", "/desk/", *API_LARGE),
                large_limit=WEBHOOK_LIMIT, own=OWN_LIMIT,
            )
        ],
    )
    app.static = StaticSite(
        output,
        site_url=config.site_url,
        hubs=tuple(config["feeds.hubs"]),
        icon=site_pages.icon_svg(config),
    )
    app.moved = OldAddresses(db)
    return app


async def _to_desk(request: Request) -> Response:
    return RedirectResponse("/desk/", status_code=308)


def _ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(select(literal(1)))


class Health:
    """Whether the database answers, for /healthz.

    One ping answers every check for `FRESH` seconds after it succeeded, and checks that
    come while a ping runs wait for that one: a load balancer or a monitor polling hard
    costs the database a query a second, and each check no hop to the thread pool (which
    was most of a check's time, and queued behind the desk's pages when the pool was busy).
    A failed ping is never reused: the next check pings again.
    """

    FRESH = 1.0

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.clock = clock
        self.answered_at = float("-inf")
        self.pending: asyncio.Task[bool] | None = None

    async def answers(self) -> bool:
        if self.clock() - self.answered_at < self.FRESH:
            return True
        task = self.pending
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            task = self.pending = asyncio.ensure_future(self._ping())
        return await asyncio.shield(task)

    async def _ping(self) -> bool:
        try:
            await run_in_threadpool(_ping, self.engine)
        except SQLAlchemyError as exc:
            log.error("health check: the database does not answer: %s", exc)
            return False
        self.answered_at = self.clock()
        return True


class _Webhooks:
    def __init__(
        self, config: Config, engine: Engine, clock: Callable[[], datetime],
        fetch: Callable[[str], bytes],
    ) -> None:
        self.config = config
        self.engine = engine
        self.clock = clock
        self.fetch = fetch
        self.certificates: dict[str, bytes] = {}

    async def receive(self, request: Request) -> Response:
        provider = request.path_params["provider"]
        handler = webhooks.HANDLERS.get(provider)
        if handler is None:
            return PlainTextResponse("Unknown provider\n", status_code=404)
        incoming = webhooks.Incoming(
            headers={k.lower(): v for k, v in request.headers.items()},
            query=dict(request.query_params),
            body=await request.body(),
        )
        return await run_in_threadpool(self._handle, provider, handler, incoming)

    def _handle(
        self, provider: str, handler: webhooks.Handler, incoming: webhooks.Incoming
    ) -> Response:
        now = self.clock()
        ctx = webhooks.WebhookContext(
            config=self.config, now=now, fetch=self.fetch, certificates=self.certificates
        )
        try:
            found = handler(incoming, ctx)
        except webhooks.Malformed as exc:
            log.warning("%s webhook: %s", provider, exc)
            return PlainTextResponse(f"{exc}\n", status_code=400)
        except webhooks.Unavailable as exc:
            log.warning("%s webhook: %s", provider, exc)
            return PlainTextResponse(
                "Try again later\n", status_code=503, headers={"retry-after": "60"}
            )
        except WebhookError as exc:
            log.warning("%s webhook: %s", provider, exc)
            if provider == "postmark" and not isinstance(exc, webhooks.NotConfigured):
                return PlainTextResponse(
                    "Unauthorized\n", status_code=401,
                    headers={"www-authenticate": 'Basic realm="publisher webhooks"'},
                )
            return PlainTextResponse("Forbidden\n", status_code=403)
        keep_until = now + timedelta(seconds=signatures.MAX_AGE + signatures.MAX_AHEAD)
        if not bounces.first_use(self.engine, provider, ctx.tokens, now=now, keep_until=keep_until):
            log.warning("%s webhook: a signed call was replayed: refused", provider)
            return PlainTextResponse("Forbidden\n", status_code=403)
        # One bad event (an address no mailbox can have) is skipped, not the batch.
        applied = bounces.suppress_all(self.engine, provider, found, now=now)
        if found:
            log.info("%s webhook: %d address(es) suppressed", provider, applied)
        return JSONResponse({"status": "ok", "suppressed": applied})
