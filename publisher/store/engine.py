"""Opening the database: the engine, SQLite's connection settings and schema migrations.

This is the one place with SQLite-only SQL (the PRAGMAs and `BEGIN IMMEDIATE`) and with
PostgreSQL-only locking; every other module speaks portable SQLAlchemy Core.

Migrations are alembic revisions under `migrations/`, inside the package so that they ship
in the wheel. `open_store` brings any database up to the newest revision; a database at
the newest revision costs one small query, so opening it again is cheap (and does not
import alembic at all: the newest revision is read from the revision files' own
`revision`/`down_revision` lines, and anything unexpected falls back to alembic). Two processes
opening a fresh database at once take turns: the first creates the tables, the second
finds them there.

Round trips to a PostgreSQL server are most of what a page's reads cost, so two are saved
where they buy nothing. A pooled connection is tested before use (a daemon outlives server
restarts) only when it sat unused in the pool for `PING_IDLE` seconds or more: under load
connections come back within milliseconds. A restart inside that second fails the one
statement that meets an ended connection, and that failure replaces the pool's
connections as a failed test would. And
`reader` runs statements that only read without a transaction around them (no BEGIN and
ROLLBACK): at READ COMMITTED each statement of a transaction takes its own snapshot
anyway, so a read sees the same rows.

One connection a page (`shared_reads`): a desk page makes ten or more small reads, and
taking a connection from the pool and giving it back cost more than most of them. Inside
`shared_reads(engine)` every `reader(engine)` of the thread reads through one connection,
taken at the first read and given back when the block ends. That connection comes from a
pool of its own beside the engine's (`_readers_of`), which never makes anyone wait: when
its kept connections are all in use it opens another. So a thread that holds one and
then asks the engine's pool for a connection to write with (a session's `seen_at`) holds
nothing that any waiter on the engine's pool waits for, and no number of pages at once
can deadlock the two pools. Each statement still reads as it did on a connection of its
own (SQLite begins no transaction for a read; PostgreSQL reads in autocommit).
"""

from __future__ import annotations

import functools
import os
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    URL,
    ColumnElement,
    Connection,
    Dialect,
    Engine,
    String,
    create_engine,
    event,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy.exc import ArgumentError, InvalidatePoolError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry

from publisher.errors import StoreError
from publisher.store.revisions import MIGRATIONS, head_on_disk

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

__all__ = [
    "BUSY_TIMEOUT_MS",
    "MIGRATIONS",
    "PING_IDLE",
    "POOL_SIZE",
    "alembic_config",
    "begin_write",
    "head_revision",
    "open_store",
    "reader",
    "shared_reads",
    "written_in",
]

BUSY_TIMEOUT_MS = 30_000
# Any fixed number: PostgreSQL's advisory lock that serialises migrations across processes.
_PG_MIGRATION_LOCK = 0x7075626C
POOL_SIZE = 15
"""Connections an engine keeps open, and the most it has at once (SQLAlchemy's default cap,
5 kept and 10 more opened when needed). All are kept: under 32 clients at once the desk
used the 10 on every request, and each was opened (SQLite's settings read again, or a
PostgreSQL backend started) and closed for it."""
PING_IDLE = 1.0
"""Seconds a pooled connection to a server may sit unused before its next checkout tests it."""
_RETURNED = "publisher_returned_at"


