"""Settings (owners): the effective configuration, what `check` finds and what is missing
to go live, a provider connection test, and the desk's users.

    GET  /desk/settings                     the page
    POST /desk/settings/provider-test       a test copy of the newest article to the owner
    POST /desk/settings/users               add a user
    POST /desk/settings/users/remove        remove a user (never the last owner)

API keys have a page of their own (`keys`), linked from here.

Secrets are never shown: only whether each one is set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from publisher import accounts, content
from publisher.accounts import Role
from publisher.config import SETTINGS, Config
from publisher.delivery.base import Provider
from publisher.errors import PublisherError
from publisher.mail import tokens
from publisher.services import issues as issue_service
from publisher.web.desk.auth import Asked, DeskAuth
from publisher.web.desk.render import DeskPages

__all__ = ["SettingsDesk", "go_live_gaps"]

SECRET_NAMES = (
    tokens.SECRET_ENV, "PUBLISHER_SMTP_PASSWORD", "PUBLISHER_POSTMARK_TOKEN", "PUBLISHER_SENDGRID_API_KEY",
    "PUBLISHER_MAILGUN_API_KEY", "PUBLISHER_RESEND_API_KEY",
)


@dataclass(frozen=True, slots=True)
class Setting:
    key: str
    value: str
    default: bool
    help: str


def go_live_gaps(config: Config) -> list[str]:
    """What stands between this configuration and real readers."""
    gaps = []
    if not str(config["publication.postal_address"]).strip():
        gaps.append("Set [publication] postal_address: every email must carry it.")
    if config["delivery.provider"] == "maildir":
        gaps.append("Choose a real mail provider in [delivery] provider: maildir only writes files.")
    if not config.secret(tokens.SECRET_ENV):
        gaps.append(f"Set {tokens.SECRET_ENV} in the server's environment: it signs unsubscribe links.")
    if not str(config["server.public_url"]).strip() and config.public_url.startswith("http://"):
        gaps.append("Serve the app over https and set [server] public_url.")
    if not str(config["delivery.dkim.domain"]).strip():
        gaps.append("Sign with DKIM ([delivery.dkim]) or let your provider sign for your domain.")
    return gaps


def _findings(config: Config, now: datetime) -> list[str]:
    articles, problems = content.scan_articles(config)
    found = [str(p) for p in problems]
    if not articles:
        found.append(f"No articles yet in {config.path_of('build.content')}.")
    return found


class SettingsDesk:
    def __init__(
        self, config: Config, engine: Engine, pages: DeskPages, auth: DeskAuth,
        provider_factory: Callable[[Config], Provider],
    ) -> None:
        self.config = config
        self.engine = engine
        self.pages = pages
        self.auth = auth
        self.provider_factory = provider_factory

    def routes(self) -> list[BaseRoute]:
        guard = self.auth.guarded
        return [
            Route("/settings", guard(self.index, Role.OWNER), methods=["GET", "HEAD"]),
            Route("/settings/provider-test", guard(self.provider_test, Role.OWNER), methods=["POST"]),
            Route("/settings/users", guard(self.add_user, Role.OWNER), methods=["POST"]),
            Route("/settings/users/remove", guard(self.remove_user, Role.OWNER), methods=["POST"]),
        ]

    def _view(self, now: datetime) -> dict[str, Any]:
        values = [
            Setting(s.key, repr(self.config[s.key]), self.config[s.key] == s.default
                    or (isinstance(s.default, list) and tuple(s.default) == self.config[s.key]), s.help)
            for s in SETTINGS
        ]
        return {
            "settings": values,
            "secrets": [(name, bool(self.config.secret(name))) for name in SECRET_NAMES],
            "findings": _findings(self.config, now),
            "gaps": go_live_gaps(self.config),
            "users": accounts.list_users(self.engine),
            "roles": [r.value for r in Role],
        }

    async def index(self, asked: Asked, *, error: str = "", result: str = "", status_code: int = 200) -> Response:
        view = await run_in_threadpool(self._view, asked.now)
        return self.pages.render(
            "settings", asked.desk, section="settings", status=status_code,
            error=error, result=result, **view,
        )

    async def provider_test(self, asked: Asked) -> Response:
        def newest() -> str:
            articles = [a for a in content.load_articles(self.config) if a.is_public(asked.now)]
            if not articles:
                raise PublisherError("publish an article first: the test sends the newest one")
            return articles[0].slug

        try:
            slug = await run_in_threadpool(newest)
            await run_in_threadpool(
                lambda: issue_service.test_send(
                    self.config, slug, [asked.session.user.email], now=asked.now,
                    provider_factory=self.provider_factory,
                )
            )
        except PublisherError as exc:
            return await self.index(asked, error=f"The provider test failed: {exc}", status_code=502)
        return await self.index(
            asked, result=f"{self.config['delivery.provider']} took a test copy for {asked.session.user.email}."
        )

    async def add_user(self, asked: Asked) -> Response:
        try:
            await run_in_threadpool(
                lambda: accounts.add_user(
                    self.engine, asked.field("email"), role=asked.field("role"),
                    password=asked.field("password"), now=asked.now,
                )
            )
        except PublisherError as exc:
            return await self.index(asked, error=str(exc), status_code=400)
        return RedirectResponse("/desk/settings?m=user-added#users", status_code=303)

    async def remove_user(self, asked: Asked) -> Response:
        try:
            await run_in_threadpool(accounts.remove_user, self.engine, asked.field("email"))
        except PublisherError as exc:
            return await self.index(asked, error=str(exc), status_code=400)
        return RedirectResponse("/desk/settings?m=user-removed#users", status_code=303)
