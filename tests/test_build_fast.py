"""A rebuild after one edit does the work of that edit: what `build` and `check` load, read
and validate when little changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from test_build import ARTICLE_FILE, cli_publication
from test_build_cache import assert_same_as_cold, incremental, text
from test_build_cache import publication as cache_publication

from publisher.cli import cli
from publisher.site import build_cache
from publisher.site.build_cache import CACHE_FOLDER

NOT_FOR_A_BUILD = (
    "feedparser",
    "premailer",
    "publisher.mail.newsletter",
    "publisher.mail.mime",
    "publisher.mail.dkim_signing",
    "publisher.mail.tokens",
    "rich.console",
)
"""Modules `publisher build` does without when it renders no newsletter preview (and rich,
off a terminal)."""


NOT_AFTER_AN_EDIT = ("multiprocessing", "concurrent.futures", "importlib.metadata")
"""Modules neither `build` nor `check` needs after one edit that mails nothing: worker pools
(for hundreds of files to parse or pages to render) and the libraries' metadata (the names
of their dist-info folders say their versions)."""
PARSERS = ("yaml", "markdown_it", "mdit_py_plugins", "slugify", "publisher.content.articles")
"""What parses an article file: a build whose articles all come from the cache does without."""


def _modules_after(config: Path, *args: str, modules: tuple[str, ...] = NOT_FOR_A_BUILD) -> list[str]:
    probe = (
        "import sys\nfrom publisher.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        f"print(sorted(m for m in {modules!r} if m in sys.modules))\n"
    )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PUBLISHER_SECRET": "s" * 32}
    done = subprocess.run(
        [sys.executable, "-c", probe, "--config", str(config), *args],
        cwd=config.parent,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return [line for line in done.stdout.splitlines() if line.startswith("[")]


def test_build_without_previews_imports_neither_mail_nor_feedparser(tmp_path: Path) -> None:
    """A build with no newsletter preview to render leaves the mail code and feedparser
    unloaded (a third and a fifth of a second of every rebuild)."""
    config = cli_publication(tmp_path)  # previews = 0
    assert _modules_after(config, "build") == ["[]"]


def test_a_check_with_nothing_to_mail_imports_neither_mail_nor_feedparser(tmp_path: Path) -> None:
    """`publisher check` after a build, with no DKIM key to check, no draft and feeds it
    found well formed before, loads no mail code and no feedparser."""
    config = cli_publication(tmp_path)
    text = config.read_text().replace("previews = 0", "previews = 5")
    config.write_text(text)
    assert "previews = 5" in text
    assert _modules_after(config, "build") != ["[]"]  # its previews load the mail code
    assert _modules_after(config, "check") != ["[]"]  # the first reads the feeds
    assert _modules_after(config, "check") == ["[]"]


def _edit(config: Path) -> None:
    article = next((config.parent / "content").glob("*-worry-time.md"))
    article.write_text(article.read_text(encoding="utf-8") + "\nAn added paragraph.\n", encoding="utf-8")


def test_a_check_after_an_edit_loads_no_worker_pool_or_metadata(tmp_path: Path) -> None:
    """`publisher check` after one edit of an article with no newsletter to render parses
    that article (YAML and Markdown) and loads none of `NOT_AFTER_AN_EDIT`."""
    config = cache_publication(tmp_path)
    assert _modules_after(config, "build", modules=()) == ["[]"]
    (tmp_path / "content" / "a05.md").write_text(text(5, body="Rewritten body."), encoding="utf-8")
    assert _modules_after(config, "check", modules=NOT_AFTER_AN_EDIT + PARSERS) == [str(sorted(PARSERS))]


def test_a_build_after_a_check_loads_no_article_parser(tmp_path: Path) -> None:
    """The check after an edit parsed the article into the cache, so the build that follows
    loads neither YAML nor Markdown, nor any of `NOT_AFTER_AN_EDIT`."""
    config = cli_publication(tmp_path)
    assert _modules_after(config, "build") == ["[]"]
    _edit(config)
    assert _modules_after(config, "check", modules=PARSERS) == [str(sorted(PARSERS))]
    assert _modules_after(config, "build", modules=NOT_AFTER_AN_EDIT + PARSERS) == ["[]"]
    assert "An added paragraph." in (tmp_path / "public" / "worry-time" / "index.html").read_text(encoding="utf-8")


@pytest.mark.skipif((os.cpu_count() or 1) < 2 or not sys.platform.startswith("linux"), reason="no worker processes")
def test_the_parser_is_loaded_before_the_workers_fork(tmp_path: Path) -> None:
    """Articles parsed by worker processes find YAML and Markdown loaded by the build before
    it forked them, not loaded again by each worker."""
    config = cache_publication(tmp_path)
    probe = (
        "import sys\nfrom publisher import content\nfrom publisher.config import load_config\n"
        "from publisher.site.build_cache import ArticleCache\n"
        f"config = load_config({str(config)!r}, env={{}})\ncache = ArticleCache(config)\n"
        "cache.warm(content.article_files(config), least=2)\n"
        "print(cache.parsed, 'publisher.content.articles' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["12", "True"]


def test_the_output_check_names_the_secret_file_the_tokens_keep() -> None:
    """The build refuses an output holding the generated secret by its name, without
    loading the token code for it."""
    from publisher.mail import tokens
    from publisher.site.build import files

    assert files._SECRET_FILE_NAME == tokens.SECRET_FILE_NAME


def _counting_parse(monkeypatch: pytest.MonkeyPatch, *, bozo: bool = False) -> list[bytes]:
    import feedparser

    parsed: list[bytes] = []
    real = feedparser.parse

    def parse(data: bytes, **options: Any) -> Any:
        parsed.append(data)
        found = real(data, **options)
        if bozo:
            found["bozo"], found["bozo_exception"] = 1, "mismatched tag (planted)"
        return found

    monkeypatch.setattr(feedparser, "parse", parse)
    return parsed


def test_check_reads_only_the_feeds_that_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second check parses no feed; after a new article, only the feeds that carry it."""
    config = cli_publication(tmp_path)
    parsed = _counting_parse(monkeypatch)
    runner = CliRunner()
    assert runner.invoke(cli, ["--config", str(config), "check"]).exit_code == 0
    every = len(parsed)
    assert every >= 3  # rss, atom and the tag's atom feed
    parsed.clear()
    assert runner.invoke(cli, ["--config", str(config), "check"]).exit_code == 0
    assert parsed == []
    (tmp_path / "content" / "2026-01-20-untagged.md").write_text(
        ARTICLE_FILE.format(title="Untagged", day=20).replace("tags: [sleep]\n", ""), encoding="utf-8"
    )
    result = runner.invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 0, result.output
    assert 0 < len(parsed) < every  # the site's feeds, not the untouched tag's
    assert all(b"Untagged" in data for data in parsed)


