"""Fixtures shared by every test module: loopback servers standing in for providers,
fresh SQLite stores that start from one migrated copy, and `pg`, a store of its own on
the PostgreSQL server PUBLISHER_TEST_POSTGRES_URL names (skipped when it names none)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fakes import FakeAPI, SMTPServer
from pg_server import drop_made
from store_support import BACKENDS, open_test_store

from publisher.store import engine as store_engine

_MIGRATE = store_engine._migrate
_MIGRATED: list[bytes] = []  # the bytes of an empty database at head, made once a process


def _empty_sqlite_file(engine: sa.Engine) -> Path | None:
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database)
    wal = path.with_name(path.name + "-wal")
    if not path.is_file() or path.stat().st_size or wal.exists():
        return None
    return path


def _migrate_from_copy(engine: sa.Engine, folder: Path) -> None:
    """`open_store` on a new SQLite file: write the database the real migration made at the
    first such open, then let the real code see that it is at head. Every revision runs for
    real once a process, and on every older or non-empty database as always."""
    path = _empty_sqlite_file(engine)
    if path is not None:
        if not _MIGRATED:
            first = folder / "migrated.db"
            made = store_engine._create(f"sqlite:///{first}")
            try:
                _MIGRATE(made)
            finally:
                made.dispose()
            _MIGRATED.append(first.read_bytes())
        with path.open("r+b") as file:
            file.write(_MIGRATED[0])
    _MIGRATE(engine)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with a long test (marked `slow`, or driving the browser) run first, each kept
    whole and in order. xdist's workers then end the run on short tests, instead of one of
    them starting a minute-long browser session while the other has nothing left to do."""
    heavy = {
        item.nodeid.split("::", 1)[0]
        for item in items
        if item.get_closest_marker("slow") or "browser" in getattr(item, "fixturenames", ())
    }
    items.sort(key=lambda item: item.nodeid.split("::", 1)[0] not in heavy)  # a stable sort


def pytest_sessionfinish() -> None:
    """The PostgreSQL databases the tests made are dropped here, with the session."""
    drop_made()


@pytest.fixture(autouse=True)
def _fresh_stores_start_migrated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Migrating a new SQLite file takes most of a second; hundreds of tests open one. Tests
    of migration itself are marked `real_migrations` and run every revision each time."""
    if request.node.get_closest_marker("real_migrations"):
        yield
        return
    folder = tmp_path_factory.getbasetemp()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store_engine, "_migrate", lambda engine: _migrate_from_copy(engine, folder))
        yield


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    """A real SMTP server on 127.0.0.1 (ephemeral port) recording every message."""
    server = SMTPServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_api() -> Iterator[FakeAPI]:
    """A scriptable HTTP API on 127.0.0.1 recording every request (see fakes.http_api)."""
    api = FakeAPI().start()
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[sa.Engine]:
    """A freshly migrated PostgreSQL store of this test's own, disposed of after it."""
    if "postgresql" not in BACKENDS:
        pytest.skip("set PUBLISHER_TEST_POSTGRES_URL to run against PostgreSQL")
    engine = open_test_store("postgresql", tmp_path)
    yield engine
    engine.dispose()
