"""The articles as the desk, a send, a schedule and the daemon read them: through the build
cache, so that no file is parsed, or even read, twice (`publisher.services.catalogue`)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from test_build_cache import NOW, publication, text
from test_jobs import START, Pub
from test_jobs import article as job_article

from publisher import content
from publisher.config import Config, load_config
from publisher.delivery.sending import deliver_queued
from publisher.schedule import jobs
from publisher.services import articles as article_service
from publisher.services import catalogue, issues
from publisher.site import build_cache
from publisher.store import open_store


def _counting(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[str]]:
    """Sources parsed, and article files read (their bytes), from now on."""
    parsed: list[str] = []
    read: list[str] = []
    real_parse, real_read = content.parse_article, build_cache._read_plain

    def parse(text: str, *, source: str, config: Config):  # type: ignore[no-untyped-def]
        parsed.append(source)
        return real_parse(text, source=source, config=config)

    def read_plain(path: Path):  # type: ignore[no-untyped-def]
        read.append(path.name)
        return real_read(path)

    monkeypatch.setattr(content, "parse_article", parse)
    monkeypatch.setattr(build_cache, "_read_plain", read_plain)
    return parsed, read


def test_the_article_list_parses_and_reads_only_what_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(publication(tmp_path, 30, previews=0), env={})
    db = open_store(config.store_url)
    first = article_service.list_articles(config, db, now=NOW)  # a cold cache: each file parsed once
    parsed, read = _counting(monkeypatch)
    again = article_service.list_articles(config, db, now=NOW)
    assert [v.article.slug for v in again] == [v.article.slug for v in first] and len(again) == 30
    assert parsed == [] and read == []
    (tmp_path / "content" / "a07.md").write_text(text(7, title="Retitled in the editor"), encoding="utf-8")
    titles = [v.article.title for v in article_service.list_articles(config, db, now=NOW)]
    assert "Retitled in the editor" in titles
    assert parsed == ["content/a07.md"] and read == ["a07.md"]
    view = article_service.get_article(config, db, first[0].article.slug, now=NOW)
    assert "Body of article" in view.article.html  # the editor's article comes whole


def test_whole_articles_and_problems_are_what_parsing_every_file_gives(tmp_path: Path) -> None:
    config = load_config(publication(tmp_path, 12, previews=0), env={})
    (tmp_path / "content" / "broken.md").write_text("---\ntitle: [unclosed\n---\n\nText\n", encoding="utf-8")
    catalogue.catalogue(config)  # fills the cache
    cached, cached_problems = catalogue.scan_articles(config)
    parsed, problems = content.scan_articles(config)
    assert cached == parsed and all(article.html for article in cached)
    assert [str(p) for p in cached_problems] == [str(p) for p in problems] and len(problems) == 1
    with pytest.raises(type(problems[0]), match=r"broken\.md"):
        catalogue.load_articles(config)
    listed = catalogue.catalogue(config)
    assert [a.slug for a in listed.articles] == [a.slug for a in parsed]
    assert all(a.html == "" for a in listed.articles)  # a list holds no article's text


def test_the_daemon_reads_only_the_file_saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a save in the desk, the daemon's look reads that one file, not every file."""
    pub = Pub(tmp_path)
    for day in range(3, 28):
        pub.write(f"2026-10-{day:02d}-note-{day}.md", job_article(f"note-{day}", f"2026-10-{day:02d}"))
    jobs.publish_new(pub.key)
    parsed, read = _counting(monkeypatch)
    pub.write("2026-10-09-note-9.md", job_article("note-9", "2026-10-09", body="Saved from the desk."))
    jobs.publish_new(pub.key)
    assert read == ["2026-10-09-note-9.md"] and parsed == ["content/2026-10-09-note-9.md"]
    assert "Saved from the desk." in (tmp_path / "public" / "note-9" / "index.html").read_text()


def test_a_send_after_the_list_was_read_carries_the_articles_text(tmp_path: Path) -> None:
    """The list keeps no article's text; the send of one takes it back whole."""
    pub = Pub(tmp_path, policy="wait")
    pub.write("2026-11-03-with-words.md", job_article("with-words", "2026-11-03", body="The words readers get."))
    jobs.publish_new(pub.key)
    article_service.list_articles(pub.config, pub.db, now=START)
    plan = issues.plan_send(pub.config, pub.db, "with-words", now=START)
    assert plan.recipients == 3
    issues.send_now(pub.config, pub.db, "with-words", now=START)
    assert deliver_queued(pub.config, pub.db, stop=threading.Event(), clock=lambda: START) == 3
    bodies = [m.get_body(("plain",)).get_content() for m in pub.messages()]  # type: ignore[union-attr]
    assert [b for b in bodies if "The words readers get." in b], bodies


def test_an_article_saved_again_after_the_list_was_read_comes_back_as_saved(tmp_path: Path) -> None:
    """Another request's build may drop the cached text of the version listed: the article
    then comes back as its file is now, not as an error."""
    config = load_config(publication(tmp_path, 4, previews=0), env={})
    listed = catalogue.catalogue(config)
    first = next(a for a in listed.articles if a.source == "content/a02.md")
    (tmp_path / "content" / "a02.md").write_text(text(2, body="Saved a moment later."), encoding="utf-8")
    catalogue.catalogue(config)  # another request: the old version's cached text is pruned
    assert "Saved a moment later." in listed.whole(first).html


def test_the_digest_line_looks_at_no_article_while_none_waits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Home names the next digest's articles; with none waiting (most looks) it lists none."""
    from publisher.services import scheduling

    pub = Pub(tmp_path, policy="digest", extra='digest = "0 8 * * mon"')
    jobs.publish_new(pub.key)  # the back catalogue: never digested
    listed: list[Config] = []
    real = catalogue.catalogue

    def counting(config: Config) -> catalogue.Catalogue:
        listed.append(config)
        return real(config)

    monkeypatch.setattr(catalogue, "catalogue", counting)
    coming = scheduling.next_digest(pub.config, pub.db, now=START)
    assert coming is not None and coming.titles == () and listed == []
    pub.write("2026-11-19-waits.md", job_article("waits", "2026-11-19"))
    jobs.publish_new(pub.key)
    coming = scheduling.next_digest(pub.config, pub.db, now=START)
    assert coming is not None and coming.titles == ("Waits",) and len(listed) == 1
