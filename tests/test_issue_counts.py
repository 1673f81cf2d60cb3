"""An issue's copies per state kept by the database (`issue_counts`, migration 0031) equal a
real COUNT(*) of the ledger after every path that moves a copy, on SQLite and (when
configured) PostgreSQL; `publisher status`, Home and the report read them."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pg_server import fresh_database
from store_support import BACKENDS, POSTGRES_ENV, open_test_store

from publisher.delivery.retry import RetryPolicy
from publisher.models import Outcome, SendResult
from publisher.store import ledger, open_store, subscribers
from publisher.store.glance import issue_lines
from publisher.store.issues import fold_issue_counts
from publisher.store.schema import deliveries, issue_count_changes, issue_counts, issues

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=2, base=10.0, cap=100.0)


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """SQLite in tmp_path; PostgreSQL too when $PUBLISHER_TEST_POSTGRES_URL is set."""
    engine = open_test_store(request.param, tmp_path)
    yield engine
    engine.dispose()


def kept(db: sa.Engine) -> dict[tuple[int, str], int]:
    fold_issue_counts(db)
    with db.connect() as conn:
        rows = conn.execute(sa.select(issue_counts.c.issue_id, issue_counts.c.state, issue_counts.c.number)).all()
        assert conn.execute(sa.select(sa.func.count()).select_from(issue_count_changes)).scalar_one() == 0
    assert all(number >= 0 for _, _, number in rows), rows
    return {(issue_id, state): number for issue_id, state, number in rows if number}


def counted(db: sa.Engine) -> dict[tuple[int, str], int]:
    with db.connect() as conn:
        found = {(issue_id, state): number for issue_id, state, number in conn.execute(
            sa.select(deliveries.c.issue_id, deliveries.c.state, sa.func.count())
            .group_by(deliveries.c.issue_id, deliveries.c.state))}
        found.update({(issue_id, "uncertain"): number for issue_id, number in conn.execute(
            sa.select(deliveries.c.issue_id, sa.func.count()).where(deliveries.c.uncertain == sa.true())
            .group_by(deliveries.c.issue_id))})
    return found


def assert_true(db: sa.Engine) -> None:
    assert kept(db) == counted(db)


def readers(db: sa.Engine, count: int, *, prefix: str = "r") -> list[str]:
    addresses = [f"{prefix}{n}@example.org" for n in range(count)]
    for address in addresses:
        subscribers.add(db, address, now=NOW)
    return addresses


def new_issue(db: sa.Engine, key: str = "first") -> int:
    return ledger.create_issue(db, key=key, kind="article", slug=key, subject="First", html="<p>one</p>",
                               text="one", tag=None, status="draft", now=NOW)


def test_a_send_counts_its_copies_queued(db: sa.Engine) -> None:
    """Enqueuing the list writes the issue's queued count in the same transaction."""
    readers(db, 4)
    issue = new_issue(db)
    ledger.enqueue(db, issue, now=NOW)
    assert kept(db) == {(issue, "queued"): 4}
    assert ledger.status(db, issue)[0].queued == 4


def test_a_claim_moves_copies_to_sending_and_skips_a_reader_who_left(db: sa.Engine) -> None:
    """A claim takes copies from queued to sending, or to skipped for a reader who left."""
    readers(db, 4)
    issue = new_issue(db)
    ledger.enqueue(db, issue, now=NOW)
    subscribers.suppress(db, "r0@example.org", "unsubscribe", provider="test", now=NOW)
    ledger.claim(db, worker="w", limit=10, now=NOW)
    assert kept(db) == {(issue, "sending"): 3, (issue, "skipped"): 1}
    assert_true(db)


def test_each_answer_moves_its_copy(db: sa.Engine) -> None:
    """Sent, a retry, a failure and an answer lost after the data left each move their count."""
    readers(db, 4)
    issue = new_issue(db)
    ledger.enqueue(db, issue, now=NOW)
    rows = ledger.claim(db, worker="w", limit=10, now=NOW)
    outcomes = [(Outcome.SENT, False), (Outcome.RETRY, False), (Outcome.FAILED, False), (Outcome.RETRY, True)]
    ledger.record(db, [SendResult(row.id, row.email, outcome, "451 later", maybe_sent=maybe)
                       for row, (outcome, maybe) in zip(rows, outcomes, strict=True)],
                  now=NOW, policy=POLICY, worker="w")
    assert kept(db) == {(issue, "sent"): 1, (issue, "retry"): 2, (issue, "failed"): 1, (issue, "uncertain"): 1}
    line = ledger.status(db, issue)[0]
    assert (line.sent, line.retrying, line.failed, line.uncertain) == (1, 2, 1, 1)
    assert_true(db)


