"""Builds and checks that do only the work that changed: an edit, a template, a setting."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import pytest
from test_build_cache import NOW, Counter, assert_same_as_cold, incremental, publication, text

from publisher import content
from publisher.config import load_config
from publisher.content.templates import default_templates_dir
from publisher.services import site as site_service
from publisher.site import build, build_cache, outputs

EDITED = {"a05/index.html", "page/2/index.html", "tags/habits/index.html", "search.json", "feeds/tags/habits.xml"}
"""What editing a05's body changes (see test_build_cache's test of an edit)."""


def test_check_after_one_edit_renders_only_what_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`publisher check` after editing one article renders the pages a build would, not the site."""
    path = publication(tmp_path)
    incremental(path)
    (tmp_path / "content" / "a05.md").write_text(text(5, body="Rewritten body."), encoding="utf-8")
    counter = Counter(monkeypatch)
    found = site_service.check_site(load_config(path, env={}), NOW)
    assert not found.errors
    assert sorted(counter.pages) == sorted(["a04", "a05", "a06", "page/2/index.html", "tags/habits/index.html"])
    assert counter.feeds == 1 and counter.previews == []
    assert found.report is not None and set(found.report.written) == EDITED


def test_check_says_what_the_build_then_writes(tmp_path: Path) -> None:
    """What check says a build would write is what the build writes; the served site is untouched."""
    path = publication(tmp_path)
    incremental(path)
    (tmp_path / "content" / "a05.md").write_text(text(5, body="Rewritten body."), encoding="utf-8")
    (tmp_path / "content" / "a03.md").unlink()
    before = sorted(p.name for p in (tmp_path / ".public.builds").iterdir())
    found = site_service.check_site(load_config(path, env={}), NOW)
    assert sorted(p.name for p in (tmp_path / ".public.builds").iterdir()) == before
    report, _cache = incremental(path)
    assert found.report is not None
    assert (found.report.written, found.report.removed) == (report.written, report.removed)
    assert found.files == len(report.written) + len(report.unchanged)
    assert_same_as_cold(path)


def override(root: Path, name: str, change: Callable[[str], str]) -> None:
    """A template of the publication's own: the default's text, changed."""
    source = (default_templates_dir() / name).read_text(encoding="utf-8")
    target = root / "templates" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(change(source), encoding="utf-8")


def article_pages(counter: Counter) -> list[str]:
    return [page for page in counter.pages if not page.endswith("index.html")]


