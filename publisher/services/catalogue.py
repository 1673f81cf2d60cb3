"""The articles under content/, read through the build cache: what every action that
needs the list of articles reads it with (the desk's pages, a send, a schedule, the
daemon's look for new files).

A file whose size, times and inode are as the cache last saw them is not read, and one
whose bytes it has parsed is not parsed again: at 5,000 articles the list takes a tenth of
a second instead of the seconds that parsing every file costs. The articles come without
their HTML (what a list, a lookup by slug or a count needs); `Catalogue.whole` gives one
back with it, and `scan_articles`/`load_articles` give every one whole, as
`publisher.content` does, for an action that renders them all.

The cache is a hint (`publisher.site.build_cache`): a file it cannot vouch for is read and
parsed, so what comes back is what `publisher.content` would give, problems included.
Parsing happens in this process (no worker is forked: the desk and the daemon have
threads of their own), so only a cold cache costs what parsing costs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from publisher import content
from publisher.config import Config
from publisher.errors import ContentError
from publisher.models import Article
from publisher.site.build_cache import PARALLEL_FROM, ArticleCache

__all__ = ["Catalogue", "catalogue", "load_articles", "read_through", "scan_articles"]


@dataclass(frozen=True, slots=True)
class Catalogue:
    """Every article that parses, newest first, without its HTML; and each problem."""

    articles: tuple[Article, ...]
    problems: tuple[ContentError, ...]
    cache: ArticleCache

    def parsed(self) -> tuple[Article, ...]:
        """The articles; the first problem raised instead, as `content.load_articles` does."""
        if self.problems:
            raise self.problems[0]
        return self.articles

    def whole(self, article: Article) -> Article:
        """`article` (one of `articles`) with its HTML, as `content.parse_article` gives it;
        its file as it is now should it have been saved again since it was listed."""
        try:
            return self.cache.full(article)
        except ContentError:
            config = self.cache.config
            return content.read_article(config.root.resolve() / article.source, article.source, config)


def read_through(
    config: Config, cache: ArticleCache, *, fork: bool = False
) -> tuple[list[Article], list[ContentError]]:
    """Every article through `cache` (without its HTML) and each file's problem. With
    `fork`, a cold cache's files are parsed in worker processes (a command's own
    process, with no other thread)."""
    files: Sequence[tuple[Path, str]] = content.article_files(config)
    cache.warm(files, least=PARALLEL_FROM if fork else sys.maxsize)
    return content.scan_articles(config, reader=cache.read, files=files)


def catalogue(config: Config) -> Catalogue:
    """The articles as they are now; ContentError only when the content folder is missing."""
    cache = ArticleCache(config)
    try:
        articles, problems = read_through(config, cache)
    finally:
        cache.save()
    return Catalogue(tuple(articles), tuple(problems), cache)


def scan_articles(config: Config) -> tuple[list[Article], list[ContentError]]:
    """As `content.scan_articles`: every article whole, and every file's problem."""
    found = catalogue(config)
    return [found.whole(article) for article in found.articles], list(found.problems)


def load_articles(config: Config) -> list[Article]:
    """As `content.load_articles`: every article whole; the first problem raised."""
    found = catalogue(config)
    if found.problems:
        raise found.problems[0]
    return [found.whole(article) for article in found.articles]
