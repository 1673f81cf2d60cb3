"""Who an issue went to and what a reader received: the ledger's copies a page at a time,
each in plain words, filtered by state, searched by address, an erased reader kept nameless."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from store_support import BACKENDS, open_test_store

from publisher.delivery.retry import RetryPolicy
from publisher.errors import InvalidRequest, NotFound
from publisher.models import Outcome, SendResult
from publisher.services import recipients
from publisher.store import ledger, subscribers
from publisher.store.ledger import reading
from publisher.store.schema import deliveries

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=5, base=10.0, cap=100.0)


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """SQLite in tmp_path; PostgreSQL too when $PUBLISHER_TEST_POSTGRES_URL is set."""
    engine = open_test_store(request.param, tmp_path)
    yield engine
    engine.dispose()


def issue(db: sa.Engine, key: str = "k", subject: str = "K") -> int:
    return ledger.create_issue(
        db,
        key=key,
        kind="article",
        slug=key,
        subject=subject,
        html="<p>k</p>",
        text="k",
        tag=None,
        status="draft",
        now=NOW,
    )


def readers(db: sa.Engine, count: int) -> None:
    for n in range(count):
        subscribers.add(db, f"r{n:02}@example.org", now=NOW)


def answer(db: sa.Engine, outcomes: dict[str, tuple[Outcome, str]]) -> None:
    """Claim every queued copy and record the outcome named for its address (sent otherwise)."""
    rows = ledger.claim(db, worker="w", limit=1000, now=NOW)
    ledger.record(
        db,
        [SendResult(r.id, r.email, *outcomes.get(r.email, (Outcome.SENT, ""))) for r in rows],
        now=NOW,
        policy=POLICY,
        worker="w",
    )


def test_pages_follow_the_ledger_rows_id_to_the_end(db: sa.Engine) -> None:
    """Five copies in pages of two: each page starts after the last, the last says no more."""
    readers(db, 5)
    sent = issue(db)
    ledger.enqueue(db, sent, now=NOW)
    seen: list[str] = []
    after = None
    while True:
        page = recipients.issue_readers(db, sent, after=after, limit=2)
        seen += [c.email for c in page.copies]
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == [f"r{n:02}@example.org" for n in range(5)]


def test_each_copy_is_told_in_plain_words_with_the_providers_reason(db: sa.Engine) -> None:
    """Accepted, retrying and failed copies read as such, the failure with the provider's answer."""
    readers(db, 3)
    sent = issue(db)
    ledger.enqueue(db, sent, now=NOW)
    answer(
        db,
        {
            "r01@example.org": (Outcome.RETRY, "451 mailbox busy"),
            "r02@example.org": (Outcome.FAILED, "550 5.1.1 no such user"),
        },
    )
    page = recipients.issue_readers(db, sent)
    assert [recipients.words(c) for c in page.copies] == [
        "accepted by the provider",
        "retrying after 1 attempt (451 mailbox busy)",
        "failed: 550 5.1.1 no such user",
    ]


def test_a_filter_by_state_lists_those_copies_only(db: sa.Engine) -> None:
    """Filtered by "failed", only the failed copy is listed; by "waiting", the queued ones."""
    readers(db, 3)
    sent = issue(db)
    ledger.enqueue(db, sent, now=NOW)
    answer(db, {"r02@example.org": (Outcome.FAILED, "550 no")})
    assert [c.email for c in recipients.issue_readers(db, sent, state="failed").copies] == ["r02@example.org"]
    assert recipients.issue_readers(db, sent, state="waiting").copies == ()
    assert len(recipients.issue_readers(db, sent, state="sent").copies) == 2


def test_a_bounce_recorded_for_the_issue_marks_its_copy(db: sa.Engine) -> None:
    """A reader whose copy bounced is listed under "bounced", told as accepted then bounced."""
    readers(db, 2)
    sent = issue(db)
    ledger.enqueue(db, sent, now=NOW)
    answer(db, {})
    subscribers.suppress(db, "r01@example.org", "bounce", provider="postmark", detail="mailbox full", now=NOW)
    (copy,) = recipients.issue_readers(db, sent, state="bounced").copies
    assert copy.email == "r01@example.org"
    assert recipients.words(copy) == "accepted by the provider; bounced (mailbox full)"


