"""Sending what is queued, in the foreground: `publisher send` and `publisher send --resume`.

The delivery engine claims batches of ledger rows, sends them and records each answer;
this is the one door the command line uses to run it. `recover` first takes back, as
uncertain, the rows of senders that died (sending again is how most people resume, so
it does not wait for their lease to end). `fail_unusable` marks failed, before anything
is sent, the addresses the provider can never take. `deliver` runs the engine with the
extra sending processes `delivery.processes` asks for, until the queue is empty or
`stop` is set; what it could not send stays queued, and `publisher send --resume` (or
the daemon) continues.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from publisher.config import Config
from publisher.delivery import engine
from publisher.delivery.engine import DeliveryReport
from publisher.delivery.hands import extra_hands
from publisher.delivery.sending import fail_unusable_addresses, require_postal_address
from publisher.services.providers import Provider
from publisher.store import ledger
from publisher.store.ledger import IssueStatus, Recovered

__all__ = [
    "Delivered",
    "DeliveryReport",
    "IssueStatus",
    "Recovered",
    "deliver",
    "due_count",
    "fail_unusable",
    "recover",
    "require_postal_address",
    "run_worker",
    "status_lines",
]


@dataclass(frozen=True, slots=True)
class Delivered:
    report: DeliveryReport
    """The whole send's counts, the extra processes' included."""
    helpers: int = 0
    """Extra sending processes that took part."""
    helpers_sent: int = 0


def recover(config: Config, db: Engine, *, now: datetime) -> Recovered:
    """Queue again, flagged uncertain, the rows of senders that died."""
    return ledger.recover(db, now=now, lease=engine.lease_for(config))


def fail_unusable(db: Engine, provider: Provider, *, issue_id: int | None) -> tuple[str, list[str]] | None:
    """Mark failed the waiting rows the provider can never deliver; (why, addresses) or None."""
    return fail_unusable_addresses(db, provider, issue_id=issue_id)


def status_lines(db: Engine, issue_id: int | None) -> list[IssueStatus]:
    """Each issue's counts (one issue, or all)."""
    return list(ledger.status(db, issue_id))


def due_count(db: Engine, *, now: datetime) -> int:
    return ledger.count_due(db, now=now)


def deliver(
    config: Config, db: Engine, provider: Provider, *, secret: str, issue_id: int | None,
    stop: threading.Event, progress: Callable[[DeliveryReport], None] | None, now: datetime,
) -> Delivered:
    """Send what is due (of one issue, or all) until the queue is empty or `stop` is set."""
    with extra_hands(config, due=due_count(db, now=now), stop=stop) as hands:
        report = engine.deliver(config, db, provider, stop=stop, issue_id=issue_id, progress=progress, secret=secret)
    if hands:
        report = dataclasses.replace(report, sent=report.sent + hands.sent)
        return Delivered(report, helpers=len(hands), helpers_sent=hands.sent)
    return Delivered(report)


def run_worker(config: Config, *, once: bool, interval: float) -> int:
    """`publisher worker`: claim and send queued rows beside the daemon until stopped (or,
    with `once`, what is due now); how many were sent. Only the sending machinery loads."""
    from publisher.delivery.worker import run_worker as run

    return run(config, once=once, interval=interval)
