"""A token bucket: at most `rate` messages a second on average, `burst` at once.

`TokenBucket` is pure arithmetic over a `now` the caller passes; the caller sleeps.
Thread-safe, because every sending thread draws from the one bucket of its provider.
`SharedBucket` is the same bucket kept in the database (store/budgets.py), so that every
process sending for the publication draws from one budget; its `now` is wall-clock time.
"""

from __future__ import annotations

import threading

from sqlalchemy import Engine

from publisher.store import budgets

__all__ = ["SharedBucket", "TokenBucket"]


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
