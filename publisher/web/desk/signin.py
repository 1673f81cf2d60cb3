"""Signing in and out of the desk: the password, the code after it, and an OpenID Connect provider.

    GET  /desk/login  POST /desk/login          the password (throttled per account and client)
    GET  /desk/login/code  POST /desk/login/code  the authenticator's code, or a recovery code
    GET  /desk/login/oidc                       go to the provider (`desk.oidc.issuer`)
    GET  /desk/login/oidc/callback              back from it, with a code and the state
    POST /desk/login/resume                     sign in again from an editor's save, or a
                                                schedule, test copy or send, that came
                                                after the session ended (`kept_page`)
    GET  /desk/login/forgot  POST ...           ask for a link to set a forgotten password
    GET  /desk/login/reset/{token}  POST ...    set it, from the mailed link (`accounts.resets`)
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

A session can end while an article is being written (idle hours, "sign out everywhere"
in another browser). The editor's Save or Preview then gets the sign-in page with what
was typed carried in the form, and shown, so nothing is lost; signing in there keeps it
as a version of the article (an autosave, written only once the password is right) and
opens the editor with it restored, not saved yet. An account that asks for a code too
keeps the text on that page to copy: the code step carries no article.

Schedule, Test copy and Send now whose session has ended get the same sign-in page, with
what was typed in their form (the time, its zone, the readers, the test addresses). Signing
in there opens the article's send panel with those filled in, and does nothing else: a
send, a test copy or a schedule is never carried out by signing in, the author presses it
again (`ACTIONS`).
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy import Engine
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from publisher import accounts
from publisher.accounts import CODE_WINDOW, OIDC_WINDOW, CodeNeeded, OidcClient, Role, SignedIn
from publisher.config import Config
from publisher.errors import AccountError, PublisherError, SignInThrottled
from publisher.services import articles as article_service
from publisher.services import notices
from publisher.services import revisions as revision_service
from publisher.services.providers import Provider, make_provider
from publisher.web.desk.auth import (
    CODE_COOKIE,
    DEVICE_COOKIE,
    LOGIN_COOKIE,
    OIDC_COOKIE,
    Asked,
    DeskAuth,
    safe_next,
)
from publisher.web.desk.context import sentence
from publisher.web.desk.editing import read_form, to_text
from publisher.web.desk.render import DeskPages
from publisher.web.desk.revisions import editor_url
from publisher.web.desk.section import Section

__all__ = ["CALLBACK_PATH", "SignInDesk", "kept_page"]

CALLBACK_PATH = "/desk/login/oidc/callback"
KEPT_FIELDS = (
    "title", "slug", "date", "tags", "summary", "draft", "image", "image_alt", "body", "draft_key", "article",
)
"""The editor's fields that ride along a sign-in after the session ended."""
ACTIONS: dict[str, tuple[tuple[str, ...], str, str]] = {
    # path's last part: (its form's fields that ride along, where the editor opens, what the page says)
    "schedule": (
        ("at", "timezone", "local_time", "tag", "choice"), "schedule",
        "Your session ended before this was scheduled (signed out, or away too long): nothing is scheduled. "
        "Sign in again here and the article opens with the time you chose filled in; press Schedule there.",
    ),
    "test": (
        ("to",), "test-copy",
        "Your session ended before the test copy went (signed out, or away too long): nothing was sent. "
        "Sign in again here and the article opens with the addresses you typed; press Send a test copy there.",
    ),
    "send": (
        ("tag",), "send-now",
        "Your session ended before this was sent (signed out, or away too long): nothing was sent, and "
        "signing in sends nothing. Sign in again here, then press Send now on the article's page.",
    ),
}
"""Sends, test copies and schedules whose session had ended: what rides along, never the act itself."""
NEXT_MAX = 1900
"""Characters of the address a kept schedule, test copy or send returns to (the store keeps 2,000)."""
THEN = "then"
"""The kept field naming which of ACTIONS the author had pressed."""
KEPT_MAX_FIELDS = 40
ENDED = (
    "Your session ended before this was saved (signed out, or away too long). Nothing you typed is lost: "
    "sign in again here and the editor opens with your text, not saved yet."
)


async def _read(request: Request) -> dict[str, str]:
    try:
        async with request.form(max_files=0, max_fields=KEPT_MAX_FIELDS) as data:
            return {k: v for k, v in data.items() if isinstance(v, str)}
    except Exception:
        return {}


def _kept_response(
    auth: DeskAuth, pages: DeskPages, request: Request, kept: dict[str, str], *, error: str, email: str, status: int,
) -> Response:
    token = auth.login_token(request)
    response = pages.render(
        "login", auth.context_for(request, None, csrf=token), status=status, error=error, email=email,
        next="", oidc_label="", kept=kept,
    )
    auth.set_login_cookie(response, request, token)
    return response


