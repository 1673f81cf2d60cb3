"""Requests per API key in fixed windows, counted in this process's memory."""

from __future__ import annotations

import math
from collections import OrderedDict

__all__ = ["PerClientLimit"]


class PerClientLimit:
    """At most `limit` hits per client per fixed window of `window` seconds.

    Kept in memory, per process: a key's requests must not each wait on a database write
    (a bulk import may hold SQLite's write lock), and a restart forgiving the last
    minute's counts is harmless. The table holds
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
