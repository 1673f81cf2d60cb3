"""`publisher users ...`: passwords from stdin, roles, and the errors a person can fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from publisher.cli import cli

CONFIG = """
[publication]
title = "Harbor Light Notes"
url = "https://notes.example.org/"

[newsletter]
from = "Dana Reyes <notes@example.org>"

[store]
url = "sqlite:///publisher.db"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def run(config: Path, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), "users", *args], input=stdin)


def test_add_reads_the_password_from_stdin_and_lists(config: Path) -> None:
    """A piped password is enough; list shows address and role."""
    added = run(config, "add", "Dana@Example.org", "--role", "owner", stdin="correct horse battery\n")
    assert added.exit_code == 0, added.output
    assert added.output == "added dana@example.org (owner)\n"
    listed = run(config, "list")
    assert listed.output.startswith("dana@example.org\towner\t")


def test_short_password_and_bad_role_are_refused(config: Path) -> None:
    """A short password exits 1 with the rule; an unknown role is a usage error (2)."""
    short = run(config, "add", "sam@example.org", "--role", "editor", stdin="short\n")
    assert short.exit_code == 1
    assert "at least 10 characters" in short.output
    assert run(config, "add", "sam@example.org", "--role", "boss", stdin="x" * 12).exit_code == 2
    assert "sam@example.org" not in run(config, "list").output


def test_empty_stdin_is_refused(config: Path) -> None:
    """No password on a pipe says how to give one."""
    result = run(config, "add", "sam@example.org", "--role", "viewer", stdin="")
    assert result.exit_code == 1
    assert "standard input" in result.output


def test_remove_and_reset_password(config: Path) -> None:
    """reset-password replaces the password; remove refuses the last owner and takes others."""
    run(config, "add", "dana@example.org", "--role", "owner", stdin="correct horse battery\n")
    run(config, "add", "sam@example.org", "--role", "editor", stdin="another passphrase\n")
    reset = run(config, "reset-password", "sam@example.org", stdin="a third passphrase\n")
    assert reset.exit_code == 0 and "sessions have ended" in reset.output
    assert run(config, "remove", "dana@example.org").exit_code == 1
    assert run(config, "remove", "sam@example.org").exit_code == 0
    assert run(config, "remove", "sam@example.org").exit_code == 1
    assert "sam@" not in run(config, "list").output
