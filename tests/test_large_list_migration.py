"""Revision 0025 on a live list: PostgreSQL keeps taking writes while its indexes are built."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic import command
from pg_server import fresh_database, postgres_server

from publisher.store import open_store
from publisher.store.engine import alembic_config

READERS = 300_000
FILL = """
INSERT INTO subscribers (email, name, status, source, created_at, updated_at, token_key, legacy_links, frequency)
SELECT 'reader' || n || '@example.org', 'Reader ' || n, 'active', 'import', now(), now(), md5(n::text), false, 'every'
FROM generate_series(1, {count}) AS n
"""
INSERT = """
INSERT INTO subscribers (email, name, status, source, created_at, updated_at, token_key, legacy_links, frequency)
VALUES (%(email)s, '', 'active', 'web', now(), now(), %(token)s, false, 'every')
"""
BUILDING = "SELECT count(*) FROM pg_stat_progress_create_index WHERE relid = 'subscribers'::regclass"
INDEXES = "SELECT indexname FROM pg_indexes WHERE tablename = 'subscribers'"
INVALID = "SELECT count(*) FROM pg_index WHERE NOT indisvalid"


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


def _list_at(url: str, revision: str = "0024") -> sa.Engine:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        command.upgrade(alembic_config(connection=conn), revision)
        conn.exec_driver_sql(FILL.format(count=READERS))
        conn.commit()
    return engine


def test_signups_go_on_while_the_indexes_are_built(postgres_url: str) -> None:
    """Signups commit while 0025 builds its indexes on 300,000 readers: no lock holds the list."""
    url = fresh_database(postgres_url, "live")
    engine = _list_at(url)
    done = threading.Event()
    during: list[float] = []  # how long each signup took that began while an index was being built
    refused: list[str] = []

    def sign_up() -> None:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("SET lock_timeout = '5s'")
            n = 0
            while not done.is_set():
                building = conn.exec_driver_sql(BUILDING).scalar()
                started = time.monotonic()
                try:
                    conn.exec_driver_sql(INSERT, {"email": f"live{n}@example.org", "token": f"live{n:028d}"})
                except sa.exc.DBAPIError as exc:
                    refused.append(str(exc.orig))
                if building:
                    during.append(time.monotonic() - started)
                n += 1
                time.sleep(0.005)

    writer = threading.Thread(target=sign_up)
    writer.start()
    try:
        open_store(url).dispose()
    finally:
        done.set()
        writer.join(timeout=30)
    with engine.connect() as conn:
        names = {row[0] for row in conn.exec_driver_sql(INDEXES)}
        invalid = conn.exec_driver_sql(INVALID).scalar()
        version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    engine.dispose()
    assert refused == []
    assert during, "no signup was made while an index was being built"
    assert max(during) < 2.0
    assert {"ix_subscribers_status_id", "ix_subscribers_email_trgm", "ix_subscribers_name_trgm"} <= names
    assert invalid == 0
    assert version == "0025"


def test_an_index_left_invalid_by_a_failed_build_is_built_again(postgres_url: str) -> None:
    """A concurrent build cut short leaves an invalid index; the upgrade drops and rebuilds it."""
    url = fresh_database(postgres_url, "invalid")
    engine = _list_at(url)
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE INDEX ix_subscribers_status_id ON subscribers (status, id)")
        conn.exec_driver_sql(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'ix_subscribers_status_id'::regclass"
        )
        conn.commit()
    open_store(url).dispose()
    with engine.connect() as conn:
        invalid = conn.exec_driver_sql(INVALID).scalar()
    engine.dispose()
    assert invalid == 0


def test_a_list_several_revisions_behind_is_brought_up_in_one_run(postgres_url: str) -> None:
    """From 0018 (earlier revisions touch the list in the same transaction) the indexes are built plainly."""
    url = fresh_database(postgres_url, "behind")
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        command.upgrade(alembic_config(connection=conn), "0018")
        conn.commit()
    open_store(url).dispose()
    with engine.connect() as conn:
        names = {row[0] for row in conn.exec_driver_sql(INDEXES)}
    engine.dispose()
    assert "ix_subscribers_status_id" in names
