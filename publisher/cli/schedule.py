"""`publisher schedule`, `schedules` and `unschedule`: sends at a time the author chose."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click
from rich.table import Table

from publisher.cli._common import cli, get_config, reports_errors, table_console
from publisher.config import Config
from publisher.errors import InvalidRequest
from publisher.services import clock, complaints, scheduling, starter, subject_tests
from publisher.store import open_store


@cli.command()
@click.argument("slug")
@click.option(
    "--at", "at", required=True, metavar='"YYYY-MM-DD HH:MM"',
    help='Wall-clock time of the send: "2026-12-01 09:00", "2026-12-01T09:00", or "09:00" for the next 09:00.',
)
@click.option(
    "--tz", "tz_name", default=None, metavar="ZONE",
    help='Zone of --at: a city ("New York") or a zone\'s name ("Europe/Paris"); default: publication.timezone.',
)
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
@click.option(
    "--again", is_flag=True,
    help="Schedule an article moved in from a service that mailed it there already (refused otherwise).",
)
@click.option(
    "--subject", "--subject-test", "subjects", multiple=True, metavar="SUBJECT",
    help="A subject to test (give two to four; the first is kept on a tie). Needs analytics on.",
)
@click.option("--sample", type=int, default=None, help="Percent of readers who try the subjects (default 20).")
@click.option("--wait", default=None, metavar="DURATION",
              help="How long after the start the winner is chosen: 30m, 4h (default), 1d.")
@click.option("--decide-at", "decide_at", default=None, metavar='"YYYY-MM-DD HH:MM"',
              help="Choose the winner at this time instead (in --tz, or the publication's zone).")
@click.option("--by", type=click.Choice(["clicks", "opens"]), default=None,
              help="Choose the winner by clicks (default) or opens.")
@click.pass_context
@reports_errors
def schedule(
    ctx: click.Context, slug: str, at: str, tz_name: str | None, tag: str | None, local: bool,
    despite_complaints: bool, segment: str | None = None, subjects: tuple[str, ...] = (),
    sample: int | None = None, wait: str | None = None, decide_at: str | None = None, by: str | None = None,
    again: bool = False,
) -> None:
    """Schedule the newsletter of article SLUG for a time (kept across restarts).

    Any article may be scheduled, a draft too: at that minute it goes on the site (dated
    then) and to the list, as it is then. Scheduling an article again replaces its pending
    schedule; `publisher unschedule ID` cancels it.

    With --subject given two to four times (or `subjects:` in the article's front matter),
    it starts as a subject test: a sample (--sample percent, split evenly) gets the
    subjects, and after --wait from the start (or at --decide-at) the subject with the most
    clicks (--by opens: opens) goes to the rest.
    """
    config = get_config(ctx)
    # A city ("New York", "london") as the desk, Settings and `publisher init` read one; a
    # name that fits several zones or none is told with the zones that fit or an example.
    tz_name = starter.zone_for(tz_name) if tz_name else None
    now = datetime.now(UTC)
    plan = _test_plan(config, subjects, sample, wait, decide_at, by, tz_name, now)
    db = open_store(config.store_url)
    done = scheduling.schedule_send(
        config, db, slug, at=at, now=now, tz_name=tz_name, tag=tag, local_time=local,
        despite_complaints=despite_complaints, who="publisher schedule --despite-complaints", segment=segment,
        subject_test=plan, again=again,
    )
    item = done.schedule
    where = "each subscriber's own" if local else clock.zone_label(item.timezone)
    for old in done.replaced:
        click.echo(f"replaced schedule #{old.id} (was {old.local_time} {clock.zone_label(old.timezone)})")
    # On the publication's clock as well when the time was given on another one.
    starts = "" if item.timezone == config.tz.key else f" (starting {clock.local_time(item.run_at, config.tz)})"
    click.echo(
        f"scheduled #{item.id}: {done.article.title!r} at {item.local_time} {where} time{starts}. "
        "`publisher serve` sends it"
        + (", and puts it on the site then." if item.publishes else ".")
        + (f" It goes to the readers the segment {segment!r} holds then." if segment else "")
    )
    if plan is not None:
        when = (
            f"at {clock.local_time(plan.at, config.tz)}" if plan.at is not None
            else f"{_span(plan.wait)} after it starts"
        )
        click.echo(
            f"subject test: {len(plan.subjects)} subjects to {plan.sample_percent}% of readers, the winner by "
            f"{plan.metric} {when} goes to the rest"
        )
    rate = complaints.complaint_rate(db, now=datetime.now(UTC))
    if rate.level == "stop" and not despite_complaints:
        click.secho(
            f"warning: complaint rate {rate.in_words()}; unless it falls by then, the send is held at its start "
            "(schedule it again with --despite-complaints to send anyway)", fg="yellow", err=True,
        )


def _test_plan(
    config: Config, subjects: tuple[str, ...], sample: int | None, wait: str | None, decide_at: str | None,
    by: str | None, tz_name: str | None, now: datetime,
) -> subject_tests.TestPlan | None:
    if not subjects:
        if any(value is not None for value in (sample, wait, decide_at, by)):
            raise click.UsageError("--sample, --wait, --decide-at and --by go with --subject (give two to four)")
        return None
    if wait is not None and decide_at is not None:
        raise click.UsageError("give --wait or --decide-at, not both")
    try:
        at = None if decide_at is None else subject_tests.decision_time(config, decide_at, tz_name)
    except InvalidRequest as exc:
        raise click.UsageError(f"--decide-at: {exc}") from exc
    try:
        return subject_tests.parse_plan(
            subjects, sample_percent=subject_tests.DEFAULT_SAMPLE if sample is None else sample,
            metric=by or "clicks", wait=wait or subject_tests.DEFAULT_WAIT, at=at, now=now,
        )
    except InvalidRequest as exc:
        flag = next((f for f, word in (("--sample", "sample"), ("--wait", "wait"), ("--decide-at", "decision time"))
                     if word in str(exc)), "--subject")
        raise click.UsageError(f"{flag}: {exc}") from exc


def _span(wait: timedelta) -> str:
    seconds = int(wait.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{seconds // 60}m"


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
    click.echo(f"cancelled #{item.id} ({item.slug} at {item.local_time} {clock.zone_label(item.timezone)})")
