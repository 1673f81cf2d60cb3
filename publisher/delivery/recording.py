"""Recording answers: what keeps a message that went out from being sent again.

`Recorder` takes the answers of providers that answer message by message (SMTP) as they
arrive and commits them in groups, on a thread of its own, while the senders go on
(see engine.py, "In-flight window"): a commit costs about as much as sixteen answers
in it, so answers nobody waits for yet are gathered rather than committed one by one.
`durably` runs any ledger write through a short outage of the database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from publisher.models import SendResult

__all__ = ["GATHER", "GROUP", "RECORD_PATIENCE", "Answered", "Recorder", "durably"]

RECORD_PATIENCE = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
"""Pauses between tries to record results when the database is briefly away (about a minute
in all: a PostgreSQL restart, a SQLite lock held past the busy timeout)."""

GROUP = 16
"""Answers the recorder gathers before it commits them unasked."""

GATHER = 0.05
"""Seconds an answer may wait in memory before the recorder commits it unasked."""

T = TypeVar("T")


def durably(action: Callable[[], T]) -> T:
    """Run a ledger write, trying again while the database is briefly unreachable or locked.

    Recording is what keeps a message that went out from being sent again: giving up at
    the first error would leave its row `sending`, to be re-sent as uncertain. Every
    ledger write is safe to repeat (a row already recorded is no longer this worker's).
    Stopping does not cut this short; a second Ctrl-C does.
    """
    for pause in RECORD_PATIENCE:
        try:
            return action()
        except (OperationalError, DBAPIError) as exc:
            if not isinstance(exc, OperationalError) and not exc.connection_invalidated:
                raise
            time.sleep(pause)
    return action()


class Answered:
    """One submitted answer: calling it blocks until the answer is in the ledger; `hurry`
    asks for its commit now, without waiting, for an answer that will be waited for (an
    SMTP session's next final dot waits for it: see smtp.py, `_Stream`), so that the
    commit runs while the sender writes the next message rather than after."""

    __slots__ = ("_mine", "_recorder")

    def __init__(self, recorder: Recorder, mine: int) -> None:
        self._recorder = recorder
        self._mine = mine

    def __call__(self) -> None:
        self._recorder._wait(self._mine)

    def hurry(self) -> None:
        self._recorder._want(self._mine)


class Recorder:
    """Commits answers as they arrive, in groups, on a thread of its own.

    `submit` queues one answer and returns a wait (`Answered`) that blocks until that
    answer is in the ledger. The thread hands what is queued to `commit` (one transaction)
    as soon as a sender waits for one of those answers or says it will (`hurry`), or
    `GROUP` have gathered, or the oldest has waited `GATHER` seconds. A waited-for answer
    waits at most for the commit under way and its own. An error in `commit` goes to
    `fail` and to every wait, and ends the thread.

    The thread and the waiting senders sleep on two conditions of one lock: an answer
    queued or hurried wakes the thread alone, and a commit wakes only the senders waiting
    for one. On one condition every hurry woke every waiting sender too, to find its
    answer still uncommitted and sleep again: a wake-up, and a turn at the GIL, per sender
    per answer.
    """

    def __init__(self, commit: Callable[[Sequence[SendResult]], None], fail: Callable[[BaseException], None]) -> None:
        self._commit = commit
        self._fail = fail
        lock = threading.Lock()
        self._cond = threading.Condition(lock)
        """The recorder thread's: answers to commit, or the end."""
        self._committed = threading.Condition(lock)
        """The waiting senders': a commit ended (or failed)."""
        self._pending: list[SendResult] = []
        self._since = 0.0
        self._queued = 0
        self._wanted = 0
        self._done = 0
        self._closed = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def submit(self, result: SendResult) -> Answered:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="deliver-record", daemon=True)
                self._thread.start()
            if not self._pending:
                self._since = time.monotonic()
            self._pending.append(result)
            self._queued += 1
            mine = self._queued
            if len(self._pending) >= GROUP:
                self._cond.notify()
        return Answered(self, mine)

    def _want(self, mine: int) -> None:
        """Commit at once what is queued up to answer number `mine` (someone waits for it)."""
        with self._cond:
            if self._done < mine and self._wanted < mine:
                self._wanted = mine
                self._cond.notify()

    def _wait(self, mine: int) -> None:
        with self._cond:
            if self._done < mine and self._wanted < mine:
                self._wanted = mine
                self._cond.notify()
            while self._done < mine and self._error is None:
                self._committed.wait()
            if self._done < mine:
                raise RuntimeError("answers could not be recorded") from self._error

    def close(self) -> None:
        """Commit what is queued and stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _due(self) -> float:
        """Seconds until the queued answers must be committed: 0 now, -1 nothing queued."""
        if not self._pending:
            return -1.0
        if self._closed or len(self._pending) >= GROUP or self._wanted > self._done:
            return 0.0
        return max(0.0, self._since + GATHER - time.monotonic())

    def _loop(self) -> None:
        while True:
            with self._cond:
                while (due := self._due()) != 0.0 and not (due < 0 and self._closed):
                    self._cond.wait(None if due < 0 else due)
                if not self._pending:
                    return
                group, self._pending = self._pending, []
                upto = self._queued
            try:
                self._commit(group)
            except BaseException as exc:
                self._fail(exc)
                with self._cond:
                    self._error = exc
                    self._committed.notify_all()
                return
            with self._cond:
                self._done = upto
                self._committed.notify_all()
