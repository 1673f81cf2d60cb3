"""A search by a part of the address on SQLite answers in bounded time on a long list,
and says how far it looked."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from publisher.services import subscribers as service
from publisher.store import open_store
from publisher.store.schema import subscribers as rows
from publisher.store.subscribers import reading

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[sa.Engine]:
    """120 readers, read 10 ids a step, by the scan (as where the trigram index is not there)."""
    monkeypatch.setattr(reading, "SEARCH_STEP", 10)
    monkeypatch.setattr(reading, "TRIGRAM", 1000)
    engine = open_store(f"sqlite:///{tmp_path / 'test.db'}")
    with engine.begin() as conn:
        conn.execute(sa.insert(rows), [
            {"email": f"reader{n}@example.org", "name": f"Reader {n}", "status": "active", "source": "test",
             "created_at": NOW, "updated_at": NOW, "token_key": f"{n:032x}"} for n in range(120)
        ])
    yield engine
    engine.dispose()


class Ticks:
    """A clock that moves a second each time it is read."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_a_search_that_runs_out_of_time_says_how_far_it_looked(db: sa.Engine) -> None:
    """Out of time after the first step: no match yet, and the id to look further from."""
    found, more, looked_to = reading.search_page(db, "reader11", limit=5, clock=Ticks())
    assert (found, more, looked_to) == ([], True, 10)


def test_looking_further_goes_on_from_there(db: sa.Engine) -> None:
    """Passing `looked_to` back as `after` finds the matches in the next ids."""
    found, _, _ = reading.search_page(db, "reader11", after=10, limit=5, clock=Ticks())
    assert [s.email for s in found] == ["reader11@example.org"]


def test_a_search_with_time_reads_to_the_end_of_the_list(db: sa.Engine) -> None:
    """With time to spare every step is read: every match, and nothing more to look for."""
    found, more, looked_to = reading.search_page(db, "reader11", limit=50)
    assert [s.email for s in found] == ["reader11@example.org"] + [f"reader{n}@example.org" for n in range(110, 120)]
    assert (more, looked_to) == (False, None)


def test_a_full_page_stops_the_search_with_a_next_page(db: sa.Engine) -> None:
    """A page filled before the time is up pages on from its last reader, as a listing does."""
    page = service.search_subscribers(db, "example.org", limit=5)
    assert page.has_more and page.looked_to is None
    assert page.next_after == page.items[-1].id
