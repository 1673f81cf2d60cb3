"""Rendered previews kept for a short while, so that sandboxed frames can load them by URL.

A preview belongs to the session that made it: another session's request for the same
URL gets nothing. The cache is per process and small; a preview that fell out of it is
rendered again by the next keystroke or the next press of Preview.

A preview is the desk's, not the public site's: a draft's pictures are not published
yet, so every image under the site's `media/` is shown from the desk's media files
(`desk_images`), which only a signed-in session can read.
"""

from __future__ import annotations

import html
import re
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["DESK_MEDIA", "PreviewCache", "Rendered", "desk_images"]

DESK_MEDIA = "/desk/media/files/"


@dataclass(frozen=True, slots=True)
class Rendered:
    session_id: str
    email_html: str
    web_html: str


class PreviewCache:
    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._items: OrderedDict[str, Rendered] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, rendered: Rendered) -> str:
        key = secrets.token_urlsafe(16)
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


def desk_images(page: str, site_url: str) -> str:
    """`page` with each `src` pointing at a file of the site's media/ folder (the site's
    own or an article's relative `media/...`) pointed at the desk's copy instead."""
    site = re.escape(html.escape(site_url.rstrip("/"), quote=True))
    pattern = re.compile(rf'(\ssrc=)(["\']){site}/(?:[^"\'?#]*/)?media/([^/"\'?#]+)\2')
    return pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}{DESK_MEDIA}{m.group(3)}{m.group(2)}", page)
