"""Article text and metadata out of someone else's web page or feed item. Pure.

A page's main text comes from trafilatura, with the page chrome (navigation, "top of
page" anchors, share buttons, comment and rating widgets, cookie banners, signup boxes)
pruned first; dates, author, tags and image come from its metadata (JSON-LD, meta tags,
an "Updated: Jan 29" line). A feed item comes through feedparser. Either way the HTML is
sanitised with `sanitize.clean_html` against the address it came from (so relative links
keep pointing where their author meant) and turned into Markdown, so that what lands in
content/ is what an author could have written here.
"""

from __future__ import annotations

import calendar
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser
import lxml.html
import markdownify
import trafilatura
import yaml
from lxml import etree
from trafilatura.htmlprocessing import convert_to_html
from trafilatura.settings import Document

from publisher.config import Config
from publisher.content import MAX_TAG_LENGTH, MAX_TAGS, slugify
from publisher.content.sanitize import clean_html
from publisher.errors import SourceError

__all__ = [
    "ImportedArticle",
    "canonical_url",
    "entry_to_article",
    "feed_to_articles",
    "html_to_markdown",
    "item_id",
    "page_to_article",
    "parse_feed",
    "split_byline",
]

_ARTICLE_TYPES = frozenset(
    {
        "Article",
        "BlogPosting",
        "NewsArticle",
        "Report",
        "ScholarlyArticle",
        "TechArticle",
        "SocialMediaPosting",
        "MedicalScholarlyArticle",
        "OpinionNewsArticle",
    }
)
# "Title: By Dana Reyes, LCSW" (Wix and others put the byline in the title).
_BYLINE_RE = re.compile(r"^(?P<title>.+?)\s*[:|–—-]\s*[Bb]y\s+(?P<author>[^:|]{2,80})$")
_UPDATED_RE = re.compile(
    r"\b(?:Updated|Last updated|Modified)\s*:?\s*(?:on\s+)?"
    r"(?P<month>[A-Z][a-z]{2,8})\.?\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?(?:,?\s+(?P<year>\d{4}))?"
)
_MONTHS = {name.lower(): index for index, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): index for index, name in enumerate(calendar.month_abbr) if name})
_MONTHS["sept"] = 9
_READ_MORE_RE = re.compile(r"\s*\[(?:…|&#8230;|\.\.\.)\]\s*$")
_BLANK_LINES_RE = re.compile(r"\n{3,}")
_TRAILING_SPACE_RE = re.compile(r"[ \t]+\n")

# Text that Markdown would read as markup, escaped only where it would be (so that
# "a < b", "snake_case" and "5 * 3" stay as written): a backslash before punctuation or
# at the end, "&" that spells an entity, "<" that opens a tag, an autolink or a comment,
# every backtick (code) and "[" (links, footnotes), "_" and "*" that could open or close
# emphasis, and what opens a block at the start of a line (quote, heading, list, fence).
_BACKSLASH_RE = re.compile(r"\\(?=[!-/:-@\[-`{-~]|$)")
_ENTITY_RE = re.compile(r"&(?=#?[A-Za-z0-9]+;)")
_TAG_OPEN_RE = re.compile(r"<(?=[A-Za-z/!?])")
_ALWAYS_RE = re.compile(r"([`\[])")
_UNDERSCORE_RE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")
_ASTERISK_RE = re.compile(r"(?<!\S\s)\*|\*(?!\s)")
_BLOCK_START_RE = re.compile(r"^(\s*)([>#+~=-])")
_NUMBERED_RE = re.compile(r"^(\s*\d{1,9})([.)])")
_NEWLINES_RE = re.compile(r"[ \t]*[\r\n][\t \r\n]*")
_CODE_LANGUAGE_RE = re.compile(r"^language-([A-Za-z0-9_+#.-]{1,40})$")


class _Converter(markdownify.MarkdownConverter):
    """markdownify with text escaped where Markdown would read it as markup, and the
    language of a code block (`class="language-python"`) on its fence."""

    def escape(self, text: str, parent_tags: Any) -> str:
        if not text:
            return ""
        # A line break in a page's text is a space there, and would be a break (or a new
        # block: "> ", "# ", "1. ") in the article: one line, as the reader saw it.
        text = _NEWLINES_RE.sub(" ", text)
        text = _BACKSLASH_RE.sub(r"\\\\", text)
        text = _ENTITY_RE.sub(r"\\&", text)
        text = _TAG_OPEN_RE.sub(r"\\<", text)
        text = _ALWAYS_RE.sub(r"\\\1", text)
        text = _UNDERSCORE_RE.sub(r"\\_", text)
        text = _ASTERISK_RE.sub(r"\\*", text)
        if _NUMBERED_RE.match(text):
            return _NUMBERED_RE.sub(r"\1\\\2", text, count=1)
        return _BLOCK_START_RE.sub(r"\1\\\2", text, count=1)


