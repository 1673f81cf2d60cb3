"""The ledger's vocabulary: a row's states, the rows a worker claims or recovers, and who a worker is.

A worker id names the host, the process namespace and the pid, so that `worker_is_dead`
can tell a sender that died on this machine from one alive elsewhere.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from publisher.models import SendResult

__all__ = [
    "CLAIMABLE",
    "FAILED",
    "HELD",
    "ISSUE_TAG",
    "QUEUED",
    "RETRY",
    "SENDING",
    "SENT",
    "SKIPPED",
    "ClaimedRow",
    "RecordPolicy",
    "Recovered",
    "RecoveredRow",
    "new_worker_id",
    "worker_is_dead",
]


QUEUED, SENDING, SENT, RETRY, FAILED, SKIPPED = "queued", "sending", "sent", "retry", "failed", "skipped"
CLAIMABLE = (QUEUED, RETRY)
HELD = "held"
"""A row that waits for a subject test's decision: never claimed until it is queued."""
ISSUE_TAG: Any = object()
"""Default for `enqueue(tag=...)`: the segment stored with the issue."""


@dataclass(frozen=True, slots=True)
class ClaimedRow:
    """A ledger row this worker now owns: send it, then `record` the result."""

    id: int
    issue_id: int
    subscriber_id: int
    email: str
    name: str
    attempts: int = 0
    uncertain: bool = False
    message_key: str = ""
    """The left-hand part of the row's Message-ID, the same on every attempt."""
    token_key: str = ""
    """The subscriber's link key, which their unsubscribe link carries."""
    variant: int | None = None
    """Which subject of the issue's subject test the copy carries; None: the issue's own."""


@dataclass(frozen=True, slots=True)
class RecoveredRow:
    id: int
    issue_id: int
    email: str
    claimed_by: str


@dataclass(frozen=True, slots=True)
class Recovered:
    """Rows that were in flight when their worker died: they may have gone out already."""

    rows: tuple[RecoveredRow, ...] = ()

    @property
    def count(self) -> int:
        return len(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


class RecordPolicy(Protocol):
    """What `record` needs to know about retries (see `publisher.delivery.retry`)."""

    @property
    def max_attempts(self) -> int: ...

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        ...

    def is_hard_bounce(self, result: SendResult) -> bool:
        """Whether a permanent failure says the address itself is dead."""
        ...


def new_worker_id() -> str:
    """`host:pid:uuid`: enough for `recover` to tell a dead local worker from a live one.

    `host` carries the PID namespace where there is one (`name~ns`): containers that share
    a hostname (host networking) do not share process ids, and a pid that is free in one
    may be a live sender in the other.
    """
    return f"{_this_host()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _pid_namespace() -> str:
    """This process's PID namespace (Linux), or "" where there is no such thing."""
    try:
        return format(Path("/proc/self/ns/pid").stat().st_ino, "x")
    except OSError:
        return ""


def _this_host() -> str:
    namespace = _pid_namespace()
    name = socket.gethostname()
    return f"{name}~{namespace}" if namespace else name


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_is_dead(worker: str, *, host: str | None = None) -> bool:
    """A worker of this host whose process is gone. Other hosts' workers: unknown (False).

    "This host" is the hostname and PID namespace (see `new_worker_id`); an id with the
    bare hostname (written by an older publisher) is judged by its pid as before. A live
    process with the same pid (this one included) counts as alive: its rows are left to
    the lease.
    """
    this_host = host if host is not None else _this_host()
    parts = worker.rsplit(":", 2)
    if len(parts) != 3 or parts[0] not in (this_host, this_host.split("~", 1)[0]):
        return False
    try:
        pid = int(parts[1])
    except ValueError:
        return False
    return not _pid_alive(pid)
