"""The desk shows who an issue went to (its own page, linked from the issue's) and what a
reader received (on their page): each copy's state in words, times on the publication's clock."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from desk_support import add_users, quick_hashes, sign_in
from store_support import BACKENDS, open_test_store
from web_support import SECRET, live_server, make_publication

from publisher.config import Config, load_config
from publisher.store import ledger, open_store
from publisher.store import subscribers as subscriber_store
from publisher.store.schema import deliveries
from publisher.web import create_app

SENT_AT = datetime(2026, 12, 7, 14, 3, tzinfo=UTC)  # 09:03 in New York


@pytest.fixture(params=BACKENDS)
def config(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    """The publication on New York's clock, its store SQLite, or PostgreSQL when one is named."""
    quick_hashes(monkeypatch)
    make_publication(tmp_path)
    path = tmp_path / "config.toml"
    text = path.read_text(encoding="utf-8").replace('language = "en"', 'language = "en"\ntimezone = "America/New_York"')
    if request.param == "postgresql":
        engine = open_test_store("postgresql", tmp_path)
        text = text.replace(
            'url = "sqlite:///publisher.db"', f'url = "{engine.url.render_as_string(hide_password=False)}"'
        )
        engine.dispose()
    path.write_text(text, encoding="utf-8")
    config = load_config(path, env={"PUBLISHER_SECRET": SECRET})
    add_users(config)
    return config


@pytest.fixture
def url(config: Config) -> Iterator[str]:
    # The app is given the store, and the store disposed of after it: an app left to open
    # its own would leave its PostgreSQL connections open for the garbage collector.
    engine = open_store(config.store_url)
    try:
        with live_server(create_app(config, engine=engine)) as base:
            yield base
    finally:
        engine.dispose()


def sent_issue(config: Config, subject: str = "Sleep after a loss", key: str = "k") -> int:
    """An issue to three readers: reader0's copy failed, the others were accepted at SENT_AT."""
    engine = open_store(config.store_url)
    for n in range(3):
        if subscriber_store.find(engine, f"reader{n}@example.org") is None:
            subscriber_store.add(engine, f"reader{n}@example.org", now=SENT_AT)
    issue_id = ledger.create_issue(
        engine,
        key=key,
        kind="article",
        slug=key,
        subject=subject,
        html="<p>x</p>",
        text="x",
        tag=None,
        status="done",
        now=SENT_AT,
    )
    ledger.enqueue(engine, issue_id, now=SENT_AT)
    with engine.begin() as conn:
        mine = deliveries.c.issue_id == issue_id
        conn.execute(
            sa.update(deliveries)
            .where(mine, deliveries.c.email == "reader0@example.org")
            .values(state="failed", attempts=5, detail="550 5.1.1 mailbox unavailable")
        )
        conn.execute(
            sa.update(deliveries)
            .where(mine, deliveries.c.email != "reader0@example.org")
            .values(state="sent", sent_at=SENT_AT)
        )
    engine.dispose()
    return issue_id


def rows(page: str, table: str) -> list[str]:
    body = re.search(rf'<table id="{table}">.*?<tbody>(.*?)</tbody>', page, re.S)
    assert body, f"no table {table}"
    return [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()
        for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)
    ]


def test_the_issue_page_links_to_who_got_it(config: Config, url: str) -> None:
    """The report links to its readers' page rather than listing them itself."""
    issue_id = sent_issue(config)
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        page = http.get(f"/desk/issues/{issue_id}").text
    assert f'href="/desk/issues/{issue_id}/readers"' in page
    assert "reader1@example.org" not in page


def test_each_reader_is_listed_with_their_copys_state_and_time(config: Config, url: str) -> None:
    """Each reader links to their page; a failure gives the provider's reason; times read in New York."""
    issue_id = sent_issue(config)
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        page = http.get(f"/desk/issues/{issue_id}/readers").text
    assert rows(page, "issue-readers") == [
        "reader0@example.org failed: 550 5.1.1 mailbox unavailable —",
        "reader1@example.org accepted by the provider 2026-12-07 09:03",
        "reader2@example.org accepted by the provider 2026-12-07 09:03",
    ]
    engine = open_store(config.store_url)
    reader = subscriber_store.find(engine, "reader1@example.org")
    engine.dispose()
    assert reader is not None and f'<a href="/desk/subscribers/{reader.id}">reader1@example.org</a>' in page
    assert "When (America/New York)" in page


def test_the_list_filters_by_state_and_searches_by_address(config: Config, url: str) -> None:
    """ "Failed" lists the failed copy only; a search for "reader2" lists that reader only."""
    issue_id = sent_issue(config)
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        failed = http.get(f"/desk/issues/{issue_id}/readers", params={"state": "failed"}).text
        found = http.get(f"/desk/issues/{issue_id}/readers", params={"q": "reader2"}).text
    assert [r.split()[0] for r in rows(failed, "issue-readers")] == ["reader0@example.org"]
    assert [r.split()[0] for r in rows(found, "issue-readers")] == ["reader2@example.org"]
    assert '<option value="failed" selected>' in failed


