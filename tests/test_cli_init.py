"""`publisher init`: a new publication of the author's own, with nothing of the sample's."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from publisher.cli import cli
from publisher.cli import init as init_module

ROOT = Path(__file__).resolve().parent.parent
OPTIONS = [
    "--title", "Quiet Hours", "--url", "https://quiet.example.net", "--author", "Sam Ito",
    "--from", "Sam Ito <sam@quiet.example.net>", "--postal-address", "4 Elm Row, Leeds LS1 1AA, UK",
    "--timezone", "Europe/London",
]


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, env={"PUBLISHER_CONFIG": ""})


def sample_values() -> list[str]:
    """The sample publication's identity: every text of its [publication] and [newsletter]."""
    data = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))
    tables = (data["publication"], data["newsletter"])
    return [v for table in tables for v in table.values() if isinstance(v, str) and len(v) > 4]


def test_init_writes_config_and_one_welcome_draft(tmp_path: Path) -> None:
    """The options end up in config.toml; content/ holds one draft; no templates are copied."""
    folder = tmp_path / "quiet"
    result = run("init", str(folder), *OPTIONS)
    assert result.exit_code == 0, result.output
    config = tomllib.loads((folder / "config.toml").read_text(encoding="utf-8"))
    assert config["publication"]["title"] == "Quiet Hours"
    assert config["publication"]["url"] == "https://quiet.example.net/"
    assert config["publication"]["postal_address"] == "4 Elm Row, Leeds LS1 1AA, UK"
    assert config["publication"]["timezone"] == "Europe/London"
    assert config["newsletter"]["from"] == "Sam Ito <sam@quiet.example.net>"
    (draft,) = (folder / "content").iterdir()
    assert draft.name.endswith("-welcome.md") and "draft: true" in draft.read_text()
    assert not (folder / "templates").exists()
    check = CliRunner().invoke(cli, ["--config", str(folder / "config.toml"), "check"])
    assert check.exit_code == 0, check.output
    assert "1 draft" in check.output


def test_nothing_of_the_sample_leaks(tmp_path: Path) -> None:
    """No value of the sample publication (reply-to, postal address, description...) is copied."""
    run("init", str(tmp_path), *OPTIONS)
    written = "".join(p.read_text(encoding="utf-8") for p in tmp_path.rglob("*") if p.is_file())
    leaked = [value for value in sample_values() if value in written and value not in OPTIONS]
    assert leaked == []
    assert "harbor" not in written.lower() and "dana" not in written.lower()


def test_init_refuses_an_existing_publication(tmp_path: Path) -> None:
    """A folder with a config.toml is left alone."""
    (tmp_path / "config.toml").write_text("# mine\n")
    result = run("init", str(tmp_path), *OPTIONS)
    assert result.exit_code == 1
    assert "already exists" in result.output
    assert (tmp_path / "config.toml").read_text() == "# mine\n"


def test_missing_values_without_a_terminal_are_a_usage_error(tmp_path: Path) -> None:
    """Off a terminal nothing is asked: the missing options are named."""
    result = run("init", str(tmp_path), "--title", "T")
    assert result.exit_code == 2
    assert "--url, --from" in result.output
    assert not (tmp_path / "config.toml").exists()


def test_on_a_terminal_each_missing_value_is_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run on a terminal, init asks for what the options did not give."""
    monkeypatch.setattr(init_module, "_interactive", lambda: True)
    answers = "Night Notes\nhttps://night.example.org/\nAl Ray\nAl <al@night.example.org>\n1 Road, Town\nAsia/Tokyo\n"
    result = run("init", str(tmp_path), input=answers)
    assert result.exit_code == 0, result.output
    config = tomllib.loads((tmp_path / "config.toml").read_text(encoding="utf-8"))
    assert config["publication"]["title"] == "Night Notes"
    assert config["publication"]["timezone"] == "Asia/Tokyo"
    assert config["newsletter"]["from"] == "Al <al@night.example.org>"


def test_bad_answers_name_the_option(tmp_path: Path) -> None:
    """A bad URL, zone or From address is refused, naming the option, and nothing is written."""
    bad = [*OPTIONS]
    bad[bad.index("--url") + 1] = "quiet.example.net"
    bad[bad.index("--timezone") + 1] = "Europe/Leeds"
    result = run("init", str(tmp_path), *bad)
    assert result.exit_code == 1
    assert "--url must be an absolute http(s) URL" in result.output
    assert "--timezone must be an IANA time zone" in result.output
    assert not (tmp_path / "config.toml").exists()
    sender = [*OPTIONS]
    sender[sender.index("--from") + 1] = "Sam Ito"
    assert "--from must be an address" in run("init", str(tmp_path), *sender).output
