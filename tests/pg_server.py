"""A PostgreSQL server on loopback for tests, where this machine has one.

Used as `with postgres_server() as url: ...`: an empty database of the block's own on the
server PUBLISHER_TEST_POSTGRES_URL names, dropped when the block ends; without it, a
throwaway server started for the block (skipping the test when psycopg or the server
binaries are missing). Starting a server takes seconds, so a run that names one starts
none. `fresh_database(url, name)` gives each test its own empty database.
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import SQLAlchemyError

POSTGRES_ENV = "PUBLISHER_TEST_POSTGRES_URL"
_SCRATCH = itertools.count(1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _bin_dir() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a SQLAlchemy URL of an empty database that nothing else uses: one made on the
    configured server, or the `postgres` database of a server started for the block."""
    pytest.importorskip("psycopg")
    configured = os.environ.get(POSTGRES_ENV)
    if configured:
        # The process id keeps two runs without xdist on one server apart as well.
        name = f"publisher_scratch_{os.getpid()}_{next(_SCRATCH)}"
        url = fresh_database(configured, name)
        try:
            yield url
        finally:
            _drop(configured, url.rsplit("/", 1)[1])
        return
    with _throwaway_server() as url:
        yield url


@contextmanager
def _throwaway_server() -> Iterator[str]:
    """Start initdb + postgres in a temporary folder; yield a SQLAlchemy URL; stop it."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries are not installed")
    prefix: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser")
        prefix = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="publisher-pg-"))
    if prefix:
        shutil.chown(root, "postgres")
    data, port = root / "data", _free_port()
    pg_ctl = [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data)]
    try:
        subprocess.run(
            [*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", "publisher", "--auth=trust"],
            check=True,
            capture_output=True,
        )
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [*pg_ctl, "-w", "-l", str(root / "log"), "-o", options, "start"],
            check=True,
            capture_output=True,
        )
        yield f"postgresql+psycopg://publisher@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


_MADE: dict[str, set[str]] = {}
"""Server URL -> the databases this xdist worker made there."""


def _drop(server_url: str, name: str) -> None:
    _drop_all(server_url, [name])
    for names in _MADE.values():
        names.discard(name)


def drop_made() -> None:
    """Drop the databases this process made with `fresh_database` under xdist. conftest.py
    calls it as the session ends (an xdist worker may exit without running atexit's
    functions); atexit is the fallback elsewhere."""
    for server_url, names in _MADE.items():
        # The database named in the URL may be gone (a block's own one, dropped as the block
        # ended): the server's maintenance database reaches the rest. The server itself may
        # be gone (a test's own throwaway one): nothing to tidy then.
        for admin_url in (server_url, server_url.rsplit("/", 1)[0] + "/postgres"):
            if _drop_all(admin_url, sorted(names)):
                break
    _MADE.clear()


def _drop_all(admin_url: str, names: list[str]) -> bool:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for name in names:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except SQLAlchemyError:
        return False
    finally:
        admin.dispose()
    return True


def fresh_database(server_url: str, name: str, *, template: str | None = None) -> str:
    """Create an empty database `name` on the server (a copy of the database `template`
    when one is named); return its URL.

    Under pytest-xdist the name carries the worker's id and the run's, so neither two
    workers nor two runs sharing one server drop each other's database mid-test; a
    worker drops the databases it made when it exits.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        name = f"{name}_{worker}_{os.environ.get('PYTEST_XDIST_TESTRUNUID', '')[:8]}".rstrip("_")
        if not _MADE:
            atexit.register(drop_made)
        _MADE.setdefault(server_url, set()).add(name)
    copy = f' TEMPLATE "{template}"' if template else ""
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"{copy}')
    finally:
        admin.dispose()
    return server_url.rsplit("/", 1)[0] + "/" + name
