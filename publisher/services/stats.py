"""Figures: subscribers per day, what became of an issue, and a send's pace per minute.

Days and minutes are UTC. Per issue: copies sent (accepted by the provider: no provider
here reports deliveries back, so none is called "delivered"), deferred (waiting for
another try), failed, and the bounces, complaints and unsubscribes recorded for it. An
unsubscribe counts for an issue only when the reader left by a link in that issue's
message (the one-click List-Unsubscribe POST, the footer link, or the reader's page
opened from it); a provider's bounce or complaint, for the reader's latest copy in the
week before it (`store.subscribers.issue_for_event`). Each counts for one issue at most.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine

from publisher.errors import InvalidRequest, NotFound
from publisher.store import ledger
from publisher.store import stats as store
from publisher.store.issues import FailedDelivery, IssueStatus, deferred_reasons

__all__ = [
    "MAX_DAYS", "DayCounts", "IssueCounts", "IssueFailures", "IssueReasons", "IssueReport", "MinuteCount", "Reason",
    "issue_counts", "issue_failures", "issue_reasons", "issue_report", "issue_status", "issues_counts", "send_pace",
    "subscriber_days",
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
    """Copies the provider accepted: sent, not known delivered."""
    failed: int
    bounced: int
    complained: int
    unsubscribed: int
    """Readers who left by a link in this issue's message."""
    deferred: int = 0
    """Copies waiting for another try after a temporary refusal."""


@dataclass(frozen=True, slots=True)
class Reason:
    """Why some copies of an issue ended as they did: the reason, how many, and (for
    owners) the addresses, when recorded."""

    reason: str
    count: int
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class IssueReasons:
    """Each of an issue's numbers with its reasons, to open on the issue's page."""

    deferred: tuple[Reason, ...]
    bounced: tuple[Reason, ...]
    complained: tuple[Reason, ...]
    unsubscribed: tuple[Reason, ...]


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
    return list(_day_lines(first, days, tuple(sorted(counted.items()))))


@functools.lru_cache(maxsize=8)
def _day_lines(first: date, days: int, counted: tuple[tuple[tuple[str, str], int], ...]) -> tuple[DayCounts, ...]:
    """The lines of `subscriber_days` from the store's counts, kept for the next call with
    the same counts: Home asks for 90 days on every look, and they change far less often."""
    found = dict(counted)
    lines: list[DayCounts] = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        key = day.isoformat()  # YYYY-MM-DD, as the store keys days
        values = {name: found.get((key, kind), 0) for kind, name in _FIELDS.items()}
        lines.append(DayCounts(day=day, **values))
    return tuple(lines)


def issue_counts(db: Engine, issue_id: int) -> IssueCounts:
    """Sent, deferred and failed copies of an issue, and the reactions recorded for it."""
    (line,) = ledger.status(db, issue_id)
    return _counts(line, store.reactions(db, [issue_id]).get(issue_id, {}))


def issues_counts(db: Engine, lines: Sequence[IssueStatus]) -> list[IssueCounts]:
    """`issue_counts` for issues whose status is already at hand (a list of the newest):
    one query for what their readers did, none for the ledger again."""
    after = store.reactions(db, [line.issue_id for line in lines])
    return [_counts(line, after.get(line.issue_id, {})) for line in lines]


def _counts(line: IssueStatus, after: dict[str, int]) -> IssueCounts:
    return IssueCounts(
        issue_id=line.issue_id,
        sent=line.sent,
        failed=line.failed,
        bounced=after.get("bounce", 0),
        complained=after.get("complaint", 0),
        unsubscribed=after.get("unsubscribe", 0),
        deferred=line.retrying,
    )


_HOW = {
    "one-click": "the mail program's one-click unsubscribe",
    "web page": "the unsubscribe link in the message",
}


def _reason(kind: str, provider: str, detail: str) -> str:
    if kind == "unsubscribe":
        return _HOW.get(detail, detail or "a link in this message")
    text = detail or f"{kind} with no reason given"
    return f"{text} ({provider})" if provider else text


REASONS_SHOWN = 200
"""Addresses listed under each reason of an issue for an owner; the counts cover them all."""


def issue_reasons(db: Engine, issue_id: int, *, addresses: bool, shown: int = REASONS_SHOWN) -> IssueReasons:
    """Each number of an issue with its reasons, commonest first; with `addresses` (an
    owner asking), the readers' addresses under each reason, at most `shown` of each
    (the counts cover them all)."""
    ledger.status(db, issue_id)  # NotFound for an unknown issue
    return _reasons(db, issue_id, addresses=addresses, shown=shown)


def _reasons(db: Engine, issue_id: int, *, addresses: bool, shown: int) -> IssueReasons:
    grouped: dict[str, dict[str, list[str]]] = {kind: {} for kind in store.REACTIONS}
    for item in store.reactions_to_issue(db, issue_id, limit=shown):
        grouped[item.kind].setdefault(_reason(item.kind, item.provider, item.detail), []).append(item.email)

    def listed(found: dict[str, list[str]]) -> tuple[Reason, ...]:
        ordered = sorted(found.items(), key=lambda item: (-len(item[1]), item[0]))
        return tuple(Reason(why, len(who), tuple(who) if addresses else ()) for why, who in ordered)

    deferred = tuple(
        Reason(item.reason, item.count, item.addresses)
        for item in deferred_reasons(db, issue_id, addresses=shown if addresses else 0)
    )
    return IssueReasons(
        deferred=deferred, bounced=listed(grouped["bounce"]),
        complained=listed(grouped["complaint"]), unsubscribed=listed(grouped["unsubscribe"]),
    )


@dataclass(frozen=True, slots=True)
class IssueReport:
    """What an issue's page shows from the ledger, read once: its status, counts and
    reasons, its pace, and the copies that failed or wait for another try."""

    status: IssueStatus
    counts: IssueCounts
    reasons: IssueReasons
    pace: tuple[MinuteCount, ...]
    failures: tuple[FailedDelivery, ...]
    """Failed rows, then retrying ones, by address: at most the `shown` asked for."""


def issue_report(db: Engine, issue_id: int, *, addresses: bool, shown: int) -> IssueReport:
    """The issue's report (NotFound for an unknown issue). The ledger's counts for the issue
    are read once, and its failed and retrying rows once, however many figures use them:
    on a list of a million readers each reading is the cost of the page."""
    (line,) = issue_status(db, issue_id)
    return IssueReport(
        status=line,
        counts=issues_counts(db, [line])[0],
        reasons=_reasons(db, issue_id, addresses=addresses, shown=shown),
        pace=tuple(MinuteCount(minute=m, sent=n) for m, n in store.sent_per_minute(db, issue_id).items()),
        failures=tuple(ledger.failures(db, issue_id, limit=shown)),
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
