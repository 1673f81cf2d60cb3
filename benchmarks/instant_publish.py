"""From saving an article to its first message accepted by the MTA, with `publisher serve` as shipped.

    .venv/bin/python benchmarks/instant_publish.py [--runs 5] [--readers 50]

An SMTP server (aiosmtpd, in this process) notes when it accepts the first message of
each subject. Interleaved rounds:

- serve: one `publisher serve` process (policy "now", chosen for the pure blog-to-email
  case; the interval look every 60 s); each round saves a new article into content/ and waits for its first
  message. Only the watcher (filesystem events) can make this fast.
- work: the same steps called directly in this process (`jobs.publish_new`: build,
  issue, schedule, deliver) on a twin publication: what noticing costs nothing on top of.

Prints the median latency of each and serve / work. Goal: serve <= 2 s.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from email import message_from_bytes
from pathlib import Path

from aiosmtpd.controller import Controller

from publisher.config import load_config
from publisher.schedule import jobs
from publisher.store import open_store, publishing, subscribers

ARTICLE = "---\ntitle: {title}\ndate: 2026-01-{day:02d} 08:00\n---\n\nA few words about rest.\n\n## More\n\nAnd more.\n"
SECRET = "s" * 40


class FirstAccepted:
    """Notes the moment the first message of each subject is accepted."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.lock = threading.Lock()

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        moment = time.monotonic()
        subject = str(message_from_bytes(envelope.original_content or b"")["Subject"])  # type: ignore[attr-defined]
        with self.lock:
            self.first.setdefault(subject, moment)
        return "250 OK"

    def wait_for(self, subject: str, timeout: float = 120.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if subject in self.first:
                    return self.first[subject]
            time.sleep(0.005)
        raise SystemExit(f"no message for {subject!r} within {timeout} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def publication(root: Path, smtp_port: int, readers: int) -> Path:
    (root / "content").mkdir(parents=True)
    (root / "content" / "2026-01-01-first.md").write_text(ARTICLE.format(title="First", day=1))
    (root / "config.toml").write_text(f"""
[publication]
title = "Instant"
url = "https://example.org/"
postal_address = "1 Test Street"

[newsletter]
from = "Instant <news@example.org>"

[delivery]
provider = "smtp"

[delivery.smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"

[server]
port = {free_port()}

[schedule]
policy = "now"
""")
    config = load_config(root / "config.toml", env={"PUBLISHER_SECRET": SECRET})
    db = open_store(config.store_url)
    from datetime import UTC, datetime

    for n in range(readers):
        subscribers.add(db, f"reader{n}@example.org", now=datetime.now(UTC))
    db.dispose()
    return root / "config.toml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--readers", type=int, default=50)
    args = parser.parse_args()

    handler = FirstAccepted()
    smtp_port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    serve_times, work_times = [], []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        served = publication(root / "served", smtp_port, args.readers)
        direct = publication(root / "direct", smtp_port, args.readers)
        env = {**os.environ, "PUBLISHER_SECRET": SECRET, "PUBLISHER_CONFIG": str(served)}
        log = (root / "serve.log").open("wb")
        daemon = subprocess.Popen([sys.executable, "-m", "publisher", "serve"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT, cwd=served.parent)
        try:
            config = load_config(served, env={"PUBLISHER_SECRET": SECRET})
            db = open_store(config.store_url)
            while not publishing.catalogue_filed(db):
                time.sleep(0.05)
            db.dispose()
            time.sleep(1.0)
            direct_config = load_config(direct, env={"PUBLISHER_SECRET": SECRET})
            key = str(direct)
            jobs.register(key, jobs.Runtime(config=direct_config, db=open_store(direct_config.store_url)))
            jobs.publish_new(key)  # files the back catalogue
            for run in range(args.runs):
                title = f"Served {run}"
                saved = time.monotonic()
                (served.parent / "content" / f"2026-01-{run + 2:02d}-served-{run}.md").write_text(
                    ARTICLE.format(title=title, day=run + 2))
                serve_times.append(handler.wait_for(title) - saved)
                title = f"Direct {run}"
                (direct.parent / "content" / f"2026-01-{run + 2:02d}-direct-{run}.md").write_text(
                    ARTICLE.format(title=title, day=run + 2))
                started = time.monotonic()
                jobs.publish_new(key)
                work_times.append(handler.wait_for(title) - started)
                print(f"run {run + 1}: serve {serve_times[-1]:6.2f} s   work {work_times[-1]:6.2f} s", flush=True)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(30)
            controller.stop()
    serve, work = statistics.median(serve_times), statistics.median(work_times)
    print(f"\n{args.readers} readers, median of {args.runs} interleaved runs")
    print(f"serve as shipped, save -> first message accepted: {serve:6.2f} s  "
          f"(goal <= 2 s: {'met' if serve <= 2 else 'MISSED'})")
    print(f"the work itself (publish_new in-process):         {work:6.2f} s")
    print(f"serve / work: {serve / work:.2f}x")


if __name__ == "__main__":
    main()
