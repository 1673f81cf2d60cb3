"""Watched feeds: the author's existing blog (Wix, WordPress, Ghost, Substack) as a source.

Each new item of a watched feed is written into content/ as an ordinary article file
(`importer.write_new`), so it is built, syndicated and mailed exactly like a local
article: the daemon's "new article" step notices it by its `Article.id`, the same id
`content.load_articles` gives it, and applies the publish policy once. The item's own
id (guid / atom:id) is remembered in the store, so an item that is re-published or
edited upstream never becomes new again; the author's edits to the file are theirs.

Polls are polite: conditional GET with the stored ETag and Last-Modified (a 304 costs
one request and nothing else), each source at its own interval. The first poll of a new
source marks the back catalogue as seen; with `import_backlog` it is imported instead,
filed as back catalogue so that it fills the archive and feeds without being mailed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from publisher.config import Config, SourceSettings
from publisher.content import extract, importer
from publisher.content.fetch import fetch
from publisher.errors import PublisherError, SourceError
from publisher.models import Article
from publisher.store import publishing
from publisher.store import sources as store

__all__ = ["PollResult", "due_sources", "file_as_backlog", "poll_all", "poll_source"]

log = logging.getLogger(__name__)

# A job that fires every `interval` seconds finds its source due even if the last poll
# started a moment late.
_DUE_SLACK = 0.9


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll of one watched feed found."""

    new_articles: list[Article] = field(default_factory=list)
    """Articles written into content/ by this poll, oldest first."""
    unchanged: bool = False
    """The feed answered 304 Not Modified: nothing was parsed or written."""
    error: str | None = None
    """Why the poll (or some items of it) failed; the message names the feed and the fix."""
    source: str = ""
    """The feed's URL."""
    backlog: bool = False
    """True for a first poll: `new_articles` (if any) are the back catalogue, never mailed."""


def due_sources(config: Config, engine: sa.Engine, *, now: datetime) -> list[SourceSettings]:
    """Sources whose interval has passed since their last poll (or never polled)."""
    due = []
    for source in config.sources:
        state = store.get_state(engine, source.url)
        last = state.polled_at if state else None
        if last is None or now >= last + timedelta(seconds=source.interval * _DUE_SLACK):
            due.append(source)
    return due


def poll_all(
    config: Config,
    engine: sa.Engine,
    *,
    now: datetime,
    client: httpx.Client | None = None,
    only_due: bool = True,
) -> list[PollResult]:
    """Poll the watched feeds (by default only those whose interval has passed).

    A broken source is reported in its PollResult and never stops the others.
    """
    chosen = due_sources(config, engine, now=now) if only_due else list(config.sources)
    results = []
    for source in chosen:
        try:
            result = poll_source(config, engine, source, now=now, client=client)
        except Exception as exc:  # one source's bug must not stop the others
            log.exception("source %s: unexpected failure", source.name)
            result = PollResult(error=f"{source.url}: unexpected failure: {exc!r}", source=source.url)
        if result.error:
            log.warning("source %s: %s", source.name, result.error)
        results.append(result)
    return results


def poll_source(
    config: Config,
    engine: sa.Engine,
    source: SourceSettings,
    *,
    now: datetime,
    client: httpx.Client | None = None,
) -> PollResult:
    """Poll one watched feed; new items become article files in content/.

    Never raises for a problem with the feed itself (unreachable, refused, not a feed):
    that is reported in `PollResult.error` and remembered in the store for status.
    """
    state = store.get_state(engine, source.url)
    first_poll = state is None or state.ok_at is None
    try:
        fetched = fetch(
            source.url,
            config=config,
            client=client,
            etag=state.etag if state else None,
            last_modified=state.last_modified if state else None,
            accept=importer.FEED_ACCEPT,
        )
    except SourceError as exc:
        return _failed(engine, source, str(exc), now)
    if fetched.not_modified:
        store.record_success(engine, source.url, etag=fetched.etag, last_modified=fetched.last_modified, now=now)
        return PollResult(unchanged=True, source=source.url)
    try:
        feed = extract.parse_feed(fetched.body, url=fetched.url)
    except SourceError as exc:
        return _failed(engine, source, str(exc), now)

    entries: dict[str, Any] = {}
    for entry in feed.entries:
        item_id = extract.item_id(entry)
        if item_id:
            entries.setdefault(item_id, entry)
    known = store.known_items(engine, source.url, entries)
    fresh = [(item_id, entry) for item_id, entry in entries.items() if item_id not in known]

    if first_poll and not source.import_backlog:
        store.add_items(engine, source.url, [(item_id, "", False) for item_id, _ in fresh], now=now)
        store.record_success(engine, source.url, etag=fetched.etag, last_modified=fetched.last_modified, now=now)
        log.info("source %s: first poll, %d existing items marked as seen", source.name, len(fresh))
        return PollResult(source=source.url, backlog=True)

    articles, problems = _import_items(config, engine, source, fresh, feed_url=fetched.url, now=now)
    if first_poll:
        file_as_backlog(engine, articles, origin=source.url, now=now)
    # With a failed item, forget the validators so that the next poll reads the feed
    # again (rather than a 304) and retries it.
    store.record_success(
        engine,
        source.url,
        etag=None if problems else fetched.etag,
        last_modified=None if problems else fetched.last_modified,
        now=now,
    )
    error = "; ".join(problems) if problems else None
    return PollResult(new_articles=articles, error=error, source=source.url, backlog=first_poll)


def _failed(engine: sa.Engine, source: SourceSettings, message: str, now: datetime) -> PollResult:
    store.record_failure(engine, source.url, error=message, now=now)
    return PollResult(error=message, source=source.url)


def _import_items(
    config: Config,
    engine: sa.Engine,
    source: SourceSettings,
    fresh: list[tuple[str, Any]],
    *,
    feed_url: str,
    now: datetime,
) -> tuple[list[Article], list[str]]:
    """Write each fresh item into content/ and remember it; oldest first."""
    converted = []
    problems: list[str] = []
    for item_id, entry in fresh:
        try:
            converted.append((item_id, extract.entry_to_article(entry, feed_url=feed_url, config=config, now=now)))
        except PublisherError as exc:
            problems.append(f"item {item_id}: {exc}")
    converted.sort(key=lambda pair: pair[1].date)
    taken = importer.slugs_in_use(config) if converted else {}
    articles: list[Article] = []
    for item_id, imported in converted:
        try:
            path, article = importer.write_new(config, imported, taken=taken)
        except (PublisherError, OSError) as exc:
            problems.append(f"item {item_id}: {exc}")
            continue
        store.add_items(engine, source.url, [(item_id, article.slug, True)], now=now)
        log.info("source %s: new item %s -> %s", source.name, item_id, path.name)
        articles.append(article)
    return articles, problems


def file_as_backlog(engine: sa.Engine, articles: Sequence[Article], *, origin: str, now: datetime) -> None:
    """Mark imported back-catalogue articles as noticed, so the publish step never mails them.

    Before the publish step's first look, that look files everything as back catalogue
    anyway, so then this leaves them to it.
    """
    if not articles or not publishing.catalogue_filed(engine):
        return
    for article in articles:
        publishing.mark_seen(
            engine, article_id=article.id, slug=article.slug, origin=origin, handled="backlog", now=now
        )
