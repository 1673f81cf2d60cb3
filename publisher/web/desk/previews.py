"""Rendered previews kept for a short while, so that sandboxed frames can load them by URL.

A preview belongs to the session that made it: another session's request for the same
URL gets nothing. The cache is per process and small; a preview that fell out of it is
rendered again by the next keystroke or the next press of Preview.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["PreviewCache", "Rendered"]


@dataclass(frozen=True, slots=True)
class Rendered:
    session_id: str
    email_html: str
    web_html: str


class PreviewCache:
    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._items: OrderedDict[str, Rendered] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, rendered: Rendered) -> str:
        key = secrets.token_urlsafe(16)
        with self._lock:
            self._items[key] = rendered
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return key

    def get(self, key: str, session_id: str) -> Rendered | None:
        with self._lock:
            found = self._items.get(key)
        if found is None or not secrets.compare_digest(found.session_id, session_id):
            return None
        return found
