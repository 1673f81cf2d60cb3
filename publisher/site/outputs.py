"""The site as a list of outputs: each file of a build with the key of what it is made from.

`plan_site` decides every file a build writes without rendering any: the feeds with the
articles each carries, the archive's pages, the newsletter previews, images and the
content folder's other files. Each `Output` has a key, a SHA-256 of everything its bytes
depend on: the whole config, every template, the code (`build_cache.code_fingerprint`)
and the keys of the articles it shows (an article's key changes whenever any of its
values does). A build whose record says a file was made from the same key skips its
rendering; rendering every output gives what `build.render_site` returns.

So an edited article re-renders its own page, its neighbours' (they link to it by title),
the list pages it is on, the feeds that carry it, the sitemap and the search index. A
changed setting or template re-renders everything: config and templates are read by
every page, and telling which page reads which would be a guess.

Articles may come without their HTML (the build's cache keeps it on disk until a page
needs it): `Bodies.full` gives one back whole, and only its own page, the feeds that
carry it and its newsletter preview ask for it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Protocol

from publisher import content
from publisher.config import Config
from publisher.content import i18n
from publisher.content.templates import default_templates_dir
from publisher.models import Article
from publisher.site import archive, feeds
from publisher.site.build_cache import code_fingerprint

__all__ = ["Bodies", "InMemory", "Output", "SitePlan", "environment_key", "plan_site"]

Rendered = tuple[dict[str, bytes], tuple[str, ...]]
"""What rendering an output gives: its files' bytes, and its warnings."""


class Bodies(Protocol):
    """Articles' keys, and the articles whole."""

    def key(self, article: Article) -> str:
        """A hash of all the article's values."""

    def about(self, article: Article) -> str:
        """A hash of the article's values but its HTML: what lists and the search index show."""

    def full(self, article: Article) -> Article:
        """The article with its HTML."""


class InMemory:
    """Articles that carry their own HTML; each one's key is a hash of all its values."""

    def __init__(self) -> None:
        self._keys: dict[int, tuple[Article, str, str]] = {}

    def _known(self, article: Article) -> tuple[Article, str, str]:
        known = self._keys.get(id(article))
        if known is None or known[0] is not article:
            bare = replace(article, html="")
            known = (article, _hash(repr(article)), _hash(repr(bare)))
            self._keys[id(article)] = known
        return known

    def key(self, article: Article) -> str:
        return self._known(article)[1]

    def about(self, article: Article) -> str:
        return self._known(article)[2]

    def full(self, article: Article) -> Article:
        return article


@dataclass(frozen=True, slots=True)
class Output:
    """Files rendered together (a newsletter preview is a page and an .eml), not yet rendered."""

    stage: str
    """What a progress line calls this part of the build: "feeds", "archive pages", ..."""
    paths: tuple[str, ...]
    key: str
    render: Callable[[], Rendered]


@dataclass(frozen=True, slots=True)
class SitePlan:
    """Every output of a build, and the warnings known before rendering, in build order.

    `items` mixes the two so that warnings keep the order a full render gives them.
    """

    items: tuple[Output | str, ...]
    articles: int
    """How many public articles the site shows."""
    environment: str
    """The key of the config, the templates and the code: every output's key includes it."""

    def outputs(self) -> Iterator[Output]:
        return (item for item in self.items if isinstance(item, Output))


def environment_key(config: Config) -> str:
    """A hash of what every page is made from besides articles: settings, templates, code."""
    hasher = hashlib.sha256()
    hasher.update(code_fingerprint().encode())
    hasher.update(repr(sorted((key, repr(value)) for key, value in config.values.items())).encode())
    hasher.update(str(config.root.resolve()).encode("utf-8", "surrogatepass"))
    for folder in (config.path_of("build.templates"), default_templates_dir()):
        hasher.update(b"\0folder\0" + str(folder).encode("utf-8", "surrogatepass"))
        for path in sorted(_files_under(folder)):
            try:
                data = path.read_bytes()
            except OSError:
                data = b"\0unreadable"
            hasher.update(f"\0{path.relative_to(folder).as_posix()}\0{len(data)}\0".encode("utf-8", "surrogatepass"))
            hasher.update(data)
    return hasher.hexdigest()


def _files_under(folder: Path) -> Iterator[Path]:
    for parent, dirs, files in os.walk(folder):
        dirs.sort()
        for name in files:
            yield Path(parent, name)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _key(environment: str, *inputs: str) -> str:
    hasher = hashlib.sha256(environment.encode())
    for part in inputs:
        data = part.encode("utf-8", "surrogatepass")
        hasher.update(len(data).to_bytes(8, "big"))
        hasher.update(data)
    return hasher.hexdigest()


