"""The site build: what lands in public/, atomically and only when it changed; the CLI verbs."""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import re
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import feedparser
import pytest
from click.testing import CliRunner
from feed_rules import feed_problems

from publisher import content
from publisher.cli import cli
from publisher.config import Config, load_config
from publisher.errors import BuildError, TemplateError
from publisher.models import Article
from publisher.site import build

SITE = "https://notes.example.org"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

CONFIG = """\
[publication]
title = "Harbor Notes"
url = "https://notes.example.org/"
description = "Notes on sleep and recovery."
author = "Dana Reyes, LCSW"
timezone = "America/New_York"
postal_address = "120 Wharf Street, Portland, ME 04101, USA"

[build]
previews = {previews}

[feeds]
entries = 10
hubs = ["https://hub.example.com/"]

[newsletter]
from = "Dana Reyes <notes@example.org>"
"""


def publication(root: Path, *, previews: int = 0, extra: str = "") -> Config:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.toml").write_text(CONFIG.format(previews=previews) + extra, encoding="utf-8")
    return load_config(root / "config.toml", env={})


def article(slug: str, day: int, **fields: object) -> Article:
    date = datetime(2026, 1, day, 14, 30, tzinfo=UTC)
    values: dict[str, object] = {
        "slug": slug,
        "title": slug.replace("-", " ").capitalize(),
        "date": date,
        "html": f"<h2>About {slug}</h2>\n<p>Body of {slug}.</p>\n",
        "id": f"tag:notes.example.org,{date:%Y-%m-%d}:/{slug}",
        "url": f"{SITE}/{slug}/",
        "author": "Dana Reyes, LCSW",
        "summary": f"Summary of {slug}.",
        "tags": ("Sleep",),
        "source": f"content/2026-01-{day:02d}-{slug}.md",
    }
    values.update(fields)
    return Article(**values)  # type: ignore[arg-type]


def articles() -> list[Article]:
    return [
        article("night-waking", 20, tags=("Sleep", "Anxiety"), updated=datetime(2026, 2, 2, 9, 0, tzinfo=UTC)),
        article("grief-and-rest", 12, tags=("grief",)),
        article("small-steps", 5),
        article("secret-draft", 25, title="Secret draft title", draft=True),
        article("not-yet", 27, title="Not yet title", date=NOW + timedelta(days=2)),
    ]


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_writes_feeds_pages_and_manifest(tmp_path: Path) -> None:
    """A build writes every feed, the tag feeds, the archive, one page per article."""
    config = publication(tmp_path)
    report = build.build_site(config, articles(), NOW)
    expected = {
        "feeds/rss.xml",
        "feeds/atom.xml",
        "feeds/feed.json",
        "feeds/tags/sleep.xml",
        "feeds/tags/anxiety.xml",
        "feeds/tags/grief.xml",
        "index.html",
        "night-waking/index.html",
        "grief-and-rest/index.html",
        "small-steps/index.html",
        "tags/index.html",
        "tags/sleep/index.html",
        "tags/anxiety/index.html",
        "tags/grief/index.html",
        "sitemap.xml",
        "robots.txt",
        "404.html",
        "search.json",
        "assets/search.js",
    }
    assert set(report.written) == expected
    assert report.unchanged == ()
    on_disk = set(snapshot(tmp_path / "public"))
    assert on_disk == expected | {build.MANIFEST}
    manifest = json.loads((tmp_path / "public" / build.MANIFEST).read_text())
    assert sorted(manifest["files"]) == sorted(expected)
    feed = (tmp_path / "public" / "feeds" / "atom.xml").read_bytes()
    assert manifest["files"]["feeds/atom.xml"] == "sha256:" + hashlib.sha256(feed).hexdigest()


def test_drafts_and_future_articles_appear_nowhere(tmp_path: Path) -> None:
    """No file in public/ mentions a draft or a future article."""
    config = publication(tmp_path, previews=10)
    build.build_site(config, articles(), NOW)
    for name, (data, _) in snapshot(tmp_path / "public").items():
        for marker in (b"secret-draft", b"Secret draft", b"not-yet", b"Not yet"):
            assert marker not in data, f"{marker!r} in {name}"


def test_second_build_rewrites_nothing(tmp_path: Path) -> None:
    """A rebuild with no change keeps every file's bytes and mtime."""
    config = publication(tmp_path, previews=10)
    build.build_site(config, articles(), NOW)
    before = snapshot(tmp_path / "public")
    report = build.build_site(config, articles(), NOW + timedelta(hours=5))
    assert report.written == ()
    assert report.removed == ()
    assert len(report.unchanged) == len(before) - 1  # all but the manifest
    assert snapshot(tmp_path / "public") == before


def test_an_edit_rewrites_only_what_shows_it(tmp_path: Path) -> None:
    """Editing one article's body rewrites its page and the feeds, not the other pages."""
    config = publication(tmp_path)
    build.build_site(config, articles(), NOW)
    before = snapshot(tmp_path / "public")
    edited = [replace(articles()[2], html="<p>Rewritten.</p>"), *articles()[:2]]
    report = build.build_site(config, edited, NOW)
    assert set(report.written) == {
        "small-steps/index.html",
        "feeds/rss.xml",
        "feeds/atom.xml",
        "feeds/feed.json",
        "feeds/tags/sleep.xml",
    }
    after = snapshot(tmp_path / "public")
    assert after["grief-and-rest/index.html"] == before["grief-and-rest/index.html"]


