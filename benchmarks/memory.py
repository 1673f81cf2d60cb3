"""Peak memory of a send to 2,000 and to 200,000 subscribers: it must not grow with the list.

    .venv/bin/python benchmarks/memory.py [--small 2000] [--large 200000]

For each size a fresh process builds a SQLite store in a tmpfs folder (/dev/shm when
there is one) with that many active subscribers (inserted in chunks), then a second fresh
process snapshots the newest sample article, enqueues everyone (one INSERT ... SELECT)
and runs `engine.deliver` to a null provider that builds every message's bytes
(`template.message_bytes`) and counts them. That process reports its peak RSS
(getrusage ru_maxrss), which covers the whole send. Target: the two peaks within 50 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

CONFIG = """
[publication]
title = "Memory"
url = "https://example.org/"
postal_address = "1 Test Street, Testville"

[newsletter]
from = "Bench <news@example.org>"

[delivery]
provider = "maildir"
concurrency = 4
batch_size = 500
"""


class NullProvider:
    """Builds each message and counts its bytes; sends nothing."""

    name = "null"
    max_batch = 500

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0
        self.lock = threading.Lock()

    def send(self, template, recipients: Sequence, *, now: datetime) -> list:  # type: ignore[no-untyped-def]
        from publisher.models import Outcome, SendResult

        size = sum(len(template.message_bytes(r, now)) for r in recipients)
        with self.lock:
            self.messages += len(recipients)
            self.bytes += size
        return [SendResult(r.delivery_id, r.email, Outcome.SENT) for r in recipients]

    def close(self) -> None:
        pass


def prepare(root: Path, readers: int) -> None:
    import sqlalchemy as sa

    from publisher.store import open_store
    from publisher.store.schema import subscribers

    repo = Path(__file__).resolve().parent.parent
    (root / "content").symlink_to(repo / "content")
    (root / "config.toml").write_text(CONFIG)
    db = open_store(f"sqlite:///{root / 'publisher.db'}")
    now = datetime.now(UTC)
    chunk = 5000
    for start in range(0, readers, chunk):
        with db.begin() as conn:
            conn.execute(
                sa.insert(subscribers),
                [
                    {"email": f"reader{n}@example.org", "name": f"Reader {n}", "status": "active",
                     "source": "bench", "created_at": now, "updated_at": now}
                    for n in range(start, min(readers, start + chunk))
                ],
            )
    db.dispose()


def send(root: Path) -> dict[str, float]:
    from publisher import content
    from publisher.config import load_config
    from publisher.delivery.engine import deliver
    from publisher.mail import newsletter
    from publisher.store import ledger, open_store

    config = load_config(root / "config.toml", env={"PUBLISHER_SECRET": "m" * 40})
    db = open_store(config.store_url)
    now = datetime.now(UTC)
    article = next(a for a in content.load_articles(config) if a.is_public(now))
    rendered = newsletter.render_issue(config, newsletter.issue_for_article(config, article), now)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    issue = ledger.create_issue(
        db, key=article.id, kind="article", slug=article.slug, subject=rendered.subject,
        html=rendered.html, text=rendered.text, tag=None, status="sending", now=now,
    )
    queued = ledger.enqueue(db, issue, now=now)
    provider = NullProvider()
    report = deliver(config, db, provider, stop=threading.Event(), issue_id=issue, secret="m" * 40)  # type: ignore[arg-type]
    assert report.sent == queued == provider.messages
    return {
        "sent": report.sent,
        "bytes": provider.bytes,
        "seconds": time.perf_counter() - started,
        "before_send_mb": baseline / 1024,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure(readers: int, base: str | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(dir=base) as folder:
        here = [sys.executable, __file__]
        subprocess.run([*here, "--prepare", folder, "--readers", str(readers)], check=True)
        done = subprocess.run([*here, "--send", folder], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"the send of {readers} failed:\n{done.stderr}")
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=200_000)
    parser.add_argument("--prepare", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--send", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--readers", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        prepare(Path(args.prepare), args.readers)
        return
    if args.send:
        print(json.dumps(send(Path(args.send))))
        return
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    results = {}
    for readers in (args.small, args.large):
        results[readers] = found = measure(readers, base)
        print(
            f"{readers:>8,} subscribers: peak RSS {found['peak_mb']:6.1f} MB "
            f"(before the send {found['before_send_mb']:5.1f} MB), {found['sent']:,.0f} messages, "
            f"{found['bytes'] / 1e6:,.0f} MB of mail built, {found['seconds']:.1f} s",
            flush=True,
        )
    difference = results[args.large]["peak_mb"] - results[args.small]["peak_mb"]
    print(f"difference: {difference:+.1f} MB (target: within 50 MB)")


if __name__ == "__main__":
    main()
