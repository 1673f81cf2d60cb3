"""Who the client is, and per-client counting for the subscribe form."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pg_server import fresh_database, postgres_server
from sqlalchemy import Engine, func, select
from store_support import POSTGRES_ENV

from publisher.store import client_hits, open_store
from publisher.store.schema import client_hits as client_hits_table
from publisher.web.limits import client_address, client_key, forwarded_https, parse_networks


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.5", "203.0.113.5"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.4", "198.51.100.4"),
        (None, "unknown"),
    ],
)
def test_client_key(host: str | None, key: str) -> None:
    """IPv4 counts per address, IPv6 per /64, mapped IPv4 as IPv4."""
    assert client_key(host) == key


PROXIES = parse_networks(["10.0.0.0/8", "127.0.0.1"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.5", ["198.51.100.1"], "203.0.113.5"),  # not from a proxy: header ignored
        ("127.0.0.1", ["198.51.100.1"], "198.51.100.1"),
        ("10.1.2.3", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),  # the visitor's own entry is not trusted
        ("10.1.2.3", ["198.51.100.1, 10.9.9.9"], "198.51.100.1"),  # a chain of trusted proxies
        ("10.1.2.3", ["not-an-address"], "10.1.2.3"),
        ("10.1.2.3", [], "10.1.2.3"),
        ("::ffff:127.0.0.1", ["198.51.100.1"], "198.51.100.1"),
    ],
)
def test_client_address(peer: str, forwarded: list[str], client: str) -> None:
    """X-Forwarded-For counts only from a listed proxy, and then only its right-most entry
    that is not itself a listed proxy."""
    assert client_address(peer, PROXIES, forwarded_for=forwarded) == client


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.5", ["for=198.51.100.1"], "203.0.113.5"),  # not from a proxy: header ignored
        ("127.0.0.1", ["for=198.51.100.1;proto=https"], "198.51.100.1"),
        ("127.0.0.1", ['for="198.51.100.1:4711"'], "198.51.100.1"),
        ("127.0.0.1", ['for="[2001:db8:cafe::17]:4711"'], "2001:db8:cafe::17"),
        ("10.1.2.3", ["for=6.6.6.6, for=198.51.100.1"], "198.51.100.1"),
        ("10.1.2.3", ["for=6.6.6.6", "for=198.51.100.1;by=10.1.2.3"], "198.51.100.1"),
        ("10.1.2.3", ["For=198.51.100.1, for=10.9.9.9"], "198.51.100.1"),  # a chain of trusted proxies
        ("10.1.2.3", ["for=unknown"], "10.1.2.3"),
        ("10.1.2.3", ["for=_hidden"], "10.1.2.3"),
        ("10.1.2.3", ["proto=https"], "10.1.2.3"),
    ],
)
def test_client_address_from_forwarded(peer: str, forwarded: list[str], client: str) -> None:
    """RFC 7239 Forwarded counts like X-Forwarded-For: only from a listed proxy, right-most
    `for=` that is not one."""
    assert client_address(peer, PROXIES, forwarded=forwarded) == client


def test_both_headers_naming_different_clients_are_not_believed() -> None:
    """A proxy writes one of the two headers; when the other names someone else, the
    visitor wrote it, and the proxy itself is the client."""
    assert client_address(
        "127.0.0.1", PROXIES, forwarded_for=["198.51.100.1"], forwarded=["for=6.6.6.6"]
    ) == "127.0.0.1"
    assert client_address(
        "127.0.0.1", PROXIES, forwarded_for=["198.51.100.1"], forwarded=["for=198.51.100.1"]
    ) == "198.51.100.1"


def test_no_proxy_is_trusted_by_default() -> None:
    """Without trusted proxies the headers are ignored, even from 127.0.0.1."""
    assert client_address("127.0.0.1", (), forwarded_for=["198.51.100.1"]) == "127.0.0.1"
    assert client_address("127.0.0.1", (), forwarded=["for=198.51.100.1"]) == "127.0.0.1"


@pytest.mark.parametrize(
    ("peer", "proto", "forwarded", "https"),
    [
        ("127.0.0.1", ["https"], [], True),
        ("127.0.0.1", ["http"], [], False),
        ("127.0.0.1", ["https, http"], [], False),  # the nearest proxy's word counts
        ("203.0.113.5", ["https"], [], False),  # not from a proxy: header ignored
        ("127.0.0.1", [], ["for=198.51.100.1;proto=https"], True),
        ("127.0.0.1", [], ['for=198.51.100.1;proto="HTTPS"'], True),
        ("127.0.0.1", [], ["for=198.51.100.1"], False),
        ("203.0.113.5", [], ["for=198.51.100.1;proto=https"], False),
        ("127.0.0.1", [], [], False),
    ],
)
def test_forwarded_https(peer: str, proto: list[str], forwarded: list[str], https: bool) -> None:
    """A trusted proxy's X-Forwarded-Proto or Forwarded proto= says whether the visitor came over https."""
    assert forwarded_https(peer, PROXIES, forwarded_proto=proto, forwarded=forwarded) is https


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return open_store(f"sqlite:///{tmp_path / 'limits.db'}")