def _code_language(pre: Any) -> str:
    """The language a code block names in its class (on <code> or on <pre>), or ""."""
    for element in (pre.find("code"), pre):
        for name in (element.get("class") or ()) if element is not None else ():
            found = _CODE_LANGUAGE_RE.match(name)
            if found:
                return found.group(1)
    return ""

# Chrome that trafilatura's own heuristics usually drop, pruned before it looks, so a
# widget inside the article's container cannot leak into the text. The article's own
# <header> goes too: title, byline, date and cover image are front matter. Class-based
# rules never match the page's outer containers (a theme may give <body> "comments-open").
_OUTER = "self::html or self::body or self::main or self::article"
_CHROME_CLASSES = ("share", "rating", "comment", "cookie", "consent", "subscribe", "subscription", "signup", "-cta")
_CHROME_XPATH = [
    "//*[@role='dialog' or @role='alertdialog' or @role='navigation' or @aria-modal='true']",
    "//nav",
    "//button",
    "//form",
    "//header",
    "//footer",
    "//*[@id='comments']",
    "//*[contains(translate(@aria-label, 'TOPFGBM', 'topfgbm'), 'of page')]",
    *(
        f"//*[not({_OUTER})][contains(translate(@class, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', "
        f"'abcdefghijklmnopqrstuvwxyz'), '{word}') or contains(translate(@id, "
        f"'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), '{word}')]"
        for word in _CHROME_CLASSES
    ),
]


@dataclass(frozen=True, slots=True)
class ImportedArticle:
    """An article taken from elsewhere, ready to become a file under content/."""

    title: str
    date: datetime
    body: str
    """Markdown, from sanitised HTML; links and images absolute."""
    origin: str
    """The page or feed item it came from."""
    slug: str
    updated: datetime | None = None
    author: str = ""
    summary: str = ""
    tags: tuple[str, ...] = ()
    image: str | None = None
    image_alt: str = ""

    def with_slug(self, slug: str) -> ImportedArticle:
        return ImportedArticle(
            title=self.title,
            date=self.date,
            body=self.body,
            origin=self.origin,
            slug=slug,
            updated=self.updated,
            author=self.author,
            summary=self.summary,
            tags=self.tags,
            image=self.image,
            image_alt=self.image_alt,
        )

    def file_name(self, config: Config) -> str:
        """`YYYY-MM-DD-slug.md`, the date in the publication's zone (as `publisher new`)."""
        return f"{self.date.astimezone(config.tz):%Y-%m-%d}-{self.slug}.md"

    def text(self, config: Config) -> str:
        """The article file: front matter that `content.parse_article` reads, then Markdown."""
        tz = config.tz
        date_text = f"{self.date.astimezone(tz):%Y-%m-%d %H:%M}"
        lines = ["---", _yaml_line("title", self.title), f"date: {date_text}"]
        if self.updated is not None:
            updated_text = f"{self.updated.astimezone(tz):%Y-%m-%d %H:%M}"
            if updated_text > date_text:
                lines.append(f"updated: {updated_text}")
        if self.author:
            lines.append(_yaml_line("author", self.author))
        if self.summary:
            lines.append(_yaml_line("summary", self.summary))
        if self.tags:
            lines.append(_yaml_line("tags", list(self.tags)))
        if self.image:
            lines.append(_yaml_line("image", self.image))
            if self.image_alt:
                lines.append(_yaml_line("image_alt", self.image_alt))
        lines.append(f"slug: {self.slug}")
        lines.append("---")
        return "\n".join(lines) + "\n\n" + self.body.strip() + "\n"


def _yaml_line(key: str, value: object) -> str:
    if isinstance(value, list):
        items: str = yaml.safe_dump(value, allow_unicode=True, width=1_000_000, default_flow_style=True)
        return f"{key}: {items.strip()}"
    dumped: str = yaml.safe_dump({key: value}, allow_unicode=True, width=1_000_000, default_flow_style=False)
    return dumped.strip()


def _plain(value: str) -> str:
    return " ".join(value.split())


