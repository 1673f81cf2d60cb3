"""Server time of the desk's Home page with a large list, beside /healthz in the same run.

    .venv/bin/python benchmarks/desk_home.py [--subscribers 100000] [--issues 200] [--full 5] [--requests 30]

A temporary publication gets --subscribers subscribers (joined over the last 90 days,
one in fifty gone again), --issues issues, of which the newest --full were sent to the
whole list (one ledger row per reader; older issues carry no rows, which Home never
reads), and one owner. The app of `publisher serve` then runs under uvicorn in a second
process on loopback, and one client asks, in turn, for /healthz and for /desk/ with a
signed-in session, --requests times each (after two warm-up rounds). Printed: the
median and 90th percentile of each, as the client measures them on loopback.
"""

from __future__ import annotations

import argparse
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from served import wait_up
from sqlalchemy import insert

from publisher import accounts
from publisher.store import open_store
from publisher.store.schema import deliveries, events, issues, subscribers

CONFIG = """\
[publication]
title = "Benchmark Notes"
url = "https://bench.example.org/"
postal_address = "120 Wharf Street, Portland, ME 04101, USA"

[newsletter]
from = "Dana Reyes <dana@bench.example.org>"
"""
PASSWORD = "benchmark passphrase"
CHUNK = 20_000

APP_SERVER = textwrap.dedent(
    """
    import sys, uvicorn
    from publisher.config import load_config
    from publisher.web import create_app
    app = create_app(load_config(sys.argv[1], env={"PUBLISHER_SECRET": "benchmark-secret-0123456789abcdef-0123"}))
    uvicorn.Server(uvicorn.Config(
        app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False,
    )).run()
    """
)


def populate(root: Path, count: int, issue_count: int, full: int) -> None:
    engine = open_store(f"sqlite:///{root / 'publisher.db'}")
    now = datetime.now(UTC)
    rng = random.Random(7)
    started = time.perf_counter()
    with engine.begin() as conn:
        for first in range(0, count, CHUNK):
            rows, joins = [], []
            for n in range(first, min(count, first + CHUNK)):
                joined = now - timedelta(seconds=rng.randrange(90 * 86400))
                gone = n % 50 == 0
                rows.append({
                    "id": n + 1, "email": f"reader{n}@example.org", "name": f"Reader {n}",
                    "status": "unsubscribed" if gone else "active", "source": "bench",
                    "created_at": joined, "updated_at": joined, "token_key": f"{n:032x}",
                })
                joins.append({"subscriber_id": n + 1, "email": f"reader{n}@example.org", "kind": "subscribe",
                              "provider": "", "detail": "", "created_at": joined})
                if gone:
                    joins.append({"subscriber_id": n + 1, "email": f"reader{n}@example.org",
                                  "kind": "unsubscribe", "provider": "", "detail": "",
                                  "created_at": joined + timedelta(days=1)})
            conn.execute(insert(subscribers), rows)
            conn.execute(insert(events), joins)
        for number in range(issue_count):
            created = now - timedelta(days=issue_count - number)
            conn.execute(insert(issues).values(
                id=number + 1, key=f"issue-{number}", kind="article", slug=f"issue-{number}",
                subject=f"Issue {number}", html="<p>x</p>", text="x", status="done", created_at=created,
            ))
        for issue_id in range(issue_count - full + 1, issue_count + 1):
            sent = now - timedelta(days=issue_count - issue_id + 1)
            for first in range(0, count, CHUNK):
                conn.execute(insert(deliveries), [
                    {"issue_id": issue_id, "subscriber_id": n + 1, "email": f"reader{n}@example.org", "name": "",
                     "state": "sent", "attempts": 1, "not_before": sent, "sent_at": sent + timedelta(seconds=n // 500),
                     "provider_id": "", "detail": "", "uncertain": False, "message_key": f"k{issue_id}.{n}"}
                    for n in range(first, min(count, first + CHUNK))
                ])
    accounts.add_user(engine, "owner@example.org", role="owner", password=PASSWORD, now=now)
    engine.dispose()
    print(f"populated {count:,} subscribers, {issue_count} issues ({full} with {count:,} ledger rows each) "
          f"in {time.perf_counter() - started:.1f} s")


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _times(http: httpx.Client, path: str, rounds: int) -> list[float]:
    found = []
    for _ in range(rounds):
        started = time.perf_counter()
        answer = http.get(path)
        found.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, (path, answer.status_code)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--issues", type=int, default=200)
    parser.add_argument("--full", type=int, default=5)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="publisher-bench-desk-") as folder:
        root = Path(folder)
        (root / "config.toml").write_text(CONFIG, encoding="utf-8")
        (root / "content").mkdir()
        populate(root, args.subscribers, args.issues, args.full)
        port = _port()
        server = subprocess.Popen([sys.executable, "-c", APP_SERVER, str(root / "config.toml"), str(port)])
        try:
            base = f"http://127.0.0.1:{port}"
            wait_up(base)
            with httpx.Client(base_url=base, timeout=120) as http:
                form = http.get("/desk/login").text
                token = re.search(r'name="csrf" value="([^"]+)"', form)
                assert token
                signed = http.post("/desk/login", data={"csrf": token.group(1), "email": "owner@example.org",
                                                        "password": PASSWORD})
                assert signed.status_code == 303, signed.text
                _times(http, "/healthz", 2)
                _times(http, "/desk/", 2)
                health, home = [], []
                for _ in range(args.requests):
                    health += _times(http, "/healthz", 1)
                    home += _times(http, "/desk/", 1)
        finally:
            server.terminate()
            server.wait(timeout=15)
    for name, values in (("/healthz", health), ("/desk/ (Home)", home)):
        ordered = sorted(values)
        p90 = ordered[int(len(ordered) * 0.9) - 1]
        print(f"{name:16} median {statistics.median(values):8.1f} ms   p90 {p90:8.1f} ms   ({len(values)} requests)")


if __name__ == "__main__":
    main()
