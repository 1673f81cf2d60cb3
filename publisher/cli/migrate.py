"""`publisher migrate FROM PATH`: another service's export moved in (articles, redirects, readers)."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from rich.console import Console
from rich.markup import escape

from publisher.cli._common import cli, get_config, reports_errors

FROM = ("substack", "ghost", "wordpress", "buttondown", "mailchimp", "listmonk", "publisher")


def _report(out: Console, result: object, *, dry_run: bool) -> None:
    from publisher.services.migration import Plan

    assert isinstance(result, Plan)
    would = "would be " if dry_run else ""
    articles = result.records
    out.print(
        f"articles: {articles} read: {result.count('created')} {would}created, 0 updated, "
        f"{result.count('unchanged')} unchanged (moved in before), 0 skipped, {result.count('refused')} refused"
    )
    for step in result.articles:
        if step.action == "created" and step.notes:
            for note in step.notes:
                out.print(f"  note: {escape(step.detail)}: {escape(note)}")
    for record, reason in result.refused:
        out.print(f"  refused {escape(record)}: {escape(reason)}")
    for step in result.articles:
        if step.action == "refused":
            out.print(f"  refused {escape(step.key)}: {escape(step.detail)}")
    counts = result.redirects
    out.print(
        f"redirects: {counts.created} {would}created, {counts.unchanged} unchanged, "
        f"{counts.skipped} skipped (the old address is the new one, or a draft)"
    )
    out.print(f"pictures: {result.images} {'to fetch' if dry_run else 'fetched into the media folder'}")
    readers = result.readers
    if readers is not None:
        refused = list(getattr(readers, "refused", []))
        out.print(
            f"readers: {readers.created} {would}created, {readers.updated} updated, {readers.unchanged} unchanged, "
            f"{readers.skipped} skipped, {len(refused)} refused"
        )
        for record, reason in refused[:50]:
            out.print(f"  refused {escape(str(record))}: {escape(str(reason))}")
        if len(refused) > 50:
            out.print(f"  ... and {len(refused) - 50} more refused")
    for note in result.notes:
        out.print(f"note: {escape(note)}")


@cli.command("migrate")
@click.argument("source", metavar="FROM", type=click.Choice(FROM))
@click.argument("path", type=click.Path(exists=True))
@click.option("--dry-run", is_flag=True, help="Say what would be created, skipped and refused; write nothing.")
@click.option(
    "--site", metavar="URL", default="",
    help="The publication's old address, for links and pictures the export gives as paths.",
)
@reports_errors
@click.pass_context
def migrate_command(ctx: click.Context, source: str, path: str, dry_run: bool, site: str) -> None:
    """Move in from another service's export (zip, folder or file): articles, redirects, readers.

    Running it twice changes nothing; a run cut off resumes where it stopped.
    """
    if source == "publisher":  # our own export (`publisher export`), read back whole
        from pathlib import Path

        from publisher.cli.export import move_in

        move_in(ctx, Path(path), dry_run=dry_run)
        return
    config = get_config(ctx)
    from publisher.services import migration
    from publisher.store import open_store

    db = open_store(config.store_url)
    files = migration.open_export(path)
    planned = migration.plan(config, db, source, files, site=site)
    out = Console(highlight=False, soft_wrap=True)
    if dry_run:
        out.print(f"dry run: nothing was written. From {escape(path)} ({source}):")
        _report(out, planned, dry_run=True)
        return
    done = migration.apply(config, db, planned, now=datetime.now(UTC))
    out.print(f"moved in from {escape(path)} ({source}):")
    _report(out, done, dry_run=False)
    out.print("Check the articles in content/, then run `publisher build`.")
