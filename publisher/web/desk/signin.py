"""Signing in and out of the desk: the password, the code after it, and an OpenID Connect provider.

    GET  /desk/login  POST /desk/login          the password (throttled per account and client)
    GET  /desk/login/code  POST /desk/login/code  the authenticator's code, or a recovery code
    GET  /desk/login/oidc                       go to the provider (`desk.oidc.issuer`)
    GET  /desk/login/oidc/callback              back from it, with a code and the state
    POST /desk/logout  POST /desk/logout-all    sign out here / everywhere

The rules are `publisher.accounts`'; this module reads forms and cookies and answers.
Every sign-in form carries the sign-in form's own token, which must match its cookie
(double submit, see `auth`). A password that is right for an account with a second
factor sets a cookie (`CODE_COOKIE`, scoped to the sign-in pages, five minutes) naming
the sign-in that waits for the code; nothing else is signed in until the code is right.
A trip to the provider sets `OIDC_COOKIE` to the state sent with it: the provider's
answer is taken only in the browser that left, once. The trip starts from a link, not a
form: the desk's pages allow forms to post only to the desk (`form-action 'self'`), and a
browser holds a form's redirect to that rule too. Starting a trip changes nothing but the
visitor's own cookie, so a link another site makes them follow gains it nothing. Whatever fails, the sign-in page
says why, and nobody is signed in.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from publisher import accounts
from publisher.accounts import CODE_WINDOW, OIDC_WINDOW, CodeNeeded, OidcClient, Role, SignedIn
from publisher.config import Config
from publisher.errors import AccountError, SignInThrottled
from publisher.web.desk.auth import (
    CODE_COOKIE,
    DEVICE_COOKIE,
    LOGIN_COOKIE,
    OIDC_COOKIE,
    Asked,
    DeskAuth,
    safe_next,
)
from publisher.web.desk.render import DeskPages
from publisher.web.desk.section import Section

__all__ = ["CALLBACK_PATH", "SignInDesk"]

CALLBACK_PATH = "/desk/login/oidc/callback"


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


class SignInDesk(Section):
    def __init__(
        self, config: Config, engine: Engine, pages: DeskPages, auth: DeskAuth, *, secret: str,
        clock: Callable[[], datetime],
    ) -> None:
        super().__init__(config, engine, pages, auth)
        self.secret = secret
        self.clock = clock
        try:
            self.oidc: OidcClient | None = OidcClient.from_config(config)
            self.oidc_problem = ""
        except AccountError as exc:  # the button stays, and pressing it says what to fix
            self.oidc, self.oidc_problem = None, str(exc)
        self.oidc_label = self.oidc.label if self.oidc else (
            (str(config["desk.oidc.label"]) or "your sign-in provider") if self.oidc_problem else ""
        )

    def routes(self) -> list[BaseRoute]:
        guard = self.auth.guarded
        return [
            Route("/login", self.login_form, methods=["GET", "HEAD"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/login/code", self.code_form, methods=["GET", "HEAD"]),
            Route("/login/code", self.code, methods=["POST"]),
            Route("/login/oidc", self.oidc_start, methods=["GET"]),
            Route("/login/oidc/callback", self.oidc_callback, methods=["GET"]),
            Route("/logout", guard(self.logout, Role.VIEWER, before_second_factor=True), methods=["POST"]),
            Route("/logout-all", guard(self.logout_all, Role.VIEWER, before_second_factor=True), methods=["POST"]),
        ]

    # Pages

    def _page(self, request: Request, name: str, *, status: int, **values: Any) -> Response:
        token = self.auth.login_token(request)
        response = self.pages.render(
            name, self.auth.context_for(request, None, csrf=token), status=status,
            next=safe_next(request.query_params.get("next")), **values,
        )
        self.auth.set_login_cookie(response, request, token)
        return response

    def _login_page(self, request: Request, *, error: str, email: str, status: int) -> Response:
        return self._page(
            request, "login", status=status, error=error, email=email,
            oidc_label=self.oidc_label,
        )

    async def login_form(self, request: Request) -> Response:
        if await self.auth.session_of(request) is not None:
            return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
        return self._login_page(request, error="", email="", status=200)

    async def _form(self, request: Request) -> dict[str, str] | Response:
        """The sign-in form's fields, or the page that says why they cannot be taken."""
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
                error=f"Sign in over https, at {self.config.public_url}/desk/login: the desk's "
                "cookies are kept only over https because the public URL is https. Behind a proxy "
                "that speaks https, list it in [server] trusted_proxies.",
            )
        if not cookie or not hmac.compare_digest(form.get("csrf", "").encode(), cookie.encode()):
            return self._login_page(
                request, status=403, email="",
                error="The sign-in form had expired. It has been renewed: please sign in again.",
            )
        return form

    def _signed_in(self, request: Request, signed_in: SignedIn, target: str) -> Response:
        response = RedirectResponse(safe_next(target), status_code=303)
        self.auth.set_session_cookie(response, request, signed_in.token)
        self.auth.set_device_cookie(response, request, signed_in.device)
        if CODE_COOKIE in request.cookies:
            self.auth.clear_step_cookie(response, request, CODE_COOKIE)
        return response

    def _first_step(self, request: Request, done: SignedIn | CodeNeeded, target: str) -> Response:
        if isinstance(done, SignedIn):
            return self._signed_in(request, done, target)
        response = RedirectResponse("/desk/login/code", status_code=303)
        self.auth.set_step_cookie(response, request, CODE_COOKIE, done.token, int(CODE_WINDOW.total_seconds()))
        return response

    async def login(self, request: Request) -> Response:
        form = await self._form(request)
        if isinstance(form, Response):
            return form
        email = form.get("email", "").strip()[:320]
        target = safe_next(form.get("next") or request.query_params.get("next"))
        try:
            done = await run_in_threadpool(
                lambda: accounts.sign_in(
                    self.engine, email, form.get("password", ""), address=self.auth.client(request),
                    now=self.clock(), policy=self.auth.policy, device=request.cookies.get(DEVICE_COOKIE, ""),
                    next_path=target,
                )
            )
        except SignInThrottled as exc:
            response = self._login_page(request, status=429, email=email, error=_sentence(str(exc)))
            response.headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
            return response
        except AccountError as exc:
            return self._login_page(request, status=400, email=email, error=_sentence(str(exc)))
        return self._first_step(request, done, target)

    # The code after the password

    async def code_form(self, request: Request) -> Response:
        pending = await run_in_threadpool(
            lambda: accounts.code_pending(self.engine, request.cookies.get(CODE_COOKIE, ""), now=self.clock())
        )
        if pending is None:
            return RedirectResponse("/desk/login", status_code=303)
        return self._page(request, "login_code", status=200, error="", account=pending)

    async def code(self, request: Request) -> Response:
        form = await self._form(request)
        if isinstance(form, Response):
            return form
        token = request.cookies.get(CODE_COOKIE, "")
        now = self.clock()
        try:
            signed_in, target = await run_in_threadpool(
                lambda: accounts.sign_in_with_code(
                    self.engine, token, form.get("code", ""), address=self.auth.client(request), now=now,
                    policy=self.auth.policy, secret=self.secret, device=request.cookies.get(DEVICE_COOKIE, ""),
                )
            )
        except (SignInThrottled, AccountError) as exc:
            pending = await run_in_threadpool(lambda: accounts.code_pending(self.engine, token, now=now))
            if pending is None:
                response = self._login_page(request, status=400, email="", error=_sentence(str(exc)))
                self.auth.clear_step_cookie(response, request, CODE_COOKIE)
                return response
            status = 429 if isinstance(exc, SignInThrottled) else 400
            response = self._page(request, "login_code", status=status, error=_sentence(str(exc)), account=pending)
            if isinstance(exc, SignInThrottled):
                response.headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
            return response
        return self._signed_in(request, signed_in, target)

    # OpenID Connect

    def _redirect_uri(self) -> str:
        return self.config.public_url.rstrip("/") + CALLBACK_PATH

    async def oidc_start(self, request: Request) -> Response:
        if self.oidc is None:
            why = self.oidc_problem or "no sign-in provider is set up for this desk (desk.oidc.issuer)"
            return self._login_page(request, status=400, email="", error=_sentence(why))
        client = self.oidc
        try:
            start = await run_in_threadpool(
                lambda: accounts.start_oidc(
                    self.engine, client, redirect_uri=self._redirect_uri(),
                    next_path=safe_next(request.query_params.get("next")), address=self.auth.client(request),
                    now=self.clock(),
                )
            )
        except AccountError as exc:
            return self._login_page(request, status=502, email="", error=_sentence(str(exc)))
        response = RedirectResponse(start.url, status_code=303)
        self.auth.set_step_cookie(response, request, OIDC_COOKIE, start.state, int(OIDC_WINDOW.total_seconds()))
        return response

    async def oidc_callback(self, request: Request) -> Response:
        params = request.query_params
        browser_state = request.cookies.get(OIDC_COOKIE, "")
        if self.oidc is None:
            return self._login_page(
                request, status=400, email="", error="No sign-in provider is set up for this desk (desk.oidc.issuer).",
            )
        client = self.oidc
        if params.get("error"):
            why = (params.get("error_description") or params.get("error") or "")[:200]
            response = self._login_page(
                request, status=400, email="", error=f"The sign-in provider did not sign you in ({why}).",
            )
            self.auth.clear_step_cookie(response, request, OIDC_COOKIE)
            return response
        try:
            done, target = await run_in_threadpool(
                lambda: accounts.finish_oidc(
                    self.engine, client, state=params.get("state", ""), browser_state=browser_state,
                    code=params.get("code", ""), redirect_uri=self._redirect_uri(),
                    address=self.auth.client(request), now=self.clock(), policy=self.auth.policy,
                    device=request.cookies.get(DEVICE_COOKIE, ""),
                )
            )
        except AccountError as exc:
            response = self._login_page(request, status=403, email="", error=_sentence(str(exc)))
            self.auth.clear_step_cookie(response, request, OIDC_COOKIE)
            return response
        response = self._first_step(request, done, target)
        self.auth.clear_step_cookie(response, request, OIDC_COOKIE)
        return response

    # Out

    async def logout(self, asked: Asked) -> Response:
        await run_in_threadpool(accounts.sign_out, self.engine, asked.session)
        response = RedirectResponse("/desk/login", status_code=303)
        self.auth.clear_session_cookie(response, asked.request)
        return response

    async def logout_all(self, asked: Asked) -> Response:
        await run_in_threadpool(accounts.sign_out_everywhere, self.engine, asked.session)
        response = RedirectResponse("/desk/login", status_code=303)
        self.auth.clear_session_cookie(response, asked.request)
        return response