def test_limit_then_reset(engine: Engine) -> None:
    """`limit` hits pass, the next waits until the window ends, then counting restarts."""
    at = datetime(2026, 3, 1, tzinfo=UTC)

    def hit(client: str, seconds: float) -> float:
        return client_hits.hit(engine, client, now=at + timedelta(seconds=seconds), limit=2, window=100)

    assert hit("a", 0) == 0
    assert hit("a", 10) == 0
    assert hit("a", 20) == 80
    assert hit("b", 20) == 0
    assert hit("a", 100) == 0


def test_a_hit_that_read_the_clock_earlier_counts_in_the_open_window(engine: Engine) -> None:
    """Two requests at once: the one that read the clock first but took the lock second
    counts in the window the other opened (it used to start a window of its own)."""
    at = datetime(2026, 3, 1, tzinfo=UTC)
    assert client_hits.hit(engine, "a", now=at + timedelta(milliseconds=5), limit=1, window=100) == 0
    assert client_hits.hit(engine, "a", now=at, limit=1, window=100) > 0


def test_limit_holds_across_processes_and_restarts(tmp_path: Path) -> None:
    """The count is in the database: a new engine (a restart, another process) sees it."""
    url = f"sqlite:///{tmp_path / 'limits.db'}"
    at = datetime(2026, 3, 1, tzinfo=UTC)
    first = open_store(url)
    assert client_hits.hit(first, "a", now=at, limit=1, window=100) == 0
    first.dispose()
    assert client_hits.hit(open_store(url), "a", now=at, limit=1, window=100) == 100


def test_ended_windows_are_removed(engine: Engine) -> None:
    """Rows of windows that are over go as new clients come: the table stays one window deep."""
    at = datetime(2026, 3, 1, tzinfo=UTC)
    for number in range(50):
        client_hits.hit(engine, f"old-{number}", now=at, limit=1, window=100)
    client_hits.hit(engine, "new", now=at + timedelta(seconds=150), limit=1, window=100)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(client_hits_table)).scalar_one() == 1


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    configured = os.environ.get(POSTGRES_ENV)
    if configured:
        yield configured
        return
    with postgres_server() as url:
        yield url


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_parallel_hits_hold_the_limit(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """100 requests of one client at once: exactly `limit` pass, on SQLite and PostgreSQL."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'limits.db'}"
    else:
        url = fresh_database(request.getfixturevalue("postgres_url"), "client_hits_parallel")
    engine = open_store(url)
    at = datetime(2026, 3, 1, tzinfo=UTC)
    start = threading.Barrier(100)

    def hit(_: int) -> float:
        start.wait()
        return client_hits.hit(engine, "203.0.113.9", now=at, limit=5, window=100)

    with ThreadPoolExecutor(max_workers=100) as pool:
        waits = list(pool.map(hit, range(100)))
    engine.dispose()
    assert waits.count(0.0) == 5
