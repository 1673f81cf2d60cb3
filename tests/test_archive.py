"""The archive as a site: pages, tag pages, sitemap, robots.txt, social cards, search, images."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from lxml import etree
from test_build import NOW, SITE, article, publication
from web_support import AppClient

from publisher.config import Config, load_config
from publisher.errors import BuildError
from publisher.models import Article
from publisher.site import archive, build
from publisher.web.static import StaticSite

SITEMAP_XSD = Path(__file__).parent / "data" / "sitemaps" / "sitemap.xsd"
"""The sitemaps.org schema (0.9), as published there."""

VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"})


def many(count: int, **fields: object) -> list[Article]:
    """`count` articles a day apart, the newest first in the result of a build."""
    start = datetime(2025, 1, 1, 9, 0, tzinfo=UTC)
    out = []
    for n in range(count):
        date = start + timedelta(days=n)
        out.append(
            article(
                f"article-{n:03d}",
                1,
                date=date,
                id=f"tag:notes.example.org,{date:%Y-%m-%d}:/article-{n:03d}",
                title=f"Article number {n}",
                **fields,
            )
        )
    return out


def with_settings(root: Path, settings: str) -> Config:
    publication(root)
    path = root / "config.toml"
    path.write_text(path.read_text().replace("[build]\n", f"[build]\n{settings}\n", 1))
    return load_config(path, env={})


class _Checker(HTMLParser):
    """The page checks: balanced elements, unique ids, links with targets, no event handlers."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.ids: set[str] = set()
        self.h1 = 0
        self.lang = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "html":
            self.lang = values.get("lang") or ""
        if tag == "h1":
            self.h1 += 1
        if tag == "a" and not values.get("href"):
            self.problems.append("a link without href")
        identifier = values.get("id")
        if identifier:
            if identifier in self.ids:
                self.problems.append(f"id {identifier!r} twice")
            self.ids.add(identifier)
        self.problems += [f"<{tag} {name}>" for name, _ in attrs if name.startswith("on")]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
            return
        self.stack.pop()


def page_problems(page: str) -> list[str]:
    checker = _Checker()
    checker.feed(page)
    checker.close()
    problems = list(checker.problems)
    if checker.stack:
        problems.append(f"unclosed {checker.stack}")
    if checker.h1 != 1:
        problems.append(f"{checker.h1} <h1> elements")
    if not checker.lang:
        problems.append("no lang on <html>")
    return problems


def pages_of(public: Path) -> dict[str, str]:
    return {str(p.relative_to(public)): p.read_text(encoding="utf-8") for p in sorted(public.rglob("*.html"))}


def links(page: str, rel: str) -> list[str]:
    return re.findall(rf'<link rel="{rel}" href="([^"]+)">', page)


def test_index_is_paged_with_prev_and_next(tmp_path: Path) -> None:
    """45 articles at 20 a page: three pages, linked both ways, newest first."""
    config = with_settings(tmp_path, "per_page = 20")
    build.build_site(config, many(45), NOW)
    public = tmp_path / "public"
    first = (public / "index.html").read_text()
    second = (public / "page" / "2" / "index.html").read_text()
    third = (public / "page" / "3" / "index.html").read_text()
    assert not (public / "page" / "4").exists()
    assert links(first, "prev") == [] and links(first, "next") == [f"{SITE}/page/2/"]
    assert links(second, "prev") == [f"{SITE}/"] and links(second, "next") == [f"{SITE}/page/3/"]
    assert links(third, "prev") == [f"{SITE}/page/2/"] and links(third, "next") == []
    assert links(second, "canonical") == [f"{SITE}/page/2/"]
    assert first.count('<article>') == 20 and third.count("<article>") == 5
    assert first.index("Article number 44") < first.index("Article number 25")
    assert "Article number 24" in second and "Article number 24" not in first
    assert "Page 2 of 3" in second


