"""The web archive: article pages, the paged index, tag pages, sitemap, robots.txt, search,
and the page for addresses where nothing is published (`404.html`, served with status 404).

Everything here is a file of the build (relative path -> bytes); `publisher.site.build` writes
them. Pages come from templates/web/ (overridable by file name) in the publication's
language, and each is a pure function of the articles: nothing reads the clock, so an
unchanged publication rebuilds to the same bytes and no page is rewritten.

Paging: the index and each tag's page hold `build.per_page` articles, newest first:
`index.html`, `page/2/index.html`, ... and `tags/<slug>/index.html`,
`tags/<slug>/page/2/index.html`, ... with rel="prev"/"next" between them. A new article
moves every older one down a place, so it rewrites every page of its lists; that is the
price of newest-first pages that never go stale.

An article's page links its newer and older neighbours: the template gets them with
everything but their text (`html` is ""), so a build reads only the text it shows.

Search: `search.json` holds the title, summary, tags, date and address of every public
article, and `assets/search.js` (from templates/web/, a few dozen lines, no library and
no CDN) matches words against it in the reader's browser. The form is in the page with
`hidden`, and only the script shows it, once the index has loaded: without JavaScript the
page is the plain archive, with no box that would do nothing. The archive's pages allow
scripts from the site itself only (see `publisher.web.static`).

Sitemap: `sitemap.xml` lists the front page, the topics and every article while they fit
in one sitemap (50,000 addresses, sitemaps.org's limit). Past that it is a sitemap index
of parts, `sitemaps/sitemap-1.xml`, ..., of at most 50,000 each: the front page and the
topics first, then the articles oldest first, so that a new article rewrites the first
and last parts and the index, never the parts between.

Images: an article's `image` on the site's own host is looked for in the content folder
under the same path (`/images/lamp.jpg` -> content/images/lamp.jpg) and copied into the
build; one that is not there is a warning naming the article, since the page, the feeds
and every newsletter would show a broken picture. Images on other hosts are left alone
(a build does not go on the network).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote, urlsplit

import jinja2
from markupsafe import Markup

from publisher.config import Config
from publisher.content import i18n
from publisher.content.templates import template_environment
from publisher.errors import TemplateError
from publisher.models import Article
from publisher.site import feeds

__all__ = [
    "ARCHIVE_FILES",
    "ARCHIVE_FOLDERS",
    "FROM_TEMPLATES",
    "SITEMAP_FOLDER",
    "SITEMAP_LIMIT",
    "TEMPLATES",
    "Archive",
    "image_files",
    "render_archive",
]

ARCHIVE_FOLDERS = frozenset({"assets", "page", "sitemaps", "tags"})
"""Top-level folders the archive writes: no article may take one of these slugs."""
ARCHIVE_FILES = frozenset({"404.html", "robots.txt", "search.json", "sitemap.xml"})
"""Top-level files the archive writes: an article's folder may not have their names either."""
FROM_TEMPLATES = MappingProxyType({"404.html": "web/404.html", "robots.txt": "web/robots.txt"})
"""Files of the build that an author replaces with a template of the same name, not in the output."""

TEMPLATES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "index": ("web/index.html",),
        "tags": ("web/tags.html",),
        "tag": ("web/tag.html",),
        "article": ("web/article.html",),
        "robots": ("web/robots.txt",),
        "not found": ("web/404.html",),
        "script": ("web/search.js",),
        "sitemap": (),
        "sitemap part": (),
        "sitemap index": (),
        "search": (),
    }
)
"""The templates each kind of file (the first of its inputs in `Archive.jobs`) renders
from, before what they extend or include; a kind not here is taken to read them all."""

SITEMAP_LIMIT = 50_000
"""URLs one sitemap file may list (sitemaps.org); past it sitemap.xml is an index of parts."""
SITEMAP_FOLDER = "sitemaps"
"""Where the parts of a sitemap too big for one file go: sitemaps/sitemap-1.xml, ..."""

_FEED_LABELS: tuple[tuple[feeds.FeedKind, str], ...] = (("rss", "RSS"), ("atom", "Atom"), ("json", "JSON Feed"))
_SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"


