"""`publisher init [DIR]`: a new publication of the author's own, nothing of the sample's."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from publisher.cli._common import cli, reports_errors
from publisher.errors import BuildError
from publisher.services.starter import Answers, starter_files

# Option, question, whether an answer is required.
_QUESTIONS = (
    ("title", "Title of the publication", True),
    ("url", "Public address of the site (https://...)", True),
    ("author", "Author, as readers should see it", False),
    ("sender", "Newsletters come From (Name <address>)", True),
    ("postal_address", "Postal address for the newsletter footer (required to send)", False),
    ("timezone", "Time zone (IANA name, e.g. Europe/Berlin)", False),
)


def _interactive() -> bool:
    return sys.stdin.isatty()


def _local_zone() -> str:
    """The machine's IANA zone where it can be told ($TZ or /etc/localtime), else UTC."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name and "/" in name:
        return name
    try:
        target = str(Path("/etc/localtime").resolve())
    except OSError:
        return "UTC"
    marker = "/zoneinfo/"
    return target.split(marker, 1)[1] if marker in target else "UTC"


@cli.command("init")
@click.argument("folder", required=False, default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--title", default=None, help="Name of the publication.")
@click.option("--url", default=None, help="Public base URL of the site, e.g. https://notes.example.org/.")
@click.option("--author", default=None, help='Default author of articles, e.g. "Dana Reyes, LCSW".')
@click.option("--from", "sender", default=None, help='From header of newsletters, e.g. "Dana <dana@example.org>".')
@click.option("--postal-address", default=None, help="Postal address for the footer (required to send).")
@click.option("--timezone", default=None, help="IANA zone of your dates and schedules (default: this machine's).")
@reports_errors
def init_command(folder: Path, **given: str | None) -> None:
    """Start a new publication in FOLDER (default: here): config.toml and a welcome draft.

    Asks for each value not given as an option when run on a terminal. Templates are not
    copied: the defaults apply until you put an override in templates/.
    """
    if (folder / "config.toml").exists():
        raise BuildError(f"{folder / 'config.toml'} already exists: this folder holds a publication already")
    answers: dict[str, str] = {}
    missing = []
    for name, question, required in _QUESTIONS:
        value = given.get(name)
        if value is None and _interactive():
            default = _local_zone() if name == "timezone" else ("" if not required else None)
            value = click.prompt(question, default=default, show_default=bool(default))
        if value is None:
            if required:
                missing.append("--" + ("from" if name == "sender" else name.replace("_", "-")))
                continue
            value = _local_zone() if name == "timezone" else ""
        answers[name] = value.strip()
    if missing:
        raise click.UsageError(f"give {', '.join(missing)} (or run publisher init on a terminal to be asked)")
    files = starter_files(Answers(**answers), datetime.now(UTC), root=folder.resolve())
    try:
        for name, text in files.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("x", encoding="utf-8") as handle:
                handle.write(text)
    except OSError as exc:
        raise BuildError(f"cannot write in {folder}: {exc.strerror or exc}") from exc
    where = "" if folder == Path() else f"cd {folder} && "
    click.echo(f"started {answers['title']!r} in {folder}: " + ", ".join(files))
    if not answers["postal_address"]:
        click.echo("note: set [publication] postal_address before sending through a real provider")
    click.echo(f"next: {where}publisher check && publisher build")
