"""How late a scheduled send's first message leaves, with the daemon as `publisher serve` runs it.

    .venv/bin/python benchmarks/scheduled_sends.py [--runs 20] [--readers 50] [--gap 3]

The daemon's scheduler and delivery start in this process (`daemon.start_background`,
as `publisher serve` starts them beside the desk and the API), on a publication with
`--runs` drafts and an SMTP server (aiosmtpd, in this process) that notes when it
accepts the first message of each subject. Each draft is scheduled through the service
the desk calls, for a whole second `--gap` seconds after the one before; the wake-up is
armed the moment the schedule is stored. At its second the daemon checks the draft,
puts it on the site, renders it, queues it and sends.

Prints the lateness of each run's first accepted message (accepted minus scheduled
second) and their median and worst. Goal: every first message within 5 s.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path

from aiosmtpd.controller import Controller

from publisher.config import load_config
from publisher.schedule import daemon
from publisher.services import scheduling
from publisher.store import open_store, subscribers

SECRET = "s" * 40
DRAFT = (
    "---\ntitle: Scheduled {n}\ndate: 2026-01-01 08:00\ndraft: true\n---\n\n"
    "Words for run {n}.\n\n## More\n\nAnd more.\n"
)


class FirstAccepted:
    """Notes the wall-clock moment the first message of each subject is accepted."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.lock = threading.Lock()

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        moment = time.time()
        subject = str(message_from_bytes(envelope.original_content or b"")["Subject"])  # type: ignore[attr-defined]
        with self.lock:
            self.first.setdefault(subject, moment)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def publication(root: Path, smtp_port: int, runs: int, readers: int) -> Path:
    (root / "content").mkdir(parents=True)
    for n in range(runs):
        (root / "content" / f"2026-01-01-scheduled-{n}.md").write_text(DRAFT.format(n=n))
    (root / "config.toml").write_text(f"""
[publication]
title = "Punctual"
url = "https://example.org/"
postal_address = "1 Test Street"

[newsletter]
from = "Punctual <news@example.org>"

[delivery]
provider = "smtp"

[delivery.smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
""")
    config = load_config(root / "config.toml", env={"PUBLISHER_SECRET": SECRET})
    db = open_store(config.store_url)
    for n in range(readers):
        subscribers.add(db, f"reader{n}@example.org", now=datetime.now(UTC))
    db.dispose()
    return root / "config.toml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--gap", type=float, default=3.0, help="seconds between two scheduled sends")
    args = parser.parse_args()
    handler = FirstAccepted()
    smtp = Controller(handler, hostname="127.0.0.1", port=free_port())
    smtp.start()
    with tempfile.TemporaryDirectory() as tmp:
        path = publication(Path(tmp), smtp.port, args.runs, args.readers)
        config = load_config(path, env={"PUBLISHER_SECRET": SECRET})
        key, rt, sched = daemon.start_background(config)
        try:
            time.sleep(2.0)  # the first look files the drafts and builds the site
            first = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
            due: dict[str, datetime] = {}
            for n in range(args.runs):
                at = first + timedelta(seconds=round(n * args.gap))
                scheduling.schedule_send(
                    config, rt.db, f"scheduled-{n}", at=at.isoformat(), now=datetime.now(UTC)
                )
                due[f"Scheduled {n}"] = at
            deadline = time.time() + (max(due.values()) - datetime.now(UTC)).total_seconds() + 30
            while time.time() < deadline and len(handler.first) < len(due):
                time.sleep(0.05)
        finally:
            daemon.stop_background(key, rt, sched)
            smtp.stop()
    late = []
    for subject, at in sorted(due.items(), key=lambda item: item[1]):
        accepted = handler.first.get(subject)
        if accepted is None:
            print(f"{subject}: no message")
            continue
        late.append(accepted - at.timestamp())
        print(f"{subject}: scheduled {at:%H:%M:%S}, first message {late[-1]:+.3f} s")
    if late:
        print(f"runs {len(late)} of {len(due)}; lateness median {statistics.median(late):.3f} s, "
              f"worst {max(late):.3f} s (goal: every one within 5 s)")


if __name__ == "__main__":
    main()
