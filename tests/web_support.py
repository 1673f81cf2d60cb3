"""Helpers for the HTTP app's tests: a throwaway publication and the app on real loopback HTTP."""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path

import anyio
import httpx
import uvicorn
from starlette.types import ASGIApp

from publisher.config import Config, load_config
from publisher.site.build import MANIFEST
from publisher.store import open_store

SECRET = "test-secret-0123456789abcdef-0123456789"

CONFIG = """
[publication]
title = "Quiet Harbor"
url = "https://news.example.org/"
language = "en"
postal_address = "1 Test Road, Testville"

[feeds]
hubs = ["https://hub.example.net/", "https://second-hub.example.com/"]

[newsletter]
from = "Quiet Harbor <letters@example.org>"

[delivery]
provider = "maildir"

[delivery.maildir]
path = "outbox"

[store]
url = "sqlite:///publisher.db"

[server]
public_url = "https://app.example.org"
"""

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Quiet Harbor</title>
""" + b"".join(
    f"<item><title>Note {i}</title><link>https://news.example.org/note-{i}/</link>"
    f"<description>Paragraph {i} on sleep, breathing and the weeks after a loss.</description>"
    "</item>\n".encode()
    for i in range(30)
) + b"</channel></rss>\n"

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Quiet Harbor</title>
""" + b"<entry><title>Sleep</title></entry>\n" * 20 + b"</feed>\n"

JSON_FEED = (
    b'{"version": "https://jsonfeed.org/version/1.1", "title": "Quiet Harbor", "items": ['
    + b",".join(b'{"id": "%d", "content_text": "Some words about rest."}' % i for i in range(20))
    + b"]}\n"
)

PAGE = b"<!doctype html><title>Sleep</title><h1>Sleep</h1>" + b"<p>Rest well.</p>" * 40


_MIGRATED: dict[str, Path] = {}


def _migrated_database(root: Path) -> None:
    """Copy a database migrated once per run: migrating costs more than most tests."""
    if "db" not in _MIGRATED:
        template = Path(tempfile.mkdtemp(prefix="publisher-web-db-")) / "publisher.db"
        open_store(f"sqlite:///{template}").dispose()
        _MIGRATED["db"] = template
    shutil.copyfile(_MIGRATED["db"], root / "publisher.db")


def make_publication(root: Path, *, extra: str = "", env: dict[str, str] | None = None) -> Config:
    """A publication folder with a built public/ (feeds, index, one article), a migrated
    database and its config."""
    (root / "config.toml").write_text(CONFIG + extra, encoding="utf-8")
    _migrated_database(root)
    public = root / "public"
    (public / "feeds" / "tags").mkdir(parents=True)
    (public / "sleep").mkdir()
    (public / "feeds" / "rss.xml").write_bytes(RSS)
    (public / "feeds" / "atom.xml").write_bytes(ATOM)
    (public / "feeds" / "tags" / "rest.xml").write_bytes(ATOM)
    (public / "feeds" / "feed.json").write_bytes(JSON_FEED)
    (public / "index.html").write_bytes(PAGE)
    (public / "sleep" / "index.html").write_bytes(PAGE)
    publish_manifest(public)
    (root / "secret.txt").write_text("not for the web\n", encoding="utf-8")
    return load_config(root / "config.toml", env={"PUBLISHER_SECRET": SECRET, **(env or {})})


def publish_manifest(public: Path) -> None:
    """Record every file now in `public` in its manifest, as a build would: the static
    handler serves only what the manifest lists."""
    files = {
        p.relative_to(public).as_posix(): "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(public.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    (public / MANIFEST).write_text(json.dumps({"files": files}), encoding="utf-8")


@contextmanager
def live_server(app: ASGIApp, *, config: uvicorn.Config | None = None) -> Iterator[str]:
    """`app` under uvicorn on 127.0.0.1 and an ephemeral port, in a thread; yields its URL.
    `config` runs it as given instead (as `publisher serve` does, say)."""
    config = config or uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def outbox(config: Config) -> list[EmailMessage]:
    """Messages the maildir provider delivered, oldest first."""
    folder = config.path_of("delivery.maildir.path") / "new"
    if not folder.is_dir():
        return []
    files = sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime_ns)
    return [
        email.message_from_bytes(f.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for f in files
    ]


def wait_for_mail(config: Config, count: int, timeout: float = 10.0) -> list[EmailMessage]:
    """The outbox once it holds `count` messages (mail is sent after the answer)."""
    deadline = time.monotonic() + timeout
    while True:
        found = outbox(config)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


class AppClient:
    """A synchronous client for an ASGI app in-process (httpx's ASGITransport under anyio)."""

    def __init__(self, app: ASGIApp, *, client: tuple[str, int] = ("203.0.113.9", 50000)) -> None:
        self.app = app
        self.client = client

    def request(self, method: str, url: str, **kwargs: object) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=self.client)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://testserver"
            ) as client:
                return await client.request(method, url, **kwargs)  # type: ignore[arg-type]

        return anyio.run(go)

    def get(self, url: str, **kwargs: object) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def head(self, url: str, **kwargs: object) -> httpx.Response:
        return self.request("HEAD", url, **kwargs)

    def post(self, url: str, **kwargs: object) -> httpx.Response:
        return self.request("POST", url, **kwargs)
