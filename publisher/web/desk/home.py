"""Home: the list now and over 90 days, the last issues, what is scheduled and what sends,
and what stands between the configuration and real readers."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import Engine

from publisher.config import Config
from publisher.services import access, complaints, providers, readiness, scheduling, signup, stats
from publisher.services import issues as issue_service
from publisher.services import subscribers as subscriber_service
from publisher.services.issues import IssueStatus
from publisher.services.stats import DayCounts, IssueCounts
from publisher.web.desk.charts import Series, bar_chart

__all__ = ["HomeView", "home_view"]

RECENT_ISSUES = 5
DAYS = 90


@dataclass(frozen=True, slots=True)
class HomeView:
    counts: dict[str, int]
    days: list[DayCounts]
    chart: str
    joined: int
    left: int
    issues: list[tuple[IssueStatus, IssueCounts]]
    sending: list[IssueStatus]
    agenda: scheduling.Agenda
    gaps: list[str]
    failing_hooks: list[access.EndpointTrouble] = field(default_factory=list)
    """Webhook endpoints whose messages fail, shown as a notice at the top."""
    complaints: complaints.ComplaintRate | None = None
    """The complaint rate over the last 30 days (a warning from 0.1%, sends stopped from 0.3%)."""
    providers: list[str] = field(default_factory=list)
    """A provider pool's trouble in words (a provider failing, the one used instead), as a notice."""
    throttled: list[signup.Throttled] = field(default_factory=list)
    """Networks whose signups were refused for coming too fast in the last day, as a notice."""
    digest: scheduling.NextDigest | None = None
    """The next digest and what it gathers, beside the scheduled sends: it mails every reader too."""


def home_view(config: Config, engine: Engine, now: datetime) -> HomeView:
    days = stats.subscriber_days(engine, now=now, days=DAYS)
    joined = tuple(d.joined for d in days)
    left = tuple(d.left + d.bounced + d.complained for d in days)
    chart = _chart(_day_labels(days[0].day, len(days)), joined, left)
    recent = issue_service.issue_status(engine, limit=RECENT_ISSUES)
    return HomeView(
        counts=subscriber_service.counts(engine),
        days=[d for d in days if d.joined or d.left or d.bounced or d.complained],
        chart=chart,
        joined=sum(joined),
        left=sum(left),
        issues=list(zip(recent, stats.issues_counts(engine, recent), strict=True)),
        sending=[line for line in recent if line.status == "sending"],
        agenda=scheduling.agenda(config, engine, now=now),
        gaps=readiness.go_live_gaps(config),
        failing_hooks=access.failing_endpoints(engine),
        complaints=complaints.complaint_rate(engine, now=now),
        providers=providers.pool_status(config, engine, now=now),
        throttled=signup.throttled_networks(engine, now=now),
        digest=scheduling.next_digest(config, engine, now=now),
    )


# The chart changes when a day passes or a reader joins or leaves, not with each look at
# Home: drawn again on every page it was a tenth of the page's CPU.


@functools.lru_cache(maxsize=4)
def _day_labels(first: date, count: int) -> tuple[str, ...]:
    return tuple(f"{first + timedelta(days=n):%d %b}" for n in range(count))


@functools.lru_cache(maxsize=16)
def _chart(labels: tuple[str, ...], joined: tuple[int, ...], left: tuple[int, ...]) -> str:
    return bar_chart(
        f"Joins and departures, last {DAYS} days", labels, [Series("joined", joined), Series("left", left)]
    )
