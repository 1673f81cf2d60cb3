"""Requests per second for a feed: the app of `publisher serve` under uvicorn beside nginx.

    .venv/bin/python benchmarks/serve_feed.py [--duration 5] [--rounds 3] [--connections 32]

The sample publication (content/ of this repository) is built into a temporary folder;
both servers then serve its public/feeds/rss.xml on loopback:

- publisher: `create_app` under uvicorn, one process, set up as `publisher serve` sets
  it up (httptools and uvloop when installed, no access log);
- nginx: Debian's package with sendfile and etag on, twice: as Debian ships it
  (`worker_processes auto`: one worker per core) and with one worker, which is the fair
  match for one uvicorn process.

wrk (a second process) asks each for the feed with no Accept-Encoding, so both send the
same bytes: plain GETs (200) and GETs carrying the feed's current ETag (304). Each cell
is the median of --rounds runs of --duration seconds. Needs `nginx` and `wrk`
(apt-get install -y nginx wrk); the whole run is bounded by about
6 x (rounds x duration + 1) seconds plus start-up.
"""

from __future__ import annotations

import argparse
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

from publisher import content
from publisher.config import load_config
from publisher.site import build

REPO = Path(__file__).resolve().parent.parent

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

NGINX_CONF = """\
worker_processes {workers};
daemon off;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {root}/tmp-body;
    proxy_temp_path {root}/tmp-proxy;
    fastcgi_temp_path {root}/tmp-fastcgi;
    uwsgi_temp_path {root}/tmp-uwsgi;
    scgi_temp_path {root}/tmp-scgi;
    types {{ application/rss+xml xml; }}
    server {{
        listen 127.0.0.1:{port};
        root {public};
        etag on;
        add_header Cache-Control "public, max-age=300";
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_publication(root: Path) -> Path:
    """The sample publication built into `root`; returns the feed's path."""
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    text = text.replace("hubs = []", 'hubs = ["https://pubsubhubbub.appspot.com/"]')
    text += f'\n[build]\ncontent = "{REPO / "content"}"\n'
    (root / "config.toml").write_text(text, encoding="utf-8")
    config = load_config(root / "config.toml", env={"PUBLISHER_SECRET": "benchmark"})
    now = datetime.now(UTC)
    articles = [a for a in content.load_articles(config) if a.is_public(now)]
    build.build_site(config, articles, now)
    return root / "public" / "feeds" / "rss.xml"


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server for {url} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def wrk(url: str, *, duration: int, connections: int, etag: str | None) -> float:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", url]
    if etag:
        command[1:1] = ["-H", f"If-None-Match: {etag}"]
    output = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=duration + 30
    ).stdout
    if "Non-2xx" in output:
        raise SystemExit(f"wrk saw errors from {url}:\n{output}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not match:
        raise SystemExit(f"cannot read wrk's output:\n{output}")
    return float(match.group(1))


def expect(url: str, etag: str | None, status: int) -> None:
    headers = {"accept-encoding": "identity"}
    if etag:
        headers["if-none-match"] = etag
    answer = httpx.get(url, headers=headers)
    if answer.status_code != status:
        raise SystemExit(f"{url} answered {answer.status_code}, expected {status}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per cell (median)")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: apt-get install -y nginx wrk")

    root = Path(tempfile.mkdtemp(prefix="publisher-serve-bench-"))
    root.chmod(0o755)  # nginx workers run as another user and must read public/
    processes: list[subprocess.Popen[bytes]] = []
    try:
        feed = build_publication(root)
        print(f"feed: {feed.stat().st_size} bytes ({feed.name} of the sample publication)")
        servers: dict[str, str] = {}
        port = free_port()
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", APP_SERVER, str(root / "config.toml"), str(port)],
                env={"PUBLISHER_SECRET": "benchmark", "PATH": "/usr/bin:/bin"},
            )
        )
        servers["publisher"] = f"http://127.0.0.1:{port}/feeds/rss.xml"
        for name, workers in (("nginx", "auto"), ("nginx-1", "1")):
            port = free_port()
            folder = root / name
            folder.mkdir()
            conf = folder / "nginx.conf"
            conf.write_text(
                NGINX_CONF.format(
                    workers=workers, root=folder, port=port, public=root / "public"
                )
            )
            processes.append(subprocess.Popen(["nginx", "-c", str(conf), "-p", str(folder)]))
            servers[name] = f"http://127.0.0.1:{port}/feeds/rss.xml"
        for url, process in zip(servers.values(), processes, strict=True):
            wait_until_up(url, process)
        etags = {
            name: httpx.get(url, headers={"accept-encoding": "identity"}).headers["etag"]
            for name, url in servers.items()
        }
        cells = [
            (name, status, etag)
            for name in servers
            for status, etag in ((200, None), (304, etags[name]))
        ]
        for name, status, etag in cells:
            expect(servers[name], etag, status)
            wrk(servers[name], duration=1, connections=args.connections, etag=etag)  # warm up
        # Rounds go round all cells in turn, so that a busy moment on the machine spreads
        # over every cell instead of spoiling one.
        runs: dict[tuple[str, int], list[float]] = {(n, s): [] for n, s, _ in cells}
        for _ in range(args.rounds):
            for name, status, etag in cells:
                runs[(name, status)].append(
                    wrk(servers[name], duration=args.duration, connections=args.connections,
                        etag=etag)
                )
        results = {cell: statistics.median(values) for cell, values in runs.items()}
        for (name, status), values in runs.items():
            print(
                f"{name:>9} {status}: median {results[(name, status)]:>9,.0f} req/s  "
                f"(runs: {', '.join(f'{r:,.0f}' for r in values)})"
            )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(root, ignore_errors=True)

    print()
    print("req/s (median)  publisher  nginx auto  ratio   nginx 1 worker  ratio")
    for status in (200, 304):
        ours = results[("publisher", status)]
        auto, one = results[("nginx", status)], results[("nginx-1", status)]
        print(
            f"{status:>14} {ours:>10,.0f} {auto:>11,.0f} {ours / auto:>6.2f} "
            f"{one:>16,.0f} {ours / one:>6.2f}"
        )
    speedup = results[("publisher", 304)] / results[("publisher", 200)]
    print(f"publisher: a 304 costs {1 / speedup:.2f} of a 200 ({speedup:.2f}x the rate)")


if __name__ == "__main__":
    main()
