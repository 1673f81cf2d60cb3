"""A token bucket: at most `rate` messages a second on average, `burst` at once.

`TokenBucket` is pure arithmetic over a `now` the caller passes; the caller sleeps.
Thread-safe, because every sending thread draws from the one bucket of its provider.
`SharedBucket` is the same bucket kept in the database (store/budgets.py), so that every
process sending for the publication draws from one budget; its `now` is wall-clock time.
`DomainThrottles` keeps one such bucket per recipient domain (`[delivery.domains]`), shared
by every provider and process; it never lets a claimed row wait for its domain's tokens:
rows over the budget are sent back to the queue until the domain has room again.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Protocol, TypeVar

from sqlalchemy import Engine

from publisher.store import budgets

__all__ = ["DomainThrottles", "SharedBucket", "TokenBucket", "domain_of"]


class TokenBucket:
    """Reserve tokens now, learn how long to wait before using them.

    A reservation may overdraw the bucket: the caller then waits until the debt is paid
    back at `rate`, so waiting threads queue in reservation order instead of racing.
    `rate` 0 means no limit.
    """

    def __init__(self, rate: float, burst: int = 0, *, now: float = 0.0) -> None:
        self.rate = float(rate)
        self.capacity = float(burst) if burst > 0 else max(1.0, self.rate)
        self._tokens = self.capacity
        self._stamp = now
        self._lock = threading.Lock()

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    def chunk(self, wanted: int) -> int:
        """How many messages to send in one go so that no send outruns the bucket."""
        if self.unlimited:
            return wanted
        return max(1, min(wanted, int(self.capacity)))

    def reserve(self, count: int, now: float) -> float:
        """Take `count` tokens; return the seconds to wait before sending them."""
        if self.unlimited or count <= 0:
            return 0.0
        with self._lock:
            elapsed = max(0.0, now - self._stamp)
            self._stamp = max(self._stamp, now)
            self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
            self._tokens -= count
            if self._tokens >= 0:
                return 0.0
            return -self._tokens / self.rate

    def refund(self, count: int) -> None:
        """Give back tokens reserved but not used (fewer rows were due than reserved)."""
        if self.unlimited or count <= 0:
            return
        with self._lock:
            self._tokens = min(self.capacity, self._tokens + count)


class SharedBucket:
    """`delivery.rate` for the whole publication: one bucket in the database, for every process.

    The same calls as `TokenBucket`; `now` is Unix time (time.time()), the clock that
    processes on several hosts share.
    """

    def __init__(self, db: Engine, rate: float, burst: int = 0, *, name: str = "delivery") -> None:
        self.rate = float(rate)
        self.capacity = float(burst) if burst > 0 else max(1.0, self.rate)
        self._db = db
        self._name = name

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    def chunk(self, wanted: int) -> int:
        if self.unlimited:
            return wanted
        return max(1, min(wanted, int(self.capacity)))

    def reserve(self, count: int, now: float) -> float:
        if self.unlimited:
            return 0.0
        return budgets.reserve(self._db, self._name, count, rate=self.rate, capacity=self.capacity, now=now)

    def refund(self, count: int) -> None:
        if self.unlimited:
            return
        budgets.refund(self._db, self._name, count, capacity=self.capacity)


class _Addressed(Protocol):
    @property
    def email(self) -> str: ...


A = TypeVar("A", bound=_Addressed)


def domain_of(address: str) -> str:
    """The domain of a mail address, lower case, as `[delivery.domains]` keys are written."""
    return address.rpartition("@")[2].strip().lower().rstrip(".")


class DomainThrottles:
    """`[delivery.domains]`: at most `rate` messages a second to each listed domain, for the
    whole publication (buckets `domain:<domain>` in the database, burst one second's worth).

    `admit` splits a claimed batch into the rows that may go now and, per later moment,
    the rows that must wait for it; a domain not listed is never held back.
    """

    def __init__(self, db: Engine, rates: Mapping[str, float]) -> None:
        self._db = db
        self._rates = {domain: float(rate) for domain, rate in rates.items() if rate > 0}

    def __bool__(self) -> bool:
        return bool(self._rates)

    def admit(self, rows: Sequence[A], now: float) -> tuple[list[A], dict[float, list[A]]]:
        """(rows to send now, {seconds to wait: rows}) for `rows`, keeping their order."""
        wanted: dict[str, int] = {}
        for row in rows:
            domain = domain_of(row.email)
            if domain in self._rates:
                wanted[domain] = wanted.get(domain, 0) + 1
        if not wanted:
            return list(rows), {}
        granted: dict[str, int] = {}
        waits: dict[str, float] = {}
        for domain, count in wanted.items():
            rate = self._rates[domain]
            granted[domain], waits[domain] = budgets.take(
                self._db, f"domain:{domain}"[:64], count, rate=rate, capacity=max(1.0, rate), now=now
            )
        admitted: list[A] = []
        waiting: dict[float, list[A]] = {}
        for row in rows:
            domain = domain_of(row.email)
            if domain not in granted:
                admitted.append(row)
            elif granted[domain] > 0:
                granted[domain] -= 1
                admitted.append(row)
            else:
                waiting.setdefault(waits[domain], []).append(row)
        return admitted, waiting
