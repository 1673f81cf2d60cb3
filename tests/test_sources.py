"""sources: watched feeds polled politely, each item imported once, broken feeds reported."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from loopback_sites import SiteServer, serve_sites

from publisher import content
from publisher.config import Config, parse_config
from publisher.content import extract, importer
from publisher.content import sources as sources_module
from publisher.content.sources import poll_all, poll_source
from publisher.store import open_store, publishing
from publisher.store import sources as store
from publisher.store.schema import source_items

NOW = datetime(2024, 3, 20, 12, 0, tzinfo=UTC)

NEW_ITEM = """
	<item>
		<title>Three Questions Before You Quit Therapy</title>
		<link>https://quiethours.example.com/2024/03/18/before-you-quit/</link>
		<dc:creator><![CDATA[Priya Natarajan, PsyD]]></dc:creator>
		<pubDate>Mon, 18 Mar 2024 10:00:00 +0000</pubDate>
		<category><![CDATA[Getting Started]]></category>
		<guid isPermaLink="false">https://quiethours.example.com/?p=440</guid>
		<content:encoded><![CDATA[<p>Feeling stuck is part of the work. Before you stop, ask what changed,
		what you want, and whether you have said so out loud.</p>
		<p><img src="/wp-content/uploads/2024/03/bench.jpg" alt="A park bench"></p>]]></content:encoded>
	</item>
"""


def make_config(tmp_path: Path, sources: list[str], *, allow_private: bool = True) -> Config:
    tables = "".join(f"\n[[sources]]\n{body}\n" for body in sources)
    text = (
        textwrap.dedent(
            f"""
        [publication]
        title = "Harbor Notes"
        url = "https://notes.example.org/"
        timezone = "America/New_York"
        author = "Dana Reyes, LCSW"
        [newsletter]
        from = "Notes <notes@example.org>"
        [store]
        url = "sqlite:///publisher.db"
        [fetch]
        allow_private = {"true" if allow_private else "false"}
        timeout = 5.0
        """
        )
        + tables
    )
    return parse_config(text, root=tmp_path)


def source_table(url: str, **extra: object) -> str:
    lines = [f'url = "{url}"'] + [
        f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}" for k, v in extra.items()
    ]
    return "\n".join(lines)


@pytest.fixture
def site(tmp_path: Path):
    with serve_sites(tmp_path) as server:
        yield server


@pytest.fixture
def wordpress(site: SiteServer, tmp_path: Path) -> tuple[Config, sa.Engine]:
    config = make_config(tmp_path, [source_table(f"{site.url}/wordpress/feed.xml")])
    return config, open_store(config.store_url)


def content_files(config: Config) -> list[str]:
    folder = config.path_of("build.content")
    return sorted(p.name for p in folder.glob("*.md")) if folder.is_dir() else []


def add_new_item(site: SiteServer) -> None:
    feed = (site.root / "wordpress/feed.xml").read_text(encoding="utf-8")
    site.write("wordpress/feed.xml", feed.replace("\t<item>", NEW_ITEM + "\t<item>", 1))


def test_first_poll_marks_the_back_catalogue_as_seen(wordpress: tuple[Config, sa.Engine]) -> None:
    """The first poll returns nothing and writes nothing, but remembers every item."""
    config, engine = wordpress
    (source,) = config.sources
    result = poll_source(config, engine, source, now=NOW)
    assert result.error is None
    assert result.new_articles == [] and result.backlog
    assert content_files(config) == []
    assert {i.item_id for i in store.items(engine, source.url)} == {
        "https://quiethours.example.com/?p=412",
        "https://quiethours.example.com/?p=398",
    }
    assert not any(i.imported for i in store.items(engine, source.url))


def test_unchanged_feed_costs_one_304_and_no_work(
    wordpress: tuple[Config, sa.Engine], site: SiteServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second poll sends the stored validators; the 304 is neither parsed nor looked up."""
    config, engine = wordpress
    (source,) = config.sources
    first = poll_source(config, engine, source, now=NOW)
    assert first.error is None
    validators = store.get_state(engine, source.url)
    assert validators and validators.etag and validators.last_modified

    work: list[str] = []
    real_parse = extract.feedparser.parse
    monkeypatch.setattr(extract.feedparser, "parse", lambda *a, **k: work.append("parse") or real_parse(*a, **k))
    monkeypatch.setattr(store, "known_items", lambda *a, **k: work.append("lookup") or set())
    monkeypatch.setattr(importer, "slugs_in_use", lambda *a, **k: work.append("scan") or {})

    result = poll_source(config, engine, source, now=NOW + timedelta(minutes=30))
    assert result.unchanged and result.new_articles == [] and result.error is None
    seen = site.last("/wordpress/feed.xml")
    assert seen.status == 304
    assert seen.headers["if-none-match"] == validators.etag
    assert seen.headers["if-modified-since"] == validators.last_modified
    assert work == []
    assert site.hits("/wordpress/feed.xml") == 2


