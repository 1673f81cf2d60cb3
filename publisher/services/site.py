"""The site as the author builds and checks it: `publisher build`, `publisher check`, `publisher new`.

`build` reads only the article files that changed (the article cache) and renders only
the pages that show them; a refused output folder writes nothing, not even the cache.
`check` writes nothing and, like a build, renders only what changed since the served
build (the rest it takes from the build's record): it reports every article file's problem
at once, a DKIM key that cannot sign, feeds that feedparser (the readers' common
denominator) finds malformed, and what a build would write; drafts and scheduled
articles get their newsletter rendered too, so a broken email template shows before a
send, not during it; a feed whose bytes an earlier check found well formed is not parsed
again. `start_draft` writes a new draft and never replaces a file.
`manifest_files` lists what the build in place wrote: the only files a server answers for.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from publisher import content
from publisher.config import Config
from publisher.errors import ContentError, PublisherError
from publisher.models import Article, BuildReport
from publisher.services.catalogue import read_through
from publisher.site import build, build_cache
from publisher.site.build import MANIFEST, manifest_files
from publisher.site.build_cache import ArticleCache

__all__ = [
    "MANIFEST",
    "Built",
    "Progress",
    "SiteCheck",
    "build_site",
    "check_site",
    "manifest_files",
    "no_cycle_collection",
    "output_folder",
    "start_draft",
]

Progress = Callable[[str, int, int], None]
"""Told (stage, done, total) as a build goes (`publisher.site.build.Progress`)."""


@dataclass(frozen=True, slots=True)
class Built:
    report: BuildReport
    output: Path
    public: int
    """Articles on the site now."""


@dataclass(frozen=True, slots=True)
class SiteCheck:
    """What `check` found: errors stop it (nothing after them was looked at)."""

    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    articles: int = 0
    public: int = 0
    drafts: int = 0
    scheduled: int = 0
    files: int = 0
    report: BuildReport | None = field(default=None)


@contextlib.contextmanager
def no_cycle_collection() -> Iterator[None]:
    """The cycle collector off for one build: its index, plan and record are thousands of
    objects that live to its end, and the collector would walk them again and again (a
    sixth of a rebuild's time; in the daemon, whose heap is bigger, a third). Freed by
    reference counting all the same; the worker processes that render pages collect as
    usual."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def output_folder(config: Config) -> Path:
    """`build.output`, refused (BuildError) where a build must not write."""
    return build.output_folder(config)


def build_site(config: Config, now: datetime, *, progress: Progress | None = None) -> Built:
    output = build.output_folder(config)  # a refused output writes nothing, not even the cache
    cache = ArticleCache(config)
    try:
        articles, problems = read_through(config, cache, fork=True)
        if problems:
            raise problems[0]
        report = build.build_site(config, articles, now, progress=progress, cache=cache, workers=True)
    finally:
        cache.save()
    return Built(report=report, output=output, public=_public_count(articles, now))


def _public_count(articles: Sequence[Article], now: datetime) -> int:
    return sum(1 for a in articles if a.is_public(now))


def _feed_errors(config: Config, checked: build.Checked) -> list[str]:
    """Feeds that feedparser, the readers' common denominator, finds malformed.

    A feed whose bytes an earlier check found well formed is not read again, nor parsed
    (feedparser takes a tenth of a second a feed: most of a check after one edit); the
    served build's record gives the hash of those not rendered now. When all are well
    formed, the cache remembers them (and only them) for the next check.
    """
    known = build_cache.well_formed_feeds(config)
    digests = {name: digest for name, digest in sorted(checked.feeds.items()) if name.endswith(".xml")}
    errors = []
    if not known.issuperset(digests.values()):
        import feedparser  # a fifth of a second, for `check` alone

        for name, digest in digests.items():
            if digest not in known:
                # Only whether it parses matters: feedparser's sanitising and resolving of
                # the entries' HTML (half its time) never makes a feed malformed.
                data = checked.feed_bytes(name)
                parsed = feedparser.parse(data, sanitize_html=False, resolve_relative_uris=False)
                if parsed.bozo:
                    errors.append(f"{name}: not a well-formed feed: {parsed.bozo_exception}")
        if not errors:
            build_cache.remember_well_formed(config, digests.values())
    return errors


def check_site(config: Config, now: datetime) -> SiteCheck:
    build.output_folder(config)  # a refused output checks nothing, not even the cache
    cache = ArticleCache(config)
    try:
        # Every article file's problem, not only the first, so one check finds them all.
        articles, problems = read_through(config, cache, fork=True)
        if problems:
            return SiteCheck(errors=tuple(str(p) for p in problems))
        if str(config["delivery.dkim.domain"]).strip():
            from publisher.mail import dkim_signing  # only with a key to check: a tenth of a second

            dkim_signing.DkimSigner.from_config(config)  # previews are unsigned: check the key here
        # Only what changed since the served build is rendered, as a build would.
        checked = build.check_build(config, articles, now, cache=cache)
        warnings = list(checked.report.warnings)
        pending = [a for a in articles if not a.is_public(now)]
        # Drafts and scheduled articles are mailed later: render their newsletter now. With
        # previews switched off the build renders no newsletter at all, so render the newest
        # article's here: a broken email template must show up before a send, not during it.
        newest = [a for a in articles if a.is_public(now)][:1] if not config["build.previews"] else []
        for article in [*pending, *newest]:
            whole = cache.full(article)
            refusal = build.preview_refusal(whole)
            if refusal:
                warnings.append(refusal)
                continue
            _html, _eml, notes = build.newsletter_preview(config, whole)
            warnings.extend(notes)
    finally:
        cache.save()
    errors = _feed_errors(config, checked)
    if errors:
        return SiteCheck(errors=tuple(errors))
    drafts = sum(1 for a in pending if a.draft)
    return SiteCheck(
        warnings=tuple(dict.fromkeys(warnings)),
        articles=len(articles), public=len(articles) - len(pending), drafts=drafts,
        scheduled=len(pending) - drafts, files=checked.files, report=checked.report,
    )


def start_draft(config: Config, title: str, now: datetime, *, shown: Callable[[Path], str] = str) -> Path:
    """A new draft in the content folder; ContentError if its file exists (`shown` names paths)."""
    text = content.new_draft_text(title, now, config)
    folder = config.path_of("build.content")
    path = folder / content.draft_file_name(title, now, config)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError as exc:
        raise ContentError(f"{shown(path)} already exists; edit it, or choose another title") from exc
    except OSError as exc:
        raise PublisherError(f"cannot write {shown(path)}: {exc.strerror or exc}") from exc
    return path
