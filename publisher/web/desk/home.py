"""Home: the list now and over 90 days, the last issues, what is scheduled and what sends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from publisher.config import Config
from publisher.store import issues as issue_store
from publisher.store import schedules as schedule_store
from publisher.store import subscribers as subscriber_store
from publisher.store.issues import IssueStatus
from publisher.store.schedules import Schedule

__all__ = ["HomeView", "home_view"]

RECENT_ISSUES = 5


@dataclass(frozen=True, slots=True)
class HomeView:
    counts: dict[str, int]
    issues: list[IssueStatus]
    sending: list[IssueStatus]
    scheduled: list[Schedule]


def home_view(config: Config, engine: Engine, now: datetime) -> HomeView:
    recent = issue_store.status(engine)[:RECENT_ISSUES]
    return HomeView(
        counts=subscriber_store.counts(engine),
        issues=recent,
        sending=[issue for issue in recent if issue.status == "sending"],
        scheduled=[s for s in schedule_store.list_schedules(engine, include_finished=False)],
    )
