"""`publisher init [DIR]`: a new publication of the author's own, or new answers for one.

On a terminal each question is asked in turn and its answer checked at once: a wrong
answer is told (without naming any option) and asked again. Options give answers
without asking, with the same checks; their errors name the option. Run again on a
publication, init offers today's answers as defaults and changes only the keys it asks
about in config.toml, keeping its comments and everything else.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from publisher.cli._common import cli, reports_errors
from publisher.errors import BuildError, ConfigError
from publisher.services.starter import (
    QUESTIONS,
    Answers,
    Question,
    check_answer,
    current_answers,
    host_resolves,
    starter_files,
    updated_config,
    write_config,
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


def _warn_unresolved(url: str) -> str | None:
    problem = host_resolves(url)
    if problem is None:
        return None
    return f"{problem}: fine if its DNS record is not published yet; readers' links will point there"


def _ask(question: Question, default: str, real_provider: bool) -> str:
    """Ask until the answer passes its check; the site's address is looked up once it does.
    A completed answer (a city's zone, https:// added) is shown as it will be kept."""
    while True:
        raw = click.prompt(question.prompt, default=default, show_default=bool(default))
        try:
            value = check_answer(question.name, raw, real_provider=real_provider)
        except ConfigError as exc:
            click.secho(f"  {str(exc)[:1].upper()}{str(exc)[1:]}.", fg="yellow", err=True)
            continue
        if value != raw.strip():
            click.echo(f"  Taken as {value}")
        if question.name == "url" and value != default:
            warning = _warn_unresolved(value)
            if warning is not None:
                click.secho(f"  Note: {warning}.", fg="yellow", err=True)
                if not click.confirm("  Keep this address?", default=True):
                    continue
        if question.name == "postal_address" and not value:
            click.echo("  Left empty: test sends work; set it before a real provider sends (the law asks for it).")
        return value


@cli.command("init")
@click.argument("folder", required=False, default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--title", default=None, help="Name of the publication.")
@click.option("--url", default=None, help="Public address of the site, e.g. notes.example.org (https:// is added).")
@click.option("--author", default=None, help='Default author of articles, e.g. "Dana Reyes, LCSW".')
@click.option("--from", "sender", default=None, help='From header of newsletters, e.g. "Dana <dana@example.org>".')
@click.option("--postal-address", default=None, help="Postal address for the footer (required to send).")
@click.option("--timezone", default=None, help="Time zone, a city or an IANA name (default: this machine's).")
@reports_errors
def init_command(folder: Path, **given: str | None) -> None:
    """Start a new publication in FOLDER (default: here): config.toml and a welcome draft.

    Asks for each value not given as an option when run on a terminal. Run again on a
    publication to change these answers: only their keys in config.toml change. Templates
    are not copied: the defaults apply until you put an override in templates/.
    """
    config_file = folder / "config.toml"
    existing: str | None = None
    if config_file.exists():
        try:
            existing = config_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BuildError(f"{config_file} cannot be read: {exc}") from exc
    current, real_provider = current_answers(existing, origin=str(config_file)) if existing is not None else ({}, False)
    answers: dict[str, str] = {}
    problems: list[str] = []
    warnings: list[str] = []
    for question in QUESTIONS:
        value = given.get(question.name)
        if value is None:
            continue
        try:
            answers[question.name] = check_answer(question.name, value, real_provider=real_provider)
        except ConfigError as exc:
            problems.append(f"{question.flag}: {exc}")
            continue
        if question.name == "url":
            warning = _warn_unresolved(answers["url"])
            if warning is not None:
                warnings.append(f"{question.flag}: {warning}")
    if problems:
        raise ConfigError("\n".join(problems), problems=problems)
    for warning in warnings:
        click.secho(f"note: {warning}", fg="yellow", err=True)
    interactive = _interactive()
    missing = []
    for question in QUESTIONS:
        if question.name in answers:
            continue
        default = current.get(question.name)
        if interactive:
            if default is None:
                default = _local_zone() if question.name == "timezone" else ""
            answers[question.name] = _ask(question, default, real_provider)
        elif existing is None:
            if question.required:
                missing.append(question.flag)
            else:
                answers[question.name] = _local_zone() if question.name == "timezone" else ""
    if missing:
        raise click.UsageError(f"give {', '.join(missing)} (or run publisher init on a terminal to be asked)")
    if existing is not None:
        _update(folder, config_file, existing, answers, current)
        return
    _start(folder, answers)


def _update(folder: Path, config_file: Path, existing: str, answers: dict[str, str], current: dict[str, str]) -> None:
    changed = {name: value for name, value in answers.items() if current.get(name) != value}
    if not changed:
        click.echo(f"{config_file}: nothing to change")
        return
    text = updated_config(existing, changed, root=folder.resolve(), origin=str(config_file))
    try:
        write_config(config_file, text)
    except OSError as exc:
        raise BuildError(f"cannot write {config_file}: {exc.strerror or exc}; it is left as it was") from exc
    keys = ", ".join(q.key for q in QUESTIONS if q.name in changed)
    click.echo(f"updated {config_file}: {keys} (the rest of the file is as it was); "
               "a running publisher serve takes it up by itself")


def _start(folder: Path, answers: dict[str, str]) -> None:
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
        click.echo("note: no postal address yet: give one (publisher init again) before a real provider sends")
    click.echo(f"next: {where}publisher check && publisher build")
