"""Exactly once, proven against a real SMTP server and a real `publisher send` process.

The server (aiosmtpd, in a thread of the test process) counts the copies each address
receives. The sender is killed with SIGKILL at several points of a 2,000-reader send and
resumed; nobody may be missed, and a second copy may reach only a row that was in flight
at a kill, which `publisher status` reports. SMTP answers are committed in groups, and a
final dot waits while `smtp.UNRECORDED` answers of its session are uncommitted, so a kill
repeats at most that many messages per connection, though up to concurrency x batch size
claimed rows are flagged uncertain.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from pg_server import fresh_database, postgres_server
from store_support import POSTGRES_ENV

from publisher.delivery.smtp import UNRECORDED
from publisher.store import begin_write, ledger, open_store
from publisher.store.schema import deliveries, subscribers

pytestmark = pytest.mark.slow

CONCURRENCY = 4
BATCH = 20
WINDOW = CONCURRENCY * BATCH
"""Rows claimed and not yet recorded at any instant: what a kill flags uncertain at most."""
ON_THE_WIRE = CONCURRENCY * UNRECORDED
"""Messages accepted by the server and not yet recorded: what a kill can send twice."""
SLUG = "notes-on-rest"
ARTICLE = """---
title: Notes on Rest
date: 2026-01-05 08:00
tags: [sleep]
---

Rest is a skill that can be practised.

## Why it matters

A rested mind handles worry better.
"""

Verdict = Callable[[str, int], str]
"""(recipient, attempt number) -> SMTP answer for DATA; '250 OK' accepts."""


class CountingHandler:
    """Counts accepted copies per recipient; `verdict` may refuse some deliveries."""

    def __init__(self) -> None:
        self.copies: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self.moments: dict[str, list[float]] = {}
        self.message_ids: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.verdict: Verdict = lambda rcpt, attempt: "250 OK"
        self.gate = 0
        """Hold every session at its first DATA until this many sessions have reached it."""
        self.gate_timeout = 45.0
        self.sessions: set[int] = set()
        self.hang = 0.0
        """Seconds to sit on each DATA before answering (a server that stops answering)."""

    @property
    def total(self) -> int:
        with self.lock:
            return sum(self.copies.values())

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.gate:
            await self._wait_at_gate(session)
        if self.hang:
            await asyncio.sleep(self.hang)
        (rcpt,) = envelope.rcpt_tos
        with self.lock:
            self.attempts[rcpt] += 1
            attempt = self.attempts[rcpt]
            self.moments.setdefault(rcpt, []).append(time.monotonic())
        answer = self.verdict(rcpt, attempt)
        if answer.startswith("250"):
            raw = envelope.original_content or b""
            message_id = message_from_bytes(raw)["Message-ID"] or ""
            with self.lock:
                self.copies[rcpt] += 1
                self.message_ids[message_id] += 1
        return answer

    async def _wait_at_gate(self, session: Session) -> None:
        # A sender opens a session only once it holds claimed rows, so `gate` sessions
        # waiting here at once prove that every sending process claimed a share.
        with self.lock:
            self.sessions.add(id(session))
        deadline = time.monotonic() + self.gate_timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.sessions) >= self.gate:
                    return
            await asyncio.sleep(0.01)


@pytest.fixture
def smtp_counter() -> Iterator[tuple[CountingHandler, int]]:
    handler = CountingHandler()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


class Publication:
    """A publication folder sending through SMTP to the counting server."""

    def __init__(
        self, root: Path, port: int, *, readers: int, store_url: str | None = None, **delivery: object
    ) -> None:
        self.root = root
        (root / "content").mkdir()
        (root / "content" / f"2026-01-05-{SLUG}.md").write_text(ARTICLE)
        settings: dict[str, object] = {
            "concurrency": CONCURRENCY, "batch_size": BATCH, "retry_base": 0.05, "retry_max": 0.2,
        }
        settings.update(delivery)
        self.concurrency = int(str(settings["concurrency"]))
        lines = "\n".join(f"{k} = {v}" for k, v in settings.items())
        (root / "config.toml").write_text(
            f"""
[publication]
title = "Exactly Once"
url = "https://example.org/"
postal_address = "1 Test Street, Testville"

[newsletter]
from = "Tester <news@example.org>"

[delivery]
provider = "smtp"
{lines}

[delivery.smtp]
host = "127.0.0.1"
port = {port}
security = "none"
connections = {delivery.get("concurrency", CONCURRENCY)}

