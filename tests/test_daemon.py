"""`publisher serve` as a real process: scheduled sends happen once, whatever the daemons do."""

from __future__ import annotations

import email
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from fakes.smtp import SMTPServer

from publisher.config import load_config
from publisher.services import scheduling
from publisher.services import subscribers as subscriber_service
from publisher.store import open_store

pytestmark = pytest.mark.slow

ZONE = ZoneInfo("America/New_York")
SUBSCRIBERS = [f"reader{i}@example.org" for i in range(5)]

ARTICLE = """---
title: Notes on Rest
date: 2026-11-02 08:00
tags: [sleep]
---

Rest is a skill.

## Why it matters

It matters a great deal.
"""


MAILDIR = '[delivery]\nprovider = "maildir"'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Publication:
    """A publication folder in tmp_path, driven through the real `publisher` command."""

    def __init__(
        self, root: Path, *, grace_hours: float = 24.0, port: int | None = None, delivery: str = "",
        watch_interval: float = 1.0, policy: str = "wait",
    ) -> None:
        self.root = root
        self.port = port or free_port()
        (root / "content").mkdir()
        (root / "content" / "2026-11-02-notes-on-rest.md").write_text(ARTICLE)
        (root / "config.toml").write_text(
            f"""
[publication]
title = "Daemon Test"
url = "https://example.org/"
timezone = "America/New_York"
postal_address = "1 Test Street, Testville"

[newsletter]
from = "Tester <news@example.org>"

{delivery or MAILDIR}

[schedule]
policy = "{policy}"
grace_hours = {grace_hours}
watch_interval = {watch_interval}

[server]
public_url = "http://127.0.0.1:{self.port}"
"""
        )
        self.env = {**os.environ, "PUBLISHER_CONFIG": str(root / "config.toml"), "PUBLISHER_SECRET": "s" * 32}
        self.daemons: list[subprocess.Popen[bytes]] = []

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "publisher", *args], env=self.env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def add_readers(self, *addresses: str) -> None:
        """Active subscribers, through the service `publisher subscribers add` uses, in this
        process (each CLI start costs seconds on a busy machine)."""
        config = load_config(self.root / "config.toml", env=self.env)
        db = open_store(config.store_url)
        now = datetime.now(UTC)
        for address in addresses:
            subscriber_service.subscribe(db, address, now=now)
        db.dispose()

    def start(self, port: int | None = None) -> subprocess.Popen[bytes]:
        with (self.root / f"daemon-{len(self.daemons)}.log").open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "publisher", "serve", "--port", str(port or self.port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        self.daemons.append(proc)
        return proc

    def stop_all(self) -> None:
        """SIGTERM every daemon still running; each must shut down cleanly (exit 0)."""
        running = [proc for proc in self.daemons if proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        for proc in running:
            assert proc.wait(timeout=30) == 0, self.logs()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.root.glob("daemon-*.log")))

    def messages(self) -> list[email.message.EmailMessage]:
        folder = self.root / "outbox" / "new"
        if not folder.is_dir():
            return []
        return [
            email.message_from_bytes(p.read_bytes(), policy=policy.default)  # type: ignore[misc]
            for p in sorted(folder.iterdir())
        ]

    def wait_for(self, count: int, timeout: float = 40.0) -> list[email.message.EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.messages()
            if len(found) >= count:
                return found
            time.sleep(0.2)
        raise AssertionError(f"expected {count} messages, got {len(self.messages())}\n{self.logs()}")


@pytest.fixture
def pub(tmp_path: Path) -> Iterator[Publication]:
    publication = Publication(tmp_path)
    publication.add_readers(*SUBSCRIBERS)
    yield publication
    for proc in publication.daemons:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def schedule(pub: Publication, seconds: float) -> datetime:
    """Schedule the article `seconds` from now, through the service the CLI uses, in this
    process (a fresh `publisher schedule` can take seconds to start on a busy machine).
    A negative `seconds` gives a send that fell due while no daemon ran: made a minute
    before it was due."""
    config = load_config(pub.root / "config.toml", env=pub.env)
    db = open_store(config.store_url)
    moment = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)
    made = min(datetime.now(UTC), moment - timedelta(minutes=1))
    scheduling.schedule_send(
        config, db, "notes-on-rest", at=f"{moment.astimezone(ZONE):%Y-%m-%d %H:%M:%S}", now=made
    )
    db.dispose()
    return moment


def recipients(messages: list[email.message.EmailMessage]) -> list[str]:
    return sorted(str(m["To"]).split("<")[-1].rstrip(">") for m in messages)


