"""Revisions 0022, 0025, 0026 and 0035 on a live list: PostgreSQL keeps taking writes while their
indexes are built (each CONCURRENTLY when it is the first revision of the run)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa
from alembic import command
from pg_server import fresh_database, postgres_server

from publisher.store import open_store
from publisher.store.engine import alembic_config, head_revision

READERS = 150_000
FILL = """
INSERT INTO subscribers (email, name, status, source, created_at, updated_at, token_key, legacy_links, frequency)
SELECT 'reader' || n || '@example.org', 'Reader ' || n, 'active', 'import', now(), now(), md5(n::text), false, 'every'
FROM generate_series(1, {count}) AS n
"""
TAGS = "INSERT INTO subscriber_tags (subscriber_id, tag) SELECT id, 'clinicians' FROM subscribers WHERE id %% 3 = 0"
INSERT = """
INSERT INTO subscribers (email, name, status, source, created_at, updated_at, token_key, legacy_links, frequency)
VALUES (%(email)s, '', 'active', 'web', now(), now(), %(token)s, false, 'every')
"""
BUILDING = (
    "SELECT command, relid::regclass::text FROM pg_stat_progress_create_index "
    "WHERE relid IN ('subscribers'::regclass, 'subscriber_tags'::regclass)"
)
INDEXES = "SELECT indexname FROM pg_indexes WHERE tablename IN ('subscribers', 'subscriber_tags')"
INVALID = "SELECT count(*) FROM pg_index WHERE NOT indisvalid"
SEGMENT_INDEXES = (  # 0022's and 0026's
    "ix_subscriber_tags_tag_subscriber",
    "ix_subscribers_status_created_at",
    "ix_subscribers_status_source",
    "ix_subscribers_status_timezone",
)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


def _list_at(url: str, revision: str = "0024", readers: int = READERS) -> sa.Engine:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        command.upgrade(alembic_config(connection=conn), revision)
        conn.exec_driver_sql(FILL.format(count=readers))
        conn.exec_driver_sql(TAGS)
        conn.commit()
    return engine


@dataclass
class Upgrade:
    """What a writer saw while `open_store` brought a live list up to date."""

    during: list[float] = field(default_factory=list)  # signups begun while an index was being built
    builds: set[tuple[str, str]] = field(default_factory=set)  # (command, table) of the builds seen
    refused: list[str] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    invalid: int = 0
    version: str = ""


def _upgrade_while_signing_up(url: str, engine: sa.Engine) -> Upgrade:
    seen = Upgrade()
    done = threading.Event()

    def sign_up() -> None:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("SET lock_timeout = '5s'")
            n = 0
            while not done.is_set():
                building = {(row[0], row[1]) for row in conn.exec_driver_sql(BUILDING)}
                seen.builds.update(building)
                started = time.monotonic()
                try:
                    conn.exec_driver_sql(INSERT, {"email": f"live{n}@example.org", "token": f"live{n:028d}"})
                except sa.exc.DBAPIError as exc:
                    seen.refused.append(str(exc.orig))
                if building:
                    seen.during.append(time.monotonic() - started)
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
        seen.names = {row[0] for row in conn.exec_driver_sql(INDEXES)}
        seen.invalid = int(conn.exec_driver_sql(INVALID).scalar() or 0)
        seen.version = str(conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar())
    engine.dispose()
    return seen


def test_signups_go_on_while_the_indexes_are_built(postgres_url: str) -> None:
    """Signups commit while 0025 builds its indexes on 150,000 readers: no lock holds the list."""
    url = fresh_database(postgres_url, "live")
    seen = _upgrade_while_signing_up(url, _list_at(url))
    assert seen.refused == []
    assert seen.during, "no signup was made while an index was being built"
    assert max(seen.during) < 2.0
    assert {"ix_subscribers_status_id", "ix_subscribers_email_trgm", "ix_subscribers_name_trgm"} <= seen.names
    assert set(SEGMENT_INDEXES) <= seen.names
    assert seen.invalid == 0
    assert seen.version == head_revision()


def test_a_list_at_0021_takes_signups_while_0022_builds_its_indexes(postgres_url: str) -> None:
    """From 0021, 0022 builds its indexes CONCURRENTLY before it writes its table and columns."""
    url = fresh_database(postgres_url, "at0021")
    seen = _upgrade_while_signing_up(url, _list_at(url, "0021"))
    assert seen.refused == []
    assert ("CREATE INDEX CONCURRENTLY", "subscriber_tags") in seen.builds
    assert ("CREATE INDEX", "subscriber_tags") not in seen.builds
    assert set(SEGMENT_INDEXES) <= seen.names
    assert seen.invalid == 0


def test_a_list_at_0025_takes_signups_while_0026_builds_its_index(postgres_url: str) -> None:
    """From 0025, 0026 builds the time-zone index CONCURRENTLY: signups never wait for it."""
    url = fresh_database(postgres_url, "at0025")
    seen = _upgrade_while_signing_up(url, _list_at(url, "0025"))
    assert seen.refused == []
    assert seen.during, "no signup was made while an index was being built"
    assert {command for command, _ in seen.builds} == {"CREATE INDEX CONCURRENTLY"}
    assert "ix_subscribers_status_timezone" in seen.names
    assert seen.invalid == 0


def test_an_index_left_invalid_by_a_failed_build_is_built_again(postgres_url: str) -> None:
    """A concurrent build cut short leaves an invalid index; the upgrade drops and rebuilds it."""
    url = fresh_database(postgres_url, "invalid")
    engine = _list_at(url, readers=2_000)  # the rebuild is the point, not the list's size
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
    assert {"ix_subscribers_status_id", *SEGMENT_INDEXES} <= names


COPIES = 100_000
LEDGER = """
INSERT INTO issues (id, key, kind, slug, subject, html, text, status, created_at)
VALUES (1, 'k', 'article', 'k', 'K', '<p>k</p>', 'k', 'sending', now());
INSERT INTO deliveries (issue_id, subscriber_id, email, name, state, attempts, not_before, provider_id, detail,
                        message_key, uncertain)
