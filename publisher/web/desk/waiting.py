"""Uploads a desk page keeps between its preview and its Apply: at most `size`, the
oldest forgotten first, each reachable only by its random key from the session that
made it. `on_forget` is called for an item forgotten without being taken (evicted or
dropped), so a page can remove the files it keeps for one; a taken item is the caller's.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

__all__ = ["Waiting"]


class _OfASession(Protocol):
    @property
    def session_id(self) -> str: ...


T = TypeVar("T", bound=_OfASession)


class Waiting(Generic[T]):
    def __init__(self, size: int, on_forget: Callable[[T], None] | None = None) -> None:
        self.size = size
        self._on_forget = on_forget
        self._items: OrderedDict[str, T] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, item: T) -> str:
        key = secrets.token_urlsafe(16)
        with self._lock:
            self._items[key] = item
            forgotten = [self._items.popitem(last=False)[1] for _ in range(len(self._items) - self.size)]
        for old in forgotten:
            self._forget(old)
        return key

    def get(self, key: str, session_id: str) -> T | None:
        with self._lock:
            found = self._items.get(key)
        return found if found is not None and hmac.compare_digest(found.session_id, session_id) else None

    def take(self, key: str, session_id: str) -> T | None:
        """The item, no longer waiting (so one Apply runs once)."""
        with self._lock:
            found = self._items.get(key)
            if found is None or not hmac.compare_digest(found.session_id, session_id):
                return None
            del self._items[key]
        return found

    def drop(self, key: str) -> None:
        with self._lock:
            found = self._items.pop(key, None)
        if found is not None:
            self._forget(found)

    def _forget(self, item: T) -> None:
        if self._on_forget is not None:
            self._on_forget(item)
