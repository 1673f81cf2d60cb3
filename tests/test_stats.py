"""Figures counted by the database: subscriber events per UTC day and what readers did
after an issue, on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from store_support import BACKENDS, open_test_store

from publisher.services import stats
from publisher.store import ledger, subscribers
from publisher.store import stats as store_stats
from publisher.store.schema import deliveries, events
from publisher.store.schema import subscribers as subscriber_rows

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """SQLite in tmp_path; PostgreSQL too when $PUBLISHER_TEST_POSTGRES_URL is set."""
    engine = open_test_store(request.param, tmp_path)
    yield engine
    engine.dispose()


def add_reader(db: sa.Engine, n: int, *, joined: datetime = NOW - timedelta(days=30)) -> int:
    with db.begin() as conn:
        return int(conn.execute(sa.insert(subscriber_rows).values(
            email=f"reader{n}@example.org", name="", status="active", source="test",
            created_at=joined, updated_at=joined, token_key=f"{n:032x}",
        ).returning(subscriber_rows.c.id)).scalar_one())


def event(db: sa.Engine, subscriber_id: int | None, kind: str, at: datetime) -> None:
    with db.begin() as conn:
        conn.execute(sa.insert(events).values(
            subscriber_id=subscriber_id, email="x@example.org", kind=kind, provider="", detail="", created_at=at,
        ))


def sent_issue(db: sa.Engine, key: str, readers: dict[int, datetime | None], *, made: datetime) -> int:
    """An issue made at `made` whose copy to each reader was sent at the given time (None: not sent)."""
    issue_id = ledger.create_issue(db, key=key, kind="article", slug=key, subject=key, html="<p>x</p>",
                                   text="x", tag=None, status="done", now=made)
    with db.begin() as conn:
        conn.execute(sa.insert(deliveries), [
            {"issue_id": issue_id, "subscriber_id": sid, "email": f"r{sid}@example.org", "name": "",
             "state": "sent" if at else "failed", "attempts": 1, "not_before": made, "sent_at": at,
             "provider_id": "", "detail": "", "uncertain": False, "message_key": f"{key}.{sid}"}
            for sid, at in readers.items()
        ])
    return issue_id


def test_events_are_counted_per_utc_day_by_the_database(db: sa.Engine) -> None:
    """A day is a UTC day whatever zone the time came in; only the asked kinds and window count."""
    one = add_reader(db, 1)
    berlin = timezone(timedelta(hours=1))
    event(db, one, "subscribe", datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=UTC))
    event(db, one, "subscribe", datetime(2026, 3, 2, 0, 30, tzinfo=berlin))  # 2026-03-01 23:30 UTC
    event(db, one, "subscribe", datetime(2026, 3, 2, 0, 0, tzinfo=UTC))
    event(db, one, "unsubscribe", datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    event(db, one, "erase", datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    event(db, one, "subscribe", datetime(2026, 2, 28, 23, 59, tzinfo=UTC))  # before the window
    event(db, None, "bounce", datetime(2026, 3, 3, 0, 0, tzinfo=UTC))  # at its end: not in it
    counted = store_stats.events_per_day(
        db, since=datetime(2026, 3, 1, tzinfo=UTC), until=datetime(2026, 3, 3, tzinfo=UTC),
        kinds=("subscribe", "unsubscribe", "bounce"),
    )
    assert counted == {("2026-03-01", "subscribe"): 2, ("2026-03-02", "subscribe"): 1,
                       ("2026-03-02", "unsubscribe"): 1}
    days = stats.subscriber_days(db, now=NOW, days=2)
    assert [(d.day.isoformat(), d.joined, d.left) for d in days] == [("2026-03-01", 2, 0), ("2026-03-02", 1, 1)]


def test_a_bounce_or_complaint_counts_for_the_readers_latest_copy_within_a_week(db: sa.Engine) -> None:
    """A provider's report counts once, for its reader's latest copy sent in the week
    before it: never for every earlier issue, a copy not sent, or another reader's issue."""
    a, b, c = (add_reader(db, n) for n in range(3))
    old = sent_issue(db, "old", {a: NOW - timedelta(days=20), b: NOW - timedelta(days=3), c: NOW - timedelta(days=3)},
                     made=NOW - timedelta(days=20))
    new = sent_issue(db, "new", {a: NOW - timedelta(days=2), b: NOW - timedelta(days=2), c: None},
                     made=NOW - timedelta(days=2))
    late = sent_issue(db, "late", {a: NOW - timedelta(days=10)}, made=NOW - timedelta(days=10))
    subscribers.suppress(db, "reader0@example.org", "complaint", provider="ses", detail="abuse", now=NOW)
    subscribers.suppress(db, "reader1@example.org", "bounce", provider="ses", detail="mailbox full", now=NOW)
    subscribers.suppress(db, "reader2@example.org", "bounce", provider="ses", now=NOW)  # "new" never went to c
    found = store_stats.reactions(db, [old, new, late])
    assert found == {new: {"complaint": 1, "bounce": 1}, old: {"bounce": 1}}
    assert store_stats.reactions(db, []) == {}
    assert store_stats.reactions(db, [9999]) == {}
    lines = stats.issue_status(db, limit=3)
    assert stats.issues_counts(db, lines) == [stats.issue_counts(db, line.issue_id) for line in lines]


def test_a_report_a_week_after_the_last_copy_counts_for_no_issue(db: sa.Engine) -> None:
    """A bounce more than AFTER_ISSUE after the reader's last copy names no issue."""
    a = add_reader(db, 0)
    sent_issue(db, "old", {a: NOW - timedelta(days=8)}, made=NOW - timedelta(days=8))
    subscribers.suppress(db, "reader0@example.org", "bounce", provider="ses", now=NOW)
    with db.connect() as conn:
        assert conn.execute(sa.select(events.c.issue_id).where(events.c.kind == "bounce")).scalar() is None