def test_check_after_a_build_reads_no_served_feed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a check found the feeds well formed, a check after a build reads none of the
    served feed files: the build's record vouches for their hashes."""
    config = cli_publication(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli, ["--config", str(config), "build"]).exit_code == 0
    assert runner.invoke(cli, ["--config", str(config), "check"]).exit_code == 0
    read: list[str] = []
    real = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        read.append(self.as_posix())
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    result = runner.invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 0, result.output
    assert [path for path in read if "/feeds/" in path] == []


def test_check_keeps_reporting_a_malformed_feed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A feed found malformed is not remembered: the next check reads and reports it again."""
    config = cli_publication(tmp_path)
    _counting_parse(monkeypatch, bozo=True)
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(cli, ["--config", str(config), "check"])
        assert result.exit_code == 1
        assert "feeds/rss.xml: not a well-formed feed: mismatched tag (planted)" in result.output


def test_an_edit_leaves_the_html_of_each_article_once_in_the_cache(tmp_path: Path) -> None:
    """The edited article's old HTML leaves the cache; every other article's stays, and the
    index written back holds each article once, as a cold build's cache would."""
    path = cache_publication(tmp_path)
    incremental(path)
    html = tmp_path / CACHE_FOLDER / "html"
    before = {p.name for p in html.iterdir()}
    (tmp_path / "content" / "a05.md").write_text(text(5, body="Rewritten body."), encoding="utf-8")
    _report, cache = incremental(path)
    assert cache.parsed == 1
    after = {p.name for p in html.iterdir()}
    assert len(after) == len(before) == 12
    assert len(before - after) == 1 and len(after - before) == 1
    # The index as the next build reads it: the file written whole, and the changes beside it.
    index = build_cache._load_map(tmp_path / CACHE_FOLDER / "articles.json", "articles", cache.fingerprint).entries
    assert {f"{key}.html" for key in index} == after
    assert_same_as_cold(path)