[store]
url = "{store_url or "sqlite:///publisher.db"}"
"""
        )
        self.env = {
            **os.environ,
            "PUBLISHER_CONFIG": str(root / "config.toml"),
            "PUBLISHER_SECRET": "s" * 40,
        }
        self.started = 0
        self.db = open_store(store_url or f"sqlite:///{root / 'publisher.db'}")
        now = datetime.now(UTC)
        with self.db.begin() as conn:
            conn.execute(
                sa.insert(subscribers),
                [
                    {"email": self.address(n), "name": f"Reader {n}", "status": "active",
                     "source": "test", "created_at": now, "updated_at": now}
                    for n in range(readers)
                ],
            )

    @staticmethod
    def address(n: int) -> str:
        return f"reader{n:05d}@example.org"

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-c", "import sys; from publisher.cli import main; main(sys.argv[1:])", *args]

    def start(self, *args: str) -> subprocess.Popen[str]:
        self.started += 1
        with (self.root / f"sender-{self.started}.log").open("w") as log:
            return subprocess.Popen(
                self.command(*args), env=self.env, cwd=self.root, text=True, stdout=log, stderr=log,
            )

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.root.glob("sender-*.log")))

    def run(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            self.command(*args), env=self.env, cwd=self.root, capture_output=True, text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def rows(self) -> dict[str, sa.Row[tuple[object, ...]]]:
        with self.db.connect() as conn:
            return {row.email: row for row in conn.execute(sa.select(deliveries))}


def kill_when(process: subprocess.Popen[str], reached: Callable[[], bool], timeout: float = 60) -> None:
    """SIGKILL the sender as soon as `reached()` holds (it must still be running)."""
    deadline = time.monotonic() + timeout
    while not reached():
        assert process.poll() is None, "the sender finished before the kill point"
        assert time.monotonic() < deadline, "the kill point was never reached"
        time.sleep(0.001)
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_kill_9_and_resume_miss_nobody_and_duplicate_only_in_flight_rows(
    tmp_path: Path, smtp_counter: tuple[CountingHandler, int]
) -> None:
    """Three SIGKILLs during a 2,000-reader send: all delivered, doubles only where flagged."""
    server, port = smtp_counter
    readers = 2000
    pub = Publication(tmp_path, port, readers=readers)
    recovered_per_kill: list[int] = []

    sender = pub.start("send", SLUG, "--yes")
    kill_when(sender, lambda: server.total >= readers // 10)
    for fraction in (0.5, 0.9):
        sender = pub.start("send", "--resume")
        kill_when(sender, lambda f=fraction: server.total >= readers * f)  # type: ignore[misc]
    out = pub.run("send", "--resume")
    # The two killed resumes' own reports are lost with them; the ledger keeps the truth.
    found = re.search(r"(\d+) message\(s\) were in flight", out)
    recovered_per_kill.append(int(found.group(1)) if found else 0)

    expected = {pub.address(n) for n in range(readers)}
    assert set(server.copies) == expected, "somebody was missed"
    doubles = {address for address, count in server.copies.items() if count > 1}
    rows = pub.rows()
    assert all(rows[address].uncertain for address in doubles), "a double copy of a certain row"
    assert all(row.state == "sent" for row in rows.values())
    assert max(server.copies.values()) <= 4  # at most one extra copy per kill
    assert sum(server.copies.values()) - readers <= 3 * ON_THE_WIRE
    assert recovered_per_kill[0] <= WINDOW
    uncertain = sum(1 for row in rows.values() if row.uncertain)
    assert len(doubles) <= uncertain <= 3 * WINDOW

    status = pub.run("status")
    assert re.search(rf"\b{uncertain}\b message\(s\) were in flight", status) or uncertain == 0
    (line,) = ledger.status(pub.db)
    assert (line.sent, line.uncertain) == (readers, uncertain)
    # Every copy of a row carries that row's one Message-ID, so readers' clients can dedupe.
    assert len(server.message_ids) == readers


def test_each_kill_repeats_at_most_the_unrecorded_window_per_connection(
    tmp_path: Path, smtp_counter: tuple[CountingHandler, int]
) -> None:
    """After a SIGKILL, rows left `sending` stay within one window, and second copies within
    `UNRECORDED` per connection, each of them flagged uncertain."""
    server, port = smtp_counter
    pub = Publication(tmp_path, port, readers=600)
    sender = pub.start("send", SLUG, "--yes")
    kill_when(sender, lambda: server.total >= 300)
    in_flight = sum(1 for row in pub.rows().values() if row.state == "sending")
    assert 0 < in_flight <= WINDOW
    out = pub.run("send", "--resume")
    assert f"{in_flight} message(s) were in flight" in out
    assert set(server.copies) == {pub.address(n) for n in range(600)}
    doubles = {address for address, count in server.copies.items() if count > 1}
    assert len(doubles) <= ON_THE_WIRE, "more second copies than the unrecorded window"
    rows = pub.rows()
    assert all(rows[address].uncertain for address in doubles), "a double copy of a certain row"


def test_unsubscribe_mid_send_stops_later_messages(
    tmp_path: Path, smtp_counter: tuple[CountingHandler, int]
) -> None:
    """Readers who unsubscribe while the send runs get nothing claimed after that."""
    server, port = smtp_counter
    pub = Publication(tmp_path, port, readers=1000, rate=2000.0)
    sender = pub.start("send", SLUG, "--yes")
    deadline = time.monotonic() + 60
    while server.total < 200:
        assert sender.poll() is None and time.monotonic() < deadline
        time.sleep(0.002)
    # Read and write under one write lock: the rows picked are surely unclaimed at commit.
    with begin_write(pub.db) as conn:
        leaving = conn.execute(
            sa.select(deliveries.c.subscriber_id, deliveries.c.email)
            .where(deliveries.c.state == "queued")
            .order_by(deliveries.c.id.desc())
            .limit(25)
        ).all()
        conn.execute(
            sa.update(subscribers)
            .where(subscribers.c.id.in_([row.subscriber_id for row in leaving]))
            .values(status="unsubscribed")
        )
    assert sender.wait(timeout=60) == 0
    addresses = {row.email for row in leaving}
    assert len(addresses) == 25
    assert not addresses & set(server.copies)
    rows = pub.rows()
    assert {rows[a].state for a in addresses} == {"skipped"}
    assert len(server.copies) == 975


def test_sending_the_same_issue_again_sends_nothing_new(
    tmp_path: Path, smtp_counter: tuple[CountingHandler, int]
) -> None:
    """A second `send` of a delivered issue adds no row and sends no message."""
    server, port = smtp_counter
    pub = Publication(tmp_path, port, readers=30)
    pub.run("send", SLUG, "--yes")
    assert server.total == 30
    out = pub.run("send", SLUG, "--yes")
    assert "0 new recipient(s) queued" in out
    assert server.total == 30


def test_smtp_4xx_retries_5xx_fails_and_max_attempts_gives_up(
    tmp_path: Path, smtp_counter: tuple[CountingHandler, int]
) -> None:
    """451 once then sent; 550 5.1.1 failed and suppressed; 451 forever failed at max_attempts."""
    server, port = smtp_counter
    pub = Publication(tmp_path, port, readers=10, max_attempts=3)
    once, dead, never = pub.address(1), pub.address(2), pub.address(3)

    def verdict(rcpt: str, attempt: int) -> str:
        if rcpt == once and attempt == 1:
            return "451 4.3.0 try again later"
        if rcpt == dead:
            return "550 5.1.1 mailbox does not exist"
        if rcpt == never:
            return "451 4.3.0 still busy"
        return "250 OK"

    server.verdict = verdict
    pub.run("send", SLUG, "--yes")
    rows = pub.rows()
    assert (rows[once].state, rows[once].attempts) == ("sent", 2)
    assert (rows[dead].state, rows[dead].attempts) == ("failed", 1)
    assert (rows[never].state, rows[never].attempts) == ("failed", 3)
    assert server.attempts[never] == 3
    with pub.db.connect() as conn:
        statuses = dict(conn.execute(sa.select(subscribers.c.email, subscribers.c.status)).all())
    assert statuses[dead] == "bounced" and statuses[never] == "active"
    status = pub.run("status")
    assert re.search(r"\b8\b", status) and "failed" in status


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_finish_in_flight_and_leave_the_rest_queued(
    tmp_path: Path, smtp_counter: tuple[CountingHandler, int], signum: signal.Signals
) -> None:
    """A polite stop records what is in flight, leaves nothing `sending`, and resumes cleanly."""
    server, port = smtp_counter
    pub = Publication(tmp_path, port, readers=600, rate=400.0, burst=20)
    sender = pub.start("send", SLUG, "--yes")
    deadline = time.monotonic() + 60
    while server.total < 100:
        assert sender.poll() is None and time.monotonic() < deadline
        time.sleep(0.002)
    sender.send_signal(signum)
    assert sender.wait(timeout=30) == 1, pub.logs()
    assert "stopping: finishing the messages in flight" in pub.logs()
    rows = pub.rows().values()
    assert not [row for row in rows if row.state == "sending"]
    assert sum(1 for row in rows if row.state == "sent") == server.total < 600
    out = pub.run("send", "--resume")
    assert "were in flight" not in out
    assert set(server.copies) == {pub.address(n) for n in range(600)}
    assert max(server.copies.values()) == 1


def _run_side_by_side(pub: Publication, server: CountingHandler, senders: int, readers: int) -> None:
    """Start `senders` `publisher send` processes at once; each must send a share, once."""
    server.gate = senders * pub.concurrency
    processes = [pub.start("send", SLUG, "--yes") for _ in range(senders)]
    for process in processes:
        assert process.wait(timeout=180) == 0, pub.logs()
    shares = [int(m.group(1)) for m in re.finditer(r"^sent (\d+),", pub.logs(), re.MULTILINE)]
    assert len(shares) == senders, pub.logs()
    assert all(share > 0 for share in shares), f"a sender did no work: {shares}"
    assert sum(shares) == readers
    assert server.copies == Counter({pub.address(n): 1 for n in range(readers)})
    assert sum(server.attempts.values()) == readers
    rows = pub.rows().values()
    assert {row.state for row in rows} == {"sent"}
    assert not any(row.uncertain for row in rows)
    (line,) = ledger.status(pub.db)
    assert (line.status, line.sent) == ("done", readers)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server: $PUBLISHER_TEST_POSTGRES_URL's, or a throwaway one (else skip)."""
    configured = os.environ.get(POSTGRES_ENV)
    if configured:
        yield configured
        return
    with postgres_server() as url:
        yield url