def test_a_new_item_becomes_an_article_in_content(wordpress: tuple[Config, sa.Engine], site: SiteServer) -> None:
    """An item published after the first poll is written to content/ and returned once."""
    config, engine = wordpress
    (source,) = config.sources
    poll_source(config, engine, source, now=NOW)
    add_new_item(site)
    result = poll_source(config, engine, source, now=NOW + timedelta(minutes=30))
    assert result.error is None and not result.backlog
    (article,) = result.new_articles
    assert article.title == "Three Questions Before You Quit Therapy"
    assert article.slug == "before-you-quit"
    assert article.author == "Priya Natarajan, PsyD"
    assert article.date == datetime(2024, 3, 18, 10, 0, tzinfo=UTC)
    assert article.tags == ("Getting Started",)
    assert article.url == "https://notes.example.org/before-you-quit/"
    assert 'src="https://quiethours.example.com/wp-content/uploads/2024/03/bench.jpg"' in article.html
    assert content_files(config) == ["2024-03-18-before-you-quit.md"]
    item = next(i for i in store.items(engine, source.url) if i.item_id.endswith("p=440"))
    assert item.imported and item.slug == "before-you-quit"


def test_source_articles_load_like_local_ones_with_the_same_id(
    wordpress: tuple[Config, sa.Engine], site: SiteServer
) -> None:
    """content.load_articles sees the imported item with the id the poll returned."""
    config, engine = wordpress
    (source,) = config.sources
    poll_source(config, engine, source, now=NOW)
    add_new_item(site)
    (article,) = poll_source(config, engine, source, now=NOW + timedelta(hours=1)).new_articles
    (loaded,) = content.load_articles(config)
    assert loaded.id == article.id
    assert loaded.html == article.html
    assert loaded.is_public(NOW)


def test_the_same_new_item_is_returned_only_once(wordpress: tuple[Config, sa.Engine], site: SiteServer) -> None:
    """Polling again after the feed changed elsewhere does not return the item again."""
    config, engine = wordpress
    (source,) = config.sources
    poll_source(config, engine, source, now=NOW)
    add_new_item(site)
    assert len(poll_source(config, engine, source, now=NOW + timedelta(hours=1)).new_articles) == 1
    feed = (site.root / "wordpress/feed.xml").read_text(encoding="utf-8")
    site.write("wordpress/feed.xml", feed.replace("<lastBuildDate>", "<!-- rebuilt --><lastBuildDate>"))
    again = poll_source(config, engine, source, now=NOW + timedelta(hours=2))
    assert site.last("/wordpress/feed.xml").status == 200
    assert again.new_articles == [] and again.error is None


def test_a_republished_item_is_not_returned_again(wordpress: tuple[Config, sa.Engine], site: SiteServer) -> None:
    """The same guid with a new date (re-published, bumped to the top) is not new."""
    config, engine = wordpress
    (source,) = config.sources
    poll_source(config, engine, source, now=NOW)
    feed = (site.root / "wordpress/feed.xml").read_text(encoding="utf-8")
    site.write("wordpress/feed.xml", feed.replace("Tue, 30 Jan 2024 09:00:00 +0000", "Wed, 20 Mar 2024 08:00:00 +0000"))
    result = poll_source(config, engine, source, now=NOW + timedelta(hours=1))
    assert site.last("/wordpress/feed.xml").status == 200
    assert result.new_articles == [] and result.error is None
    assert content_files(config) == []


def test_an_edited_item_is_not_returned_or_rewritten(wordpress: tuple[Config, sa.Engine], site: SiteServer) -> None:
    """An upstream edit of an imported item changes nothing here: no new article, same file."""
    config, engine = wordpress
    (source,) = config.sources
    poll_source(config, engine, source, now=NOW)
    add_new_item(site)
    poll_source(config, engine, source, now=NOW + timedelta(hours=1))
    path = config.path_of("build.content") / "2024-03-18-before-you-quit.md"
    before = path.read_text(encoding="utf-8")
    feed = (site.root / "wordpress/feed.xml").read_text(encoding="utf-8")
    edited = feed.replace("Three Questions Before You Quit Therapy", "Four Questions Before You Quit Therapy")
    site.write("wordpress/feed.xml", edited.replace("Feeling stuck", "Feeling stuck (edited)"))
    result = poll_source(config, engine, source, now=NOW + timedelta(hours=2))
    assert result.new_articles == [] and result.error is None
    assert path.read_text(encoding="utf-8") == before
    assert content_files(config) == ["2024-03-18-before-you-quit.md"]


