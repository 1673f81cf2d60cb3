"""Per-client counting for the subscribe form."""

from __future__ import annotations

import time

import pytest

from publisher.web.limits import PerClientLimit, client_key


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


def test_limit_then_reset() -> None:
    """`limit` hits pass, the next waits until the window ends, then counting restarts."""
    limit = PerClientLimit(2, window=100)
    assert limit.hit("a", 0) == 0
    assert limit.hit("a", 10) == 0
    assert limit.hit("a", 20) == 80
    assert limit.hit("b", 20) == 0
    assert limit.hit("a", 100) == 0


def test_memory_is_bounded() -> None:
    """However many clients come, at most max_clients are remembered."""
    limit = PerClientLimit(1, window=100, max_clients=10)
    for number in range(50):
        limit.hit(f"client-{number}", float(number))
    assert len(limit._counts) <= 10


def test_renewed_window_is_the_newest() -> None:
    """When full, the client whose window began longest ago goes first, not the one that
    was seen first: a renewed window counts from its renewal."""
    limit = PerClientLimit(5, window=100, max_clients=3)
    limit.hit("a", 0)
    limit.hit("b", 10)
    limit.hit("c", 20)
    limit.hit("a", 105)  # a's first window is over; its second starts now
    limit.hit("d", 106)
    assert set(limit._counts) == {"a", "c", "d"}


def test_expired_windows_are_dropped_first() -> None:
    """Clients whose window is over are forgotten before any live one."""
    limit = PerClientLimit(5, window=100, max_clients=3)
    limit.hit("old", 0)
    limit.hit("live-1", 150)
    limit.hit("live-2", 160)
    limit.hit("new", 170)
    assert set(limit._counts) == {"live-1", "live-2", "new"}


def test_flood_of_new_clients_stays_cheap() -> None:
    """A full table does not make each new client's hit scan it: 2,000 new clients against
    20,000 live windows take well under a second (a scan per hit takes several)."""
    limit = PerClientLimit(1, window=3600, max_clients=20_000)
    for number in range(20_000):
        limit.hit(f"filler-{number}", 0.0)
    started = time.perf_counter()
    for number in range(2_000):
        assert limit.hit(f"new-{number}", 1.0) == 0.0
    assert time.perf_counter() - started < 0.5
    assert len(limit._counts) == 20_000
