"""The daemon's heartbeat: a file in the publication's folder saying when it last ran.

`publisher serve` rewrites `.publisher-heartbeat` once a minute (`keep_beating`, on a
thread of its own, until the daemon stops) with the UTC time and its process id;
`publisher doctor` reads it (`last_beat`) to tell a running daemon from one that died or
was never started. A file rather than a row: it is read without opening the store, and
it says which machine's daemon it is, the one whose folder it sits in. Each beat
replaces the file in one step, so a reader never sees half of one.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["BEAT_SECONDS", "HEARTBEAT_FILE", "beat", "keep_beating", "last_beat"]

HEARTBEAT_FILE = ".publisher-heartbeat"
BEAT_SECONDS = 60.0

log = logging.getLogger(__name__)


def beat(folder: Path, now: datetime) -> None:
    """Record `now` as the daemon's last sign of life in `folder`."""
    path = folder / HEARTBEAT_FILE
    temp = folder / f".{HEARTBEAT_FILE}.{os.getpid()}.tmp"
    temp.write_text(json.dumps({"at": now.astimezone(UTC).isoformat(), "pid": os.getpid()}) + "\n",
                    encoding="utf-8")
    temp.replace(path)


def last_beat(folder: Path) -> datetime | None:
    """When the daemon last beat in `folder`; None when it never did (or the file is unreadable)."""
    try:
        data = json.loads((folder / HEARTBEAT_FILE).read_text(encoding="utf-8"))
        return datetime.fromisoformat(str(data["at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def keep_beating(
    folder: Path, stop: threading.Event, clock: Callable[[], datetime], every: float = BEAT_SECONDS
) -> threading.Thread:
    """Beat now and every `every` seconds until `stop` is set, on a daemon thread."""

    def run() -> None:
        while True:
            try:
                beat(folder, clock())
            except OSError as exc:  # a full disk must not stop the daemon; doctor will tell
                log.warning("cannot write the heartbeat in %s: %s", folder, exc)
            if stop.wait(every):
                return

    thread = threading.Thread(target=run, name="heartbeat", daemon=True)
    thread.start()
    return thread