async def kept_page(auth: DeskAuth, pages: DeskPages, request: Request, article: str) -> Response:
    """The sign-in page for an editor's form that arrived without a session: its fields
    (of `article`, a slug, or "" for a new one) ride along, and are shown, so that signing
    in again loses nothing."""
    form = await _read(request)
    action = request.url.path.rstrip("/").rpartition("/")[2] if article else ""
    if action in ACTIONS:
        fields, _, ended = ACTIONS[action]
        kept = {name: form[name] for name in fields if name in form}
        kept.update({THEN: action, "article": article})
        return _kept_response(auth, pages, request, kept, error=ended, email="", status=401)
    kept = {name: form[name] for name in KEPT_FIELDS if name in form}
    kept["article"] = article
    return _kept_response(auth, pages, request, kept, error=ENDED, email="", status=401)


def _pressed_again(kept: dict[str, str]) -> str | None:
    """For a kept schedule, test copy or send: the article's send panel with what was typed
    in the query (the editor fills its form from it). Never the action's own address."""
    action, slug = kept.get(THEN, ""), kept.get("article", "").strip()
    if action not in ACTIONS or not slug:
        return None
    fields, anchor, _ = ACTIONS[action]
    page = f"/desk/articles/{quote(slug, safe='')}"
    query = urlencode({THEN: action, **{name: kept[name] for name in fields if name in kept}})
    if len(page) + len(query) > NEXT_MAX:  # a sign-in with a code keeps the address in the store
        query = urlencode({THEN: action})
    return f"{page}?{query}#{anchor}"


