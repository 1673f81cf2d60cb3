"""Who is asking: the session cookie, the role a route needs, and CSRF on every form.

Every desk route is wrapped by `guarded`: without a live session a GET is redirected to
the sign-in page (which brings the reader back afterwards) and anything else answers 401
with a link there; a role below the route's answers 403; a POST whose `csrf` field is
not the session's token answers 403 and changes nothing. The session cookie is
HttpOnly, SameSite=Lax, scoped to /desk and Secure whenever the request came over https
(directly or through a proxy uvicorn trusts).

The sign-in form has no session yet, so it carries a token that must match a cookie set
with the form (double submit): another site cannot sign a visitor into an account of
its choosing.
"""

from __future__ import annotations

import hmac
import html
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlsplit

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from publisher import accounts
from publisher.accounts import DeskSession, Role, SessionPolicy
from publisher.web.desk.render import DESK_HEADERS
from publisher.web.limits import client_key

__all__ = [
    "LOGIN_COOKIE",
    "SESSION_COOKIE",
    "Asked",
    "DeskAuth",
    "Handler",
    "refuse",
    "safe_next",
]

SESSION_COOKIE = "desk_session"
LOGIN_COOKIE = "desk_login"
COOKIE_PATH = "/desk"
MAX_FIELDS = 200
MAX_UPLOAD = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Asked:
    """One request to a desk page: the request, its session, its form fields and files."""

    request: Request
    session: DeskSession
    form: dict[str, str]
    files: dict[str, UploadFile]
    now: datetime

    def field(self, name: str, default: str = "") -> str:
        return self.form.get(name, default)


Handler = Callable[[Asked], Awaitable[Response]]


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a desk path on this site, never another site."""
    if not value or not value.startswith("/desk") or value.startswith("//"):
        return "/desk/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or "\\" in value:
        return "/desk/"
    return value


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def client_address(request: Request) -> str:
    return client_key(request.client.host if request.client else None)


class DeskAuth:
    def __init__(self, engine: Engine, policy: SessionPolicy, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.policy = policy
        self.clock = clock

    async def session_of(self, request: Request) -> DeskSession | None:
        token = request.cookies.get(SESSION_COOKIE, "")
        if not token:
            return None
        return await run_in_threadpool(
            accounts.current_session, self.engine, token, now=self.clock(), policy=self.policy
        )

    def set_session_cookie(self, response: Response, request: Request, token: str) -> None:
        response.set_cookie(
            SESSION_COOKIE, token, max_age=int(self.policy.lifetime.total_seconds()),
            path=COOKIE_PATH, httponly=True, samesite="lax", secure=is_https(request),
        )
        response.delete_cookie(LOGIN_COOKIE, path=COOKIE_PATH)

    @staticmethod
    def clear_session_cookie(response: Response, request: Request) -> None:
        response.delete_cookie(
            SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="lax", secure=is_https(request)
        )

    @staticmethod
    def login_token(request: Request) -> str:
        """The sign-in form's token: the visitor's cookie when it looks like one, else new."""
        token = request.cookies.get(LOGIN_COOKIE, "")
        if len(token) < 20 or len(token) > 100:
            token = secrets.token_urlsafe(24)
        return token

    @staticmethod
    def set_login_cookie(response: Response, request: Request, token: str) -> None:
        response.set_cookie(
            LOGIN_COOKIE, token, max_age=3600, path=COOKIE_PATH, httponly=True,
            samesite="lax", secure=is_https(request),
        )

    def guarded(self, handler: Handler, role: Role) -> Callable[[Request], Awaitable[Response]]:
        """`handler` behind a session, the role `role` and, for POST, the CSRF token."""

        async def endpoint(request: Request) -> Response:
            session = await self.session_of(request)
            if session is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                if request.method in ("GET", "HEAD"):
                    return RedirectResponse(f"/desk/login?next={quote(target, safe='/')}", status_code=303)
                return _plain(401, "Your session has ended. Sign in again at /desk/login.")
            if not accounts.allows(session.user.role, role):
                return _plain(403, f"Your role ({session.user.role}) cannot do this; an owner can change it.")
            if request.method != "POST":
                return await handler(Asked(request, session, {}, {}, self.clock()))
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
                return await handler(Asked(request, session, form, files, self.clock()))
            finally:
                await data.close()

        return endpoint


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


def refuse(status: int, message: str) -> Response:
    """A short page that says why nothing was done."""
    return _plain(status, message)
