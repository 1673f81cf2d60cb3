"""`delivery.rate` is one budget for the publication, however many processes send."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_exactly_once import CountingHandler, Publication, smtp_counter  # noqa: F401  (fixture)

from publisher import content
from publisher.config import load_config
from publisher.delivery.ratelimit import SharedBucket
from publisher.delivery.sending import prepare_article_issue
from publisher.store import ledger, open_store

pytestmark = pytest.mark.slow


def test_three_processes_draw_from_one_budget(tmp_path: Path, smtp_counter: tuple[CountingHandler, int]) -> None:  # noqa: F811
    """Three `publisher send --resume` processes at once send no faster than `rate` together."""
    server, port = smtp_counter
    readers, rate, burst = 90, 30.0, 5
    pub = Publication(tmp_path, port, readers=readers, rate=rate, burst=burst, concurrency=1)
    config = load_config(tmp_path / "config.toml", env=pub.env)
    now = datetime.now(UTC)
    (article,) = content.load_articles(config)
    issue = prepare_article_issue(config, pub.db, article, now=now, status="sending")
    assert ledger.enqueue(pub.db, issue, now=now) == readers
    server.gate = 3  # no message is taken until each of the three processes holds a session
    senders = [pub.start("send", "--resume") for _ in range(3)]
    for sender in senders:
        assert sender.wait(timeout=120) == 0, pub.logs()
    assert set(server.copies) == {pub.address(n) for n in range(readers)}
    assert max(server.copies.values()) == 1
    shares = [int(n) for n in re.findall(r"^sent (\d+),", pub.logs(), flags=re.M)]
    assert len(shares) == 3 and all(shares) and sum(shares) == readers, pub.logs()
    moments = sorted(moment for times in server.moments.values() for moment in times)
    # One bucket: past what was paid for before the first message was taken (each process's
    # first claim of `burst` rows, held at the gate, and a bucket refilled meanwhile), every
    # message waits for its token, whoever sends it. Three buckets of their own would let
    # the rest go three times as fast.
    prepaid = 3 * burst + burst
    assert moments[-1] - moments[0] >= 0.95 * (readers - prepaid) / rate


def test_the_budget_outlives_a_process(tmp_path: Path) -> None:
    """Tokens taken by one bucket object are gone for the next (another process, later)."""
    db = open_store(f"sqlite:///{tmp_path / 'budget.db'}")
    first = SharedBucket(db, 10.0, 5)
    assert first.reserve(5, 1000.0) == 0.0
    second = SharedBucket(db, 10.0, 5)
    assert second.reserve(1, 1000.0) == pytest.approx(0.1)
    assert second.reserve(1, 1000.5) == 0.0  # half a second refilled 5, capped at the burst
    second.refund(1)
    assert first.reserve(5, 1000.5) == pytest.approx(0.1)  # 4 left after the refund: one short
    db.dispose()