def test_removed_article_leaves_no_stale_files(tmp_path: Path) -> None:
    """Files an earlier build wrote for a removed article go; the author's own files stay."""
    config = publication(tmp_path)
    build.build_site(config, articles(), NOW)
    own = tmp_path / "public" / "humans.txt"
    own.write_text("User-agent: *\n")
    report = build.build_site(config, articles()[:2], NOW)
    assert "small-steps/index.html" in report.removed
    assert not (tmp_path / "public" / "small-steps").exists()
    assert own.read_text() == "User-agent: *\n"


def test_tampered_manifest_cannot_remove_outside_files(tmp_path: Path) -> None:
    """Manifest entries pointing outside the output folder are ignored."""
    config = publication(tmp_path)
    outside = tmp_path / "keep.txt"
    outside.write_text("keep")
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / build.MANIFEST).write_text(json.dumps({"files": ["../keep.txt"]}))
    report = build.build_site(config, articles(), NOW)
    assert report.removed == ()
    assert outside.read_text() == "keep"


def test_unreadable_manifest_is_a_warning(tmp_path: Path) -> None:
    """A broken manifest keeps stale files and says so instead of failing the build."""
    config = publication(tmp_path)
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / build.MANIFEST).write_text("{not json")
    report = build.build_site(config, articles(), NOW)
    assert any("stale files" in w for w in report.warnings)
    assert json.loads((tmp_path / "public" / build.MANIFEST).read_text())["files"]


def test_check_mode_writes_nothing(tmp_path: Path) -> None:
    """write=False renders and reports what would change, and touches no file."""
    config = publication(tmp_path)
    report = build.build_site(config, articles(), NOW, write=False)
    assert "index.html" in report.written
    assert not (tmp_path / "public").exists()


def test_files_are_world_readable_and_no_temp_files_remain(tmp_path: Path) -> None:
    """Written files are 0644 (web servers read them) and temp files are gone."""
    config = publication(tmp_path)
    build.build_site(config, articles(), NOW)
    files = [p for p in (tmp_path / "public").rglob("*") if p.is_file()]
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in files)
    assert not [p for p in files if p.name.endswith(".tmp")]


def test_unwritable_output_is_a_build_error(tmp_path: Path) -> None:
    """An output path that cannot be a folder gives a BuildError naming it, in check mode too."""
    config = publication(tmp_path)
    (tmp_path / "public").write_text("a file where the folder should be")
    for write in (True, False):
        with pytest.raises(BuildError, match="cannot write"):
            build.build_site(config, articles(), NOW, write=write)


def test_per_tag_feeds_can_be_switched_off(tmp_path: Path) -> None:
    """With feeds.per_tag = false there is no feeds/tags/ folder and no tag feed links."""
    text = CONFIG.format(previews=0).replace("entries = 10", "entries = 10\nper_tag = false")
    (tmp_path / "config.toml").write_text(text)
    config = load_config(tmp_path / "config.toml", env={})
    build.build_site(config, articles(), NOW)
    assert not (tmp_path / "public" / "feeds" / "tags").exists()
    assert b"feeds/tags" not in (tmp_path / "public" / "night-waking" / "index.html").read_bytes()


def test_article_page_links_feeds_and_hub(tmp_path: Path) -> None:
    """Each page announces the feeds, its tags' feeds and the hub, and links its neighbours."""
    config = publication(tmp_path)
    build.build_site(config, articles(), NOW)
    page = (tmp_path / "public" / "grief-and-rest" / "index.html").read_text()
    for href, kind in (
        ("feeds/rss.xml", "application/rss+xml"),
        ("feeds/atom.xml", "application/atom+xml"),
        ("feeds/feed.json", "application/feed+json"),
        ("feeds/tags/grief.xml", "application/atom+xml"),
    ):
        pattern = f'<link rel="alternate" type="{re.escape(kind)}" [^>]*href="{SITE}/{href}">'
        assert re.search(pattern, page), href
    assert '<link rel="hub" href="https://hub.example.com/">' in page
    assert f'<link rel="canonical" href="{SITE}/grief-and-rest/">' in page
    assert f'rel="prev" href="{SITE}/small-steps/"' in page
    assert f'rel="next" href="{SITE}/night-waking/"' in page
    assert "<h2>About grief-and-rest</h2>" in page
    assert '<html lang="en">' in page


def test_archive_lists_public_articles_newest_first(tmp_path: Path) -> None:
    """The index lists every public article, newest first, grouped by year."""
    config = publication(tmp_path)
    build.build_site(config, articles(), NOW)
    index = (tmp_path / "public" / "index.html").read_text()
    positions = [index.index(f'href="{SITE}/{slug}/"') for slug in ("night-waking", "grief-and-rest", "small-steps")]
    assert positions == sorted(positions)
    assert '<h2 id="year-2026">2026</h2>' in index
    assert "January 20, 2026" in index


