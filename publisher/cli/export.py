"""`publisher export [--to FILE.zip]`: everything the publication owns, in open formats, for leaving."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import click

from publisher.cli._common import cli, get_config, reports_errors

__all__ = ["export"]


def _shown(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive
        return str(path)


@cli.command()
@click.option(
    "--to", "to", type=click.Path(path_type=Path),
    help="The archive's name (FILE.zip), or a folder for it. Default: publisher-export-DATE.zip beside config.toml.",
)
@click.pass_context
@reports_errors
def export(ctx: click.Context, to: Path | None) -> None:
    """Write everything the publication owns into one zip, in open formats: the articles as
    Markdown with front matter, the pictures, every subscriber with their status and
    consent (CSV), each issue with its delivery counts (CSV), and the settings.

    Secrets are never in it; README.txt inside names the ones to carry by hand. The zip
    holds every reader's address: it is written 0600. `publisher migrate publisher FILE.zip`
    reads it back into a new publication.
    """
    from publisher.services import export as service
    from publisher.store import open_store

    config = get_config(ctx)
    db = open_store(config.store_url)
    try:
        made = service.create_export(config, db, now=datetime.now(UTC), to=to)
    finally:
        db.dispose()
    click.echo(
        f"wrote {_shown(made.path)} ({made.size:,} bytes) in {made.seconds:.1f} s: {made.articles} article(s), "
        f"{made.media} picture(s) and other files, {made.templates} template(s), {made.subscribers} subscriber(s), "
        f"{made.issues} issue(s) with {made.deliveries} copies, {made.events} reader event(s), "
        f"{made.redirects} redirect(s), settings.toml"
    )
    click.echo("secrets are not in it; carry these by hand: PUBLISHER_SECRET and the provider's key"
               + "".join(f", {item}" for item in made.left_out))
    click.echo("it holds every subscriber's address: keep it private (it is readable by you only)")


def move_in(ctx: click.Context, path: Path, *, dry_run: bool) -> None:
    """`publisher migrate publisher FILE.zip`: our own export read back (see services.export_import)."""
    from publisher.services import export_import as service
    from publisher.store import open_store

    config = get_config(ctx)
    db = open_store(config.store_url)
    try:
        if dry_run:
            result = service.plan_import(config, db, path, now=datetime.now(UTC))
        else:
            result = service.apply_import(config, db, path, now=datetime.now(UTC))
    finally:
        db.dispose()
    would = "would be " if dry_run else ""
    click.echo(f"{'dry run: nothing was written. ' if dry_run else ''}from {path} (publisher):")
    for kind in result.kinds:
        click.echo(
            f"{kind.kind}: {kind.read} read: {kind.created} {would}created, {kind.updated} {would}updated, "
            f"{kind.skipped} skipped (here already), {kind.refused} refused"
        )
        for reason in kind.reasons[:50]:
            click.echo(f"  refused {reason}")
        if len(kind.reasons) > 50:
            click.echo(f"  ... and {len(kind.reasons) - 50} more refused")
    for note in result.notes:
        click.echo(f"note: {note}")
    if not dry_run:
        click.echo("Check the articles in content/, then run `publisher check` and `publisher build`.")
