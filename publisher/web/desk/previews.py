"""Rendered previews kept for a short while, so that sandboxed frames can load them by URL.

A preview belongs to the session that made it: another session's request for the same
URL gets nothing. The cache is per process and small; a preview that fell out of it is
rendered again by the next keystroke or the next press of Preview.

A preview is the desk's, not the public site's: a draft's pictures are not published
yet, so every image under the site's `media/` is shown from the desk's media folder
(`desk_images`). Not through `/desk/media/files/`, though: a sandboxed frame has no
origin of its own, so the browser sends no session cookie with the requests its page
makes. Each preview's pictures are served under the preview's own key instead
(`/desk/preview/<key>/media/<name>`), and only the pictures that preview shows: the
key, 128 random bits that only the session's page has seen, is the permission, for as
long as the preview stays in the cache.
"""

from __future__ import annotations

import html
import re
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

__all__ = ["PreviewCache", "Rendered", "desk_images", "media_prefix"]


@dataclass(frozen=True, slots=True)
class Rendered:
    session_id: str
    email_html: str
    web_html: str
    media: frozenset[str] = field(default_factory=frozenset)
    """The media file names its pages show, which its key may serve."""


def media_prefix(key: str) -> str:
    return f"/desk/preview/{key}/media/"


def desk_images(page: str, site_url: str, prefix: str) -> tuple[str, set[str]]:
    """`page` with each `src` pointing at a file of the site's media/ folder (the site's
    `/media/...` or an article's relative `media/...`) pointed at `prefix` + its name
    instead, and the names so pointed."""
    site = re.escape(html.escape(site_url.rstrip("/"), quote=True))
    pattern = re.compile(rf'(\ssrc=)(["\']){site}/(?:[^"\'?#]*/)?media/([^/"\'?#]+)\2')
    names: set[str] = set()

    def swap(found: re.Match[str]) -> str:
        names.add(found.group(3))
        return f"{found.group(1)}{found.group(2)}{prefix}{found.group(3)}{found.group(2)}"

    # A picture's other widths (publisher.content.media.fit_images) are in srcset, which a browser prefers.
    entry = re.compile(site + r"/(?:[^\"'?#,\s]*/)?media/([^/\"'?#,\s]+)")

    def widths(found: re.Match[str]) -> str:
        def one(item: re.Match[str]) -> str:
            names.add(item.group(1))
            return f"{prefix}{item.group(1)}"

        return found.group(1) + entry.sub(one, found.group(2)) + found.group(3)

    page = re.sub(r'(\ssrcset=")([^"]*)(")', widths, page)
    return pattern.sub(swap, page), names


class PreviewCache:
    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._items: OrderedDict[str, Rendered] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def new_key() -> str:
        return secrets.token_urlsafe(16)

    def put(self, rendered: Rendered, key: str | None = None) -> str:
        key = key or self.new_key()
        with self._lock:
            self._items[key] = rendered
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return key

    def get(self, key: str, session_id: str) -> Rendered | None:
        with self._lock:
            found = self._items.get(key)
        if found is None or not secrets.compare_digest(found.session_id, session_id):
            return None
        return found

    def shows(self, key: str, name: str) -> bool:
        """Whether the preview under `key` shows the media file `name` (see the module's note)."""
        with self._lock:
            found = self._items.get(key)
        return found is not None and name in found.media