def test_a_reaction_to_another_issue_does_not_mark_this_one(db: sa.Engine) -> None:
    """A complaint about the reader's latest issue is not listed against an earlier one."""
    readers(db, 1)
    first, second = issue(db, "a"), issue(db, "b")
    ledger.enqueue(db, first, now=NOW)
    answer(db, {})
    ledger.enqueue(db, second, now=NOW)
    answer(db, {})
    subscribers.suppress(db, "r00@example.org", "complaint", provider="ses", now=NOW)
    assert recipients.issue_readers(db, first, state="complained").copies == ()
    assert len(recipients.issue_readers(db, second, state="complained").copies) == 1


def test_a_search_finds_a_part_of_the_address(db: sa.Engine) -> None:
    """A part such as "r03" finds that one reader; a "%" is a character, not a wildcard."""
    readers(db, 5)
    sent = issue(db)
    ledger.enqueue(db, sent, now=NOW)
    assert [c.email for c in recipients.issue_readers(db, sent, search="R03").copies] == ["r03@example.org"]
    assert recipients.issue_readers(db, sent, search="%").copies == ()


def test_a_long_search_stops_and_says_how_far_it_looked(db: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a span of three copies, a search for the fifth reader stops at the third and goes on from there."""
    monkeypatch.setattr(reading, "SEARCH_SPAN", 3)
    readers(db, 5)
    sent = issue(db)
    ledger.enqueue(db, sent, now=NOW)
    first = recipients.issue_readers(db, sent, search="r04")
    assert first.copies == () and first.has_more
    third = recipients.issue_readers(db, sent).copies[2].id
    assert first.looked_to == first.next_after == third
    further = recipients.issue_readers(db, sent, search="r04", after=first.next_after)
    assert [c.email for c in further.copies] == ["r04@example.org"] and not further.has_more


def test_an_erased_readers_copy_stays_without_their_address(db: sa.Engine) -> None:
    """After an erasure the copy is still listed, erased, with no address and no reason."""
    readers(db, 2)
    sent = issue(db)
    ledger.enqueue(db, sent, now=NOW)
    answer(db, {"r00@example.org": (Outcome.FAILED, "550 r00@example.org unknown")})
    subscribers.remove(db, "r00@example.org", now=NOW, purge=True)
    erased, kept = recipients.issue_readers(db, sent).copies
    assert erased.erased and erased.email == "" and "r00" not in recipients.words(erased)
    assert not kept.erased and kept.email == "r01@example.org"


def test_an_unknown_issue_or_state_is_refused(db: sa.Engine) -> None:
    """An issue that does not exist is NotFound; a state not offered is InvalidRequest."""
    with pytest.raises(NotFound):
        recipients.issue_readers(db, 999)
    with pytest.raises(InvalidRequest, match="unknown state"):
        recipients.issue_readers(db, issue(db), state="opened")


def test_a_readers_issues_come_newest_first_in_pages(db: sa.Engine) -> None:
    """Three issues to one reader, in pages of two: the newest first, each with its subject."""
    readers(db, 1)
    for n in range(3):
        ledger.enqueue(db, issue(db, f"k{n}", f"Subject {n}"), now=NOW)
    reader = subscribers.find(db, "r00@example.org")
    assert reader is not None
    first = recipients.reader_issues(db, reader.id, limit=2)
    assert [c.subject for c in first.copies] == ["Subject 2", "Subject 1"]
    rest = recipients.reader_issues(db, reader.id, before=first.next_before, limit=2)
    assert [c.subject for c in rest.copies] == ["Subject 0"] and rest.next_before is None


def test_a_readers_copy_carries_their_unsubscribe_from_it(db: sa.Engine) -> None:
    """A reader who left by the link in one issue's message reads "unsubscribed from this message" there."""
    readers(db, 1)
    sent = issue(db)
    ledger.enqueue(db, sent, now=NOW)
    answer(db, {})
    reader = subscribers.find(db, "r00@example.org")
    assert reader is not None
    (row,) = recipients.issue_readers(db, sent).copies
    with db.connect() as conn:
        key = conn.execute(sa.text("SELECT message_key FROM deliveries WHERE id = :id"), {"id": row.id}).scalar()
    subscribers.suppress(db, reader.email, "unsubscribe", provider="link", now=NOW, message_key=key)
    (copy,) = recipients.reader_issues(db, reader.id).copies
    assert recipients.words(copy) == "accepted by the provider; unsubscribed from this message"


def fill(db: sa.Engine, issue_id: int, count: int) -> None:
    """`count` copies of the issue, every tenth failed, the rest accepted (no readers behind them)."""
    rows = [
        {
            "issue_id": issue_id,
            "subscriber_id": None,
            "email": f"c{n}@example.org",
            "name": "",
            "state": "failed" if n % 10 == 0 else "sent",
            "attempts": 1,
            "not_before": NOW,
            "sent_at": NOW,
            "provider_id": "",
            "detail": "",
            "message_key": f"m{n}",
            "uncertain": False,
        }
        for n in range(count)
    ]
    with db.begin() as conn:
        conn.execute(sa.insert(deliveries), rows)
    if db.dialect.name == "postgresql":
        with db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE deliveries")


def statements_of(db: sa.Engine, read: Callable[[], object]) -> list[tuple[str, Any]]:
    ran: list[tuple[str, Any]] = []

    def seen(conn: object, cursor: object, statement: str, parameters: Any, *rest: object) -> None:
        ran.append((statement, parameters))

    sa.event.listen(db, "before_cursor_execute", seen)
    try:
        read()
    finally:
        sa.event.remove(db, "before_cursor_execute", seen)
    return [(s, p) for s, p in ran if "deliveries" in s and s.lstrip().upper().startswith("SELECT")]


def rows_touched(plan: dict[str, Any]) -> int:
    """The most rows any node of a PostgreSQL plan produced or threw away."""
    own = plan.get("Actual Rows", 0) * plan.get("Actual Loops", 1) + plan.get("Rows Removed by Filter", 0)
    return max([own, *(rows_touched(p) for p in plan.get("Plans", ()))])


@pytest.mark.parametrize("state", ["", "sent", "failed"])
@pytest.mark.parametrize("where", ["first", "middle"])
def test_a_page_of_a_long_issue_reads_a_page_not_the_issue(db: sa.Engine, state: str, where: str) -> None:
    """10,000 copies after another issue's 10,000: a page reads at most a thousand ledger entries, by index."""
    fill(db, issue(db, "before"), 10_000)
    sent = issue(db)
    fill(db, sent, 10_000)
    after = None if where == "first" else recipients.issue_readers(db, sent, limit=1).copies[0].id + 5_000
    read = statements_of(db, lambda: recipients.issue_readers(db, sent, state=state, after=after))
    assert read, "no statement read the ledger"
    with db.connect() as conn:
        for statement, parameters in read:
            if db.dialect.name == "postgresql":
                (plan,) = conn.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters).scalar()
                assert rows_touched(plan["Plan"]) <= 1_000, plan
            else:
                steps = [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
                scans = [s for s in steps if s.startswith("SCAN deliveries")]
                assert not scans, steps


def test_a_copy_that_may_have_gone_twice_says_so(db: sa.Engine) -> None:
    """A copy in flight when its sender stopped is told as possibly received twice, not hidden."""
    readers(db, 1)
    sent = issue(db)
    ledger.enqueue(db, sent, now=NOW)
    with db.begin() as conn:
        conn.execute(sa.update(deliveries).values(state="sent", sent_at=NOW, uncertain=True))
    (copy,) = recipients.issue_readers(db, sent).copies
    assert recipients.words(copy) == (
        "accepted by the provider; may have reached them twice (a sender stopped while it was in flight)"
    )