def open_store(url: str) -> Engine:
    """The engine for `url` (SQLite by default, PostgreSQL by URL), schema brought up to date.

    Raises StoreError when the URL is unusable, the database cannot be opened, or it was
    written by a newer publisher (an unknown schema revision).
    """
    engine = _create(url)
    try:
        _migrate(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


@contextmanager
def begin_write(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the write lock from its first statement.

    Use it where a transaction reads before it writes and must not be overtaken in between
    (an upsert, an import). On SQLite it is `BEGIN IMMEDIATE`: a second writer waits on
    the busy timeout instead of failing to upgrade its read snapshot. Elsewhere it is an
    ordinary transaction; callers rely on unique constraints there.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        yield conn


@contextmanager
def reader(engine: Engine) -> Iterator[Connection]:
    """A connection for statements that only read: on PostgreSQL outside any transaction
    (autocommit), saving the BEGIN and ROLLBACK round trips. SQLite's driver begins no
    transaction for a read anyway. Never write through it: nothing would be atomic.
    Inside `shared_reads(engine)` it is the block's one connection."""
    held: dict[Engine, Connection | None] | None = getattr(_shared, "held", None)
    if held is not None and engine in held:
        conn = held[engine]
        if conn is None:
            # The engine's own Connection (its events, its options) over the lent connection.
            lent = _readers_of(engine).raw_connection()
            conn = held[engine] = _read_only(Connection(engine, connection=lent))
        yield conn
        return
    with engine.connect() as conn:
        yield _read_only(conn)


@contextmanager
def shared_reads(engine: Engine) -> Iterator[None]:
    """Every `reader(engine)` of this thread, until the block ends, reads through one
    connection (see the module's docstring); a block inside another of the same engine
    uses the outer one's. Writes inside the block take their own connections as always."""
    held: dict[Engine, Connection | None] = _shared.__dict__.setdefault("held", {})
    if engine in held:
        yield
        return
    held[engine] = None
    try:
        yield
    finally:
        conn = held.pop(engine)
        if conn is not None:
            conn.close()


_WORD = re.compile(r"[a-z][a-z_-]*")


def written_in(words: Iterable[str]) -> list[ColumnElement[str]]:
    """Fixed words (kinds, states) for an `IN`, written into the SQL as literals.

    A list bound as an expanding parameter makes SQLAlchemy spell the statement out again
    on every run, which on Home cost more than the query; written in, the statement is
    compiled once. Only plain lower-case words are taken (ValueError otherwise): these are
    the code's own names, never a visitor's input.
    """
    found: list[ColumnElement[str]] = []
    for word in words:
        if not _WORD.fullmatch(word):
            raise ValueError(f"{word!r} is not a plain word to write into SQL")
        found.append(literal_column(f"'{word}'", String()))
    return found


def _read_only(conn: Connection) -> Connection:
    if conn.dialect.name == "postgresql":
        conn.execution_options(isolation_level="AUTOCOMMIT")  # the pool resets it on return
    return conn


_shared = threading.local()
_readers: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()
_readers_lock = threading.Lock()


def _readers_of(engine: Engine) -> Engine:
    """The engine whose pool lends `shared_reads` its connections: the same database and
    settings as `engine`, `POOL_SIZE` connections kept, and more opened rather than
    waited for. Disposed with `engine`. A database in memory is the connection's own, so
    there `engine` itself lends them."""
    with _readers_lock:
        found = _readers.get(engine)
        if found is None:
            database = engine.url.database or ""
            if engine.dialect.name == "sqlite" and (not database or "memory" in database):
                return engine
            found = _readers[engine] = _create(engine.url, max_overflow=-1)
            event.listen(engine, "engine_disposed", lambda *_: found.dispose())
            # An engine used again after its dispose (its pool is made anew) lends through
            # `found` again, and nothing disposes it a second time: its connections are
            # closed when `engine` goes, not left open for the garbage collector.
            weakref.finalize(engine, found.dispose)
        return found


def head_revision() -> str:
    """The newest schema revision this publisher knows."""
    return _revisions()[0]


def _create(url: str | URL, *, max_overflow: int = 0) -> Engine:
    try:
        try:
            engine = create_engine(url, pool_size=POOL_SIZE, max_overflow=max_overflow)
        except TypeError:  # SQLite in memory: one connection per thread, a pool without a size
            engine = create_engine(url)
    except (ArgumentError, ValueError) as exc:
        raise StoreError(
            f"[store] url {url!r} is not a database URL: {exc}. Use sqlite:///publisher.db "
            "or postgresql+psycopg://user@host/dbname."
        ) from exc
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise StoreError(
            f"[store] url {url!r} needs a database driver that is not installed ({exc}). "
            "For PostgreSQL: pip install 'publisher[postgres]'."
        ) from exc
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            _private_file(Path(database))
        event.listen(engine, "connect", _sqlite_settings)
    else:
        # A long-running daemon outlives server restarts: test a connection that sat unused.
        event.listen(engine, "checkin", _returned)
        event.listen(engine, "checkout", functools.partial(_ping_if_idle, engine.dialect))
    return engine


def _returned(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info[_RETURNED] = time.monotonic()


def _ping_if_idle(dialect: Dialect, dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
    """Test a connection that sat in the pool `PING_IDLE` seconds or more (a new one is not
    tested: it was just made); one that fails is replaced, and so is every connection made
    before it, as SQLAlchemy's pre-ping does (a restarted server ended them all)."""
    returned = record.info.get(_RETURNED)
    if returned is None or time.monotonic() - returned < PING_IDLE:
        return
    try:
        dialect.do_ping(dbapi_connection)
    except dialect.loaded_dbapi.Error as exc:
        raise InvalidatePoolError(f"the database connection failed its test: {exc}") from exc


def _private_file(path: Path) -> None:
    """Create the SQLite file 0600 (whatever the umask) before SQLite does, and take group
    and world access from one that has it: it holds every subscriber's address. SQLite
    gives its -wal and -shm files the database file's mode."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError:
        return  # a missing folder and the like: SQLite says what is wrong when it opens
    else:
        os.close(fd)
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = file.stat().st_mode & 0o777
            if mode & 0o077:
                file.chmod(mode & 0o700)
        except OSError:
            continue


def _sqlite_settings(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    """Per-connection SQLite settings (WAL lets readers work while one process writes).

    busy_timeout comes first so that switching a fresh file to WAL waits for a
    concurrent opener instead of failing.
    """
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL (it stays so); retry while another opener is switching it.

    SQLite answers "database is locked" at once, without the busy handler, when two
    connections change the journal mode of a fresh file at the same moment.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode")
            if str(cursor.fetchone()[0]).lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _stamped(engine: Engine) -> list[str] | None:
    """The revisions the database is stamped with; None when that cannot be read simply."""
    try:
        with engine.connect() as conn:
            return [str(row[0]) for row in conn.execute(text("SELECT version_num FROM alembic_version"))]
    except SQLAlchemyError:
        return None


@functools.cache
def _revisions() -> tuple[str, frozenset[str]]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    if head is None:  # pragma: no cover - the package always ships revision 0001
        raise StoreError(f"no schema migrations found in {MIGRATIONS}; reinstall publisher")
    return head, frozenset(rev.revision for rev in script.walk_revisions())


def alembic_config(url: str | None = None, *, connection: Connection | None = None) -> AlembicConfig:
    """alembic's configuration for the migrations inside the package (for tools and tests)."""
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _current(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def _check_known(current: str | None, engine: Engine) -> None:
    head, known = _revisions()
    if current is not None and current not in known:
        where = engine.url.render_as_string(hide_password=True)
        raise StoreError(
            f"the database at {where} has schema revision {current!r}, which this publisher "
            f"does not know (its newest is {head!r}): it was written by a newer publisher. "
            "Upgrade publisher (pip install --upgrade publisher) and run again."
        )


def _migrate(engine: Engine) -> None:
    quick = head_on_disk()
    if quick is not None and _stamped(engine) == [quick]:
        return
    head, _ = _revisions()
    where = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            current = _current(conn)
        if current == head:
            return
        _check_known(current, engine)
        with engine.connect() as conn:
            _lock_for_migration(conn)
            # Another process may have migrated while this one waited for the lock.
            current = _current(conn)
            _check_known(current, engine)
            if current != head:
                from alembic import command

                command.upgrade(alembic_config(connection=conn), "head")
            conn.commit()
    except StoreError:
        raise
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot open the database at {where}: {exc.__class__.__name__}: "
            f"{getattr(exc, 'orig', None) or exc}. Check [store] url in config.toml and that "
            "the database (or the SQLite file's folder) exists and is writable."
        ) from exc


def _lock_for_migration(conn: Connection) -> None:
    """Start the migration transaction holding a lock that other openers wait for."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
    else:
        conn.begin()
