"""What a desk page costs besides its own work: one hop to a thread for the session and
the page together, and routing that asks only the routes of the path's first segment."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest
import sqlalchemy as sa
from desk_support import add_users, quick_hashes, sign_in
from sqlalchemy.pool import Pool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Match, Mount, Route, Router
from web_support import live_server, make_publication

from publisher.config import Config
from publisher.services import subscribers as subscriber_service
from publisher.store import open_store
from publisher.store.engine import POOL_SIZE
from publisher.store.schema import deliveries, issues, subscriber_tags
from publisher.store.schema import subscribers as rows
from publisher.web import create_app
from publisher.web.desk import auth, home
from publisher.web.desk import issues as issue_pages
from publisher.web.routing import IndexedRouter

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PAGES = ["/desk/", "/desk/subscribers", "/desk/subscribers?after=3", "/desk/subscribers?q=der1", "/desk/issues/1"]


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    quick_hashes(monkeypatch)
    config = make_publication(tmp_path)
    (tmp_path / "content").mkdir()
    add_users(config)
    engine = open_store(config.store_url)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(rows),
            [
                {
                    "email": f"reader{n}@example.org",
                    "name": "",
                    "status": "active",
                    "source": "test",
                    "created_at": NOW,
                    "updated_at": NOW,
                    "token_key": f"{n:032x}",
                }
                for n in range(12)
            ],
        )
        conn.execute(
            sa.insert(issues).values(
                key="i1",
                kind="article",
                slug="i1",
                subject="One",
                html="<p>x</p>",
                text="x",
                status="done",
                created_at=NOW,
            )
        )
        conn.execute(
            sa.insert(deliveries),
            [
                {
                    "issue_id": 1,
                    "subscriber_id": n + 1,
                    "email": f"reader{n}@example.org",
                    "name": "",
                    "state": "sent",
                    "attempts": 1,
                    "not_before": NOW,
                    "sent_at": NOW,
                    "provider_id": "",
                    "detail": "",
                    "uncertain": False,
                    "message_key": f"k{n}",
                }
                for n in range(12)
            ],
        )
    engine.dispose()
    return config


@pytest.fixture
def url(config: Config) -> Iterator[str]:
    with live_server(create_app(config)) as base:
        yield base


class CountingThreads(ThreadPoolExecutor):
    """A thread pool that counts the work handed to it."""

    handed = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        CountingThreads.handed += 1
        return super().submit(fn, *args, **kwargs)


@pytest.mark.parametrize("page", PAGES)
def test_a_page_goes_to_a_thread_once(url: str, page: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Home, Subscribers (a later page, a search) and the report read the session and make
    the page in one hop to a thread, not one for the session and another for the page."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        hops: list[object] = []
        real = anyio.to_thread.run_sync

        async def counted(*args: Any, **kwargs: Any) -> Any:
            hops.append(args[0])
            return await real(*args, **kwargs)

        monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
        monkeypatch.setattr(auth, "_SQLITE_PAGE_THREADS", CountingThreads(max_workers=2))
        CountingThreads.handed = 0
        answer = http.get(page)
    assert answer.status_code == 200
    assert len(hops) + CountingThreads.handed == 1


@pytest.mark.parametrize("page", PAGES)
def test_a_page_reads_through_one_connection(url: str, page: str) -> None:
    """Home, Subscribers and the report read the session and every figure through one
    connection from a pool, not one a query."""
    taken: list[object] = []

    def took(*args: object) -> None:
        taken.append(args)

    with httpx.Client(base_url=url) as http:
        sign_in(http)
        http.get(page)  # the session's last use is written now, not during the page below
        sa.event.listen(Pool, "checkout", took)
        try:
            answer = http.get(page)
        finally:
            sa.event.remove(Pool, "checkout", took)
    assert answer.status_code == 200
    assert len(taken) == 1


def test_on_sqlite_a_few_threads_make_the_pages(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten pages asked at once are made at most SQLITE_PAGE_THREADS at a time, not fifteen."""
    busy: list[int] = [0, 0]  # now, most
    lock = threading.Lock()
    real = home.home_view

    def counted(*args: Any, **kwargs: Any) -> home.HomeView:
        with lock:
            busy[0] += 1
            busy[1] = max(busy)
        try:
            time.sleep(0.05)
            return real(*args, **kwargs)
        finally:
            with lock:
                busy[0] -= 1

    monkeypatch.setattr(home, "home_view", counted)
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        cookies = http.cookies

    async def ask_together() -> list[int]:
        async with httpx.AsyncClient(base_url=url, cookies=cookies) as client:
            answers = await asyncio.gather(*(client.get("/desk/") for _ in range(10)))
        return [answer.status_code for answer in answers]

    assert asyncio.run(ask_together()) == [200] * 10
    assert busy[1] == auth.SQLITE_PAGE_THREADS


def test_a_page_is_answered_while_every_connection_of_the_store_is_held(config: Config) -> None:
    """A page's reads are lent their connection by a pool of their own: with all of the
    store's connections held elsewhere (writers, the API), Home is still answered."""
    engine = open_store(config.store_url)
    try:
        with live_server(create_app(config, engine=engine)) as base, httpx.Client(base_url=base) as http:
            sign_in(http)
            http.get("/desk/")
            held = [engine.connect() for _ in range(POOL_SIZE)]
            try:
                answer = http.get("/desk/", timeout=10)
            finally:
                for conn in held:
                    conn.close()
    finally:
        engine.dispose()
    assert answer.status_code == 200


