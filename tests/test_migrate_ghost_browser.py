"""A Ghost post moved in, side by side with Ghost's own HTML, in a real browser (headless Chromium).

Set PUBLISHER_MIGRATION_SCREENSHOT to a .png path to keep the two screenshots side by side
(the original on the left, the page publisher built on the right); without it they go
into the test's temporary folder.
"""

from __future__ import annotations

import io
import json
import os
import socket
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from browser import chromium
from loopback_sites import serve_sites
from PIL import Image
from web_support import live_server

from publisher.config import load_config
from publisher.services import migration
from publisher.services.site import build_site
from publisher.store import open_store
from publisher.web.static import StaticSite

GHOST = Path(__file__).parent / "data" / "exports" / "ghost" / "ghost-export.json"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
# What the reader of the original must find again: text of every card Ghost rendered.
TEXTS = ("Light in the morning sets the clock.", "See the basics", "Go outside early", "Dim the evening",
         "Morning light, any weather", "Ten minutes is enough.", "Circadian rhythms explained", "A primer.",
         "10000", "A markdown card with a link.", "print(lux * minutes)", "A lamp",
         "A daylight lamp for dark mornings.")


def picture(colour: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (600, 400), colour).save(buffer, "JPEG")
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def config_for(root: Path, site: str) -> Any:
    """A publication at `site` (the loopback server that will serve its build: pages and
    pictures use the publication's own address)."""
    (root / "config.toml").write_text(
        textwrap.dedent(
            f"""
            [publication]
            title = "Harbor Notes"
            url = "{site}"
            timezone = "UTC"
            author = "Dana Reyes"
            postal_address = "1 Wharf Street, Portland, ME"
            [newsletter]
            from = "Notes <notes@example.org>"
            [store]
            url = "sqlite:///publisher.db"
            [fetch]
            allow_private = true
            timeout = 5.0
            """
        ),
        encoding="utf-8",
    )
    return load_config(root / "config.toml", env={})


def seen(session: Any, selector: str) -> dict[str, Any]:
    """The visible text, the h2/h3 headings and the pictures (alt, loaded) inside `selector`."""
    found: dict[str, Any] = session.execute_script(
        """
        const root = document.querySelector(arguments[0]);
        return {
          text: root.innerText.replace(/\\s+/g, ' '),
          headings: [...root.querySelectorAll('h2, h3')].map(h => h.innerText.trim()),
          images: [...root.querySelectorAll('img')].map(i => [i.alt, i.complete && i.naturalWidth > 0]),
        };
        """,
        selector,
    )
    return found


def shot(session: Any, url: str) -> Image.Image:
    session.set_window_size(900, 2400)
    session.get(url)
    session.execute_script("return document.fonts ? document.fonts.ready : true")
    height = min(int(session.execute_script("return document.documentElement.scrollHeight")), 4000)
    session.set_window_size(900, height)
    return Image.open(io.BytesIO(session.get_screenshot_as_png())).convert("RGB")


def test_a_migrated_ghost_post_reads_like_the_original(tmp_path: Path) -> None:
    """Ghost's HTML of the main post and our built page show the same text, headings and
    pictures (each loaded); the two screenshots are saved side by side."""
    port = free_port()
    site = f"http://127.0.0.1:{port}"
    config = config_for(tmp_path, site + "/")
    with serve_sites(tmp_path) as old:
        images = {"/content/images/sunrise.jpg": picture("orange"), "/content/images/cover.jpg": picture("teal")}
        for path, data in images.items():
            old.routes[path] = lambda handler, data=data: handler.send(200, data, {"Content-Type": "image/jpeg"})
        document = json.loads(GHOST.read_text(encoding="utf-8").replace("http://192.168.1.20", old.url))
        post = document["db"][0]["data"]["posts"][0]
        original = post["html"].replace("__GHOST_URL__", old.url).replace(
            "https://www.youtube.com/embed/abc123?feature=oembed", "about:blank")
        page = (f'<!doctype html><html><head><meta charset="utf-8"><title>{post["title"]}</title>'
                '<style>img { max-width: 100%; height: auto } .kg-card { margin: 1.5em 0 }</style></head>'
                f'<body style="font-family: sans-serif; max-width: 720px; margin: 2em auto">'
                f'<article class="gh-content"><h1>{post["title"]}</h1>{original}</article></body></html>').encode()
        old.routes["/morning-light/"] = lambda handler: handler.send(200, page, {"Content-Type": "text/html"})
        export = tmp_path / "ghost-export.json"
        export.write_text(json.dumps(document), encoding="utf-8")
        db = open_store(config.store_url)
        done = migration.apply(config, db, migration.plan(config, db, "ghost", migration.open_export(export)),
                               now=NOW)
        assert done.images == 2
        build_site(config, NOW)
        built = StaticSite(config.path_of("build.output"), site_url=site + "/")
        serving = uvicorn.Config(built, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                                 access_log=False)
        with live_server(built, config=serving) as ours, chromium() as session:
            left = shot(session, old.url + "/morning-light/")
            before = seen(session, "article")
            right = shot(session, ours + "/morning-light/")
            after = seen(session, "article")
    missing = [text for text in TEXTS if text in before["text"] and text not in after["text"]]
    assert [t for t in TEXTS if t not in before["text"]] == [] and missing == []
    assert after["headings"] == before["headings"] == ["What to do"]
    assert ["Sunrise over a field", True] in before["images"] and ["Sunrise over a field", True] in after["images"]
    assert all(loaded for _alt, loaded in after["images"])
    target = Path(os.environ.get("PUBLISHER_MIGRATION_SCREENSHOT") or tmp_path / "side-by-side.png")
    both = Image.new("RGB", (left.width + right.width + 20, max(left.height, right.height)), "white")
    both.paste(left, (0, 0))
    both.paste(right, (left.width + 20, 0))
    both.save(target)
    assert target.stat().st_size > 0
