"""A signup flood from one network: --requests JSON signups spread over one (simulated)
minute from 250 addresses of 198.51.100.0/24, then one from another network.

    .venv/bin/python benchmarks/signup_flood.py [--requests 10000]

The app runs in-process (httpx's ASGI transport) on a SQLite store in a temporary folder,
behind 127.0.0.1 as its trusted proxy so that X-Forwarded-For names each address; the
clock moves from 09:00:00 to 09:01:00 across the requests. Prints the answers by status,
the other network's answer, the wall time and what Home is told.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from web_support import SECRET, make_publication

from publisher.config import load_config
from publisher.services import signup
from publisher.store import open_store
from publisher.web import create_app

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    count = parser.parse_args().requests
    root = Path(tempfile.mkdtemp(prefix="signup-flood-"))
    config = make_publication(root)
    config.path.write_text(config.path.read_text().replace("[server]\n", '[server]\ntrusted_proxies = ["127.0.0.1"]\n'))
    config = load_config(config.path, env={"PUBLISHER_SECRET": SECRET})
    engine = open_store(config.store_url)
    sent = [0]

    def clock() -> datetime:
        return START + timedelta(seconds=60 * sent[0] / count)

    app = create_app(config, engine=engine, clock=clock)

    async def flood() -> tuple[Counter[int], int]:
        answers: Counter[int] = Counter()
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://flood") as http:
            for n in range(count):
                sent[0] = n
                answer = await http.post("/subscribe.json", json={"email": f"flood{n}@example.org"},
                                         headers={"x-forwarded-for": f"198.51.100.{n % 250 + 1}"})
                answers[answer.status_code] += 1
            other = await http.post("/subscribe.json", json={"email": "person@example.org"},
                                    headers={"x-forwarded-for": "203.0.113.50"})
        return answers, other.status_code

    started = time.monotonic()
    answers, other = anyio.run(flood)
    wall = time.monotonic() - started
    print(f"{count:,} requests from 198.51.100.0/24: {dict(sorted(answers.items()))}; "
          f"another network: {other}; {wall:.1f} s wall ({1000 * wall / count:.1f} ms a request)")
    for line in signup.throttled_networks(engine, now=clock()):
        print(f"Home: {line.refused:,} refused from {line.network}, "
              f"{line.first_at:%H:%M:%S} to {line.last_at:%H:%M:%S}")
    engine.dispose()


if __name__ == "__main__":
    main()
