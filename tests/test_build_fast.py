"""A rebuild after one edit does the work of that edit: what `build` and `check` load, read
and validate when little changed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from test_build import ARTICLE_FILE, cli_publication

from publisher.cli import cli

NOT_FOR_A_BUILD = ("feedparser", "premailer", "publisher.mail.newsletter", "publisher.mail.mime")
"""Modules `publisher build` does without when it renders no newsletter preview."""


def _modules_after(config: Path, *args: str) -> list[str]:
    probe = (
        "import sys\nfrom publisher.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        f"print(sorted(m for m in {NOT_FOR_A_BUILD!r} if m in sys.modules))\n"
    )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PUBLISHER_SECRET": "s" * 32}
    done = subprocess.run(
        [sys.executable, "-c", probe, "--config", str(config), *args],
        cwd=config.parent, capture_output=True, text=True, check=True, env=env,
    )
    return [line for line in done.stdout.splitlines() if line.startswith("[")]


def test_build_without_previews_imports_neither_mail_nor_feedparser(tmp_path: Path) -> None:
    """A build with no newsletter preview to render leaves the mail code and feedparser
    unloaded (a third and a fifth of a second of every rebuild)."""
    config = cli_publication(tmp_path)  # previews = 0
    assert _modules_after(config, "build") == ["[]"]


def _counting_parse(monkeypatch: pytest.MonkeyPatch, *, bozo: bool = False) -> list[bytes]:
    import feedparser

    parsed: list[bytes] = []
    real = feedparser.parse

    def parse(data: bytes) -> Any:
        parsed.append(data)
        found = real(data)
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


def test_check_keeps_reporting_a_malformed_feed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A feed found malformed is not remembered: the next check reads and reports it again."""
    config = cli_publication(tmp_path)
    _counting_parse(monkeypatch, bozo=True)
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(cli, ["--config", str(config), "check"])
        assert result.exit_code == 1
        assert "feeds/rss.xml: not a well-formed feed: mismatched tag (planted)" in result.output
