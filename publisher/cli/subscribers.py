"""`publisher subscribers add | remove | list | count | import | export`."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy import Engine

from publisher.cli._common import cli, get_config, reports_errors
from publisher.errors import BuildError
from publisher.models import Subscriber, SubscriberStatus
from publisher.services import segments as segment_service
from publisher.services import sequences as sequence_service
from publisher.services import subscribers as service
from publisher.store import open_store

STATUS_CHOICE = click.Choice([status.value for status in SubscriberStatus])
PROGRESS_BYTES = 256 * 1024
"""Imports of files this size or more show a progress bar on a terminal."""


@contextmanager
def _engine(ctx: click.Context) -> Iterator[Engine]:
    engine = open_store(get_config(ctx).store_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def _status(value: str | None) -> SubscriberStatus | None:
    return SubscriberStatus(value) if value else None


@cli.group("subscribers")
def subscribers_group() -> None:
    """Add, remove, list, count, import and export subscribers."""


@subscribers_group.command("add")
@click.argument("email")
@click.option("--name", default="", help="The subscriber's name, used in greetings.")
@click.option("--tag", "tags", multiple=True, help="A segment tag; repeat for several.")
@click.option("--timezone", default=None, help='IANA zone for local-time sends, e.g. "Europe/Berlin".')
@click.option("--pending", is_flag=True, help="Add as pending (to confirm) instead of active.")
@click.option(
    "--resubscribe",
    is_flag=True,
    help="Put back an address that unsubscribed, bounced or complained (only if they asked).",
)
@reports_errors
@click.pass_context
def add_command(
    ctx: click.Context,
    email: str,
    name: str,
    tags: Sequence[str],
    timezone: str | None,
    pending: bool,
    resubscribe: bool,
) -> None:
    """Add EMAIL, or update the name, tags and zone of an existing subscriber."""
    with _engine(ctx) as engine:
        done = service.subscribe(
            engine,
            email,
            name=name,
            tags=tags,
            timezone=timezone,
            pending=pending,
            now=datetime.now(UTC),
            resubscribe=resubscribe,
        )
    verb = "added" if done.created else "updated"
    click.echo(f"{verb} {done.subscriber.email} ({done.subscriber.status.value})")


@subscribers_group.command("remove")
@click.argument("email")
@click.option(
    "--purge",
    is_flag=True,
    help="Erase the address and its history instead (a later import could add it again).",
)
@reports_errors
@click.pass_context
def remove_command(ctx: click.Context, email: str, purge: bool) -> None:
    """Unsubscribe EMAIL; the address is kept so that no import brings it back."""
    now = datetime.now(UTC)
    with _engine(ctx) as engine:
        if purge:
            click.echo(f"erased {service.erase(engine, email, now=now)}")
        else:
            click.echo(f"unsubscribed {service.unsubscribe(engine, email, now=now).email}")


def _row(subscriber: Subscriber) -> tuple[str, str, str, str, str, str]:
    since = subscriber.created_at.date().isoformat() if subscriber.created_at else ""
    return (
        subscriber.email,
        subscriber.name,
        subscriber.status.value,
        ", ".join(subscriber.tags),
        subscriber.timezone or "",
        since,
    )


@subscribers_group.command("list")
@click.option("--status", type=STATUS_CHOICE, default=None, help="Only this status.")
@click.option("--tag", default=None, help="Only subscribers with this tag.")
@reports_errors
@click.pass_context
def list_command(ctx: click.Context, status: str | None, tag: str | None) -> None:
    """List subscribers: a table on a terminal, tab-separated lines otherwise."""
    with _engine(ctx) as engine:
        found = service.iter_subscribers(engine, status=_status(status), tag=tag)
        if not _stdout_is_terminal():
            # Streamed line by line: a pipe gets any number of subscribers in flat memory.
            for subscriber in found:
                click.echo("\t".join(_row(subscriber)))
            return
        table = Table(box=None)
        for column in ("email", "name", "status", "tags", "timezone", "since"):
            # An address is never cut short; the other cells wrap rather than lose letters.
            table.add_column(column, no_wrap=column in ("email", "status", "since"), overflow="fold")
        for subscriber in found:
            table.add_row(*(escape(cell) for cell in _row(subscriber)))
        console = Console(highlight=False)
        if table.row_count:
            console.print(table)
        else:
            console.print("no subscribers match")


@subscribers_group.command("count")
@reports_errors
@click.pass_context
def count_command(ctx: click.Context) -> None:
    """Print the number of active subscribers first, then the other statuses."""
    with _engine(ctx) as engine:
        counted = service.counts(engine)
        segments = service.tags(engine)
    for status, number in counted.items():
        click.echo(f"{number} {status}")
    for segment in segments:
        if segment.active:
            click.echo(f"{segment.active} active tagged {segment.tag}")


@subscribers_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--pending", is_flag=True, help="Import as pending (to confirm) instead of active.")
@click.option("--tag", "tags", multiple=True, help="Tag everyone in the file; repeat for several.")
@click.option("--sequence", "sequence", metavar="NAME", default="",
              help='Start this sequence (trigger = "imported") for the readers the import adds as active.')
@reports_errors
@click.pass_context
def import_command(ctx: click.Context, file: Path, pending: bool, tags: Sequence[str], sequence: str) -> None:
    """Import a CSV export: Mailchimp, Substack, Buttondown, Ghost, listmonk, Wix, Kit, beehiiv, MailerLite or ours.

    Everything is imported in one transaction; rows that cannot be used are listed with
    their line number and nothing else about them is stored. With --sequence, the new
    active readers enter that sequence and get its first step from the next run; readers
    already on the list, pending or unsubscribed do not.
    """
    config = get_config(ctx) if sequence else None
    with _engine(ctx) as engine, file.open("rb") as raw, _import_progress(raw, file) as progress:
        lines = service.open_export(raw, origin=str(file))
        if config is not None:
            report = sequence_service.import_subscribers(
                config, engine, lines, now=datetime.now(UTC), origin=str(file), sequence=sequence,
                pending=pending, tags=tags, progress=progress,
            )
        else:
            report = service.import_subscribers(
                engine, lines, now=datetime.now(UTC), origin=str(file), pending=pending, tags=tags,
                progress=progress,
            )
    new = ", ".join(f"{number} {status}" for status, number in report.new_by_status.items())
    click.echo(f"{file}: read as a {report.platform} export")
    click.echo(f"rows read {report.rows_read} (imported + updated + unchanged + kept + rejected)")
    click.echo(f"imported {report.imported}" + (f" ({new})" if new else ""))
    click.echo(f"updated {report.updated}")
    click.echo(f"unchanged {report.unchanged}")
    if report.kept:
        click.echo(f"kept {report.kept} as they were (unsubscribed, bounced or complained here)")
    click.echo(f"rejected {len(report.rejected)}")
    for rejected in report.rejected:
        click.echo(str(rejected))
    if sequence:
        started = report.new_by_status.get("active", 0)
        click.echo(f"sequence {sequence}: {started} new active reader(s) enter it at the next run")


def _progress_console() -> Console:
    return Console(stderr=True)


@contextmanager
def _import_progress(raw: IO[bytes], file: Path) -> Iterator[Callable[[int], None] | None]:
    """A bar of bytes read on a terminal (stderr), for files big enough to take a while."""
    console = _progress_console()
    size = file.stat().st_size
    if not console.is_terminal or size < PROGRESS_BYTES:
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(f"importing {file.name}", total=size)

        def show(records: int) -> None:
            bar.update(task, completed=raw.tell(), description=f"importing {file.name}: {records:,} rows")

        yield show


@subscribers_group.command("export")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--status", type=STATUS_CHOICE, default=None, help="Only this status.")
@click.option("--tag", default=None, help="Only subscribers with this tag.")
@click.option("--segment", default=None, metavar="NAME", help="Only the active readers of this saved segment.")
@reports_errors
@click.pass_context
def export_command(
    ctx: click.Context, file: Path | None, status: str | None, tag: str | None, segment: str | None = None
) -> None:
    """Write subscribers as CSV to FILE, or to standard output.

    Columns: email, name, status, tags, timezone, created_at. Cells that a spreadsheet
    would run as formulas start with an apostrophe. --segment writes the active readers
    a saved segment holds now (it takes no --status or --tag).
    """
    if segment and (status or tag):
        raise click.UsageError("--segment takes no --status or --tag (a segment can hold a tag condition)")
    with _engine(ctx) as engine:
        if segment:
            segment_service.find_segment(engine, segment)  # NotFound before any file is made
        if file is None:
            if segment:
                segment_service.export_csv(engine, sys.stdout, segment, now=datetime.now(UTC))
            else:
                service.export_csv(engine, sys.stdout, status=_status(status), tag=tag)
            return
        written = _export_to_file(engine, file, _status(status), tag, segment)
    click.echo(f"exported {written} subscribers to {file}", err=True)


def _export_to_file(
    engine: Engine, file: Path, status: SubscriberStatus | None, tag: str | None, segment: str | None = None
) -> int:
    """Write beside the target and rename, so a failed export never leaves half a file."""
    folder = file.resolve().parent
    try:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed into place below
            "w", encoding="utf-8", newline="", dir=folder, prefix=f".{file.name}.", delete=False
        )
    except OSError as exc:
        raise BuildError(f"{file}: cannot write the export here: {exc}") from exc
    try:
        with handle:
            if segment:
                written = segment_service.export_csv(engine, handle, segment, now=datetime.now(UTC))
            else:
                written = service.export_csv(engine, handle, status=status, tag=tag)
        Path(handle.name).replace(file)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return written
