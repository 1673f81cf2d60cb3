"""`shared_reads`: a page's reads through one connection, lent by a pool that never waits,
and each read still seeing what was committed before it; and the fixed words of Home's
statements written into their SQL (`written_in`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from publisher.store import open_store, publishing, stats
from publisher.store.engine import POOL_SIZE, reader, shared_reads, written_in
from publisher.store.schema import events, sent_minutes
from publisher.store.schema import subscribers as rows

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _reader_row(n: int) -> dict[str, object]:
    return {
        "email": f"reader{n}@example.org",
        "name": "",
        "status": "active",
        "source": "test",
        "created_at": NOW,
        "updated_at": NOW,
        "token_key": f"{n:032x}",
    }


def _count(engine: sa.Engine) -> int:
    with reader(engine) as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(rows)).scalar_one())


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = open_store(f"sqlite:///{tmp_path / 'test.db'}")
    yield engine
    engine.dispose()


def test_reads_in_a_block_go_through_one_connection(db: sa.Engine) -> None:
    """Every reader inside the block is the same connection, and no longer after it."""
    with shared_reads(db):
        with reader(db) as first:
            pass
        with reader(db) as second:
            pass
        assert second is first
    with reader(db) as after:
        assert after is not first


def test_a_block_inside_another_uses_the_outer_ones_connection(db: sa.Engine) -> None:
    """A nested block neither takes a second connection nor gives back the outer one's."""
    with shared_reads(db):
        with reader(db) as outer:
            pass
        with shared_reads(db), reader(db) as inner:
            assert inner is outer
        with reader(db) as later:
            assert later is outer


def test_a_block_that_reads_nothing_takes_no_connection(db: sa.Engine) -> None:
    """The connection is taken at the first read: a refused page costs none."""
    taken: list[object] = []

    def took(*args: object) -> None:
        taken.append(args)

    sa.event.listen(sa.pool.Pool, "checkout", took)
    try:
        with shared_reads(db):
            pass
    finally:
        sa.event.remove(sa.pool.Pool, "checkout", took)
    assert taken == []


def _sees_a_later_commit(engine: sa.Engine) -> None:
    with shared_reads(engine):
        before = _count(engine)
        with engine.begin() as conn:
            conn.execute(sa.insert(rows), [_reader_row(1)])
        assert _count(engine) == before + 1


def test_a_read_in_a_block_sees_what_was_committed_after_the_first(db: sa.Engine) -> None:
    """The shared connection holds no snapshot between reads: each sees the latest commit."""
    _sees_a_later_commit(db)


def test_a_read_in_a_block_sees_a_later_commit_on_postgresql(pg: sa.Engine) -> None:
    """The same on PostgreSQL, where the shared connection reads in autocommit."""
    _sees_a_later_commit(pg)


def test_blocks_are_lent_connections_while_the_engines_pool_is_all_in_use(db: sa.Engine) -> None:
    """More blocks at once than the pool keeps, with every connection of the engine's own
    pool held elsewhere, all read: a block's connection never waits for anyone, so a page
    that holds one and then waits for the engine's pool cannot hold up a waiter there."""
    held = [db.connect() for _ in range(POOL_SIZE)]
    together = threading.Barrier(POOL_SIZE + 3, timeout=20)

    def page() -> int:
        with shared_reads(db):
            found = _count(db)
            together.wait()  # every block holds its connection at this moment
            return found

    try:
        with ThreadPoolExecutor(max_workers=POOL_SIZE + 3) as threads:
            answers = list(threads.map(lambda _: page(), range(POOL_SIZE + 3), timeout=30))
    finally:
        for conn in held:
            conn.close()
    assert answers == [0] * (POOL_SIZE + 3)


def test_a_block_on_a_store_in_memory_reads_the_same_database() -> None:
    """A database in memory belongs to its connection: the block reads the engine's own."""
    engine = open_store("sqlite://")
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(rows), [_reader_row(1)])
        with shared_reads(engine):
            assert _count(engine) == 1
    finally:
        engine.dispose()