def _text_of(html: str) -> str:
    """The text of an HTML fragment (feed titles and summaries may carry markup)."""
    if "<" not in html and "&" not in html:
        return _plain(html)
    try:
        return _plain(lxml.html.fragment_fromstring(html, create_parent="div").text_content())
    except (ValueError, etree.ParserError):
        return _plain(html)


def split_byline(title: str) -> tuple[str, str]:
    """("Title", "Author") from "Title: By Author"; (title, "") when there is no byline."""
    match = _BYLINE_RE.match(title)
    if not match:
        return title, ""
    return match.group("title").strip(), match.group("author").strip()


def html_to_markdown(html: str, *, base_url: str) -> str:
    """Sanitise untrusted HTML (relative URLs made absolute against `base_url`), then Markdown."""
    clean = clean_html(html, base_url=base_url)
    markdown: str = _Converter(
        heading_style="ATX", bullets="-", strong_em_symbol="*", escape_misc=False, escape_asterisks=False,
        escape_underscores=False, code_language_callback=_code_language,
    ).convert(clean)
    markdown = _TRAILING_SPACE_RE.sub("\n", markdown)
    return _BLANK_LINES_RE.sub("\n\n", markdown).strip() + "\n"


def _slug_from(link: str, title: str) -> str:
    """The last path segment of the item's address (its slug there), else the title."""
    path = urlsplit(link).path if link else ""
    segments = [s for s in path.split("/") if s]
    if segments:
        last = re.sub(r"\.(?:html?|php|aspx?)$", "", segments[-1])
        candidate = slugify(last)
        if candidate and not candidate.isdigit():
            return candidate
    return slugify(title) or "imported"


def _parse_when(value: Any, tz: Any) -> datetime | None:
    """An ISO 8601 date or date-time from metadata; a bare date is midnight in `tz`."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text[:10])
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment


def _json_ld_objects(data: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(data, list):
        for item in data:
            yield from _json_ld_objects(item)
    elif isinstance(data, dict):
        yield data
        graph = data.get("@graph")
        if graph is not None:
            yield from _json_ld_objects(graph)


def _article_json_ld(tree: Any) -> Mapping[str, Any]:
    """The page's schema.org Article/BlogPosting object, or {} when it has none."""
    for script in tree.xpath("//script[@type='application/ld+json']"):
        try:
            data = json.loads(script.text or "")
        except ValueError:
            continue
        for obj in _json_ld_objects(data):
            types = obj.get("@type", ())
            types = [types] if isinstance(types, str) else list(types) if isinstance(types, list) else []
            if _ARTICLE_TYPES.intersection(t for t in types if isinstance(t, str)):
                return obj
    return {}


def _names(value: Any) -> list[str]:
    """Author names from JSON-LD: a string, an object with a name, or a list of either."""
    if isinstance(value, str):
        return [_plain(value)] if value.strip() else []
    if isinstance(value, dict):
        return _names(value.get("name"))
    if isinstance(value, list):
        return [name for item in value for name in _names(item)]
    return []


def _image_url(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, dict):
        return _image_url(value.get("url") or value.get("contentUrl"))
    if isinstance(value, list) and value:
        return _image_url(value[0])
    return None


def _meta(tree: Any, *names: str) -> str | None:
    for name in names:
        for value in tree.xpath("//meta[@property=$n or @name=$n or @itemprop=$n]/@content", n=name):
            if str(value).strip():
                return str(value).strip()
    return None


def _updated_from_text(text: str, *, published: datetime, now: datetime, tz: Any) -> datetime | None:
    """The "Updated: Jan 29" line some platforms print; a date without a year is this year's.

    A yearless date after `now` must be last year's (Wix omits the year for the current one).
    """
    match = _UPDATED_RE.search(text)
    if not match:
        return None
    month = _MONTHS.get(match.group("month").lower().rstrip("."))
    if month is None:
        return None
    day = int(match.group("day"))
    local_now = now.astimezone(tz)
    year = int(match.group("year")) if match.group("year") else local_now.year
    try:
        moment = datetime.combine(datetime(year, month, day).date(), time(0, 0), tzinfo=tz)
    except ValueError:
        return None
    if not match.group("year") and moment > local_now:
        moment = moment.replace(year=year - 1)
    return moment if moment > published else None


def _canonical_url(tree: Any, ld: Mapping[str, Any]) -> str | None:
    """The address the page calls its own (its slug there is the best slug here)."""
    candidates = [*tree.xpath("//link[@rel='canonical']/@href"), _meta(tree, "og:url"), ld.get("url")]
    entity = ld.get("mainEntityOfPage")
    candidates.append(entity.get("@id") if isinstance(entity, dict) else entity)
    for value in candidates:
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return value
    return None


