"""`publisher build`, `publisher check` and `publisher new TITLE`.

Their lines are printed with click (bold and colour on a terminal, plain text otherwise);
rich, a tenth of a second to load, is loaded only for the status line a terminal shows.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from publisher.cli._common import cli, get_config, reports_errors
from publisher.services import site as site_service

if TYPE_CHECKING:
    from rich.console import Console

_LISTED = 12
"""Written files listed by name before the rest are only counted (all with --verbose)."""


def _console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _print_names(verb: str, names: Sequence[str], *, verbose: bool) -> None:
    shown = names if verbose else names[:_LISTED]
    for name in shown:
        click.echo(f"  {verb} {name}")
    if len(names) > len(shown):
        click.echo(f"  … and {len(names) - len(shown)} more (--verbose lists them all)")


def _print_warnings(warnings: Sequence[str]) -> None:
    for warning in warnings:
        click.echo(click.style("warning:", fg="yellow") + f" {warning}", err=True)


@cli.command("build")
@click.option("-v", "--verbose", is_flag=True, help="List every file written.")
@reports_errors
@click.pass_context
def build_command(ctx: click.Context, verbose: bool) -> None:
    """Write feeds, archive pages and newsletter previews to the output folder."""
    config = get_config(ctx)
    started = time.perf_counter()
    now = datetime.now(UTC)
    site_service.output_folder(config)  # a refused output says so before the progress line
    # Only the articles whose files changed are parsed, and only the pages showing them rendered.
    with _build_progress() as progress, site_service.no_cycle_collection():
        built = site_service.build_site(config, now, progress=progress)
    report = built.report
    elapsed = time.perf_counter() - started
    output = _shown(built.output)
    _print_names("wrote", report.written, verbose=verbose)
    _print_names("removed", report.removed, verbose=verbose)
    click.echo(
        click.style(output, bold=True) + f": {len(report.written)} written, "
        f"{len(report.unchanged)} unchanged, {len(report.removed)} removed "
        f"({built.public} articles, {elapsed:.2f} s)"
    )
    _print_warnings(report.warnings)


def _progress_console() -> Console | None:
    """The terminal the status line is drawn on; None when stderr is not one (rich is
    not even loaded then)."""
    if not sys.stderr.isatty():
        return None
    return _console(stderr=True)


@contextlib.contextmanager
def _build_progress() -> Iterator[site_service.Progress | None]:
    """On a terminal, a line that follows the build's stages (gone once it is done)."""
    console = _progress_console()
    if console is None or not console.is_terminal:
        yield None
        return
    with console.status("reading articles", spinner="dots") as status:

        def show(stage: str, done: int, total: int) -> None:
            status.update(f"{stage} {done + 1:,}/{total:,}" if total and stage != "writing" else stage)

        yield show


@cli.command("check")
@reports_errors
@click.pass_context
def check_command(ctx: click.Context) -> None:
    """Validate config, articles and templates; render what a build would, write nothing."""
    config = get_config(ctx)
    with site_service.no_cycle_collection():
        found = site_service.check_site(config, datetime.now(UTC))
    if found.errors:
        _fail(found.errors)
    report = found.report
    assert report is not None  # a check without errors compared the build with the output
    click.echo(
        click.style("ok", fg="green") + f": config and {found.articles} articles ({found.public} public, "
        f"{found.drafts} draft{'' if found.drafts == 1 else 's'}, {found.scheduled} scheduled); "
        f"{found.files} files render; a build would write {len(report.written)}, "
        f"leave {len(report.unchanged)} unchanged and remove {len(report.removed)}"
    )
    _print_warnings(found.warnings)


def _fail(errors: Sequence[str]) -> None:
    for error in errors:
        click.echo(click.style("error:", fg="red") + f" {error}", err=True)
    raise SystemExit(1)


@cli.command("new")
@click.argument("title")
@reports_errors
@click.pass_context
def new_command(ctx: click.Context, title: str) -> None:
    """Start a draft article in the content folder."""
    config = get_config(ctx)
    path = site_service.start_draft(config, title, datetime.now(UTC), shown=_shown)
    click.echo(f"Started {_shown(path)} (a draft: remove `draft: true` when it is ready)")
