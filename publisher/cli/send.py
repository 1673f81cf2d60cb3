"""`publisher send` and `publisher status`: an issue out to the list, and what became of it."""

from __future__ import annotations

import contextlib
import getpass
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from types import FrameType
from zoneinfo import ZoneInfo

import click
import sqlalchemy as sa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from publisher.cli._common import cli, get_config, reports_errors
from publisher.cli.status import UNCERTAIN_NOTE
from publisher.config import Config
from publisher.errors import InvalidRequest
from publisher.services import articles as article_service
from publisher.services import clock, complaints, delivering, subject_tests
from publisher.services import issues as service
from publisher.services.delivering import DeliveryReport
from publisher.services.providers import Provider, make_provider
from publisher.store import open_store


def _now() -> datetime:
    return datetime.now(UTC)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM: stop claiming, finish in flight. A second SIGINT quits at once."""

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        click.echo(
            "\nstopping: finishing the messages in flight, the rest stays queued "
            "(`publisher send --resume` continues)",
            err=True,
        )

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _refusals(say: Callable[[str], None]) -> Callable[[DeliveryReport], None]:
    """Say once per refusal that the provider refused a whole call and how long the send waits."""
    told = [""]

    def tell(report: DeliveryReport) -> None:
        if report.refusal and report.refusal != told[0]:
            say(f"the provider refused the call for now: {report.refusal}; "
                f"no new call for {report.hold:.0f} s")
        told[0] = report.refusal

    return tell


@contextlib.contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[DeliveryReport], None]]:
    """A rich bar on a terminal, a plain line every few seconds otherwise."""
    console = Console(stderr=True)
    if console.is_terminal:
        columns = (
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task(label, total=total or None)
            tell = _refusals(lambda text: bar.console.print(text, markup=False, highlight=False))

            def show(report: DeliveryReport) -> None:
                bar.update(task, completed=report.sent + report.failed)
                tell(report)

            yield show
        return
    last = [0.0]
    tell = _refusals(lambda text: click.echo(text, err=True))

    def line(report: DeliveryReport) -> None:
        tell(report)
        moment = time.monotonic()
        if moment - last[0] >= 2.0:
            last[0] = moment
            click.echo(f"{label}: {report.sent + report.failed}/{total} done", err=True)

    yield line


def _deliver(
    config: Config, db: sa.Engine, provider: Provider, *, secret: str, issue_id: int | None, label: str
) -> DeliveryReport:
    unusable = delivering.fail_unusable(db, provider, issue_id=issue_id)
    if unusable is not None:
        reason, addresses = unusable
        shown = ", ".join(addresses[:5]) + (f" and {len(addresses) - 5} more" if len(addresses) > 5 else "")
        click.echo(f"{len(addresses)} address(es) cannot be sent to ({reason}): {shown}; marked failed")
    total = sum(line.remaining for line in delivering.status_lines(db, issue_id))
    stop = threading.Event()
    with _stop_on_signals(stop), _progress(total, label) as show:
        done = delivering.deliver(
            config, db, provider, stop=stop, issue_id=issue_id, progress=show, secret=secret, now=_now(),
        )
    if done.helpers:
        click.echo(f"{done.helpers} more sending process(es) sent {done.helpers_sent} of them")
    return done.report


def _summary(report: DeliveryReport, db: sa.Engine, issue_id: int | None, zone: ZoneInfo) -> None:
    if report.sent or report.retried or report.failed or report.stopped:
        click.echo(
            f"sent {report.sent}, retrying {report.retried}, failed {report.failed}"
            + (f", {report.suppressed} address(es) suppressed after a hard bounce" if report.suppressed else "")
            + f" in {report.elapsed:.1f} s ({report.rate:.0f}/s)"
        )
    else:
        click.echo("nothing to send: every reader already has it, or it is queued for later")
    if report.stopped:
        click.echo("stopped early: the rest is queued; `publisher send --resume` continues")
    lines = delivering.status_lines(db, issue_id)
    waiting = sum(line.queued + line.retrying for line in lines)
    if waiting and report.next_due is not None:
        click.echo(
            f"{waiting} message(s) wait until {clock.local_time(report.next_due, zone)}; "
            "`publisher send --resume` (or `publisher serve`) sends them then"
        )
    uncertain = sum(line.uncertain for line in lines)
    if uncertain:
        click.echo(UNCERTAIN_NOTE.format(n=uncertain))


def _secret_and_provider(config: Config) -> tuple[str, Provider]:
    return service.send_secret(config), make_provider(config)


def _dry_run(
    config: Config, slug: str, tag: str | None, now: datetime, segment: str | None = None, again: bool = False
) -> None:
    plan = service.plan_send(config, open_store(config.store_url), slug, now=now, tag=tag, segment=segment)
    who = f"subscribers tagged {tag!r}" if tag else "active subscribers"
    who = f"readers of the segment {segment!r}" if segment else who
    click.echo(f"subject: {plan.subject}")
    click.echo(f"html: {plan.html_bytes:,} bytes, text: {plan.text_bytes:,} bytes")
    for warning in plan.warnings:
        click.echo(f"warning: {warning}")
    if plan.mailed_there and not again:
        click.echo(f"a send would be refused: `publisher send {slug} --again` sends it anyway")
    if plan.frozen:
        click.echo(
            f"issue {plan.issue_id} is frozen: its first copies have left, so later readers get "
            "that version, not the article as it is now"
        )
    if plan.complaints is not None and plan.complaints.level in ("warn", "stop"):
        click.echo(f"complaint rate {plan.complaints.in_words()}")
        if plan.complaints.level == "stop":
            click.echo("a send would be stopped: --despite-complaints sends anyway, and is recorded")
    already = f" ({plan.issue_id} is already in the ledger: only new readers count)" if plan.issue_id else ""
    click.echo(f"would send to {plan.recipients} {who}{already}; nothing sent, nothing written")


@cli.command()
@click.argument("slug", required=False)
@click.option("--tag", default=None, help="Send only to subscribers with this tag.")
@click.option("--segment", default=None, metavar="NAME", help="Send only to the readers of this saved segment.")
@click.option("--to", "to", default=None, metavar="ADDRESS", help="Send one test copy to ADDRESS only.")
@click.option("--dry-run", is_flag=True, help="Render and count recipients; send and write nothing.")
@click.option("--resume", is_flag=True, help="Finish every unfinished send (after a stop or a crash).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--again", is_flag=True,
    help="Send an article moved in from a service that mailed it there already (it is refused otherwise).",
)
@click.option(
    "--despite-complaints", is_flag=True,
    help="Send even though the complaint rate over 30 days is at 0.3% or more (recorded).",
)
@click.option(
    "--subject-test", "subject_test", multiple=True, metavar="SUBJECT",
    help="A subject to test (give two to four; the first is kept on a tie). Needs analytics on.",
)
@click.option("--sample", type=int, default=None, help="Percent of readers who try the subjects (default 20).")
@click.option(
    "--wait", default=None, metavar="DURATION",
    help="How long the sample has before the winner goes to the rest: 30m, 4h (default), 1d.",
)
@click.option(
    "--decide-at", "decide_at", default=None, metavar="\"YYYY-MM-DD HH:MM\"",
    help="Choose the winner at this time (the publication's zone) instead of after --wait.",
)
@click.option(
    "--by", "by", type=click.Choice(["clicks", "opens"]), default=None,
    help="Choose the winner by clicks (default) or opens.",
)
@click.pass_context
@reports_errors
def send(
    ctx: click.Context,
    slug: str | None,
    tag: str | None,
    to: str | None,
    segment: str | None,
    dry_run: bool,
    resume: bool,
    yes: bool,
    despite_complaints: bool,
    subject_test: tuple[str, ...] = (),
    sample: int | None = None,
    wait: str | None = None,
    decide_at: str | None = None,
    by: str | None = None,
    again: bool = False,
) -> None:
    """Send the newsletter of article SLUG to every active subscriber, exactly once.

    Sending the same article again reaches only readers who have not had it yet. A
    complaint rate of 0.3% or more over the last 30 days (from 1,000 messages) stops the
    send; --despite-complaints sends anyway, and the choice is recorded. An article moved
    in from a service that mailed it there (`publisher migrate`) is refused: --again sends it.

    With --subject-test given two to four times, a sample of readers (--sample percent,
    split evenly) gets the subjects first; after --wait (or at --decide-at) the subject
    with the most clicks (--by opens: opens) goes to the rest, or the first on a tie.
    """
    testing = bool(subject_test) or any(v is not None for v in (sample, wait, decide_at, by))
    if testing and (resume or to or dry_run):
        raise click.UsageError("--subject-test, --sample, --wait, --decide-at and --by go with a plain send of SLUG")
    if testing and not subject_test:
        raise click.UsageError("--sample, --wait, --decide-at and --by go with --subject-test (give two to four)")
    if subject_test and again:
        raise click.UsageError("--again goes with a plain send of SLUG, not yet with --subject-test")
    if subject_test and segment:
        raise click.UsageError("a subject test goes to everyone or to a --tag, not yet to a --segment")
    if resume:
        if slug or to or dry_run or tag or segment or again:
            raise click.UsageError("--resume takes no SLUG, --to, --tag, --segment, --again or --dry-run")
        _resume(get_config(ctx))
        return
    if not slug:
        raise click.UsageError("give the SLUG of the article to send (or --resume)")
    config = get_config(ctx)
    now = _now()
    if to:
        copy = service.test_send(config, slug, [to], now=now)
        state = "" if copy.is_public(now) else (" (a draft)" if copy.draft else " (not yet published)")
        click.echo(
            f"sent a test copy of {copy.title!r}{state} to {to}, its subject marked "
            f"{service.TEST_PREFIX.strip()!r} (nothing written to the ledger)"
        )
        return
    if dry_run:
        _dry_run(config, slug, tag, now, segment, again)
        return
    db = open_store(config.store_url)
    if segment and tag:
        raise click.UsageError("give --tag or --segment, not both (a segment can hold a tag condition)")
    plan = service.plan_send(config, db, slug, now=now, tag=tag, segment=segment)
    article = plan.article
    if plan.mailed_there and not again:
        # Refused before any question, so that a stray "y" cannot mail an old post again.
        raise InvalidRequest(f"not sent. {plan.mailed_there} To send it anyway: publisher send {slug} --again")
    # The size warning again, where the author looks when sending (check and build say it too).
    for warning in plan.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    for problem in plan.problems:
        click.secho(f"error: {problem}", fg="red", err=True)
    rate = plan.complaints
    if rate is not None and rate.level == "stop" and not despite_complaints:
        complaints.stop_for_complaints(db, now=now, despite=False)  # says why, before asking anything
    if rate is not None and rate.level in ("warn", "stop"):
        click.secho(f"warning: complaint rate {rate.in_words()}", fg="yellow", err=True)
    also = " and put it on the site" if plan.publishes else ""
    question = f"send {article.title!r}{' again' if plan.mailed_there else ''} to {plan.recipients:,} reader(s)"
    question += (f" of the segment {segment!r}" if segment else "") + f" through {plan.provider} now{also}?"
    test_plan = None
    if subject_test:
        test_plan = _test_plan(config, subject_test, sample, wait, decide_at, by, now)
        question = (
            f"send {article.title!r} to {plan.recipients:,} reader(s)"
            + (f" of the segment {segment!r}" if segment else "")
            + f" through {plan.provider}{also}: "
            f"{test_plan.sample_percent}% now under {len(test_plan.subjects)} subjects, the rest at "
            f"{clock.local_time(test_plan.decide_at(now), config.tz)} under the winner?"
        )
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError(
                f"publisher send asks first ({question}); answer in a terminal, or add --yes to send without asking"
            )
        click.confirm(question, abort=True)
    secret, provider = _secret_and_provider(config)
    try:
        if test_plan is not None:
            started = subject_tests.start(
                config, db, slug, test_plan, now=now, tag=tag, segment=segment, despite_complaints=despite_complaints,
                who=f"{_user()} (publisher send --despite-complaints)",
            )
            issue_id = started.issue_id
            each = ", ".join(f"{n:,}" for n in started.sample.values())
            click.echo(
                f"issue {issue_id} {article.slug!r}: subject test, {sum(started.sample.values()):,} reader(s) "
                f"queued ({each} per subject); {started.held:,} wait for the winner at "
                f"{clock.local_time(started.decide_at, config.tz)} (`publisher serve` sends them then, "
                "or `publisher send --resume` after that time)"
            )
        else:
            queued = service.send_now(
                config, db, slug, now=now, tag=tag, segment=segment, despite_complaints=despite_complaints,
                who=f"{_user()} (publisher send --despite-complaints)", again=again,
            )
            issue_id = queued.issue_id
            click.echo(f"issue {issue_id} {article.slug!r}: {queued.added} new recipient(s) queued"
                   + (f" for the segment {segment!r} (recorded on the issue)" if segment else ""))
        if plan.publishes:
            # It just came out: the site shows it before the first reader follows a link to it.
            article_service.rebuild_site(config, now=now)
            click.echo(f"{article.slug!r} is on the site (rebuilt)")
        # A sender of this issue that died left its rows "sending": sending again is how
        # most people resume, so it takes them back now rather than after the lease.
        _recover(config, db)
        report = _deliver(config, db, provider, secret=secret, issue_id=issue_id, label=article.slug)
    finally:
        provider.close()
    _summary(report, db, issue_id, config.tz)
    _where_to_look(config, report)
    if report.stopped:
        ctx.exit(1)


def _test_plan(
    config: Config, subjects: tuple[str, ...], sample: int | None, wait: str | None, decide_at: str | None,
    by: str | None, now: datetime,
) -> subject_tests.TestPlan:
    at = None
    if decide_at is not None:
        if wait is not None:
            raise click.UsageError("give --wait or --decide-at, not both")
        try:
            at = datetime.strptime(decide_at, "%Y-%m-%d %H:%M").replace(tzinfo=config.tz).astimezone(UTC)
        except ValueError as exc:
            raise click.UsageError(f"--decide-at {decide_at!r} must look like \"2026-12-01 14:00\"") from exc
    return subject_tests.parse_plan(
        subjects, sample_percent=subject_tests.DEFAULT_SAMPLE if sample is None else sample,
        metric=by or "clicks", wait=wait or subject_tests.DEFAULT_WAIT, at=at, now=now,
    )


def _user() -> str:
    """Who runs the command, as the record of an override names them."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown user"


