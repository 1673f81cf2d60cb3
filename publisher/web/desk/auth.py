"""Who is asking: the session cookie, the role a route needs, and CSRF on every form.

Every desk route is wrapped by `guarded`: without a live session a GET is redirected to
the sign-in page (which brings the reader back afterwards) and anything else answers 401
with a link there; a role below the route's answers 403; a POST whose `csrf` field is
not the session's token answers 403 and changes nothing. An account that
`desk.require_two_factor` says must have a second factor, and has none, reaches only
the routes that set one up (and signing out): every other GET is redirected to its
account page, every other POST answers 403.

Every POST under /desk, the sign-in included, must also come from the desk's own origin:
its `Origin` header (or, without one, the origin of its `Referer`) must be the public
URL's (`[server] public_url`, else `publication.url`) or the one the request itself was
addressed to (its Host, over https when it came so). A foreign origin, `null` included,
answers 403 with a page that says so; a request with neither header (some browsers,
scripts) is let through on its CSRF token alone. `SameOrigin` does this around the whole
desk mount, so a route that reads its own form (an upload) is covered as well.

The session cookie is HttpOnly, SameSite=Lax and scoped to /desk. It, the sign-in
form's cookie and the device cookie are Secure whenever the public URL is https or the
request came over https (directly, or as a proxy in `[server] trusted_proxies` says),
with one exception: a request made on the server itself, straight to a loopback address
over plain http (a loopback peer, a loopback Host, no proxy headers), where a Secure
cookie would not come back.

The sign-in form has no session yet, so it carries a token that must match a cookie set
with the form (double submit) as well as the origin check: another site cannot sign a
visitor into an account of its choosing. A browser that signed in keeps a device cookie
(scoped to the sign-in page) by which `accounts.sign_in` knows it next time.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hmac
import html
import ipaddress
import secrets
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlsplit

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from publisher import accounts
from publisher.accounts import DEVICE_LIFETIME, DeskSession, Role, SessionPolicy
from publisher.web.desk.context import DeskContext
from publisher.web.desk.render import DESK_HEADERS
from publisher.web.limits import Proxies

__all__ = [
    "CODE_COOKIE",
    "DEVICE_COOKIE",
    "LOGIN_COOKIE",
    "OIDC_COOKIE",
    "PAGE_THREADS",
    "SESSION_COOKIE",
    "SETUP_PATH",
    "SQLITE_PAGE_THREADS",
    "Asked",
    "DeskAuth",
    "Handler",
    "ReadHandler",
    "SameOrigin",
    "foreign_message",
    "refuse",
    "safe_next",
]

SESSION_COOKIE = "desk_session"
LOGIN_COOKIE = "desk_login"
DEVICE_COOKIE = "desk_device"
CODE_COOKIE = "desk_code"
OIDC_COOKIE = "desk_oidc"
COOKIE_PATH = "/desk"
LOGIN_PATH = "/desk/login"
SETUP_PATH = "/desk/account"
_DEFAULT_PORTS = {"http": "80", "https": "443"}
MAX_FIELDS = 200
MAX_UPLOAD = 8 * 1024 * 1024
PAGE_THREADS = 15
"""Threads that make the pages of `DeskAuth.reading` on a database server (PostgreSQL): a
page there waits on a dozen round trips, and the other pages' work fills those waits."""
SQLITE_PAGE_THREADS = 3
"""The same on SQLite, where a page is Python's work nearly throughout (its queries take
a few hundredths of a millisecond each) and so holds the GIL: more threads than that only
queue for it, and the event loop, which reads the requests and writes the answers, waits
behind them up to a switch interval (5 ms) a turn: the slowest answers under many clients
at once were the ones that waited so."""
# The event loop's executor, not anyio's thread pool behind `run_in_threadpool`: its
# capacity limiter, cancel scopes and task lookups cost a page more than its own query.
_PAGE_THREADS = ThreadPoolExecutor(max_workers=PAGE_THREADS, thread_name_prefix="desk-page")
_SQLITE_PAGE_THREADS = ThreadPoolExecutor(max_workers=SQLITE_PAGE_THREADS, thread_name_prefix="desk-page")


@dataclass(frozen=True, slots=True)
class Asked:
    """One request to a desk page: the request, its session, its form fields and files,
    and the page context built from them once (`desk`)."""

    request: Request
    session: DeskSession
    form: dict[str, str]
    files: dict[str, UploadFile]
    now: datetime
    desk: DeskContext

    def field(self, name: str, default: str = "") -> str:
        return self.form.get(name, default)


Handler = Callable[[Asked], Awaitable[Response]]
ReadHandler = Callable[[Asked], Response]
"""A page that only reads, run in a worker thread whole (`DeskAuth.reading`)."""


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a desk path on this site, never another site."""
    if not value or not value.startswith("/desk") or value.startswith("//"):
        return "/desk/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or "\\" in value:
        return "/desk/"
    return value


def _origin(scheme: str, netloc: str) -> str:
    """`scheme://host[:port]`, lower-case, without the scheme's default port."""
    scheme, netloc = scheme.lower(), netloc.lower().rstrip(".")
    host, sep, port = netloc.rpartition(":")
    if sep and "]" not in port and port == _DEFAULT_PORTS.get(scheme):
        netloc = host
    return f"{scheme}://{netloc}"


