"""A list of a million readers: the import, the desk under 32 clients, the API's cursor paging.

    .venv/bin/python benchmarks/million.py [--readers 1000000] [--store sqlite|postgresql]
        [--clients 32] [--seconds 10] [--requests 320] [--import-only] [--import-limit 3600]
        [--no-api] [--direct]

1. Import: a CSV of --readers rows (address, name, tags) through `publisher subscribers
   import FILE` (the CLI, a subprocess) into an empty database (SQLite in a temporary
   folder, or with --store postgresql a throwaway PostgreSQL server, tests/pg_server.py):
   seconds, rows/s, the importing process's peak RSS (its own rusage, from `wait4`) and
   the seconds each tenth of the file took (a figure growing tenth by tenth is an import
   slowing down as the list grows); --import-limit stops an import that takes too long.
   With --direct the readers and their tags are written by plain INSERTs instead (the
   kept counts' triggers still run), to measure the desk where the import is slow.
2. An issue sent to every reader (one ledger row each, written directly), then the app of
   `publisher serve` under uvicorn in a second process on loopback. With `wrk` on PATH
   (Debian: apt-get install wrk), `wrk -c CLIENTS -d SECONDS --latency` with the owner's
   session cookie asks for each page in turn, /healthz first; without it, a Python client
   sends --requests requests per page. Pages: Home, Subscribers (the first page, the
   1,000th page by its `after` cursor, a search by a part of the address), the issue's
   report. Printed per page: median, p99, requests/s, and the load average before it.
3. `GET /api/v1/subscribers?limit=1000` from the first cursor to the last: pages/s in
   each tenth of the list (a steady rate means the cursor costs the same at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import itertools
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from served import wait_up
from sqlalchemy import insert, select

from publisher import accounts
from publisher.services import access
from publisher.store import counts_kept, open_store
from publisher.store.issues import fold_issue_counts
from publisher.store.schema import deliveries, issues, subscribers

CONFIG = """\
[publication]
title = "Benchmark Notes"
url = "https://bench.example.org/"
postal_address = "120 Wharf Street, Portland, ME 04101, USA"

[newsletter]
from = "Dana Reyes <dana@bench.example.org>"

