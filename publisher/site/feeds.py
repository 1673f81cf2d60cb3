"""Articles into RSS 2.0, Atom 1.0 and JSON Feed 1.1 documents.

The only module that imports feedgen, so its getter/setter API and its quirks stay here.
Pure: values in, bytes out. A feed's own timestamp is the newest entry's modification
time, never the clock, so rebuilding unchanged content gives byte-identical feeds (and
web servers keep their ETags).

feedgen quirks handled here:
- its RSS output drops every `atom:link` except rel=self, so WebSub hub links are added
  by a small extension;
- it makes the RSS channel `<link>` the *last* link added, so the site link goes last;
- it prepends entries by default, so entries are appended explicitly.
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urljoin, urlsplit

from publisher.config import Config
from publisher.content.sanitize import to_uri
from publisher.errors import BuildError, ConfigError
from publisher.models import Article, split_person

if TYPE_CHECKING:
    from feedgen.feed import FeedGenerator

__all__ = [
    "BUILDERS",
    "FEED_TYPES",
    "FeedBuilder",
    "FeedKind",
    "TagIndex",
    "absolute_url",
    "build_atom",
    "build_json",
    "build_rss",
    "content_html",
    "feed_entries",
    "feed_path",
    "feed_url",
    "hub_urls",
    "site_tags",
    "site_uri",
    "tag_collisions",
    "tag_index",
    "tag_slug",
    "tagged_articles",
]

FeedKind = Literal["rss", "atom", "json"]

FEED_TYPES: dict[str, str] = {
    "rss": "application/rss+xml",
    "atom": "application/atom+xml",
    "json": "application/feed+json",
}
"""Media type of each kind of feed, for `<link rel="alternate">` and HTTP headers."""

_PATHS: dict[str, str] = {"rss": "feeds/rss.xml", "atom": "feeds/atom.xml", "json": "feeds/feed.json"}
_TAG_PATHS: dict[str, str] = {
    "rss": "feeds/tags/{slug}.rss.xml",
    "atom": "feeds/tags/{slug}.xml",
    "json": "feeds/tags/{slug}.json",
}

ATOM_NS = "http://www.w3.org/2005/Atom"
DC_NS = "http://purl.org/dc/elements/1.1/"
DCTERMS_NS = "http://purl.org/dc/terms/"
MEDIA_NS = "http://search.yahoo.com/mrss/"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"

EMPTY_FEED_UPDATED = datetime(2000, 1, 1, tzinfo=UTC)
"""The `updated` time of a feed with no entries.