def test_worker_processes_share_a_postgresql_send_exactly_once(
    tmp_path: Path, smtp_counter: tuple[CountingHandler, int], postgres_url: str
) -> None:
    """Three `publisher send` processes on one PostgreSQL ledger split the list, one copy each."""
    server, port = smtp_counter
    readers = 600
    store = fresh_database(postgres_url, "publisher_side_by_side")
    pub = Publication(tmp_path, port, readers=readers, store_url=store, concurrency=2, timeout=60.0)
    try:
        _run_side_by_side(pub, server, senders=3, readers=readers)
    finally:
        pub.db.dispose()


def test_worker_processes_share_a_sqlite_send_exactly_once(
    tmp_path: Path, smtp_counter: tuple[CountingHandler, int]
) -> None:
    """Two `publisher send` processes on one SQLite file (WAL) split the list, one copy each."""
    server, port = smtp_counter
    readers = 600
    pub = Publication(tmp_path, port, readers=readers, concurrency=2, timeout=60.0)
    _run_side_by_side(pub, server, senders=2, readers=readers)


def test_sigterm_stops_a_send_stuck_on_a_hanging_server(
    tmp_path: Path, smtp_counter: tuple[CountingHandler, int]
) -> None:
    """A server that stops answering holds no thread past the timeout; SIGTERM still ends the send."""
    server, port = smtp_counter
    pub = Publication(tmp_path, port, readers=300, timeout=2.0, rate=300.0, burst=20)
    sender = pub.start("send", SLUG, "--yes")
    deadline = time.monotonic() + 60
    while server.total < 40:
        assert sender.poll() is None and time.monotonic() < deadline
        time.sleep(0.002)
    server.hang = 30.0
    time.sleep(0.5)  # every thread is now waiting for an answer that does not come
    stopped_at = time.monotonic()
    sender.send_signal(signal.SIGTERM)
    assert sender.wait(timeout=30) == 1, pub.logs()
    assert time.monotonic() - stopped_at < 2.0 + 4.0  # the timeout, and some slack
    rows = pub.rows().values()
    assert not [row for row in rows if row.state == "sending"]
    waiting = [row.detail for row in rows if row.state == "retry"]
    assert any("may have accepted" in detail for detail in waiting)
    assert all("may have accepted" in detail or "not tried" in detail for detail in waiting)
    server.hang = 0.0
    pub.run("send", "--resume")
    assert set(server.copies) == {pub.address(n) for n in range(300)}