def test_per_page_zero_is_one_page(tmp_path: Path) -> None:
    """per_page = 0 lists everything on the index and writes no page/ folder."""
    config = with_settings(tmp_path, "per_page = 0")
    build.build_site(config, many(30), NOW)
    assert (tmp_path / "public" / "index.html").read_text().count("<article>") == 30
    assert not (tmp_path / "public" / "page").exists()


def test_no_change_rebuild_is_byte_identical(tmp_path: Path) -> None:
    """A second build of the same articles, even a day later, writes nothing at all."""
    config = with_settings(tmp_path, "per_page = 7")
    build.build_site(config, many(30, tags=("Sleep", "Rest")), NOW)
    before = {p: p.read_bytes() for p in (tmp_path / "public").rglob("*") if p.is_file()}
    report = build.build_site(config, many(30, tags=("Sleep", "Rest")), NOW + timedelta(days=1))
    assert report.written == ()
    after = {p: p.read_bytes() for p in (tmp_path / "public").rglob("*") if p.is_file()}
    assert after == before


def test_tag_pages_are_paged_and_link_their_feed(tmp_path: Path) -> None:
    """Each tag has its own paged page, linked from its articles, with its feed in <head> and in the page."""
    config = with_settings(tmp_path, "per_page = 2")
    posts = [*many(3, tags=("Sleep & Rest",)), article("lonely", 2, tags=("Grief",))]
    build.build_site(config, posts, NOW)
    public = tmp_path / "public"
    tag_page = (public / "tags" / "sleep-rest" / "index.html").read_text()
    feed = f"{SITE}/feeds/tags/sleep-rest.xml"
    head = f'<link rel="alternate" type="application/atom+xml" title="Harbor Notes: Sleep &amp; Rest" href="{feed}">'
    assert head in tag_page
    assert f'<a href="{feed}" type="application/atom+xml">' in tag_page
    assert links(tag_page, "next") == [f"{SITE}/tags/sleep-rest/page/2/"]
    second = (public / "tags" / "sleep-rest" / "page" / "2" / "index.html").read_text()
    assert "Article number 0" in second and "lonely" not in second.lower()
    post = (public / "article-001" / "index.html").read_text()
    assert f'<a href="{SITE}/tags/sleep-rest/" rel="tag"><bdi>Sleep &amp; Rest</bdi></a>' in post
    topics = (public / "tags" / "index.html").read_text()
    assert f'href="{SITE}/tags/grief/"' in topics and f'href="{SITE}/tags/sleep-rest/"' in topics


def test_tag_pages_without_tag_feeds(tmp_path: Path) -> None:
    """With per-tag feeds off, tag pages still exist and link no feed that is not there."""
    publication(tmp_path)
    path = tmp_path / "config.toml"
    path.write_text(path.read_text().replace("[feeds]\n", "[feeds]\nper_tag = false\n", 1))
    build.build_site(load_config(path, env={}), many(2), NOW)
    tag_page = (tmp_path / "public" / "tags" / "sleep" / "index.html").read_text()
    assert "/feeds/tags/" not in tag_page


def test_sitemap_is_valid_against_the_schema(tmp_path: Path) -> None:
    """sitemap.xml validates against the sitemaps.org XSD and dates each page by its last change."""
    config = with_settings(tmp_path, "per_page = 5")
    updated = datetime(2026, 2, 20, 8, 0, tzinfo=UTC)
    posts = [*many(12), article("odd-<&>", 3, tags=("Sleep",), updated=updated)]
    build.build_site(config, posts, NOW)
    raw = (tmp_path / "public" / "sitemap.xml").read_bytes()
    schema = etree.XMLSchema(etree.parse(str(SITEMAP_XSD)))
    document = etree.fromstring(raw)
    schema.assertValid(document)
    ns = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    entries = {u.findtext("s:loc", namespaces=ns): u.findtext("s:lastmod", namespaces=ns) for u in document}
    assert entries[f"{SITE}/odd-<&>/"] == "2026-02-20T08:00:00+00:00"
    assert entries[f"{SITE}/article-000/"] == "2025-01-01T09:00:00+00:00"
    assert entries[f"{SITE}/"] == "2026-02-20T08:00:00+00:00"
    assert entries[f"{SITE}/tags/sleep/"] == "2026-02-20T08:00:00+00:00"
    assert len(entries) == 13 + 1 + 1


