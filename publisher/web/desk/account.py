"""Your account (everyone signed in): two-step sign-in, recovery codes, and where you are signed in.

    GET  /desk/account                          the page
    POST /desk/account/two-factor/start         a new secret to add to an authenticator app (a first
                                                phone, or a new one: the old works until the new is confirmed)
    POST /desk/account/two-factor/confirm       turn it on with a first code; shows the recovery codes once
    POST /desk/account/two-factor/off           sign in with the password alone again (where allowed)
    POST /desk/account/recovery-codes           ten new recovery codes; the old ones stop working
    POST /desk/account/two-factor/reset         owners: forget someone's second factor (a lost phone)

The secret is shown (as a QR code and as text) only while it is being set up; once a
code from it is taken it is never shown again. The recovery codes are in the answer to
the POST that made them and nowhere else. An account that must have a second factor
(`desk.require_two_factor`) and has none is sent here before anything else, and may use
only these routes until it has one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from publisher import accounts
from publisher.accounts import Enrolment, Role
from publisher.config import Config
from publisher.errors import PublisherError, SignInThrottled
from publisher.web.desk.auth import Asked, DeskAuth
from publisher.web.desk.context import sentence
from publisher.web.desk.render import DeskPages
from publisher.web.desk.section import Section

__all__ = ["AccountDesk"]

_NOTICES = {
    "two-factor-on": "Two-step sign-in is on. Keep your recovery codes somewhere safe.",
    "two-factor-off": "Two-step sign-in is off: your password alone signs you in.",
    "reset": "Their second factor is reset and their sessions have ended.",
    "recovery-used": (
        "You signed in with a recovery code, which now no longer works. Lost your phone? Choose "
        "“Move to a new phone” below, then make new recovery codes."
    ),
}


class AccountDesk(Section):
    def __init__(
        self, config: Config, engine: Engine, pages: DeskPages, auth: DeskAuth, *, secret: str,
        clock: Callable[[], datetime],
    ) -> None:
        super().__init__(config, engine, pages, auth)
        self.secret = secret
        self.clock = clock
        self.issuer = str(config["publication.title"]) or "publisher"

    def routes(self) -> list[BaseRoute]:
        def mine(handler: Any) -> Any:
            return self.auth.guarded(handler, Role.VIEWER, before_second_factor=True)

        return [
            Route("/account", mine(self.index), methods=["GET", "HEAD"]),
            Route("/account/two-factor/start", mine(self.start), methods=["POST"]),
            Route("/account/two-factor/confirm", mine(self.confirm), methods=["POST"]),
            Route("/account/two-factor/off", mine(self.turn_off), methods=["POST"]),
            Route("/account/recovery-codes", mine(self.renew), methods=["POST"]),
            Route("/account/two-factor/reset", self.auth.guarded(self.reset, Role.OWNER), methods=["POST"]),
        ]

    def _view(self, asked: Asked) -> dict[str, Any]:
        user = asked.session.user
        state = accounts.two_factor_state(
            self.engine, user, policy=self.auth.policy, secret=self.secret, issuer=self.issuer
        )
        view: dict[str, Any] = {
            "two_factor": state,
            "sessions": accounts.list_sessions(self.engine, user, now=asked.now),
            "this_session": asked.session.id,
            "people": [],
        }
        if accounts.allows(user.role, Role.OWNER):
            view["people"] = [u for u in accounts.list_users(self.engine) if u.id != user.id]
        return view

    async def index(
        self, asked: Asked, *, error: str = "", status_code: int = 200, enrolment: Enrolment | None = None,
        codes: list[str] | None = None,
    ) -> Response:
        view = await run_in_threadpool(self._view, asked)
        if enrolment is not None:
            view["two_factor"] = dataclasses.replace(view["two_factor"], setting_up=enrolment)
        return self.pages.render(
            "account", asked.desk, section="account", status=status_code, error=error, codes=codes or [],
            notice=_NOTICES.get(asked.request.query_params.get("m", ""), ""),
            required_now=view["two_factor"].required and not view["two_factor"].on, **view,
        )

    async def start(self, asked: Asked) -> Response:
        try:
            enrolment = await run_in_threadpool(
                lambda: accounts.begin_two_factor(
                    self.engine, asked.session.user, now=asked.now, secret=self.secret, issuer=self.issuer
                )
            )
        except PublisherError as exc:
            return await self.index(asked, error=sentence(str(exc)), status_code=409)
        return await self.index(asked, enrolment=enrolment)

    async def confirm(self, asked: Asked) -> Response:
        try:
            codes = await run_in_threadpool(
                lambda: accounts.confirm_two_factor(
                    self.engine, asked.session.user, asked.field("code"), address=self.auth.client(asked.request),
                    now=asked.now, policy=self.auth.policy, secret=self.secret,
                )
            )
        except SignInThrottled as exc:
            return await self.index(asked, error=sentence(str(exc)), status_code=429)
        except PublisherError as exc:
            return await self.index(asked, error=sentence(str(exc)), status_code=400)
        return await self.index(asked, codes=codes, status_code=201)

    async def turn_off(self, asked: Asked) -> Response:
        try:
            await run_in_threadpool(
                lambda: accounts.turn_off_two_factor(self.engine, asked.session.user, policy=self.auth.policy)
            )
        except PublisherError as exc:
            return await self.index(asked, error=sentence(str(exc)), status_code=409)
        return RedirectResponse("/desk/account?m=two-factor-off", status_code=303)

    async def renew(self, asked: Asked) -> Response:
        try:
            codes = await run_in_threadpool(lambda: accounts.renew_recovery_codes(self.engine, asked.session.user))
        except PublisherError as exc:
            return await self.index(asked, error=sentence(str(exc)), status_code=409)
        return await self.index(asked, codes=codes, status_code=201)

    async def reset(self, asked: Asked) -> Response:
        email = asked.field("email")
        if email.strip().lower() == asked.session.user.email:
            return await self.index(
                asked, status_code=400,
                error="To change your own second factor, turn it off here and set it up again.",
            )
        try:
            await run_in_threadpool(lambda: accounts.reset_two_factor(self.engine, email))
        except PublisherError as exc:
            return await self.index(asked, error=sentence(str(exc)), status_code=404)
        return RedirectResponse("/desk/account?m=reset#people", status_code=303)
