"""What every article reader returns, and the conversions they share. Pure.

An `ExportedArticle` is one post or page of another service: the article as it will be
written (`ImportedArticle`: Markdown body, dates, tags, author), the key that names it
there (its old id), its old addresses (for redirects), whether the other service mailed
it, and notes for the author (a shortcode kept as text, a paywall marker removed).
A record a reader cannot use is refused with the file and the record ("posts.csv:7").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import lxml.html
from lxml import etree
from markdown_it import MarkdownIt

from publisher.content import slugify
from publisher.content.extract import ImportedArticle, html_to_markdown

__all__ = [
    "ArticleBatch",
    "ExportedArticle",
    "fragment",
    "markdown_to_html",
    "parse_date",
    "serialise",
    "slug_for",
    "to_markdown",
]

_MARKDOWN = MarkdownIt("commonmark", {"html": True})
_IMAGE_RE = re.compile(r"!\[[^\]]*\]\((?P<url>https?://[^)\s]+)")
_FORMATS = (
    "%Y-%m-%dT%H:%M:%S.%f%z",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S%z",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y",
    "%d.%m.%Y",
)


@dataclass(frozen=True, slots=True)
class ExportedArticle:
    """One post or page of an export, ready to become a file under content/."""

    key: str
    """Its id on the other service, with the service: "substack:1234", "wordpress:12"."""
    article: ImportedArticle
    old_paths: tuple[str, ...] = ()
    """Where it was published there (paths or whole URLs): each gets a redirect."""
    draft: bool = False
    emailed: bool = False
    """The other service mailed it to its list: never mailed again here."""
    record: str = ""
    notes: tuple[str, ...] = ()

    @property
    def images(self) -> list[str]:
        """Remote pictures the body and the lead image use, in order, once each."""
        found = [m.group("url") for m in _IMAGE_RE.finditer(self.article.body)]
        if self.article.image:
            found.append(self.article.image)
        return list(dict.fromkeys(found))


@dataclass(frozen=True, slots=True)
class ArticleBatch:
    """Every article an export holds, and each record refused (record, reason)."""

    articles: list[ExportedArticle] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


def parse_date(value: str) -> datetime | None:
    """A date as exports write them: ISO 8601 (with or without zone or "Z"), RFC 2822,
    "2024-05-01 10:00", "05/01/2024". A time without a zone is UTC. None if unreadable."""
    text = value.strip()
    if not text:
        return None
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    found: datetime | None
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        found = None
        for fmt in _FORMATS:
            try:
                found = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        if found is None:
            try:
                found = parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                return None
    if found is None:
        return None
    if found.tzinfo is None:
        found = found.replace(tzinfo=UTC)
    return found.astimezone(UTC)


def markdown_to_html(markdown: str) -> str:
    """Markdown from an export (Buttondown's emails, Ghost's Markdown cards) as HTML."""
    return str(_MARKDOWN.render(markdown))


def to_markdown(html: str, *, base_url: str) -> str:
    """An export's HTML, sanitised, as Markdown (the converter `publisher import` uses)."""
    return html_to_markdown(html, base_url=base_url)


def fragment(html: str) -> etree._Element:
    """An HTML fragment parsed into a <div>, for readers that rewrite an export's markup."""
    return lxml.html.fragment_fromstring(html or "<p></p>", create_parent="div")


def serialise(root: etree._Element) -> str:
    """The inside of `fragment`'s <div> as HTML again."""
    parts = [root.text or ""] if root.text else []
    parts.extend(lxml.html.tostring(child, encoding="unicode") for child in root)
    return "".join(parts)


def slug_for(slug: str, title: str, fallback: str) -> str:
    """The export's slug if it has one, else one made of the title, else `fallback`."""
    return slugify(slug) or slugify(title) or slugify(fallback) or "article"
