"""A real HTTP server on 127.0.0.1 serving tests/data/sites/, for fetch, sources and import tests.

Files are served with an ETag (a hash of their bytes) and Last-Modified (their mtime) and
answer conditional GETs with 304, like a well-behaved blog host. Every request is
recorded, so a test can count hits and read the headers that were sent. Extra routes
(redirects, slow or huge answers) are plain functions a test registers.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SITES = Path(__file__).parent / "data" / "sites"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".xml": "application/xml; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
    ".atom": "application/atom+xml; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    status: int = 0


Route = Callable[["Handler"], None]


@dataclass
class SiteServer:
    root: Path
    url: str = ""
    requests: list[Seen] = field(default_factory=list)
    routes: dict[str, Route] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)

    def hits(self, path: str) -> int:
        return sum(1 for r in self.requests if r.path == path)

    def last(self, path: str) -> Seen:
        return [r for r in self.requests if r.path == path][-1]

    def write(self, name: str, text: str) -> None:
        """Change a served file; its mtime moves forward so Last-Modified changes too."""
        target = self.root / name
        before = target.stat().st_mtime if target.exists() else 0.0
        target.write_text(text, encoding="utf-8")
        later = max(time.time(), before + 2)
        os.utime(target, (later, later))


class Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.server.site.requests[-1].status = status
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_GET(self) -> None:
        site = self.server.site
        path = self.path.split("?", 1)[0]
        site.requests.append(Seen(path=path, headers={k.lower(): v for k, v in self.headers.items()}))
        route = site.routes.get(path)
        if route is not None:
            route(self)
            return
        file = (site.root / path.lstrip("/")).resolve()
        if not file.is_file() or site.root.resolve() not in file.parents:
            self.send(404, b"not found", {"Content-Type": "text/plain"})
            return
        body = file.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        mtime = int(file.stat().st_mtime)
        headers = {
            "ETag": etag,
            "Last-Modified": formatdate(mtime, usegmt=True),
            "Content-Type": CONTENT_TYPES.get(file.suffix, "application/octet-stream"),
        }
        if_none_match = self.headers.get("If-None-Match")
        if_modified_since = self.headers.get("If-Modified-Since")
        if if_none_match is not None:
            if etag in [tag.strip() for tag in if_none_match.split(",")]:
                self.send(304, b"", headers)
                return
        elif if_modified_since is not None and parsedate_to_datetime(if_modified_since).timestamp() >= mtime:
            self.send(304, b"", headers)
            return
        self.send(200, body, headers)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    site: SiteServer


@contextmanager
def serve_sites(tmp_path: Path) -> Iterator[SiteServer]:
    """Serve a private copy of tests/data/sites/ (tests may edit it) until the block ends."""
    root = tmp_path / "sites"
    shutil.copytree(SITES, root)
    server = _Server(("127.0.0.1", 0), Handler)
    site = SiteServer(root=root, url=f"http://127.0.0.1:{server.server_address[1]}")
    server.site = site
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        site.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def redirect_to(location: str, status: int = 302) -> Route:
    def route(handler: Handler) -> None:
        handler.send(status, b"", {"Location": location})

    return route


def slow(seconds: float) -> Route:
    """Answers only after `seconds` (or when the server stops)."""

    def route(handler: Handler) -> None:
        handler.server.site.stopping.wait(seconds)
        handler.send(200, b"late", {"Content-Type": "text/plain"})

    return route


def dribble(chunks: int, pause: float) -> Route:
    """A body sent a few bytes at a time: each read is quick, the whole is slow."""

    def route(handler: Handler) -> None:
        handler.server.site.requests[-1].status = 200
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Content-Length", str(chunks))
        handler.end_headers()
        for _ in range(chunks):
            if handler.server.site.stopping.wait(pause):
                return
            try:
                handler.wfile.write(b"x")
                handler.wfile.flush()
            except OSError:
                return

    return route


def huge(size: int, *, declare_length: bool) -> Route:
    """A body of `size` bytes, with or without a Content-Length announcing it."""

    def route(handler: Handler) -> None:
        handler.server.site.requests[-1].status = 200
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        if declare_length:
            handler.send_header("Content-Length", str(size))
        else:
            handler.send_header("Connection", "close")
        handler.end_headers()
        block = b"y" * 65536
        sent = 0
        try:
            while sent < size:
                handler.wfile.write(block[: size - sent])
                sent += len(block)
        except OSError:
            return
        handler.close_connection = True

    return route