@dataclass(frozen=True, slots=True)
class _Page:
    """One page of a paged list of articles."""

    number: int
    count: int
    articles: Sequence[Article]
    path: str
    """Relative file path in the build, e.g. "tags/sleep/page/2/index.html"."""
    url: str
    prev_url: str
    next_url: str

    @property
    def root(self) -> str:
        """The relative way from this page up to the site's root folder ("", "../../")."""
        return "../" * self.path.count("/")


def _pages(config: Config, articles: Sequence[Article], base: str) -> list[_Page]:
    """`articles` cut into pages under the folder `base` ("" or "tags/<slug>/")."""
    per_page = _per_page(config, len(articles))
    count = max(1, math.ceil(len(articles) / per_page))
    site = feeds.site_uri(config) + "/"

    def where(number: int) -> tuple[str, str]:
        path = _page_path(base, number)
        return path, site + path.removesuffix("index.html")

    out = []
    for number in range(1, count + 1):
        path, url = where(number)
        out.append(
            _Page(
                number=number,
                count=count,
                articles=articles[(number - 1) * per_page : number * per_page],
                path=path,
                url=url,
                prev_url=where(number - 1)[1] if number > 1 else "",
                next_url=where(number + 1)[1] if number < count else "",
            )
        )
    return out


def _per_page(config: Config, articles: int) -> int:
    return int(config["build.per_page"]) or max(articles, 1)


def _page_path(base: str, number: int) -> str:
    """The file of page `number` of the list under `base` ("" or "tags/<slug>/")."""
    return f"{base}index.html" if number == 1 else f"{base}page/{number}/index.html"


def _xml_text(text: str) -> str:
    """`text` as XML character data (&, < and > escaped: xml.sax.saxutils' escape, whose
    module loads urllib.request and with it http, email and ssl)."""
    return html.escape(text, quote=False)


def _no_key(article: Article) -> str:
    return ""


def _same(article: Article) -> Article:
    return article


def _bare(article: Article | None) -> Article | None:
    """A neighbour as its page shows it: everything but its text (which would cost a
    read of every article twice more per build, for a link)."""
    return replace(article, html="") if article is not None and article.html else article


def _no_notes(render: Callable[[], bytes]) -> Callable[[], tuple[bytes, tuple[str, ...]]]:
    return lambda: (render(), ())


def _page_inputs(page: _Page) -> tuple[str, ...]:
    return (page.path, str(page.number), str(page.count), page.prev_url, page.next_url)


def _shows_update(article: Article, config: Config) -> bool:
    """`newsletter.shows_update`, the page's "Updated <date>" as the newsletter's, without
    importing mail (MIME and DKIM: a third of a second of every build that renders a page)."""
    if article.updated is None:
        return False
    return article.updated.astimezone(config.tz).date() > article.date.astimezone(config.tz).date()


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def _urlset(entries: Sequence[tuple[str, datetime | None]]) -> bytes:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', f'<urlset xmlns="{_SITEMAP_NS}">']
    for loc, lastmod in entries:
        stamp = f"<lastmod>{_rfc3339(lastmod)}</lastmod>" if lastmod else ""
        lines.append(f"<url><loc>{_xml_text(loc)}</loc>{stamp}</url>")
    lines.append("</urlset>")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _urlset_and_notes(entries: Sequence[tuple[str, datetime | None]]) -> tuple[bytes, tuple[str, ...]]:
    return _urlset(entries), ()


