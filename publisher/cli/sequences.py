"""`publisher sequences list | show NAME | run`: welcome and drip sequences, and who is at which step."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import click
from sqlalchemy import Engine

from publisher.cli._common import cli, get_config, reports_errors
from publisher.services import clock
from publisher.services import sequences as service
from publisher.store import open_store


@contextmanager
def _engine(ctx: click.Context) -> Iterator[Engine]:
    engine = open_store(get_config(ctx).store_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _when(moment: datetime | None, zone: ZoneInfo) -> str:
    return "-" if moment is None else clock.local_time(moment, zone)


@cli.group("sequences")
def sequences_group() -> None:
    """Welcome and drip sequences (one folder each under `sequences.folder`)."""


@sequences_group.command("list")
@reports_errors
@click.pass_context
def list_command(ctx: click.Context) -> None:
    """Each sequence: what starts it, its steps and how many readers are in it."""
    config = get_config(ctx)
    with _engine(ctx) as engine:
        found = service.overview(config, engine)
    if not found:
        folder = config.path_of("sequences.folder")
        click.echo(f"no sequences yet: a folder in {folder} with a step file (title, delay) starts one")
        return
    for view in found:
        steps = ", ".join(f"{s.name} ({s.delay})" for s in view.steps) or "no steps"
        among = f" in the segment {view.segment!r}" if view.segment else ""
        click.echo(f"{view.name}: starts when a reader{among} {view.trigger_text}; {view.readers} reader(s); "
                   f"steps: {steps}")
        if view.held:
            click.secho(f"  held: {view.held}", fg="yellow")


@sequences_group.command("show")
@click.argument("name")
@click.option("--readers", "limit", type=click.IntRange(0, 100_000), default=20, show_default=True,
              help="How many of the newest readers to list with their step.")
@reports_errors
@click.pass_context
def show_command(ctx: click.Context, name: str, limit: int) -> None:
    """One sequence: its steps, who is at which step, and its newest readers."""
    config = get_config(ctx)
    with _engine(ctx) as engine:
        (view,) = service.overview(config, engine, name)
        readers = service.readers(config, engine, name, limit=limit) if limit else []
    among = f" in the segment {view.segment!r}" if view.segment else ""
    click.echo(f"{view.name}: starts when a reader{among} {view.trigger_text}")
    if view.held:
        click.secho(f"  held: {view.held}", fg="yellow")
    click.echo(f"  not sent a step yet: {view.waiting}")
    for step in view.steps:
        click.echo(f"  {step.delay:>8}  {step.name:20} {step.at_step:6} at this step   {step.title}  ({step.source})")
    if view.elsewhere:
        click.echo(f"  at a step since removed: {view.elsewhere}")
    click.echo(f"  taken out (left the list): {view.stopped}")
    for reader in readers:
        at = reader.last_step or "(none yet)"
        state = "" if reader.state == "active" else f" [{reader.state}]"
        next_at, since = _when(reader.next_at, config.tz), _when(reader.started_at, config.tz)
        click.echo(f"  {reader.email}: at {at}, next {next_at}, since {since}{state}")


@sequences_group.command("run")
@reports_errors
@click.pass_context
def run_command(ctx: click.Context) -> None:
    """Enrol new readers and queue due steps now (the daemon does this every minute);
    `publisher send --resume` or the daemon sends them."""
    config = get_config(ctx)
    with _engine(ctx) as engine:
        report = service.run(config, engine, now=datetime.now(UTC))
    for name in sorted(report.queued):
        click.echo(f"{name}: {report.enrolled.get(name, 0)} enrolled, {report.queued[name]} step(s) queued, "
                   f"{report.passed.get(name, 0)} passed, {report.stopped.get(name, 0)} taken out")
    for problem in report.problems:
        click.secho(f"error: {problem}", fg="red", err=True)
    if report.problems:
        raise SystemExit(1)
