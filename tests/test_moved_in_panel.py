"""The editor's Send panel for an article another service mailed before it was moved in:
it says where and when, and what Send would do, before anything is pressed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from desk_support import add_users, csrf_of, quick_hashes, sign_in
from web_support import live_server, make_publication

from publisher.config import Config
from publisher.services.migration import moved_in
from publisher.store import open_store
from publisher.store import subscribers as subscriber_store
from publisher.web import create_app

SLUG = "sleep-after-a-loss"
MOVED = """---
title: Sleep after a loss
date: 2024-02-02 08:00
tags: [sleep]
---

Grief changes sleep. Here is what helps.

<!-- moved in: ghost:5f3a ({said}) -->
"""


def publication(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, marker: str) -> Config:
    quick_hashes(monkeypatch)
    config = make_publication(tmp_path)
    (tmp_path / "content").mkdir()
    text = MOVED.format(said=marker) if marker else MOVED.replace(" ({said})", "")
    (tmp_path / "content" / f"2024-02-02-{SLUG}.md").write_text(text, encoding="utf-8")
    add_users(config)
    engine = open_store(config.store_url)
    for n in range(3):
        subscriber_store.add(engine, f"reader{n}@example.org", now=datetime.now(UTC))
    engine.dispose()
    return config


@contextmanager
def editor(config: Config) -> Iterator[tuple[httpx.Client, str]]:
    """The article's editor over HTTP, signed in as an editor: the client and the page."""
    with live_server(create_app(config)) as base, httpx.Client(base_url=base) as http:
        sign_in(http)
        page = http.get(f"/desk/articles/{SLUG}")
        assert page.status_code == 200, page.text
        yield http, page.text


def panel(page: str) -> str:
    found = re.search(r'<section aria-labelledby="send-h" id="send">.*?</section>', page, re.S)
    assert found, "no Send panel"
    return " ".join(re.sub(r"<[^>]+>", "", found.group(0)).split())


def test_the_panel_says_where_it_was_mailed_and_what_send_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before anything is pressed: moved in from Ghost, mailed on 2 February 2024, and Send asks first."""
    config = publication(tmp_path, monkeypatch, "mailed there")
    with editor(config) as (_, page):
        said = panel(page)
    assert "Moved in from Ghost, where it was mailed on 2 February 2024." in said
    assert "its newsletter has not been sent" not in said
    assert "no newsletter has gone out from here" in said
    assert "Send now asks you to confirm that first" in said
    assert 'id="schedule-again"' in page  # the schedule's box is offered up front


def test_a_post_moved_in_before_mailing_was_recorded_is_probably_mailed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = publication(tmp_path, monkeypatch, "")
    with editor(config) as (_, page):
        said = panel(page)
    assert ("Moved in from Ghost, where it was published on 2 February 2024 and probably mailed "
            "(the move did not record it).") in said


def test_a_post_not_mailed_there_reads_as_any_other(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = publication(tmp_path, monkeypatch, "not mailed there")
    with editor(config) as (_, page):
        said = panel(page)
    assert "Moved in from" not in said and "its newsletter has not been sent" in said
    assert 'id="schedule-again"' not in page


def test_once_sent_from_here_the_panel_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sent again with the box ticked: the author has chosen, the panel no longer warns."""
    config = publication(tmp_path, monkeypatch, "mailed there")
    with editor(config) as (http, page):
        csrf = csrf_of(page)
        sent = http.post(f"/desk/articles/{SLUG}/send", data={"csrf": csrf, "confirm": "3", "again": "on"})
        assert sent.status_code == 303, sent.text
        said = panel(http.get(f"/desk/articles/{SLUG}").text)
    assert "Moved in from" not in said and "Sending now: 0 sent, 3 to go" in said


def test_an_article_quoting_the_moved_in_comment_is_not_taken_for_a_moved_in_post() -> None:
    """Only the comment moving in writes counts: on a line of its own, outside code. An
    article that shows one in a code block, in a sentence or indented is the author's own."""
    marker = "<!-- moved in: ghost:5f3a (mailed there) -->"
    assert moved_in(f"How the marker looks:\n\n```\n{marker}\n```\n") is None
    assert moved_in(f"~~~html\n{marker}\n~~~\n") is None
    assert moved_in(f"It reads `{marker}` at the end.\n") is None
    assert moved_in(f"    {marker}\n") is None
    found = moved_in(f"Body.\n\n```\n<!-- moved in: ghost:other (not mailed there) -->\n```\n\n{marker}\n")
    assert found is not None and (found.key, found.mailed) == ("ghost:5f3a", True)
