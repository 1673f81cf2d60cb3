"""Scaling out: 1, 2 and 4 `publisher worker` processes on PostgreSQL into smtp-sink.

    .venv/bin/python benchmarks/workers.py [--readers 8000] [--runs 2] [--counts 1,2,4]

A throwaway PostgreSQL server (tests/pg_server.py: initdb on loopback, fsync off) holds
the publication; smtp-sink takes the mail. Rounds are interleaved (1, 2, 4 workers, then
again): each queues the sample article to every reader, starts N `publisher worker
--once` processes at the same moment and times them until the last one exits (process
start-up included), then checks the ledger says every row is sent.

Each worker runs `delivery.concurrency` = 4 threads with 4 SMTP connections. Prints
messages/s per N and the ratio to one worker; on this 2-core machine the scaling stops
where the cores do (each worker spends a core on Python per-message work).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from sink import enqueue_issue, publication, smtp_sink

from publisher.store import open_store
from publisher.store.schema import deliveries

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from pg_server import fresh_database, postgres_server


def run_workers(config_path: Path, count: int) -> float:
    env = {**os.environ, "PUBLISHER_CONFIG": str(config_path)}
    started = time.perf_counter()
    procs = [
        subprocess.Popen([sys.executable, "-m", "publisher", "worker", "--once"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(count)
    ]
    for proc in procs:
        if proc.wait() != 0:
            raise SystemExit("a worker failed")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readers", type=int, default=8000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--counts", default="1,2,4")
    args = parser.parse_args()
    counts = [int(n) for n in args.counts.split(",")]

    rates: dict[int, list[float]] = {n: [] for n in counts}
    with postgres_server() as server, smtp_sink() as port, tempfile.TemporaryDirectory() as folder:
        url = fresh_database(server, "workers")
        config = publication(Path(folder), port, args.readers, store_url=url)
        db = open_store(url)
        for run in range(args.runs):
            for count in counts:
                issue, queued = enqueue_issue(config, f"run{run}-{count}")
                elapsed = run_workers(Path(folder) / "config.toml", count)
                with db.connect() as conn:
                    sent = conn.execute(
                        sa.select(sa.func.count()).select_from(deliveries)
                        .where(deliveries.c.issue_id == issue, deliveries.c.state == "sent")
                    ).scalar_one()
                assert sent == queued, (sent, queued)
                rates[count].append(queued / elapsed)
                print(f"run {run + 1}: {count} worker(s) {rates[count][-1]:7.0f} messages/s", flush=True)
        db.dispose()
    base = statistics.median(rates[counts[0]])
    print(f"\n{args.readers} readers, PostgreSQL 15 on loopback, smtp-sink, median of {args.runs} interleaved runs")
    for count in counts:
        median = statistics.median(rates[count])
        print(f"{count} worker(s): {median:7.0f} messages/s   x{median / base:.2f} of {counts[0]} worker(s)")
    print(f"cores on this machine: {os.cpu_count()}")


if __name__ == "__main__":
    main()
