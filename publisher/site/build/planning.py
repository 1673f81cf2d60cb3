"""The pure half of a build: articles in, every output planned and rendered, no file written.

`render_site` returns the whole site as a mapping of relative path to bytes (apart from
reading templates and the content folder's other files, which the site carries at the
same path). Newsletter previews cost a Jinja and premailer run each, so only the newest
`build.previews` articles get one, and an article too long to be a newsletter gets only
a warning. Hundreds of outputs to render go to forked worker processes when allowed.
"""

from __future__ import annotations

import gc
import hashlib
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from publisher import content
from publisher.config import Config, sqlite_path
from publisher.errors import BuildError
from publisher.models import Article
from publisher.site import archive, build_cache, outputs

if TYPE_CHECKING:
    import jinja2

__all__ = [
    "ARTICLE_SUFFIXES",
    "PARALLEL_RENDER",
    "PREVIEW_MANAGE",
    "PREVIEW_MAX_HTML",
    "PREVIEW_UNSUBSCRIBE",
    "Progress",
    "Site",
    "newsletter_preview",
    "preview_refusal",
    "render_site",
]


PREVIEW_UNSUBSCRIBE = "/unsubscribe/preview"
"""Path (under the app's public URL) of the visible placeholder unsubscribe link in previews."""
PREVIEW_MANAGE = "/manage/preview"
"""The same for the "manage your subscription" link."""
PREVIEW_MAX_HTML = 500_000
"""Characters of article HTML past which no newsletter preview is rendered (see above)."""
_SLUG = re.compile(r"^[^/\\.\s][^/\\\s]*$")
_RESERVED = frozenset({"feeds", "newsletters", *archive.ARCHIVE_FOLDERS, *archive.ARCHIVE_FILES})


@dataclass(frozen=True, slots=True)
class Site:
    """Everything one build produces, not yet written."""

    files: Mapping[str, bytes]
    """Relative POSIX path under the output folder -> exact bytes."""
    warnings: tuple[str, ...] = field(default_factory=tuple)


Progress = Callable[[str, int, int], None]
"""Told (stage, done, total) as a build goes: a terminal shows it, nothing else needs to."""


def render_site(
    config: Config, articles: Sequence[Article], now: datetime, *, progress: Progress | None = None
) -> Site:
    """Every output file of the publication as bytes. Pure apart from reading templates and images."""
    return _render_all(config, _plan_site(config, articles, now, outputs.InMemory()), progress)


def _plan_site(
    config: Config,
    articles: Sequence[Article],
    now: datetime,
    bodies: outputs.Bodies,
    refs: build_cache.TemplateRefs | None = None,
    previous: build_cache.PlanSnapshot | None = None,
    compiled: jinja2.BytecodeCache | None = None,
) -> outputs.SitePlan:
    public = sorted((a for a in articles if a.is_public(now)), key=lambda a: (a.date, a.slug), reverse=True)
    sequence = outputs.sequence_key(public)
    if previous is not None and previous.sequence == sequence:
        # The slugs of a build that accepted them, in the same order (the record is of this
        # code): only an edited article's id can now be another's.
        if len({article.id for article in public}) != len(public):
            _check_slugs(public)
    else:
        _check_slugs(public)

    def preview(article: Article) -> tuple[dict[str, bytes], tuple[str, ...]]:
        html, eml, notes = newsletter_preview(config, article)
        return {f"newsletters/{article.slug}.html": html, f"newsletters/{article.slug}.eml": eml}, notes

    plan = outputs.plan_site(
        config,
        public,
        now,
        bodies,
        preview=preview,
        refuse=preview_refusal,
        assets=_asset_files(config),
        refs=refs,
        previous=previous,
        sequence=sequence,
        compiled=compiled,
    )
    return replace(plan, items=(*plan.items, *_moved_pages(config, plan)))


def _moved_pages(config: Config, plan: outputs.SitePlan) -> list[outputs.Output]:
    """Old addresses of moved-in articles, for a static host (`store.redirects.site_files`)."""
    database = sqlite_path(config.store_url)
    if database is not None:
        if not Path(database).is_file():
            return []  # no database yet, so no redirects: the store's code is not even loaded
        from publisher.store.redirect_peek import may_have_redirects

        if not may_have_redirects(database):
            return []  # none moved in: SQLAlchemy is not loaded for them
    from publisher.store import redirects

    found = redirects.for_build(config.store_url)
    if not found:
        return []
    taken = frozenset(plan.paths())
    listed = "\n".join(f"{r.old_path} {r.target}" for r in found)
    key = "moved:" + hashlib.sha256(f"{outputs.environment_key(config)}\n{listed}".encode()).hexdigest()
    files = redirects.site_files(found, taken)
    return [outputs.Output("writing", tuple(files), key, partial(_rendered, MappingProxyType(files)))]


