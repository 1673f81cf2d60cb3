"""Incremental builds: the parse cache, the render record, and that a rebuild equals a cold build."""

from __future__ import annotations

import json
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher import content
from publisher.config import Config, load_config
from publisher.errors import ContentError, TemplateError
from publisher.models import BuildReport
from publisher.site import archive, build, build_cache, feeds, outputs
from publisher.site.build_cache import CACHE_FOLDER, ArticleCache

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

CONFIG = """\
[publication]
title = "Harbor Notes"
url = "https://notes.example.org/"
author = "Dana Reyes, LCSW"
timezone = "America/New_York"
postal_address = "120 Wharf Street, Portland, ME 04101, USA"

[build]
previews = {previews}
per_page = 4

[feeds]
entries = 5

[newsletter]
from = "Dana Reyes <notes@example.org>"
"""

TAGS = ("sleep", "grief", "habits")


def text(number: int, *, title: str = "", tags: tuple[str, ...] | None = None, body: str = "", slug: str = "") -> str:
    chosen = tags if tags is not None else (TAGS[number % 3],)
    lines = [
        "---",
        f"title: {title or f'Article {number}'}",
        f"date: 2026-01-{number + 1:02d} 09:00",
        f"tags: [{', '.join(chosen)}]",
        *([f"slug: {slug}"] if slug else []),
        "---",
        "",
        body or f"Body of article {number}, with a footnote.[^1]\n\n[^1]: A note.",
        "",
    ]
    return "\n".join(lines)


def publication(root: Path, count: int = 12, *, previews: int = 1) -> Path:
    (root / "content").mkdir(parents=True)
    (root / "config.toml").write_text(CONFIG.format(previews=previews), encoding="utf-8")
    for number in range(count):
        (root / "content" / f"a{number:02d}.md").write_text(text(number), encoding="utf-8")
    return root / "config.toml"


def incremental(path: Path) -> tuple[BuildReport, ArticleCache]:
    """What `publisher build` does: articles through the cache, the build from them."""
    config = load_config(path, env={})
    cache = ArticleCache(config)
    try:
        articles = content.load_articles(config, reader=cache.read)
        report = build.build_site(config, articles, NOW, cache=cache, workers=True)
    finally:
        cache.save()
    return report, cache


def served(root: Path) -> dict[str, bytes]:
    public = root / "public"
    return {
        p.relative_to(public).as_posix(): p.read_bytes()
        for p in sorted(public.rglob("*"))
        if p.is_file() and p.name != build.MANIFEST
    }


def cold(path: Path) -> dict[str, bytes]:
    """Every file a build without any cache renders (the reference)."""
    config = load_config(path, env={})
    return dict(build.render_site(config, content.load_articles(config), NOW).files)


def assert_same_as_cold(path: Path) -> None:
    assert served(path.parent) == cold(path)


class Counter:
    """Counts the pages, feeds and previews rendered."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.pages: list[str] = []
        self.feeds = 0
        self.previews: list[str] = []
        real_article = archive.Archive.article
        real_list = archive.Archive._list_page
        real_preview = build.newsletter_preview

        def article(self_: archive.Archive, item, **kw):  # type: ignore[no-untyped-def]
            self.pages.append(item.slug)
            return real_article(self_, item, **kw)

        def list_page(self_: archive.Archive, name, page, **kw):  # type: ignore[no-untyped-def]
            self.pages.append(page.path)
            return real_list(self_, name, page, **kw)

        def preview(config: Config, item):  # type: ignore[no-untyped-def]
            self.previews.append(item.slug)
            return real_preview(config, item)

        monkeypatch.setattr(archive.Archive, "article", article)
        monkeypatch.setattr(archive.Archive, "_list_page", list_page)
        monkeypatch.setattr(build.planning, "newsletter_preview", preview)
        for kind, builder in list(feeds.BUILDERS.items()):

            def counted(*args, _builder=builder, **kw):  # type: ignore[no-untyped-def]
                self.feeds += 1
                return _builder(*args, **kw)

            monkeypatch.setitem(feeds.BUILDERS, kind, counted)


def test_unchanged_rebuild_parses_and_renders_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second build with nothing changed reads every article from the cache and renders no page."""
    path = publication(tmp_path)
    first, cache = incremental(path)
    assert cache.parsed == 12 and first.written
    counter = Counter(monkeypatch)
    report, cache = incremental(path)
    assert cache.parsed == 0
    assert counter.pages == [] and counter.feeds == 0 and counter.previews == []
    assert report.written == () and report.removed == ()
    assert_same_as_cold(path)