def _where_to_look(config: Config, report: DeliveryReport) -> None:
    """With the Maildir provider nothing leaves the machine: say where the messages are."""
    if config["delivery.provider"] == "maildir" and report.sent:
        folder = config.path_of("delivery.maildir.path") / "new"
        click.echo(f"the messages are .eml files in {folder} (open one in any mail client)")


def _recover(config: Config, db: sa.Engine) -> None:
    """Queue again, flagged uncertain, the rows of senders that died, and say so."""
    recovered = delivering.recover(config, db, now=_now())
    if recovered.count:
        click.echo(UNCERTAIN_NOTE.format(n=recovered.count))
        for row in recovered.rows[:10]:
            click.echo(f"  uncertain: issue {row.issue_id}, {row.email}")
        if recovered.count > 10:
            click.echo(f"  ... and {recovered.count - 10} more (`publisher status`)")


def _resume(config: Config) -> None:
    delivering.require_postal_address(config)
    db = open_store(config.store_url)
    secret, provider = _secret_and_provider(config)
    try:
        for step in subject_tests.settle(config, db, now=_now()):
            if step.step != "sampled":
                click.echo(f"issue {step.issue_id}: subject test {step.step}: {step.detail}")
        _recover(config, db)
        report = _deliver(config, db, provider, secret=secret, issue_id=None, label="resume")
    finally:
        provider.close()
    _summary(report, db, None, config.tz)
    _where_to_look(config, report)
