"""Stores for tests: SQLite in tmp_path always, PostgreSQL when a scratch database is named.

    PUBLISHER_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/scratch pytest

Every PostgreSQL test starts from an empty database of its own (one per pytest-xdist
worker, created on the named server), so the variable's database is never touched.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from pg_server import POSTGRES_ENV, fresh_database

from publisher.store import open_store

# PostgreSQL joins the parameters only when configured, so a plain run lists no skips.
BACKENDS = ["sqlite", "postgresql"] if os.environ.get(POSTGRES_ENV) else ["sqlite"]


def open_test_store(backend: str, tmp_path: Path) -> sa.Engine:
    """A freshly migrated store; skips the test when PostgreSQL is asked for but not set up."""
    if backend == "sqlite":
        return open_store(f"sqlite:///{tmp_path / 'test.db'}")
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"set {POSTGRES_ENV}=postgresql+psycopg://... to run against PostgreSQL")
    return open_store(fresh_database(url, "publisher_store_test", template=_migrated_template(url)))


_TEMPLATES: dict[str, str] = {}


def _migrated_template(server_url: str) -> str:
    """A database migrated to head by the real code, once a process, that each PostgreSQL
    test's store is copied from (`CREATE DATABASE ... TEMPLATE`): every revision still runs,
    once, and a test starts in a second instead of migrating again."""
    if server_url not in _TEMPLATES:
        made = fresh_database(server_url, "publisher_store_template")
        open_store(made).dispose()
        _TEMPLATES[server_url] = made.rsplit("/", 1)[1]
    return _TEMPLATES[server_url]