def test_an_edit_renders_the_article_and_what_lists_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Editing one article's body parses it alone, and renders its page, its neighbours'
    (they show its title), the list pages and feeds carrying it, and nothing else."""
    path = publication(tmp_path)
    incremental(path)
    inode = (tmp_path / "public" / "a02" / "index.html").stat().st_ino
    (tmp_path / "content" / "a05.md").write_text(text(5, body="Rewritten body."), encoding="utf-8")
    counter = Counter(monkeypatch)
    report, cache = incremental(path)
    assert cache.parsed == 1
    # Newest first, 4 a page: a05 is on page 2 of the index; its tag "habits" (TAGS[5 % 3])
    # lists a11, a08, a05, a02 on its one page.
    assert sorted(counter.pages) == sorted(["a04", "a05", "a06", "page/2/index.html", "tags/habits/index.html"])
    assert counter.feeds == 1  # the habits feed; the site's feeds carry the 5 newest, a11 .. a07
    assert counter.previews == []
    # The summary is the first paragraph: the lists and the search index show it.
    assert set(report.written) == {
        "a05/index.html",
        "page/2/index.html",
        "tags/habits/index.html",
        "search.json",
        "feeds/tags/habits.xml",
    }
    assert (tmp_path / "public" / "a02" / "index.html").stat().st_ino == inode
    assert_same_as_cold(path)


def test_a_new_article_moves_the_lists_and_feeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new newest article re-renders every list page and the feeds, but no older article's page
    beyond its neighbour."""
    path = publication(tmp_path)
    incremental(path)
    (tmp_path / "content" / "a20.md").write_text(text(20, tags=("sleep",)), encoding="utf-8")
    counter = Counter(monkeypatch)
    _report, cache = incremental(path)
    assert cache.parsed == 1
    assert [p for p in counter.pages if not p.endswith("index.html")] == ["a20", "a11"]
    assert counter.feeds == 4  # RSS, Atom, JSON and the sleep tag's Atom feed
    assert counter.previews == ["a20"]
    assert_same_as_cold(path)


@pytest.mark.parametrize(
    "change",
    ["delete", "rename slug", "change tag", "retitle", "draft", "config", "template", "email template", "image"],
)
def test_rebuild_after_a_change_equals_a_cold_build(tmp_path: Path, change: str) -> None:
    """Whatever changed, the incremental build serves exactly what a build from nothing renders."""
    path = publication(tmp_path)
    incremental(path)
    articles = tmp_path / "content"
    if change == "delete":
        (articles / "a07.md").unlink()
    elif change == "rename slug":
        (articles / "a07.md").write_text(text(7, slug="renamed"), encoding="utf-8")
    elif change == "change tag":
        (articles / "a07.md").write_text(text(7, tags=("winter",)), encoding="utf-8")
    elif change == "retitle":
        (articles / "a11.md").write_text(text(11, title="A new title"), encoding="utf-8")
    elif change == "draft":
        (articles / "a11.md").write_text(text(11).replace("---\n\n", "draft: true\n---\n\n"), encoding="utf-8")
    elif change == "config":
        # The site's address is in every page and in every article's id: all of it changes.
        path.write_text(path.read_text().replace("notes.example.org/", "harbor.example.com/"), encoding="utf-8")
    elif change == "template":
        (tmp_path / "templates" / "web").mkdir(parents=True)
        shipped = outputs.default_templates_dir() / "web" / "article.html"
        (tmp_path / "templates" / "web" / "article.html").write_text(
            shipped.read_text().replace("<article", "<article data-edited"), encoding="utf-8"
        )
    elif change == "email template":
        (tmp_path / "templates" / "email").mkdir(parents=True)
        shipped = outputs.default_templates_dir() / "email" / "issue.txt"
        (tmp_path / "templates" / "email" / "issue.txt").write_text(shipped.read_text() + "\nEdited.\n")
    elif change == "image":
        (articles / "images").mkdir()
        (articles / "images" / "lamp.png").write_bytes(b"one")
        incremental(path)
        (articles / "images" / "lamp.png").write_bytes(b"two, longer")
    before = served(tmp_path)
    report, _cache = incremental(path)
    assert served(tmp_path) != before, "the change must show in the site"
    assert report.written or report.removed
    assert_same_as_cold(path)