def _sitemap_index(parts: Sequence[tuple[str, str]]) -> bytes:
    """A sitemap index (sitemaps.org) of its parts, each with the newest last change it lists."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', f'<sitemapindex xmlns="{_SITEMAP_NS}">']
    for loc, stamp in parts:
        lastmod = f"<lastmod>{stamp}</lastmod>" if stamp else ""
        lines.append(f"<sitemap><loc>{_xml_text(loc)}</loc>{lastmod}</sitemap>")
    lines.append("</sitemapindex>")
    return ("\n".join(lines) + "\n").encode("utf-8")


class Archive:
    """The archive's files for one set of public articles (newest first)."""

    def __init__(
        self,
        config: Config,
        articles: Sequence[Article],
        tags: feeds.TagIndex | None = None,
        *,
        compiled: jinja2.BytecodeCache | None = None,
    ) -> None:
        """`tags` is `feeds.tag_index(articles)` when the caller has it already; `compiled`
        keeps the templates' compiled code for the next build."""
        self.config = config
        self.articles = articles
        self.tags = feeds.site_tags(articles) if tags is None else tags.names
        self.language = str(config["publication.language"])
        self.env = template_environment(config, bytecode_cache=compiled)
        self.env.auto_reload = False  # one build: thousands of pages, no template changing under them
        self.env.filters["rfc3339"] = _rfc3339
        self.site_url = feeds.site_uri(config) + "/"
        self.site = {
            "title": str(config["publication.title"]),
            "description": str(config["publication.description"]),
            "author": str(config["publication.author"]),
            "language": self.language,
            "locale": str(i18n.babel_locale(self.language)),
            "url": self.site_url,
            "subscribe_url": config.public_url + "/subscribe",
            "logo": feeds.absolute_url(config, str(config["publication.logo"])),
            "tags_url": self.site_url + "tags/" if self.tags else "",
        }
        self.feeds = [
            {
                "label": label,
                "title": f"{self.site['title']} ({label})",
                "type": feeds.FEED_TYPES[kind],
                "href": feeds.feed_url(config, kind),
            }
            for kind, label in _FEED_LABELS
        ]
        self.hubs = feeds.hub_urls(config)
        self.search = bool(config["build.search"])
        self.per_tag_feeds = bool(config["feeds.per_tag"])
        self.warnings: list[str] = []
        self._linked_tags: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = {}
        self._tag_feeds: dict[str, dict[str, str]] = {}
        self._members: dict[str, list[Article]] | None = None if tags is None else tags.tagged

    # Files

    def files(self) -> Iterator[tuple[str, bytes]]:
        """Every page and data file of the archive, in a stable order."""
        for path, _inputs, render in self.jobs(_no_key, _no_key, _same):
            assert render is not None  # every file is planned without `wanted`
            yield path, render()[0]

    def jobs(
        self,
        key: Callable[[Article], str],
        about: Callable[[Article], str],
        full: Callable[[Article], Article],
        *,
        wanted: Container[str] | None = None,
        keys: Sequence[str] | None = None,
        abouts: Sequence[str] | None = None,
    ) -> Iterator[tuple[str, tuple[str, ...] | None, Callable[[], tuple[bytes, tuple[str, ...]]] | None]]:
        """Every file of `files`, not yet rendered: its path, what its bytes are made from
        besides the config and templates, and how to render it (bytes and warnings).

        `key` names an article's values, `about` its values but its HTML (what lists,
        neighbours, the sitemap and the search index show); `keys` and `abouts` are the
        same of every article in order, when the caller has them. The articles may come
        without their HTML: `full` gives an article whole, for its own page and the list
        pages. A build renders only the files whose inputs changed.

        With `wanted`, only the files it holds are planned: every other file comes as its
        path with neither inputs nor a way to render it (None, None), for a caller that
        knows them unchanged (see `affected`).
        """
        keys = [key(article) for article in self.articles] if keys is None else keys
        abouts = [about(article) for article in self.articles] if abouts is None else abouts
        where: dict[int, int] = {}

        def keys_of(articles: Sequence[Article]) -> list[str]:
            if not where:
                where.update((id(article), position) for position, article in enumerate(self.articles))
            return [keys[where[id(article)]] for article in articles]

        def pages(articles: Sequence[Article], base: str) -> Iterator[_Page | str]:
            """The list's pages, or only the paths of those not `wanted` (no page made)."""
            if wanted is None:
                yield from _pages(self.config, articles, base)
                return
            count = max(1, math.ceil(len(articles) / _per_page(self.config, len(articles))))
            paths = [_page_path(base, number) for number in range(1, count + 1)]
            if any(path in wanted for path in paths):
                yield from (page if page.path in wanted else page.path for page in _pages(self.config, articles, base))
            else:
                yield from paths

        for page in pages(self.articles, ""):
            if isinstance(page, str):
                yield page, None, None
                continue
            yield (
                page.path,
                ("index", *_page_inputs(page), *keys_of(page.articles)),
                _no_notes(partial(self._whole_list_page, full, "web/index.html", page, search=self.search)),
            )
        if self.tags:
            members = self._tag_members()
            listing = [
                {"name": name, "href": self._tag_url(slug), "count": len(members[slug])}
                for slug, name in self.tags.items()
            ]
            if wanted is not None and "tags/index.html" not in wanted:
                yield "tags/index.html", None, None
            else:
                yield (
                    "tags/index.html",
                    ("tags", repr(listing)),
                    (
                        lambda: (
                            self._render(
                                "web/tags.html", tags=listing, canonical=self.site_url + "tags/", root="../", pager=None
                            ),
                            (),
                        )
                    ),
                )
            for slug, name in self.tags.items():
                tag = {"name": name, "slug": slug, "feed": self._tag_feed(name)}
                for page in pages(members[slug], f"tags/{slug}/"):
                    if isinstance(page, str):
                        yield page, None, None
                        continue
                    inputs = ("tag", repr(tag), *_page_inputs(page), *keys_of(page.articles))
                    yield (
                        page.path,
                        inputs,
                        _no_notes(partial(self._whole_list_page, full, "web/tag.html", page, tag=tag, search=False)),
                    )
        shown_tags: dict[tuple[str, ...], str] = {}  # a few sets of tags among thousands of articles
        for position, article in enumerate(self.articles):
            if wanted is not None:
                path = f"{article.slug}/index.html"
                if path not in wanted:
                    yield path, None, None
                    continue
            newer = self.articles[position - 1] if position > 0 else None
            older = self.articles[position + 1] if position + 1 < len(self.articles) else None
            tags = shown_tags.get(article.tags)
            if tags is None:
                tags = shown_tags[article.tags] = repr(self._article_tags(article))
            inputs = (
                "article",
                keys[position],
                abouts[position - 1] if newer else "",
                abouts[position + 1] if older else "",
                tags,
            )
            yield (
                f"{article.slug}/index.html",
                inputs,
                _no_notes(partial(self._article_page, full, article, newer, older)),
            )
        if wanted is None or any(path in wanted for path in self._sitemap_paths()):
            for path, inputs, render in self._sitemap_jobs(abouts):
                yield (path, inputs, render) if wanted is None or path in wanted else (path, None, None)
        else:
            yield from ((path, None, None) for path in self._sitemap_paths())
        tail: list[tuple[str, tuple[str, ...], Callable[[], tuple[bytes, tuple[str, ...]]]]] = [
            ("robots.txt", ("robots",), lambda: (self.robots(), ())),
            ("404.html", ("not found",), lambda: (self._render("web/404.html"), ())),
        ]
        if self.search:
            tail.append(("search.json", ("search", *abouts), lambda: (self.search_index(), ())))
            tail.append(("assets/search.js", ("script",), lambda: (self.script(), ())))
        for path, inputs, render in tail:
            yield (path, inputs, render) if wanted is None or path in wanted else (path, None, None)

    def affected(self, edited: Iterable[int], retold: Iterable[int]) -> set[str]:
        """The files of `jobs` whose inputs can differ from a build of the same articles in
        the same order, with the same tags, settings, templates and code, in which the
        articles at the positions `edited` had other values, and those at `retold` (a part
        of `edited`) other values besides their HTML. Every other file of `jobs` has the
        inputs it had then, which tests/test_build_plan_changed.py checks against a full plan.

        An edited article's own page, and each list page it is on (they are keyed by their
        articles' whole values); an article whose values besides its HTML changed also
        changes its neighbours' pages (they show its title), the sitemap and the search
        index. The tags' index lists names and counts only, which the same tags keep.
        """
        articles = self.articles
        per_page = _per_page(self.config, len(articles))
        members = self._tag_members() if self.tags else {}
        found: set[str] = set()
        for position in edited:
            article = articles[position]
            found.add(f"{article.slug}/index.html")
            found.add(_page_path("", position // per_page + 1))
            for slug in dict.fromkeys(feeds.tag_slug(t) for t in article.tags):
                if slug in self.tags:
                    tagged = members[slug]
                    # The lists are in the articles' order: found by identity, not equality.
                    place = next(n for n, other in enumerate(tagged) if other is article)
                    found.add(_page_path(f"tags/{slug}/", place // _per_page(self.config, len(tagged)) + 1))
        retold = list(retold)
        for position in retold:
            for neighbour in (position - 1, position + 1):
                if 0 <= neighbour < len(articles):
                    found.add(f"{articles[neighbour].slug}/index.html")
        if retold:
            found.update(self._sitemap_paths())
            found.add("search.json")
        return found

    def _sitemap_paths(self) -> list[str]:
        """The files `_sitemap_jobs` plans, in its order, without planning them."""
        entries = 1 + len(self.tags) + len(self.articles)  # the front page, the topics, the articles
        if entries <= SITEMAP_LIMIT:
            return ["sitemap.xml"]
        parts = math.ceil(entries / SITEMAP_LIMIT)
        return [*(f"{SITEMAP_FOLDER}/sitemap-{number}.xml" for number in range(1, parts + 1)), "sitemap.xml"]

    def _tag_members(self) -> dict[str, list[Article]]:
        if self._members is not None:
            return self._members
        members: dict[str, list[Article]] = {slug: [] for slug in self.tags}
        for article in self.articles:
            # Two of an article's tags can share a slug ("Sleep & Rest", "sleep-rest"): list it once.
            for slug in dict.fromkeys(feeds.tag_slug(t) for t in article.tags):
                if slug in members:
                    members[slug].append(article)
        self._members = members
        return members

    def _tag_url(self, slug: str) -> str:
        return f"{self.site_url}tags/{slug}/"

    def _tag_feed(self, name: str) -> dict[str, str] | None:
        if not self.per_tag_feeds:
            return None
        known = self._tag_feeds.get(name)
        if known is None:
            known = self._tag_feeds[name] = {
                "title": f"{self.site['title']}: {name}",
                "type": feeds.FEED_TYPES["atom"],
                "href": feeds.feed_url(self.config, "atom", name),
            }
        return dict(known)

    def _article_tags(self, article: Article) -> list[dict[str, Any]]:
        known = self._linked_tags.get((article.slug, article.tags))
        if known is not None:
            return known
        out: list[dict[str, Any]] = []
        linked: set[str] = set()
        for tag in article.tags:
            slug = feeds.tag_slug(tag)
            name = self.tags.get(slug)
            if name is not None and slug not in linked:
                linked.add(slug)
                out.append({"name": tag, "href": self._tag_url(slug), "feed": self._tag_feed(name)})
        self._linked_tags[(article.slug, article.tags)] = out
        return out

    # Pages

    def _render(self, name: str, **context: Any) -> bytes:
        try:
            template = self.env.get_template(name)
            page = template.render(site=self.site, feeds=self.feeds, hubs=self.hubs, **context)
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(
                f"template {exc.name!r} not found in {self.config.path_of('build.templates')} "
                "or the defaults; check the file name of your override"
            ) from exc
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"{exc.filename or exc.name}:{exc.lineno}: {exc.message}; fix the template") from exc
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template {name!r} failed to render: {exc}") from exc
        return page.encode("utf-8")

    def _list_page(self, name: str, page: _Page, **context: Any) -> bytes:
        years: dict[int, list[Article]] = {}
        for article in page.articles:
            years.setdefault(article.date.astimezone(self.config.tz).year, []).append(article)
        return self._render(
            name,
            articles=page.articles,
            years=sorted(years.items(), reverse=True),
            pager=page,
            canonical=page.url,
            root=page.root,
            **context,
        )

    def article(self, article: Article, *, newer: Article | None, older: Article | None) -> bytes:
        tags = self._article_tags(article)
        return self._render(
            "web/article.html",
            article=article,
            content=Markup(feeds.content_html(article)),  # noqa: S704  (sanitised by content)
            updated=_shows_update(article, self.config),
            tags=tags,
            tag_feeds=[t["feed"] | {"tag": t["name"]} for t in tags if t["feed"]],
            newer=newer,
            older=older,
            canonical=article.url,
            root="../",
            pager=None,
            structured=Markup(self._json_ld(article)),  # noqa: S704  (escaped for <script> below)
        )

    def _json_ld(self, article: Article) -> str:
        """schema.org BlogPosting for the article, safe inside <script type="application/ld+json">."""
        author = article.author or self.site["author"] or self.site["title"]
        data: dict[str, Any] = {
            "@context": "https://schema.org",
            "@type": "BlogPosting",
            "headline": article.title,
            "url": article.url,
            "mainEntityOfPage": {"@type": "WebPage", "@id": article.url},
            "datePublished": _rfc3339(article.date),
            "dateModified": _rfc3339(article.modified),
            "author": {"@type": "Person", "name": author},
            "publisher": {"@type": "Organization", "name": self.site["title"], "url": self.site_url},
            "inLanguage": self.language,
        }
        if article.summary:
            data["description"] = article.summary
        if article.image:
            data["image"] = article.image
        if article.tags:
            data["keywords"] = list(article.tags)
        if self.site["logo"]:
            data["publisher"]["logo"] = {"@type": "ImageObject", "url": self.site["logo"]}
        text = json.dumps(data, ensure_ascii=False, indent=1)
        # "</script>" or "<!--" in a title must not end or bend the element.
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")

    # Data files

    def _article_page(
        self, full: Callable[[Article], Article], article: Article, newer: Article | None, older: Article | None
    ) -> bytes:
        return self.article(full(article), newer=_bare(newer), older=_bare(older))

    def _whole_list_page(self, full: Callable[[Article], Article], name: str, page: _Page, **context: Any) -> bytes:
        return self._list_page(name, replace(page, articles=[full(a) for a in page.articles]), **context)

    def _sitemap_head(self) -> list[tuple[str, datetime | None]]:
        """The front page and the topics' pages, each dated by its newest article's last change."""
        entries: list[tuple[str, datetime | None]] = []
        entries.append((self.site_url, max((a.modified for a in self.articles), default=None)))
        members = self._tag_members()
        for slug in self.tags:
            entries.append((self._tag_url(slug), max((a.modified for a in members[slug]), default=None)))
        return entries

    def _sitemap_jobs(
        self, abouts: Sequence[str]
    ) -> Iterator[tuple[str, tuple[str, ...], Callable[[], tuple[bytes, tuple[str, ...]]]]]:
        """sitemap.xml alone while the site fits in one; past that, an index and its parts.

        The parts list the front page and the topics first, then the articles oldest first,
        so a new article changes only the last part (and the first, whose front page it
        dates): a build rewrites two files of a big archive's sitemap, not all of them.
        """
        head = self._sitemap_head()
        head_inputs = tuple(f"{loc} {_rfc3339(moment) if moment else ''}" for loc, moment in head)
        if len(head) + len(self.articles) <= SITEMAP_LIMIT:
            yield "sitemap.xml", ("sitemap", *head_inputs, *abouts), lambda: (self.sitemap(), ())
            return
        entries = [*head, *((a.url, a.modified) for a in reversed(self.articles))]
        inputs = [*head_inputs, *reversed(abouts)]
        listed: list[tuple[str, str]] = []
        for start in range(0, len(entries), SITEMAP_LIMIT):
            part = entries[start : start + SITEMAP_LIMIT]
            path = f"{SITEMAP_FOLDER}/sitemap-{len(listed) + 1}.xml"
            newest = max((moment for _loc, moment in part if moment is not None), default=None)
            listed.append((self.site_url + path, _rfc3339(newest) if newest else ""))
            yield path, ("sitemap part", *inputs[start : start + SITEMAP_LIMIT]), partial(_urlset_and_notes, part)
        yield (
            "sitemap.xml",
            ("sitemap index", *(f"{loc} {stamp}" for loc, stamp in listed)),
            (lambda: (_sitemap_index(listed), ())),
        )

    def sitemap(self) -> bytes:
        """Every page a search engine should know, each with its last change: one sitemap
        while they fit (`SITEMAP_LIMIT`); see `sitemap_files` for more."""
        entries = [*self._sitemap_head(), *((a.url, a.modified) for a in self.articles)]
        return _urlset(entries[:SITEMAP_LIMIT])

    def sitemap_files(self) -> dict[str, bytes]:
        """sitemap.xml, and past `SITEMAP_LIMIT` pages the parts under sitemaps/ it indexes."""
        return {path: render()[0] for path, _inputs, render in self._sitemap_jobs([""] * len(self.articles))}

    def robots(self) -> bytes:
        """Crawlers welcome, newsletter previews left out, and where the sitemap is
        (templates/web/robots.txt, which an author may override like any template)."""
        return self._render("web/robots.txt", prefix=urlsplit(self.site_url).path)

    def search_index(self) -> bytes:
        """One compact entry per article, newest first; addresses relative to the site root."""
        tz = self.config.tz
        entries = [
            {
                "title": article.title,
                "url": f"{article.slug}/",
                "summary": article.summary,
                "tags": list(article.tags),
                "date": i18n.format_date(article.date, self.language, tz),
            }
            for article in self.articles
        ]
        return json.dumps(entries, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def script(self) -> bytes:
        loader = self.env.loader
        assert loader is not None
        try:
            source, _name, _uptodate = loader.get_source(self.env, "web/search.js")
        except jinja2.TemplateNotFound as exc:
            raise TemplateError("template 'web/search.js' not found; check the file name of your override") from exc
        return source.encode("utf-8")


def image_files(
    config: Config, articles: Sequence[Article], taken: Container[str]
) -> tuple[list[tuple[str, Path]], list[str]]:
    """Local lead images: each one's path in the build and its file in the content folder,
    plus warnings for those that are missing or would replace a file in `taken`."""
    site = urlsplit(feeds.site_uri(config) + "/")
    content = config.path_of("build.content")
    found: dict[str, Path] = {}
    warnings: list[str] = []
    for article in articles:
        if not article.image:
            continue
        parts = urlsplit(article.image)
        if parts.netloc.lower() != site.netloc.lower() or not parts.path.startswith(site.path):
            continue
        rel = unquote(parts.path[len(site.path) :])
        where = article.source or article.url
        source = (content / rel).resolve()
        if not rel or rel.endswith("/") or content not in source.parents:
            warnings.append(f"{where}: image {article.image} is not a file under the content folder; fix `image:`")
            continue
        if rel in found:
            continue
        if rel in taken:
            warnings.append(f"{where}: image {article.image} would replace a page of the site; move the image")
            continue
        if not source.is_file():
            warnings.append(_missing_image(where, article.image, source))
            continue
        found[rel] = source
    return list(found.items()), warnings


def _missing_image(where: str, image: str, source: Path) -> str:
    return (
        f"{where}: image {image} not found: put the file at {source} "
        "(or give a full https:// address); pages, feeds and newsletters would show a broken picture"
    )


def _images(
    config: Config, articles: Sequence[Article], taken: Mapping[str, bytes]
) -> tuple[dict[str, bytes], list[str]]:
    """Local lead images copied from the content folder, and warnings for missing ones."""
    found, warnings = image_files(config, articles, taken)
    files: dict[str, bytes] = {}
    for rel, source in found:
        try:
            files[rel] = source.read_bytes()
        except OSError:
            warnings.append(_missing_image(rel, "/" + rel, source))
    return files, warnings


def render_archive(
    config: Config, articles: Sequence[Article], *, taken: Mapping[str, bytes] = MappingProxyType({})
) -> tuple[dict[str, bytes], list[str]]:
    """The archive's files for `articles` (public, newest first), plus warnings.

    `taken` holds the build's other files, which an image may not replace.
    """
    warnings: list[str] = []
    language = str(config["publication.language"])
    note = i18n.catalog_warning(language, config.path.name if config.path else "config.toml")
    if note:
        warnings.append(note)
    pages = Archive(config, articles)
    files = dict(pages.files())
    warnings.extend(pages.warnings)
    images, image_warnings = _images(config, articles, {**taken, **files})
    files.update(images)
    warnings.extend(image_warnings)
    return files, warnings
