"""`delivery.processes`: one send shared by several processes, each copy sent once."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from test_exactly_once import SLUG, CountingHandler, Publication, smtp_counter  # noqa: F401  (fixture)

from publisher.delivery.smtp import UNRECORDED
from publisher.store.schema import deliveries

pytestmark = pytest.mark.slow

READERS = 120


def test_three_processes_share_one_send_and_each_reader_gets_one_copy(
    tmp_path: Path, smtp_counter: tuple[CountingHandler, int]  # noqa: F811
) -> None:
    server, port = smtp_counter
    # 120 rows due, batches of 5: worth two helpers (one per 8 batches), the setting allows two.
    pub = Publication(tmp_path, port, readers=READERS, concurrency=1, batch_size=5, processes=3)
    server.gate = 3  # no process sends until all three hold a session: each must take part
    out = pub.run("send", SLUG, "--yes", timeout=180)
    assert set(server.copies) == {pub.address(n) for n in range(READERS)}
    assert max(server.copies.values()) == 1
    assert sum(server.message_ids.values()) == len(server.message_ids) == READERS
    helped = re.search(r"2 more sending process\(es\) sent (\d+) of them", out)
    assert helped and 0 < int(helped[1]) < READERS, out
    assert f"sent {READERS}," in out, out


def test_few_rows_are_sent_by_the_caller_alone(
    tmp_path: Path, smtp_counter: tuple[CountingHandler, int]  # noqa: F811
) -> None:
    """Below eight batches per helper, starting one would cost more than it saves."""
    server, port = smtp_counter
    pub = Publication(tmp_path, port, readers=30, concurrency=2, batch_size=5, processes=4)
    out = pub.run("send", SLUG, "--yes")
    assert "more sending process" not in out
    assert server.total == 30 and max(server.copies.values()) == 1


def test_stopping_the_send_stops_its_helpers_and_loses_nothing(
    tmp_path: Path, smtp_counter: tuple[CountingHandler, int]  # noqa: F811
) -> None:
    """SIGTERM to the send: every process finishes what it has in flight and puts the rest
    back; nothing is left claimed, nothing is sent twice, and `--resume` sends the rest."""
    server, port = smtp_counter
    pub = Publication(tmp_path, port, readers=READERS, concurrency=1, batch_size=5, processes=3)
    server.hang = 0.05
    server.gate = 3  # past the gate, the caller and both helpers are sending
    sender = pub.start("send", SLUG, "--yes")
    deadline = time.monotonic() + 120
    while server.total < 10:
        assert sender.poll() is None and time.monotonic() < deadline, pub.logs()
        time.sleep(0.05)
    sender.send_signal(signal.SIGTERM)
    assert sender.wait(timeout=60) == 1, pub.logs()
    with pub.db.connect() as conn:
        states = dict(conn.execute(
            sa.select(deliveries.c.state, sa.func.count()).group_by(deliveries.c.state)
        ).all())
    assert "sending" not in states and states.get("sent", 0) < READERS, states
    assert states.get("sent", 0) == server.total and max(server.copies.values()) == 1
    server.hang = 0.0
    pub.run("send", "--resume")
    assert set(server.copies) == {pub.address(n) for n in range(READERS)}
    assert max(server.copies.values()) == 1


def test_killing_the_send_stops_its_helpers_too(
    tmp_path: Path, smtp_counter: tuple[CountingHandler, int]  # noqa: F811
) -> None:
    """`kill -9` of the send: its helpers take that as a stop (they finish what is in flight
    and put the rest back) rather than sending the whole list on their own. Nothing goes
    twice beyond the caller's own accepted but unrecorded copies (at most `UNRECORDED` on
    its one connection), and `--resume` sends the rest."""
    server, port = smtp_counter
    pub = Publication(tmp_path, port, readers=READERS, concurrency=1, batch_size=5, processes=3)
    server.hang = 0.05
    server.gate = 3
    sender = pub.start("send", SLUG, "--yes")
    deadline = time.monotonic() + 120
    while server.total < 10:
        assert sender.poll() is None and time.monotonic() < deadline, pub.logs()
        time.sleep(0.05)
    sender.kill()
    sender.wait(timeout=30)
    settled, last = time.monotonic() + 30, -1
    while server.total != last:  # the helpers stop within moments, not after the list
        assert time.monotonic() < settled, server.total
        last = server.total
        time.sleep(1.0)
    assert server.total < READERS - 20, server.total
    with pub.db.connect() as conn:
        states = dict(conn.execute(
            sa.select(deliveries.c.state, sa.func.count()).group_by(deliveries.c.state)
        ).all())
    # Only the killed caller's own claim (one batch) is left in flight; the helpers put theirs back.
    assert states.get("queued", 0) > 0 and states.get("sending", 0) <= 5, states
    server.hang = 0.0
    pub.run("send", "--resume")
    assert set(server.copies) == {pub.address(n) for n in range(READERS)}
    assert sum(n > 1 for n in server.copies.values()) <= UNRECORDED, (
        [a for a, n in server.copies.items() if n > 1], pub.logs(),
        {a: pub.rows()[a].uncertain for a, n in server.copies.items() if n > 1})
