"""importer and `publisher import`: a page or a feed, by URL or file, into content/ safely."""

from __future__ import annotations

import shutil
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from loopback_sites import SITES, SiteServer, serve_sites

from publisher import content
from publisher.cli import cli
from publisher.config import Config, load_config
from publisher.content.extract import page_to_article
from publisher.content.importer import import_location, slugs_in_use, write_article
from publisher.errors import FetchRefused, SourceError
from publisher.site import build
from publisher.store import open_store, publishing

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
WIX_FILE = "2024-01-22-grounding-skills-for-panic.md"


def write_config(tmp_path: Path, *, allow_private: bool = True) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [publication]
            title = "Harbor Notes"
            url = "https://notes.example.org/"
            timezone = "America/New_York"
            author = "Dana Reyes, LCSW"
            postal_address = "1 Wharf Street, Portland, ME"
            [newsletter]
            from = "Notes <notes@example.org>"
            [store]
            url = "sqlite:///publisher.db"
            [fetch]
            allow_private = {"true" if allow_private else "false"}
            timeout = 5.0
            """
        ),
        encoding="utf-8",
    )
    return path


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load_config(write_config(tmp_path), env={})


@pytest.fixture
def site(tmp_path: Path):
    with serve_sites(tmp_path) as server:
        yield server


def run(config_path: Path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(config_path), "import", *args], catch_exceptions=False)


def test_imports_a_page_by_url(config: Config, site: SiteServer) -> None:
    """A fetched Wix page lands in content/ as YYYY-MM-DD-slug.md and loads as an article."""
    ((path, article),) = import_location(config, f"{site.url}/wix/post.html", now=NOW)
    assert path == config.path_of("build.content") / WIX_FILE
    (loaded,) = content.load_articles(config)
    assert loaded.id == article.id
    assert loaded.title == "Grounding Skills for Panic: A Field Guide for Hard Moments"
    # Relative images resolve against the address the page was fetched from.
    assert f'src="{site.url}/media/a1b2c3_harbor_steps.jpg"' in loaded.html


def test_imports_a_saved_page_against_its_canonical_address(config: Config, tmp_path: Path) -> None:
    """A page saved to disk resolves its relative links against its canonical link."""
    saved = tmp_path / "saved.html"
    shutil.copy(SITES / "wix/post.html", saved)
    ((path, article),) = import_location(config, str(saved), now=NOW)
    assert path.name == WIX_FILE
    assert 'src="https://www.tidewatercounseling.example/media/a1b2c3_harbor_steps.jpg"' in article.html


def test_base_url_option_wins_over_the_canonical_link(config: Config, tmp_path: Path) -> None:
    """--base-url names where a saved page lived."""
    ((_, article),) = import_location(
        config, str(SITES / "wix/post.html"), now=NOW, base_url="https://old.example.com/blog/panic"
    )
    assert 'src="https://old.example.com/media/a1b2c3_harbor_steps.jpg"' in article.html


def test_imports_a_whole_feed(config: Config, site: SiteServer) -> None:
    """A feed URL imports every item as its own article."""
    written = import_location(config, f"{site.url}/ghost/rss.xml", now=NOW)
    assert sorted(p.name for p, _ in written) == ["2024-02-17-gratitude-list.md", "2024-03-08-ninety-days-in.md"]
    assert len(content.load_articles(config)) == 2


def test_refuses_to_overwrite_without_force(config: Config) -> None:
    """Importing the same page twice is refused and the first file is left untouched."""
    ((path, _),) = import_location(config, str(SITES / "wix/post.html"), now=NOW)
    path.write_text(path.read_text(encoding="utf-8") + "\nMy own edit.\n", encoding="utf-8")
    with pytest.raises(SourceError, match=r"already imported: .*grounding-skills-for-panic\.md.*--force"):
        import_location(config, str(SITES / "wix/post.html"), now=NOW)
    assert "My own edit." in path.read_text(encoding="utf-8")


def test_force_replaces_the_earlier_import(config: Config) -> None:
    """With force, the file holding the slug is rewritten; no second file appears."""
    ((path, _),) = import_location(config, str(SITES / "wix/post.html"), now=NOW)
    path.write_text(path.read_text(encoding="utf-8") + "\nMy own edit.\n", encoding="utf-8")
    ((again, _),) = import_location(config, str(SITES / "wix/post.html"), now=NOW, force=True)
    assert again == path
    assert "My own edit." not in path.read_text(encoding="utf-8")
    assert [p.name for p in config.path_of("build.content").glob("*.md")] == [WIX_FILE]


def test_slug_held_by_another_file_counts_as_existing(config: Config) -> None:
    """An article with the same slug under another file name also blocks the import."""
    folder = config.path_of("build.content")
    folder.mkdir()
    (folder / "panic.md").write_text(
        "---\ntitle: Mine\ndate: 2023-01-01\nslug: grounding-skills-for-panic\n---\n\nText.\n", encoding="utf-8"
    )
    with pytest.raises(SourceError, match=r"panic\.md"):
        import_location(config, str(SITES / "wix/post.html"), now=NOW)
    assert slugs_in_use(config) == {"grounding-skills-for-panic": folder / "panic.md"}


def test_feed_import_writes_nothing_when_one_item_exists(config: Config) -> None:
    """No half import: if any item would overwrite, no file is written."""
    import_location(config, str(SITES / "wix/post.html"), now=NOW)
    with pytest.raises(SourceError, match="nothing was written"):
        import_location(config, str(SITES / "wix/blog-feed.xml"), now=NOW)
    assert [p.name for p in config.path_of("build.content").glob("*.md")] == [WIX_FILE]


def test_import_refuses_private_targets(tmp_path: Path, site: SiteServer) -> None:
    """The import fetch obeys the same SSRF rules as watched feeds."""
    config = load_config(write_config(tmp_path, allow_private=False), env={})
    with pytest.raises(FetchRefused, match="loopback"):
        import_location(config, f"{site.url}/wix/post.html", now=NOW)
    assert site.requests == []


def test_missing_file_is_a_clear_error(config: Config, tmp_path: Path) -> None:
    """A file that is not there is named in the error."""
    with pytest.raises(SourceError, match=r"nope\.html: cannot be read"):
        import_location(config, str(tmp_path / "nope.html"), now=NOW)


def test_write_article_refuses_a_reserved_slug(config: Config) -> None:
    """A page whose slug would shadow /feeds/ is refused with a way out."""
    imported = page_to_article((SITES / "wix/post.html").read_bytes(), url="https://b.example/", config=config, now=NOW)
    with pytest.raises(SourceError, match="reserved"):
        write_article(config, imported.with_slug("feeds"))


def test_imported_page_builds_into_the_site(config: Config) -> None:
    """The imported article appears in the archive and in the feeds like a local one."""
    import_location(config, str(SITES / "wix/post.html"), now=NOW)
    articles = content.load_articles(config)
    build.build_site(config, articles, NOW)
    output = config.path_of("build.output")
    page = (output / "grounding-skills-for-panic" / "index.html").read_text(encoding="utf-8")
    assert "Grounding Skills for Panic" in page and "Okafor" in page
    assert "grounding-skills-for-panic" in (output / "feeds" / "rss.xml").read_text(encoding="utf-8")


def test_cli_imports_and_then_refuses_without_force(tmp_path: Path, site: SiteServer) -> None:
    """`publisher import URL` writes the file; again exits 1 naming --force; --force succeeds."""
    config_path = write_config(tmp_path)
    first = run(config_path, f"{site.url}/wix/post.html")
    assert first.exit_code == 0, first.output
    assert f"imported content/{WIX_FILE}" in first.output.replace(str(tmp_path) + "/", "")
    assert "by Morgan Ellis, LMFT" in first.output
    second = CliRunner().invoke(cli, ["--config", str(config_path), "import", f"{site.url}/wix/post.html"])
    assert second.exit_code == 1
    assert "--force" in second.output
    third = run(config_path, f"{site.url}/wix/post.html", "--force")
    assert third.exit_code == 0, third.output


def test_cli_refused_fetch_exits_1_with_the_reason(tmp_path: Path, site: SiteServer) -> None:
    """A refused target is an error message and exit code 1, not a traceback."""
    config_path = write_config(tmp_path, allow_private=False)
    result = CliRunner().invoke(cli, ["--config", str(config_path), "import", f"{site.url}/wix/post.html"])
    assert result.exit_code == 1
    assert "allow_private" in result.output


def test_cli_files_a_whole_feed_as_back_catalogue(tmp_path: Path) -> None:
    """Articles from a whole feed are marked noticed as backlog, so the daemon never mails them."""
    config_path = write_config(tmp_path)
    config = load_config(config_path, env={})
    engine = open_store(config.store_url)
    publishing.file_catalogue(engine, now=NOW)
    result = run(config_path, str(SITES / "ghost/rss.xml"))
    assert result.exit_code == 0, result.output
    assert "back catalogue" in result.output
    ids = {a.id for a in content.load_articles(config)}
    assert len(ids) == 2 and ids <= publishing.seen_ids(engine)


def test_cli_leaves_a_single_page_to_be_sent(tmp_path: Path) -> None:
    """One imported page is new: it goes out like a local article when the daemon sees it."""
    config_path = write_config(tmp_path)
    config = load_config(config_path, env={})
    engine = open_store(config.store_url)
    publishing.file_catalogue(engine, now=NOW)
    result = run(config_path, str(SITES / "wix/post.html"))
    assert result.exit_code == 0, result.output
    (article,) = content.load_articles(config)
    assert article.id not in publishing.seen_ids(engine)


def test_an_import_takes_the_content_folders_turn(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a save from the desk holds the content folder's lock, an import waits its turn
    (here, longer than allowed: a Conflict naming the lock), and writes nothing."""
    from publisher.content import folder_lock
    from publisher.errors import Conflict

    monkeypatch.setattr(folder_lock, "LOCK_WAIT", 0.05)
    folder = config.path_of("build.content")
    with folder_lock.content_lock(folder) as lock, pytest.raises(Conflict, match=lock.name):
        import_location(config, str(SITES / "wix/post.html"), now=NOW)
    assert list(folder.glob("*.md")) == []
    ((path, _),) = import_location(config, str(SITES / "wix/post.html"), now=NOW)
    assert path.name == WIX_FILE
