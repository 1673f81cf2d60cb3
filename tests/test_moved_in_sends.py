"""An article moved in as mailed by the service it came from: every door asks before mailing it again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from desk_support import add_users, csrf_of, quick_hashes, sign_in
from web_support import AppClient, live_server, make_publication

from publisher.config import Config
from publisher.errors import InvalidRequest
from publisher.services import access, issues, migration
from publisher.store import ledger, open_store
from publisher.store import subscribers as subscriber_store
from publisher.web import create_app

MOVED = """---
title: Sleep after a loss
date: 2024-03-12 08:00
tags: [sleep]
---

Grief changes sleep. Here is what helps.

<!-- moved in: ghost:5f3a (mailed there) -->
"""
SLUG = "sleep-after-a-loss"


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    quick_hashes(monkeypatch)
    config = make_publication(tmp_path)
    (tmp_path / "content").mkdir()
    (tmp_path / "content" / "2024-03-12-sleep-after-a-loss.md").write_text(MOVED, encoding="utf-8")
    add_users(config)
    engine = open_store(config.store_url)
    for n in range(3):
        subscriber_store.add(engine, f"reader{n}@example.org", now=datetime.now(UTC))
    engine.dispose()
    return config


@pytest.fixture
def url(config: Config) -> Iterator[str]:
    with live_server(create_app(config)) as base:
        yield base


def test_the_desk_warns_then_refuses_a_confirmed_send(config: Config, url: str) -> None:
    """The confirm page says when Ghost mailed it; confirming anyway is refused, nothing queued."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        csrf = csrf_of(http.get("/desk/").text)
        ask = http.post(f"/desk/articles/{SLUG}/send", data={"csrf": csrf})
        assert "moved in from Ghost, where it was mailed on 12 March 2024" in ask.text
        sent = http.post(f"/desk/articles/{SLUG}/send", data={"csrf": csrf, "confirm": "3"})
    assert sent.status_code == 400
    assert "sending it mails it again to 3 reader(s). To send it anyway" in sent.text
    engine = open_store(config.store_url)
    assert ledger.status(engine) == []
    engine.dispose()


def test_an_issue_sent_by_its_id_is_refused_without_again(config: Config) -> None:
    """The API's door (an issue created, then sent by id) asks too; `again` sends it."""
    engine = open_store(config.store_url)
    now = datetime.now(UTC)
    issue = issues.create_issue(config, engine, now=now, article=SLUG)
    with pytest.raises(InvalidRequest, match="mailed on 12 March 2024"):
        issues.send_issue(config, engine, issue.issue_id, now=now)
    assert issues.send_issue(config, engine, issue.issue_id, now=now, again=True) == 3
    engine.dispose()


@pytest.mark.parametrize(
    ("text", "draft", "mailed"),
    [
        ("body\n\n<!-- moved in: ghost:5f3a (mailed there) -->\n", True, True),
        ("body\n\n<!-- moved in: ghost:5f3a (not mailed there) -->\n", False, False),
        ("body\n\n<!-- moved in: ghost:5f3a -->\n", False, None),
        ("body\n\n<!-- moved in: ghost:5f3a -->\n", True, False),
        ("body\n\n<!-- moved in: wordpress:12 -->\n", False, False),
    ],
)
def test_the_file_says_whether_it_was_mailed_there(text: str, draft: bool, mailed: bool | None) -> None:
    """The marker's word wins; an older marker is unknown for a published post of a service that mails."""
    found = migration.moved_in(text, draft=draft)
    assert found is not None and found.mailed is mailed


def test_a_file_written_here_was_not_moved_in() -> None:
    """No marker, no origin: the article sends as any other."""
    assert migration.moved_in("just words <!-- a comment -->\n") is None


def test_the_api_refuses_then_sends_with_again(config: Config) -> None:
    """The API's send and schedule refuse the moved-in article (400, naming Ghost) until `again`."""
    engine = open_store(config.store_url)
    key = access.create_key(engine, "admin", ["admin"], now=datetime.now(UTC)).token
    client = AppClient(create_app(config, engine=engine))
    auth = {"authorization": f"Bearer {key}"}
    made = client.post("/api/v1/issues", headers=auth, json={"article": SLUG}).json()
    refused = client.post(f"/api/v1/issues/{made['id']}/send", headers=auth, json={})
    assert refused.status_code == 400 and "mailed on 12 March 2024" in refused.text
    planned = client.post(f"/api/v1/articles/{SLUG}/schedule", headers=auth, json={"at": "2099-01-01T09:00"})
    assert planned.status_code == 400 and "mailed on 12 March 2024" in planned.text
    assert [line.total for line in ledger.status(engine)] == [0]
    sent = client.post(f"/api/v1/issues/{made['id']}/send", headers=auth, json={"again": True})
    assert sent.status_code == 202 and sent.json()["added"] == 3
    engine.dispose()


def test_the_desk_asks_for_the_box_and_sends_once_it_is_ticked(config: Config, url: str) -> None:
    """The confirm page carries a required "Send it again anyway" box; ticked, the send goes."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        csrf = csrf_of(http.get("/desk/").text)
        ask = http.post(f"/desk/articles/{SLUG}/send", data={"csrf": csrf})
        assert 'name="again" value="on" required' in ask.text
        # The reason stands above the box it explains, once.
        assert ask.text.index('id="mailed-there"') < ask.text.index('id="send-again"')
        assert ask.text.count("where it was mailed on 12 March 2024") == 1
        refused = http.post(f"/desk/articles/{SLUG}/send", data={"csrf": csrf, "confirm": "3"})
        assert "tick \u201cSend it again anyway\u201d" in refused.text and "--again" not in refused.text
        sent = http.post(f"/desk/articles/{SLUG}/send", data={"csrf": csrf, "confirm": "3", "again": "on"})
    assert sent.status_code == 303 and "/desk/issues/" in sent.headers["location"]
    engine = open_store(config.store_url)
    assert [line.total for line in ledger.status(engine)] == [3]
    engine.dispose()


def test_the_desk_schedule_offers_the_box_after_the_refusal(config: Config, url: str) -> None:
    """Scheduling it is refused with the box offered; ticked, it is scheduled; nothing sent meanwhile."""
    form = {"at": "2099-01-05T07:00", "timezone": "", "tag": ""}
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        csrf = csrf_of(http.get("/desk/").text)
        refused = http.post(f"/desk/articles/{SLUG}/schedule", data={"csrf": csrf, **form})
        assert refused.status_code == 400
        assert 'id="schedule-again"' in refused.text and 'value="2099-01-05T07:00"' in refused.text
        done = http.post(f"/desk/articles/{SLUG}/schedule", data={"csrf": csrf, **form, "again": "on"})
    assert done.status_code == 303 and "m=scheduled" in done.headers["location"]
    engine = open_store(config.store_url)
    assert [line.total for line in ledger.status(engine)] == [0]
    engine.dispose()
