"""The HTTP API's figures: a page of subscribers from a list of 100,000, and a bulk import.

    .venv/bin/python benchmarks/api.py [--subscribers 100000] [--duration 5] [--connections 32]

1. `GET /api/v1/subscribers?limit=100` (a page of 100, each request from another cursor)
   beside `GET /healthz`, from `publisher serve`'s app under uvicorn in its own process:
   median latency of 200 requests one at a time, then requests/s at --connections
   connections with wrk (apt-get install -y wrk) for --duration seconds.
2. Importing --subscribers rows: `POST /api/v1/imports` with the records as JSON (the
   job is followed until done) beside `publisher subscribers import FILE.csv` (the CLI,
   a subprocess), each into an empty database; rows/s includes parsing and the one
   transaction.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from publisher.config import load_config
from publisher.services import access
from publisher.store import open_store
from publisher.store.subscriber_csv import SourceRow
from publisher.store.subscriber_import import import_records

REPO = Path(__file__).resolve().parent.parent
ENV = {"PUBLISHER_SECRET": "benchmark", "PATH": "/usr/bin:/bin"}

APP_SERVER = textwrap.dedent(
    """
    import sys, uvicorn
    from publisher.config import load_config
    from publisher.web import create_app
    app = create_app(load_config(sys.argv[1]))
    uvicorn.Server(uvicorn.Config(
        app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False,
    )).run()
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def publication(root: Path) -> Path:
    root.mkdir(parents=True)
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    text += f'\n[build]\ncontent = "{REPO / "content"}"\n\n[api]\nrate_limit = 1000000000\n'
    (root / "config.toml").write_text(text, encoding="utf-8")
    return root / "config.toml"


def addresses(count: int) -> list[str]:
    return [f"reader{n}@example.org" for n in range(count)]


def start_server(config_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", APP_SERVER, str(config_path), str(port)], env=ENV)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.1)
    process.terminate()
    raise SystemExit("the app did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def wrk(url: str, *, token: str | None, duration: int, connections: int) -> float:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", url]
    if token:
        command[1:1] = ["-H", f"Authorization: Bearer {token}"]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=duration + 30).stdout
    if "Non-2xx" in output:
        raise SystemExit(f"wrk saw errors from {url}:\n{output}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not match:
        raise SystemExit(f"cannot read wrk's output:\n{output}")
    return float(match.group(1))


def median_ms(client: httpx.Client, urls: list[str], headers: dict[str, str]) -> float:
    times = []
    for url in urls:
        start = time.perf_counter()
        answer = client.get(url, headers=headers)
        times.append(time.perf_counter() - start)
        if answer.status_code != 200:
            raise SystemExit(f"{url} answered {answer.status_code}: {answer.text[:200]}")
    return statistics.median(times) * 1000


def listing(root: Path, count: int, *, duration: int, connections: int) -> None:
    config_path = publication(root / "list")
    config = load_config(config_path, env=ENV)
    db = open_store(config.store_url)
    now = datetime.now(UTC)
    rows = (SourceRow(line=n + 1, email=e, name=f"Reader {n}", tags=("sleep",) if n % 3 == 0 else ())
            for n, e in enumerate(addresses(count)))
    import_records(db, rows, platform="benchmark", now=now, origin="benchmark")
    token = access.create_key(db, "bench", ["subscribers:read"], now=now).token
    db.dispose()
    process, base = start_server(config_path)
    try:
        auth = {"authorization": f"Bearer {token}"}
        page = f"{base}/api/v1/subscribers?limit=100"
        cursors = [random.randrange(count - 100) for _ in range(200)]
        with httpx.Client() as client:
            first = client.get(page, headers=auth).json()
            assert len(first["data"]) == 100 and first["has_more"]
            median_page = median_ms(client, [f"{page}&starting_after={c}" for c in cursors], auth)
            median_health = median_ms(client, [f"{base}/healthz"] * 200, {})
        wrk(page, token=token, duration=1, connections=connections)  # warm up
        page_rate = wrk(f"{page}&starting_after={count // 2}", token=token, duration=duration,
                        connections=connections)
        health_rate = wrk(f"{base}/healthz", token=None, duration=duration, connections=connections)
    finally:
        stop(process)
    print(f"GET /api/v1/subscribers (page of 100 of {count:,}): median {median_page:.1f} ms, "
          f"{page_rate:,.0f} req/s at {connections} connections")
    print(f"GET /healthz                                   : median {median_health:.1f} ms, "
          f"{health_rate:,.0f} req/s at {connections} connections")


def importing(root: Path, count: int) -> None:
    emails = addresses(count)
    # The API: records as JSON, one POST, then the job followed until it is done.
    config_path = publication(root / "api-import")
    config = load_config(config_path, env=ENV)
    db = open_store(config.store_url)
    token = access.create_key(db, "bench", ["subscribers:write", "subscribers:read"], now=datetime.now(UTC)).token
    db.dispose()
    body = json.dumps({"subscribers": [{"email": e, "name": f"Reader {n}"} for n, e in enumerate(emails)]})
    process, base = start_server(config_path)
    try:
        auth = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        with httpx.Client(timeout=600) as client:
            start = time.perf_counter()
            job = client.post(f"{base}/api/v1/imports", headers=auth, content=body).json()
            while job.get("state") == "running":
                time.sleep(0.05)
                job = client.get(f"{base}/api/v1/imports/{job['id']}", headers=auth).json()
            api_seconds = time.perf_counter() - start
    finally:
        stop(process)
    if job.get("state") != "done" or job["imported"] != count:
        raise SystemExit(f"the API import did not finish as expected: {job}")
    # The CLI: the same rows as a CSV file.
    cli_config = publication(root / "cli-import")
    csv_path = root / "list.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name"])
        writer.writerows([e, f"Reader {n}"] for n, e in enumerate(emails))
    open_store(load_config(cli_config, env=ENV).store_url).dispose()  # migrate first, as the API run did
    start = time.perf_counter()
    subprocess.run([str(Path(sys.executable).with_name("publisher")), "--config", str(cli_config), "subscribers",
                    "import", str(csv_path)], env=ENV, check=True, capture_output=True)
    cli_seconds = time.perf_counter() - start
    print(f"import {count:,} rows: API (JSON job) {count / api_seconds:,.0f} rows/s ({api_seconds:.1f} s, "
          f"{len(body) / 1e6:.1f} MB body); CLI (CSV) {count / cli_seconds:,.0f} rows/s ({cli_seconds:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    root = Path(tempfile.mkdtemp(prefix="publisher-api-bench-"))
    try:
        listing(root, args.subscribers, duration=args.duration, connections=args.connections)
        importing(root, args.subscribers)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