def test_a_garbled_feeds_record_only_costs_parsing_the_feeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """feeds-checked.json garbled or of another version: every feed is read again, none skipped."""
    config = cli_publication(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli, ["--config", str(config), "check"]).exit_code == 0
    record = tmp_path / CACHE_FOLDER / "feeds-checked.json"
    for garbage in (b"\x80garbage", record.read_bytes()[:30], b'{"head": ["feeds", 0, "x"], "payload": []}'):
        record.write_bytes(garbage)
        parsed = _counting_parse(monkeypatch)
        result = runner.invoke(cli, ["--config", str(config), "check"])
        assert result.exit_code == 0, result.output
        assert len(parsed) >= 3
        monkeypatch.undo()


@pytest.mark.parametrize(
    "hashes",
    [{}, {"index.html": "sha256:ab"}, {'é/ü\u2028"x\\.html': None, "b.html": "sha256:2", "z/\ud800.html": "s"}],
    ids=["empty", "one", "escapes"],
)
def test_the_manifest_is_the_json_an_indenting_encoder_writes(hashes: dict[str, str | None]) -> None:
    """The manifest's bytes, made without json's pure-Python indenting encoder, are the ones
    it would write (readers and older publishers see no difference)."""
    from publisher.site.build import files

    want = (json.dumps({"files": dict(sorted(hashes.items()))}, indent=1) + "\n").encode("utf-8")
    assert files._manifest_bytes(hashes) == want


def test_a_build_with_nothing_to_parse_loads_no_logging_or_difflib(tmp_path: Path) -> None:
    """A build whose articles all come from the cache leaves `logging` (for a cache warning)
    and `difflib` (for a mistyped setting) unloaded."""
    config = cli_publication(tmp_path)
    assert _modules_after(config, "build") == ["[]"]
    assert _modules_after(config, "build", modules=("difflib", "logging")) == ["[]"]


def test_a_build_beside_a_store_without_redirects_loads_no_sqlalchemy(tmp_path: Path) -> None:
    """The author's store is there (readers, sends), but nothing was moved in: the build
    asks SQLite with the standard library and leaves SQLAlchemy unloaded (a tenth of a
    second of every rebuild). Once an old address is recorded, the build writes its page."""
    from datetime import UTC, datetime

    from publisher.config import load_config
    from publisher.store import open_store, redirects
    from publisher.store.redirect_peek import TABLE
    from publisher.store.schema import redirects as redirects_table

    assert redirects_table.name == TABLE
    config = cli_publication(tmp_path)
    store = open_store(load_config(config, env={"PUBLISHER_SECRET": "s" * 32}).store_url)
    try:
        assert _modules_after(config, "build", modules=("sqlalchemy",)) == ["[]"]
        redirects.add(store, [("/old-sleep-post", "/sleep-basics/")], source="test", now=datetime.now(UTC))
        assert _modules_after(config, "build", modules=("sqlalchemy",)) == ["['sqlalchemy']"]
    finally:
        store.dispose()
    assert "/sleep-basics/" in (tmp_path / "public" / "old-sleep-post" / "index.html").read_text()
    assert "/old-sleep-post /sleep-basics/ 301" in (tmp_path / "public" / "_redirects").read_text()
