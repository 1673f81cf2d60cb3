"""The desk page context: built once per request by the guard, handed to every page."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from desk_support import PASSWORD, add_users, quick_hashes
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from web_support import make_publication

from publisher import accounts
from publisher.accounts import Role, SessionPolicy
from publisher.config import Config
from publisher.store import open_store
from publisher.web.desk.auth import SESSION_COOKIE, Asked, DeskAuth
from publisher.web.desk.context import DeskContext

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    quick_hashes(monkeypatch)
    config = make_publication(tmp_path)
    add_users(config)
    return config


async def _seen(config: Config, email: str, path: str) -> list[DeskContext]:
    """The contexts a guarded route received for one GET of `path` by `email`."""
    engine = open_store(config.store_url)
    policy = SessionPolicy.from_config(config)
    signed = accounts.sign_in(engine, email, PASSWORD, address="127.0.0.1", now=NOW, policy=policy)
    auth = DeskAuth(engine, policy, lambda: NOW, publication="Field Notes", locale="de")
    seen: list[DeskContext] = []

    async def page(asked: Asked) -> Response:
        seen.append(asked.desk)
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/desk/page", auth.guarded(page, Role.VIEWER))])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://desk.test", cookies={SESSION_COOKIE: signed.token}
    ) as http:
        answer = await http.get(path)
    assert answer.status_code == 200
    engine.dispose()
    return seen


def test_a_guarded_page_receives_the_whole_context(config: Config) -> None:
    """Account, role, CSRF token, publication, the notice named by ?m= and the locale, built once."""
    (desk,) = asyncio.run(_seen(config, "editor@example.org", "/desk/page?m=saved"))
    assert (desk.account, desk.role, desk.publication, desk.message, desk.locale) == (
        "editor@example.org", Role.EDITOR, "Field Notes", "Saved.", "de",
    )
    assert desk.session is not None and desk.csrf == desk.session.csrf


def test_a_notice_not_in_the_list_says_nothing(config: Config) -> None:
    """A link cannot make the desk say anything: an unknown ?m= is no notice."""
    (desk,) = asyncio.run(_seen(config, "viewer@example.org", "/desk/page?m=hello"))
    assert desk.message == ""


def test_the_role_decides_what_the_context_allows(config: Config) -> None:
    """A viewer's context cannot edit; an owner's can do everything."""
    (viewer,) = asyncio.run(_seen(config, "viewer@example.org", "/desk/page"))
    (owner,) = asyncio.run(_seen(config, "owner@example.org", "/desk/page"))
    assert not viewer.can(Role.EDITOR)
    assert owner.can(Role.OWNER)
