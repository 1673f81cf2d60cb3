"""/healthz latency while many link checks wait on sites that drip one byte a second.

    .venv/bin/python benchmarks/hostile_links.py [--checks 50] [--links 5] [--seconds 40]

A temporary publication holds one article whose --links links all lead to a server on
loopback that answers "HTTP/1.1 200 OK" and then one header byte a second, forever. The
app of `publisher serve` runs under uvicorn in a thread; an editor signs in and --checks
clients press "Check links and DNS too" at once (SpamAssassin and DNS left out), while
one client asks for /healthz every 20 ms. Printed: /healthz p50 and p99 during the
checks, and how long the slowest check took (each link has 8 s in all, each check 20 s).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from desk_support import add_users, sign_in
from hostile_servers import drip
from test_desk_pages import ARTICLE, editor_form
from web_support import live_server, make_publication

from publisher.mail import preflight
from publisher.web import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=50)
    parser.add_argument("--links", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=40.0, help="how long the hostile server lives")
    args = parser.parse_args()
    preflight._spam_score = lambda message: None  # type: ignore[assignment]  # the links are measured, not SpamAssassin
    preflight.look_up = lambda names, resolver=None: dict.fromkeys(names, "not asked here")  # type: ignore[assignment]
    with tempfile.TemporaryDirectory(prefix="publisher-bench-links-") as folder, \
            drip(interval=1.0, lifetime=args.seconds) as hostile:
        root = Path(folder)
        config = make_publication(root, extra="\n[fetch]\nallow_private = true\n")
        links = " ".join(f"[link {n}]({hostile.url}/{n})" for n in range(args.links))
        (root / "content").mkdir(exist_ok=True)
        (root / "content" / "2026-01-05-sleep-after-a-loss.md").write_text(ARTICLE + f"\n{links}\n", encoding="utf-8")
        add_users(config)
        with live_server(create_app(config)) as url, httpx.Client(base_url=url, timeout=120) as http:
            sign_in(http)
            form = {**editor_form(http.get("/desk/articles/sleep-after-a-loss").text), "action": "check-all"}
            took: list[float] = []
            statuses: list[int] = []

            def check() -> None:
                started = time.monotonic()
                with httpx.Client(base_url=url, cookies=http.cookies, timeout=120) as own:
                    statuses.append(own.post("/desk/articles/sleep-after-a-loss", data=form).status_code)
                took.append(time.monotonic() - started)

            workers = [threading.Thread(target=check) for _ in range(args.checks)]
            started = time.monotonic()
            for worker in workers:
                worker.start()
            health: list[float] = []
            with httpx.Client(base_url=url, timeout=120) as probe:
                while any(w.is_alive() for w in workers):
                    begun = time.monotonic()
                    probe.get("/healthz").raise_for_status()
                    health.append((time.monotonic() - begun) * 1000)
                    time.sleep(0.02)
            for worker in workers:
                worker.join()
            whole = time.monotonic() - started
    ordered = sorted(health)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    print(f"{args.checks} checks of {args.links} dripping links each: all done in {whole:.1f} s, "
          f"slowest check {max(took):.1f} s, answers {sorted(set(statuses))}")
    print(f"/healthz meanwhile: p50 {statistics.median(health):.1f} ms   p99 {p99:.1f} ms   ({len(health)} requests)")


if __name__ == "__main__":
    main()