def test_the_lent_connections_are_closed_with_the_engine(tmp_path: Path) -> None:
    """Disposing of the engine closes the connections its blocks were lent."""
    engine = open_store(f"sqlite:///{tmp_path / 'test.db'}")
    with shared_reads(engine), reader(engine) as conn:
        lent = conn.connection.dbapi_connection
    closed: list[object] = []

    def close(dbapi_connection: object, record: object) -> None:
        closed.append(dbapi_connection)

    sa.event.listen(sa.pool.Pool, "close", close)
    try:
        engine.dispose()
    finally:
        sa.event.remove(sa.pool.Pool, "close", close)
    assert lent in closed


def test_connections_lent_after_a_dispose_are_closed_when_the_engine_goes(tmp_path: Path) -> None:
    """An engine used again after its dispose lends anew; when it is collected, those
    connections are closed, not left open for the garbage collector to find."""
    import gc

    engine = open_store(f"sqlite:///{tmp_path / 'test.db'}")
    with shared_reads(engine), reader(engine) as conn:
        conn.execute(sa.text("SELECT 1"))
    engine.dispose()
    with shared_reads(engine), reader(engine) as conn:  # lent again, by a pool made anew
        lent = conn.connection.dbapi_connection
    closed: list[object] = []

    def close(dbapi_connection: object, record: object) -> None:
        closed.append(dbapi_connection)

    sa.event.listen(sa.pool.Pool, "close", close)
    try:
        del engine, conn
        gc.collect()
    finally:
        sa.event.remove(sa.pool.Pool, "close", close)
    assert lent in closed


def test_fixed_words_are_written_into_homes_statements(db: sa.Engine) -> None:
    """The kinds and states Home asks for are in the SQL itself, so that SQLAlchemy does not
    spell each statement out again for a bound list on every run."""
    ran: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *rest: object) -> None:
        ran.append(statement)

    sa.event.listen(db, "before_cursor_execute", seen)
    try:
        stats.events_per_day(db, since=NOW, until=NOW, kinds=("subscribe", "unsubscribe"))
        stats.reactions(db, [1])
        publishing.waiting(db, since=NOW)
    finally:
        sa.event.remove(db, "before_cursor_execute", seen)
    assert len(ran) == 3
    assert "IN ('subscribe', 'unsubscribe')" in ran[0]
    assert "IN ('unsubscribe', 'bounce', 'complaint')" in ran[1]
    assert "IN ('wait', 'draft')" in ran[2]


def test_only_plain_words_are_written_into_sql() -> None:
    """Anything but a lower-case word is refused rather than written into a statement."""
    with pytest.raises(ValueError, match="not a plain word"):
        written_in(["bounce", "x') OR ('1'='1"])


def test_the_complaint_rates_figures_come_in_one_statement(db: sa.Engine) -> None:
    """Copies accepted and readers who complained, over a window, in one round trip."""
    with db.begin() as conn:
        conn.execute(
            sa.insert(sent_minutes),
            [
                {"issue_id": 1, "minute": "2026-03-01 09:00", "number": 700},
                {"issue_id": 1, "minute": "2026-03-01 09:01", "number": 300},
                {"issue_id": 1, "minute": "2026-03-02 13:00", "number": 50},  # after the window
            ],
        )
        conn.execute(
            sa.insert(events),
            [
                {"email": email, "kind": "complaint", "provider": "ses", "detail": "", "created_at": NOW - ago}
                for email, ago in [
                    ("a@example.org", timedelta(hours=2)),
                    ("a@example.org", timedelta(hours=1)),
                    ("b@example.org", timedelta(hours=1)),
                    ("c@example.org", timedelta(days=40)),  # before the window
                ]
            ],
        )
    ran: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *rest: object) -> None:
        ran.append(statement)

    sa.event.listen(db, "before_cursor_execute", seen)
    try:
        found = stats.accepted_and_complaints(db, since=NOW - timedelta(days=30), until=NOW)
    finally:
        sa.event.remove(db, "before_cursor_execute", seen)
    assert found == (1000, 2)
    assert len(ran) == 1