def test_corrupt_cache_files_are_ignored(tmp_path: Path) -> None:
    """Garbage, truncated or missing cache files cost a re-parse and a re-render, never a wrong site."""
    path = publication(tmp_path)
    incremental(path)
    (tmp_path / "content" / "a03.md").write_text(text(3, body="Edited once."), encoding="utf-8")
    cache = tmp_path / CACHE_FOLDER
    (cache / "articles.json").write_bytes(b"\x80\x05garbage")
    for record in cache.glob("renders-*.json"):
        record.write_bytes(record.read_bytes()[:40])
    _report, again = incremental(path)
    assert again.parsed == 12
    assert_same_as_cold(path)
    # An article's HTML file gone or damaged: the article is parsed again when a page needs it.
    (tmp_path / "content" / "a04.md").write_text(text(4, body="Edited twice."), encoding="utf-8")
    for html in (cache / "html").iterdir():
        html.write_text("<p>not what the article says</p>")
    for record in cache.glob("renders-*.json"):
        record.unlink()
    incremental(path)
    assert_same_as_cold(path)


def _poison(cache_file: Path, head: tuple[object, ...]) -> None:
    """Rewrite the article index under `head`, every article titled STALE."""
    found = json.loads(cache_file.read_text())
    entries = found["payload"]
    for entry in entries.values():
        entry[0][build_cache._FIELDS.index("title")] = "STALE"
    cache_file.write_text(json.dumps({"head": list(head), "payload": entries}))


def test_cache_of_another_version_is_ignored(tmp_path: Path) -> None:
    """Entries written by other code (another format or fingerprint) are never used; the same
    poisoned entries under this code's own header are (which is why the header matters)."""
    path = publication(tmp_path, 4, previews=0)
    _report, cache = incremental(path)
    index = tmp_path / CACHE_FOLDER / "articles.json"
    _poison(index, ("articles", build_cache._FORMAT, "another version's fingerprint"))
    _report, again = incremental(path)
    assert again.parsed == 4
    assert b"STALE" not in b"".join(served(tmp_path).values())
    _poison(index, ("articles", build_cache._FORMAT, cache.fingerprint))
    for record in (tmp_path / CACHE_FOLDER).glob("renders-*.json"):
        record.unlink()
    _report, poisoned = incremental(path)
    assert poisoned.parsed == 0
    assert b"STALE" in served(tmp_path)["index.html"]


def test_library_versions_are_those_importlib_metadata_gives() -> None:
    """The code's fingerprint reads each library's version from the dist-info folders' names:
    the version `importlib.metadata` gives, and "absent" for a library not installed."""
    from importlib import metadata

    for library in (*build_cache._LIBRARIES, "feedparser"):
        assert build_cache._version(library) == metadata.version(library)
    assert build_cache._version("no-such-library-here") == "absent"


def test_parse_settings_are_part_of_the_key(tmp_path: Path) -> None:
    """Changing the zone parses every article again: their dates depend on it."""
    path = publication(tmp_path, 3, previews=0)
    incremental(path)
    path.write_text(path.read_text().replace("America/New_York", "Asia/Tokyo"), encoding="utf-8")
    _report, cache = incremental(path)
    assert cache.parsed == 3
    assert_same_as_cold(path)


