"""One issue to a million readers into Postfix's smtp-sink, with flat memory: the peak RSS
beside the 10,000-reader send's, in the same run.

    .venv/bin/python benchmarks/million_send.py [--small 10000] [--large 1000000] [--seconds 300]

For each size a fresh process fills a SQLite store (in /dev/shm when there is one) with
that many active readers, in chunks; a second fresh process renders the newest sample
article once, queues it to everyone (the ledger: one row per reader, one transaction),
and sends through the real path (`delivery.engine.deliver`, the smtp provider, 4
connections) into smtp-sink on loopback, stopped after --seconds when it has not
finished. That process prints its RSS every 10 s, then its peak (getrusage ru_maxrss,
which covers the queueing too), the copies sent, the rate, and the rate over each tenth
of the ledger (a rate falling tenth by tenth is a send slowing as the ledger is worked
through). Give a whole million about 25 minutes (--seconds 1500). A run that stopped for time
says so: what it measured is the rate and the memory while a million-row ledger is
worked through, not the whole send.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

CHUNK = 20_000


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def fill(url: str, readers: int) -> None:
    import sqlalchemy as sa

    from publisher.store import open_store
    from publisher.store.schema import subscribers

    db = open_store(url)
    now = datetime.now(UTC)
    with db.begin() as conn:
        for first in range(0, readers, CHUNK):
            conn.execute(sa.insert(subscribers), [
                {"email": f"reader{n}@example.org", "name": f"Reader {n}", "status": "active", "source": "bench",
                 "created_at": now, "updated_at": now}
                for n in range(first, min(readers, first + CHUNK))
            ])
    db.dispose()


def send(root: Path, port: int, seconds: float) -> dict[str, object]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from sink import SECRET, enqueue_issue, publication

    from publisher.delivery.engine import DeliveryReport, deliver
    from publisher.delivery.smtp import SmtpProvider
    from publisher.store import open_store

    config = publication(root, port, 0)
    started = time.perf_counter()
    issue, queued = enqueue_issue(config, "million")
    queueing = time.perf_counter() - started
    curve: list[tuple[int, float]] = [(0, rss_mb())]
    stop = threading.Event()
    finished = threading.Event()

    def watch() -> None:
        begun = time.perf_counter()
        while not finished.wait(10):
            curve.append((round(time.perf_counter() - begun), rss_mb()))
            if time.perf_counter() - begun >= seconds:
                stop.set()

    tenths: list[float] = []
    marking = threading.Lock()

    def progress(report: DeliveryReport) -> None:  # called from the send's threads
        with marking:
            while len(tenths) < 10 and report.sent >= queued * (len(tenths) + 1) / 10:
                tenths.append(time.perf_counter())

    watcher = threading.Thread(target=watch, daemon=True)
    db = open_store(config.store_url)
    provider = SmtpProvider.from_config(config)
    began = time.perf_counter()
    watcher.start()
    try:
        report = deliver(config, db, provider, stop=stop, issue_id=issue, secret=SECRET, progress=progress)
    finally:
        finished.set()
        provider.close()
    elapsed = time.perf_counter() - began
    db.dispose()
    return {
        "queued": queued, "queueing_s": round(queueing, 1), "sent": report.sent, "seconds": round(elapsed, 1),
        "stopped_for_time": stop.is_set() and report.sent < queued, "curve": curve,
        "tenths": [round(queued / 10 / (b - a)) for a, b in itertools.pairwise([began, *tenths])],
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def run(readers: int, port: int, seconds: float) -> dict[str, object]:
    base = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="publisher-bench-send-", dir=base) as folder:
        root = Path(folder)
        url = f"sqlite:///{root / 'publisher.db'}"
        (root / "config.toml").write_text("")  # replaced by sink.publication
        subprocess.run([sys.executable, __file__, "--fill", url, str(readers)], check=True)
        done = subprocess.run(
            [sys.executable, __file__, "--send", str(root), str(port), str(seconds)],
            check=True, capture_output=True, text=True,
        )
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    if sys.argv[1:2] == ["--fill"]:
        fill(sys.argv[2], int(sys.argv[3]))
        return
    if sys.argv[1:2] == ["--send"]:
        os.environ["PUBLISHER_SECRET"] = "b" * 40
        print(json.dumps(send(Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=300, help="stop a send after this long")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from sink import smtp_sink

    with smtp_sink() as port:
        for readers in (args.small, args.large):
            load = " ".join(f"{x:.1f}" for x in os.getloadavg())
            found = run(readers, port, args.seconds)
            sent, seconds = int(str(found["sent"])), float(str(found["seconds"]))
            print(f"{readers:>9,} readers: queued {found['queued']:,} in {found['queueing_s']} s; "
                  f"sent {sent:,} in {seconds} s ({sent / seconds:,.0f}/s)"
                  f"{', stopped for time' if found['stopped_for_time'] else ''}; peak RSS {found['peak_mb']} MB "
                  f"(load {load})", flush=True)
            print("  copies/s in each tenth: " + " ".join(str(rate) for rate in found["tenths"]), flush=True)  # type: ignore[attr-defined]
            print("  RSS (s, MB): " + " ".join(f"{t}:{mb:.0f}" for t, mb in found["curve"]), flush=True)  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
