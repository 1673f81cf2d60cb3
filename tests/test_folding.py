"""store/folding.py: a page's figures fold the kept counts' change lines at most once a
second per process, and stay exact in between."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from store_support import BACKENDS, open_test_store

from publisher.store import folding, ledger, subscribers
from publisher.store.folding import now_and_then
from publisher.store.schema import issue_count_changes

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[sa.Engine]:
    if "postgresql" not in BACKENDS:
        pytest.skip("set PUBLISHER_TEST_POSTGRES_URL to run against PostgreSQL")
    engine = open_test_store("postgresql", tmp_path)
    yield engine
    engine.dispose()


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
    issue = ledger.create_issue(pg, key="k", kind="article", slug="k", subject="K", html="", text="",
                                tag=None, status="draft", now=NOW)
    assert ledger.status(pg, issue)[0].queued == 0  # folds now
    ledger.enqueue(pg, issue, now=NOW)
    assert ledger.status(pg, issue)[0].queued == 1  # within the hour: no fold
    with pg.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(issue_count_changes)).scalar_one() == 1
