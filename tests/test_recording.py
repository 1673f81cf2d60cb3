"""The recorder's thread and the senders waiting on it: who is woken, and when."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence

import pytest

from publisher.delivery import recording
from publisher.models import Outcome, SendResult


def answer(n: int) -> SendResult:
    return SendResult(n, f"reader{n}@example.org", Outcome.SENT, "")


def test_a_waiting_sender_sleeps_through_other_senders_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sender waiting for a commit is woken by that commit only, not by every answer
    other senders queue or hurry meanwhile."""
    monkeypatch.setattr(recording, "GATHER", 30.0)
    in_commit, release = threading.Event(), threading.Event()

    def commit(group: Sequence[SendResult]) -> None:
        in_commit.set()
        assert release.wait(10)

    sleeps: Counter[int] = Counter()
    real_wait = threading.Condition.wait

    def counted_wait(self: threading.Condition, timeout: float | None = None) -> bool:
        sleeps[threading.get_ident()] += 1
        return real_wait(self, timeout)

    monkeypatch.setattr(threading.Condition, "wait", counted_wait)
    recorder = recording.Recorder(commit, lambda exc: None)
    first = recorder.submit(answer(1))
    waiter = threading.Thread(target=first)
    try:
        waiter.start()
        assert in_commit.wait(10)  # the first answer's commit is under way, and held
        for n in range(2, 30):
            recorder.submit(answer(n)).hurry()
            time.sleep(0.002)  # room for a woken sender to sleep again
        release.set()
        waiter.join(10)
        assert not waiter.is_alive()
        assert waiter.ident is not None
        assert sleeps[waiter.ident] == 1
    finally:
        release.set()
        recorder.close()