def _origin_of(url: str) -> str:
    """The origin of an `Origin` or `Referer` value; "null" for anything that has none."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return "null"
    if parts.scheme not in _DEFAULT_PORTS or not parts.netloc:
        return "null"
    return _origin(parts.scheme, parts.netloc.rpartition("@")[2])


def _loopback(host: str) -> bool:
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1:].split("]", 1)[0]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class DeskAuth:
    def __init__(
        self, engine: Engine, policy: SessionPolicy, clock: Callable[[], datetime],
        proxies: Proxies | None = None, *, public_url: str = "", publication: str = "", locale: str = "en",
    ) -> None:
        self.engine = engine
        self.publication = publication
        self.locale = locale
        self.policy = policy
        self.clock = clock
        self.proxies = proxies or Proxies(())
        public = urlsplit(public_url)
        self.public_https = public.scheme == "https"
        self.public_origin = _origin(public.scheme, public.netloc) if public.netloc else ""
        self.page_reads: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext
        """What a `reading` page is made inside: the app sets the store's `shared_reads`,
        so that the page's session and data are read through one connection."""

    def context_for(self, request: Request, session: DeskSession | None, *, csrf: str = "") -> DeskContext:
        """The page context of one request (`csrf` is the sign-in form's token, before a session)."""
        return DeskContext.build(request, session, publication=self.publication, locale=self.locale, csrf=csrf)

    def client(self, request: HTTPConnection) -> str:
        """The client a sign-in is counted against (`Proxies.client`)."""
        return self.proxies.client(request)

    def secure(self, request: HTTPConnection) -> bool:
        """Whether cookies set in answer to `request` are Secure (see the module's docstring)."""
        if self.proxies.https(request):
            return True
        if not self.public_https:
            return False
        peer = self.proxies.peer(request)
        on_this_machine = (
            peer is not None and _loopback(peer) and _loopback(request.headers.get("host", ""))
            and not self.proxies.forwarded(request)
        )
        return not on_this_machine

    def foreign_origin(self, request: HTTPConnection) -> str | None:
        """The origin a POST came from when it is not the desk's own, else None (also
        when the request names no origin at all)."""
        origin = request.headers.get("origin")
        if origin is None:
            referer = request.headers.get("referer")
            if not referer:
                return None
            origin = referer
        seen = _origin_of(origin)
        scheme = "https" if self.proxies.https(request) else "http"
        own = {self.public_origin, _origin(scheme, request.headers.get("host", ""))}
        return None if seen in own else seen[:200]

    async def session_of(self, request: Request) -> DeskSession | None:
        token = request.cookies.get(SESSION_COOKIE, "")
        if not token:
            return None
        return await run_in_threadpool(self.read_session, request)

    def read_session(self, request: Request) -> DeskSession | None:
        """`session_of` in the calling thread (a worker thread: it reads the database)."""
        token = request.cookies.get(SESSION_COOKIE, "")
        if not token:
            return None
        return accounts.current_session(self.engine, token, now=self.clock(), policy=self.policy)

    def set_session_cookie(self, response: Response, request: Request, token: str) -> None:
        response.set_cookie(
            SESSION_COOKIE, token, max_age=int(self.policy.lifetime.total_seconds()),
            path=COOKIE_PATH, httponly=True, samesite="lax", secure=self.secure(request),
        )
        response.delete_cookie(LOGIN_COOKIE, path=COOKIE_PATH, secure=self.secure(request))

    def set_device_cookie(self, response: Response, request: Request, device: str) -> None:
        response.set_cookie(
            DEVICE_COOKIE, device, max_age=int(DEVICE_LIFETIME.total_seconds()), path=LOGIN_PATH,
            httponly=True, samesite="lax", secure=self.secure(request),
        )

    def set_step_cookie(self, response: Response, request: Request, name: str, value: str, seconds: int) -> None:
        """A half-done sign-in's cookie (`CODE_COOKIE`, `OIDC_COOKIE`), seen only by the
        sign-in pages."""
        response.set_cookie(
            name, value, max_age=seconds, path=LOGIN_PATH, httponly=True, samesite="lax",
            secure=self.secure(request),
        )

    def clear_step_cookie(self, response: Response, request: Request, name: str) -> None:
        response.delete_cookie(name, path=LOGIN_PATH, httponly=True, samesite="lax", secure=self.secure(request))

    def clear_session_cookie(self, response: Response, request: Request) -> None:
        response.delete_cookie(
            SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="lax", secure=self.secure(request)
        )

    @staticmethod
    def login_token(request: Request) -> str:
        """The sign-in form's token: the visitor's cookie when it looks like one, else new."""
        token = request.cookies.get(LOGIN_COOKIE, "")
        if len(token) < 20 or len(token) > 100:
            token = secrets.token_urlsafe(24)
        return token

    def set_login_cookie(self, response: Response, request: Request, token: str) -> None:
        response.set_cookie(
            LOGIN_COOKIE, token, max_age=3600, path=COOKIE_PATH, httponly=True,
            samesite="lax", secure=self.secure(request),
        )

    def guarded(
        self, handler: Handler, role: Role, *, before_second_factor: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        """`handler` behind a session, the role `role` and, for POST, the CSRF token; and,
        unless it is one of the routes that set a second factor up (`before_second_factor`),
        behind the second factor the account must have."""

        async def endpoint(request: Request) -> Response:
            session = await self.session_of(request)
            refused = self._refused(request, session, role, before_second_factor=before_second_factor)
            if refused is not None:
                return refused
            assert session is not None  # refused otherwise
            if request.method != "POST":
                return await handler(Asked(request, session, {}, {}, self.clock(), self.context_for(request, session)))
            try:
                data = await request.form(max_files=2, max_fields=MAX_FIELDS, max_part_size=MAX_UPLOAD)
            except Exception:
                return _plain(400, "The form could not be read. Go back and try again.")
            try:
                form, files = _split(data)
                if not hmac.compare_digest(form.get("csrf", "").encode(), session.csrf.encode()):
                    return _plain(
                        403, "This form is out of date or did not come from the desk. "
                        "Go back, reload the page and try again."
                    )
                return await handler(
                    Asked(request, session, form, files, self.clock(), self.context_for(request, session))
                )
            finally:
                await data.close()

        return endpoint

    def reading(self, handler: ReadHandler, role: Role) -> Callable[[Request], Awaitable[Response]]:
        """A page that only reads (GET, HEAD) behind `guarded`'s session, role and second
        factor, made whole in one hop to the thread pool: the session is read, the page's
        data read and its template rendered in the same worker thread. A hop for the
        session and another for the page cost a busy desk more than the session's query."""

        def whole(request: Request) -> Response:
            with self.page_reads():
                session = self.read_session(request)
                refused = self._refused(request, session, role, before_second_factor=False)
                if refused is not None:
                    return refused
                assert session is not None  # refused otherwise
                return handler(Asked(request, session, {}, {}, self.clock(), self.context_for(request, session)))

        on_sqlite = self.engine.dialect.name == "sqlite"

        async def endpoint(request: Request) -> Response:
            context = contextvars.copy_context()
            threads = _SQLITE_PAGE_THREADS if on_sqlite else _PAGE_THREADS
            return await asyncio.get_running_loop().run_in_executor(threads, context.run, whole, request)

        return endpoint

    def _refused(
        self, request: Request, session: DeskSession | None, role: Role, *, before_second_factor: bool
    ) -> Response | None:
        """The answer for a request that may not go on (no session, too low a role, a
        second factor still to set up), or None when it may."""
        if session is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            if request.method in ("GET", "HEAD"):
                return RedirectResponse(f"/desk/login?next={quote(target, safe='/')}", status_code=303)
            return _plain(401, "Your session has ended. Sign in again at /desk/login.")
        if not accounts.allows(session.user.role, role):
            return _plain(403, f"Your role ({session.user.role}) cannot do this; an owner can change it.")
        if not before_second_factor and accounts.needs_two_factor(session.user, self.policy):
            if request.method in ("GET", "HEAD"):
                return RedirectResponse(SETUP_PATH, status_code=303)
            return _plain(
                403, "This desk asks you to turn on two-step sign-in before anything else. "
                "Set it up on your account page, /desk/account."
            )
        return None


class SameOrigin:
    """Every POST under the desk, whatever route answers it, from the desk's own origin
    only (`DeskAuth.foreign_origin`); anything else is 403 before a route sees it."""

    def __init__(self, app: ASGIApp, auth: DeskAuth) -> None:
        self.app = app
        self.auth = auth

    @property
    def routes(self) -> list[BaseRoute]:
        """The wrapped router's routes, so that the mount still lists them."""
        found: list[BaseRoute] = getattr(self.app, "routes", [])
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            foreign = self.auth.foreign_origin(HTTPConnection(scope))
            if foreign is not None:
                await _plain(403, foreign_message(foreign))(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _split(data: FormData) -> tuple[dict[str, str], dict[str, UploadFile]]:
    form: dict[str, str] = {}
    files: dict[str, UploadFile] = {}
    for key, value in data.multi_items():
        if isinstance(value, str):
            form.setdefault(key, value)
        else:
            files.setdefault(key, value)
    return form, files


def _plain(status: int, message: str) -> Response:
    body = (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>Desk</title><link rel=\"stylesheet\" href=\"/desk/static/desk.css\"></head>"
        f"<body><main id=\"main\" class=\"narrow\"><h1>Not done</h1><p>{html.escape(message)}</p>"
        "<p><a href=\"/desk/\">Back to the desk</a></p></main></body></html>"
    )
    return HTMLResponse(body, status_code=status, headers=DESK_HEADERS)


def foreign_message(origin: str) -> str:
    return (
        f"This form was sent from another site ({origin}), not from the desk, so nothing was done. "
        "If that address is where you use the desk, set [server] public_url to it."
    )


def refuse(status: int, message: str) -> Response:
    """A short page that says why nothing was done."""
    return _plain(status, message)