def test_pages_show_dates_in_the_publication_zone(tmp_path: Path) -> None:
    """A 02:00 UTC article is dated the evening before in New York."""
    config = publication(tmp_path)
    late = article("late", 10, date=datetime(2026, 1, 10, 2, 0, tzinfo=UTC))
    build.build_site(config, [late], NOW)
    page = (tmp_path / "public" / "late" / "index.html").read_text()
    assert '<time datetime="2026-01-10T02:00:00+00:00">January 9, 2026</time>' in page


def test_hostile_title_is_escaped_in_pages(tmp_path: Path) -> None:
    """Markup in a title shows as text on the archive and the article page."""
    config = publication(tmp_path)
    hostile = article("hostile", 3, title='<script>alert("x")</script>')
    build.build_site(config, [hostile], NOW)
    for name in ("index.html", "hostile/index.html", "tags/sleep/index.html"):
        page = (tmp_path / "public" / name).read_text()
        assert "<script>alert" not in page
        assert "&lt;script&gt;" in page


def test_template_override_by_file_name(tmp_path: Path) -> None:
    """A templates/web/article.html in the publication replaces the default."""
    config = publication(tmp_path)
    override = tmp_path / "templates" / "web" / "article.html"
    override.parent.mkdir(parents=True)
    override.write_text("<p>Custom page for {{ article.title }}</p>\n")
    build.build_site(config, articles(), NOW)
    page = (tmp_path / "public" / "small-steps" / "index.html").read_text()
    assert page == "<p>Custom page for Small steps</p>\n"
    assert "<!doctype html>" in (tmp_path / "public" / "index.html").read_text()


def test_broken_template_names_file_and_line(tmp_path: Path) -> None:
    """A template syntax error is a TemplateError with the file name and line."""
    config = publication(tmp_path)
    override = tmp_path / "templates" / "web" / "index.html"
    override.parent.mkdir(parents=True)
    override.write_text("<ul>\n{% for a in articles %}\n<li>{{ a.title }</li>\n")
    with pytest.raises(TemplateError, match=r"index\.html:3"):
        build.build_site(config, articles(), NOW)


def test_duplicate_slug_is_refused(tmp_path: Path) -> None:
    """Two articles with one slug are a BuildError naming both sources."""
    config = publication(tmp_path)
    twins = [article("same", 3), article("same", 4)]
    with pytest.raises(BuildError, match=r"2026-01-03-same\.md.*2026-01-04-same\.md"):
        build.build_site(config, twins, NOW)


@pytest.mark.parametrize("slug", ["../escape", "a/b", ".hidden", "feeds", ""])
def test_slug_that_cannot_be_a_folder_is_refused(tmp_path: Path, slug: str) -> None:
    """Slugs that would escape or clobber the output layout are refused."""
    config = publication(tmp_path)
    with pytest.raises(BuildError, match="cannot name a folder"):
        build.build_site(config, [replace(article("x", 3), slug=slug)], NOW)
    assert not (tmp_path / "escape").exists()


def test_newsletter_previews_for_the_newest_only(tmp_path: Path) -> None:
    """Previews (.html and a multipart/alternative .eml) exist for the newest N articles."""
    config = publication(tmp_path, previews=2)
    report = build.build_site(config, articles(), NOW)
    previews = sorted(p for p in report.written if p.startswith("newsletters/"))
    assert previews == [
        "newsletters/grief-and-rest.eml",
        "newsletters/grief-and-rest.html",
        "newsletters/night-waking.eml",
        "newsletters/night-waking.html",
    ]
    raw = (tmp_path / "public" / "newsletters" / "night-waking.eml").read_bytes()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["List-Unsubscribe"].startswith(f"<{SITE}/unsubscribe/preview>")
    html = (tmp_path / "public" / "newsletters" / "night-waking.html").read_text()
    assert f"{SITE}/unsubscribe/preview" in html
    assert f"{SITE}/manage/preview" in html


def test_preview_warnings_are_collected_once(tmp_path: Path) -> None:
    """Newsletter warnings reach the report, each distinct problem once."""
    publication(tmp_path, previews=3)
    text = (
        (tmp_path / "config.toml")
        .read_text()
        .replace('postal_address = "120 Wharf Street, Portland, ME 04101, USA"\n', "")
    )
    (tmp_path / "config.toml").write_text(text)
    config = load_config(tmp_path / "config.toml", env={})
    report = build.build_site(config, articles(), NOW)
    postal = [w for w in report.warnings if "postal_address" in w]
    assert len(postal) == 1


def test_feeds_in_public_are_valid(tmp_path: Path) -> None:
    """Every XML feed written parses without bozo."""
    config = publication(tmp_path)
    build.build_site(config, articles(), NOW)
    for path in (tmp_path / "public" / "feeds").rglob("*.xml"):
        assert feedparser.parse(path.read_bytes()).bozo == 0, path


ARTICLE_FILE = """\
---
title: {title}
date: 2026-01-{day:02d} 09:00
tags: [sleep]
---

First paragraph of {title}.

## A heading

More text.
"""


def cli_publication(root: Path) -> Path:
    publication(root)
    content = root / "content"
    content.mkdir()
    for day, title in ((3, "Sleep basics"), (9, "Worry time")):
        (content / f"2026-01-{day:02d}-{title.lower().replace(' ', '-')}.md").write_text(
            ARTICLE_FILE.format(title=title, day=day)
        )
    return root / "config.toml"


