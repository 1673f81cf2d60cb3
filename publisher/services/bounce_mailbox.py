"""Bounces read from a mailbox over IMAP: each message taken once, then moved, never lost.

A pass looks at every message in `bounces.imap.folder`, oldest first:

    bigger than max_bytes            moved to review_folder unread (its size is known
                                     from the server; it is never downloaded)
    taken (`bounce_intake`)          moved to done_folder, whatever the decision,
                                     unless the decision is "review"
    "review", or not understood      moved to review_folder, for a person to look at
    the store cannot be reached      left where it is; the pass stops and the message is
                                     taken again next time

Nothing is deleted: a message leaves the bounce folder only by a move. The order is
take, then move; a connection that dies in between leaves the message in the folder,
and the next pass takes it again. `take_message` is idempotent per message (one decision
per Message-ID), so nothing is handled twice and nothing is skipped.

`MailboxWatch` is the daemon's hold on the mailbox between runs of its job: one
connection kept open; a pass, then IDLE where the server offers it (a new message is
taken at once), or one pass per run where it does not (the job runs every
`bounces.imap.poll_seconds`). After a failure it waits before trying again, doubling the
wait up to BACKOFF_MAX, and says so once per failure.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol

from sqlalchemy import Engine

from publisher.config import Config
from publisher.delivery.imap_bounces import Mailbox, MailboxSettings, Waiting
from publisher.errors import MailboxError, PublisherError
from publisher.services import bounce_intake
from publisher.services.bounce_intake import Intake

__all__ = [
    "BACKOFF_FIRST", "BACKOFF_MAX", "MailboxWatch", "PassReport", "Take", "check_mailbox", "destination",
    "run_pass", "settings_of",
]

log = logging.getLogger(__name__)

BACKOFF_FIRST = timedelta(seconds=30)
BACKOFF_MAX = timedelta(minutes=15)
QUIET_PASSES = 3
BUSY_RENEW = 1.0
"""Seconds of the first IDLE after a pass that took something (see `imap_bounces.IDLE_RENEW`)."""
SOURCE = "imap"
"""The door recorded with each decision taken from the mailbox."""

Destination = Literal["done", "review"]


class Take(Protocol):
    """`bounce_intake.take_message`'s shape (tests and the pipe pass their own)."""

    def __call__(self, config: Config, db: Engine, raw: bytes, *, now: datetime, source: str) -> Intake: ...


class MailboxLike(Protocol):
    """What a pass needs of `imap_bounces.Mailbox`."""

    def waiting(self) -> list[Waiting]: ...

    def fetch(self, uid: int) -> bytes | None: ...

    def move(self, uid: int, folder: str) -> None: ...


def destination(outcome: str | None) -> Destination:
    """Where a message goes once taken: `None` when it was not understood at all."""
    if outcome is None or outcome == "review" or outcome not in bounce_intake.OUTCOMES:
        return "review"
    return "done"


@dataclass(frozen=True, slots=True)
class PassReport:
    """What one pass did: decisions by outcome, and the messages moved to each folder."""

    outcomes: Mapping[str, int] = field(default_factory=dict)
    done: int = 0
    review: int = 0
    too_big: int = 0

    @property
    def moved(self) -> int:
        return self.done + self.review

    def summary(self) -> str:
        """One line for a log or the command line."""
        if not self.moved:
            return "no new messages"
        parts = ", ".join(f"{count} {outcome.replace('_', ' ')}" for outcome, count in sorted(self.outcomes.items()))
        big = f" ({self.too_big} too big to read)" if self.too_big else ""
        return f"{self.moved} messages: {parts or 'none taken'}; {self.done} to done, {self.review} to review{big}"


def run_pass(
    config: Config,
    db: Engine,
    mailbox: MailboxLike,
    settings: MailboxSettings,
    *,
    clock: Callable[[], datetime],
    take: Take | None = None,
    stop: threading.Event | None = None,
) -> PassReport:
    """Take and move every message waiting in the bounce folder (see the module's table).

    Raises MailboxError when the server goes away (what was moved stays moved; the rest is
    read next time) and PublisherError when the store cannot be reached.
    """
    take = take or bounce_intake.take_message
    outcomes: Counter[str] = Counter()
    done = review = too_big = 0
    for item in mailbox.waiting():
        if stop is not None and stop.is_set():
            break
        outcome: str | None
        if item.size > settings.max_bytes:
            log.warning("bounce mailbox: message %d is %d bytes, over [bounces.imap] max_bytes (%d): moved to %r "
                        "unread", item.uid, item.size, settings.max_bytes, settings.review_folder)
            outcome, too_big = None, too_big + 1
        else:
            raw = mailbox.fetch(item.uid)
            if raw is None:
                continue  # gone meanwhile: another reader moved it
            outcome = _take(config, db, raw, item.uid, clock=clock, take=take)
            if outcome is not None:
                outcomes[outcome] += 1
        if destination(outcome) == "done":
            mailbox.move(item.uid, settings.done_folder)
            done += 1
        else:
            mailbox.move(item.uid, settings.review_folder)
            review += 1
    return PassReport(outcomes=dict(outcomes), done=done, review=review, too_big=too_big)


