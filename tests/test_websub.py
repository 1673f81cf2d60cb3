"""WebSub publish pings reach a real hub on loopback; a hub that is down is retried later."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from hub import Hub

from publisher.config import Config, parse_config
from publisher.site import websub
from publisher.store import open_store, publishing

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def hub() -> Iterator[Hub]:
    server = Hub()
    yield server
    server.close()


def make_config(tmp_path: Path, hubs: list[str]) -> Config:
    text = f"""
[publication]
title = "T"
url = "https://example.org/"
[feeds]
hubs = {hubs!r}
[newsletter]
from = "T <t@example.org>"
[store]
url = "sqlite:///db.sqlite"
""".replace("'", '"')
    return parse_config(text, root=tmp_path, env={})


def test_ping_carries_mode_url_and_topic(hub: Hub, tmp_path: Path) -> None:
    """Each ping is a form POST with hub.mode=publish and the topic as both hub.url and hub.topic."""
    with httpx.Client() as client:
        ok, detail = websub.ping(client, hub.url, "https://example.org/feeds/atom.xml")
    assert ok, detail
    assert hub.pings == [
        {
            "hub.mode": ["publish"],
            "hub.url": ["https://example.org/feeds/atom.xml"],
            "hub.topic": ["https://example.org/feeds/atom.xml"],
        }
    ]


def test_announce_pings_every_feed_once_per_hub(hub: Hub, tmp_path: Path) -> None:
    """One announce queues and sends one ping per hub per feed."""
    config = make_config(tmp_path, [hub.url])
    db = open_store(config.store_url)
    websub.announce(config, db, now=NOW)
    results = websub.send_due_pings(config, db, now=NOW)
    assert [ok for _, ok, _ in results] == [True, True, True]
    topics = sorted(p["hub.url"][0] for p in hub.pings)
    assert topics == [
        "https://example.org/feeds/atom.xml",
        "https://example.org/feeds/feed.json",
        "https://example.org/feeds/rss.xml",
    ]
    assert websub.send_due_pings(config, db, now=NOW + timedelta(hours=1)) == []


def test_hub_down_is_retried_later(hub: Hub, tmp_path: Path) -> None:
    """A hub answering 503 gets the ping again after a backoff, not before."""
    config = make_config(tmp_path, [hub.url])
    db = open_store(config.store_url)
    hub.status = 503
    publishing.queue_pings(db, [hub.url], ["https://example.org/feeds/rss.xml"], now=NOW)
    first = websub.send_due_pings(config, db, now=NOW)
    assert [ok for _, ok, _ in first] == [False]
    assert websub.send_due_pings(config, db, now=NOW + timedelta(seconds=30)) == []
    hub.status = 202
    again = websub.send_due_pings(config, db, now=NOW + timedelta(minutes=2))
    assert [ok for _, ok, _ in again] == [True]
    assert len(hub.pings) == 2


def test_unreachable_hub_does_not_raise(tmp_path: Path) -> None:
    """A hub that refuses connections is reported as a failed attempt, never an exception."""
    with httpx.Client(timeout=2) as client:
        ok, detail = websub.ping(client, "http://127.0.0.1:9/", "https://example.org/feeds/rss.xml")
    assert not ok
    assert "ConnectError" in detail


def test_topics_are_the_feeds_a_build_changed(tmp_path: Path) -> None:
    """Given what a build wrote, only changed feeds are topics, per-tag feeds included; pages are not."""
    config = make_config(tmp_path, [])
    written = ["index.html", "fresh/index.html", "feeds/atom.xml", "feeds/tags/sleep.xml", "feeds/feed.json"]
    assert websub.feed_topics(config, written) == [
        "https://example.org/feeds/atom.xml",
        "https://example.org/feeds/feed.json",
        "https://example.org/feeds/tags/sleep.xml",
    ]
    assert websub.feed_topics(config, ["index.html"]) == []
