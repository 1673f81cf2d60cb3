"""Per-client counting for the subscribe form."""

from __future__ import annotations

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