def test_a_long_list_is_paged_by_the_ledger_rows_id(config: Config, url: str) -> None:
    """With 51 readers the first page shows 50 and links to the next, which holds the last one."""
    engine = open_store(config.store_url)
    for n in range(51):
        subscriber_store.add(engine, f"many{n:02}@example.org", now=SENT_AT)
    issue_id = ledger.create_issue(
        engine,
        key="m",
        kind="article",
        slug="m",
        subject="Many",
        html="<p>x</p>",
        text="x",
        tag=None,
        status="sending",
        now=SENT_AT,
    )
    ledger.enqueue(engine, issue_id, now=SENT_AT)
    engine.dispose()
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        first = http.get(f"/desk/issues/{issue_id}/readers").text
        link = re.search(r'href="(/desk/issues/\d+/readers\?[^"]*after=\d+)">Next page', first)
        assert link, "no next page"
        second = http.get(link.group(1).replace("&amp;", "&")).text
    assert len(rows(first, "issue-readers")) == 50
    assert [r.split()[0] for r in rows(second, "issue-readers")] == ["many50@example.org"]
    assert "Next page" not in second


def test_an_erased_reader_shows_as_erased(config: Config, url: str) -> None:
    """After an erasure the copy is listed as an erased reader's, with no address anywhere on the page."""
    issue_id = sent_issue(config)
    engine = open_store(config.store_url)
    subscriber_store.remove(engine, "reader0@example.org", now=SENT_AT, purge=True)
    engine.dispose()
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        page = http.get(f"/desk/issues/{issue_id}/readers").text
    assert rows(page, "issue-readers")[0].startswith("an erased reader failed")
    assert "reader0" not in page


def test_an_unknown_issue_or_state_is_refused(config: Config, url: str) -> None:
    """An issue that does not exist is a 404; a state the filter does not offer, a 400."""
    issue_id = sent_issue(config)
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        missing = http.get("/desk/issues/999/readers")
        odd = http.get(f"/desk/issues/{issue_id}/readers", params={"state": "opened"})
    assert missing.status_code == 404
    assert odd.status_code == 400 and "unknown state" in odd.text


@pytest.mark.parametrize("cursor", ["-1; drop", "²", "9" * 30])
def test_a_cursor_that_is_no_rows_number_is_told(config: Config, url: str, cursor: str) -> None:
    """A page cursor that is not a ledger row's number is a 400 that says so, on both lists."""
    issue_id = sent_issue(config)
    engine = open_store(config.store_url)
    reader = subscriber_store.find(engine, "reader1@example.org")
    engine.dispose()
    assert reader is not None
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        readers = http.get(f"/desk/issues/{issue_id}/readers", params={"after": cursor})
        received = http.get(f"/desk/subscribers/{reader.id}", params={"before": cursor})
    for answer in (readers, received):
        assert answer.status_code == 400 and "ledger row" in answer.text


def test_a_search_with_a_nul_or_past_any_address_finds_nobody(config: Config, url: str) -> None:
    """A NUL (which PostgreSQL's text cannot hold) or 400 characters: nobody matches, no error."""
    issue_id = sent_issue(config)
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        answers = [http.get(f"/desk/issues/{issue_id}/readers", params={"q": q}) for q in ("reader\x00", "r" * 400)]
    for answer in answers:
        assert answer.status_code == 200 and "No copy matches." in answer.text


def test_a_readers_page_lists_the_issues_they_received_newest_first(config: Config, url: str) -> None:
    """Two issues to reader0: the newer first, each subject linking to its issue, with its state."""
    older = sent_issue(config, "Sleep after a loss", "a")
    newer = sent_issue(config, "Walking in winter", "b")
    engine = open_store(config.store_url)
    reader = subscriber_store.find(engine, "reader1@example.org")
    engine.dispose()
    assert reader is not None
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        page = http.get(f"/desk/subscribers/{reader.id}").text
    assert rows(page, "reader-issues") == [
        "Walking in winter 2026-12-07 09:03 accepted by the provider",
        "Sleep after a loss 2026-12-07 09:03 accepted by the provider",
    ]
    assert f'<a href="/desk/issues/{newer}">Walking in winter</a>' in page
    assert f'<a href="/desk/issues/{older}">Sleep after a loss</a>' in page


def test_a_readers_long_history_is_paged(config: Config, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a page of one, the reader's page links to their older issues, which show the next one."""
    from publisher.web.desk import subscribers as desk_subscribers

    monkeypatch.setattr(desk_subscribers, "ISSUES_PAGE", 1)
    sent_issue(config, "Sleep after a loss", "a")
    sent_issue(config, "Walking in winter", "b")
    engine = open_store(config.store_url)
    reader = subscriber_store.find(engine, "reader1@example.org")
    engine.dispose()
    assert reader is not None
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        first = http.get(f"/desk/subscribers/{reader.id}").text
        link = re.search(r'href="(/desk/subscribers/\d+\?before=\d+)#received">Older issues', first)
        assert link, "no link to older issues"
        older = http.get(link.group(1)).text
    assert [r.split(" 2026")[0] for r in rows(first, "reader-issues")] == ["Walking in winter"]
    assert [r.split(" 2026")[0] for r in rows(older, "reader-issues")] == ["Sleep after a loss"]
