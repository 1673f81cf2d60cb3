"""The author's desk at /desk: write, check, test, schedule and follow issues, manage the list.

Server-rendered pages over the same service functions the CLI and the API call; the
desk only reads forms and shows results. Every route but the sign-in page and the
static files needs a session (see `auth`), and each names the least role it needs.

    GET  /desk/login  POST /desk/login        sign in (throttled per account and address)
    POST /desk/logout  POST /desk/logout-all  sign out here / everywhere
    GET  /desk/                               Home
    GET  /desk/static/{file}                  the desk's CSS and JS (no session needed)

and the sections, each in its own module: `articles` (the editor, previews, preflight
and sending), `revisions` (the editor's autosaves and saved versions), `issues`,
`subscribers`, `settings` and its `keys`.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles

from publisher import accounts
from publisher.accounts import Role, SessionPolicy
from publisher.config import Config
from publisher.errors import AccountError, SignInThrottled
from publisher.services.providers import Provider
from publisher.web.desk import home
from publisher.web.desk.articles import ArticleDesk
from publisher.web.desk.auth import (
    DEVICE_COOKIE,
    LOGIN_COOKIE,
    Asked,
    DeskAuth,
    SameOrigin,
    safe_next,
)
from publisher.web.desk.issues import IssueDesk
from publisher.web.desk.keys import KeyDesk
from publisher.web.desk.media import MediaDesk
from publisher.web.desk.render import DeskPages, static_dir
from publisher.web.desk.revisions import RevisionDesk
from publisher.web.desk.settings import SettingsDesk
from publisher.web.desk.subscribers import SubscriberDesk
from publisher.web.limits import Proxies

__all__ = ["Desk", "DeskSettings"]

PAGES = (
    "login", "home", "articles", "editor", "conflict", "confirm_send", "issues", "issue",
    "subscribers", "subscriber", "import", "imported", "settings", "keys",
    "revisions", "revision", "media",
)


@dataclass(frozen=True, slots=True)
class DeskSettings:
    config: Config
    engine: Engine
    secret: str
    clock: Callable[[], datetime]
    provider_factory: Callable[[Config], Provider]


class Desk:
    """The desk's routes for one publication, to mount at /desk."""

    def __init__(self, settings: DeskSettings) -> None:
        self.s = settings
        self.pages = DeskPages(settings.config)
        self.pages.check(*PAGES)
        self.auth = DeskAuth(
            settings.engine, SessionPolicy.from_config(settings.config), settings.clock,
            Proxies.from_list(settings.config["server.trusted_proxies"]), public_url=settings.config.public_url,
            publication=str(settings.config["publication.title"]), locale=str(settings.config["publication.language"]),
        )
        config, engine = settings.config, settings.engine
        self.sections = (
            ArticleDesk(config, engine, self.pages, self.auth, settings.provider_factory),
            IssueDesk(config, engine, self.pages, self.auth),
            SubscriberDesk(config, engine, self.pages, self.auth),
            SettingsDesk(config, engine, self.pages, self.auth, settings.provider_factory),
            KeyDesk(config, engine, self.pages, self.auth),
            MediaDesk(config, engine, self.pages, self.auth),
            RevisionDesk(config, engine, self.pages, self.auth),
        )

    def mount(self) -> Mount:
        return Mount("/desk", app=SameOrigin(Router(self.routes()), self.auth))

    def routes(self) -> list[BaseRoute]:
        guard = self.auth.guarded
        return [
            Route("/login", self.login_form, methods=["GET", "HEAD"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", guard(self.logout, Role.VIEWER), methods=["POST"]),
            Route("/logout-all", guard(self.logout_all, Role.VIEWER), methods=["POST"]),
            Route("/", guard(self.home, Role.VIEWER), methods=["GET", "HEAD"]),
            *(route for section in self.sections for route in section.routes()),
            Mount("/static", app=StaticFiles(directory=str(static_dir())), name="desk-static"),
        ]

    # Sign-in and out

    async def login_form(self, request: Request) -> Response:
        if await self.auth.session_of(request) is not None:
            return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
        return self._login_page(request, error="", email="", status=200)

    def _login_page(self, request: Request, *, error: str, email: str, status: int) -> Response:
        token = self.auth.login_token(request)
        response = self.pages.render(
            "login", self.auth.context_for(request, None, csrf=token), status=status, error=error, email=email,
            next=safe_next(request.query_params.get("next")),
        )
        self.auth.set_login_cookie(response, request, token)
        return response

    async def login(self, request: Request) -> Response:
        try:
            async with request.form(max_files=0, max_fields=10) as data:
                form = {k: v for k, v in data.items() if isinstance(v, str)}
        except Exception:
            form = {}
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        if not cookie and self.auth.secure(request) and not self.auth.proxies.https(request):
            # The browser kept no Secure cookie from a page it reached over plain http.
            return self._login_page(
                request, status=403, email="",
                error=f"Sign in over https, at {self.s.config.public_url}/desk/login: the desk's "
                "cookies are kept only over https because the public URL is https. Behind a proxy "
                "that speaks https, list it in [server] trusted_proxies.",
            )
        if not cookie or not hmac.compare_digest(form.get("csrf", "").encode(), cookie.encode()):
            return self._login_page(
                request, status=403, email="",
                error="The sign-in form had expired. It has been renewed: please sign in again.",
            )
        email = form.get("email", "").strip()[:320]
        password = form.get("password", "")
        try:
            signed_in = await run_in_threadpool(
                accounts.sign_in, self.s.engine, email, password,
                address=self.auth.client(request), now=self.s.clock(), policy=self.auth.policy,
                device=request.cookies.get(DEVICE_COOKIE, ""),
            )
        except SignInThrottled as exc:
            response = self._login_page(request, status=429, email=email, error=str(exc).capitalize() + ".")
            response.headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
            return response
        except AccountError as exc:
            return self._login_page(request, status=400, email=email, error=str(exc).capitalize() + ".")
        target = safe_next(form.get("next") or request.query_params.get("next"))
        response = RedirectResponse(target, status_code=303)
        self.auth.set_session_cookie(response, request, signed_in.token)
        self.auth.set_device_cookie(response, request, signed_in.device)
        return response

    async def logout(self, asked: Asked) -> Response:
        await run_in_threadpool(accounts.sign_out, self.s.engine, asked.session)
        response = RedirectResponse("/desk/login", status_code=303)
        self.auth.clear_session_cookie(response, asked.request)
        return response

    async def logout_all(self, asked: Asked) -> Response:
        await run_in_threadpool(accounts.sign_out_everywhere, self.s.engine, asked.session)
        response = RedirectResponse("/desk/login", status_code=303)
        self.auth.clear_session_cookie(response, asked.request)
        return response

    # Pages

    async def home(self, asked: Asked) -> Response:
        view = await run_in_threadpool(home.home_view, self.s.config, self.s.engine, asked.now)
        return self.pages.render("home", asked.desk, section="home", view=view)