def test_copies_released_or_recovered_in_flight_count_as_uncertain(db: sa.Engine) -> None:
    """A send that raised and a worker that died put their copies back, counted uncertain."""
    readers(db, 4)
    issue = new_issue(db)
    ledger.enqueue(db, issue, now=NOW)
    rows = ledger.claim(db, worker="w", limit=2, now=NOW)
    ledger.release(db, [row.id for row in rows], worker="w", uncertain=True)
    ledger.claim(db, worker="gone@nowhere:1", limit=4, now=NOW)
    ledger.recover(db, now=NOW + timedelta(hours=1), lease=timedelta(minutes=5))
    assert kept(db) == {(issue, "queued"): 4, (issue, "uncertain"): 4}
    assert_true(db)


def test_cancelling_and_retrying_failed_copies_move_them(db: sa.Engine) -> None:
    """Cancel skips the queued copies; "retry the failed" queues them again."""
    readers(db, 3)
    issue = new_issue(db)
    ledger.enqueue(db, issue, now=NOW)
    rows = ledger.claim(db, worker="w", limit=1, now=NOW)
    ledger.record(db, [SendResult(rows[0].id, rows[0].email, Outcome.FAILED, "550 no")], now=NOW, policy=POLICY)
    ledger.cancel_queued(db, issue, now=NOW)
    assert kept(db) == {(issue, "failed"): 1, (issue, "skipped"): 2}
    ledger.retry_failed(db, issue, now=NOW)
    assert kept(db) == {(issue, "queued"): 1, (issue, "skipped"): 2}
    assert_true(db)


def test_an_erased_reader_and_a_deleted_issue_keep_the_counts_true(db: sa.Engine) -> None:
    """An erased reader's copy stays counted (anonymous); an issue removed takes its copies off."""
    readers(db, 3)
    first, second = new_issue(db), new_issue(db, "second")
    ledger.enqueue(db, first, now=NOW)
    ledger.enqueue(db, second, now=NOW)
    subscribers.remove(db, "r1@example.org", purge=True, now=NOW)
    assert kept(db) == {(first, "queued"): 3, (second, "queued"): 3}
    with db.begin() as conn:
        if db.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys = ON")
        conn.execute(sa.delete(issues).where(issues.c.id == second))
    assert kept(db) == {(first, "queued"): 3}
    assert_true(db)


def test_status_reads_the_kept_counts_not_the_ledger(db: sa.Engine) -> None:
    """`status` answers from `issue_counts`: a count written there is what it reports."""
    readers(db, 2)
    issue = new_issue(db)
    ledger.enqueue(db, issue, now=NOW)
    fold_issue_counts(db)
    with db.begin() as conn:
        conn.execute(sa.update(issue_counts).where(issue_counts.c.issue_id == issue).values(number=7))
    assert ledger.status(db, issue)[0].queued == 7


def test_the_glance_reads_the_kept_counts(tmp_path: Path) -> None:
    """`publisher status` without SQLAlchemy answers from `issue_counts` as the store does."""
    url = f"sqlite:///{tmp_path / 'glance.db'}"
    engine = open_store(url)
    readers(engine, 3)
    issue = new_issue(engine)
    ledger.enqueue(engine, issue, now=NOW)
    ledger.claim(engine, worker="w", limit=1, now=NOW)
    engine.dispose()
    assert issue_lines(url) == ledger.status(open_store(url))
    assert [(line.queued, line.sending) for line in issue_lines(url) or []] == [(2, 1)]


