"""Article files (YAML front matter + Markdown) into `Article` values.

`parse_article` is pure: text in, `Article` out, every problem a `ContentError` naming the
file and line. `load_articles` is the edge that reads the content folder. Drafts and
articles dated in the future are returned too; callers filter with `Article.is_public`.

A file looks like this (`date` without a zone means the publication's zone)::

    ---
    title: Sleep and the anxious mind
    date: 2026-02-10 07:30
    tags: [sleep, anxiety]
    ---

    Markdown body: CommonMark, tables, footnotes. Raw HTML is sanitised.

An article has at most `MAX_TAGS` tags of at most `MAX_TAG_LENGTH` characters each (each
tag is a feed of its own, and every feed entry lists them all). Dates lie between the
years `FIRST_YEAR` and `LAST_YEAR`, and a `YYYY-MM-DD-` file name must name a real day.

The package holds what the author writes and what comes in from elsewhere; this module
re-exports the article files' three parts so that callers work with one name:

    front_matter.py  the YAML between the fences, read into checked values
    articles.py      one file into an `Article` (pure), ids, new drafts
    folder.py        the content folder: which files are articles, read safely
    sanitize.py      untrusted HTML made safe       media.py     pictures for articles
    fetch.py         remote documents, fetched safely     extract.py   a page's article
    importer.py      someone else's page into article files     sources.py  watched feeds
    watch.py         noticing a saved file at once      folder_lock.py  one writer at a time
    templates.py, i18n.py   where templates come from, and the publication's language
                     (below mail/ and site/, which both render with them)
    palette.py       the publication's colours, light and dark, with their contrast kept
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from publisher.content.folder import (
    ArticleReader,
    article_files,
    content_files,
    decode_article,
    link_refusal,
    load_articles,
    read_article,
    read_content,
    scan_articles,
)

if TYPE_CHECKING:
    from publisher.content.articles import draft_file_name, new_draft_text, parse_article
    from publisher.content.front_matter import (
        FIRST_YEAR,
        FRONT_MATTER_KEYS,
        LAST_YEAR,
        MAX_TAG_LENGTH,
        MAX_TAGS,
        RESERVED_SLUGS,
        slugify,
    )

_PARSING = {
    **dict.fromkeys(("draft_file_name", "new_draft_text", "parse_article"), "articles"),
    **dict.fromkeys(
        ("FIRST_YEAR", "FRONT_MATTER_KEYS", "LAST_YEAR", "MAX_TAG_LENGTH", "MAX_TAGS", "RESERVED_SLUGS", "slugify"),
        "front_matter",
    ),
}
"""Names from the modules that parse an article, loaded on first use: they bring YAML and
Markdown (a tenth of a second), which a build whose articles all come from its cache, or
a check that finds none changed, never needs."""


def __getattr__(name: str) -> Any:
    module = _PARSING.get(name)
    if module is None:
        raise AttributeError(f"module 'publisher.content' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"publisher.content.{module}"), name)
    globals()[name] = value  # found directly from now on
    return value


__all__ = [
    "FIRST_YEAR",
    "FRONT_MATTER_KEYS",
    "LAST_YEAR",
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "RESERVED_SLUGS",
    "ArticleReader",
    "article_files",
    "content_files",
    "decode_article",
    "draft_file_name",
    "link_refusal",
    "load_articles",
    "new_draft_text",
    "parse_article",
    "read_article",
    "read_content",
    "scan_articles",
    "slugify",
]