SELECT 1, NULL, 'copy' || n || '@example.org', '', 'queued', 0, now(), '', '', md5(n::text), false
FROM generate_series(1, {count}) AS n
"""
RECORD = "UPDATE deliveries SET state = 'sent', sent_at = now() WHERE id = %(id)s"
LEDGER_BUILDING = "SELECT command FROM pg_stat_progress_create_index WHERE relid = 'deliveries'::regclass"


def test_a_ledger_at_0034_records_sends_while_0035_builds_its_index(postgres_url: str) -> None:
    """From 0034, 0035 builds the ledger's index CONCURRENTLY: a send's answers keep being recorded."""
    url = fresh_database(postgres_url, "at0034")
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        command.upgrade(alembic_config(connection=conn), "0034")
        for statement in LEDGER.format(count=COPIES).split(";"):
            conn.exec_driver_sql(statement)
        conn.commit()
    builds: set[str] = set()
    during: list[float] = []
    refused: list[str] = []
    done = threading.Event()

    def record() -> None:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("SET lock_timeout = '5s'")
            n = 1
            while not done.is_set():
                building = {row[0] for row in conn.exec_driver_sql(LEDGER_BUILDING)}
                builds.update(building)
                started = time.monotonic()
                try:
                    conn.exec_driver_sql(RECORD, {"id": n})
                except sa.exc.DBAPIError as exc:
                    refused.append(str(exc.orig))
                if building:
                    during.append(time.monotonic() - started)
                n += 1
                time.sleep(0.005)

    writer = threading.Thread(target=record)
    writer.start()
    try:
        open_store(url).dispose()
    finally:
        done.set()
        writer.join(timeout=30)
    with engine.connect() as conn:
        names = {
            row[0] for row in conn.exec_driver_sql("SELECT indexname FROM pg_indexes WHERE tablename = 'deliveries'")
        }
        invalid = conn.exec_driver_sql(INVALID).scalar()
        version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    engine.dispose()
    assert refused == []
    assert builds == {"CREATE INDEX CONCURRENTLY"}
    assert during, "no answer was recorded while the index was being built"
    assert max(during) < 2.0
    assert "ix_deliveries_issue_state_id" in names and invalid == 0
    assert version == head_revision()