[api]
rate_limit = 1000000
"""
SECRET = "benchmark-secret-0123456789abcdef-0123"
PASSWORD = "benchmark passphrase"
CHUNK = 20_000
DESK_PAGE = 50

APP_SERVER = textwrap.dedent(
    """
    import sys, uvicorn
    from publisher.config import load_config
    from publisher.web import create_app
    import threading
    from publisher.schedule.daemon import keep_folding, settle_heap
    from publisher.store import open_store
    config = load_config(sys.argv[1], env={"PUBLISHER_SECRET": sys.argv[3]})
    app = create_app(config)
    server = uvicorn.Server(uvicorn.Config(
        app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False,
    ))
    engine = open_store(config.store_url)
    if engine.dialect.name == "postgresql":  # as publisher serve does
        threading.Thread(target=keep_folding, args=(engine, threading.Event()), daemon=True).start()
    settle_heap()  # as publisher serve does
    server.run()
    """
)


WRK_LINE = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$")
_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, cookie: str, clients: int, seconds: int) -> tuple[float, float, float, str]:
    """(median ms, p99 ms, requests/s, a note on errors) of `wrk` against `url`."""
    threads = min(2, clients)
    done = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{clients}", f"-d{seconds}s", "--latency", "--timeout", "30s",
         "-H", f"Cookie: {cookie}", url],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    )
    found: dict[str, float] = {}
    rate = 0.0
    note = ""
    for line in done.stdout.splitlines():
        matched = WRK_LINE.match(line)
        if matched:
            found[matched.group(1)] = float(matched.group(2)) * _UNIT[matched.group(3)]
        elif line.startswith("Requests/sec:"):
            rate = float(line.split()[1])
        elif "Non-2xx" in line or "Socket errors" in line:
            note += " " + line.strip()
    return found["50"], found["99"], rate, note


def write_csv(path: Path, count: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "name", "tags"])
        for n in range(count):
            writer.writerow([f"reader{n}@example.org", f"Reader {n}", "weekly" if n % 3 else "weekly,clinic"])


def write_direct(url: str, count: int) -> float:
    """Readers and their tags by plain INSERTs in chunks of CHUNK: seconds."""
    from publisher.store.schema import subscriber_tags

    engine = open_store(url)
    now = datetime.now(UTC)
    started = time.perf_counter()
    with engine.begin() as conn:
        for first in range(0, count, CHUNK):
            numbers = range(first, min(count, first + CHUNK))
            conn.execute(insert(subscribers), [
                {"id": n + 1, "email": f"reader{n}@example.org", "name": f"Reader {n}", "status": "active",
                 "source": "bench", "created_at": now, "updated_at": now, "token_key": f"{n:032x}"}
                for n in numbers
            ])
            conn.execute(insert(subscriber_tags), [
                {"subscriber_id": n + 1, "tag": tag} for n in numbers
                for tag in (("weekly",) if n % 3 else ("weekly", "clinic"))
            ])
    engine.dispose()
    return time.perf_counter() - started


def run_import(root: Path, path: Path, limit: float) -> tuple[float, float, float, list[float]]:
    """Seconds, CPU seconds (user and system: on a shared machine, the figure that other
    processes' load moves least) and peak RSS (MB) of `publisher subscribers import`, and
    the seconds it took over each tenth of the file (from how far it has read the file, on Linux): a steady
    figure means a chunk costs the same at the end of a long list as at its start. Stops
    the import after `limit` seconds."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "publisher", "subscribers", "import", str(path)],
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "PUBLISHER_SECRET": SECRET},
    )
    size, marks = path.stat().st_size, [started]
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        now = time.perf_counter()
        if now - started > limit:
            child.kill()
            os.wait4(child.pid, 0)
            raise SystemExit(f"the import was stopped after {limit:.0f} s; tenths took (s): {_spans(marks)}")
        while len(marks) < 10 and _read_so_far(child.pid, path) >= size * len(marks) / 10:
            marks.append(now)
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"the import failed: {child.stderr.read().decode() if child.stderr else status}")
    cpu = usage.ru_utime + usage.ru_stime
    return elapsed, cpu, usage.ru_maxrss / 1024, [*_spans_of(marks), started + elapsed - marks[-1]]