def test_cli_build_then_rebuild(tmp_path: Path) -> None:
    """`publisher build` reports what it wrote, then that a rebuild left everything alone."""
    config_path = cli_publication(tmp_path)
    runner = CliRunner()
    first = runner.invoke(cli, ["--config", str(config_path), "build"])
    assert first.exit_code == 0, first.output
    assert "wrote index.html" in first.output
    assert (tmp_path / "public" / "sleep-basics" / "index.html").is_file()
    second = runner.invoke(cli, ["--config", str(config_path), "build"])
    assert second.exit_code == 0, second.output
    assert re.search(r": 0 written, \d+ unchanged, 0 removed \(2 articles", second.output)


def test_cli_check_passes_and_writes_nothing(tmp_path: Path) -> None:
    """`publisher check` on good content exits 0 and leaves no public/ behind."""
    config_path = cli_publication(tmp_path)
    result = CliRunner().invoke(cli, ["--config", str(config_path), "check"])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output
    assert not (tmp_path / "public").exists()


def test_cli_check_reports_every_bad_article(tmp_path: Path) -> None:
    """`publisher check` names each broken file and exits 1."""
    config_path = cli_publication(tmp_path)
    (tmp_path / "content" / "2026-02-01-no-title.md").write_text("---\ndate: 2026-02-01\n---\nx\n")
    (tmp_path / "content" / "2026-02-02-bad-date.md").write_text("---\ntitle: Bad date\ndate: someday\n---\nx\n")
    result = CliRunner().invoke(cli, ["--config", str(config_path), "check"])
    assert result.exit_code == 1
    assert "2026-02-01-no-title.md" in result.output
    assert "2026-02-02-bad-date.md" in result.output
    assert not (tmp_path / "public").exists()


def test_cli_check_reports_bad_config(tmp_path: Path) -> None:
    """`publisher check` with a broken config.toml exits 1 naming the key."""
    config_path = cli_publication(tmp_path)
    config_path.write_text(config_path.read_text().replace("entries = 10", 'entries = "ten"'))
    result = CliRunner().invoke(cli, ["--config", str(config_path), "check"])
    assert result.exit_code == 1
    assert "entries" in result.output


def test_cli_new_starts_a_draft_and_refuses_to_overwrite(tmp_path: Path) -> None:
    """`publisher new` writes a parseable draft once; a second run with the title fails."""
    config_path = cli_publication(tmp_path)
    runner = CliRunner()
    first = runner.invoke(cli, ["--config", str(config_path), "new", "Coping with worry"])
    assert first.exit_code == 0, first.output
    drafts = list((tmp_path / "content").glob("*-coping-with-worry.md"))
    assert len(drafts) == 1
    assert "draft: true" in drafts[0].read_text()
    before = drafts[0].read_bytes()
    second = runner.invoke(cli, ["--config", str(config_path), "new", "Coping with worry"])
    assert second.exit_code == 1
    assert "already exists" in second.output
    assert drafts[0].read_bytes() == before
    built = runner.invoke(cli, ["--config", str(config_path), "build"])
    assert built.exit_code == 0, built.output
    assert not (tmp_path / "public" / "coping-with-worry").exists()


def dkim_key(path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )


DKIM = """
[delivery.dkim]
domain = "example.org"
selector = "news"
private_key_file = "dkim.pem"
"""


def test_previews_are_never_dkim_signed(tmp_path: Path) -> None:
    """A published preview carries no replayable signature, and rebuilds keep its bytes."""
    dkim_key(tmp_path / "dkim.pem")
    config = publication(tmp_path, previews=1, extra=DKIM)
    build.build_site(config, articles(), NOW)
    before = snapshot(tmp_path / "public")
    assert b"DKIM-Signature" not in before["newsletters/night-waking.eml"][0]
    report = build.build_site(config, articles(), NOW)
    assert report.written == ()
    assert snapshot(tmp_path / "public") == before


def test_cli_check_reports_a_bad_dkim_key(tmp_path: Path) -> None:
    """`publisher check` still validates the DKIM settings that previews leave unused."""
    config_path = cli_publication(tmp_path)
    config_path.write_text(config_path.read_text() + DKIM)
    (tmp_path / "dkim.pem").write_text("not a key")
    result = CliRunner().invoke(cli, ["--config", str(config_path), "check"])
    assert result.exit_code == 1
    assert "dkim" in result.output.lower()


def test_cli_build_prints_warnings(tmp_path: Path) -> None:
    """`publisher build` shows newsletter warnings, such as a missing postal address."""
    config_path = cli_publication(tmp_path)
    text = config_path.read_text().replace('postal_address = "120 Wharf Street, Portland, ME 04101, USA"\n', "")
    config_path.write_text(text.replace("previews = 0", "previews = 2"))
    result = CliRunner().invoke(cli, ["--config", str(config_path), "build"])
    assert result.exit_code == 0, result.output
    assert re.search(r"warning:.*postal_address", result.output)


# Hostile and odd inputs, from article files to everything a build writes


def feeds_problems(public: Path) -> list[str]:
    return [
        problem
        for path in sorted((public / "feeds").rglob("*"))
        if path.is_file()
        for problem in feed_problems(path.name, path.read_bytes())
    ]