def test_page_changed_by_hand_in_the_output_is_rendered_again(tmp_path: Path) -> None:
    """The record trusts a file only while it is as the build left it."""
    path = publication(tmp_path, 4, previews=0)
    incremental(path)
    page = tmp_path / "public" / "a01" / "index.html"
    data = page.read_bytes()
    page.unlink()  # a new file, not an edit through the hard link into every build
    page.write_bytes(data.replace(b"Article 1", b"Scribbled 1"))
    report, _cache = incremental(path)
    assert report.written == ("a01/index.html",)
    assert_same_as_cold(path)


def test_libyaml_and_pure_loader_read_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sample articles parse to the same values with libyaml and without it, and a
    broken front matter gives the same message."""
    repo = Path(__file__).resolve().parent.parent
    config = load_config(repo / "config.toml", env={})
    if content.front_matter._FAST_LOADER is None:
        pytest.skip("PyYAML was built without libyaml")
    fast = content.load_articles(config)
    broken = "---\ntitle: [unclosed\ndate: 2026-01-01\n---\nx\n"
    with pytest.raises(ContentError) as fast_error:
        content.parse_article(broken, source="x.md", config=config)
    monkeypatch.setattr(content.front_matter, "_FAST_LOADER", None)
    assert content.load_articles(config) == fast
    with pytest.raises(ContentError) as pure_error:
        content.parse_article(broken, source="x.md", config=config)
    assert str(fast_error.value) == str(pure_error.value)


EDITS = st.lists(
    st.tuples(
        st.sampled_from(["body", "tag", "delete", "add", "retitle", "draft"]),
        st.integers(min_value=0, max_value=7),
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=EDITS)
def test_any_sequence_of_edits_builds_what_a_cold_build_does(tmp_path: Path, edits: list[tuple[str, int]]) -> None:
    """After each edit of a random sequence, the incremental build serves a cold build's files."""
    root = tmp_path / f"run-{len(list(tmp_path.iterdir()))}"
    path = publication(root, 8, previews=1)
    incremental(path)
    for step, (kind, number) in enumerate(edits):
        file = root / "content" / f"a{number:02d}.md"
        if kind == "delete":
            file.unlink(missing_ok=True)
        elif kind == "add":
            file.write_text(text(number, title=f"Back {step}"), encoding="utf-8")
        elif kind == "body":
            file.write_text(text(number, body=f"Edit {step}."), encoding="utf-8")
        elif kind == "tag":
            file.write_text(text(number, tags=(TAGS[step % 3], "extra")), encoding="utf-8")
        elif kind == "retitle":
            file.write_text(text(number, title=f"Title {step}"), encoding="utf-8")
        else:
            file.write_text(text(number).replace("---\n\n", "draft: true\n---\n\n"), encoding="utf-8")
        incremental(path)
        assert_same_as_cold(path)
    shutil.rmtree(root)


def test_workers_parse_what_read_would(tmp_path: Path) -> None:
    """Articles parsed ahead in worker processes are what `read` would parse, problems included."""
    if not sys.platform.startswith("linux") or (os.cpu_count() or 1) < 2:
        pytest.skip("workers are forked on Linux with two cores or more")
    path = publication(tmp_path, 6)
    (tmp_path / "content" / "broken.md").write_text("---\ntitle: [unclosed\n---\nx\n", encoding="utf-8")
    config = load_config(path, env={})
    alone, problems = content.scan_articles(config)
    cache = ArticleCache(config)
    cache.warm(content.article_files(config), least=1)
    assert cache.parsed == 7
    found, errors = content.scan_articles(config, reader=cache.read)
    assert cache.parsed == 7  # nothing was left to parse
    assert [cache.full(article) for article in found] == alone
    assert [str(error) for error in errors] == [str(problem) for problem in problems]