def _read_so_far(pid: int, path: Path) -> int:
    """How far process `pid` has read `path`: its file offset, from /proc (0 where unknown)."""
    with contextlib.suppress(OSError, ValueError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            if os.readlink(fd) == str(path):
                for line in (Path(f"/proc/{pid}/fdinfo") / fd.name).read_text().splitlines():
                    if line.startswith("pos:"):
                        return int(line.split()[1])
    return 0


def _spans_of(marks: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(marks)]


def _spans(marks: list[float]) -> str:
    return " ".join(f"{span:.1f}" for span in _spans_of(marks))


def add_sent_issue(url: str) -> int:
    engine = open_store(url)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        issue_id = int(conn.execute(insert(issues).values(
            key="issue-million", kind="article", slug="issue-million", subject="To every reader",
            html="<p>x</p>", text="x", status="done", created_at=now - timedelta(days=1),
        )).inserted_primary_key[0])
        after = 0
        while True:
            rows = conn.execute(
                select(subscribers.c.id, subscribers.c.email).where(subscribers.c.id > after)
                .order_by(subscribers.c.id).limit(CHUNK)
            ).all()
            if not rows:
                break
            conn.execute(insert(deliveries), [
                {"issue_id": issue_id, "subscriber_id": r.id, "email": r.email, "name": "", "state": "sent",
                 "attempts": 1, "not_before": now, "sent_at": now + timedelta(seconds=r.id // 500),
                 "provider_id": "", "detail": "", "uncertain": False, "message_key": f"k{issue_id}.{r.id}"}
                for r in rows
            ])
            after = rows[-1].id
    accounts.add_user(engine, "owner@example.org", role="owner", password=PASSWORD, now=now)
    engine.dispose()
    return issue_id


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sign_in(base: str) -> httpx.Cookies:
    with httpx.Client(base_url=base, timeout=60) as http:
        form = http.get("/desk/login").text
        token = re.search(r'name="csrf" value="([^"]+)"', form)
        assert token
        signed = http.post("/desk/login", data={"csrf": token.group(1), "email": "owner@example.org",
                                                "password": PASSWORD})
        assert signed.status_code == 303, signed.text
        return http.cookies


async def load(base: str, cookies: httpx.Cookies, path: str, clients: int, total: int) -> tuple[list[float], float]:
    """Latencies (ms) of `total` GETs of `path` from `clients` concurrent clients, and the wall time."""
    times: list[float] = []
    left = iter(range(total))

    async def client(http: httpx.AsyncClient) -> None:
        for _ in left:
            started = time.perf_counter()
            answer = await http.get(path)
            times.append((time.perf_counter() - started) * 1000)
            if answer.status_code != 200:
                raise SystemExit(f"{path}: {answer.status_code}")

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, cookies=cookies, timeout=120, limits=limits) as http:
        for _ in range(2):
            await http.get(path)
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        return times, time.perf_counter() - started


def api_paging(base: str, token: str, count: int) -> None:
    headers = {"authorization": f"Bearer {token}"}
    tenth = max(1, count // 10)
    seen, cursor, marks = 0, None, [time.perf_counter()]
    with httpx.Client(base_url=base, timeout=120, headers=headers) as http:
        while True:
            params: dict[str, object] = {"limit": 1000}
            if cursor is not None:
                params["starting_after"] = cursor
            answer = http.get("/api/v1/subscribers", params=params)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            before = seen
            seen += len(body["data"])
            if seen // tenth > before // tenth:
                marks.append(time.perf_counter())
            if not body["has_more"]:
                break
            cursor = body["next_cursor"]
    spans = [b - a for a, b in itertools.pairwise(marks)]
    rates = [tenth / 1000 / span for span in spans if span > 0]
    print(f"API cursor paging: {seen:,} readers in {marks[-1] - marks[0]:.1f} s; pages of 1,000 per second "
          f"in each tenth: {' '.join(f'{r:.1f}' for r in rates)}")


@contextlib.contextmanager
def database(kind: str, root: Path) -> Iterator[str]:
    """The store's URL: SQLite in `root`, or an empty database on a throwaway PostgreSQL server."""
    if kind == "sqlite":
        yield f"sqlite:///{root / 'publisher.db'}"
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from pg_server import fresh_database, postgres_server

    with postgres_server() as server:
        yield fresh_database(server, "publisher_million")


def cpu_seconds(pid: int) -> float:
    """User and system CPU the process `pid` has used so far (Linux's /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    base: str, cookies: httpx.Cookies, pages: list[tuple[str, str]], args: argparse.Namespace, server: int
) -> None:
    """Each page under load; beside latency, the server's own CPU per request (from /proc):
    on a shared machine the figure that does not depend on what else runs, and whose
    inverse is the most one process can answer in a second."""
    tool = shutil.which("wrk")
    cookie = "; ".join(f"{name}={value}" for name, value in cookies.items())
    how = f"wrk, {args.seconds} s a page" if tool else f"a Python client, {args.requests} requests a page"
    print(f"{args.clients} clients ({how})")
    for name, page in pages:
        load_average = " ".join(f"{x:.1f}" for x in os.getloadavg())
        cpu = cpu_seconds(server)
        if tool:
            median, p99, rate, note = wrk(base + page, cookie, args.clients, args.seconds)
        else:
            times, wall = asyncio.run(load(base, cookies, page, args.clients, args.requests))
            ordered = sorted(times)
            median, p99 = statistics.median(times), ordered[max(0, int(len(ordered) * 0.99) - 1)]
            rate, note = len(times) / wall, ""
        answered = rate * args.seconds if tool else args.requests
        per_request = (cpu_seconds(server) - cpu) / max(answered, 1) * 1000
        print(f"{name:32} median {median:8.1f} ms   p99 {p99:8.1f} ms   {rate:7.1f} req/s   "
              f"server CPU {per_request:5.2f} ms/req   (load {load_average}){note}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=1_000_000)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=10, help="wrk's duration per page")
    parser.add_argument("--requests", type=int, default=320, help="per page, without wrk")
    parser.add_argument("--import-only", action="store_true", help="stop after the import's figures")
    parser.add_argument("--no-api", action="store_true", help="leave out the API's cursor paging")
    parser.add_argument("--import-limit", type=float, default=3600, metavar="SECONDS",
                        help="stop the import after this long")
    parser.add_argument("--direct", action="store_true", help="write the readers by INSERTs, not the CLI import")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="publisher-bench-million-") as folder, \
            database(args.store, Path(folder)) as url:
        root = Path(folder)
        (root / "config.toml").write_text(CONFIG + f'\n[store]\nurl = "{url}"\n', encoding="utf-8")
        (root / "content").mkdir()
        if args.direct:
            open_store(url).dispose()
            seconds = write_direct(url, args.readers)
            print(f"{args.store}: {args.readers:,} readers written by INSERTs in {seconds:.1f} s", flush=True)
        else:
            path = root / "readers.csv"
            write_csv(path, args.readers)
            load_average = " ".join(f"{x:.1f}" for x in os.getloadavg())
            seconds, cpu, rss, tenths = run_import(root, path, args.import_limit)
            print(f"{args.store}: import of {args.readers:,} readers from CSV: {seconds:.1f} s "
                  f"({args.readers / seconds:,.0f} rows/s; CPU {cpu:.1f} s), peak RSS {rss:.0f} MB; "
                  f"each tenth of the file (s): {' '.join(f'{span:.1f}' for span in tenths)} "
                  f"(load before {load_average}, after {' '.join(f'{x:.1f}' for x in os.getloadavg())})", flush=True)
        if args.import_only:
            return
        issue_id = add_sent_issue(url)
        engine = open_store(url)
        started = time.perf_counter()
        counts_kept.fold(engine)  # publisher serve folds every few seconds: long done by the time anyone reads
        fold_issue_counts(engine)
        if engine.dialect.name == "postgresql":
            seconds = time.perf_counter() - started
            print(f"the kept counts' change lines of the list and its send folded in {seconds:.1f} s", flush=True)
        token = access.create_key(engine, "bench", ["subscribers:read"], now=datetime.now(UTC)).token
        with engine.connect() as conn:
            ids = [row[0] for row in conn.execute(
                select(subscribers.c.id).order_by(subscribers.c.id).offset(999 * DESK_PAGE - 1).limit(1))]
        engine.dispose()
        after = ids[0] if ids else 0
        port = _port()
        server = subprocess.Popen([sys.executable, "-c", APP_SERVER, str(root / "config.toml"), str(port), SECRET])
        base = f"http://127.0.0.1:{port}"
        try:
            wait_up(base)
            cookies = sign_in(base)
            pages = [
                ("/healthz", "/healthz"),
                ("Home", "/desk/"),
                ("Subscribers, first page", "/desk/subscribers"),
                ("Subscribers, 1,000th page", f"/desk/subscribers?after={after}"),
                ("Subscribers, search 'der4242'", "/desk/subscribers?q=der4242"),
                ("Issue report", f"/desk/issues/{issue_id}"),
                ("/healthz, again", "/healthz"),
            ]
            measure(base, cookies, pages, args, server.pid)
            if not args.no_api:
                api_paging(base, token, args.readers)
        finally:
            server.terminate()
            server.wait(timeout=15)


if __name__ == "__main__":
    main()