def test_missed_schedule_runs_once_when_daemon_starts(pub: Publication) -> None:
    """A send due while no daemon ran goes out once, as soon as one starts."""
    schedule(pub, -5)
    assert pub.messages() == []
    pub.start()
    found = pub.wait_for(len(SUBSCRIBERS))
    time.sleep(2.0)  # room for a duplicate to show up, if there were one
    pub.stop_all()
    assert recipients(pub.messages()) == sorted(SUBSCRIBERS)
    assert len(found) == len(SUBSCRIBERS)
    assert "done" in pub.run("schedules", "--all")


def test_two_daemons_on_one_database_send_once(pub: Publication) -> None:
    """Two daemons started by mistake on one database still send each copy once."""
    schedule(pub, 8)
    pub.start()
    pub.start(free_port())
    pub.wait_for(len(SUBSCRIBERS))
    time.sleep(3.0)
    pub.stop_all()
    assert recipients(pub.messages()) == sorted(SUBSCRIBERS)


def test_schedule_missed_beyond_grace_is_skipped(tmp_path: Path) -> None:
    """A send missed by more than the grace is skipped and reported, not sent late."""
    pub = Publication(tmp_path, grace_hours=0.0003)  # about a second
    pub.add_readers(SUBSCRIBERS[0])
    schedule(pub, -5)  # missed by five seconds, more than the grace
    pub.start()
    deadline = time.monotonic() + 30
    while "skipped" not in pub.run("schedules", "--all") and time.monotonic() < deadline:
        time.sleep(0.3)
    pub.stop_all()
    listing = pub.run("schedules", "--all")
    assert "skipped" in listing
    assert pub.messages() == []


def test_one_click_unsubscribe_from_a_sent_message(pub: Publication) -> None:
    """The List-Unsubscribe URL of a delivered message unsubscribes with one POST, and later sends skip it."""
    pub.start()
    health = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            health = httpx.get(f"http://127.0.0.1:{pub.port}/healthz", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.2)
    assert health is not None and health.status_code == 200
    pub.run("send", "notes-on-rest", "--yes")
    first = pub.wait_for(len(SUBSCRIBERS))
    target = next(m for m in first if SUBSCRIBERS[0] in str(m["To"]))
    assert target["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = str(target["List-Unsubscribe"]).split(",")[0].strip().strip("<>")
    answer = httpx.post(
        url, content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"}, follow_redirects=False,
    )
    assert answer.status_code == 200
    assert "set-cookie" not in answer.headers
    counts = pub.run("subscribers", "count")
    assert counts.splitlines()[0].startswith(f"{len(SUBSCRIBERS) - 1} active")
    pub.stop_all()


def test_daemon_killed_mid_send_resumes_on_restart(tmp_path: Path, smtp_server: SMTPServer) -> None:
    """`kill -9` of the daemon mid-send: the next daemon finishes it, and only in-flight rows may repeat."""
    smtp_server.delay = 0.02  # slow enough to stop the daemon in the middle
    delivery = (
        '[delivery]\nprovider = "smtp"\nconcurrency = 2\nbatch_size = 10\n'
        f'[delivery.smtp]\nhost = "127.0.0.1"\nport = {smtp_server.port}\nsecurity = "none"\nconnections = 2\n'
    )
    pub = Publication(tmp_path, delivery=delivery)
    readers = [f"reader{i}@example.org" for i in range(300)]
    (tmp_path / "readers.csv").write_text("email\n" + "\n".join(readers) + "\n")
    pub.run("subscribers", "import", str(tmp_path / "readers.csv"))
    schedule(pub, -1)
    first = pub.start()
    deadline = time.monotonic() + 60
    while len(smtp_server.messages) < 60 and time.monotonic() < deadline:
        time.sleep(0.05)
    first.kill()
    first.wait()
    at_kill = len(smtp_server.messages)
    assert 0 < at_kill < len(readers), pub.logs()
    pub.start()
    deadline = time.monotonic() + 90
    while len(smtp_server.counts()) < len(readers) and time.monotonic() < deadline:
        time.sleep(0.2)
    pub.stop_all()
    counts = smtp_server.counts()
    assert sorted(counts) == sorted(readers)
    doubles = sum(1 for n in counts.values() if n > 1)
    assert doubles <= 2 * 10  # at most the in-flight window: concurrency x batch size
    assert doubles <= _uncertain_count(pub)


def _uncertain_count(pub: Publication) -> int:
    """Rows `publisher status` would call uncertain, read from the ledger itself."""
    import sqlalchemy as sa

    from publisher.store.schema import deliveries

    db = sa.create_engine(f"sqlite:///{pub.root / 'publisher.db'}")
    try:
        with db.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).where(deliveries.c.uncertain.is_(True))).scalar_one()
            )
    finally:
        db.dispose()


