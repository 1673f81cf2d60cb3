"""Noticing a saved article at once: filesystem events on content/, files left to settle.

`watch_content` runs on a thread of the daemon. watchfiles delivers the operating
system's change events (inotify, FSEvents, ReadDirectoryChangesW); where it cannot
(`WATCHFILES_FORCE_POLLING` set, or the watcher fails to start, as on some network file
systems) it polls the folder itself. Either way the daemon's interval look
(`schedule.watch_interval`) still runs as the last fallback.

An editor saving a file may write it in several steps, and a copy from elsewhere may
still be under way when the first event arrives. After a change the files named in it
are left to settle: the callback runs only once none of them has changed size or
modification time for `quiet` seconds (or `limit` seconds have passed). A file caught
half-written all the same is no harm: a publication that fails to parse is logged and
retried on the next change (see jobs.publish_new).

The callback must return quickly (jobs.publish_new hands the sending to a thread of its
own in the daemon), so that a send in progress never keeps the next article waiting.

The watch never follows a link out of the folder. watchfiles, told to watch a folder
recursively, enters linked folders too (and would set a watch on every folder of the
machine a link points at), so each real folder under `folder` is watched on its own,
not recursively, links left as the entries they are; when folders come or go, the
watch starts again over the new set. Folders whose names start with "." or "_" hold no
articles (see `content.content_files`) and are not watched.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["QUIET", "real_folders", "settle", "watch_content"]

log = logging.getLogger(__name__)

QUIET = 0.15
"""Seconds a changed file must stay unchanged before it is read."""
LIMIT = 5.0
"""Longest wait for a file that keeps changing (a large copy in progress)."""


def _signature(paths: Iterable[Path]) -> tuple[tuple[int, int] | None, ...]:
    found: list[tuple[int, int] | None] = []
    for path in paths:
        try:
            stat = os.lstat(path)  # a link is looked at, not followed
        except OSError:
            found.append(None)
        else:
            found.append((stat.st_size, stat.st_mtime_ns))
    return tuple(found)


def settle(paths: Iterable[Path], *, quiet: float = QUIET, limit: float = LIMIT,
           stop: threading.Event | None = None) -> bool:
    """Wait until none of `paths` changes for `quiet` seconds; False if it never did within `limit`."""
    watched = sorted(set(paths))
    deadline = time.monotonic() + limit
    before = _signature(watched)
    while time.monotonic() < deadline:
        if stop is not None and stop.wait(quiet):
            return False
        if stop is None:
            time.sleep(quiet)
        after = _signature(watched)
        if after == before:
            return True
        before = after
    return False


def watch_content(folder: Path, on_change: Callable[[], object], stop: threading.Event,
                  *, quiet: float = QUIET) -> None:
    """Call `on_change` after every settled change under `folder`, until `stop` is set.

    Returns when stopped, or at once (having logged why) when the folder cannot be watched.
    """
    import watchfiles

    if not folder.is_dir():
        log.warning("not watching %s: no such folder; looking every schedule.watch_interval instead", folder)
        return
    force_polling = True if os.environ.get("WATCHFILES_FORCE_POLLING") else None
    try:
        while not stop.is_set():
            watched = real_folders(folder)
            for changes in watchfiles.watch(
                *watched, stop_event=stop, debounce=400, step=20, rust_timeout=1000, recursive=False,
                raise_interrupt=False, force_polling=force_polling, poll_delay_ms=200,
            ):
                settle((Path(path) for _, path in changes), quiet=quiet, stop=stop)
                if stop.is_set():
                    return
                try:
                    on_change()
                except Exception:
                    log.exception("handling a change in %s failed; the next change tries again", folder)
                if real_folders(folder) != watched:
                    break  # a folder came or went: watch the new set
    except (OSError, RuntimeError) as exc:
        log.warning(
            "cannot watch %s for changes (%s); looking every schedule.watch_interval instead", folder, exc
        )


def real_folders(folder: Path) -> list[Path]:
    """`folder` and every folder under it that is not a link, nor named "." or "_" first."""
    found = [folder]
    pending = [folder]
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                inner = [
                    Path(entry.path) for entry in entries
                    if not entry.name.startswith((".", "_")) and entry.is_dir(follow_symlinks=False)
                ]
        except OSError:
            continue
        found.extend(inner)
        pending.extend(inner)
    return sorted(found)
