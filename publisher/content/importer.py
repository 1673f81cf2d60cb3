"""Someone else's page or feed into article files of this publication (the edges).

An imported article is an ordinary Markdown file in content/: it builds, appears in the
feeds and goes out as a newsletter exactly like one the author wrote here, and the
author can edit it. `extract` does the conversion; this module fetches or reads the
input and writes the files, never one that would not parse or that would take another
article's slug.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path, PurePath

import httpx

from publisher.config import Config
from publisher.content import RESERVED_SLUGS, parse_article, slugify
from publisher.content.extract import ImportedArticle, canonical_url, feed_to_articles, page_to_article
from publisher.content.fetch import fetch
from publisher.content.folder_lock import content_lock
from publisher.errors import ContentError, SourceError
from publisher.models import Article

__all__ = [
    "FEED_ACCEPT",
    "import_location",
    "slugs_in_use",
    "write_article",
    "write_new",
]

FEED_ACCEPT = (
    "application/atom+xml, application/rss+xml, application/feed+json;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, text/html;q=0.8, */*;q=0.5"
)


def _content_folder(config: Config) -> Path:
    return config.path_of("build.content")


def _shown(path: Path, config: Config) -> str:
    try:
        return str(path.relative_to(config.root.resolve()))
    except ValueError:
        return str(path)


def slugs_in_use(config: Config) -> dict[str, Path]:
    """Slug -> file of every article under content/ (as `load_articles` would see them).

    A file that does not parse still claims the slug its name suggests, so an import
    never collides with an article the author is half-way through fixing.
    """
    folder = _content_folder(config)
    owners: dict[str, Path] = {}
    if not folder.is_dir():
        return owners
    for path in sorted(folder.rglob("*.md")):
        if any(part.startswith((".", "_")) for part in path.relative_to(folder).parts):
            continue
        try:
            slug = parse_article(path.read_text(encoding="utf-8"), source=str(path), config=config).slug
        except (ContentError, OSError, UnicodeDecodeError):
            slug = slugify(re.sub(r"^\d{4}-\d{2}-\d{2}-?", "", path.stem))
        if slug:
            owners.setdefault(slug, path)
    return owners


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def _check_parses(text: str, path: Path, config: Config) -> Article:
    """Parse before writing: an import never leaves a file that breaks the build."""
    try:
        return parse_article(text, source=_shown(path, config), config=config)
    except ContentError as exc:
        raise SourceError(f"the imported article does not parse ({exc}); nothing was written") from exc


def write_article(config: Config, article: ImportedArticle, *, force: bool = False) -> tuple[Path, Article]:
    """Write one imported article under content/; an existing one is replaced only with `force`.

    "Existing" means a file holding the same slug (imported before, perhaps under another
    date); `force` overwrites that file.
    """
    if article.slug in RESERVED_SLUGS:
        raise SourceError(
            f"{article.origin}: its slug {article.slug!r} is reserved by publisher; import it, "
            "then rename the file and set a different 'slug:'"
        )
    # The look at what is there and the write take the content folder's turn, like the desk's saves.
    with content_lock(_content_folder(config)):
        owners = slugs_in_use(config)
        path = owners.get(article.slug) or _content_folder(config) / article.file_name(config)
        if path.exists() and not force:
            raise SourceError(
                f"{_shown(path, config)} already exists (slug {article.slug!r}); pass --force to "
                "replace it with the imported article"
            )
        text = article.text(config)
        parsed = _check_parses(text, path, config)
        _write_atomic(path, text)
    return path, parsed


def write_new(config: Config, article: ImportedArticle, *, taken: dict[str, Path]) -> tuple[Path, Article]:
    """Write an article from a watched feed under a slug no other article uses.

    `taken` (from `slugs_in_use`) is updated. A file with exactly the text this article
    would get is adopted rather than duplicated: that is an earlier poll which wrote the
    file but stopped before it could record the item.
    """
    with content_lock(_content_folder(config)):
        return _write_new(config, article, taken)


def _write_new(config: Config, article: ImportedArticle, taken: dict[str, Path]) -> tuple[Path, Article]:
    base = article.slug
    for number in range(1, 1000):
        slug = base if number == 1 else f"{base}-{number}"
        candidate = article.with_slug(slug)
        text = candidate.text(config)
        path = _content_folder(config) / candidate.file_name(config)
        owner = taken.get(slug)
        if owner is not None and owner == path and path.read_text(encoding="utf-8") == text:
            return path, _check_parses(text, path, config)
        if owner is None and slug not in RESERVED_SLUGS and not path.exists():
            parsed = _check_parses(text, path, config)
            _write_atomic(path, text)
            taken[slug] = path
            return path, parsed
    raise SourceError(f"{article.origin}: no free slug for {base!r}; tidy up content/")


def _looks_like_feed(body: bytes, content_type: str) -> bool:
    head = body[:2048].lstrip().lower()
    if any(kind in content_type for kind in ("rss", "atom", "/xml", "+xml")):
        return not head.startswith((b"<!doctype html", b"<html"))
    return head.startswith(b"<?xml") or b"<rss" in head or b"<feed" in head


def import_location(
    config: Config,
    location: str,
    *,
    now: datetime,
    force: bool = False,
    base_url: str | None = None,
    client: httpx.Client | None = None,
) -> list[tuple[Path, Article]]:
    """Import an article page or a whole feed, from a URL or a local file, into content/.

    For a file, relative links resolve against `base_url`, else the page's canonical
    address, else the publication's URL. Nothing is written if any article would
    replace an existing one without `force`.
    """
    if location.startswith(("http://", "https://")):
        result = fetch(location, config=config, client=client, accept=FEED_ACCEPT)
        body, url, content_type = result.body, result.url, result.content_type
    else:
        path = Path(location)
        try:
            body = path.read_bytes()
        except OSError as exc:
            raise SourceError(f"{location}: cannot be read: {exc.strerror or exc}") from exc
        url, content_type = base_url or "", ""
    if _looks_like_feed(body, content_type):
        feed_url = url or f"{config.site_url}/"
        articles = feed_to_articles(body, url=feed_url, config=config, now=now)
        if not articles:
            raise SourceError(f"{location}: the feed has no items to import")
    else:
        page_url = url or canonical_url(body) or f"{config.site_url}/{PurePath(location).stem}/"
        articles = [page_to_article(body, url=page_url, config=config, now=now)]
    articles = _distinct_slugs(articles)
    if not force:
        owners = slugs_in_use(config)
        clashes = [owners[a.slug] for a in articles if a.slug in owners]
        clashes += [
            _content_folder(config) / a.file_name(config)
            for a in articles
            if a.slug not in owners and (_content_folder(config) / a.file_name(config)).exists()
        ]
        if clashes:
            shown = ", ".join(_shown(p, config) for p in clashes)
            raise SourceError(f"already imported: {shown}. Pass --force to replace; nothing was written.")
    return [write_article(config, article, force=force) for article in articles]


def _distinct_slugs(articles: Sequence[ImportedArticle]) -> list[ImportedArticle]:
    """Two items of one feed with the same slug get -2, -3, ... (oldest keeps the plain one)."""
    seen: set[str] = set()
    out: list[ImportedArticle] = []
    for article in articles:
        slug, number = article.slug, 1
        while slug in seen:
            number += 1
            slug = f"{article.slug}-{number}"
        seen.add(slug)
        out.append(article if slug == article.slug else article.with_slug(slug))
    return out
