"""Server time of the desk's Media page with thousands of pictures, and of one upload.

    .venv/bin/python benchmarks/desk_media.py [--pictures 5000] [--articles 300] [--requests 30] [--uploads 5]

A temporary publication gets --pictures pictures in content/media/ (three widths each, as
an upload stores them: 15,000 files for 5,000) and --articles articles, each using two of
them, and one editor. The app of `publisher serve` then runs under uvicorn in a second
process on loopback, and one client asks, in turn, for /healthz, the Media page's first
page and a page in the middle, --requests times each (after two warm-up rounds); then it
uploads a 12-megapixel photo (4000 x 3000 JPEG, 3 widths written) --uploads times.
Printed: the median and 90th percentile of each, as the client measures them.
"""

from __future__ import annotations

import argparse
import io
import re
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
from PIL import Image
from served import wait_up

from publisher import accounts
from publisher.store import open_store

CONFIG = """\
[publication]
title = "Benchmark Notes"
url = "https://bench.example.org/"
postal_address = "120 Wharf Street, Portland, ME 04101, USA"

[newsletter]
from = "Dana Reyes <dana@bench.example.org>"
"""
PASSWORD = "benchmark passphrase"

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


def _jpeg(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "JPEG", quality=85)
    return out.getvalue()


def populate(root: Path, pictures: int, articles: int) -> None:
    started = time.perf_counter()
    media = root / "content" / "media"
    media.mkdir(parents=True)
    sizes = ((480, 320), (960, 640), (1600, 1067))
    blobs = {size: _jpeg(*size, (30, 90, 160)) for size in sizes}
    names = []
    for n in range(pictures):
        for width, height in sizes:
            (media / f"{n:016x}-{width}x{height}.jpg").write_bytes(blobs[(width, height)])
        names.append(f"{n:016x}-1600x1067.jpg")
    for n in range(articles):
        (root / "content" / f"2026-01-{n % 28 + 1:02d}-article-{n}.md").write_text(
            f"---\ntitle: Article {n}\ndate: 2026-01-{n % 28 + 1:02d} 08:00\n---\n\n"
            f"Text.\n\n![One](/media/{names[(2 * n) % pictures]})\n\n![Two](media/{names[(2 * n + 1) % pictures]})\n",
            encoding="utf-8",
        )
    engine = open_store(f"sqlite:///{root / 'publisher.db'}")
    accounts.add_user(engine, "editor@example.org", role="editor", password=PASSWORD, now=datetime.now(UTC))
    engine.dispose()
    print(f"populated {pictures:,} pictures ({3 * pictures:,} files) and {articles} articles "
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
    parser.add_argument("--pictures", type=int, default=5000)
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--uploads", type=int, default=5)
    args = parser.parse_args()
    middle = max(1, args.pictures // 60 // 2)
    results: dict[str, list[float]] = {"/healthz": [], "/desk/media": [], f"/desk/media?page={middle}": []}
    uploads: list[float] = []
    with tempfile.TemporaryDirectory(prefix="publisher-bench-media-") as folder:
        root = Path(folder)
        (root / "config.toml").write_text(CONFIG, encoding="utf-8")
        populate(root, args.pictures, args.articles)
        port = _port()
        server = subprocess.Popen([sys.executable, "-c", APP_SERVER, str(root / "config.toml"), str(port)])
        try:
            base = f"http://127.0.0.1:{port}"
            wait_up(base)
            with httpx.Client(base_url=base, timeout=120) as http:
                form = http.get("/desk/login").text
                token = re.search(r'name="csrf" value="([^"]+)"', form)
                assert token
                signed = http.post("/desk/login", data={"csrf": token.group(1), "email": "editor@example.org",
                                                        "password": PASSWORD})
                assert signed.status_code == 303, signed.text
                for path in results:
                    _times(http, path, 2)
                for _ in range(args.requests):
                    for path, found in results.items():
                        found += _times(http, path, 1)
                csrf = re.search(r'name="csrf" value="([^"]+)"', http.get("/desk/media").text)
                assert csrf
                for n in range(args.uploads):
                    photo = _jpeg(4000, 3000, (n * 40 % 256, 120, 60))
                    started = time.perf_counter()
                    answer = http.post("/desk/media", data={"csrf": csrf.group(1)},
                                       files={"file": ("photo.jpg", photo, "image/jpeg")})
                    uploads.append((time.perf_counter() - started) * 1000)
                    assert answer.status_code == 201, answer.text
        finally:
            server.terminate()
            server.wait(timeout=15)
    for name, values in (*results.items(), ("upload 12 MP JPEG", uploads)):
        ordered = sorted(values)
        p90 = ordered[max(0, int(len(ordered) * 0.9) - 1)]
        print(f"{name:22} median {statistics.median(values):8.1f} ms   p90 {p90:8.1f} ms   ({len(values)} requests)")


if __name__ == "__main__":
    main()