def test_workers_render_what_this_process_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build whose pages are rendered by worker processes serves the same files."""
    monkeypatch.setattr(build.planning, "PARALLEL_RENDER", 1)
    path = publication(tmp_path)
    report, _cache = incremental(path)
    assert len(report.written) > 20
    assert_same_as_cold(path)


def test_cli_build_uses_the_cache_and_a_new_publication_ignores_it(tmp_path: Path) -> None:
    """`publisher build` parses only what changed, and `publisher init` keeps the cache out of git."""
    from click.testing import CliRunner

    from publisher.cli import cli

    path = publication(tmp_path / "pub", 5, previews=0)
    first = CliRunner().invoke(cli, ["--config", str(path), "build"])
    assert first.exit_code == 0, first.output
    assert (tmp_path / "pub" / CACHE_FOLDER / "articles.json").is_file()
    again = CliRunner().invoke(cli, ["--config", str(path), "build"])
    assert again.exit_code == 0 and ": 0 written" in again.output, again.output
    new = CliRunner().invoke(
        cli,
        [
            "init",
            str(tmp_path / "new"),
            "--title",
            "Quiet",
            "--url",
            "https://quiet.example.net",
            "--author",
            "Sam Ito",
            "--from",
            "Sam Ito <sam@quiet.example.net>",
            "--postal-address",
            "4 Elm Row, Leeds",
            "--timezone",
            "Europe/London",
        ],
        env={"PUBLISHER_CONFIG": ""},
    )
    assert new.exit_code == 0, new.output
    assert f"/{CACHE_FOLDER}/" in (tmp_path / "new" / ".gitignore").read_text().splitlines()


def test_a_page_failing_in_a_worker_fails_the_build_with_its_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A template error raised in a worker process stops the build, names the template, and
    leaves the served site as it was."""
    monkeypatch.setattr(build.planning, "PARALLEL_RENDER", 1)
    path = publication(tmp_path)
    incremental(path)
    before = served(tmp_path)
    (tmp_path / "templates" / "web").mkdir(parents=True)
    (tmp_path / "templates" / "web" / "article.html").write_text("{{ article.title }\n", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"article\.html:1"):
        incremental(path)
    assert served(tmp_path) == before


def test_the_daemon_parses_only_the_saved_file_and_mails_its_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`publisher serve`'s rebuild after a save parses that file alone, and the issue it
    sends carries the article's text (which the cache keeps out of memory until then)."""
    from test_jobs import Pub
    from test_jobs import article as job_article

    from publisher.schedule import jobs

    pub = Pub(tmp_path)
    jobs.publish_new(pub.key)
    pub.write("2026-11-20-fresh.md", job_article("fresh", "2026-11-20", body="Fresh words for the readers."))
    assert jobs.publish_new(pub.key) == ["fresh"]
    bodies = [message.get_body(("plain",)).get_content() for message in pub.messages()]  # type: ignore[union-attr]
    assert len(bodies) == 3 and all("Fresh words for the readers." in body for body in bodies)
    parsed: list[str] = []
    real = content.parse_article

    def counting(text: str, *, source: str, config: Config):  # type: ignore[no-untyped-def]
        parsed.append(source)
        return real(text, source=source, config=config)

    monkeypatch.setattr(content, "parse_article", counting)
    pub.write("2026-11-20-fresh.md", job_article("fresh", "2026-11-20", body="Edited words."))
    assert jobs.publish_new(pub.key) == []
    assert parsed == ["content/2026-11-20-fresh.md"]
    assert "Edited words." in (tmp_path / "public" / "fresh" / "index.html").read_text()


def test_a_file_saved_between_the_look_and_the_read_is_read_as_saved(tmp_path: Path) -> None:
    """`read` trusts what `warm` saw of a file only while the file is unchanged."""
    path = publication(tmp_path, 3, previews=0)
    incremental(path)
    config = load_config(path, env={})
    cache = ArticleCache(config)
    files = content.article_files(config)
    cache.warm(files)  # every file known: nothing to parse, only looked at
    (tmp_path / "content" / "a01.md").write_text(text(1, title="Saved after the look"), encoding="utf-8")
    articles = content.load_articles(config, reader=cache.read, files=files)
    assert "Saved after the look" in [article.title for article in articles]
    assert cache.parsed == 1