def test_import_backlog_imports_the_existing_items(site: SiteServer, tmp_path: Path) -> None:
    """With import_backlog, the first poll writes and returns every existing item, oldest first."""
    config = make_config(tmp_path, [source_table(f"{site.url}/ghost/rss.xml", import_backlog=True)])
    engine = open_store(config.store_url)
    result = poll_source(config, engine, config.sources[0], now=NOW)
    assert result.error is None and result.backlog
    assert [a.slug for a in result.new_articles] == ["gratitude-list", "ninety-days-in"]
    assert content_files(config) == ["2024-02-17-gratitude-list.md", "2024-03-08-ninety-days-in.md"]
    ninety = result.new_articles[1]
    assert ninety.image == "https://fieldnotes.example.net/content/images/2024/03/sunrise-trail.jpg"
    assert "<blockquote>" in ninety.html and "<h2" in ninety.html
    assert poll_source(config, engine, config.sources[0], now=NOW + timedelta(hours=1)).new_articles == []


def test_backlog_is_filed_as_never_mailed_once_the_publish_step_has_run(site: SiteServer, tmp_path: Path) -> None:
    """An imported back catalogue is marked noticed (as backlog) so no newsletter goes out for it."""
    config = make_config(tmp_path, [source_table(f"{site.url}/ghost/rss.xml", import_backlog=True)])
    engine = open_store(config.store_url)
    publishing.file_catalogue(engine, now=NOW)
    result = poll_source(config, engine, config.sources[0], now=NOW)
    assert {a.id for a in result.new_articles} <= publishing.seen_ids(engine)


def test_backlog_on_a_fresh_database_is_left_to_the_publish_steps_first_run(site: SiteServer, tmp_path: Path) -> None:
    """Before anything was noticed, nothing is marked: the publish step's first run files it all."""
    config = make_config(tmp_path, [source_table(f"{site.url}/ghost/rss.xml", import_backlog=True)])
    engine = open_store(config.store_url)
    assert len(poll_source(config, engine, config.sources[0], now=NOW).new_articles) == 2
    assert publishing.seen_ids(engine) == set()


def test_item_content_is_sanitised(site: SiteServer, tmp_path: Path) -> None:
    """Scripts, event handlers and javascript: links in a feed never reach content/."""
    config = make_config(tmp_path, [source_table(f"{site.url}/wordpress/feed.xml", import_backlog=True)])
    engine = open_store(config.store_url)
    result = poll_source(config, engine, config.sources[0], now=NOW)
    texts = [p.read_text(encoding="utf-8") for p in config.path_of("build.content").glob("*.md")]
    everything = "\n".join(texts) + "\n".join(a.html for a in result.new_articles)
    assert "tracking" not in everything and "document.write" not in everything
    assert "onclick" not in everything and "steal()" not in everything
    assert "javascript:" not in everything
    assert "Click here" in everything  # the text stays, the link goes


def test_slug_taken_by_a_local_article_gets_a_suffix(site: SiteServer, tmp_path: Path) -> None:
    """An item whose slug a local article already uses is written as slug-2; the build still loads."""
    config = make_config(tmp_path, [source_table(f"{site.url}/wordpress/feed.xml", import_backlog=True)])
    folder = config.path_of("build.content")
    folder.mkdir()
    (folder / "2023-05-01-first-session.md").write_text(
        "---\ntitle: Our first session, explained\ndate: 2023-05-01 09:00\n---\n\nHello.\n", encoding="utf-8"
    )
    engine = open_store(config.store_url)
    result = poll_source(config, engine, config.sources[0], now=NOW)
    assert sorted(a.slug for a in result.new_articles) == ["first-session-2", "sleep-and-worry"]
    assert sorted(a.slug for a in content.load_articles(config)) == [
        "first-session",
        "first-session-2",
        "sleep-and-worry",
    ]