def _rendered(files: Mapping[str, bytes]) -> outputs.Rendered:
    return dict(files), ()


def _render_all(config: Config, plan: outputs.SitePlan, progress: Progress | None) -> Site:
    files: dict[str, bytes] = {}
    warnings: list[str] = []
    tell = _stages(plan, progress)
    for item in plan.items:
        if isinstance(item, str):
            warnings.append(item)
            continue
        assert isinstance(item, outputs.Output)  # planned without a snapshot: nothing recorded
        tell(item)
        rendered, notes = item.render()
        files.update(rendered)
        warnings.extend(notes)
    # One line per distinct problem: a missing postal address is one warning, not twenty.
    return Site(files=files, warnings=tuple(dict.fromkeys(warnings)))


def _stages(plan: outputs.SitePlan, progress: Progress | None) -> Callable[[outputs.Output], None]:
    """Tells `progress` of each stage as it starts (with the number of articles), and of
    each newsletter preview."""
    if progress is None:
        return lambda output: None
    articles = plan.articles
    previews = sum(1 for output in plan.outputs() if output.stage == "newsletter previews")
    seen: dict[str, int] = {}

    def tell(output: outputs.Output) -> None:
        done = seen.get(output.stage)
        if output.stage == "newsletter previews":
            seen[output.stage] = (done if done is not None else -1) + 1
            progress(output.stage, seen[output.stage], previews)
        elif done is None:
            seen[output.stage] = 0
            progress(output.stage, 0, articles)

    return tell


ARTICLE_SUFFIXES = (".md", ".markdown")


def _asset_files(config: Config) -> list[tuple[str, Path]]:
    """The content folder's files that are not articles (images, PDFs), by relative path.

    Names starting with "." or "_" are skipped, as articles' are (`content.content_files`'
    rules; walked here without making a path of each of thousands of articles). A missing
    content folder has none. A symbolic link stops the build (`content.link_refusal`):
    copied, it would publish whatever it points at.
    """
    folder = config.path_of("build.content")
    if not folder.is_dir():
        return []
    shown = f"{config['build.content']}".rstrip("/")
    found: list[tuple[tuple[str, ...], str, Path]] = []
    pending: list[tuple[str, tuple[str, ...]]] = [(os.fspath(folder), ())]
    while pending:
        top, parts = pending.pop()
        try:
            with os.scandir(top) as entries:
                listed = list(entries)
        except OSError:
            continue  # a folder that cannot be listed has nothing to publish
        for entry in listed:
            name = entry.name
            if name.startswith((".", "_")):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append((entry.path, (*parts, name)))
                    continue
                if name.endswith(ARTICLE_SUFFIXES):
                    continue
                link, regular = entry.is_symlink(), entry.is_file(follow_symlinks=False)
            except OSError:
                continue  # gone since the folder was listed
            relative = "/".join((*parts, name))
            if link:
                raise content.link_refusal(Path(entry.path), f"{shown}/{relative}", config)
            if regular:
                found.append(((*parts, name), relative, Path(entry.path)))
    found.sort(key=lambda item: item[0])
    return [(relative, path) for _parts, relative, path in found]


def preview_refusal(article: Article) -> str:
    """Why the article gets no newsletter preview (it is far too long for one); "" if it does."""
    size = len(article.html)
    if size <= PREVIEW_MAX_HTML:
        return ""
    return (
        f"{article.source or article.url}: no newsletter preview: the article's HTML is "
        f"{size // 1024:,} KB, and mail clients clip a newsletter after about 100 KB; send "
        "its summary with a link to the archive page instead"
    )


def newsletter_preview(config: Config, article: Article) -> tuple[bytes, bytes, tuple[str, ...]]:
    """The article's newsletter as a browser page and as a complete .eml, plus warnings.

    The reader is a placeholder whose unsubscribe link visibly says "preview". It is
    rendered and dated as of the article's last modification, not the clock, and never
    DKIM-signed, so an unchanged article's preview keeps its bytes from build to build.
    """
    from publisher.mail import newsletter  # a third of a second: only builds with a preview to render

    issue = newsletter.issue_for_article(config, article)
    rendered = newsletter.render_issue(config, issue, article.modified)
    template = newsletter.MessageTemplate.from_rendered(_without_dkim(config), rendered)
    host = urlsplit(config.site_url).hostname or "localhost"
    reader = newsletter.Recipient(
        delivery_id=None,
        email=f"reader@{host}",
        name="Preview Reader",
        unsubscribe_url=config.public_url + PREVIEW_UNSUBSCRIBE,
        manage_url=config.public_url + PREVIEW_MANAGE,
        message_id=f"<preview.{article.slug}@{host}>",
    )
    html, _text = template.parts(reader)
    eml = template.message_bytes(reader, article.modified)
    return _local_images(config, html).encode("utf-8"), eml, tuple(rendered.warnings)