def test_a_desk_page_is_matched_against_the_routes_of_its_segment(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Subscribers is found among the routes under /subscribers, not after every route before them."""
    asked: list[str] = []
    real = Route.matches

    def counted(self: Route, scope: Any) -> tuple[Match, Any]:
        asked.append(self.path)
        return real(self, scope)

    with live_server(create_app(config)) as base, httpx.Client(base_url=base) as http:
        sign_in(http)
        monkeypatch.setattr(Route, "matches", counted)
        assert http.get("/desk/subscribers").status_code == 200
    assert asked and all(path.startswith(("/desk", "/subscribers")) for path in asked)
    assert len(asked) <= 12


def _named(name: str) -> Any:
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(name)

    return endpoint


def _routes() -> list[Any]:
    return [
        Route("/", _named("home")),
        Route("/items", _named("items"), methods=["GET"]),
        Route("/items/{id:int}", _named("item")),
        Route("/items/new", _named("new")),
        Route("/{page}", _named("page"), methods=["GET"]),
        Route("/items", _named("items-post"), methods=["POST"]),
        Route("/about/", _named("about")),
        Mount("/files", routes=[Route("/{name}", _named("file"))]),
    ]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/items"),
        ("POST", "/items"),
        ("PUT", "/items"),
        ("GET", "/items/7"),
        ("GET", "/items/new"),
        ("GET", "/other"),
        ("POST", "/other"),
        ("GET", "/about"),
        ("GET", "/files/a.txt"),
        ("GET", "/nothing/here"),
        ("GET", "/items/7/"),
    ],
)
def test_the_indexed_router_answers_as_starlettes(method: str, path: str) -> None:
    """The same route, the same 405, the same redirect of a slash and the same 404."""

    async def ask(router: Router) -> tuple[int, str, str | None]:
        transport = httpx.ASGITransport(app=router)
        async with httpx.AsyncClient(transport=transport, base_url="http://desk.test") as client:
            answer = await client.request(method, path)
        return answer.status_code, answer.text, answer.headers.get("location")

    plain, indexed = (asyncio.run(ask(router)) for router in (Router(_routes()), IndexedRouter(_routes())))
    assert plain == indexed
    assert indexed[0] != 500


@pytest.mark.parametrize("page", ["/desk/subscribers", "/desk/subscribers?after=3", "/desk/subscribers?q=der1"])
def test_the_list_page_reads_only_the_columns_it_shows(config: Config, page: str) -> None:
    """A page of the list reads address, name and status (and tags), not each reader's dates and consent."""
    engine = open_store(config.store_url)
    ran: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda conn, cursor, statement, *rest: ran.append(statement))
    with live_server(create_app(config, engine=engine)) as base, httpx.Client(base_url=base) as http:
        sign_in(http)
        ran.clear()
        answer = http.get(page)
    engine.dispose()
    assert answer.status_code == 200
    listed = [statement for statement in ran if "subscribers.email" in statement]
    assert listed
    assert not [statement for statement in listed if "consent_text" in statement or "created_at" in statement]


@pytest.mark.parametrize(("page", "module"), [("/desk/", home), ("/desk/issues/1", issue_pages)])
def test_a_chart_whose_numbers_did_not_change_is_not_drawn_again(
    url: str, page: str, module: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Home's joins and departures and the report's pace are drawn once for the same numbers."""
    drawn: list[str] = []
    real = module.bar_chart

    def counted(title: str, *args: Any, **kwargs: Any) -> str:
        drawn.append(title)
        return str(real(title, *args, **kwargs))

    monkeypatch.setattr(module, "bar_chart", counted)
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        first, second = http.get(page), http.get(page)
    assert first.status_code == second.status_code == 200
    assert "<svg" in second.text
    chart = "Joins and departures" if module is home else "Messages sent per minute"
    assert len([title for title in drawn if title.startswith(chart)]) <= 1


def test_the_list_page_reads_the_kept_counts_once(config: Config) -> None:
    """The counts by status and the tags' counts come from one reading of `list_counts`."""
    engine = open_store(config.store_url)
    ran: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda conn, cursor, statement, *rest: ran.append(statement))
    with live_server(create_app(config, engine=engine)) as base, httpx.Client(base_url=base) as http:
        sign_in(http)
        ran.clear()
        assert http.get("/desk/subscribers").status_code == 200
    engine.dispose()
    assert len([statement for statement in ran if "list_counts" in statement]) == 1


def _figures_agree(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.insert(rows),
            [
                {
                    "email": f"r{n}@example.org",
                    "name": "",
                    "status": status,
                    "source": "test",
                    "created_at": NOW,
                    "updated_at": NOW,
                    "token_key": f"f{n:031x}",
                }
                for n, status in enumerate(["active", "active", "active", "unsubscribed", "pending", "bounced"])
            ],
        )
        ids = [
            row[0] for row in conn.execute(sa.select(rows.c.id).where(rows.c.email.like("r_@%")).order_by(rows.c.id))
        ]
        conn.execute(
            sa.insert(subscriber_tags),
            [{"subscriber_id": ids[n], "tag": tag} for n, tag in [(0, "a"), (1, "a"), (1, "b"), (3, "c"), (4, "b")]],
        )
    both = subscriber_service.tags_and_counts(engine)
    assert both == (subscriber_service.tags(engine), subscriber_service.counts(engine))
    assert [(t.tag, t.active, t.total) for t in both[0]] == [("a", 2, 2), ("b", 1, 2), ("c", 0, 1)]


def test_tags_and_counts_read_together_agree_with_each_read_alone(config: Config) -> None:
    """One reading gives the same tags, in the same order, and the same counts as two."""
    engine = open_store(config.store_url)
    try:
        _figures_agree(engine)
    finally:
        engine.dispose()


def test_tags_and_counts_read_together_agree_on_postgresql(pg: sa.Engine) -> None:
    """The same on PostgreSQL, where the counts are kept rows plus change lines not yet folded."""
    _figures_agree(pg)
