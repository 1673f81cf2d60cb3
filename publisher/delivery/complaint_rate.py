"""The complaint rate: readers who complained over copies the provider accepted, and how it is judged.

Gmail and Yahoo ask bulk senders (February 2024) to keep complaints ("this is spam")
under 0.3% and advise under 0.1%. A rate is judged only over MIN_MESSAGES accepted
copies or more: below that a single complaint is chance (1 in 200 is 0.5%), so the rate
is shown and never warns or stops. `services.complaints` holds the stop a rate puts on a
new send; this module is the rate itself, here so that the daemon's digest obeys it too.

`ComplaintRate` is plain data and this module imports no database library, so that
`publisher status` can judge figures read with the standard library alone (`store.glance`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = ["MIN_MESSAGES", "STOP_RATE", "WARN_RATE", "WINDOW", "ComplaintRate", "Level", "complaint_rate"]

WARN_RATE = 0.001
STOP_RATE = 0.003
WINDOW = timedelta(days=30)
MIN_MESSAGES = 1000
"""Accepted copies below which a rate is shown but not judged."""

Level = Literal["unjudged", "ok", "warn", "stop"]


@dataclass(frozen=True, slots=True)
class ComplaintRate:
    """Complaints over accepted copies, for a window or one issue."""

    complaints: int
    accepted: int
    over: str
    """What the figures cover: "the last 30 days", "this issue"."""

    @property
    def rate(self) -> float:
        return self.complaints / self.accepted if self.accepted else 0.0

    @property
    def level(self) -> Level:
        if self.accepted < MIN_MESSAGES:
            return "unjudged"
        if self.rate >= STOP_RATE:
            return "stop"
        return "warn" if self.rate >= WARN_RATE else "ok"

    @property
    def percent(self) -> str:
        """The rate as people read it: "0.42%", "0.050%" under a tenth."""
        value = self.rate * 100
        return f"{value:.2f}%" if value >= 0.1 or value == 0 else f"{value:.3f}%"

    def in_words(self) -> str:
        """"0.42%: 5 complaints in 1,200 messages over the last 30 days", and what that means."""
        figures = (f"{self.percent}: {self.complaints:,} complaint{'' if self.complaints == 1 else 's'} in "
                   f"{self.accepted:,} message{'' if self.accepted == 1 else 's'} accepted over {self.over}")
        if self.level == "unjudged":
            return f"{figures} (fewer than {MIN_MESSAGES:,} messages: too few to judge)"
        if self.level == "stop":
            return (f"{figures}, at or above the {STOP_RATE:.1%} that Gmail and Yahoo allow bulk senders: "
                    "their filters now send this list's mail to spam or refuse it")
        if self.level == "warn":
            return (f"{figures}, above the {WARN_RATE:.1%} Gmail advises: make the way to unsubscribe plain and "
                    "mail only readers who asked")
        return f"{figures}, under the {WARN_RATE:.1%} Gmail advises"


def complaint_rate(db: Engine, *, now: datetime) -> ComplaintRate:
    """The rate over the WINDOW that ends now."""
    from publisher.store import stats as store

    accepted, complaints = store.accepted_and_complaints(db, since=now - WINDOW, until=now)
    return ComplaintRate(complaints=complaints, accepted=accepted, over=f"the last {WINDOW.days} days")