class _Attributes(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [(tag, name) for name, _ in attrs]


def attributes_of(page: str) -> list[tuple[str, str]]:
    """Every (element, attribute name) pair of a page, as a browser would read them."""
    parser = _Attributes()
    parser.feed(page)
    return parser.found


HOSTILE = """\
---
title: "<script>alert('t')</script> & \\"quotes\\" 🎉 مرحبا بالعالم \\u0007 \\ud800"
date: 2026-01-24 09:00
summary: "<img src=x onerror=alert(1)> & <b>bold</b>"
tags: ["<script>", "C++", "C#", "睡眠", "Sleep & Rest", "sleep-rest", "!!!"]
image: /images/my photo.jpg
---

Hello <script>alert(1)</script><img src="a b.png" onerror="x"> [link](<a b.html>)
"""


def test_hostile_articles_through_the_whole_build(tmp_path: Path) -> None:
    """Hostile front matter and body: valid feeds, escaped pages, one feed link per tag feed."""
    config_path = cli_publication(tmp_path)
    (tmp_path / "content" / "2026-01-24-hostile.md").write_text(HOSTILE, encoding="utf-8")
    config = load_config(config_path, env={})
    report = build.build_site(config, content.load_articles(config), NOW)
    public = tmp_path / "public"
    assert feeds_problems(public) == []
    page = (public / "hostile" / "index.html").read_text()
    # The one script element is the JSON-LD data block, and the title cannot close it.
    assert re.findall(r"<script[^>]*>", page) == ['<script type="application/ld+json">']
    data = re.search(r'<script type="application/ld\+json">(.*?)</script>', page, re.S)
    assert data and "<" not in data.group(1)
    assert json.loads(data.group(1))["headline"].startswith("<script>alert('t')</script> & \"quotes\"")
    assert not [(tag, name) for tag, name in attributes_of(page) if name.startswith("on")]
    assert "&lt;script&gt;alert(&#39;t&#39;)&lt;/script&gt; &amp; &#34;quotes&#34; 🎉 مرحبا بالعالم" in page
    assert '<h1 dir="auto">' in page
    assert f"{SITE}/images/my%20photo.jpg" in page
    assert page.count('href="https://notes.example.org/feeds/tags/sleep-rest.xml"') == 1  # <head>
    assert page.count('href="https://notes.example.org/tags/sleep-rest/"') == 1  # Topics
    assert page.count('href="https://notes.example.org/feeds/tags/c.xml"') == 1
    assert page.count('href="https://notes.example.org/tags/c/"') == 1
    tag_feeds = sorted(p.name for p in (public / "feeds" / "tags").iterdir())
    # "<script>", "C++"/"C#", "Sleep & Rest"/"sleep-rest", the other articles' "sleep", and
    # "睡眠" and "!!!" under hashed names: no tag goes without a feed.
    assert [n for n in tag_feeds if not n.startswith("t-")] == ["c.xml", "script.xml", "sleep-rest.xml", "sleep.xml"]
    assert sum(name.startswith("t-") for name in tag_feeds) == 2
    assert any('tags "C#", "C++" share one feed (feeds/tags/c.xml)' in w for w in report.warnings)


def test_shipped_publication_builds_valid_feeds(tmp_path: Path) -> None:
    """The sample publication's feeds (tables, footnotes, images, tags) pass the validator's rules."""
    repo = Path(__file__).resolve().parent.parent
    root = tmp_path / "sample"
    root.mkdir()
    (root / "config.toml").write_text((repo / "config.toml").read_text())
    for source in (repo / "content").rglob("*.md"):
        target = root / "content" / source.relative_to(repo / "content")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    config = load_config(root / "config.toml", env={})
    report = build.build_site(config, content.load_articles(config), datetime.now(UTC))
    assert feeds_problems(root / "public") == []
    assert not [w for w in report.warnings if "share one feed" in w]


def test_right_to_left_publication_pages_are_rtl(tmp_path: Path) -> None:
    """A publication in Arabic or Hebrew gets dir="rtl" on its pages; English does not."""
    config = publication(tmp_path)
    hebrew = (tmp_path / "config.toml").read_text().replace("[build]", 'language = "he-IL"\n\n[build]')
    (tmp_path / "config.toml").write_text(hebrew)
    build.build_site(load_config(tmp_path / "config.toml", env={}), articles(), NOW)
    assert '<html lang="he-IL" dir="rtl">' in (tmp_path / "public" / "index.html").read_text()
    build.build_site(config, articles(), NOW)
    assert '<html lang="en">' in (tmp_path / "public" / "index.html").read_text()


def test_index_slug_does_not_clobber_the_archive(tmp_path: Path) -> None:
    """An article whose slug is "index" gets /index/, beside the archive's index.html."""
    config = publication(tmp_path)
    build.build_site(config, [article("index", 3, title="Index")], NOW)
    assert b"Index" in (tmp_path / "public" / "index" / "index.html").read_bytes()
    assert b"<h1 class=\"visually-hidden\">Archive</h1>" in (tmp_path / "public" / "index.html").read_bytes()


def test_zero_articles_build_valid_empty_feeds(tmp_path: Path) -> None:
    """A publication with nothing public yet builds valid feeds and an archive that says so."""
    config = publication(tmp_path)
    build.build_site(config, [a for a in articles() if not a.is_public(NOW)], NOW)
    assert feeds_problems(tmp_path / "public") == []
    assert "Nothing published yet." in (tmp_path / "public" / "index.html").read_text()


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    """Two articles with one id (and different slugs) stop the build, naming both files."""
    config = publication(tmp_path)
    first, second = articles()[:2]
    with pytest.raises(BuildError, match=r"2026-01-12-grief-and-rest\.md: id .* already used by .*night-waking"):
        build.build_site(config, [first, replace(second, id=first.id)], NOW)


def test_five_megabyte_article_builds_in_seconds(tmp_path: Path) -> None:
    """A 5 MB article is parsed, paged and fed quickly; no newsletter preview is attempted."""
    config_path = cli_publication(tmp_path)
    paragraph = "Plain words of an ordinary paragraph, " * 20 + "a [link](/x/) and *emphasis*.[^1]\n\n"
    body = paragraph * (5_000_000 // len(paragraph)) + "[^1]: A note.\n"
    (tmp_path / "content" / "2026-02-01-huge.md").write_text(f"---\ntitle: Huge\ndate: 2026-02-01\n---\n\n{body}")
    config_path.write_text(config_path.read_text().replace("previews = 0", "previews = 5"))
    config = load_config(config_path, env={})
    started = time.perf_counter()
    report = build.build_site(config, content.load_articles(config), NOW)
    elapsed = time.perf_counter() - started
    assert elapsed < 20, f"{elapsed:.1f} s"
    assert "huge/index.html" in report.written
    assert not any(name.startswith("newsletters/huge") for name in report.written)
    assert any("huge.md: no newsletter preview" in w for w in report.warnings)


def test_cli_check_and_build_survive_odd_characters(tmp_path: Path) -> None:
    """A title with a lone surrogate escape neither crashes check nor build."""
    config_path = cli_publication(tmp_path)
    (tmp_path / "content" / "2026-01-24-hostile.md").write_text(HOSTILE, encoding="utf-8")
    runner = CliRunner()
    for verb in ("check", "build"):
        result = runner.invoke(cli, ["--config", str(config_path), verb])
        assert result.exit_code == 0, result.output
    assert feeds_problems(tmp_path / "public") == []


# Rebuilding in an output folder shared with the author's own files


def test_removed_tag_leaves_no_stale_feed(tmp_path: Path) -> None:
    """When the last article with a tag loses it, the tag's feed goes too."""
    config = publication(tmp_path)
    build.build_site(config, articles(), NOW)
    assert (tmp_path / "public" / "feeds" / "tags" / "grief.xml").exists()
    untagged = [replace(a, tags=("Sleep",)) if a.slug == "grief-and-rest" else a for a in articles()]
    report = build.build_site(config, untagged, NOW)
    assert report.removed == ("feeds/tags/grief.xml", "tags/grief/index.html")
    assert not (tmp_path / "public" / "feeds" / "tags" / "grief.xml").exists()


def test_stale_file_the_author_edited_is_kept(tmp_path: Path) -> None:
    """A page of a removed article that the author changed since is kept, with a warning."""
    config = publication(tmp_path)
    build.build_site(config, articles(), NOW)
    page = tmp_path / "public" / "small-steps" / "index.html"
    page.write_text("<p>My own notes now</p>\n")
    report = build.build_site(config, articles()[:2], NOW)
    assert report.removed == ()
    assert page.read_text() == "<p>My own notes now</p>\n"
    assert any(w.startswith("kept small-steps/index.html") for w in report.warnings)
    manifest = json.loads((tmp_path / "public" / build.MANIFEST).read_text())
    assert "small-steps/index.html" not in manifest["files"]


def test_authors_file_in_the_way_stops_the_build(tmp_path: Path) -> None:
    """A file of the author's where a new page would go is never overwritten; nothing is written."""
    config = publication(tmp_path)
    own = tmp_path / "public" / "small-steps" / "index.html"
    own.parent.mkdir(parents=True)
    own.write_text("<p>The author's own page</p>\n")
    with pytest.raises(BuildError, match=r"small-steps/index\.html: exists and was not written by publisher"):
        build.build_site(config, articles(), NOW)
    assert own.read_text() == "<p>The author's own page</p>\n"
    assert sorted(p.name for p in (tmp_path / "public").iterdir()) == ["small-steps"]


def test_file_where_a_folder_goes_stops_the_build(tmp_path: Path) -> None:
    """A file named like a folder the build needs is reported, not half-written around."""
    config = publication(tmp_path)
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "feeds").write_text("mine")
    with pytest.raises(BuildError, match="feeds is a file where the build needs a folder"):
        build.build_site(config, articles(), NOW)
    assert (tmp_path / "public" / "feeds").read_text() == "mine"


def test_folder_without_write_permission_stops_the_build_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder the build cannot write in is found first, in check mode too; nothing is half written."""
    config = publication(tmp_path)
    build.build_site(config, articles()[1:], NOW)
    before = snapshot(tmp_path / "public")
    locked = tmp_path / ".public.builds"
    real_access = build.files.os.access
    monkeypatch.setattr(build.files.os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode))
    for write in (False, True):
        with pytest.raises(BuildError, match=f"cannot write in {re.escape(str(locked))}: permission denied"):
            build.build_site(config, articles(), NOW, write=write)
    assert snapshot(tmp_path / "public") == before
    assert build.build_site(config, articles()[1:], NOW).written == ()  # nothing to write: no error


def test_identical_file_is_adopted(tmp_path: Path) -> None:
    """A file with exactly the bytes the build wants (a lost manifest) is taken over quietly."""
    config = publication(tmp_path)
    build.build_site(config, articles(), NOW)
    (tmp_path / "public" / build.MANIFEST).unlink()
    report = build.build_site(config, articles(), NOW)
    assert report.written == ()
    assert "index.html" in json.loads((tmp_path / "public" / build.MANIFEST).read_text())["files"]


def test_interrupted_build_still_owns_what_it_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build killed after writing a new page still knows the page is its own next time."""
    config = publication(tmp_path)
    build.build_site(config, articles()[1:], NOW)
    real_write = build.writing._write_atomic
    calls = []

    def dying_write(path: Path, data: bytes) -> None:
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real_write(path, data)

    monkeypatch.setattr(build.writing, "_write_atomic", dying_write)
    with pytest.raises(KeyboardInterrupt):
        build.build_site(config, articles(), NOW)
    monkeypatch.undo()
    edited = [replace(a, html="<p>Edited.</p>\n") if a.slug == "night-waking" else a for a in articles()]
    report = build.build_site(config, edited, NOW)
    assert "night-waking/index.html" in report.written


def test_old_manifest_without_hashes_still_removes_stale_files(tmp_path: Path) -> None:
    """A manifest from before hashes were kept ({"files": [...]}) is still honoured."""
    config = publication(tmp_path)
    build.build_site(config, articles(), NOW)
    manifest = tmp_path / "public" / build.MANIFEST
    manifest.write_text(json.dumps({"files": sorted(json.loads(manifest.read_text())["files"])}))
    report = build.build_site(config, articles()[:2], NOW)
    assert "small-steps/index.html" in report.removed


# publisher check fails on everything build would fail on


def test_cli_check_reports_a_file_in_the_way(tmp_path: Path) -> None:
    """`publisher check` exits 1 naming an author's file that build would refuse to overwrite."""
    config_path = cli_publication(tmp_path)
    own = tmp_path / "public" / "sleep-basics" / "index.html"
    own.parent.mkdir(parents=True)
    own.write_text("mine")
    result = CliRunner().invoke(cli, ["--config", str(config_path), "check"])
    assert result.exit_code == 1
    assert "sleep-basics/index.html: exists and was not written by publisher" in result.output
    assert own.read_text() == "mine"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda root: (root / "config.toml").write_text(
            (root / "config.toml").read_text().replace('timezone = "America/New_York"',
                                                       'timezone = "America/New_York"\nlanguage = "en_US"')),
         "[publication] language"),
        (lambda root: (root / "content" / "2026-01-09-twin.md").write_text(
            "---\ntitle: Twin\ndate: 2026-01-10\nslug: sleep-basics\n---\nx\n"),
         "slug 'sleep-basics' is already used by"),
        (lambda root: (root / "templates" / "web").mkdir(parents=True) or (
            root / "templates" / "web" / "article.html").write_text("{% if %}\n"),
         "article.html:1"),
        (lambda root: (root / "public").write_text("not a folder"), "cannot write to"),
    ],
    ids=["bad-language", "duplicate-slug", "broken-template", "output-is-a-file"],
)
def test_cli_check_fails_where_build_fails(tmp_path: Path, change: object, message: str) -> None:
    """Config values only feeds read, duplicate slugs, broken templates: check exits 1 like build."""
    config_path = cli_publication(tmp_path)
    change(tmp_path)  # type: ignore[operator]
    runner = CliRunner()
    checked = runner.invoke(cli, ["--config", str(config_path), "check"])
    built = runner.invoke(cli, ["--config", str(config_path), "build"])
    assert (checked.exit_code, built.exit_code) == (1, 1)
    assert message in checked.output
    assert not (tmp_path / "public").is_dir()


