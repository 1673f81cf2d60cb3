"""What an import writes is what any other door writes: the same columns, the same stored
form, whichever way the rows reach the database."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from store_support import BACKENDS, open_test_store

from publisher.store import subscribers

EVENING = datetime(2026, 3, 2, 21, 30, 5, 123456, tzinfo=timezone(timedelta(hours=-5)))  # 02:30 UTC, the 3rd


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """SQLite in tmp_path; PostgreSQL too when $PUBLISHER_TEST_POSTGRES_URL is set."""
    engine = open_test_store(request.param, tmp_path)
    yield engine
    engine.dispose()


def _stored(db: sa.Engine, table: str, email: str) -> dict[str, object]:
    with db.connect() as conn:
        row = conn.execute(sa.text(f"SELECT * FROM {table} WHERE email = :email ORDER BY id LIMIT 1"),
                           {"email": email}).mappings().one()
    return dict(row)


def test_an_imported_reader_is_stored_as_one_added_by_hand(db: sa.Engine) -> None:
    """Timestamps in the one stored form (UTC), defaults filled (token key, frequency, legacy
    links): an imported row differs from an added one only where their doors differ."""
    subscribers.import_csv(db, io.StringIO("email,name\nann@example.org,Ann\n"), now=EVENING, origin="a.csv")
    subscribers.add(db, "bo@example.org", name="Bo", now=EVENING)
    imported, added = _stored(db, "subscribers", "ann@example.org"), _stored(db, "subscribers", "bo@example.org")
    assert imported["token_key"] != added["token_key"]
    assert len(str(imported["token_key"])) == len(str(added["token_key"]))
    differ = {"id", "email", "name", "source", "token_key"}
    assert {k: v for k, v in imported.items() if k not in differ} == {
        k: v for k, v in added.items() if k not in differ
    }
    assert _stored(db, "events", "ann@example.org")["created_at"] == _stored(db, "events", "bo@example.org")[
        "created_at"
    ]


def test_a_reader_imported_twice_gets_one_row_and_their_tags_once(db: sa.Engine) -> None:
    """The second import of the same reader with one more tag adds the tag and nothing else."""
    subscribers.import_csv(db, io.StringIO("email,tags\nann@example.org,weekly\n"), now=EVENING, origin="a.csv")
    report = subscribers.import_csv(db, io.StringIO('email,tags\nann@example.org,"weekly,clinic"\n'),
                                    now=EVENING, origin="b.csv")
    assert (report.imported, report.updated) == (0, 1)
    found = subscribers.find(db, "ann@example.org")
    assert found is not None and sorted(found.tags) == ["clinic", "weekly"]
