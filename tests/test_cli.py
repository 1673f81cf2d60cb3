"""The command line as a whole: every command is documented, and usage errors exit 2."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from publisher.cli import cli
from publisher.cli._common import COMMANDS, SUMMARIES

ROOT = Path(__file__).resolve().parent.parent


def command_names(group: click.Group = cli, prefix: str = "") -> list[str]:
    names = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
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


def test_lazy_command_table_names_every_command() -> None:
    """Every module's commands are in COMMANDS, under the module that defines them."""
    modules = sorted(set(COMMANDS.values()))
    on_disk = {p.stem for p in (ROOT / "publisher" / "cli").glob("*.py") if not p.stem.startswith("_")}
    assert on_disk == set(modules), "a command module missing from COMMANDS"
    for module in modules:
        importlib.import_module(f"publisher.cli.{module}")
    assert sorted(cli.commands) == sorted(COMMANDS)
    for name, module in COMMANDS.items():
        assert cli.commands[name].callback.__module__ in (  # type: ignore[union-attr]
            f"publisher.cli.{module}", "publisher.cli._common"
        ), name



def test_each_listed_summary_is_its_commands_first_sentence() -> None:
    """The summaries `publisher --help` lists without importing are the commands' own."""
    for module in sorted(set(COMMANDS.values())):
        importlib.import_module(f"publisher.cli.{module}")
    assert sorted(SUMMARIES) == sorted(COMMANDS)
    for name, summary in SUMMARIES.items():
        command = cli.commands[name]
        assert not command.hidden, name
        assert click.Command(name, help=summary).get_short_help_str(10**6) == command.get_short_help_str(10**6), name


def test_the_command_list_imports_no_command_and_reads_as_if_it_had() -> None:
    """`publisher --help` lists every command from the table, cut as click cuts each command's help."""

    def listing(first: str) -> list[str]:
        probe = (
            f"import importlib, sys\n{first}\nfrom publisher.cli import cli\n"
            "cli.main(['--help'], prog_name='publisher', standalone_mode=False)\n"
            "print(sorted(m for m in sys.modules if m.startswith('publisher.cli.') and m != 'publisher.cli._common'))\n"
        )
        env = {"PATH": "/usr/bin:/bin", "COLUMNS": "80"}
        return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                              env=env).stdout.splitlines()

    *lazy, imported = listing("")
    assert imported == "[]", lazy
    modules = sorted(set(COMMANDS.values()))
    *loaded, imported = listing(f"for m in {modules!r}: importlib.import_module('publisher.cli.' + m)")
    assert imported == str([f"publisher.cli.{m}" for m in modules])
    assert len(lazy) > len(COMMANDS) and lazy == loaded

HEAVY = ("premailer", "jinja2", "alembic", "httpx", "email_validator", "markdown_it", "publisher.mail.newsletter")


@pytest.mark.parametrize("args", [["--version"], ["status"]], ids=["version", "status"])
def test_quick_commands_import_no_renderer(tmp_path: Path, args: list[str]) -> None:
    """`--version` and `status` start without the renderer, the providers or alembic."""
    (tmp_path / "config.toml").write_text(
        '[publication]\ntitle = "T"\nurl = "https://example.org/"\npostal_address = "1 Street"\n'
        '[newsletter]\nfrom = "T <t@example.org>"\n',
        encoding="utf-8",
    )
    env = {"PATH": "/usr/bin:/bin", "PUBLISHER_SECRET": "s" * 32}
    # The first opening creates the database (alembic's work); the probe is of the next.
    first = subprocess.run([sys.executable, "-m", "publisher", "status"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stdout + first.stderr
    probe = (
        "import sys\nfrom publisher.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *args], cwd=tmp_path, capture_output=True, text=True, check=True, env=env,
    )
    assert "error" not in done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "[]", done.stdout + done.stderr