def test_a_saved_article_goes_out_without_waiting_for_the_interval(tmp_path: Path) -> None:
    """Under policy "now" (the blog-to-email choice), with the interval look an hour away, a
    new article saved into content/ is sent at once: the daemon watches for filesystem events."""
    from publisher.store import open_store, publishing

    pub = Publication(tmp_path, watch_interval=3600.0, policy="now")
    pub.add_readers(*SUBSCRIBERS)
    pub.start()
    try:
        db = open_store(f"sqlite:///{tmp_path / 'publisher.db'}")
        deadline = time.monotonic() + 40
        while not publishing.catalogue_filed(db):  # the first look files the back catalogue
            assert time.monotonic() < deadline, pub.logs()
            time.sleep(0.1)
        db.dispose()
        (tmp_path / "content" / "2026-11-03-fresh.md").write_text(
            ARTICLE.replace("Notes on Rest", "Fresh Notes").replace("2026-11-02", "2026-11-03")
        )
        found = pub.wait_for(len(SUBSCRIBERS))
        pub.stop_all()
    finally:
        for proc in pub.daemons:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert recipients(found) == sorted(SUBSCRIBERS)
    assert {str(m["Subject"]) for m in found} == {"Fresh Notes"}


def _serve_once(pub: Publication, *, env: dict[str, str] | None = None, port: int | None = None) -> tuple[int, str]:
    """Run `publisher serve` that is expected to refuse to start: (exit code, all output)."""
    done = subprocess.run(
        [sys.executable, "-m", "publisher", "serve", "--port", str(port or pub.port)],
        env={**pub.env, **(env or {})}, capture_output=True, text=True, timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


def test_serve_with_a_real_provider_and_no_secret_exits_1(tmp_path: Path) -> None:
    """No PUBLISHER_SECRET with a real provider: the message send gives, exit 1, nothing left running."""
    delivery = '[delivery]\nprovider = "smtp"\n[delivery.smtp]\nhost = "127.0.0.1"\nport = 9\nsecurity = "none"\n'
    pub = Publication(tmp_path, delivery=delivery)
    code, output = _serve_once(pub, env={"PUBLISHER_SECRET": ""})
    assert code == 1, output
    assert "PUBLISHER_SECRET is not set" in output
    assert "openssl rand -hex 32" in output
    assert "Traceback" not in output
    assert "serving" not in output


def test_serve_with_a_real_provider_and_no_postal_address_exits_1(tmp_path: Path) -> None:
    """A real provider needs the sender's postal address before the daemon starts sending."""
    delivery = '[delivery]\nprovider = "smtp"\n[delivery.smtp]\nhost = "127.0.0.1"\nport = 9\nsecurity = "none"\n'
    pub = Publication(tmp_path, delivery=delivery)
    config = tmp_path / "config.toml"
    config.write_text(config.read_text().replace('postal_address = "1 Test Street, Testville"', ""))
    code, output = _serve_once(pub)
    assert code == 1, output
    assert "postal_address is empty" in output
    assert "Traceback" not in output


def test_serve_says_the_port_is_in_use(pub: Publication) -> None:
    """A taken port is told before anything claims to serve, and the exit code is 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, output = _serve_once(pub, port=port)
    assert code == 1, output
    assert f"port {port} on 127.0.0.1 is in use" in output
    assert "serving" not in output and "Traceback" not in output


def test_serve_starts_quietly_and_logs_requests_in_common_log_format(pub: Publication) -> None:
    """One line per fact at start (no library chatter), then one access-log line per request."""
    pub.start()
    deadline = time.monotonic() + 30
    while True:
        try:
            assert httpx.get(f"http://127.0.0.1:{pub.port}/healthz?probe=1", timeout=1).status_code == 200
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, pub.logs()
            time.sleep(0.2)
    httpx.get(f"http://127.0.0.1:{pub.port}/no-such-page", timeout=5)
    httpx.get(f"http://127.0.0.1:{pub.port}/desk/login/oidc/callback?code=c0de5ecret&state=st4te", timeout=5)
    pub.stop_all()
    logs = pub.logs()
    for noise in ("alembic.", "Traceback", "Uvicorn", "INFO:  ", "Added job", "Context impl"):
        assert noise not in logs, logs
    assert f"serving http://127.0.0.1:{pub.port}/" in logs
    assert re.search(
        r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET /healthz\?probe=1 HTTP/1\.1" 200 \d+$',
        logs, re.MULTILINE,
    ), logs
    assert re.search(r'"GET /no-such-page HTTP/1\.1" 404 \d+$', logs, re.MULTILINE), logs
    # A sign-in provider's one-time code and state are not written down.
    assert '"GET /desk/login/oidc/callback?code=-&state=- HTTP/1.1"' in logs, logs
    assert "c0de5ecret" not in logs and "st4te" not in logs
    daemon_lines = [line for line in logs.splitlines() if not line.startswith("127.0.0.1 - - [")]
    stamped = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR)"
    assert all(re.match(stamped, line) for line in daemon_lines), logs
