"""Settings (owners): the publication's settings in forms, what `check` finds and what is
missing to go live, a provider connection test, the desk's users and the settings' audit log.

    GET  /desk/settings                     the page
    POST /desk/settings/save                one of the page's settings forms (services.settings)
    POST /desk/settings/dkim                a new DKIM key, put to use (services.dkim_setup)
    POST /desk/settings/dkim-check          is the DKIM record in DNS?
    POST /desk/settings/provider-test       a test copy of the newest article to the owner
    POST /desk/settings/users               add a user
    POST /desk/settings/users/remove        remove a user (never the last owner)

API keys have a page of their own (`keys`), linked from here.

Secrets are never shown: only whether each one is set, and where. The forms are read from
config.toml as it is on disk, and each carries the file's fingerprint, so a file changed
since the page was opened is never overwritten. Editors and viewers get 403.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from publisher import accounts
from publisher.accounts import Role
from publisher.config import SETTINGS, Config, provider_said
from publisher.errors import ConfigError, Conflict, PublisherError
from publisher.services import bounce_intake, dkim_setup, readiness
from publisher.services import issues as issue_service
from publisher.services import settings as settings_service
from publisher.services.providers import Provider
from publisher.services.settings_text import (
    BACKUP_DAYS,
    BACKUP_WHEN,
    CHOICE_WORDS,
    DIGEST_WHEN,
    FIELDS,
    GROUPS,
    MONTH_DAYS,
    POLICY_WORDS,
    SAVE_BUTTONS,
    BackupChoice,
    DigestChoice,
    WindowChoice,
    backup_choice,
    chosen_schedules,
    digest_choice,
    field_problems,
    window_choice,
)
from publisher.web.desk.auth import Asked, DeskAuth
from publisher.web.desk.render import DeskPages
from publisher.web.desk.section import Section

__all__ = ["SettingsDesk"]

COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
"""An accent colour a colour picker can show (it shows any other value as black, and would save that)."""

@dataclass(frozen=True, slots=True)
class Setting:
    key: str
    value: str
    default: bool
    help: str


class SettingsDesk(Section):
    def __init__(
        self, config: Config, engine: Engine, pages: DeskPages, auth: DeskAuth,
        provider_factory: Callable[[Config], Provider],
    ) -> None:
        super().__init__(config, engine, pages, auth)
        self.provider_factory = provider_factory

    def routes(self) -> list[BaseRoute]:
        guard = self.auth.guarded
        return [
            Route("/settings", guard(self.index, Role.OWNER), methods=["GET", "HEAD"]),
            Route("/settings/save", guard(self.save, Role.OWNER), methods=["POST"]),
            Route("/settings/dkim", guard(self.dkim_generate, Role.OWNER), methods=["POST"]),
            Route("/settings/dkim-check", guard(self.dkim_check, Role.OWNER), methods=["POST"]),
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
        editable: settings_service.SettingsView | None = None
        unreadable = ""
        if self.config.path is not None:
            try:
                editable = settings_service.settings_view(self.config.path, engine=self.engine, now=now)
            except ConfigError as exc:
                unreadable = str(exc)
        return {
            "settings": values,
            "editable": editable,
            "unreadable": unreadable,
            "groups": [(group, title, [f for f in FIELDS if f.group == group]) for group, title in GROUPS],
            "policy_words": POLICY_WORDS,
            "choice_words": CHOICE_WORDS,
            "save_buttons": SAVE_BUTTONS,
            "backup_when": BACKUP_WHEN,
            "backup_days": BACKUP_DAYS,
            "digest_when": DIGEST_WHEN,
            "month_days": MONTH_DAYS,
            "zone": self.config.tz.key,
            "secrets": readiness.secrets_set(self.config),
            "findings": readiness.article_findings(self.config),
            "gaps": readiness.go_live_gaps(self.config),
            "users": accounts.list_users(self.engine),
            "return_path": str(self.config["bounces.return_path_domain"]),
            "return_path_records": bounce_intake.return_path_records(self.config),
            "bounces_waiting": bounce_intake.review_count(self.engine),
            "roles": [r.value for r in Role],
            # With a sign-in provider, someone may be invited without a password.
            "oidc_label": str(self.config["desk.oidc.label"] or "the sign-in provider")
            if self.config["desk.oidc.issuer"] else "",
        }

    async def index(
        self, asked: Asked, *, error: str = "", result: str = "", status_code: int = 200,
        problems: dict[str, str] | None = None, typed: dict[str, str] | None = None, group: str = "",
        dkim_checks: list[Any] | None = None,
    ) -> Response:
        view = await run_in_threadpool(self._view, asked.now)
        values = dict(view["editable"].values) if view["editable"] is not None else {}
        values.update(typed or {})
        backup = backup_choice(values.get("backup_schedule", ""))
        if "backup_when" in values:  # as typed, when the form comes back with a problem
            backup = BackupChoice(
                values["backup_when"], values.get("backup_day", backup.day), values.get("backup_time", backup.time),
                backup.cron,
            )
        digest = digest_choice(values.get("digest", ""))
        if "digest_when" in values:
            digest = DigestChoice(
                values["digest_when"], values.get("digest_day", digest.day),
                values.get("digest_monthday", digest.monthday), values.get("digest_time", digest.time), digest.cron,
            )
        window = window_choice(values.get("window", ""))
        if "window_time" in values:
            window = WindowChoice(
                tuple(key for key, _ in BACKUP_DAYS if values.get(f"window_{key}")), values["window_time"]
            )
        return self.pages.render(
            "settings", asked.desk, section="settings", status=status_code, backup=backup, digest=digest,
            window=window, accent_picker=bool(COLOUR.fullmatch(values.get("accent_color", ""))),
            error=error, result=result, problems=problems or {}, values=values, group=group,
            dkim_checks=dkim_checks or [], **view,
        )

    async def save(self, asked: Asked, *, dkim: bool = False) -> Response:
        """One settings form: written back to config.toml, or each problem beside its field."""
        if self.config.path is None:
            return await self.index(asked, error="This server was started without a config.toml.", status_code=400)
        path = self.config.path
        form = {k: v for k, v in asked.form.items() if k not in ("csrf", "fingerprint", "group")}
        group = asked.field("group")

        def run() -> settings_service.Saved:
            if dkim:
                return dkim_setup.generate_key(
                    path, domain=asked.field("dkim_domain"), selector=asked.field("dkim_selector"),
                    fingerprint_seen=asked.field("fingerprint"), who=asked.session.user.email,
                    engine=self.engine, now=asked.now,
                )
            return settings_service.save_settings(
                path, chosen_schedules(form), fingerprint_seen=asked.field("fingerprint"), who=asked.session.user.email,
                engine=self.engine, now=asked.now,
            )

        try:
            saved = await run_in_threadpool(run)
        except Conflict as exc:
            return await self.index(asked, error=str(exc), status_code=409, group=group)
        except ConfigError as exc:
            beside, rest = field_problems(exc.problems)
            typed = {k: v for k, v in form.items() if not k.startswith(("secret-", "clear-"))}
            summary = "Nothing was saved: " + (
                "; ".join(rest) if rest else "see the fields marked below."
            )
            return await self.index(
                asked, error=summary, status_code=400, problems=beside, typed=typed, group=group
            )
        said = "Saved; the server takes it up within a few seconds, without a restart." if saved.changes else ""
        return await self.index(asked, result=" ".join(filter(None, (said, *saved.notices))), group=group)

    async def dkim_generate(self, asked: Asked) -> Response:
        """A new key for the selector and domain on the form, written beside config.toml and put to use."""
        return await self.save(asked, dkim=True)

    async def dkim_check(self, asked: Asked) -> Response:
        if self.config.path is None:
            return await self.index(asked, error="This server was started without a config.toml.", status_code=400)
        path = self.config.path
        try:
            checks = await run_in_threadpool(dkim_setup.check_dns, path)
        except PublisherError as exc:
            return await self.index(asked, error=str(exc), status_code=400, group="dkim")
        return await self.index(asked, group="dkim", dkim_checks=checks)

    async def provider_test(self, asked: Asked) -> Response:
        try:
            slug = await run_in_threadpool(readiness.newest_public_slug, self.config, asked.now)
            await run_in_threadpool(
                lambda: issue_service.test_send(
                    self.config, slug, [asked.session.user.email], now=asked.now,
                    provider_factory=self.provider_factory,
                )
            )
        except PublisherError as exc:
            return await self.index(asked, error=f"The provider test failed: {exc}", status_code=502)
        said = provider_said(str(self.config["delivery.provider"]), start=True)
        return await self.index(
            asked, result=f"{said} took a test copy for {asked.session.user.email}."
        )

    async def add_user(self, asked: Asked) -> Response:
        # Invited without a password, someone signs in only through the sign-in provider.
        password: str | None = asked.field("password")
        if not password and self.config["desk.oidc.issuer"]:
            password = None
        try:
            await run_in_threadpool(
                lambda: accounts.add_user(
                    self.engine, asked.field("email"), role=asked.field("role"), password=password, now=asked.now,
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