Fixed, so that an empty feed is as stable as any other; not 1970, which the W3C
validator calls implausible (it flags dates before 1990 as likely bugs).
"""

# Characters XML 1.0 cannot carry at all (and lone surrogates, which UTF-8 cannot); lxml
# refuses them rather than escaping.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")
_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+")
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


@functools.lru_cache(maxsize=4096)
def tag_slug(tag: str) -> str:
    """The file-name form of a tag: "Sleep & Rest" -> "sleep-rest".

    Tags that differ only in case or punctuation share one feed. A tag with nothing
    Latin in it ("睡眠") gets "t-" and a short hash of its folded spelling, so that every
    tag has a feed and every feed an ASCII address.
    """
    folded = unicodedata.normalize("NFKD", tag).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")
    if slug:
        return slug
    key = unicodedata.normalize("NFC", " ".join(tag.split())).casefold()
    return "t-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:10]


def feed_path(kind: FeedKind, tag: str | None = None) -> str:
    """Where a feed lives under the output folder (and under the site URL)."""
    if tag is None:
        return _PATHS[kind]
    return _TAG_PATHS[kind].format(slug=tag_slug(tag))


def site_uri(config: Config) -> str:
    """The site URL as a URI (an internationalised host in IDNA form), no trailing slash."""
    return to_uri(config.site_url)


def feed_url(config: Config, kind: FeedKind, tag: str | None = None) -> str:
    return f"{site_uri(config)}/{feed_path(kind, tag)}"


def hub_urls(config: Config) -> tuple[str, ...]:
    """The configured WebSub hubs, checked to be absolute http(s) URLs."""
    hubs = tuple(str(h) for h in config["feeds.hubs"])
    for hub in hubs:
        parts = urlsplit(hub)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"{_config_file(config)}: [feeds] hubs: {hub!r} is not an absolute http(s) URL; write the hub's "
                'full address, e.g. "https://pubsubhubbub.appspot.com/"'
            )
    return tuple(to_uri(hub) for hub in hubs)


def _config_file(config: Config) -> str:
    return config.path.name if config.path else "config.toml"


def feed_language(config: Config) -> str:
    """`publication.language`, checked to be a language tag ("en", "pt-BR"); "" for none.

    Feeds put it in RSS `<language>` and Atom `xml:lang`, where the validator rejects
    anything else (an "en_US" from a locale setting is the usual slip).
    """
    value = str(config["publication.language"]).strip()
    if value and not _LANGUAGE_TAG.fullmatch(value):
        fixed = value.replace("_", "-")
        hint = f'write "{fixed}"' if _LANGUAGE_TAG.fullmatch(fixed) else 'write a tag such as "en" or "pt-BR"'
        raise ConfigError(f"{_config_file(config)}: [publication] language: {value!r} is not a language tag; {hint}")
    return value


def feed_email(config: Config) -> str:
    """`publication.email`, checked to be a bare address; "" for none."""
    value = str(config["publication.email"]).strip()
    if value and not _ADDRESS.fullmatch(value):
        raise ConfigError(
            f"{_config_file(config)}: [publication] email: {value!r} is not an email address; write only the address, "
            'e.g. "notes@example.org" (feeds add the author\'s name themselves)'
        )
    return value


def _canonical(uri: str) -> str:
    """`uri` in the form the validator compares Atom ids in: lower-case scheme and host,
    no default port."""
    parts = urlsplit(uri)
    netloc = parts.netloc.lower().removesuffix(_DEFAULT_PORTS.get(parts.scheme.lower(), "\0"))
    return parts._replace(scheme=parts.scheme.lower(), netloc=netloc).geturl()


def tag_collisions(articles: Iterable[Article]) -> list[tuple[str, tuple[str, ...]]]:
    """Tags that share a feed although they are spelled differently (beyond letter case).

    "Sleep & Rest" and "sleep-rest" sharing one feed is the point of slugs; "C++" and
    "C#" sharing feeds/tags/c.xml is a surprise the author should hear about.
    """
    spellings: dict[str, dict[str, str]] = {}
    for article in articles:
        for tag in article.tags:
            spellings.setdefault(tag_slug(tag), {}).setdefault(tag.casefold(), tag)
    return [(slug, tuple(sorted(names.values()))) for slug, names in sorted(spellings.items()) if len(names) > 1]


def tagged_articles(articles: Iterable[Article]) -> dict[str, list[Article]]:
    """Each tag slug with the articles that carry it, in one pass: per-tag feeds built
    from these cost what their own articles cost, not a scan of the whole site each."""
    tagged: dict[str, list[Article]] = {}
    for article in articles:
        for slug in dict.fromkeys(tag_slug(tag) for tag in article.tags):
            tagged.setdefault(slug, []).append(article)
    return tagged


def site_tags(articles: Iterable[Article]) -> dict[str, str]:
    """Each tag slug with the spelling most articles use, sorted by slug."""
    spellings: dict[str, Counter[str]] = {}
    for article in articles:
        for tag in article.tags:
            slug = tag_slug(tag)
            if slug:
                counts = spellings.get(slug)
                if counts is None:
                    counts = spellings[slug] = Counter()
                counts[tag] += 1
    return {
        slug: min(counts.items(), key=lambda item: (-item[1], item[0]))[0] for slug, counts in sorted(spellings.items())
    }


@dataclass(frozen=True, slots=True)
class TagIndex:
    """The site's tags in one pass over its articles: what `tagged_articles`, `site_tags`
    and `tag_collisions` give, each of which would take a pass of its own."""

    tagged: dict[str, list[Article]]
    names: dict[str, str]
    collisions: list[tuple[str, tuple[str, ...]]]


def tag_index(articles: Iterable[Article]) -> TagIndex:
    """`tagged_articles`, `site_tags` and `tag_collisions` of `articles` at once.

    Thousands of articles share a few sets of tags, so each distinct set is slugged and
    counted once; taking the sets in the order they first appear keeps the first spelling
    of each tag as `tag_collisions` finds it.
    """
    tagged: dict[str, list[Article]] = {}
    groups: dict[tuple[str, ...], tuple[list[list[Article]], list[int]]] = {}
    for article in articles:
        group = groups.get(article.tags)
        if group is None:
            slugs = dict.fromkeys(tag_slug(tag) for tag in article.tags)
            group = groups[article.tags] = ([tagged.setdefault(slug, []) for slug in slugs], [0])
        for members in group[0]:
            members.append(article)
        group[1][0] += 1
    counts: dict[str, Counter[str]] = {}
    spellings: dict[str, dict[str, str]] = {}
    for tags, (_members, times) in groups.items():
        for tag in tags:
            slug = tag_slug(tag)
            spellings.setdefault(slug, {}).setdefault(tag.casefold(), tag)
            if slug:
                counts.setdefault(slug, Counter())[tag] += times[0]
    names = {
        slug: min(found.items(), key=lambda item: (-item[1], item[0]))[0] for slug, found in sorted(counts.items())
    }
    collisions = [(slug, tuple(sorted(seen.values()))) for slug, seen in sorted(spellings.items()) if len(seen) > 1]
    return TagIndex(tagged, names, collisions)


def feed_entries(
    config: Config, articles: Iterable[Article], now: datetime, *, tag: str | None = None
) -> list[Article]:
    """The articles a feed carries: public ones (with the tag), newest first, at most N.

    Callers pass public articles already; filtering again here costs nothing and means a
    draft can never reach a feed through a forgetful caller.
    """
    wanted = tag_slug(tag) if tag is not None else None
    chosen = [
        a for a in articles if a.is_public(now) and (wanted is None or any(tag_slug(t) == wanted for t in a.tags))
    ]
    chosen.sort(key=lambda a: (a.date, a.slug), reverse=True)
    chosen = chosen[: int(config["feeds.entries"])]
    owners: dict[str, Article] = {}
    for article in chosen:
        other = owners.setdefault(article.id, article)
        if other is not article:
            # Readers would show one entry and drop the other, or flip between them.
            raise BuildError(
                f"{article.source or article.url} and {other.source or other.url} have the same id "
                f"{article.id!r}; give one of them another `slug:` in its front matter"
            )
    return chosen


def content_html(article: Article) -> str:
    """The article's HTML as feeds carry it: with its lead image on top, as on its page."""
    if not article.image or article.image in article.html:
        return article.html
    figure = f'<figure><img src="{html.escape(article.image)}" alt="{html.escape(article.image_alt)}"></figure>\n'
    return figure + article.html


