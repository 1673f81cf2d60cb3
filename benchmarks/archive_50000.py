"""A big archive: `publisher build` of 50,000 articles against Hugo's, and what it wrote, checked.

    .venv/bin/python benchmarks/archive_50000.py [--articles 50000] [--no-hugo]

The articles are build_1000.py's (front matter, four sections, a table, footnotes; two
of ten tags each), an hour apart so that all are in the past, written into a publisher
publication and a Hugo site (build_incremental.py's templates). One cold build of each
(a child process timed on the wall clock, interpreter start-up included, peak RSS from
wait4), then one article edited and publisher built again. Then the build is checked:

- sitemap.xml is a sitemap index valid against the sitemaps.org schema (tests/data/
  sitemaps), each part valid, of at most 50,000 addresses, together listing the front
  page, every topic and every article once;
- search.json holds every article once;
- the paged index and every topic's pages list every article once, newest first.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from build_1000 import CONFIG, article_text
from build_incremental import HUGO_CONFIG, HUGO_LAYOUTS, hugo_build, publisher_build
from lxml import etree

SCHEMAS = Path(__file__).resolve().parent.parent / "tests" / "data" / "sitemaps"
NS = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}


def write_sites(root: Path, count: int, hugo: bool) -> tuple[Path, Path, Path]:
    rng = random.Random(50_000)
    pub, site = root / "publisher", root / "hugo"
    (pub / "content").mkdir(parents=True)
    (pub / "config.toml").write_text(CONFIG.format(previews=20), encoding="utf-8")
    if hugo:
        (site / "content" / "posts").mkdir(parents=True)
        (site / "config.toml").write_text(HUGO_CONFIG, encoding="utf-8")
        for name, text in HUGO_LAYOUTS.items():
            (site / "layouts" / name).parent.mkdir(parents=True, exist_ok=True)
            (site / "layouts" / name).write_text(text, encoding="utf-8")
    start = datetime(2015, 1, 1, 8, 0, tzinfo=UTC)
    names = []
    for number in range(count):
        date = start + timedelta(hours=number)
        text = re.sub(r"^image(_alt)?: .*\n", "", article_text(rng, number, date), flags=re.MULTILINE)
        name = f"{date:%Y-%m-%d-%H}-article-{number:05d}.md"
        (pub / "content" / name).write_text(text, encoding="utf-8")
        if hugo:
            (site / "content" / "posts" / name).write_text(text, encoding="utf-8")
        names.append(name)
    return pub / "config.toml", site, pub / "content" / names[count // 2]


def listed(page: Path) -> list[str]:
    return re.findall(r'<h[23][^>]*>\s*<a href="([^"]+)"', page.read_text(encoding="utf-8"))


def check(public: Path, count: int) -> list[str]:
    """What is wrong with the build's sitemap, search index and lists (nothing, if all is well)."""
    problems: list[str] = []
    index = etree.parse(str(public / "sitemap.xml"), etree.XMLParser(huge_tree=True))
    urlset = etree.XMLSchema(etree.parse(str(SCHEMAS / "sitemap.xsd")))
    parts = [(index, "sitemap.xml")]  # a site that fits in one sitemap (a run with fewer articles)
    if index.getroot().tag.endswith("sitemapindex"):
        if not etree.XMLSchema(etree.parse(str(SCHEMAS / "siteindex.xsd"))).validate(index):
            problems.append("sitemap.xml is not a valid sitemap index")
        parts = []
        for loc in index.getroot().iterfind("s:sitemap/s:loc", NS):
            rel = "sitemaps/" + str(loc.text).split("/sitemaps/")[1]
            parts.append((etree.parse(str(public / rel), etree.XMLParser(huge_tree=True)), rel))
    urls: list[str] = []
    site = str(index.getroot().findtext("s:url/s:loc", namespaces=NS) or "")
    for part, name in parts:
        site = site or str(part.getroot().findtext("s:url/s:loc", namespaces=NS))
        if not urlset.validate(part):
            problems.append(f"{name} is not a valid sitemap")
        found = [str(u.text) for u in part.getroot().iterfind("s:url/s:loc", NS)]
        if len(found) > 50_000:
            problems.append(f"{name} lists {len(found):,} addresses")
        urls.extend(found)
    tags = sorted(p.parent.name for p in (public / "tags").glob("*/index.html"))
    articles = [u for u in urls if u.removeprefix(site).count("/") == 1]
    if len(urls) != len(set(urls)) or len(articles) != count or len(urls) != count + 1 + len(tags):
        problems.append(f"the sitemap lists {len(urls):,} addresses for {count:,} articles and {len(tags)} topics")
    search = json.loads((public / "search.json").read_bytes())
    if len(search) != count or len({entry["url"] for entry in search}) != count:
        problems.append(f"search.json holds {len(search):,} entries for {count:,} articles")
    pages = [public / "index.html", *sorted(public.glob("page/*/index.html"), key=lambda p: int(p.parent.name))]
    front = [link for page in pages for link in listed(page)]
    if len(front) != count or len(set(front)) != count:
        problems.append(f"the paged index lists {len(front):,} links for {count:,} articles")
    per_tag: Counter[str] = Counter()
    for tag in tags:
        folder = public / "tags" / tag
        for page in [folder / "index.html", *folder.glob("page/*/index.html")]:
            per_tag[tag] += len(listed(page))
    if sum(per_tag.values()) != 2 * count:  # two topics an article
        problems.append(f"the topics' pages list {sum(per_tag.values()):,} articles, not {2 * count:,}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=50_000)
    parser.add_argument("--no-hugo", action="store_true", help="build with publisher alone")
    args = parser.parse_args()
    hugo = not args.no_hugo and shutil.which("hugo") is not None
    base = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="publisher-50k-", dir=base) as tmp:
        config, site, edited = write_sites(Path(tmp), args.articles, hugo)
        cold, cold_peak, cold_own, _cpu = publisher_build(config)
        print(f"publisher cold build: {cold:.1f} s ({cold_own:.1f} s without start-up), peak RSS {cold_peak:.0f} MB")
        if hugo:
            hugo_wall, hugo_peak, _nan, _cpu = hugo_build(site)
            ratio = cold / hugo_wall
            print(f"hugo cold build:      {hugo_wall:.1f} s, peak RSS {hugo_peak:.0f} MB; publisher/hugo {ratio:.2f}x")
        with edited.open("a", encoding="utf-8") as handle:
            handle.write("\n\nAn added paragraph.\n")
        again, again_peak, again_own, _cpu = publisher_build(config)
        print(
            f"publisher, one edited: {again:.2f} s ({again_own:.2f} s without start-up), peak RSS {again_peak:.0f} MB"
        )
        problems = check(config.parent / "public", args.articles)
        print("checked: sitemap index and parts valid, search index and lists whole" if not problems else "")
        for problem in problems:
            print(f"PROBLEM: {problem}")
        if problems:
            sys.exit(1)


if __name__ == "__main__":
    main()
