"""`publisher status`: what became of each issue's messages.

The listing of every issue reads a SQLite store with the standard library alone
(store/glance.py); anything else opens the store, and so imports SQLAlchemy, only then.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from publisher.cli._common import cli, get_config, reports_errors, table_console

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from publisher.config import Config
    from publisher.models import IssueStatus
    from publisher.services import stats as service

__all__ = ["UNCERTAIN_NOTE", "status"]

UNCERTAIN_NOTE = (
    "{n} message(s) were in flight when a sender stopped, or got no answer from the provider: "
    "they go out again and may reach their readers twice (`publisher status` counts them as "
    "uncertain)."
)


@cli.command()
@click.argument("issue", required=False)
@click.option(
    "--failed", "show_failed", is_flag=True,
    help="List each failed or retrying recipient of ISSUE with the provider's reason.",
)
@click.pass_context
@reports_errors
def status(ctx: click.Context, issue: str | None, show_failed: bool) -> None:
    """Show what became of each issue's messages (or of ISSUE: an id or a slug)."""
    if show_failed and issue is None:
        raise click.UsageError("--failed needs an ISSUE (an id or a slug); `publisher status` lists them")
    config = get_config(ctx)
    if issue is None:
        from publisher.store.glance import hooks_failing, issue_lines

        glanced = issue_lines(config.store_url)
        if glanced is not None:
            _table(glanced)
            _providers(config, None)
            _complaint_rate(config.store_url, None)
            if hooks_failing(config.store_url) is not False:
                _failing_hooks(config)
            return
    from publisher.services import stats as service
    from publisher.store import open_store

    db = open_store(config.store_url)
    if issue is None:
        _table(service.issue_status(db, None))
        _providers(config, db)
        _complaint_rate(config.store_url, db)
        _failing_hooks(config)
        return
    if show_failed:
        assert issue is not None
        _failed_list(service.issue_failures(db, issue, rows=True))
        return
    lines = service.issue_status(db, issue)
    _table(lines)
    (after,) = service.issues_counts(db, lines[:1])
    click.echo(
        f"accepted by the provider {after.sent}; bounced {after.bounced}, complained {after.complained}, "
        f"unsubscribed from this issue's message {after.unsubscribed}"
    )
    from publisher.services import complaints

    click.echo(f"complaint rate {complaints.issue_complaint_rate(db, lines[0].issue_id).in_words()}")
    from publisher.services import subject_tests

    tested = subject_tests.report(db, lines[0].issue_id)
    if tested is not None:
        for line in subject_tests.report_lines(tested, config.tz):
            click.echo(line)
    _complaint_rate(config.store_url, db)
    if issue is not None:
        failures = service.issue_failures(db, issue)
        if failures.reasons:
            _failure_summary(failures)
            click.echo(f"`publisher status {issue} --failed` lists each recipient with the reason")


def _table(lines: Sequence[IssueStatus]) -> None:
    if not lines:
        click.echo("nothing sent yet: `publisher send SLUG` sends an article")
        return
    from rich.table import Table

    table = Table("id")
    table.add_column("issue", overflow="fold")
    for name in ("status", "queued", "sending", "sent", "retrying", "failed", "skipped", "uncertain"):
        table.add_column(name, justify="left" if name == "status" else "right", no_wrap=True)
    for line in lines:
        table.add_row(
            str(line.issue_id), line.slug or line.key, line.status, str(line.queued),
            str(line.sending), str(line.sent), str(line.retrying), str(line.failed),
            str(line.skipped), str(line.uncertain),
        )
    table_console().print(table)
    uncertain = sum(line.uncertain for line in lines)
    if uncertain:
        click.echo(UNCERTAIN_NOTE.format(n=uncertain))


def _providers(config: Config, db: Engine | None) -> None:
    """With a provider pool: which provider is failing, and what the send does about it."""
    if config["delivery.provider"] != "pool":
        return
    from datetime import UTC, datetime

    from publisher.services.providers import pool_status
    from publisher.store import open_store

    for line in pool_status(config, db if db is not None else open_store(config.store_url), now=datetime.now(UTC)):
        click.echo(line)


def _complaint_rate(store_url: str, db: Engine | None) -> None:
    """The complaint rate over the last 30 days, and what it means for the next send."""
    from datetime import UTC, datetime

    from publisher.services import complaints

    now = datetime.now(UTC)
    figures = None
    if db is None:
        from publisher.store.glance import complaint_figures

        figures = complaint_figures(store_url, since=now - complaints.WINDOW, until=now)
    if figures is not None:
        accepted, complained = figures
        rate = complaints.ComplaintRate(complained, accepted, f"the last {complaints.WINDOW.days} days")
    else:
        from publisher.store import open_store

        rate = complaints.complaint_rate(db if db is not None else open_store(store_url), now=now)
    if not rate.accepted:
        return
    click.echo(f"complaint rate {rate.in_words()}")
    if rate.level == "stop":
        click.echo("new sends are stopped: `publisher send SLUG --despite-complaints` sends anyway, and is recorded")


def _failing_hooks(config: Config) -> None:
    """Webhook endpoints whose messages fail: the last error, failures in a row, since when."""
    from publisher.services import access, clock
    from publisher.store import open_store

    for trouble in access.failing_endpoints(open_store(config.store_url)):
        when = f"next try {clock.local_time(trouble.next_try, config.tz)}" if trouble.next_try else "given up"
        click.echo(
            f"webhook endpoint {trouble.endpoint_id} ({trouble.url}) failing since "
            f"{clock.local_time(trouble.since, config.tz)}: {trouble.failures} failed attempt(s) in a row, {when}; "
            f"last error: {trouble.last_error}"
        )


def _failure_summary(failures: service.IssueFailures) -> None:
    line = failures.status
    click.echo(f"{line.failed} failed, {line.retrying} retrying; the most common reasons:")
    for reason, count in failures.reasons:
        click.echo(f"  {count} x {reason}")


def _failed_list(failures: service.IssueFailures) -> None:
    """One line per recipient, never cut: the reasons are what the reader came for."""
    if not failures.rows:
        click.echo(f"issue {failures.status.issue_id}: no failed or retrying recipients")
        return
    _failure_summary(failures)
    for row in failures.rows:
        when = f", next try {row.next_try:%Y-%m-%d %H:%M} UTC" if row.next_try is not None else ""
        tries = f"{row.attempts} attempt{'s' if row.attempts != 1 else ''}"
        click.echo(f"{row.email}\t{row.state} ({tries}{when})\t{row.reason or 'no reason recorded'}")