def _text(value: str) -> str:
    return _XML_INVALID.sub("", value)


def _stamp(value: datetime) -> datetime:
    """UTC, whole seconds: the form every feed date takes."""
    return value.astimezone(UTC).replace(microsecond=0)


def _rfc3339(value: datetime) -> str:
    return _stamp(value).isoformat()


def _feed_updated(entries: Sequence[Article]) -> datetime:
    return _stamp(max((a.modified for a in entries), default=EMPTY_FEED_UPDATED))


def absolute_url(config: Config, url: str) -> str:
    """A URL from config (such as the logo) made absolute against the site."""
    return to_uri(urljoin(site_uri(config) + "/", url)) if url else ""


def _publication_author(config: Config) -> str:
    """Atom requires an author; the publication's name stands in when none is configured."""
    name, _email = split_person(str(config["publication.author"]))
    return name or str(config["publication.title"])


def _author(config: Config, article: Article) -> tuple[str, str]:
    """The article's author as (name, email): "Name <email>" never lands whole in a name."""
    name, email = split_person(article.author)
    return name or _publication_author(config), email


def _feed_title(config: Config, tag_name: str | None) -> str:
    title = str(config["publication.title"])
    return f"{title}: {tag_name}" if tag_name else title


def _tag_name(articles: Sequence[Article], tag: str | None) -> str | None:
    if tag is None:
        return None
    return site_tags(articles).get(tag_slug(tag), tag)


