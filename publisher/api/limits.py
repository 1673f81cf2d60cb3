"""Requests per API key: counted in the store across processes, or in one process's memory."""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from publisher.services import access

__all__ = ["PerClientLimit", "SharedLimit"]

log = logging.getLogger(__name__)


class PerClientLimit:
    """At most `limit` hits per client per fixed window of `window` seconds.

    Kept in memory, per process: `SharedLimit` falls back on it while the store cannot be
    written, and a restart forgiving the last minute's counts is harmless. The table holds
    at most `max_clients`; it is kept in order of window start (a renewed window moves
    to the end), so expired and, when still full, oldest windows are dropped from the
    front at constant cost per hit. A flood of new addresses (an IPv6 /48 holds 65,536
    /64s) must not make each hit scan the whole table inside the event loop.
    """

    def __init__(self, limit: int, window: float = 3600.0, *, max_clients: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        self._counts: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def hit(self, key: str, now: float) -> float:
        """Count one hit; 0.0 when allowed, else seconds until the window resets."""
        counts = self._counts
        entry = counts.get(key)
        if entry is None or now - entry[0] >= self.window:
            start, count = now, 0
        else:
            start, count = entry
        if count >= self.limit:
            return max(1.0, math.ceil(start + self.window - now))
        if entry is None:
            self._make_room(now)
        elif count == 0:
            counts.move_to_end(key)  # a new window: now the newest
        counts[key] = (start, count + 1)
        return 0.0

    def _make_room(self, now: float) -> None:
        counts = self._counts
        while counts:
            start, _ = next(iter(counts.values()))  # the front holds the oldest window
            if now - start < self.window and len(counts) < self.max_clients:
                return
            # Expired, or still full of live windows: forget the oldest rather than grow.
            counts.popitem(last=False)


class SharedLimit:
    """At most `limit` requests per `window` seconds per key, across every process.

    The count lives in the store's rate budgets (one token bucket per key, refilled at
    `limit` per `window`, holding at most `limit`), so three `publisher serve` processes or
    workers on one database let through what one would. A process takes tokens in small
    leases (`lease`, at most a twentieth of the limit) and spends them from memory, so a
    busy key costs one database write per lease rather than per request; tokens leased by
    one process and not spent within `window` are dropped, never handed out twice, so the
    combined count stays within the bucket.

    When the store cannot be written (a bulk import holding SQLite's write lock past its
    busy timeout, a database restarting), the request is counted in this process's memory
    instead (`PerClientLimit`): a key is then held to the limit per process for as long as
    the store is away, rather than each request failing.
    """

    def __init__(self, db: Engine, limit: int, window: float = 60.0, *, max_clients: int = 10_000) -> None:
        self.db = db
        self.limit = limit
        self.window = window
        self.lease = max(1, min(50, limit // 20))
        self.fallback = PerClientLimit(limit, window, max_clients=max_clients)
        self._leases: dict[str, tuple[float, int]] = {}
        self._guard = threading.Lock()

    def hit(self, key: str, now: float) -> float:
        """Count one request of `key` at Unix time `now`; 0.0 when allowed, else seconds to wait.

        Blocking (it may write to the store): call it from a worker thread.
        """
        with self._guard:
            leased = self._leases.get(key)
            if leased is not None and leased[1] > 0 and now - leased[0] < self.window:
                self._leases[key] = (leased[0], leased[1] - 1)
                return 0.0
            self._leases.pop(key, None)
        try:
            granted, wait = access.take_requests(
                self.db, key, self.lease, per=self.window, limit=self.limit, now=now
            )
        except SQLAlchemyError as exc:
            log.warning("could not count a request of API key %s in the store, counting it here: %s", key, exc)
            return self.fallback.hit(key, now)
        if granted == 0:
            return float(max(1, math.ceil(wait)))
        with self._guard:
            if len(self._leases) >= self.fallback.max_clients:
                self._leases.clear()  # forgetting leases only gives tokens up, never away
            if granted > 1:
                self._leases[key] = (now, granted - 1)
        return 0.0
