"""What an import writes is what any other door writes: the same columns, the same stored
form, whichever way the rows reach the database."""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from store_support import BACKENDS, open_test_store

from publisher.store import subscriber_import, subscribers
from publisher.store.import_preview import preview_import

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


def _sqlite_only(db: sa.Engine) -> None:
    if db.dialect.name != "sqlite":
        pytest.skip("PostgreSQL takes a chunk's rows by COPY, whatever their number")


def test_a_chunk_goes_into_each_table_in_a_few_statements(db: sa.Engine) -> None:
    """Readers, their events and their tags go in by multi-row INSERTs, never one row at a time
    (SQLite copies every page a statement changes into its statement journal, once a statement);
    on PostgreSQL the rows travel by COPY, not as parameters of the INSERT."""
    inserts: list[tuple[str, bool]] = []
    sent: list[object] = []

    def seen(conn: object, cursor: object, statement: str, parameters: object, context: object, many: bool) -> None:
        if statement.startswith("INSERT INTO"):
            inserts.append((statement.split()[2], many))
            sent.append(parameters)

    sa.event.listen(db, "before_cursor_execute", seen)
    text = "email,tags\n" + "".join(f"r{n}@example.org,weekly\n" for n in range(300))
    report = subscribers.import_csv(db, io.StringIO(text), now=EVENING, origin="a.csv")
    assert report.imported == 300
    for table in ("subscribers", "events", "subscriber_tags"):
        assert 1 <= [name for name, _ in inserts].count(table) <= 4
        assert not any(many for name, many in inserts if name == table)
    if db.dialect.name == "postgresql":
        assert not any(sent)


def test_an_import_prepares_a_few_shapes_of_insert_whatever_its_chunks_hold(
    db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks with different numbers of tags share the same few INSERT statements (SQLite's driver
    keeps each statement it prepared, a hundred bytes or so a parameter), not one a size."""
    _sqlite_only(db)
    monkeypatch.setattr(subscriber_import, "PAGE", 10)
    statements: set[str] = set()

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.startswith("INSERT INTO subscriber_tags"):
            statements.add(statement)

    sa.event.listen(db, "before_cursor_execute", seen)
    counts = random.Random(7).choices(range(10), k=200)
    tags = [",".join(f"t{k}" for k in range(count)) for count in counts]
    rows = (f'r{n}@example.org,"{tags[n]}"\n' for n in range(200))
    report = subscribers.import_csv(db, io.StringIO("email,tags\n" + "".join(rows)), now=EVENING, origin="a.csv")
    assert report.imported == 200
    assert len(statements) <= 7  # 64, 32, ... 1 rows


def test_a_chunk_split_over_several_statements_gives_each_reader_their_own_rows(
    db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With room for two readers a statement (SQLite's limit of parameters), each reader still
    gets their own id, event and tags, whatever order the ids come back in."""
    _sqlite_only(db)
    monkeypatch.setattr(subscriber_import, "_variables", lambda conn: 25)
    text = "email,tags\n" + "".join(f"r{n}@example.org,t{n}\n" for n in range(7))
    report = subscribers.import_csv(db, io.StringIO(text), now=EVENING, origin="a.csv")
    assert report.imported == 7
    with db.connect() as conn:
        tags = conn.execute(
            sa.text("SELECT s.email, t.tag FROM subscriber_tags AS t JOIN subscribers AS s ON s.id = t.subscriber_id")
        ).all()
        events = conn.execute(
            sa.text("SELECT e.email, e.detail FROM events AS e JOIN subscribers AS s ON s.id = e.subscriber_id")
        ).all()
    assert sorted(tags) == [(f"r{n}@example.org", f"t{n}") for n in range(7)]
    assert sorted(events) == [(f"r{n}@example.org", f"a.csv:{n + 2}") for n in range(7)]


def test_a_preview_lists_repeats_among_the_other_refusals_in_the_files_order(db: sa.Engine) -> None:
    """A repeated address is told with the line it repeats, in its place among the other refused
    rows, though the line it repeats is looked up only after the last chunk."""
    text = "email\nann@example.org\nbo@example.org\nANN@example.org\nnot an address\nbo@example.org\n"
    found = preview_import(db, io.StringIO(text), origin="a.csv")
    assert [(r.line, r.reason.split(":")[0]) for r in found.rejected] == [
        (4, "ann@example.org repeats line 2"),
        (5, "'not an address' is not a valid address"),
        (6, "bo@example.org repeats line 3"),
    ]
