"""The complaint rate, per issue and over the last 30 days, and the stop it puts on a new send.

A complaint is a reader pressing "this is spam" (a provider's feedback report). The rate
is readers who complained over copies the provider accepted. Gmail and Yahoo ask bulk
senders (February 2024) to stay under 0.3% and advise under 0.1%; above 0.3% their
filters send the list's mail to spam or refuse it, and a send then harms every later one.

    warn   WARN_RATE (0.1%) or more: shown on Home, the issue's page and `publisher status`
    stop   STOP_RATE (0.3%) or more over WINDOW (30 days): a new send (send now, a
           schedule's start, `publisher send`, the API) is stopped before anything is
           queued, unless an owner overrides knowingly (the desk's checkbox on the confirm
           page, `--despite-complaints`, the API's `despite_complaints`); the override is
           recorded with who, when and the rate (`store.stats.record_override`)

A rate is judged only over MIN_MESSAGES (1,000) accepted copies or more: below it a
single complaint is chance (1 in 200 is 0.5%), so the rate is shown and never warns or
stops. The same threshold holds for one issue's rate, which is shown and never stops.

The rate itself and its thresholds are `delivery.complaint_rate`'s (the daemon's digest
obeys it too), re-exported here for the faces.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from publisher.delivery.complaint_rate import (
    MIN_MESSAGES,
    STOP_RATE,
    WARN_RATE,
    WINDOW,
    ComplaintRate,
    complaint_rate,
)
from publisher.errors import InvalidRequest

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from publisher.store.stats import Override

__all__ = [
    "MIN_MESSAGES", "STOP_RATE", "WARN_RATE", "WINDOW", "ComplaintRate", "ComplaintStop", "complaint_rate",
    "issue_complaint_rate", "issue_overrides", "overridden", "record_scheduled_override", "stop_for_complaints",
]

log = logging.getLogger(__name__)


def issue_complaint_rate(db: Engine, issue_id: int) -> ComplaintRate:
    """The rate of one issue: readers who complained about it over its accepted copies."""
    from publisher.store import ledger
    from publisher.store import stats as store

    (line,) = ledger.status(db, issue_id)
    complaints = store.reactions(db, [issue_id]).get(issue_id, {}).get("complaint", 0)
    return ComplaintRate(complaints=complaints, accepted=line.sent, over="this issue")


@dataclass(frozen=True, slots=True)
class ComplaintStop:
    """What the stop decided for one send: go (with or without an override to record)."""

    rate: ComplaintRate
    overriding: bool
    """The rate stops sends and the owner chose to send anyway: record it once the issue is known."""

    def record(self, db: Engine, *, issue_id: int, who: str, now: datetime) -> None:
        """Keep the override (when there is one) with the issue, who chose it and the rate."""
        if not self.overriding:
            return
        from publisher.store import stats as store

        detail = f"sent despite complaints of {self.rate.in_words()}"
        store.record_override(db, issue_id=issue_id, who=who or "unknown", detail=detail, now=now)
        log.warning("issue %s: %s chose to send despite a complaint rate of %s", issue_id, who, self.rate.percent)


OVERRIDE_HOW = (
    "To send anyway, knowing this, an owner ticks “I understand …” on the desk's confirm page, "
    "or runs publisher send SLUG --despite-complaints (the API: despite_complaints)."
)


def stop_for_complaints(db: Engine, *, now: datetime, despite: bool) -> ComplaintStop:
    """Whether a new send may start: InvalidRequest naming the rate and what it means when
    it is at STOP_RATE or above over the window (judged only from MIN_MESSAGES), unless
    `despite` (an owner's knowing override, which the caller records with `ComplaintStop.record`)."""
    rate = complaint_rate(db, now=now)
    if rate.level != "stop":
        return ComplaintStop(rate, overriding=False)
    if not despite:
        raise InvalidRequest(
            f"not sent: the complaint rate is {rate.in_words()}. Another send now would make it worse; "
            f"find out why readers complain first. {OVERRIDE_HOW}"
        )
    return ComplaintStop(rate, overriding=True)


def record_scheduled_override(db: Engine, *, issue_id: int, who: str, now: datetime) -> None:
    """Keep an owner's choice that a scheduled issue starts whatever the complaint rate is then."""
    from publisher.store import stats as store

    rate = complaint_rate(db, now=now)
    detail = f"scheduled to start despite the complaint rate (when scheduled: {rate.in_words()})"
    store.record_override(db, issue_id=issue_id, who=who or "unknown", detail=detail, now=now)
    log.warning("issue %s: %s scheduled it to start despite the complaint rate", issue_id, who)


def issue_overrides(db: Engine, issue_id: int) -> list[Override]:
    """Who chose to send this issue despite the complaint rate, when, and the rate then."""
    from publisher.store import stats as store

    return store.overrides(db, issue_id)


def overridden(db: Engine, issue_id: int) -> bool:
    """Whether an owner chose, for this issue, to send despite the complaint rate (a
    schedule made with the override starts despite it)."""
    return bool(issue_overrides(db, issue_id))
