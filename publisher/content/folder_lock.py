"""The content folder's write lock: one writer at a time, across threads and processes.

A save from the desk or the API, an import and a picture's upload each write into
content/; each holds this lock (`.<folder>.lock` beside the folder, an `flock`), so that
no writer reads a file another is halfway through replacing. A writer that cannot have
the lock within `LOCK_WAIT` seconds is a Conflict that names the lock file, and writes
nothing.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from publisher.errors import Conflict, PublisherError

__all__ = ["LOCK_WAIT", "content_lock"]

LOCK_WAIT = 10.0
"""Seconds a write waits for another write to the same content folder to finish."""


@contextlib.contextmanager
def content_lock(folder: Path, *, wait: float | None = None) -> Iterator[Path]:
    """Hold the content folder's write lock (`.<folder>.lock` beside it); yields its path.

    Waits up to `wait` seconds (LOCK_WAIT) for another writer, then is a Conflict.
    """
    lock = folder.parent / f".{folder.name}.lock"
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise PublisherError(f"cannot open the lock file {lock}: {exc.strerror or exc}") from exc
    try:
        deadline = time.monotonic() + (LOCK_WAIT if wait is None else wait)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() >= deadline:
                    raise Conflict(
                        f"another save into {folder} is still going on (it holds {lock}); "
                        "nothing was written: try again in a moment"
                    ) from exc
                time.sleep(0.02)
        try:
            yield lock
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