def test_sitemap_past_its_limit_is_an_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """More pages than a sitemap may list: sitemap.xml indexes parts (tests/test_sitemap_index.py)."""
    monkeypatch.setattr(archive, "SITEMAP_LIMIT", 5)
    build.build_site(publication(tmp_path), many(8), NOW)
    document = etree.parse(str(tmp_path / "public" / "sitemap.xml")).getroot()
    assert document.tag == "{http://www.sitemaps.org/schemas/sitemap/0.9}sitemapindex"
    assert len(document) == 2


def test_empty_sitemap_is_still_valid(tmp_path: Path) -> None:
    """With nothing published the sitemap lists the front page alone, and validates."""
    build.build_site(publication(tmp_path), [], NOW)
    schema = etree.XMLSchema(etree.parse(str(SITEMAP_XSD)))
    schema.assertValid(etree.parse(str(tmp_path / "public" / "sitemap.xml")))


def test_robots_points_to_the_sitemap(tmp_path: Path) -> None:
    """robots.txt welcomes crawlers, keeps them out of previews and names the sitemap."""
    build.build_site(publication(tmp_path), many(1), NOW)
    robots = (tmp_path / "public" / "robots.txt").read_text()
    assert robots == f"User-agent: *\nDisallow: /newsletters/\n\nSitemap: {SITE}/sitemap.xml\n"


def test_authors_robots_txt_in_the_output_is_told_where_it_goes(tmp_path: Path) -> None:
    """A robots.txt of the author's already in the output stops the build with the way out:
    the same file as a template override, which the build then writes."""
    config = publication(tmp_path)
    public = tmp_path / "public"
    public.mkdir()
    (public / "robots.txt").write_text("User-agent: *\nDisallow: /private/\n")
    with pytest.raises(BuildError, match=r"robots.txt of your own goes in the templates folder .* as web/robots.txt"):
        build.build_site(config, many(1), NOW)
    (tmp_path / "templates" / "web").mkdir(parents=True)
    (public / "robots.txt").rename(tmp_path / "templates" / "web" / "robots.txt")
    build.build_site(config, many(1), NOW)
    assert (public / "robots.txt").read_text() == "User-agent: *\nDisallow: /private/\n"


def test_addresses_with_nothing_published_get_the_sites_own_page_in_its_language(tmp_path: Path) -> None:
    """The build writes 404.html in the publication's language, kept out of search engines,
    every link absolute; `serve` answers a missing address with it and status 404."""
    publication(tmp_path)
    path = tmp_path / "config.toml"
    path.write_text(path.read_text().replace("[publication]\n", '[publication]\nlanguage = "de"\n', 1))
    config = load_config(path, env={})
    build.build_site(config, many(2), NOW)
    page = (tmp_path / "public" / "404.html").read_text()
    assert page_problems(page) == []
    assert "<h1>Seite nicht gefunden</h1>" in page and '<meta name="robots" content="noindex">' in page
    assert f'<a href="{SITE}/">Zu den neuesten Artikeln</a>' in page
    assert "404.html" not in (tmp_path / "public" / "sitemap.xml").read_text()
    client = AppClient(StaticSite(config.path_of("build.output"), site_url=config.site_url, hubs=()))
    answer = client.get("/a/page/that/moved/")
    assert answer.status_code == 404 and "Seite nicht gefunden" in answer.text


