"""store/engine.py: the pool keeps the connections it opened; on PostgreSQL a pooled
connection is tested only after sitting unused, one the server ended meanwhile is
replaced, and reads run outside a transaction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from publisher.store import engine as store_engine
from publisher.store import open_store
from publisher.store.engine import reader


def _count_pings(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    pinged: list[object] = []
    real = engine.dialect.do_ping

    def ping(dbapi_connection: Any) -> bool:
        pinged.append(dbapi_connection)
        return bool(real(dbapi_connection))

    monkeypatch.setattr(engine.dialect, "do_ping", ping)
    return pinged


def _backend_pid(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_used_again_at_once_is_not_tested(pg: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten checkouts in a row, each back in the pool for less than PING_IDLE: no test query."""
    _backend_pid(pg)
    pinged = _count_pings(pg, monkeypatch)
    for _ in range(10):
        with pg.connect() as conn:
            conn.execute(sa.select(1))
    assert pinged == []


def test_a_connection_the_server_ended_while_unused_is_replaced(pg: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unused for PING_IDLE, the connection is tested; the server had ended it, so the next
    statement runs on a new one instead of failing."""
    monkeypatch.setattr(store_engine, "PING_IDLE", 0.0)
    ended = _backend_pid(pg)
    other = sa.create_engine(pg.url.render_as_string(hide_password=False))
    with other.begin() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": ended})
    other.dispose()
    pinged = _count_pings(pg, monkeypatch)
    assert _backend_pid(pg) != ended
    assert len(pinged) == 1


def test_a_read_runs_outside_a_transaction(pg: sa.Engine) -> None:
    """No BEGIN before a read through `reader`, and the next connection from the pool
    opens a transaction again."""
    with reader(pg) as conn:
        conn.execute(sa.select(1))
        assert conn.connection.dbapi_connection.info.transaction_status.name == "IDLE"  # type: ignore[union-attr]
    with pg.connect() as conn:
        conn.execute(sa.select(1))
        assert conn.connection.dbapi_connection.info.transaction_status.name == "INTRANS"  # type: ignore[union-attr]


def test_the_pool_keeps_the_connections_it_opened(tmp_path: Path) -> None:
    """Ten pages at once open ten connections; the next ten reuse them, none opened again."""
    engine = open_store(f"sqlite:///{tmp_path / 'publisher.db'}")
    opened: list[object] = []
    sa.event.listen(engine, "connect", lambda dbapi_connection, record: opened.append(dbapi_connection))
    for _ in range(2):
        opened.clear()
        held = [engine.connect() for _ in range(10)]
        for conn in held:
            conn.execute(sa.select(1))
            conn.close()
    engine.dispose()
    assert opened == []