def _take(config: Config, db: Engine, raw: bytes, uid: int, *, clock: Callable[[], datetime], take: Take) -> str | None:
    try:
        intake = take(config, db, raw, now=clock(), source=SOURCE)
    except PublisherError:
        raise  # the store: leave the message where it is, for the next pass
    except Exception:  # a message the intake could not take is one for a person, never lost
        log.exception("bounce mailbox: message %d could not be taken; it goes to review", uid)
        return None
    log.info("bounce mailbox: message %d: %s%s", uid, intake.outcome, f" ({intake.address})" if intake.address else "")
    return intake.outcome


def check_mailbox(
    config: Config, db: Engine, *, clock: Callable[[], datetime], take: Take | None = None,
) -> PassReport:
    """Connect, run one pass, log out: `publisher bounces check-mailbox --once`."""
    settings = settings_of(config)
    with Mailbox(settings) as mailbox:
        return run_pass(config, db, mailbox, settings, clock=clock, take=take)


def settings_of(config: Config) -> MailboxSettings:
    """The mailbox settings; MailboxError when none is configured, ConfigError when they are wrong."""
    settings = MailboxSettings.from_config(config)
    if settings is None:
        raise MailboxError("no bounce mailbox is configured: set [bounces.imap] host and username, and "
                           "PUBLISHER_BOUNCES_IMAP_PASSWORD")
    return settings


class MailboxWatch:
    """The daemon's hold on the bounce mailbox from one run of its job to the next."""

    def __init__(
        self,
        config: Config,
        db: Engine,
        *,
        clock: Callable[[], datetime],
        take: Take | None = None,
        connect: Callable[[MailboxSettings], Mailbox] = Mailbox,
        on_pass: Callable[[PassReport], None] | None = None,
        on_failure: Callable[[PublisherError, timedelta], None] | None = None,
    ) -> None:
        self.config = config
        self.db = db
        self.clock = clock
        self.take = take
        self.connect = connect
        self.on_pass = on_pass
        self.on_failure = on_failure
        self.failures = 0
        self.retry_at: datetime | None = None
        self.mailbox: Mailbox | None = None
        self._lock = threading.Lock()

    def run(self, stop: threading.Event, seconds: float | None = None) -> None:
        """One run: a pass, then, where the server offers IDLE, a pass for each new message
        until `seconds` (default: a little less than `poll_seconds`) have gone or `stop` is set.
        The connection stays open for the next run. Never raises for the mailbox or the
        store: a failure is logged and the next run after the backoff tries again."""
        if not self._lock.acquire(blocking=False):
            return  # a run is going on already
        try:
            settings = MailboxSettings.from_config(self.config)
            if settings is None or stop.is_set():
                return
            if self.retry_at is not None and self.clock() < self.retry_at:
                return
            span = seconds if seconds is not None else max(settings.poll_seconds - 2.0, 0.5)
            self._run(settings, stop, span)
        except PublisherError as exc:
            self._failed(exc)
        except Exception as exc:  # the daemon's job must outlive any surprise: drop the connection, back off
            log.exception("bounce mailbox: unexpected failure")
            self._failed(MailboxError(f"bounce mailbox: unexpected failure ({type(exc).__name__}: {exc})"))
        finally:
            self._lock.release()

    def _run(self, settings: MailboxSettings, stop: threading.Event, span: float) -> None:
        # The span counts from the start, passes included: the job's next run is due then.
        ends = time.monotonic() + span
        if self.mailbox is None:
            self.mailbox = self.connect(settings)
            if self.failures:
                log.info("bounce mailbox %s: connected again", settings.where)
        mailbox = self.mailbox
        busy = self._passes(settings, mailbox, stop)
        if not mailbox.can_idle:
            return
        while not stop.is_set():
            left = ends - time.monotonic()
            if left <= 0:
                break
            # Just after a busy pass more is likely on its way: the first IDLE is short.
            if mailbox.idle(min(left, BUSY_RENEW) if busy else left, stop):
                busy = self._passes(settings, mailbox, stop)
            else:
                busy = False

    def _passes(self, settings: MailboxSettings, mailbox: Mailbox, stop: threading.Event) -> bool:
        """Passes until one finds the folder empty and nothing new was announced meanwhile:
        a message that arrives during a pass is announced then, and IDLE would not tell of
        it again. An announcement with nothing to take (a server that repeats itself) gets
        at most QUIET_PASSES passes; the next run's first pass catches anything later.
        Returns whether anything was moved."""
        empty, moved = 0, False
        while not stop.is_set() and empty < QUIET_PASSES:
            mailbox.announced()
            report = run_pass(self.config, self.db, mailbox, settings, clock=self.clock, take=self.take, stop=stop)
            self.failures, self.retry_at = 0, None
            if report.moved:
                moved = True
                log.info("bounce mailbox %s: %s", settings.where, report.summary())
            if self.on_pass is not None:
                self.on_pass(report)
            if not report.moved:
                if not mailbox.announced():
                    break
                empty += 1
        return moved

    def _failed(self, exc: PublisherError) -> None:
        self.close()
        self.failures += 1
        wait = min(BACKOFF_FIRST * 2 ** (self.failures - 1), BACKOFF_MAX)
        self.retry_at = self.clock() + wait
        log.warning("bounce mailbox: %s (trying again in %d s)", exc, wait.total_seconds())
        if self.on_failure is not None:
            self.on_failure(exc, wait)

    def close(self) -> None:
        mailbox, self.mailbox = self.mailbox, None
        if mailbox is not None:
            mailbox.close()
