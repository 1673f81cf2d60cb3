"""WebSub publish pings: tell each hub that a feed changed, so readers hear at once.

Hubs disagree on the parameter's name (the spec's `hub.url`, some hubs' `hub.topic`),
so each ping carries both. A hub that is down is retried later from the pings table and
never blocks publishing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

import httpx
import sqlalchemy as sa

from publisher import __version__
from publisher.config import Config
from publisher.store import publishing

__all__ = ["announce", "feed_topics", "ping", "send_due_pings"]

log = logging.getLogger(__name__)


FEED_SUFFIXES = (".xml", ".json")


def feed_topics(config: Config, written: Sequence[str] | None = None) -> list[str]:
    """The feed URLs announced with rel=self, which hubs know as topics.

    With `written` (paths a build wrote, relative to the output folder), only the feeds
    that changed, per-tag feeds included; without it, the three main feeds.
    """
    base = config.site_url
    if written is None:
        return [f"{base}/feeds/rss.xml", f"{base}/feeds/atom.xml", f"{base}/feeds/feed.json"]
    return [
        f"{base}/{path}"
        for path in sorted(written)
        if path.startswith("feeds/") and path.endswith(FEED_SUFFIXES)
    ]


def ping(client: httpx.Client, hub: str, topic: str) -> tuple[bool, str]:
    """One publish ping. (True, detail) when the hub accepted it (any 2xx)."""
    try:
        response = client.post(
            hub,
            data={"hub.mode": "publish", "hub.url": topic, "hub.topic": topic},
            headers={"User-Agent": f"publisher/{__version__}"},
        )
    except httpx.HTTPError as exc:
        return False, f"{type(exc).__name__}: {exc}"
    detail = f"HTTP {response.status_code}"
    if response.is_success:
        return True, detail
    return False, f"{detail}: {response.text[:200]}"


def send_due_pings(
    config: Config, db: sa.Engine, *, now: datetime, client: httpx.Client | None = None
) -> list[tuple[publishing.Ping, bool, str]]:
    """Send every ping whose time has come; record each answer for retry or done."""
    due = publishing.due_pings(db, now=now)
    if not due:
        return []
    own = client is None
    http = client or httpx.Client(timeout=config["fetch.timeout"])
    results: list[tuple[publishing.Ping, bool, str]] = []
    try:
        for item in due:
            ok, detail = ping(http, item.hub, item.topic)
            publishing.record_ping(db, item, ok=ok, detail=detail, now=now)
            (log.info if ok else log.warning)("websub ping %s for %s: %s", item.hub, item.topic, detail)
            results.append((item, ok, detail))
    finally:
        if own:
            http.close()
    return results


def announce(
    config: Config, db: sa.Engine, *, now: datetime, written: Sequence[str] | None = None
) -> int:
    """Queue a ping to every configured hub for each feed that changed (see `feed_topics`)."""
    return publishing.queue_pings(db, config["feeds.hubs"], feed_topics(config, written), now=now)
