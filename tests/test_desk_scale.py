"""The desk on a long list: Subscribers' search offers to look further when it stopped for
time, an issue's report reads the ledger's counts once, and a page asked again builds no
statement and reads no template file again."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from desk_support import add_users, quick_hashes, sign_in
from web_support import live_server, make_publication

from publisher.config import Config
from publisher.services import stats
from publisher.store import ledger, open_store
from publisher.store.schema import deliveries, issues
from publisher.store.schema import subscribers as rows
from publisher.store.subscribers import reading
from publisher.web import create_app

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    quick_hashes(monkeypatch)
    config = make_publication(tmp_path)
    (tmp_path / "content").mkdir()
    add_users(config)
    engine = open_store(config.store_url)
    with engine.begin() as conn:
        conn.execute(sa.insert(rows), [
            {"email": f"reader{n}@example.org", "name": "", "status": "active", "source": "test",
             "created_at": NOW, "updated_at": NOW, "token_key": f"{n:032x}"} for n in range(60)
        ])
        issue_id = conn.execute(sa.insert(issues).values(
            key="i1", kind="article", slug="i1", subject="One", html="<p>x</p>", text="x", status="done",
            created_at=NOW,
        ).returning(issues.c.id)).scalar_one()
        conn.execute(sa.insert(deliveries), [
            {"issue_id": issue_id, "subscriber_id": n + 1, "email": f"reader{n}@example.org", "name": "",
             "state": "sent", "attempts": 1, "not_before": NOW, "sent_at": NOW, "provider_id": "", "detail": "",
             "uncertain": False, "message_key": f"k{n}"} for n in range(60)
        ])
    engine.dispose()
    return config


@pytest.fixture
def url(config: Config) -> Iterator[str]:
    with live_server(create_app(config)) as base:
        yield base


def test_a_search_stopped_for_time_offers_to_look_further(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Out of time after ten readers: the page says how far it looked and links on from there."""
    monkeypatch.setattr(reading, "SEARCH_STEP", 10)
    monkeypatch.setattr(reading, "SEARCH_TIME", 0.0)
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        page = http.get("/desk/subscribers", params={"q": "r5"})  # too short for the trigram index
    assert page.status_code == 200
    assert "stopped after the readers up to number 10" in page.text
    assert "after=10\">Look further</a>" in page.text


@pytest.mark.parametrize("after", ["\u00b2", "1" * 30, "-1", "3 ", "0x10"])
def test_a_page_after_a_cursor_that_is_no_number_is_refused_in_words(url: str, after: str) -> None:
    """A hand-made `after` (a superscript two, which str.isdigit takes and int refuses; more
    digits than any reader's number) answers 400 with a sentence, never a server error."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        page = http.get("/desk/subscribers", params={"after": after})
        good = http.get("/desk/subscribers", params={"after": "30"})
    assert page.status_code == 400 and "a page starts after a reader&#x27;s number" in page.text
    assert good.status_code == 200 and "reader31@example.org" in good.text


@pytest.mark.parametrize("query", ["page=\u00b2", "page=" + "9" * 5000, "page=-1"])
def test_the_media_page_takes_a_page_that_is_no_number_for_the_first(url: str, query: str) -> None:
    """`/desk/media?page=²` (which str.isdigit takes and int refuses) or 5,000 digits: page 1."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        page = http.get(f"/desk/media?{query}")
    assert page.status_code == 200 and "<h1>Media</h1>" in page.text


def test_the_report_reads_the_ledger_counts_once(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counts, reasons, complaint rate and pace come from one reading of the ledger's summary."""
    calls: list[object] = []
    original = ledger.status

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(args)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ledger, "status", counted)
    engine = open_store(config.store_url)
    report = stats.issue_report(engine, 1, addresses=True, shown=10)
    engine.dispose()
    assert report.status.sent == 60 and report.counts.sent == 60
    assert [m.sent for m in report.pace] == [60]
    assert len(calls) == 1


@pytest.mark.parametrize(
    "page", ["/desk/", "/desk/subscribers", "/desk/subscribers?after=30", "/desk/subscribers?q=der5", "/desk/issues/1"]
)
def test_a_page_asked_again_builds_no_statement_again(config: Config, page: str) -> None:
    """Home, Subscribers (a later page, a search) and the report run, the second time, the
    very statements they ran the first: each is built once, not on every request."""
    engine = open_store(config.store_url)
    ran: list[list[object]] = [[], []]
    sa.event.listen(engine, "before_execute", lambda conn, statement, *rest: ran[-1].append(statement))
    with live_server(create_app(config, engine=engine)) as base, httpx.Client(base_url=base) as http:
        sign_in(http)
        ran.append([])
        assert http.get(page).status_code == 200
        ran.append([])
        assert http.get(page).status_code == 200
    engine.dispose()
    first, second = ran[-2], ran[-1]
    assert second
    built_again = [str(statement) for statement in second if not any(statement is s for s in first)]
    assert built_again == []


def test_a_page_asked_again_reads_no_template_file(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    """The desk's templates are loaded once: a page asked again does not look at their files."""
    looked: list[str] = []
    real = os.path.getmtime

    def getmtime(path: str) -> float:
        looked.append(str(path))
        return real(path)

    with live_server(create_app(config)) as base, httpx.Client(base_url=base) as http:
        sign_in(http)
        assert http.get("/desk/subscribers").status_code == 200
        monkeypatch.setattr(os.path, "getmtime", getmtime)
        assert http.get("/desk/subscribers").status_code == 200
    assert [path for path in looked if "templates" in path] == []
