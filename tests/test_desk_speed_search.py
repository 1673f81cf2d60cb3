"""A search by a part of the address or the name on SQLite reads the trigram index
(revision 0034): the whole list in one answer, the index kept in step with the list."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from publisher.models import Subscriber, SubscriberStatus
from publisher.services import subscribers as service
from publisher.store import open_store
from publisher.store.engine import alembic_config
from publisher.store.schema import subscriber_tags
from publisher.store.schema import subscribers as rows
from publisher.store.subscribers import reading

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def readers(count: int) -> list[dict[str, object]]:
    return [
        {
            "email": f"reader{n}@example.org",
            "name": f"Reader {n}",
            "status": "active",
            "source": "test",
            "created_at": NOW,
            "updated_at": NOW,
            "token_key": f"{n:032x}",
        }
        for n in range(count)
    ]


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[sa.Engine]:
    """120 readers; a scan would read 10 ids a step."""
    monkeypatch.setattr(reading, "SEARCH_STEP", 10)
    engine = open_store(f"sqlite:///{tmp_path / 'test.db'}")
    with engine.begin() as conn:
        conn.execute(sa.insert(rows), readers(120))
    yield engine
    engine.dispose()


class Ticks:
    """A clock that moves a second each time it is read: a scan would stop after one step."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def emails(found: list[Subscriber]) -> list[str]:
    return [s.email for s in found]


def test_an_indexed_search_finds_every_match_at_once(db: sa.Engine) -> None:
    """However little time a scan would have, the index answers with every match, in id order."""
    found, more, looked_to = reading.search_page(db, "reader11", limit=50, clock=Ticks())
    assert emails(found) == ["reader11@example.org"] + [f"reader{n}@example.org" for n in range(110, 120)]
    assert (more, looked_to) == (False, None)


def test_an_indexed_search_pages_by_id(db: sa.Engine) -> None:
    """A full page says more follow; the next page starts after its last reader."""
    first, more, looked_to = reading.search_page(db, "ader1", limit=5, clock=Ticks())
    assert emails(first) == [f"reader{n}@example.org" for n in (1, 10, 11, 12, 13)]
    assert (more, looked_to) == (True, None)
    second, _, _ = reading.search_page(db, "ader1", after=first[-1].id, limit=5, clock=Ticks())
    assert emails(second) == [f"reader{n}@example.org" for n in (14, 15, 16, 17, 18)]


def test_the_index_keeps_the_scans_exact_matches(db: sa.Engine) -> None:
    """The index folds case further than LIKE (É and é are one to it, not to LIKE); the page
    still holds only what LIKE matches, and a wildcard in the fragment is taken literally."""
    with db.begin() as conn:
        conn.execute(sa.update(rows).where(rows.c.email == "reader118@example.org").values(name="ÉLODIE Martin"))
        conn.execute(sa.update(rows).where(rows.c.email == "reader119@example.org").values(name="élodie_x"))
    found, _, _ = reading.search_page(db, "élodie", limit=50, clock=Ticks())
    assert emails(found) == ["reader119@example.org"]
    found, _, _ = reading.search_page(db, "die_", limit=50, clock=Ticks())
    assert emails(found) == ["reader119@example.org"]


def test_the_index_follows_changes_of_address_and_name_and_erasures(db: sa.Engine) -> None:
    """A changed address is found by its new text only; a deleted reader is gone from the index."""
    with db.begin() as conn:
        conn.execute(sa.update(rows).where(rows.c.id == 5).values(email="someone.new@example.net", name="Kim"))
        conn.execute(sa.delete(rows).where(rows.c.id == 7))
        indexed = [
            r[0]
            for r in conn.exec_driver_sql(
                "SELECT rowid FROM subscriber_search WHERE subscriber_search MATCH '\"reader\"'"
            )
        ]
    assert 5 not in indexed and 7 not in indexed and len(indexed) == 118
    found, _, _ = reading.search_page(db, "one.new", limit=50, clock=Ticks())
    assert emails(found) == ["someone.new@example.net"]


def test_a_status_and_a_tag_narrow_an_indexed_search(db: sa.Engine) -> None:
    """The filters of a listing apply to the index's matches."""
    with db.begin() as conn:
        conn.execute(sa.update(rows).where(rows.c.id.in_([111, 112])).values(status="unsubscribed"))
        conn.execute(sa.insert(subscriber_tags), [{"subscriber_id": 113, "tag": "clinic"}])
    left, _, _ = reading.search_page(db, "reader11", status=SubscriberStatus.UNSUBSCRIBED, limit=50, clock=Ticks())
    assert emails(left) == ["reader110@example.org", "reader111@example.org"]
    tagged, _, _ = reading.search_page(db, "reader11", tag="clinic", limit=50, clock=Ticks())
    assert emails(tagged) == ["reader112@example.org"]


def test_a_list_from_before_the_index_is_indexed_by_the_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Readers written at revision 0033 are found through the index once the store is opened."""
    monkeypatch.setattr(reading, "SEARCH_STEP", 10)
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0033")
    old = sa.create_engine(url)
    with old.begin() as conn:
        conn.execute(sa.insert(rows), readers(30))
    old.dispose()
    engine = open_store(url)
    try:
        found, more, looked_to = reading.search_page(engine, "reader2", limit=50, clock=Ticks())
    finally:
        engine.dispose()
    assert emails(found) == ["reader2@example.org"] + [f"reader{n}@example.org" for n in range(20, 30)]
    assert (more, looked_to) == (False, None)


def test_readers_imported_from_a_csv_are_in_the_index(db: sa.Engine) -> None:
    """An import's readers, written many to a statement, are found through the index at once."""
    lines = ["email,name", *(f"imported{n}@example.net,Imported {n}" for n in range(40))]
    service.import_subscribers(db, lines, now=NOW, origin="test.csv")
    found, more, looked_to = reading.search_page(db, "imported3", limit=50, clock=Ticks())
    assert emails(found) == ["imported3@example.net"] + [f"imported{n}@example.net" for n in range(30, 40)]
    assert (more, looked_to) == (False, None)


def test_a_fragment_with_a_nul_is_looked_for_by_the_scan(db: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A NUL (which FTS5 cannot take in a query) gets the scan's answer, not an error."""
    answer = reading.search_page(db, "\x00der", limit=5)
    monkeypatch.setattr(reading, "TRIGRAM", 1000)
    assert answer == reading.search_page(db, "\x00der", limit=5)
