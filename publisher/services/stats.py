"""Figures: subscribers per day, what became of an issue, and a send's pace per minute.

Days and minutes are UTC. An unsubscribe, bounce or complaint counts for an issue when it
came from one of its readers within a week of their copy (`store.stats.AFTER_ISSUE`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine

from publisher.errors import InvalidRequest, NotFound
from publisher.store import ledger
from publisher.store import stats as store
from publisher.store.issues import FailedDelivery, IssueStatus

__all__ = [
    "MAX_DAYS", "DayCounts", "IssueCounts", "IssueFailures", "MinuteCount", "issue_counts", "issue_failures",
    "issue_status", "issues_counts", "send_pace", "subscriber_days",
]

MAX_DAYS = 366


@dataclass(frozen=True, slots=True)
class DayCounts:
    """Subscriber events on one UTC day."""

    day: date
    joined: int = 0
    confirmed: int = 0
    left: int = 0
    bounced: int = 0
    complained: int = 0


@dataclass(frozen=True, slots=True)
class IssueCounts:
    issue_id: int
    sent: int
    failed: int
    bounced: int
    complained: int
    unsubscribed: int


@dataclass(frozen=True, slots=True)
class MinuteCount:
    minute: datetime
    sent: int


_FIELDS = {"subscribe": "joined", "confirm": "confirmed", "unsubscribe": "left",
           "bounce": "bounced", "complaint": "complained"}


def subscriber_days(db: Engine, *, now: datetime, days: int = 30) -> list[DayCounts]:
    """One line per UTC day for the last `days` days (today included), oldest first."""
    if not 1 <= days <= MAX_DAYS:
        raise InvalidRequest(f"days must be between 1 and {MAX_DAYS}, got {days}")
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=UTC)
    counted = store.events_per_day(db, since=since, until=since + timedelta(days=days), kinds=_FIELDS)
    lines: list[DayCounts] = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        key = f"{day:%Y-%m-%d}"
        values = {name: counted.get((key, kind), 0) for kind, name in _FIELDS.items()}
        lines.append(DayCounts(day=day, **values))
    return lines


def issue_counts(db: Engine, issue_id: int) -> IssueCounts:
    """Sent and failed copies of an issue, and what its readers did afterwards."""
    (line,) = ledger.status(db, issue_id)
    return _counts(line, store.events_after_issue(db, issue_id))


def issues_counts(db: Engine, lines: Sequence[IssueStatus]) -> list[IssueCounts]:
    """`issue_counts` for issues whose status is already at hand (a list of the newest):
    one query for what their readers did, none for the ledger again."""
    after = store.events_after_issues(db, [line.issue_id for line in lines])
    return [_counts(line, after.get(line.issue_id, {})) for line in lines]


def _counts(line: IssueStatus, after: dict[str, int]) -> IssueCounts:
    return IssueCounts(
        issue_id=line.issue_id,
        sent=line.sent,
        failed=line.failed,
        bounced=after.get("bounce", 0),
        complained=after.get("complaint", 0),
        unsubscribed=after.get("unsubscribe", 0),
    )


def send_pace(db: Engine, issue_id: int) -> list[MinuteCount]:
    """Copies of the issue sent in each minute of its send (minutes with none left out)."""
    ledger.status(db, issue_id)  # NotFound for an unknown issue
    return [MinuteCount(minute=m, sent=n) for m, n in store.sent_per_minute(db, issue_id).items()]


@dataclass(frozen=True, slots=True)
class IssueFailures:
    """Why an issue's copies failed or wait for another try."""

    status: IssueStatus
    reasons: tuple[tuple[str, int], ...]
    """The most common reasons, with how many recipients each."""
    rows: tuple[FailedDelivery, ...] = ()
    """Each failed or retrying recipient (when asked for)."""


def issue_failures(db: Engine, issue: int | str, *, rows: bool = False) -> IssueFailures:
    """The failures of one issue (an id, slug or key): counts, the commonest reasons and,
    with `rows`, every failed or retrying recipient with the provider's reason."""
    found = issue_status(db, issue)[0]  # a slug sent more than once: the newest issue
    return IssueFailures(
        status=found,
        reasons=tuple(ledger.failure_reasons(db, found.issue_id)),
        rows=tuple(ledger.failures(db, found.issue_id)) if rows else (),
    )


def issue_status(db: Engine, issue: int | str | None = None, *, limit: int | None = None) -> list[IssueStatus]:
    """Delivery counts per issue, newest first; `issue` (an id, slug or key) narrows to one,
    `limit` to the newest that many."""
    found = ledger.status(db, issue, limit=limit)
    if issue is not None and not found:
        raise NotFound(f"no issue {issue!r}")
    return found
