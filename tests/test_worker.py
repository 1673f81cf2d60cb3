"""`publisher worker`: sending only, several at once, stopped cleanly."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from test_exactly_once import CountingHandler, Publication, smtp_counter  # noqa: F401  (fixture)

from publisher import content
from publisher.config import load_config
from publisher.delivery.sending import prepare_article_issue
from publisher.store import ledger
from publisher.store.schema import deliveries

pytestmark = pytest.mark.slow


def queue(pub: Publication, root: Path, readers: int) -> None:
    config = load_config(root / "config.toml", env=pub.env)
    now = datetime.now(UTC)
    (article,) = content.load_articles(config)
    issue = prepare_article_issue(config, pub.db, article, now=now, status="sending")
    assert ledger.enqueue(pub.db, issue, now=now) == readers


def test_two_workers_split_the_queue_and_send_each_once(
    tmp_path: Path, smtp_counter: tuple[CountingHandler, int]  # noqa: F811
) -> None:
    """Two `publisher worker --once` processes share the queue: everyone gets one copy."""
    server, port = smtp_counter
    pub = Publication(tmp_path, port, readers=200, concurrency=1)
    queue(pub, tmp_path, 200)
    server.gate = 2  # each worker must hold a session before either sends
    workers = [pub.start("worker", "--once") for _ in range(2)]
    for worker in workers:
        assert worker.wait(timeout=120) == 0, pub.logs()
    assert set(server.copies) == {pub.address(n) for n in range(200)}
    assert max(server.copies.values()) == 1
    shares = [int(line.split()[1]) for line in pub.logs().splitlines() if line.startswith("sent ")]
    assert len(shares) == 2 and all(shares) and sum(shares) == 200, pub.logs()


def test_a_worker_picks_up_later_sends_and_stops_on_sigterm(
    tmp_path: Path, smtp_counter: tuple[CountingHandler, int]  # noqa: F811
) -> None:
    """A running worker sends what is queued after it started; SIGTERM ends it cleanly."""
    server, port = smtp_counter
    pub = Publication(tmp_path, port, readers=30)
    worker = pub.start("worker", "--interval", "0.1")
    time.sleep(1.0)
    assert server.total == 0
    queue(pub, tmp_path, 30)
    deadline = time.monotonic() + 60
    while server.total < 30:
        assert worker.poll() is None and time.monotonic() < deadline, pub.logs()
        time.sleep(0.05)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, pub.logs()
    with pub.db.connect() as conn:
        states = dict(conn.execute(sa.select(deliveries.c.state, sa.func.count()).group_by(deliveries.c.state)).all())
    assert states == {"sent": 30}


def test_a_repeated_sigterm_still_lets_the_worker_finish_in_flight(
    tmp_path: Path, smtp_counter: tuple[CountingHandler, int]  # noqa: F811
) -> None:
    """SIGTERM twice (a supervisor asking again) is one polite stop: the message in flight
    is finished and recorded, the rest goes back to the queue, nothing is left claimed."""
    server, port = smtp_counter
    pub = Publication(tmp_path, port, readers=40, concurrency=1, batch_size=5)
    queue(pub, tmp_path, 40)
    server.hang = 0.4
    worker = pub.start("worker", "--once")
    deadline = time.monotonic() + 60
    while not server.attempts:
        assert worker.poll() is None and time.monotonic() < deadline, pub.logs()
        time.sleep(0.02)
    worker.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0, pub.logs()
    with pub.db.connect() as conn:
        states = dict(conn.execute(sa.select(deliveries.c.state, sa.func.count()).group_by(deliveries.c.state)).all())
    assert "sending" not in states and states.get("sent", 0) == server.total >= 1, states
    assert "Traceback" not in pub.logs()