def _stat_key(path: Path) -> str:
    """A file of the content folder by size and modification time, as make and rsync tell
    a changed file; reading every image at every build would cost what it saves."""
    try:
        stat = os.lstat(path)
    except OSError:
        return "missing"
    return f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}"


def _copy(config: Config, rel: str, path: Path) -> Rendered:
    """A file of the content folder as it is, never through a link (see `content.read_content`)."""
    return {rel: content.read_content(path, str(path), config)}, ()


def _preview(preview: Callable[[Article], Rendered], bodies: Bodies, article: Article) -> Rendered:
    return preview(bodies.full(article))


def plan_site(
    config: Config,
    public: Sequence[Article],
    now: datetime,
    bodies: Bodies,
    *,
    preview: Callable[[Article], Rendered],
    refuse: Callable[[Article], str],
    assets: Sequence[tuple[str, Path]],
) -> SitePlan:
    """The outputs of a build of `public` (public articles, newest first, slugs checked).

    `preview` renders an article's newsletter preview files, `refuse` says why it gets
    none ("" if it does); `assets` are the content folder's other files (path in the
    build, file).
    """
    environment = environment_key(config)
    items: list[Output | str] = []
    if config["feeds.per_tag"]:
        for _slug, names in feeds.tag_collisions(public):
            shown = ", ".join(f'"{name}"' for name in names)
            items.append(
                f"tags {shown} share one feed ({feeds.feed_path('atom', names[0])}); "
                "if they mean different things, rename one"
            )

    def feed(kind: feeds.FeedKind, articles: Sequence[Article], tag: str | None = None) -> Output:
        # A tag's articles (`tagged_articles`) are those the feed would pick by its tag.
        entries = feeds.feed_entries(config, articles, now)
        builder = feeds.BUILDERS[kind]
        path = feeds.feed_path(kind, tag)
        return Output(
            "feeds",
            (path,),
            _key(environment, "feed", kind, tag or "", *(bodies.key(a) for a in entries)),
            lambda: ({path: builder(config, [bodies.full(a) for a in entries], now, tag=tag)}, ()),
        )

    items.extend(feed(kind, public) for kind in ("rss", "atom", "json"))
    if config["feeds.per_tag"]:
        tagged = feeds.tagged_articles(public)
        items.extend(feed("atom", tagged[slug], name) for slug, name in feeds.site_tags(public).items())
    taken = {path for item in items if isinstance(item, Output) for path in item.paths}

    language = str(config["publication.language"])
    note = i18n.catalog_warning(language, config.path.name if config.path else "config.toml")
    if note:
        items.append(note)
    pages = archive.Archive(config, public)
    for path, inputs, render in pages.jobs(bodies.key, bodies.about, bodies.full):
        items.append(Output("archive pages", (path,), _key(environment, *inputs), _single(path, render)))
        taken.add(path)
    images, image_notes = archive.image_files(config, public, taken)
    for rel, source in images:
        items.append(
            Output("archive pages", (rel,), _key(environment, "image", str(source), _stat_key(source)),
                   partial(_copy, config, rel, source))
        )
    items.extend(image_notes)
    copied = {rel: source for rel, source in images}
    taken.update(copied)

    for article in public[: int(config["build.previews"])]:
        refusal = refuse(bodies.full(article))
        if refusal:
            items.append(refusal)
            continue
        items.append(
            Output(
                "newsletter previews",
                (f"newsletters/{article.slug}.html", f"newsletters/{article.slug}.eml"),
                _key(environment, "preview", bodies.key(article)),
                partial(_preview, preview, bodies, article),
            )
        )
    taken.update(path for item in items if isinstance(item, Output) for path in item.paths)
    for rel, source in assets:
        if rel in taken:
            # A lead image the archive copied already is the same file; anything else is in the way.
            if copied.get(rel) != source.resolve():
                items.append(f"{rel} in the content folder is in the way of a page the build writes; rename it")
            continue
        items.append(
            Output("writing", (rel,), _key(environment, "asset", str(source), _stat_key(source)),
                   partial(_copy, config, rel, source))
        )
    return SitePlan(tuple(items), len(public), environment)


def _single(path: str, render: Callable[[], tuple[bytes, tuple[str, ...]]]) -> Callable[[], Rendered]:
    def run() -> Rendered:
        data, notes = render()
        return {path: data}, notes

    return run