def test_cli_check_renders_a_newsletter_when_previews_are_off(tmp_path: Path) -> None:
    """With build.previews = 0 a broken email template still fails check, before any send."""
    config_path = cli_publication(tmp_path)
    override = tmp_path / "templates" / "email" / "issue.html"
    override.parent.mkdir(parents=True)
    override.write_text("{% for %}\n")
    result = CliRunner().invoke(cli, ["--config", str(config_path), "check"])
    assert result.exit_code == 1
    assert "issue.html:1" in result.output


def test_cli_check_names_file_and_line(tmp_path: Path) -> None:
    """A bad front matter value is reported as file:line, with every other broken file."""
    config_path = cli_publication(tmp_path)
    (tmp_path / "content" / "2026-02-02-bad-date.md").write_text("---\ntitle: Bad date\ndate: someday\n---\nx\n")
    (tmp_path / "content" / "2026-02-03-twin.md").write_text("---\ntitle: T\ndate: 2026-02-03\nslug: worry-time\n---\n")
    result = CliRunner().invoke(cli, ["--config", str(config_path), "check"])
    assert result.exit_code == 1
    assert "content/2026-02-02-bad-date.md:3: date must look like" in result.output
    assert "slug 'worry-time' is already used by" in result.output


def test_per_tag_feeds_cost_what_their_articles_cost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-tag feeds read each article once per tag it carries, not the whole site per tag:
    the work grows with the number of tags, not with tags times articles."""
    from publisher.site import feeds

    config = publication(tmp_path)
    many = [article(f"post-{n}", n % 28 + 1, tags=(f"a{n}", f"b{n}", f"c{n}")) for n in range(80)]
    calls = 0
    real = feeds.tag_slug

    def counting(tag: str) -> str:
        nonlocal calls
        calls += 1
        return real(tag)

    monkeypatch.setattr(feeds, "tag_slug", counting)
    site = build.render_site(config, many, NOW)
    assert len([name for name in site.files if name.startswith("feeds/tags/")]) == 240
    assert calls < 20 * 240  # a scan of every article per tag: 240 * 80 * 3 = 57,600
def test_sample_publication_ships_every_image_it_shows(tmp_path: Path) -> None:
    """Each picture the sample articles show (cover or inline) is a file the build writes."""
    root = Path(__file__).resolve().parent.parent
    config = load_config(root / "config.toml", env={})
    articles = content.load_articles(config)
    site = build.render_site(config, articles, datetime(2031, 1, 1, tzinfo=UTC))
    base = config.site_url + "/"
    shown = {a.image for a in articles if a.image}
    shown |= {m for a in articles for m in re.findall(r'<img[^>]+src="([^"]+)"', a.html)}
    assert shown and all(url.startswith(base) for url in shown)
    missing = [url for url in shown if url.removeprefix(base) not in site.files]
    assert missing == []
    for url in shown:
        assert site.files[url.removeprefix(base)].startswith(b"\x89PNG\r\n\x1a\n")
    # The newsletter previews show them from the build itself, before the site is online;
    # the .eml beside each keeps the absolute address a mail client needs.
    previews = [path for path in site.files if path.startswith("newsletters/") and path.endswith(".html")]
    assert previews
    for path in previews:
        page = site.files[path].decode("utf-8")
        sources = re.findall(r'<img[^>]+src="([^"]+)"', page)
        assert sources and not any(src.startswith(base) for src in sources), path
        for src in sources:
            assert src.startswith("../") and src.removeprefix("../") in site.files, (path, src)
        eml = site.files[path.removesuffix(".html") + ".eml"]
        assert base.encode() in eml


def test_files_beside_the_articles_are_carried_at_their_path(tmp_path: Path) -> None:
    """content/images/a.png is written as images/a.png; hidden and _ files are not."""
    (tmp_path / "content" / "images").mkdir(parents=True)
    (tmp_path / "content" / "images" / "a.png").write_bytes(b"png")
    (tmp_path / "content" / "_notes.txt").write_text("private")
    (tmp_path / "config.toml").write_text(
        '[publication]\ntitle = "T"\nurl = "https://example.org/"\n[newsletter]\nfrom = "t@example.org"\n'
    )
    config = load_config(tmp_path / "config.toml", env={})
    files = build.render_site(config, [], datetime(2026, 1, 1, tzinfo=UTC)).files
    assert files["images/a.png"] == b"png"
    assert not any("_notes" in name for name in files)


def test_build_tells_its_progress_stage_by_stage(tmp_path: Path) -> None:
    """render_site reports its stages and each newsletter preview, so a terminal can follow a long build."""
    (tmp_path / "content").mkdir()
    for day in range(1, 6):
        text = f"---\ntitle: N{day}\ndate: 2026-01-0{day}\n---\nx\n"
        (tmp_path / "content" / f"2026-01-0{day}-n{day}.md").write_text(text)
    (tmp_path / "config.toml").write_text(
        '[publication]\ntitle = "T"\nurl = "https://example.org/"\npostal_address = "1 St"\n'
        '[newsletter]\nfrom = "t@example.org"\n[build]\npreviews = 2\n'
    )
    config = load_config(tmp_path / "config.toml", env={})
    told: list[tuple[str, int, int]] = []
    build.render_site(config, content.load_articles(config), datetime(2026, 2, 1, tzinfo=UTC),
                      progress=lambda *step: told.append(step))
    assert ("feeds", 0, 5) in told and ("archive pages", 0, 5) in told
    assert [s for s in told if s[0] == "newsletter previews"] == [("newsletter previews", i, 2) for i in range(2)]


def test_build_shows_progress_on_a_terminal_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`publisher build` on a terminal draws a status line on stderr; piped, it prints the summary only."""
    import io

    from rich.console import Console

    from publisher.cli import build as cli_build

    (tmp_path / "content").mkdir()
    (tmp_path / "content" / "2026-01-01-one.md").write_text("---\ntitle: One\ndate: 2026-01-01\n---\nx\n")
    (tmp_path / "config.toml").write_text(
        '[publication]\ntitle = "T"\nurl = "https://example.org/"\n[newsletter]\nfrom = "t@example.org"\n'
    )
    screen = io.StringIO()
    monkeypatch.setattr(cli_build, "_progress_console", lambda: Console(file=screen, force_terminal=True))
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "config.toml"), "build"])
    assert result.exit_code == 0, result.output
    # The status line redraws a dozen times a second: which stages it caught depends on
    # speed, but the last one ("writing") is drawn when it stops.
    assert "writing" in screen.getvalue()
    assert "article pages" not in result.output