def test_a_file_written_before_a_crash_is_adopted_not_duplicated(
    wordpress: tuple[Config, sa.Engine], site: SiteServer
) -> None:
    """If the item was written but not recorded, the next poll recognises its own file."""
    config, engine = wordpress
    (source,) = config.sources
    poll_source(config, engine, source, now=NOW)
    add_new_item(site)
    (article,) = poll_source(config, engine, source, now=NOW + timedelta(hours=1)).new_articles
    with engine.begin() as conn:  # as if the process died between writing and recording
        conn.execute(source_items.delete().where(source_items.c.item_id.like("%p=440")))
        conn.execute(sa.text("UPDATE sources SET etag = NULL, last_modified = NULL"))
    (again,) = poll_source(config, engine, source, now=NOW + timedelta(hours=2)).new_articles
    assert again.id == article.id
    assert content_files(config) == ["2024-03-18-before-you-quit.md"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/broken/not-a-feed.html", "not an RSS or Atom feed"),
        ("/broken/truncated.xml", "not an RSS or Atom feed"),
        ("/broken/missing.xml", "HTTP 404"),
    ],
)
def test_a_broken_source_is_reported_and_the_others_still_polled(
    site: SiteServer, tmp_path: Path, path: str, message: str
) -> None:
    """One feed that fails leaves a clear error in its result; the next source is polled."""
    config = make_config(
        tmp_path,
        [source_table(f"{site.url}{path}"), source_table(f"{site.url}/substack/feed.xml", import_backlog=True)],
    )
    engine = open_store(config.store_url)
    broken, good = poll_all(config, engine, now=NOW)
    assert broken.error is not None and message in broken.error and path in broken.error
    assert broken.new_articles == []
    assert good.error is None
    assert [a.slug for a in good.new_articles] == ["attention-is-a-muscle"]
    state = store.get_state(engine, f"{site.url}{path}")
    assert state is not None and message in state.error and state.ok_at is None


def test_refused_source_is_reported_without_a_request(site: SiteServer, tmp_path: Path) -> None:
    """With private targets not allowed, a loopback feed is refused before any request."""
    config = make_config(tmp_path, [source_table(f"{site.url}/wordpress/feed.xml")], allow_private=False)
    engine = open_store(config.store_url)
    (result,) = poll_all(config, engine, now=NOW)
    assert result.error is not None and "loopback" in result.error and "allow_private" in result.error
    assert site.requests == []


def test_an_unexpected_failure_in_one_source_does_not_stop_the_others(
    site: SiteServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even a bug while handling one source is contained to that source's result."""
    config = make_config(
        tmp_path,
        [source_table(f"{site.url}/ghost/rss.xml"), source_table(f"{site.url}/substack/feed.xml", import_backlog=True)],
    )
    engine = open_store(config.store_url)
    real = sources_module.poll_source

    def flaky(config, engine, source, **kwargs):
        if "ghost" in source.url:
            raise RuntimeError("boom")
        return real(config, engine, source, **kwargs)

    monkeypatch.setattr(sources_module, "poll_source", flaky)
    ghost, substack = poll_all(config, engine, now=NOW)
    assert ghost.error is not None and "boom" in ghost.error
    assert len(substack.new_articles) == 1


def test_error_clears_after_a_successful_poll(site: SiteServer, tmp_path: Path) -> None:
    """A source that recovers has its stored error cleared."""
    config = make_config(tmp_path, [source_table(f"{site.url}/later/feed.xml")])
    engine = open_store(config.store_url)
    (failed,) = poll_all(config, engine, now=NOW)
    assert failed.error
    (site.root / "later").mkdir()
    (site.root / "later/feed.xml").write_bytes((site.root / "wordpress/feed.xml").read_bytes())
    (recovered,) = poll_all(config, engine, now=NOW + timedelta(hours=1))
    assert recovered.error is None and recovered.backlog  # still the first successful poll
    state = store.get_state(engine, f"{site.url}/later/feed.xml")
    assert state is not None and state.error == "" and state.ok_at == NOW + timedelta(hours=1)


def test_poll_all_polls_each_source_at_its_own_interval(site: SiteServer, tmp_path: Path) -> None:
    """A source is not polled again before its interval has passed."""
    config = make_config(
        tmp_path,
        [
            source_table(f"{site.url}/ghost/rss.xml", interval=600.0),
            source_table(f"{site.url}/substack/feed.xml", interval=3600.0),
        ],
    )
    engine = open_store(config.store_url)
    assert len(poll_all(config, engine, now=NOW)) == 2
    assert poll_all(config, engine, now=NOW + timedelta(minutes=5)) == []
    (ghost,) = poll_all(config, engine, now=NOW + timedelta(minutes=10))
    assert ghost.source.endswith("/ghost/rss.xml")
    assert len(poll_all(config, engine, now=NOW + timedelta(minutes=10), only_due=False)) == 2
    assert site.hits("/ghost/rss.xml") == 3 and site.hits("/substack/feed.xml") == 2
