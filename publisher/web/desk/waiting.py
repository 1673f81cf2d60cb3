"""Uploads a desk page keeps between its preview and its Apply: at most `size`, the
oldest forgotten first, each reachable only by its random key from the session that
made it. `on_forget` is called for an item forgotten without being taken (evicted or
dropped), so a page can remove the files it keeps for one; a taken item is the caller's.

The files of an upload live in a private folder made by `upload_folder`, in the system's
temporary folder, named for the process that holds it (`publisher-moving-<pid>-...`). A
server killed before Apply or Cancel leaves its folders behind: `remove_stale`, run when
a desk starts, removes those whose process has ended (or that are older than `STALE_AFTER`,
should the process id have been given to another), never a folder of another user, a link,
or one of a server still running.
"""

from __future__ import annotations

import hmac
import os
import secrets
import shutil
import stat
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from publisher.numbers import plain_int

__all__ = ["STALE_AFTER", "Waiting", "remove_stale", "upload_folder"]

STALE_AFTER = 2 * 24 * 3600
"""Seconds after which a waiting upload's folder is stale whatever process made it."""


def upload_folder(prefix: str) -> Path:
    """A new private folder (0700) for one upload, named for this process."""
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def remove_stale(prefix: str, *, now: float | None = None) -> list[Path]:
    """Remove the folders `upload_folder(prefix)` made for processes that have ended (or
    made more than STALE_AFTER ago); the folders removed."""
    moment = time.time() if now is None else now
    removed: list[Path] = []
    base = Path(tempfile.gettempdir())
    for folder in base.glob(f"{prefix}*"):
        pid_text = folder.name[len(prefix):].split("-", 1)[0]
        try:
            info = folder.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            continue  # a link, a file, or another user's: never ours to remove
        pid = plain_int(pid_text)
        ended = pid is not None and pid != os.getpid() and not _alive(pid)
        if ended or moment - info.st_mtime > STALE_AFTER:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


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
