"""A throwaway PostgreSQL server on loopback for tests, where this machine has one.

Used as `with postgres_server() as url: ...`; skips the test when psycopg or the server
binaries are missing. `fresh_database(url, name)` gives each test its own empty database.
"""

from __future__ import annotations

import atexit
import contextlib
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
    """Start initdb + postgres in a temporary folder; yield a SQLAlchemy URL; stop it."""
    pytest.importorskip("psycopg")
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


def _drop_made() -> None:
    for server_url, names in _MADE.items():
        admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
        # The server may be gone already (a test's own throwaway one): nothing to tidy then.
        with contextlib.suppress(Exception), admin.connect() as conn:
            for name in sorted(names):
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


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
            atexit.register(_drop_made)
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