def _generator(
    config: Config, articles: Sequence[Article], now: datetime, kind: FeedKind, tag: str | None
) -> FeedGenerator:
    entries = feed_entries(config, articles, now, tag=tag)
    tag_name = _tag_name(entries, tag)
    self_url = feed_url(config, kind, tag)
    home = site_uri(config) + "/"
    author_name = _text(_publication_author(config))
    email = feed_email(config)
    language = feed_language(config)

    # feedgen (and lxml with it) only for a build that writes a feed: an edit of an older
    # article renders none, and loading them is a twentieth of its time.
    from feedgen.feed import FeedGenerator

    from publisher.site import feed_extensions as ext

    fg = FeedGenerator()
    fg.register_extension("publisher_rss", ext.RssExtension, ext.RssEntryExtension, atom=False, rss=True)
    fg.register_extension("publisher_media", ext.MediaExtension, ext.MediaEntryExtension)
    fg.publisher_rss.hubs = hub_urls(config)

    fg.id(_canonical(self_url))
    fg.title(_text(_feed_title(config, tag_name)))
    fg.description(_text(str(config["publication.description"]) or _feed_title(config, tag_name)))
    if language:
        fg.language(language)
    fg.generator("publisher")
    fg.updated(_feed_updated(entries))
    person = {"name": author_name}
    if email:
        person["email"] = email
        fg.managingEditor(f"{email} ({author_name})")
    fg.author(person)
    logo = absolute_url(config, str(config["publication.logo"]))
    if logo:
        fg.logo(logo)
        fg.icon(logo)
    fg.link(href=self_url, rel="self", type=FEED_TYPES[kind])
    for hub in hub_urls(config):
        fg.link(href=hub, rel="hub")
    # Last on purpose: feedgen makes the final link the RSS channel's <link>.
    fg.link(href=home, rel="alternate", type="text/html")

    for article in entries:
        fe = fg.add_entry(order="append")
        fe.id(article.id)
        fe.title(_text(article.title))
        fe.link(href=article.url, rel="alternate", type="text/html")
        fe.published(_stamp(article.date))
        fe.updated(_stamp(article.modified))
        fe.content(_text(content_html(article)), type="html")
        if article.summary:
            # The summary is plain text. Atom says so (type="text"); RSS has no type and
            # readers render <description> as HTML, so there the text is escaped first:
            # a summary that mentions "<img onerror=...>" must not become one.
            summary = html.escape(article.summary, quote=False) if kind == "rss" else article.summary
            fe.summary(_text(summary))
        author, author_email = _author(config, article)
        author = _text(author)
        if author_email:
            fe.author(name=author, email=author_email)
        else:
            fe.author(name=author)
        for tag_value in article.tags:
            fe.category(term=_text(tag_value))
        fe.publisher_rss.creator = author
        fe.publisher_rss.modified = article.modified
        fe.publisher_media.image = article.image or ""
    return fg


def build_rss(config: Config, articles: Sequence[Article], now: datetime, *, tag: str | None = None) -> bytes:
    """RSS 2.0 with content:encoded, guid isPermaLink="false" and WebSub hub links."""
    fg = _generator(config, articles, now, "rss", tag)
    rss: bytes = fg.rss_str(pretty=True)
    return rss


def build_atom(config: Config, articles: Sequence[Article], now: datetime, *, tag: str | None = None) -> bytes:
    """Atom 1.0 with full HTML content, summary, published and updated times."""
    fg = _generator(config, articles, now, "atom", tag)
    atom: bytes = fg.atom_str(pretty=True)
    return atom


def build_json(config: Config, articles: Sequence[Article], now: datetime, *, tag: str | None = None) -> bytes:
    """JSON Feed 1.1 (https://www.jsonfeed.org/version/1.1/)."""
    entries = feed_entries(config, articles, now, tag=tag)
    tag_name = _tag_name(entries, tag)
    publication_author = _publication_author(config)
    feed: dict[str, Any] = {
        "version": JSON_FEED_VERSION,
        "title": _feed_title(config, tag_name),
        "home_page_url": site_uri(config) + "/",
        "feed_url": feed_url(config, "json", tag),
    }
    if config["publication.description"]:
        feed["description"] = str(config["publication.description"])
    logo = absolute_url(config, str(config["publication.logo"]))
    if logo:
        feed["icon"] = logo
        feed["favicon"] = logo
    feed["authors"] = [{"name": publication_author, "url": site_uri(config) + "/"}]
    language = feed_language(config)
    if language:
        feed["language"] = language
    hubs = hub_urls(config)
    if hubs:
        feed["hubs"] = [{"type": "WebSub", "url": hub} for hub in hubs]
    items = []
    for article in entries:
        item: dict[str, Any] = {
            "id": article.id,
            "url": article.url,
            "title": article.title,
            "content_html": content_html(article),
        }
        if article.summary:
            item["summary"] = article.summary
        if article.image:
            item["image"] = article.image
        item["date_published"] = _rfc3339(article.date)
        item["date_modified"] = _rfc3339(article.modified)
        name, email = _author(config, article)
        item["authors"] = [{"name": name, "url": f"mailto:{email}"} if email else {"name": name}]
        if article.tags:
            item["tags"] = list(article.tags)
        items.append(item)
    feed["items"] = items
    # "replace": a lone surrogate in an article that did not come through content.py
    # becomes "?" rather than failing the whole build.
    return (json.dumps(feed, ensure_ascii=False, indent=2) + "\n").encode("utf-8", "replace")


class FeedBuilder(Protocol):
    def __call__(
        self, config: Config, articles: Sequence[Article], now: datetime, *, tag: str | None = None
    ) -> bytes: ...


BUILDERS: dict[FeedKind, FeedBuilder] = {"rss": build_rss, "atom": build_atom, "json": build_json}
