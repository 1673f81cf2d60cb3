"""A big archive's sitemap: an index of parts of at most 50,000 addresses, each valid."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree
from test_build import NOW, SITE, article, publication

from publisher.errors import BuildError
from publisher.models import Article
from publisher.site import archive, build

SCHEMAS = Path(__file__).parent / "data" / "sitemaps"
NS = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}


def schema(name: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMAS / name)))


def dated(count: int, *, first: int = 0) -> list[Article]:
    start = datetime(2020, 1, 1, 9, 0, tzinfo=UTC)
    out = []
    for n in range(first, first + count):
        date = start + timedelta(hours=n)
        out.append(
            article(
                f"a-{n:05d}", 1, date=date, id=f"tag:notes.example.org,2020:/a-{n:05d}", url=f"{SITE}/a-{n:05d}/"
            )
        )
    return out


def parts_of(public: Path) -> dict[str, list[str]]:
    """Each part the index lists (by its path in the build) with the addresses it holds."""
    index = etree.parse(str(public / "sitemap.xml"))
    schema("siteindex.xsd").assertValid(index)
    found: dict[str, list[str]] = {}
    for loc in index.getroot().iterfind("s:sitemap/s:loc", NS):
        rel = str(loc.text).removeprefix(f"{SITE}/")
        part = etree.parse(str(public / rel))
        schema("sitemap.xsd").assertValid(part)
        found[rel] = [str(u.text) for u in part.getroot().iterfind("s:url/s:loc", NS)]
    return found


def test_past_the_limit_the_sitemap_is_an_index_of_valid_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More pages than one sitemap may hold: sitemap.xml indexes parts of at most the limit,
    together listing every page once, with no warning."""
    monkeypatch.setattr(archive, "SITEMAP_LIMIT", 5)
    report = build.build_site(publication(tmp_path), dated(12), NOW)
    parts = parts_of(tmp_path / "public")
    assert list(parts) == [f"sitemaps/sitemap-{n}.xml" for n in (1, 2, 3)]
    assert all(len(urls) <= 5 for urls in parts.values())
    listed = [url for urls in parts.values() for url in urls]
    assert sorted(listed) == sorted([f"{SITE}/", f"{SITE}/tags/sleep/", *(f"{SITE}/a-{n:05d}/" for n in range(12))])
    assert not [w for w in report.warnings if "sitemap" in w]


def test_the_index_dates_each_part_by_its_newest_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each part's lastmod in the index is the newest last change among the pages it lists."""
    monkeypatch.setattr(archive, "SITEMAP_LIMIT", 5)
    build.build_site(publication(tmp_path), dated(12), NOW)
    index = etree.parse(str(tmp_path / "public" / "sitemap.xml")).getroot()
    stamps = [str(s.findtext("s:lastmod", namespaces=NS)) for s in index.iterfind("s:sitemap", NS)]
    # The first part holds the front page (dated by the newest article); the last the newest articles.
    assert stamps == ["2020-01-01T20:00:00+00:00", "2020-01-01T16:00:00+00:00", "2020-01-01T20:00:00+00:00"]


def test_a_new_article_rewrites_the_first_and_last_parts_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Articles fill the parts oldest first: a new one changes the part holding the front page
    and the last part; the parts between are left as they were."""
    monkeypatch.setattr(archive, "SITEMAP_LIMIT", 5)
    config = publication(tmp_path)
    build.build_site(config, dated(17), NOW)
    report = build.build_site(config, dated(18), NOW)
    sitemaps = sorted(rel for rel in report.written if "sitemap" in rel)
    assert sitemaps == ["sitemap.xml", "sitemaps/sitemap-1.xml", "sitemaps/sitemap-4.xml"]


def test_back_under_the_limit_the_parts_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the site shrinks back into one sitemap, sitemap.xml is a plain urlset again and
    the parts are removed from the output."""
    monkeypatch.setattr(archive, "SITEMAP_LIMIT", 5)
    config = publication(tmp_path)
    build.build_site(config, dated(12), NOW)
    report = build.build_site(config, dated(3), NOW)
    public = tmp_path / "public"
    schema("sitemap.xsd").assertValid(etree.parse(str(public / "sitemap.xml")))
    assert "sitemaps/sitemap-1.xml" in report.removed
    assert not (public / "sitemaps").exists()


def test_fifty_thousand_and_two_pages_take_two_parts(tmp_path: Path) -> None:
    """At the real limit: 50,000 articles, the front page and one topic are 50,002 addresses,
    so the first part holds 50,000 and the second the two newest articles, all valid."""
    pages = archive.Archive(publication(tmp_path), dated(50_000)[::-1])
    files = pages.sitemap_files()
    assert sorted(files) == ["sitemap.xml", "sitemaps/sitemap-1.xml", "sitemaps/sitemap-2.xml"]
    part = etree.fromstring(files["sitemaps/sitemap-1.xml"], parser=etree.XMLParser(huge_tree=True))
    schema("sitemap.xsd").assertValid(part)
    assert len(part) == archive.SITEMAP_LIMIT
    last = etree.fromstring(files["sitemaps/sitemap-2.xml"])
    schema("sitemap.xsd").assertValid(last)
    assert [u.findtext("s:loc", namespaces=NS) for u in last] == [f"{SITE}/a-49998/", f"{SITE}/a-49999/"]
    schema("siteindex.xsd").assertValid(etree.fromstring(files["sitemap.xml"]))


def test_an_article_cannot_take_the_parts_folder(tmp_path: Path) -> None:
    """`sitemaps` is the folder of the parts: an article with that slug is refused by name."""
    with pytest.raises(BuildError, match="slug 'sitemaps'"):
        build.build_site(publication(tmp_path), [article("sitemaps", 3)], NOW)
