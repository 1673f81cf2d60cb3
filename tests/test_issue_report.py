"""An issue's report reads as much of the ledger as its page shows: the reasons of deferred
copies grouped by the database with exact counts, a bounded list of addresses and failures."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from store_support import BACKENDS, open_test_store

from publisher.delivery.retry import RetryPolicy
from publisher.models import Outcome, SendResult
from publisher.services import stats
from publisher.store import ledger, subscribers

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=5, base=10.0, cap=100.0)


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """SQLite in tmp_path; PostgreSQL too when $PUBLISHER_TEST_POSTGRES_URL is set."""
    engine = open_test_store(request.param, tmp_path)
    yield engine
    engine.dispose()


def deferred_send(db: sa.Engine, count: int, answer: str = "451 4.2.0 <{email}> mailbox busy") -> int:
    for n in range(count):
        subscribers.add(db, f"r{n:02}@example.org", now=NOW)
    issue = ledger.create_issue(db, key="k", kind="article", slug="k", subject="K", html="<p>k</p>", text="k",
                                tag=None, status="draft", now=NOW)
    ledger.enqueue(db, issue, now=NOW)
    rows = ledger.claim(db, worker="w", limit=count, now=NOW)
    ledger.record(db, [SendResult(row.id, row.email, Outcome.RETRY, answer.format(email=row.email)) for row in rows],
                  now=NOW, policy=POLICY, worker="w")
    return issue


def test_deferred_copies_are_counted_whole_with_a_bounded_list_of_addresses(db: sa.Engine) -> None:
    """Five copies deferred for one cause: one reason, counted five, listing the first two addresses."""
    issue = deferred_send(db, 5)
    report = stats.issue_report(db, issue, addresses=True, shown=2)
    (reason,) = report.reasons.deferred
    assert (reason.reason, reason.count) == ("451 4.2.0 <…> mailbox busy", 5)
    assert reason.addresses == ("r00@example.org", "r01@example.org")
    assert [row.email for row in report.failures] == ["r00@example.org", "r01@example.org"]


def test_an_editor_sees_the_reasons_without_addresses(db: sa.Engine) -> None:
    """Without `addresses` the reasons keep their counts and name nobody."""
    issue = deferred_send(db, 3)
    (reason,) = stats.issue_report(db, issue, addresses=False, shown=200).reasons.deferred
    assert (reason.count, reason.addresses) == (3, ())


def test_an_erased_readers_deferred_copy_counts_with_no_reason_recorded(db: sa.Engine) -> None:
    """An erased reader's copy keeps neither address nor answer: it counts under "no reason
    recorded", not under a reason made of the address taken out of nothing."""
    issue = deferred_send(db, 2, answer="421 try later")
    subscribers.remove(db, "r00@example.org", purge=True, now=NOW)
    reasons = stats.issue_reasons(db, issue, addresses=False).deferred
    assert sorted((reason.reason, reason.count) for reason in reasons) == [
        ("421 try later", 1), ("no reason recorded", 1),
    ]