class SignInDesk(Section):
    def __init__(
        self, config: Config, engine: Engine, pages: DeskPages, auth: DeskAuth, *, secret: str,
        clock: Callable[[], datetime], provider_factory: Callable[[Config], Provider] = make_provider,
    ) -> None:
        super().__init__(config, engine, pages, auth)
        self.secret = secret
        self.clock = clock
        self.provider_factory = provider_factory
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
            Route("/login/resume", self.resume, methods=["POST"]),
            Route("/login/oidc", self.oidc_start, methods=["GET"]),
            Route("/login/oidc/callback", self.oidc_callback, methods=["GET"]),
            Route("/login/forgot", self.forgot_form, methods=["GET", "HEAD"]),
            Route("/login/forgot", self.forgot, methods=["POST"]),
            Route("/login/reset/{token}", self.reset_form, methods=["GET", "HEAD"]),
            Route("/login/reset/{token}", self.reset, methods=["POST"]),
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
            response = self._login_page(request, status=429, email=email, error=sentence(str(exc)))
            response.headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
            return response
        except AccountError as exc:
            return self._login_page(request, status=400, email=email, error=sentence(str(exc)))
        return self._first_step(request, done, target)

    # A forgotten password

    def _forgot_page(self, request: Request, *, status: int, error: str = "", email: str = "",
                     asked: bool = False) -> Response:
        return self._page(
            request, "login_forgot", status=status, error=error, email=email, asked=asked,
            minutes=int(accounts.RESET_WINDOW.total_seconds() // 60),
            outbox_only=str(self.config["delivery.provider"]) == "maildir",
        )

    async def forgot_form(self, request: Request) -> Response:
        return self._forgot_page(request, status=200)

    async def forgot(self, request: Request) -> Response:
        form = await self._form(request)
        if isinstance(form, Response):
            return form
        email = form.get("email", "").strip()[:320]
        try:
            link = await run_in_threadpool(
                lambda: accounts.ask_password_reset(
                    self.engine, email, secret=self.secret, address=self.auth.client(request), now=self.clock()
                )
            )
        except SignInThrottled as exc:
            response = self._forgot_page(request, status=429, email=email, error=sentence(str(exc)))
            response.headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
            return response
        # The same page whether or not the address has an account; the mail goes after it.
        response = self._forgot_page(request, status=200, email=email, asked=True)
        if link is not None:
            response.background = BackgroundTask(self._mail_link, link)
        return response

    def _mail_link(self, link: accounts.ResetLink) -> None:
        subject, lines = notices.password_reset_lines(
            self.config, link.email, int(accounts.RESET_WINDOW.total_seconds() // 60)
        )
        notices.mail_notice(
            self.config, [link.email], subject=subject, lines=lines, now=self.clock(),
            link=f"{self.config.public_url}{link.path}", provider_factory=self.provider_factory,
        )

    def _reset_page(self, request: Request, *, status: int, holder: str = "", error: str = "") -> Response:
        # The desk's pages send a referrer to the desk alone (`render`), so the link goes to no
        # other site; "no-referrer" would make the browser post its form from origin "null".
        return self._page(
            request, "login_reset", status=status, holder=holder, error=error, min_password=accounts.MIN_PASSWORD
        )

    async def reset_form(self, request: Request) -> Response:
        token = request.path_params["token"]
        try:
            user = await run_in_threadpool(
                lambda: accounts.reset_holder(self.engine, token, secret=self.secret, now=self.clock())
            )
        except AccountError as exc:
            return self._reset_page(request, status=400, error=sentence(str(exc)))
        return self._reset_page(request, status=200, holder=user.email)

    async def reset(self, request: Request) -> Response:
        token = request.path_params["token"]
        form = await self._form(request)
        if isinstance(form, Response):
            return form
        now = self.clock()
        try:
            user = await run_in_threadpool(
                lambda: accounts.reset_holder(self.engine, token, secret=self.secret, now=now)
            )
        except AccountError as exc:
            return self._reset_page(request, status=400, error=sentence(str(exc)))
        password = form.get("password", "")
        if password != form.get("again", ""):
            return self._reset_page(
                request, status=400, holder=user.email,
                error="The two passwords are not the same. Type the new password twice.",
            )
        try:
            await run_in_threadpool(
                lambda: accounts.finish_password_reset(self.engine, token, password, secret=self.secret, now=now)
            )
        except AccountError as exc:
            return self._reset_page(request, status=400, holder=user.email, error=sentence(str(exc)))
        return RedirectResponse("/desk/login?m=password-set", status_code=303)

    # Back to the editor, with what was typed

    async def resume(self, request: Request) -> Response:
        form = await _read(request)
        action = form.get(THEN, "")
        fields = (*ACTIONS[action][0], THEN, "article") if action in ACTIONS else KEPT_FIELDS
        kept = {name: form[name] for name in fields if name in form}
        email = form.get("email", "").strip()[:320]
        pressed = _pressed_again(kept)

        def again(error: str, status: int) -> Response:
            return _kept_response(self.auth, self.pages, request, kept, error=error, email=email, status=status)

        cookie = request.cookies.get(LOGIN_COOKIE, "")
        if not cookie or not hmac.compare_digest(form.get("csrf", "").encode(), cookie.encode()):
            return again("The sign-in form had expired. It has been renewed: please sign in again.", 403)
        now = self.clock()
        try:
            done = await run_in_threadpool(
                lambda: accounts.sign_in(
                    self.engine, email, form.get("password", ""), address=self.auth.client(request),
                    now=now, policy=self.auth.policy, device=request.cookies.get(DEVICE_COOKIE, ""),
                    next_path=safe_next(pressed),
                )
            )
        except SignInThrottled as exc:
            response = again(sentence(str(exc)), 429)
            response.headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
            return response
        except AccountError as exc:
            return again(sentence(str(exc)), 400)
        if pressed is not None:
            # Back to the send panel with the form filled in; what was pressed is pressed again by the author.
            return self._first_step(request, done, pressed)
        if isinstance(done, CodeNeeded):
            return again(
                "This account asks for a code after the password, and the code's page cannot carry your text. "
                "Copy your text from the box below first, then sign in on the sign-in page and paste it back.", 400,
            )
        try:
            target = await run_in_threadpool(self._keep, kept, done.session.user.email, done.session.user.role, now)
        except PublisherError as exc:
            return again(f"You are signed in, but the text could not be kept: {exc}. Copy it from the box below.", 400)
        return self._signed_in(request, done, target)

    def _keep(self, kept: dict[str, str], author: str, role: str, now: datetime) -> str:
        """Where the editor opens with `kept` restored: kept first as an autosave of its article."""
        slug = kept.get("article", "").strip() or None
        key = revision_service.article_key(slug, kept.get("draft_key", "").strip())
        if not accounts.allows(role, Role.EDITOR):
            return editor_url(key)
        original = ""
        if slug is not None:
            view = article_service.get_article(self.config, self.engine, slug, now=now)
            original = article_service.article_text(self.config, view)
        text = to_text(read_form(kept), original)
        revision = revision_service.record(self.engine, key, kind="autosave", author=author, text=text, now=now)
        if revision is None:  # the newest autosave already holds it
            revision = revision_service.list_revisions(self.engine, key)[0]
        return editor_url(key, revision.id)

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
                response = self._login_page(request, status=400, email="", error=sentence(str(exc)))
                self.auth.clear_step_cookie(response, request, CODE_COOKIE)
                return response
            status = 429 if isinstance(exc, SignInThrottled) else 400
            response = self._page(request, "login_code", status=status, error=sentence(str(exc)), account=pending)
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
            return self._login_page(request, status=400, email="", error=sentence(why))
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
            return self._login_page(request, status=502, email="", error=sentence(str(exc)))
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
            response = self._login_page(request, status=403, email="", error=sentence(str(exc)))
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