def test_postgresql_appends_one_line_per_state_a_statement_moves(tmp_path: Path) -> None:
    """On PostgreSQL a claim of many copies appends one line per (issue, state), not one per copy."""
    db = open_test_store(BACKENDS[-1], tmp_path) if "postgresql" in BACKENDS else None
    if db is None:
        pytest.skip("set PUBLISHER_TEST_POSTGRES_URL to run against PostgreSQL")
    readers(db, 30)
    issue = new_issue(db)
    ledger.enqueue(db, issue, now=NOW)
    fold_issue_counts(db)
    ledger.claim(db, worker="w", limit=25, now=NOW)
    with db.connect() as conn:
        lines = conn.execute(sa.select(issue_count_changes.c.state, issue_count_changes.c.number)).all()
    assert sorted(lines) == [("queued", -25), ("sending", 25)]
    assert ledger.status(db, issue)[0].sending == 25
    db.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_migration_counts_a_ledger_that_was_already_there(backend: str, tmp_path: Path) -> None:
    """A store at revision 0030 with copies gets its issue counts from the rows it holds."""
    from alembic import command

    from publisher.store.engine import alembic_config

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        url = fresh_database(os.environ[POSTGRES_ENV], "publisher_issue_counts_migration")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(connection=conn), "0030")
        issue = conn.execute(sa.insert(issues).values(
            key="k", kind="article", slug="k", subject="K", html="", text="", status="done", created_at=NOW,
        ).returning(issues.c.id)).scalar_one()
        conn.execute(sa.insert(deliveries), [
            {"issue_id": issue, "email": f"x{n}@example.org", "name": "", "state": state, "attempts": 0,
             "not_before": NOW, "provider_id": "", "detail": "", "message_key": f"m{n}", "uncertain": uncertain}
            for n, (state, uncertain) in enumerate([("sent", False), ("sent", True), ("failed", False),
                                                    ("queued", True)])
        ])
    engine.dispose()
    migrated = open_store(url)
    assert kept(migrated) == {(issue, "sent"): 2, (issue, "failed"): 1, (issue, "queued"): 1,
                              (issue, "uncertain"): 2}
    migrated.dispose()


ADDRESSES = [f"p{n}@example.org" for n in range(6)]
operations = st.lists(
    st.one_of(
        st.tuples(st.just("enqueue"), st.integers(0, 1)),
        st.tuples(st.just("claim"), st.integers(1, 4)),
        st.tuples(st.just("answer"), st.sampled_from(list(Outcome)), st.booleans()),
        st.tuples(st.just("release"), st.booleans()),
        st.tuples(st.just("recover")),
        st.tuples(st.just("cancel"), st.integers(0, 1)),
        st.tuples(st.just("retry"), st.integers(0, 1)),
        st.tuples(st.just("leave"), st.sampled_from(ADDRESSES)),
        st.tuples(st.just("erase"), st.sampled_from(ADDRESSES)),
    ),
    max_size=14,
)
_round = itertools.count()


@pytest.fixture(scope="module", params=BACKENDS)
def shared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    """One store for every example: SQLite, and PostgreSQL when configured."""
    engine = open_test_store(request.param, tmp_path_factory.mktemp("issue_counts"))
    yield engine
    engine.dispose()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=operations)
def test_any_sequence_of_sends_keeps_the_counts_true(shared: sa.Engine, steps: list[tuple]) -> None:  # type: ignore[type-arg]
    """Whatever a send goes through, in any order, every kept count equals a COUNT(*) after each step."""
    prefix = f"s{next(_round)}"
    for address in ADDRESSES:
        subscribers.add(shared, f"{prefix}.{address}", now=NOW)
    pair = [new_issue(shared, f"{prefix}-a"), new_issue(shared, f"{prefix}-b")]
    held: list[ledger.ClaimedRow] = []
    for step in steps:
        verb, rest = step[0], step[1:]
        if verb == "enqueue":
            ledger.enqueue(shared, pair[rest[0]], now=NOW)
        elif verb == "claim":
            held += ledger.claim(shared, worker="w", limit=rest[0], now=NOW)
        elif verb == "answer" and held:
            row = held.pop()
            ledger.record(shared, [SendResult(row.id, row.email, rest[0], "4xx", maybe_sent=rest[1])],
                          now=NOW, policy=POLICY, worker="w")
        elif verb == "release" and held:
            ledger.release(shared, [row.id for row in held], worker="w", uncertain=rest[0])
            held = []
        elif verb == "recover":
            ledger.recover(shared, now=NOW + timedelta(days=1), lease=timedelta(minutes=5))
            held = []
        elif verb == "cancel":
            ledger.cancel_queued(shared, pair[rest[0]], now=NOW)
        elif verb == "retry":
            ledger.retry_failed(shared, pair[rest[0]], now=NOW)
        elif verb in ("leave", "erase") and subscribers.find(shared, f"{prefix}.{rest[0]}") is not None:
            subscribers.remove(shared, f"{prefix}.{rest[0]}", purge=verb == "erase", now=NOW)
        assert_true(shared)
