"""store/folding.py: a page's figures fold the kept counts' change lines at most once a
second per process, and stay exact in between."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from store_support import open_test_store

from publisher.schedule.daemon import keep_folding, sweep_change_lines
from publisher.store import counts_kept, folding, ledger, subscribers
from publisher.store.folding import now_and_then
from publisher.store.issues import fold_issue_counts
from publisher.store.schema import issue_count_changes, list_count_changes

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_sqlite_never_folds(tmp_path: Path) -> None:
    """SQLite keeps its counts in place: there is nothing to fold, and nothing is run."""
    engine = open_test_store("sqlite", tmp_path)
    ran: list[sa.Engine] = []
    assert not now_and_then(engine, ran.append)
    assert ran == []
    engine.dispose()


def test_a_fold_runs_once_a_second_at_most(pg: sa.Engine) -> None:
    """Two readings within a second fold once; a reading a second later folds again."""
    ran: list[sa.Engine] = []

    def fold(engine: sa.Engine) -> None:
        ran.append(engine)

    clock = Clock()
    assert now_and_then(pg, fold, clock=clock)
    clock.now += 0.5
    assert not now_and_then(pg, fold, clock=clock)
    clock.now += 0.6
    assert now_and_then(pg, fold, clock=clock)
    assert len(ran) == 2


def test_a_figure_read_between_folds_is_exact(pg: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy queued after the last fold is counted from its change line, unfolded."""
    monkeypatch.setattr(folding, "EVERY", 3600.0)
    subscribers.add(pg, "ann@example.org", now=NOW)
    issue = ledger.create_issue(
        pg, key="k", kind="article", slug="k", subject="K", html="", text="", tag=None, status="draft", now=NOW
    )
    assert ledger.status(pg, issue)[0].queued == 0  # folds now
    ledger.enqueue(pg, issue, now=NOW)
    assert ledger.status(pg, issue)[0].queued == 1  # within the hour: no fold
    with pg.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(issue_count_changes)).scalar_one() == 1


def test_a_fold_still_running_is_not_started_again(pg: sa.Engine) -> None:
    """A fold of a long table outlasts its second: the next reading skips it rather than
    running a second one beside it."""
    started, finish = threading.Event(), threading.Event()

    def slow(engine: sa.Engine) -> None:
        started.set()
        finish.wait(10)

    clock = Clock()
    first = threading.Thread(target=now_and_then, args=(pg, slow), kwargs={"clock": clock})
    first.start()
    assert started.wait(10)
    clock.now += 5
    assert not now_and_then(pg, slow, clock=clock)
    finish.set()
    first.join(10)
    clock.now += 5
    started.clear()
    finish.set()
    assert now_and_then(pg, slow, clock=clock)


def test_a_fold_in_another_process_is_not_waited_for(pg: sa.Engine) -> None:
    """While another connection folds the issue counts, a fold returns at once and leaves
    the lines; the reading is exact all the same."""
    subscribers.add(pg, "bo@example.org", now=NOW)
    issue = ledger.create_issue(
        pg, key="k", kind="article", slug="k", subject="K", html="", text="", tag=None, status="draft", now=NOW
    )
    ledger.enqueue(pg, issue, now=NOW)
    lines = sa.select(sa.func.count()).select_from(issue_count_changes)
    with pg.connect() as other:
        other.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('publisher.fold_issue_counts'))"))
        fold_issue_counts(pg)
        with pg.connect() as conn:
            assert conn.execute(lines).scalar_one() == 1
        other.rollback()
    fold_issue_counts(pg)
    with pg.connect() as conn:
        assert conn.execute(lines).scalar_one() == 0
    assert ledger.status(pg, issue)[0].queued == 1


def test_a_running_daemon_folds_the_lines_of_a_send_nobody_reads(pg: sa.Engine) -> None:
    """`publisher serve` on PostgreSQL folds every few seconds, read or not, until it stops."""
    subscribers.add(pg, "cy@example.org", now=NOW)
    issue = ledger.create_issue(
        pg, key="k", kind="article", slug="k", subject="K", html="", text="", tag=None, status="draft", now=NOW
    )
    ledger.enqueue(pg, issue, now=NOW)
    stop = threading.Event()
    folder = threading.Thread(target=keep_folding, args=(pg, stop, 0.05))
    folder.start()
    lines = sa.select(sa.func.count()).select_from(issue_count_changes)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with pg.connect() as conn:
                if conn.execute(lines).scalar_one() == 0:
                    break
            time.sleep(0.05)
    finally:
        stop.set()
        folder.join(10)
    assert not folder.is_alive()
    with pg.connect() as conn:
        assert conn.execute(lines).scalar_one() == 0
        assert conn.execute(sa.text("SELECT number FROM issue_counts WHERE state = 'queued'")).scalar_one() == 1


def test_folded_lines_are_swept_so_readings_stop_reading_their_pages(pg: sa.Engine) -> None:
    """A change table that holds folded lines is vacuumed: its pages are given back."""
    subscribers.add(pg, "di@example.org", now=NOW)
    issue = ledger.create_issue(
        pg, key="k", kind="article", slug="k", subject="K", html="", text="", tag=None, status="draft", now=NOW
    )
    ledger.enqueue(pg, issue, now=NOW)
    fold_issue_counts(pg)
    swept: list[str] = []
    deadline = time.monotonic() + 15  # the deleting backend reports its dead lines within a second or so
    while "issue_count_changes" not in swept and time.monotonic() < deadline:
        swept = sweep_change_lines(pg, at_least=1)
        time.sleep(0.2)
    assert "issue_count_changes" in swept
    with pg.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_relation_size('issue_count_changes')")).scalar_one() == 0
    assert ledger.status(pg, issue)[0].queued == 1


def test_sqlite_has_nothing_to_sweep(tmp_path: Path) -> None:
    """SQLite keeps no change lines: the sweep asks nothing."""
    engine = open_test_store("sqlite", tmp_path)
    assert sweep_change_lines(engine, at_least=0) == []
    engine.dispose()


def test_a_fold_of_the_list_counts_in_another_process_is_not_waited_for(pg: sa.Engine) -> None:
    """While another connection folds the list's counts, a fold returns at once and leaves
    the lines (two folds at once could deadlock over the kept rows); the count is exact
    all the same, and the next fold moves them."""
    subscribers.add(pg, "di@example.org", now=NOW)
    lines = sa.select(sa.func.count()).select_from(list_count_changes)
    with pg.connect() as other:
        other.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('publisher.fold_counts'))"))
        started = time.monotonic()
        counts_kept.fold(pg)
        assert time.monotonic() - started < 5
        with pg.connect() as conn:
            assert conn.execute(lines).scalar_one() > 0
        assert subscribers.counts(pg)["active"] == 1
        other.rollback()
    counts_kept.fold(pg)
    with pg.connect() as conn:
        assert conn.execute(lines).scalar_one() == 0
    assert subscribers.counts(pg)["active"] == 1
