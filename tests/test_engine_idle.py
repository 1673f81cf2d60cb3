"""Threads of a send with nothing left to claim while a sibling still sends."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from test_engine import FakeProvider, db, make_config, queue_issue, run, states

from publisher.store import ledger

__all__ = ["db"]  # the fixture, shared with the engine's tests


def test_an_idle_thread_looks_at_the_ledger_when_a_sibling_ends_not_every_instant(
    tmp_path: Path, db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one thread sends a batch for a second and more, the thread that found nothing
    to claim asks the ledger what is due a handful of times, not twenty times a second."""
    config = make_config(tmp_path, concurrency=2, batch_size=20)
    queue_issue(db, 20)
    looks: list[object] = []
    next_due = ledger.next_due

    def counted(*args: object, **kwargs: object) -> object:
        looks.append(args)
        return next_due(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ledger, "next_due", counted)
    run(config, db, FakeProvider(delay=1.2))
    assert states(db) == {"sent": 20}
    assert len(looks) <= 6, len(looks)
