"""The database in and out of a backup: a consistent copy taken while others write, and
that copy put back into an empty database.

SQLite is copied through its online backup API (`sqlite3.Connection.backup`) in one
step, which reads one snapshot while the daemon and senders keep writing: never a file
copy, which could catch a WAL database between a commit and its checkpoint. The copy is
switched out of WAL, so that it is one self-contained file. PostgreSQL goes out through
`pg_dump` (custom format, one snapshot by design) and comes back through `pg_restore` in a
single transaction, so that a failed restore leaves the database as empty as it was.

The password of a PostgreSQL URL goes to `pg_dump` and `pg_restore` in their environment
(PGPASSWORD), never on their command line, where `ps` would show it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from publisher.errors import ConfigError, StoreError
from publisher.store.engine import BUSY_TIMEOUT_MS, alembic_config

__all__ = [
    "SCHEDULER_JOBS",
    "DumpedDatabase",
    "drop_scheduler_jobs",
    "dump_database",
    "known_revision",
    "ledger_counts",
    "ledger_counts_of_file",
    "restore_postgresql",
    "store_kind",
    "tables_in",
]


SCHEDULER_JOBS = "apscheduler_jobs"
"""The scheduler's job table (publisher.schedule.scheduler.JOB_TABLE, which sits above the store)."""


@dataclass(frozen=True, slots=True)
class DumpedDatabase:
    """A database copied into one file, with the schema revision it carries."""

    kind: str
    """"sqlite" or "postgresql"."""
    path: Path
    revision: str | None


def store_kind(url: str) -> str:
    """"sqlite" or "postgresql" for a store URL; StoreError for any other database."""
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError as exc:
        raise StoreError(f"[store] url {url!r} is not a database URL: {exc}") from exc
    if backend not in ("sqlite", "postgresql"):
        raise StoreError(f"[store] url {url!r}: backups know SQLite and PostgreSQL only, not {backend}")
    return backend


def dump_database(url: str, dest: Path) -> DumpedDatabase:
    """Copy the database at `url` into the file `dest` (which must not exist yet)."""
    kind = store_kind(url)
    if kind == "sqlite":
        database = make_url(url).database
        if not database or database == ":memory:" or database.startswith("file:"):
            raise StoreError(f"[store] url {url!r} names no database file to back up")
        _snapshot_sqlite(Path(database), dest)
        return DumpedDatabase(kind, dest, _sqlite_revision(dest))
    _run_pg("pg_dump", ["--format=custom", "--no-owner", "--no-privileges", f"--file={dest}"], url)
    return DumpedDatabase(kind, dest, _pg_revision(url))


def _snapshot_sqlite(source: Path, dest: Path) -> None:
    if not source.is_file():
        raise StoreError(f"the database {source} does not exist: nothing to back up (check [store] url)")
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # private before SQLite writes it
    os.close(fd)
    try:
        # Read-write, though only read: a read-only connection cannot open a WAL database
        # whose -shm file is gone (no process had it open).
        src = sqlite3.connect(source, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the database {source} to back it up: {exc}") from exc
    try:
        dst = sqlite3.connect(dest)
        try:
            # pages=-1: the whole file in one step, from one read snapshot. Step by step, a
            # send writing all along would restart the copy after every commit.
            src.backup(dst, pages=-1)
            dst.execute("PRAGMA journal_mode = DELETE")
            dst.commit()
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise StoreError(f"the database {source} could not be copied: {exc}") from exc
    finally:
        src.close()


def _sqlite_revision(path: Path) -> str | None:
    with _closing_sqlite(path) as conn:
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.Error:
            return None
    return str(row[0]) if row else None


def ledger_counts(engine: sa.Engine) -> dict[str, int]:
    """Ledger rows per state, and how many are marked uncertain (under "uncertain")."""
    from publisher.store.schema import deliveries

    with engine.connect() as conn:
        counts = {
            str(state): int(n)
            for state, n in conn.execute(sa.select(deliveries.c.state, sa.func.count()).group_by(deliveries.c.state))
        }
        counts["uncertain"] = int(
            conn.execute(sa.select(sa.func.count()).where(deliveries.c.uncertain.is_(True))).scalar_one()
        )
    return counts


def ledger_counts_of_file(path: Path) -> dict[str, int]:
    """Ledger rows per state in an SQLite copy (what a backup holds), read-only."""
    with _closing_sqlite(path) as conn:
        try:
            rows = conn.execute("SELECT state, count(*) FROM deliveries GROUP BY state").fetchall()
            uncertain = conn.execute("SELECT count(*) FROM deliveries WHERE uncertain").fetchone()[0]
        except sqlite3.Error:
            return {}
    return {**{str(state): int(n) for state, n in rows}, "uncertain": int(uncertain)}


class _closing_sqlite:  # a context manager, named like contextlib.closing
    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


def _pg_revision(url: str) -> str | None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one_or_none())
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()


def tables_in(url: str) -> list[str]:
    """The tables of the database at `url` (none: it is empty and may be restored into)."""
    try:
        engine = sa.create_engine(url)
    except (ArgumentError, ValueError, ModuleNotFoundError) as exc:
        raise StoreError(f"{url!r} is not a usable database URL: {exc}") from exc
    where = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            return sorted(sa.inspect(conn).get_table_names())
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot open the database at {where}: {getattr(exc, 'orig', None) or exc}. Create it "
            "(empty) first, or name another with --store-url."
        ) from exc
    finally:
        engine.dispose()


def drop_scheduler_jobs(engine: sa.Engine) -> int:
    """Empty the scheduler's stored jobs in a restored database; returns how many there were.

    Each names the config path of the publication it was made for, which is the old
    folder's: a restored daemon must not wake jobs up for it. The daemon adds its recurring
    jobs at start and arms each scheduled send again from the schedules table.
    """
    if not sa.inspect(engine).has_table(SCHEDULER_JOBS):
        return 0
    table = sa.Table(SCHEDULER_JOBS, sa.MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        return int(conn.execute(sa.delete(table)).rowcount or 0)


def restore_postgresql(dump: Path, url: str) -> None:
    """Load a `pg_dump` custom-format file into the (empty) database at `url`, all or nothing."""
    _run_pg(
        "pg_restore",
        ["--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction", str(dump)],
        url,
    )


def known_revision(revision: str) -> bool:
    """Whether this publisher knows a schema revision (an unknown one is from a newer publisher)."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    script = ScriptDirectory.from_config(alembic_config())
    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


def _libpq(url: str) -> tuple[str, Mapping[str, str]]:
    """A libpq connection URI without the password, and the environment that carries it."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run_pg(tool: str, args: list[str], url: str) -> None:
    binary = shutil.which(tool)
    if binary is None:
        raise ConfigError(
            f"{tool} is not installed (or not on PATH): a PostgreSQL store is backed up and restored "
            f"with PostgreSQL's own tools. Install them (Debian: apt install postgresql-client) and run again."
        )
    uri, env = _libpq(url)
    where = make_url(url).render_as_string(hide_password=True)
    try:
        done = subprocess.run([binary, *args, f"--dbname={uri}"], env=env, capture_output=True, text=True,
                              check=False)
    except OSError as exc:
        raise StoreError(f"{tool} could not be started: {exc}") from exc
    if done.returncode != 0:
        detail = " ".join(done.stderr.split())[:800] or f"exit code {done.returncode}"
        raise StoreError(f"{tool} failed for {where}: {detail}")
