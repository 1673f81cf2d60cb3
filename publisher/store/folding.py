"""Folding the kept counts' change lines now and then, not before every figure a page reads.

On PostgreSQL the triggers of 0027 and 0031 append +1 and -1 lines that a fold moves into
the kept rows (`counts_kept.fold`, `issues.fold_issue_counts`). A figure is exact without
a fold (`counts_kept.kept` adds the lines not yet folded in the reader's snapshot): folding
only keeps the change tables short. Folding before each figure cost Home half a dozen
write transactions a request; here each fold runs at most once every `EVERY` seconds per
engine in a process, which keeps the tables as short as a page read a second would.
SQLite folds nothing, so nothing is timed there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from weakref import WeakKeyDictionary

from sqlalchemy import Engine

__all__ = ["EVERY", "now_and_then"]

EVERY = 1.0
"""Seconds between two folds of one kind by one process."""

_last: WeakKeyDictionary[Engine, dict[str, float]] = WeakKeyDictionary()
_running: WeakKeyDictionary[Engine, dict[str, threading.Lock]] = WeakKeyDictionary()
_lock = threading.Lock()


def now_and_then(
    engine: Engine, fold: Callable[[Engine], None], *, every: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Run `fold(engine)` unless this process started it less than `every` seconds
    (`EVERY`) ago or is running it still (a fold of a long table of lines outlasts the
    second), or the store is SQLite; True when it ran."""
    if engine.dialect.name != "postgresql":
        return False
    every = EVERY if every is None else every
    name = f"{fold.__module__}.{fold.__qualname__}"
    moment = clock()
    with _lock:
        seen = _last.setdefault(engine, {})
        running = _running.setdefault(engine, {}).setdefault(name, threading.Lock())
        if moment - seen.get(name, float("-inf")) < every or not running.acquire(blocking=False):
            return False
        seen[name] = moment
    try:
        fold(engine)
    finally:
        running.release()
    return True