def canonical_url(html: str | bytes) -> str | None:
    """The address a saved page calls its own, to resolve its relative links against."""
    try:
        tree = lxml.html.document_fromstring(html)
    except (ValueError, etree.ParserError):
        return None
    return _canonical_url(tree, _article_json_ld(tree))


def _strip_title_heading(markdown: str, titles: Sequence[str]) -> str:
    """Drop a leading heading that repeats the title (it is the front matter's job)."""
    first, _, rest = markdown.lstrip().partition("\n")
    if first.startswith("#") and _plain(first.lstrip("#")) in titles:
        return rest.lstrip()
    return markdown


def page_to_article(html: str | bytes, *, url: str, config: Config, now: datetime) -> ImportedArticle:
    """An article page (any blog platform) into an ImportedArticle. Pure.

    `url` is the page's address: relative links and images are resolved against it.
    Raises SourceError when the page has no article text.
    """
    tz = config.tz
    try:
        tree = lxml.html.document_fromstring(html)
    except (ValueError, etree.ParserError) as exc:
        raise SourceError(f"{url}: not an HTML page ({exc})") from exc
    ld = _article_json_ld(tree)
    extraction = trafilatura.bare_extraction(
        html,  # bytes as fetched: trafilatura reads the page's own charset
        url=url,
        with_metadata=True,
        include_formatting=True,
        include_links=True,
        include_images=True,
        include_tables=True,
        include_comments=False,
        prune_xpath=_CHROME_XPATH,
    )
    meta = extraction if isinstance(extraction, Document) else None
    main = meta.body if meta is not None else None
    if main is None or not "".join(main.itertext()).strip():
        raise SourceError(
            f"{url}: no article text found on the page. Import the article's own page, not a list of posts."
        )
    raw_title = _plain(
        str(ld.get("headline") or "")
        or (meta.title if meta and meta.title else "")
        or _meta(tree, "og:title")
        or tree.findtext(".//title")
        or ""
    )
    title, byline = split_byline(raw_title)
    if not title:
        raise SourceError(f"{url}: the page has no title; is it an article page?")
    # trafilatura's HTML conversion turns every list into <ul>; keep numbered ones numbered.
    for element in main.iter("list"):
        if element.get("rend") == "ol":
            element.tag = "ol"
    extracted = etree.tostring(convert_to_html(main), encoding="unicode")
    body = html_to_markdown(extracted, base_url=url)
    body = _strip_title_heading(body, (title, raw_title))

    published = (
        _parse_when(ld.get("datePublished"), tz)
        or _parse_when(_meta(tree, "article:published_time", "datePublished", "date"), tz)
        or _parse_when(meta.date if meta else None, tz)
    )
    published = published or now
    updated = (
        _parse_when(ld.get("dateModified"), tz)
        or _parse_when(_meta(tree, "article:modified_time", "og:updated_time", "dateModified"), tz)
        or _updated_from_text(tree.text_content(), published=published, now=now, tz=tz)
    )
    if updated is not None and updated <= published:
        updated = None

    authors = _names(ld.get("author"))
    author = byline or ", ".join(authors) or (meta.author if meta and meta.author else "") or ""
    image = _image_url(ld.get("image")) or _meta(tree, "og:image") or (meta.image if meta else None)
    tags: list[str] = []
    for group in (meta.categories if meta else None, meta.tags if meta else None):
        tags.extend(str(t) for t in group or ())
    keywords = ld.get("keywords")
    if isinstance(keywords, str):
        tags.extend(keywords.split(","))
    elif isinstance(keywords, list):
        tags.extend(str(k) for k in keywords)
    description = _meta(tree, "description", "og:description") or ""
    return ImportedArticle(
        title=title,
        date=published,
        body=body,
        origin=url,
        slug=_slug_from(_canonical_url(tree, ld) or url, title),
        updated=updated,
        author=_plain(author),
        summary=_plain(description),
        tags=_unique_tags(tags),
        image=urljoin(url, image) if image else None,
    )


def _unique_tags(tags: Sequence[str]) -> tuple[str, ...]:
    """The first tags, as many and as long as an article may have: other people's pages
    and feeds may carry hundreds."""
    seen: dict[str, str] = {}
    for tag in tags:
        clean = _plain(tag)
        if clean and len(clean) <= MAX_TAG_LENGTH:
            seen.setdefault(clean.casefold(), clean)
            if len(seen) == MAX_TAGS:
                break
    return tuple(seen.values())


