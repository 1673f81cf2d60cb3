"""The recorder's group commit: an answer someone waits for is committed by that thread."""

from __future__ import annotations

import threading

import pytest

from publisher.delivery import recording
from publisher.models import Outcome, SendResult


def answer(n: int) -> SendResult:
    return SendResult(n, f"reader{n}@example.org", Outcome.SENT, "")


@pytest.fixture
def committers(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(thread id, answers) of every commit, the recorder never committing unasked."""
    monkeypatch.setattr(recording, "GATHER", 30.0)
    return []


def test_a_waited_for_answer_is_committed_by_the_waiting_thread(committers: list[tuple[int, int]]) -> None:
    """With no commit under way, the sender that waits commits, with no hand-over to another thread."""
    recorder = recording.Recorder(
        lambda group: committers.append((threading.get_ident(), len(group))), lambda exc: None
    )
    try:
        recorder.submit(answer(1))
        recorder.submit(answer(2))()
    finally:
        recorder.close()
    assert committers == [(threading.get_ident(), 2)]


def test_a_hurried_answer_is_committed_before_hurry_returns(committers: list[tuple[int, int]]) -> None:
    """With no commit under way, `hurry` commits in the sender's thread: it is in the ledger at once."""
    recorder = recording.Recorder(
        lambda group: committers.append((threading.get_ident(), len(group))), lambda exc: None
    )
    try:
        recorder.submit(answer(1)).hurry()
        assert committers == [(threading.get_ident(), 1)]
    finally:
        recorder.close()
