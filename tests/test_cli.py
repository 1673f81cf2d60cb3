"""The command line as a whole: every command is documented, and usage errors exit 2."""

from __future__ import annotations

from pathlib import Path

import click
from click.testing import CliRunner

from publisher.cli import cli

ROOT = Path(__file__).resolve().parent.parent


def command_names(group: click.Group = cli, prefix: str = "") -> list[str]:
    names = []
    for name, command in group.commands.items():
        full = f"{prefix}{name}"
        if isinstance(command, click.Group):
            names.extend(command_names(command, full + " "))
        else:
            names.append(full)
    return sorted(names)


def test_every_command_is_in_the_readme() -> None:
    """Each command appears in README.md, so the tour cannot drift from the code."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [name for name in command_names() if f"publisher {name}" not in readme
               and not _listed_in_group(readme, name)]
    assert missing == []


def _listed_in_group(readme: str, name: str) -> bool:
    """`publisher subscribers add/remove/list` documents `subscribers remove` too."""
    group, _, verb = name.partition(" ")
    return bool(verb) and any(
        verb in line.split(f"publisher {group} ", 1)[1].split("`")[0].split("/")
        for line in readme.splitlines()
        if f"publisher {group} " in line
    )


def test_every_command_has_help() -> None:
    """Every command explains itself in --help."""
    runner = CliRunner()
    for name in command_names():
        result = runner.invoke(cli, [*name.split(), "--help"])
        assert result.exit_code == 0, name
        assert len(result.output.splitlines()) > 3, name


def test_usage_error_exits_2() -> None:
    """An unknown option is a usage error: exit code 2."""
    result = CliRunner().invoke(cli, ["build", "--no-such-option"])
    assert result.exit_code == 2


def test_missing_config_exits_1_with_a_hint(tmp_path: Path) -> None:
    """Run outside a publication, the message says how to point at one."""
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "nope.toml"), "build"])
    assert result.exit_code == 1
    assert "--config PATH" in result.output