def parse_feed(body: bytes, *, url: str) -> Any:
    """feedparser's reading of `body`; SourceError when it is not a usable feed.

    Relative links are left for `clean_html`, which resolves them against each item's
    own page (feedparser would resolve them against the feed's address).
    """
    parsed = feedparser.parse(
        body,
        response_headers={"content-location": url},
        resolve_relative_uris=False,
        sanitize_html=False,
    )
    if parsed.get("bozo") and not parsed.entries:
        problem = parsed.get("bozo_exception")
        raise SourceError(
            f"{url}: not an RSS or Atom feed ({problem}). Check that the address is the "
            "blog's feed (often /feed, /rss or /blog-feed.xml), not a web page."
        )
    if not parsed.get("version") and not parsed.entries:
        raise SourceError(
            f"{url}: not an RSS or Atom feed. Check that the address is the blog's feed "
            "(often /feed, /rss or /blog-feed.xml), not a web page."
        )
    return parsed


def item_id(entry: Mapping[str, Any]) -> str:
    """A feed item's identity: its guid / atom:id, else its link, else its title."""
    for key in ("id", "link", "title"):
        value = entry.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _entry_time(entry: Mapping[str, Any], key: str) -> datetime | None:
    # dict.get skips feedparser's deprecated fallback from updated_parsed to published_parsed.
    parsed = dict.get(entry, f"{key}_parsed") if isinstance(entry, dict) else entry.get(f"{key}_parsed")
    if not parsed:
        return None
    return datetime.fromtimestamp(calendar.timegm(parsed), UTC)


def _entry_image(entry: Mapping[str, Any], base_url: str) -> str | None:
    for media in entry.get("media_content") or ():
        kind = str(media.get("medium") or media.get("type") or "")
        if media.get("url") and (kind == "image" or kind.startswith("image/")):
            return urljoin(base_url, str(media["url"]))
    for link in entry.get("links") or ():
        if link.get("rel") == "enclosure" and str(link.get("type", "")).startswith("image/") and link.get("href"):
            return urljoin(base_url, str(link["href"]))
    for thumbnail in entry.get("media_thumbnail") or ():
        if thumbnail.get("url"):
            return urljoin(base_url, str(thumbnail["url"]))
    return None


def entry_to_article(entry: Mapping[str, Any], *, feed_url: str, config: Config, now: datetime) -> ImportedArticle:
    """One feed item into an ImportedArticle. Pure.

    The item's HTML is sanitised against the item's own page, so relative links keep
    pointing where their author meant.
    """
    link = str(entry.get("link") or "")
    base = urljoin(feed_url, link) if link else feed_url
    raw_title = _text_of(str(entry.get("title") or ""))
    title, byline = split_byline(raw_title)
    contents = list(entry.get("content") or ())
    html_parts = [c for c in contents if "html" in str(c.get("type", ""))] or contents
    summary_html = str(entry.get("summary") or "")
    html = "\n".join(str(c.get("value", "")) for c in html_parts) if html_parts else summary_html
    if not title:
        title = _text_of(html)[:80] or "Untitled"
    published = _entry_time(entry, "published") or _entry_time(entry, "updated") or now
    updated = _entry_time(entry, "updated")
    if updated is not None and updated <= published:
        updated = None
    detail = entry.get("author_detail") or {}
    author = byline or str(detail.get("name") or entry.get("author") or "")
    summary = ""
    if html_parts and summary_html:
        text = _READ_MORE_RE.sub("", _text_of(summary_html))
        if len(text) <= 300:
            summary = text
    tags = [str(tag.get("term") or tag.get("label") or "") for tag in entry.get("tags") or ()]
    return ImportedArticle(
        title=title,
        date=published,
        body=html_to_markdown(html, base_url=base),
        origin=base,
        slug=_slug_from(link, title),
        updated=updated,
        author=_plain(author),
        summary=summary,
        tags=_unique_tags(tags),
        image=_entry_image(entry, base),
    )


def feed_to_articles(body: bytes, *, url: str, config: Config, now: datetime) -> list[ImportedArticle]:
    """Every item of a feed, oldest first."""
    parsed = parse_feed(body, url=url)
    articles = [entry_to_article(e, feed_url=url, config=config, now=now) for e in parsed.entries]
    return sorted(articles, key=lambda a: a.date)
