"""Opening the database: SQLite settings, migrations, concurrency and PostgreSQL."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pg_server import fresh_database, postgres_server
from sqlalchemy import Engine, insert, inspect, select, text

from publisher.errors import StoreError
from publisher.store import begin_write, open_store
from publisher.store.engine import alembic_config, head_revision
from publisher.store.schema import SEARCH_INDEXES, SEARCH_TABLE, metadata, sources

pytestmark = pytest.mark.real_migrations  # the schema revisions themselves, run for each store


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    db = open_store(sqlite_url(tmp_path / "publisher.db"))
    yield db
    db.dispose()


def schema_diffs(db: Engine) -> list[object]:
    with db.connect() as conn:
        def declared(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
            if type_ == "table" and name is not None and (name == SEARCH_TABLE or name.startswith(f"{SEARCH_TABLE}_")):
                return False  # SQLite-only, by design
            return not (type_ == "index" and name in SEARCH_INDEXES)  # PostgreSQL-only, by design

        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": declared})
        return list(compare_metadata(context, metadata))


def test_fresh_file_is_migrated_to_head(engine: Engine) -> None:
    """A new SQLite file gets every table and is stamped with the newest revision."""
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head_revision()
        tables = set(inspect(conn).get_table_names())
    assert set(metadata.tables) <= tables


def test_migrated_schema_matches_metadata(engine: Engine) -> None:
    """The migrations build exactly the tables schema.py describes."""
    assert schema_diffs(engine) == []


def test_sqlite_connections_use_wal_and_foreign_keys(engine: Engine) -> None:
    """Every connection has WAL, a 30 s busy timeout, foreign keys and synchronous NORMAL."""
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1


def test_opening_again_skips_alembic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database already at head is opened without running any migration."""
    url = sqlite_url(tmp_path / "publisher.db")
    open_store(url).dispose()

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("migrations ran again")

    monkeypatch.setattr(command, "upgrade", refuse)
    open_store(url).dispose()


def test_newer_schema_asks_to_upgrade_publisher(tmp_path: Path) -> None:
    """A database stamped by a newer publisher is refused with the fix in the message."""
    url = sqlite_url(tmp_path / "publisher.db")
    db = open_store(url)
    with db.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    db.dispose()
    with pytest.raises(StoreError, match=r"'9999'.*newer publisher.*Upgrade publisher"):
        open_store(url)


def test_missing_folder_names_the_database(tmp_path: Path) -> None:
    """A SQLite path in a folder that does not exist gives a StoreError naming the URL."""
    url = sqlite_url(tmp_path / "nowhere" / "publisher.db")
    with pytest.raises(StoreError, match=r"nowhere/publisher\.db"):
        open_store(url)


def test_url_that_is_not_a_url_is_explained() -> None:
    """Nonsense in [store] url gives a StoreError with an example of a good one."""
    with pytest.raises(StoreError, match=r"not a database URL.*sqlite:///publisher.db"):
        open_store("publisher.db")


def test_missing_driver_is_explained() -> None:
    """A URL naming a driver that is not installed says what to install."""
    with pytest.raises(StoreError, match="driver"):
        open_store("postgresql+nosuchdriver://localhost/publisher")


def test_times_come_back_aware_in_utc(engine: Engine) -> None:
    """An aware time in any zone is stored as UTC and read back aware."""
    eastern = datetime(2026, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=-5)))
    with engine.begin() as conn:
        conn.execute(insert(sources).values(url="b", polled_at=eastern, error=""))
        stored = conn.execute(select(sources.c.polled_at)).scalar_one()
        raw = conn.exec_driver_sql("SELECT polled_at FROM sources").scalar_one()
    assert stored == eastern
    assert stored.tzinfo is UTC
    assert raw.startswith("2026-03-01 14:30:00")


def test_naive_times_are_taken_as_utc(engine: Engine) -> None:
    """A naive time is read back as the same wall-clock time in UTC."""
    with engine.begin() as conn:
        conn.execute(
            insert(sources).values(url="b", polled_at=datetime(2026, 1, 2, 3), error="")
        )
        stored = conn.execute(select(sources.c.polled_at)).scalar_one()
    assert stored == datetime(2026, 1, 2, 3, tzinfo=UTC)


def test_begin_write_makes_a_second_writer_wait(engine: Engine) -> None:
    """Two write transactions take turns instead of failing with "database is locked"."""
    order: list[str] = []
    holding = threading.Event()

    def first() -> None:
        with begin_write(engine) as conn:
            conn.execute(insert(sources).values(url="a", polled_at=datetime.now(UTC), error=""))
            holding.set()
            time.sleep(0.3)
            order.append("first commits")

    thread = threading.Thread(target=first)
    thread.start()
    assert holding.wait(5)
    with begin_write(engine) as conn:
        order.append("second has the lock")
        conn.execute(insert(sources).values(url="b", polled_at=datetime.now(UTC), error=""))
    thread.join()
    assert order == ["first commits", "second has the lock"]


def _open_when_released(url: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    barrier.wait(timeout=60)
    open_store(url).dispose()


def test_processes_opening_a_fresh_database_at_once_all_succeed(tmp_path: Path) -> None:
    """Four processes racing to create the same database: one migrates, none fails."""
    url = sqlite_url(tmp_path / "publisher.db")
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    workers = [context.Process(target=_open_when_released, args=(url, barrier)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
    db = open_store(url)
    try:
        assert schema_diffs(db) == []
    finally:
        db.dispose()


def test_alembic_config_points_inside_the_package() -> None:
    """The migrations are found relative to the installed package, not the working folder."""
    location = Path(alembic_config().get_main_option("script_location") or "")
    assert (location / "env.py").is_file()
    assert location.parent.name == "store"


# PostgreSQL: the same code on a real server, when one can be started on this machine.


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


def test_postgresql_is_migrated_to_the_same_schema(postgres_url: str) -> None:
    """The same URL-driven code builds the same schema on PostgreSQL."""
    db = open_store(fresh_database(postgres_url, "schema"))
    try:
        assert schema_diffs(db) == []
        eastern = datetime(2026, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=-5)))
        with db.begin() as conn:
            conn.execute(insert(sources).values(url="pg", polled_at=eastern, error=""))
            stored = conn.execute(select(sources.c.polled_at)).scalar_one()
        assert stored == eastern
        assert stored.utcoffset() == timedelta(0)
    finally:
        db.dispose()


def test_postgresql_opened_by_several_processes_at_once(postgres_url: str) -> None:
    """Concurrent openers of one PostgreSQL database wait on the migration lock."""
    url = fresh_database(postgres_url, "race")
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(3)
    workers = [context.Process(target=_open_when_released, args=(url, barrier)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0, 0]