def test_robots_under_a_path(tmp_path: Path) -> None:
    """A site under a path keeps its previews out under that path."""
    publication(tmp_path)
    path = tmp_path / "config.toml"
    path.write_text(path.read_text().replace(f'url = "{SITE}/"', f'url = "{SITE}/blog/"', 1))
    build.build_site(load_config(path, env={}), [], NOW)
    robots = (tmp_path / "public" / "robots.txt").read_text()
    assert "Disallow: /blog/newsletters/\n" in robots and f"Sitemap: {SITE}/blog/sitemap.xml" in robots


def meta(page: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for key, value in re.findall(r'<meta (?:property|name)="([^"]+)" content="([^"]*)">', page):
        found.setdefault(key, []).append(value)
    return found


def test_article_has_social_cards_and_canonical(tmp_path: Path) -> None:
    """Open Graph and Twitter cards carry title, summary, image, author and both dates."""
    updated = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
    post = article(
        "night-waking", 20, tags=("Sleep", "Anxiety"), updated=updated,
        image=f"{SITE}/images/lamp.jpg", image_alt="A lamp",
    )
    build.build_site(publication(tmp_path), [post], NOW)
    page = (tmp_path / "public" / "night-waking" / "index.html").read_text()
    cards = meta(page)
    assert cards["og:type"] == ["article"]
    assert cards["og:title"] == cards["twitter:title"] == ["Night waking"]
    assert cards["og:description"] == cards["twitter:description"] == ["Summary of night-waking."]
    assert cards["og:image"] == cards["twitter:image"] == [f"{SITE}/images/lamp.jpg"]
    assert cards["og:image:alt"] == ["A lamp"]
    assert cards["og:url"] == [f"{SITE}/night-waking/"]
    assert cards["og:site_name"] == ["Harbor Notes"]
    assert cards["article:author"] == ["Dana Reyes, LCSW"]
    assert cards["article:published_time"] == ["2026-01-20T14:30:00+00:00"]
    assert cards["article:modified_time"] == ["2026-02-02T09:00:00+00:00"]
    assert cards["article:tag"] == ["Sleep", "Anxiety"]
    assert cards["twitter:card"] == ["summary_large_image"]
    assert links(page, "canonical") == [f"{SITE}/night-waking/"]


def json_ld(page: str) -> dict[str, object]:
    [block] = re.findall(r'<script type="application/ld\+json">(.*?)</script>', page, re.S)
    data = json.loads(block)
    assert isinstance(data, dict)
    return data


def _iso(value: object) -> datetime:
    assert isinstance(value, str)
    moment = datetime.fromisoformat(value)
    assert moment.tzinfo is not None, value
    return moment


def test_json_ld_is_a_blog_posting(tmp_path: Path) -> None:
    """JSON-LD has schema.org's BlogPosting shape: headline, dates with zones, a Person
    author, an Organization publisher, the page as mainEntityOfPage."""
    updated = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
    post = article("night-waking", 20, updated=updated, image=f"{SITE}/images/lamp.jpg")
    build.build_site(publication(tmp_path), [post], NOW)
    data = json_ld((tmp_path / "public" / "night-waking" / "index.html").read_text())
    assert data["@context"] == "https://schema.org"
    assert data["@type"] == "BlogPosting"
    assert data["headline"] == "Night waking"
    assert data["description"] == "Summary of night-waking."
    assert data["image"] == f"{SITE}/images/lamp.jpg"
    assert _iso(data["datePublished"]) == post.date
    assert _iso(data["dateModified"]) == updated
    assert data["author"] == {"@type": "Person", "name": "Dana Reyes, LCSW"}
    assert data["publisher"] == {"@type": "Organization", "name": "Harbor Notes", "url": f"{SITE}/"}
    assert data["mainEntityOfPage"] == {"@type": "WebPage", "@id": f"{SITE}/night-waking/"}
    assert data["inLanguage"] == "en"
    assert data["keywords"] == ["Sleep"]


def test_json_ld_cannot_be_closed_by_a_title(tmp_path: Path) -> None:
    """A title holding "</script><!--" stays inside the data block, and reads back intact."""
    hostile = "</script><script>alert(1)</script><!-- & more"
    build.build_site(publication(tmp_path), [article("odd", 3, title=hostile)], NOW)
    page = (tmp_path / "public" / "odd" / "index.html").read_text()
    assert "<script>alert" not in page
    assert json_ld(page)["headline"] == hostile


def test_every_archive_page_passes_the_html_checks(tmp_path: Path) -> None:
    """Index pages, tag pages, the topics page and articles: balanced, one h1, lang, no handlers."""
    config = with_settings(tmp_path, "per_page = 3")
    posts = [*many(7, tags=("Sleep", "C++", "睡眠")), article("hostile", 3, title="<b>x</b> & \"y\"")]
    build.build_site(config, posts, NOW)
    pages = pages_of(tmp_path / "public")
    assert len(pages) > 12
    assert {name: page_problems(page) for name, page in pages.items() if page_problems(page)} == {}


def test_search_index_holds_every_article(tmp_path: Path) -> None:
    """search.json lists each public article's title, summary, tags, date and address, newest first."""
    config = with_settings(tmp_path, "per_page = 2")
    posts = [*many(5, tags=("Sleep",)), article("secret", 4, draft=True)]
    build.build_site(config, posts, NOW)
    entries = json.loads((tmp_path / "public" / "search.json").read_text())
    assert [e["url"] for e in entries] == [f"article-{n:03d}/" for n in (4, 3, 2, 1, 0)]
    assert entries[0] == {
        "title": "Article number 4",
        "url": "article-004/",
        "summary": "Summary of article-004.",
        "tags": ["Sleep"],
        "date": "January 5, 2025",
    }


def test_search_box_only_on_archive_pages_and_hidden_without_script(tmp_path: Path) -> None:
    """The form is in every index page, hidden until the script shows it, with relative paths
    to the index and the script; article and tag pages have none."""
    config = with_settings(tmp_path, "per_page = 2")
    build.build_site(config, many(3), NOW)
    public = tmp_path / "public"
    first = (public / "index.html").read_text()
    second = (public / "page" / "2" / "index.html").read_text()
    assert re.search(r'<form id="search"[^>]* hidden[ >]', first)
    assert 'data-index="search.json"' in first and '<script src="assets/search.js" defer></script>' in first
    assert 'data-index="../../search.json"' in second and 'src="../../assets/search.js"' in second
    assert 'id="search"' not in (public / "article-000" / "index.html").read_text()
    assert 'id="search"' not in (public / "tags" / "sleep" / "index.html").read_text()
    script = (public / "assets" / "search.js").read_text()
    assert not re.search(r"https?://|//[a-z]", script), "the script must load nothing from another site"


def test_search_can_be_switched_off(tmp_path: Path) -> None:
    """build.search = false writes no index, no script and no box."""
    config = with_settings(tmp_path, "search = false")
    build.build_site(config, many(3), NOW)
    public = tmp_path / "public"
    assert not (public / "search.json").exists() and not (public / "assets").exists()
    assert 'id="search"' not in (public / "index.html").read_text()
    assert "<script" not in (public / "index.html").read_text()


def test_local_image_is_copied(tmp_path: Path) -> None:
    """An image on the site's own host is copied from the content folder into the build."""
    config = publication(tmp_path)
    (tmp_path / "content" / "images").mkdir(parents=True)
    (tmp_path / "content" / "images" / "my lamp.jpg").write_bytes(b"\xff\xd8 a jpeg")
    post = article("lamp", 3, image=f"{SITE}/images/my%20lamp.jpg")
    report = build.build_site(config, [post], NOW)
    assert (tmp_path / "public" / "images" / "my lamp.jpg").read_bytes() == b"\xff\xd8 a jpeg"
    assert "images/my lamp.jpg" in report.written
    assert not [w for w in report.warnings if "image" in w]


def test_missing_local_image_warns_naming_the_article(tmp_path: Path) -> None:
    """A lead image that is not in the content folder is a warning naming the article's file."""
    config = publication(tmp_path)
    post = article("lamp", 3, image=f"{SITE}/images/gone.jpg")
    report = build.build_site(config, [post], NOW)
    [warning] = [w for w in report.warnings if "image" in w]
    assert warning.startswith("content/2026-01-03-lamp.md: image https://notes.example.org/images/gone.jpg not found")
    assert str(tmp_path / "content" / "images" / "gone.jpg") in warning


def test_remote_image_is_left_alone(tmp_path: Path) -> None:
    """An image on another host is neither fetched nor warned about."""
    report = build.build_site(publication(tmp_path), [article("far", 3, image="https://cdn.example.net/a.jpg")], NOW)
    assert not [w for w in report.warnings if "image" in w]


def test_image_cannot_escape_the_content_folder(tmp_path: Path) -> None:
    """An image path climbing out of the content folder is refused with a warning, not read."""
    config = publication(tmp_path)
    (tmp_path / "secret.jpg").write_bytes(b"private")
    report = build.build_site(config, [article("climb", 3, image=f"{SITE}/images/%2e%2e/%2e%2e/secret.jpg")], NOW)
    assert any("is not a file under the content folder" in w for w in report.warnings)
    assert b"private" not in b"".join(p.read_bytes() for p in (tmp_path / "public").rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("language", "words", "date"),
    [
        ("de", ("Themen", "Per E-Mail abonnieren", "Artikel durchsuchen"), "5. Januar 2025"),
        ("fr", ("Sujets", "S’abonner par e-mail", "Rechercher dans les articles"), "5 janvier 2025"),
        ("ar", ("المواضيع", "اشترك بالبريد الإلكتروني", "ابحث في المقالات"), "5 يناير 2025"),
    ],
)
def test_archive_speaks_the_language(tmp_path: Path, language: str, words: tuple[str, ...], date: str) -> None:
    """Pages take their words from the catalog and their dates from Babel; Arabic stays rtl."""
    publication(tmp_path)
    path = tmp_path / "config.toml"
    path.write_text(path.read_text().replace("[build]", f'language = "{language}"\n\n[build]', 1))
    report = build.build_site(load_config(path, env={}), many(5, tags=("Sleep",)), NOW)
    index = (tmp_path / "public" / "index.html").read_text()
    for word in words:
        assert word in index
    assert date in index
    assert ("dir=\"rtl\"" in index) == (language == "ar")
    assert not [w for w in report.warnings if "catalog" in w]
    assert json.loads((tmp_path / "public" / "search.json").read_text())[0]["date"] == date


def test_language_without_a_catalog_is_a_warning(tmp_path: Path) -> None:
    """A publication in Polish builds in English words with Polish dates, and says so."""
    publication(tmp_path)
    path = tmp_path / "config.toml"
    path.write_text(path.read_text().replace("[build]", 'language = "pl"\n\n[build]', 1))
    report = build.build_site(load_config(path, env={}), many(1), NOW)
    [warning] = [w for w in report.warnings if "catalog" in w]
    assert warning.startswith("config.toml: [publication] language 'pl' has no message catalog")
    assert "1 stycznia 2025" in (tmp_path / "public" / "index.html").read_text()


@pytest.mark.parametrize("slug", ["tags", "page", "assets", "sitemap.xml", "robots.txt", "search.json"])
def test_slugs_the_archive_uses_are_refused(tmp_path: Path, slug: str) -> None:
    """An article cannot take a folder or file name the archive writes."""
    with pytest.raises(BuildError, match="cannot name a folder"):
        build.build_site(publication(tmp_path), [article(slug, 3)], NOW)