def test_a_changed_template_rerenders_only_the_pages_using_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tag page template of the author's own re-renders the tag pages alone: no article's
    page, no index page, no feed, no preview."""
    path = publication(tmp_path)
    incremental(path)
    override(tmp_path, "web/tag.html", lambda text: text.replace("</h1>", "</h1><!-- topics -->", 1))
    counter = Counter(monkeypatch)
    report, _cache = incremental(path)
    assert counter.pages and all(page.startswith("tags/") for page in counter.pages)
    assert counter.feeds == 0 and counter.previews == []
    assert set(report.written) == {"tags/grief/index.html", "tags/habits/index.html", "tags/sleep/index.html"}
    assert_same_as_cold(path)


def test_an_included_template_rerenders_the_pages_including_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """web/_list.html is included by the index and tag pages (not by articles' pages): a change
    to it re-renders those lists, followed through the template graph."""
    path = publication(tmp_path)
    incremental(path)
    override(tmp_path, "web/_list.html", lambda text: text + "<!-- list -->\n")
    counter = Counter(monkeypatch)
    incremental(path)
    assert counter.pages and article_pages(counter) == []
    assert any(page.startswith("tags/") for page in counter.pages) and "index.html" in counter.pages
    assert counter.feeds == 0 and counter.previews == []
    assert_same_as_cold(path)


def test_an_email_template_change_rerenders_only_the_previews(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The newsletter's footer changes the newsletter previews and nothing on the site."""
    path = publication(tmp_path)
    incremental(path)
    override(tmp_path, "email/_footer.html", lambda text: text + "<p>With thanks.</p>\n")
    counter = Counter(monkeypatch)
    report, _cache = incremental(path)
    assert counter.pages == [] and counter.feeds == 0 and counter.previews == ["a11"]
    assert set(report.written) == {"newsletters/a11.html", "newsletters/a11.eml"}
    assert_same_as_cold(path)


def _parsed_templates(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts of the templates a build has Jinja parse to follow the template graph."""
    parsed: list[str] = []
    real = outputs.meta.find_referenced_templates

    def find(ast: Any) -> Any:
        parsed.append(repr(ast))
        return real(ast)

    monkeypatch.setattr(outputs.meta, "find_referenced_templates", find)
    return parsed


def test_a_rebuild_follows_the_template_graph_without_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The templates each template names are kept by the hash of its text: after an edit the
    build follows the graph from them, and Jinja parses no template to find its references."""
    path = publication(tmp_path)
    incremental(path)
    kept = build_cache.TemplateRefs.load(load_config(path, env={}))
    assert kept.find(outputs._hash((default_templates_dir() / "web" / "tag.html").read_text(encoding="utf-8")))[0]
    (tmp_path / "content" / "a05.md").write_text(text(5, body="Rewritten body."), encoding="utf-8")
    parsed = _parsed_templates(monkeypatch)
    report, _cache = incremental(path)
    assert parsed == []
    assert set(report.written) == EDITED
    assert_same_as_cold(path)


def test_a_template_whose_text_changed_is_parsed_again_and_what_it_now_includes_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kept graph is not trusted for a template whose text changed: it alone is parsed
    again, and a template it newly includes re-renders its pages when that one changes."""
    path = publication(tmp_path)
    incremental(path)
    (tmp_path / "templates" / "web").mkdir(parents=True)
    (tmp_path / "templates" / "web" / "_note.html").write_text("<p>A note.</p>\n", encoding="utf-8")
    override(tmp_path, "web/tag.html", lambda text: text.replace("</h1>", '</h1>{% include "web/_note.html" %}', 1))
    parsed = _parsed_templates(monkeypatch)
    incremental(path)
    assert len(parsed) == 2  # the changed web/tag.html and the web/_note.html it now includes
    assert "web/_note.html" in parsed[0]
    counter = Counter(monkeypatch)
    (tmp_path / "templates" / "web" / "_note.html").write_text("<p>Another note.</p>\n", encoding="utf-8")
    report, _cache = incremental(path)
    assert counter.pages and all(page.startswith("tags/") for page in counter.pages)
    assert set(report.written) == {"tags/grief/index.html", "tags/habits/index.html", "tags/sleep/index.html"}
    assert b"Another note." in (tmp_path / "public" / "tags" / "sleep" / "index.html").read_bytes()
    assert_same_as_cold(path)


@pytest.mark.parametrize("planted", [42, ["web/base.html", 7], {"web/base.html": None}])
def test_a_kept_graph_entry_that_is_not_a_list_of_names_is_parsed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, planted: object
) -> None:
    """An entry of the kept graph of another shape is left out: its template is parsed again,
    and the entry is written back as the parse found it."""
    path = publication(tmp_path)
    incremental(path)
    graph = tmp_path / build_cache.CACHE_FOLDER / "templates.json"
    found = json.loads(graph.read_text(encoding="utf-8"))
    digest = outputs._hash((default_templates_dir() / "web" / "tag.html").read_text(encoding="utf-8"))
    refs = found["payload"][digest]
    found["payload"][digest] = planted
    graph.write_text(json.dumps(found), encoding="utf-8")
    parsed = _parsed_templates(monkeypatch)
    (tmp_path / "content" / "a05.md").write_text(text(5, body="Rewritten body."), encoding="utf-8")
    incremental(path)
    assert len(parsed) == 1
    assert json.loads(graph.read_text(encoding="utf-8"))["payload"][digest] == refs
    assert_same_as_cold(path)


def setting(path: Path, section: str, line: str) -> None:
    text = path.read_text(encoding="utf-8")
    header = f"[{section}]\n"
    text = text.replace(header, header + line + "\n", 1) if header in text else f"{text}\n{header}{line}\n"
    path.write_text(text, encoding="utf-8")


def test_a_setting_no_page_reads_rerenders_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The desk's session length is read by no page: the build renders nothing."""
    path = publication(tmp_path)
    incremental(path)
    setting(path, "desk", "session_hours = 12")
    counter = Counter(monkeypatch)
    report, _cache = incremental(path)
    assert counter.pages == [] and counter.feeds == 0 and counter.previews == []
    assert report.written == ()


def test_a_newsletter_setting_rerenders_only_the_previews(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new Reply-To changes the newsletter previews, not the site's pages or feeds."""
    path = publication(tmp_path)
    incremental(path)
    setting(path, "newsletter", 'reply_to = "desk@example.org"')
    counter = Counter(monkeypatch)
    incremental(path)
    assert counter.pages == [] and counter.feeds == 0 and counter.previews == ["a11"]
    assert_same_as_cold(path)


def test_a_site_setting_rerenders_the_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The publication's title is on every page and feed: all of them render again."""
    path = publication(tmp_path)
    incremental(path)
    setting(path, "publication", 'title = "Harbour Notes"')
    path.write_text(path.read_text(encoding="utf-8").replace('title = "Harbor Notes"\n', ""), encoding="utf-8")
    counter = Counter(monkeypatch)
    incremental(path)
    assert len(article_pages(counter)) == 12 and counter.feeds > 3 and counter.previews == ["a11"]
    assert_same_as_cold(path)


class Recording(dict[str, Any]):
    """Config values that remember every key read."""

    read: ClassVar[set[str]] = set()

    def __getitem__(self, key: str) -> Any:
        Recording.read.add(key)
        return super().__getitem__(key)


def test_every_setting_a_page_reads_is_in_its_row(tmp_path: Path) -> None:
    """The whole site rendered through a config that records reads: the pages and feeds read
    only `outputs.SITE_SECTIONS`, a newsletter preview none of `outputs.MAIL_UNREAD`."""
    path = publication(tmp_path)
    config = load_config(path, env={})
    articles = content.load_articles(config)
    recording = replace(config, values=Recording(config.values))
    Recording.read = set()
    build.render_site(replace(recording, values=Recording({**config.values, "build.previews": 0})), articles, NOW)
    # store.url finds the moved articles' old addresses, whose files' key holds every setting.
    assert {key.split(".")[0] for key in Recording.read - {"store.url"}} <= outputs.SITE_SECTIONS
    Recording.read = set()
    build.newsletter_preview(recording, articles[0])
    assert Recording.read and not {key.split(".")[0] for key in Recording.read} & outputs.MAIL_UNREAD


class Reads:
    """The article files a build reads (their bytes, not only their size and times)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.names: list[str] = []
        real_plain, real_content = build_cache._read_plain, content.read_content

        def plain(path: Path) -> Any:
            self.names.append(path.name)
            return real_plain(path)

        def whole(path: Path, source: str, config: Any) -> bytes:
            self.names.append(path.name)
            return real_content(path, source, config)

        monkeypatch.setattr(build_cache, "_read_plain", plain)
        monkeypatch.setattr(content, "read_content", whole)


def test_a_build_reads_only_the_article_files_that_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file as the last build saw it (size, times, inode) is not read again: one edit, one read."""
    path = publication(tmp_path)
    site_service.build_site(load_config(path, env={}), NOW)
    (tmp_path / "content" / "a05.md").write_text(text(5, body="Rewritten body."), encoding="utf-8")
    reads = Reads(monkeypatch)
    site_service.build_site(load_config(path, env={}), NOW)
    assert {name for name in reads.names if name.endswith(".md")} == {"a05.md"}
    assert "Rewritten body." in (tmp_path / "public" / "a05" / "index.html").read_text(encoding="utf-8")


def test_a_rewrite_that_keeps_the_size_and_modification_time_is_still_read(tmp_path: Path) -> None:
    """New bytes of the same length with the old modification time put back (as `touch -d`
    or a careless copy would) still reach the site: the change time gives them away."""
    path = publication(tmp_path)
    site_service.build_site(load_config(path, env={}), NOW)
    article = tmp_path / "content" / "a05.md"
    before = article.stat()
    old = article.read_text(encoding="utf-8")
    article.write_text(old.replace("Body of article 5", "Text of article 5"), encoding="utf-8")
    os.utime(article, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert article.stat().st_size == before.st_size
    site_service.build_site(load_config(path, env={}), NOW)
    assert "Text of article 5" in (tmp_path / "public" / "a05" / "index.html").read_text(encoding="utf-8")