def _local_images(config: Config, html: str) -> str:
    """The preview page with the site's own images by relative path.

    The page sits in newsletters/ of the build, beside the images the build copied, so it
    shows them opened from disk or served from anywhere, before the site is online (the
    .eml, like every sent copy, keeps the absolute addresses a mail client needs).
    """
    own = f'src="{config.site_url}/'
    return html.replace(own, 'src="../') if own in html else html


def _without_dkim(config: Config) -> Config:
    """The config with DKIM signing off, for previews.

    A DKIM-signed message published on the web could be replayed by anyone as genuine
    mail from the author's domain, and its signature's timestamp would change the bytes
    on every build.
    """
    if not str(config["delivery.dkim.domain"]).strip():
        return config
    return replace(config, values=MappingProxyType({**config.values, "delivery.dkim.domain": ""}))


def _check_slugs(articles: Iterable[Article]) -> None:
    """Refuse slugs that would escape the output folder or collide with another article,
    and ids that two articles share (feed readers would drop one of them)."""
    seen: dict[str, Article] = {}
    ids: dict[str, Article] = {}
    for article in articles:
        if not _SLUG.match(article.slug) or article.slug in _RESERVED:
            raise BuildError(
                f"{article.source or article.title}: slug {article.slug!r} cannot name a folder "
                f"(no slashes, spaces or leading dot; not {', '.join(sorted(_RESERVED))}); "
                "set another `slug:` in the front matter"
            )
        other = seen.get(article.slug)
        if other is not None:
            raise BuildError(
                f"{article.source}: slug {article.slug!r} is already used by {other.source}; "
                "give one of them another `slug:` in its front matter"
            )
        seen[article.slug] = article
        twin = ids.setdefault(article.id, article)
        if twin is not article:
            raise BuildError(
                f"{article.source}: id {article.id!r} is already used by {twin.source}; "
                "give one of them another `slug:` in its front matter"
            )


PARALLEL_RENDER = 400
"""Outputs to render from which a build renders them in worker processes (a cold build)."""
_RENDERING: list[Sequence[outputs.Output]] = []


def _render_many(todo: Sequence[outputs.Output], *, workers: bool) -> Iterator[outputs.Rendered]:
    """Each output of `todo` rendered, in order.

    Hundreds of them (a first build, a new template) are rendered by forked worker
    processes, one per core: they inherit the plan, so only the results cross back, and
    this process writes them in order as they come. The newsletter previews (premailer,
    a tenth of a second each) go first and one by one, so that no worker is left with
    them at the end while the others wait. Fewer outputs, or where fork is not the way
    to start processes (only Linux is sure), render here.
    """
    count = os.cpu_count() or 1
    if not workers or len(todo) < PARALLEL_RENDER or count < 2 or not sys.platform.startswith("linux"):
        yield from (item.render() for item in todo)
        return
    # Loaded only for hundreds of outputs to render (a first build), not for one edit.
    import multiprocessing
    from concurrent.futures import Future, ProcessPoolExecutor
    from warnings import catch_warnings, simplefilter

    heavy = [n for n, item in enumerate(todo) if item.stage == "newsletter previews"]
    light = [n for n, item in enumerate(todo) if item.stage != "newsletter previews"]
    size = max(1, min(32, len(light) // (count * 8)))
    chunks = [[n] for n in heavy] + [light[start : start + size] for start in range(0, len(light), size)]
    _RENDERING.append(todo)
    try:
        # gc.enable: a worker renders hundreds of pages, whose cycles the collector frees
        # (the command may have switched it off for its own few thousand long-lived objects).
        with (
            build_cache.frozen_for_fork(),
            ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("fork"), initializer=gc.enable) as pool,
        ):
            pending: dict[int, Future[dict[int, outputs.Rendered]]] = {}
            with catch_warnings():
                # Python 3.12 warns of fork in a process with threads (a terminal's progress
                # line is one); the workers only render, touching no lock those threads hold.
                simplefilter("ignore", DeprecationWarning)
                for chunk in chunks:
                    future = pool.submit(_render_chunk, chunk)
                    pending.update(dict.fromkeys(chunk, future))
            try:
                for number in range(len(todo)):
                    yield pending.pop(number).result()[number]
            except BaseException:
                pool.shutdown(cancel_futures=True)  # a page failed, or the build stops: no more
                raise
    finally:
        _RENDERING.pop()


def _render_chunk(numbers: list[int]) -> dict[int, outputs.Rendered]:
    """In a forked worker: some outputs of the plan being built, by their place in it."""
    return {number: _RENDERING[-1][number].render() for number in numbers}
