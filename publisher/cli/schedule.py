"""`publisher schedule`, `schedules` and `unschedule`: sends at a time the author chose."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from rich.table import Table

from publisher.cli._common import cli, get_config, reports_errors, table_console
from publisher.services import complaints, scheduling
from publisher.store import open_store


@cli.command()
@click.argument("slug")
@click.option(
    "--at", "at", required=True, metavar='"YYYY-MM-DD HH:MM"',
    help='Wall-clock time of the send: "2026-12-01 09:00", "2026-12-01T09:00", or "09:00" for the next 09:00.',
)
@click.option("--tz", "tz_name", default=None, help="IANA zone of --at (default: publication.timezone).")
@click.option("--tag", default=None, help="Send only to subscribers with this tag.")
@click.option(
    "--segment", default=None, metavar="NAME",
    help="Send only to the readers of this saved segment (as it holds them at that time).",
)
@click.option(
    "--local-time", "local", is_flag=True,
    help="Deliver at --at (date and time) on each subscriber's own clock (their timezone; the author's for the rest).",
)
@click.option(
    "--despite-complaints", is_flag=True,
    help="Start it even if the complaint rate over 30 days is at 0.3% or more then (recorded now).",
)
@click.pass_context
@reports_errors
def schedule(
    ctx: click.Context, slug: str, at: str, tz_name: str | None, tag: str | None, local: bool,
    despite_complaints: bool, segment: str | None = None,
) -> None:
    """Schedule the newsletter of article SLUG for a time (kept across restarts).

    Any article may be scheduled, a draft too: at that minute it goes on the site (dated
    then) and to the list, as it is then. Scheduling an article again replaces its pending
    schedule; `publisher unschedule ID` cancels it.
    """
    config = get_config(ctx)
    db = open_store(config.store_url)
    done = scheduling.schedule_send(
        config, db, slug, at=at, now=datetime.now(UTC), tz_name=tz_name, tag=tag, local_time=local,
        despite_complaints=despite_complaints, who="publisher schedule --despite-complaints", segment=segment,
    )
    item = done.schedule
    where = "each subscriber's own" if local else f"{item.timezone}"
    for old in done.replaced:
        click.echo(f"replaced schedule #{old.id} (was {old.local_time} {old.timezone})")
    click.echo(
        f"scheduled #{item.id}: {done.article.title!r} at {item.local_time} {where} time "
        f"(starting {item.run_at:%Y-%m-%d %H:%M} UTC). `publisher serve` sends it"
        + (", and puts it on the site then." if item.publishes else ".")
        + (f" It goes to the readers the segment {segment!r} holds then." if segment else "")
    )
    rate = complaints.complaint_rate(db, now=datetime.now(UTC))
    if rate.level == "stop" and not despite_complaints:
        click.secho(
            f"warning: complaint rate {rate.in_words()}; unless it falls by then, the send is held at its start "
            "(schedule it again with --despite-complaints to send anyway)", fg="yellow", err=True,
        )


@cli.command(name="schedules")
@click.option("--all", "show_all", is_flag=True, help="Also list finished, skipped and cancelled ones.")
@click.pass_context
@reports_errors
def list_schedules(ctx: click.Context, show_all: bool) -> None:
    """List scheduled sends."""
    config = get_config(ctx)
    db = open_store(config.store_url)
    items = scheduling.list_schedules(db, include_finished=show_all)
    if not items:
        click.echo("no scheduled sends" if show_all else "no pending scheduled sends (--all lists past ones)")
        return
    table = Table("id", "article", "when", "zone", "UTC", "state", "detail")
    for item in items:
        table.add_row(
            str(item.id), item.slug, item.local_time, item.timezone, f"{item.run_at:%Y-%m-%d %H:%M}",
            item.state, item.detail,
        )
    table_console().print(table)


@cli.command()
@click.argument("schedule_id", type=int)
@click.pass_context
@reports_errors
def unschedule(ctx: click.Context, schedule_id: int) -> None:
    """Cancel the pending scheduled send SCHEDULE_ID."""
    config = get_config(ctx)
    db = open_store(config.store_url)
    item = scheduling.cancel_schedule(db, schedule_id)
    click.echo(f"cancelled #{item.id} ({item.slug} at {item.local_time} {item.timezone})")
