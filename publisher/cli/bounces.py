"""`publisher bounces ingest`: one bounce message on standard input, from a local MTA.

For a Postfix pipe transport or an aliases entry (README, "Bounces over plain SMTP").
Exit codes are the ones a mail filter speaks (sysexits.h), because the MTA acts on them:

    0   taken, whatever it was (a bounce, a complaint, an auto-reply, a forgery, something
        kept for review, or a message over 25 MB, read and discarded with a line on stderr)
    75  EX_TEMPFAIL: the store or the settings could not be used; the MTA keeps the message
        and tries again later, and taking it then records it once
    65  EX_DATAERR is never used: every message gets an outcome, and one that no rule can
        read waits in the desk's review queue, so nothing is bounced back to a mail server
        that only reported a bounce

`bounces check-mailbox` (the IMAP reader) lives in the same group.
"""

from __future__ import annotations

import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

import click

from publisher.cli._common import cli, get_config, reports_errors
from publisher.errors import PublisherError

__all__ = ["EX_TEMPFAIL", "bounces", "check_mailbox_command", "ingest_command"]

EX_TEMPFAIL = 75
_CHUNK = 1024 * 1024


@cli.group("bounces")
def bounces() -> None:
    """Bounces and complaints that come back by mail."""


def read_bounded(stream: BinaryIO, limit: int) -> tuple[bytes, int]:
    """Up to `limit` bytes of `stream`, and how many bytes it held in all (the rest is read
    and dropped, so the MTA's write never blocks)."""
    kept = bytearray()
    total = 0
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if len(kept) <= limit:
            kept += chunk[: limit + 1 - len(kept)]
    return bytes(kept), total


@bounces.command("ingest")
@click.option("--recipient", default="", metavar="ADDRESS",
              help="The envelope recipient the MTA delivered to (Postfix: ${recipient}); "
                   "its bounces+TOKEN part names the reader when the message's headers do not.")
@click.pass_context
def ingest_command(ctx: click.Context, recipient: str) -> None:
    """Take one bounce, complaint or auto-reply from standard input.

    For an MTA: a Postfix pipe transport or an aliases entry runs it once per message.
    Exit 0 when taken (whatever it was), 75 when the store cannot be used (the MTA tries
    again later).
    """
    from publisher.services.bounce_intake import MAX_MESSAGE, take_message
    from publisher.store import open_store

    raw, total = read_bounded(sys.stdin.buffer, MAX_MESSAGE)
    if total > MAX_MESSAGE:
        click.echo(f"discarded: a message of {total:,} bytes is over the {MAX_MESSAGE:,} a bounce may be; "
                   "nothing was recorded", err=True)
        return
    if recipient.strip():
        header = recipient.strip().replace("\r", "").replace("\n", "")[:320]
        raw = b"X-Original-To: " + header.encode("utf-8", "replace") + b"\r\n" + raw
    try:
        config = get_config(ctx)
        db = open_store(config.store_url)
        try:
            intake = take_message(config, db, raw, now=datetime.now(UTC), source="pipe")
        finally:
            db.dispose()
    except PublisherError as exc:
        click.echo(f"error: {exc} (the mail server will hand the message in again)", err=True)
        raise SystemExit(EX_TEMPFAIL) from exc
    except Exception as exc:
        # Anything unforeseen is a "try later" too: a mail server bounces on other codes.
        click.echo(f"error: {type(exc).__name__}: {exc} (the mail server will hand the message in again)", err=True)
        raise SystemExit(EX_TEMPFAIL) from exc
    where = f" (issue {intake.issue_id})" if intake.issue_id is not None else ""
    click.echo(f"{intake.outcome}: {intake.address or 'no address'}{where}: {intake.detail}")


def _now() -> datetime:
    return datetime.now(UTC)


@bounces.command("check-mailbox")
@click.option("--once", is_flag=True, help="Run one pass and stop (default: keep watching until Ctrl-C).")
@click.pass_context
@reports_errors
def check_mailbox_command(ctx: click.Context, once: bool) -> None:
    """Take each message in the bounce mailbox ([bounces.imap]) and move it to its folder.

    Prints how many messages were taken and what was decided for them. Without --once it
    keeps watching (IDLE where the server offers it, else every poll_seconds).
    """
    from publisher.services import bounce_mailbox
    from publisher.store import open_store

    config = get_config(ctx)
    bounce_mailbox.settings_of(config)  # a missing setting is told before anything is opened
    db = open_store(config.store_url)
    if once:
        report = bounce_mailbox.check_mailbox(config, db, clock=_now)
        click.echo(report.summary())
        return
    stop = threading.Event()

    def failed(exc: PublisherError, wait: timedelta) -> None:
        click.secho(f"error: {exc} (trying again in {wait.total_seconds():.0f} s)", fg="red", err=True)

    def passed(report: bounce_mailbox.PassReport) -> None:
        if report.moved:
            click.echo(report.summary())

    watch = bounce_mailbox.MailboxWatch(config, db, clock=_now, on_pass=passed, on_failure=failed)
    # Ctrl-C and a service manager's TERM end the watch between two IMAP commands, never
    # inside one (which would leave the connection half-read and the logout waiting).
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in (signal.SIGINT, signal.SIGTERM)}
    click.echo("watching the bounce mailbox; Ctrl-C stops")
    try:
        while not stop.is_set():
            watch.run(stop)
            if watch.retry_at is not None:
                wait = (watch.retry_at - _now()).total_seconds()
            elif watch.mailbox is not None and watch.mailbox.can_idle:
                wait = 0.0  # the run waited in IDLE already
            else:
                wait = float(config["bounces.imap.poll_seconds"])
            stop.wait(max(wait, 0.0))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        watch.close()
    click.echo("stopped")
