"""`publisher schedule`, `schedules` and `unschedule`: sends at a time the author chose."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from rich.console import Console
from rich.table import Table

from publisher import content, timing
from publisher.cli._common import cli, get_config, reports_errors
from publisher.sending import find_article, prepare_article_issue
from publisher.store import open_store, schedules

# The zone whose clock is furthest ahead (UTC+14): the first place any wall-clock hour arrives.
EARLIEST_ZONE = "Pacific/Kiritimati"


@cli.command()
@click.argument("slug")
@click.option("--at", "at", required=True, metavar='"YYYY-MM-DD HH:MM"', help="Wall-clock time of the send.")
@click.option("--tz", "tz_name", default=None, help="IANA zone of --at (default: publication.timezone).")
@click.option("--tag", default=None, help="Send only to subscribers with this tag.")
@click.option(
    "--local-time", "local", is_flag=True,
    help="Deliver at the --at hour of each subscriber's own day (their timezone; the author's for the rest).",
)
@click.pass_context
@reports_errors
def schedule(ctx: click.Context, slug: str, at: str, tz_name: str | None, tag: str | None, local: bool) -> None:
    """Schedule the newsletter of article SLUG for a time (kept across restarts)."""
    config = get_config(ctx)
    now = datetime.now(UTC)
    tz = timing.zone(tz_name) if tz_name else config.tz
    if local:
        # Start when the hour first comes anywhere on Earth; each row then waits for its
        # subscriber's own hour (see ledger.enqueue's local_hour).
        tz = timing.zone(EARLIEST_ZONE)
    run_at = timing.parse_local(at, tz)
    if run_at <= now:
        raise click.UsageError(f"{at} {tz.key} is in the past; use `publisher send {slug}` to send now")
    article = find_article(content.load_articles(config), slug, now=now)
    db = open_store(config.store_url)
    issue_id = prepare_article_issue(config, db, article, now=now, status="scheduled", tag=tag)
    if local:
        schedules.set_local_hour(db, issue_id, run_at.astimezone(tz).hour)
    zone_label = "local" if local else tz.key
    item = schedules.add(db, issue_id=issue_id, run_at=run_at, timezone=zone_label, local_time=at.strip(), now=now)
    where = "each subscriber's own" if local else f"{item.timezone}"
    click.echo(
        f"scheduled #{item.id}: {article.title!r} at {item.local_time} {where} time "
        f"(starting {item.run_at:%Y-%m-%d %H:%M} UTC). `publisher serve` sends it."
    )


@cli.command(name="schedules")
@click.option("--all", "show_all", is_flag=True, help="Also list finished, skipped and cancelled ones.")
@click.pass_context
@reports_errors
def list_schedules(ctx: click.Context, show_all: bool) -> None:
    """List scheduled sends."""
    config = get_config(ctx)
    db = open_store(config.store_url)
    items = schedules.list_schedules(db, include_finished=show_all)
    if not items:
        click.echo("no scheduled sends" if show_all else "no pending scheduled sends (--all lists past ones)")
        return
    table = Table("id", "article", "when", "zone", "UTC", "state", "detail")
    for item in items:
        table.add_row(
            str(item.id), item.slug, item.local_time, item.timezone, f"{item.run_at:%Y-%m-%d %H:%M}",
            item.state, item.detail,
        )
    Console().print(table)


@cli.command()
@click.argument("schedule_id", type=int)
@click.pass_context
@reports_errors
def unschedule(ctx: click.Context, schedule_id: int) -> None:
    """Cancel the pending scheduled send SCHEDULE_ID."""
    config = get_config(ctx)
    db = open_store(config.store_url)
    item = schedules.cancel(db, schedule_id)
    click.echo(f"cancelled #{item.id} ({item.slug} at {item.local_time} {item.timezone})")
