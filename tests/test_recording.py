"""The recorder's thread and the senders waiting on it: who is woken, and when."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from test_engine import WindowProvider, counted_commits, db, make_config, queue_issue, run, states

from publisher.delivery import recording
from publisher.models import Outcome, SendResult
from publisher.store import ledger

__all__ = ["db"]  # the fixture, shared with the engine's tests


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


def recorder_checkouts(db: sa.Engine) -> list[str]:
    """The name of the thread behind every connection taken from `db`'s pool, as taken."""
    taken: list[str] = []
    sa.event.listen(db.pool, "checkout", lambda *_: taken.append(threading.current_thread().name))
    return taken


def test_the_recorder_keeps_one_connection_for_a_whole_send(
    tmp_path: Path, db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recorder commits every group on the one connection it took first, rather than
    taking one from the pool, and giving it back, for each commit."""
    config = make_config(tmp_path, concurrency=2, batch_size=10)
    queue_issue(db, 40)
    sizes = counted_commits(monkeypatch)
    taken = recorder_checkouts(db)
    run(config, db, WindowProvider(window=1))
    assert states(db) == {"sent": 40}
    assert len(sizes) > 1
    assert taken.count("deliver-record") == 1


def test_a_write_that_fails_on_the_kept_connection_is_tried_again_on_a_fresh_one(
    tmp_path: Path, db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit that fails inside the recorder's connection drops it: the write is tried
    again on a new connection, and every answer is recorded."""
    config = make_config(tmp_path, concurrency=1, batch_size=10)
    queue_issue(db, 10)
    real_record = ledger.record
    failures = {"left": 1}

    def failing_inside(engine: sa.Engine, *args: object, **kwargs: object) -> dict[str, int]:
        if failures["left"]:
            failures["left"] -= 1
            with engine.begin():
                raise sa.exc.OperationalError("UPDATE deliveries ...", {}, Exception("disk I/O error"))
        return real_record(engine, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(recording, "RECORD_PATIENCE", (0.0,))
    monkeypatch.setattr(ledger, "record", failing_inside)
    taken = recorder_checkouts(db)
    run(config, db, WindowProvider(window=1))
    assert states(db) == {"sent": 10}
    assert failures["left"] == 0
    assert taken.count("deliver-record") == 2
