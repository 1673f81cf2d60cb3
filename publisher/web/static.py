"""Feeds and archive pages from the build output, answered the way feed readers like.

Feed readers poll; most polls should end in a cheap 304. So every file is described once
per version, keyed by (mtime, size) from one `stat`: its bytes, a gzip copy, a strong
ETag from a hash of the bytes (stable across restarts and across machines serving the
same build) and the finished header lists. A matching conditional GET is then answered
from that description without opening the file.

This is a plain ASGI app rather than a Starlette route: it sits on the hot path of every
poll, and the routing and middleware stack would cost more than the answer itself.

Range requests are not supported and are ignored, as RFC 9110 allows: the answer is the
whole file with 200 (no Accept-Ranges is sent, so clients do not ask). Pages (and SVG
images, which can carry scripts) come with a Content-Security-Policy for what the
archive is, pages with inline CSS whose one script is the build's own search
(assets/search.js, loading search.json): scripts and fetches from the site itself only,
never inline, so a script smuggled into a page or an override is refused by browsers
when served from here. SVG gets no scripts at all. A missing file is answered with
the build's `404.html` when there is one, else a small page of our own. Browsers ask for
`/favicon.ico` on every page: when the build wrote none, the publication's default icon
(an SVG, cached for a day) answers instead of a 404 in every log.

Only the files the build wrote are served: the manifest of the build in place (see
`publisher.site.build`) is the list, looked up again whenever it changes (one `stat` per
request), so a switch to a new build is followed at once. Anything else in the folder,
an author's own file, a database or a secret put there by mistake, a dot-file, is 404.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import mimetypes
import os
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from starlette.types import Receive, Scope, Send

from publisher.services.site import MANIFEST, manifest_files

__all__ = ["FEED_CACHE_CONTROL", "StaticSite"]

FEED_CACHE_CONTROL = "public, max-age=300"
PAGE_CACHE_CONTROL = "public, max-age=60"
ASSET_CACHE_CONTROL = "public, max-age=3600"

ICON_CACHE_CONTROL = "public, max-age=86400"
FAVICON = "favicon.ico"

MAX_CACHED_BYTES = 2 * 1024 * 1024
"""Larger files are streamed from disk each time instead of kept in memory."""
CACHE_BUDGET = 64 * 1024 * 1024
"""Bytes of file content (plain and gzip) kept at most; least recently used go first."""
GZIP_MIN_SIZE = 256
STREAM_CHUNK = 64 * 1024
MAX_PATH = 1024
"""Longer request paths name nothing the build writes; they are answered 404 unread."""
NOT_FOUND_PAGE = "404.html"
PRIVATE_SUFFIXES = (
    ".db", ".db-wal", ".db-shm", ".db-journal", ".sqlite", ".sqlite3", ".toml", ".csv",
    ".pem", ".key", ".env",
)
"""Never served, whatever a manifest says: the build writes no such file, and they are
what a publication folder keeps its subscribers, settings and keys in."""
FUTURE_SLACK = 60
"""Seconds an If-Modified-Since may lie ahead of our clock (skew) before it is ignored."""

_POLICY = (
    b"default-src 'none'; style-src 'self' 'unsafe-inline'; img-src * data:; "
    b"font-src 'self'; media-src *; form-action 'self'; frame-ancestors 'self'; "
    b"base-uri 'none'"
)
PAGE_SECURITY: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", _POLICY),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"x-frame-options", b"SAMEORIGIN"),
)
"""For SVG and error pages: no scripts, plugins or foreign frames; images and media from
anywhere (articles embed them), styles inline or from the site."""
ARCHIVE_PAGE_SECURITY: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", _POLICY + b"; script-src 'self'; connect-src 'self'"),
    *PAGE_SECURITY[1:],
)
"""For the build's HTML pages: the same, plus scripts (and what they fetch) from the site
itself, for the archive's search box; inline scripts stay refused."""

Headers = list[tuple[bytes, bytes]]

RSS = "application/rss+xml; charset=utf-8"
ATOM = "application/atom+xml; charset=utf-8"
JSON_FEED = "application/feed+json; charset=utf-8"
FEED_TYPES = (RSS, ATOM, JSON_FEED)


@dataclass(slots=True)
class _Entry:
    """One version of one file, with everything needed to answer for it."""

    file: str
    stamp: tuple[int, int]
    """(st_mtime_ns, st_size) of the version described."""
    body: bytes | None
    """None for a file too large to keep: it is streamed from `file`."""
    gzipped: bytes | None
    etag: bytes
    gzip_etag: bytes
    last_modified: bytes
    mtime: int
    plain_headers: Headers
    gzip_headers: Headers
    not_modified_headers: Headers
    not_modified_gzip_headers: Headers

    @property
    def weight(self) -> int:
        return len(self.body or b"") + len(self.gzipped or b"")


def _content_type(name: str, head: bytes) -> str:
    """The media type feed readers expect; feeds are told apart by their root element."""
    lower = name.lower()
    if lower.endswith((".html", ".htm")):
        return "text/html; charset=utf-8"
    if lower.endswith((".xml", ".rss", ".atom")):
        if b"<rss" in head:
            return RSS
        if b"<feed" in head:
            return ATOM
        return "application/xml; charset=utf-8"
    if lower.endswith(".json"):
        if b"jsonfeed.org/version" in head:
            return JSON_FEED
        return "application/json"
    guessed, _ = mimetypes.guess_type(name)
    if guessed is None:
        return "application/octet-stream"
    if guessed.startswith("text/") or guessed in ("application/javascript", "image/svg+xml"):
        return f"{guessed}; charset=utf-8"
    return guessed


def _compressible(content_type: str) -> bool:
    base = content_type.split(";", 1)[0]
    return (
        base.startswith("text/")
        or base.endswith(("+xml", "+json", "/xml", "/json", "/javascript"))
    )


def _cache_control(content_type: str) -> str:
    if content_type in FEED_TYPES:
        return FEED_CACHE_CONTROL
    if content_type.startswith("text/html"):
        return PAGE_CACHE_CONTROL
    return ASSET_CACHE_CONTROL


def _etag_matches(header: bytes, entry: _Entry) -> bool:
    """If-None-Match uses the weak comparison: a W/ prefix does not matter.

    Either representation's tag counts: both name the same version of the file, and a
    cache that stored the gzip copy may revalidate without asking for gzip again.
    """
    if header.strip() == b"*":
        return True
    for candidate in header.split(b","):
        tag = candidate.strip().removeprefix(b"W/")
        if tag in (entry.etag, entry.gzip_etag):
            return True
    return False


def _not_modified_since(header: bytes, entry: _Entry) -> bool:
    """RFC 9110 13.1.3: a date that cannot be parsed, or that lies in the future, is
    ignored (a future date would hold a cache on this version after the next change)."""
    if header == entry.last_modified:
        return True
    try:
        parsed = parsedate_to_datetime(header.decode("latin-1"))
        since = parsed.timestamp()
    except (TypeError, ValueError, OverflowError, OSError):
        return False
    if parsed.tzinfo is None or since > time.time() + FUTURE_SLACK:
        return False
    return entry.mtime <= since


def _accepts_gzip(header: bytes) -> bool:
    for part in header.lower().split(b","):
        coding, _, params = part.strip().partition(b";")
        if coding.strip() not in (b"gzip", b"*"):
            continue
        q = params.strip()
        if q.startswith(b"q="):
            try:
                return float(q[2:]) > 0
            except ValueError:
                return False
        return True
    return False


def _safe_relative(path: str) -> str | None:
    """The request path as a path under the root, or None when it could escape or hide.

    Refused: `..` and `.` segments, hidden names (dotfiles such as secrets or VCS data),
    databases, configs, CSVs and keys by their suffix, backslashes, NUL and paths longer
    than any the build writes. What is left can only name something below the root.
    """
    if len(path) > MAX_PATH or "\x00" in path or "\\" in path or not path.startswith("/"):
        return None
    parts = path.split("/")[1:]
    for part in parts[:-1]:
        if not part or part.startswith("."):
            return None
    last = parts[-1]
    if last.startswith(".") or last.lower().endswith(PRIVATE_SUFFIXES):
        return None
    return "/".join(parts)


class StaticSite:
    """ASGI app serving a build folder: GET and HEAD, conditional requests, gzip.

    `hubs` and `site_url` produce the `Link` headers of feeds (rel="hub" for WebSub
    discovery and rel="self" naming the feed's canonical address).
    """

    def __init__(self, root: Path, *, site_url: str, hubs: Sequence[str] = (), icon: str = "") -> None:
        # Not resolved: the output is a link that a build switches to the next build.
        self.root = Path(os.path.abspath(root))  # noqa: PTH100
        self.site_url = site_url.rstrip("/")
        self.hubs = tuple(hubs)
        self.icon = icon.encode()
        self._icon_tag = b'"' + hashlib.sha256(self.icon).hexdigest()[:32].encode() + b'"'
        self._root_str = str(self.root)
        self._manifest_file = os.path.join(self._root_str, MANIFEST)  # noqa: PTH118
        self._manifest_stamp: tuple[int, int, int, int] | None = None
        self._served: frozenset[str] = frozenset()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._weight = 0

    def _published(self) -> frozenset[str]:
        """The files of the build in place: its manifest, read again when it changes."""
        try:
            stat = os.stat(self._manifest_file)  # noqa: PTH116
        except OSError:
            self._manifest_stamp = None
            self._served = frozenset()
            return self._served
        stamp = (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if stamp != self._manifest_stamp:
            self._served = manifest_files(self.root)
            self._manifest_stamp = stamp
        return self._served

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await _simple(send, 405, b"Method Not Allowed\n", [(b"allow", b"GET, HEAD")])
            return
        path: str = scope["path"]
        head = method == "HEAD"
        relative = _safe_relative(path)
        if relative is None:
            await self._not_found(send, head=head)
            return
        if not relative or relative.endswith("/"):
            relative += "index.html"
        published = self._published()
        for _ in range(3):
            entry = self._lookup(relative) if relative in published else None
            if entry is None:
                if relative == FAVICON and self.icon:
                    await self._default_icon(scope, send, head=head)
                    return
                if not path.endswith("/") and f"{relative}/index.html" in published and self._is_page_folder(relative):
                    location = quote(path) + "/"
                    if scope.get("query_string"):
                        location += "?" + scope["query_string"].decode("latin-1")
                    await _simple(send, 301, b"", [(b"location", location.encode("latin-1"))])
                    return
                await self._not_found(send, head=head)
                return
            if await self._answer(entry, scope, send, head=head):
                return
            self._forget(relative)  # replaced between the look and the read: look again
        await _simple(send, 503, b"The file is being rewritten; try again\n",
                      [(b"retry-after", b"1")])

    async def _default_icon(self, scope: Scope, send: Send, *, head: bool) -> None:
        headers = [
            (b"content-type", b"image/svg+xml"),
            (b"cache-control", ICON_CACHE_CONTROL.encode()),
            (b"etag", self._icon_tag),
            (b"x-content-type-options", b"nosniff"),
            (b"content-security-policy", b"default-src 'none'; style-src 'unsafe-inline'"),
        ]
        asked = dict(scope.get("headers") or ()).get(b"if-none-match", b"")
        if self._icon_tag in asked:
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        headers.append((b"content-length", str(len(self.icon)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else self.icon})

    async def _not_found(self, send: Send, *, head: bool) -> None:
        entry = self._lookup(NOT_FOUND_PAGE) if NOT_FOUND_PAGE in self._published() else None
        if entry is not None and entry.body is not None:
            body = entry.body
            content_type = dict(entry.plain_headers)[b"content-type"]
        else:
            body = (
                '<!doctype html>\n<html lang="en"><meta charset="utf-8">'
                '<meta name="viewport" content="width=device-width, initial-scale=1">'
                "<title>Not found</title>\n<h1>Not found</h1>\n<p>Nothing is published at "
                f'this address. <a href="{html.escape(self.site_url)}/">Go to the front '
                "page</a>.</p>\n"
            ).encode()
            content_type = b"text/html; charset=utf-8"
        headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-cache"),
            (b"x-content-type-options", b"nosniff"),
            *PAGE_SECURITY,
        ]
        await send({"type": "http.response.start", "status": 404, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else body})

    async def _answer(self, entry: _Entry, scope: Scope, send: Send, *, head: bool) -> bool:
        """Answer for `entry`; False, with nothing sent, when a file too large to keep in
        memory is no longer the version `entry` describes."""
        if_none_match = if_modified_since = accept_encoding = None
        for name, value in scope["headers"]:
            if name == b"if-none-match":
                if_none_match = value
            elif name == b"if-modified-since":
                if_modified_since = value
            elif name == b"accept-encoding":
                accept_encoding = value
        use_gzip = (
            entry.gzipped is not None
            and accept_encoding is not None
            and _accepts_gzip(accept_encoding)
        )
        # If-None-Match takes precedence: If-Modified-Since is ignored when it is present.
        if (if_none_match is not None and _etag_matches(if_none_match, entry)) or (
            if_none_match is None
            and if_modified_since is not None
            and _not_modified_since(if_modified_since, entry)
        ):
            headers = entry.not_modified_gzip_headers if use_gzip else entry.not_modified_headers
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return True
        headers = entry.gzip_headers if use_gzip else entry.plain_headers
        if head or use_gzip or entry.body is not None:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            body = b"" if head else entry.gzipped if use_gzip else entry.body
            await send({"type": "http.response.body", "body": body})
            return True
        # Streamed from disk: open first, and make sure the open file is the version the
        # headers (length, ETag) describe; a rebuild may have renamed a new one in place.
        try:
            handle = open(entry.file, "rb")  # noqa: PTH123, SIM115  (closed below)
        except OSError:
            return False
        with handle:
            stat = os.fstat(handle.fileno())
            if (stat.st_mtime_ns, stat.st_size) != entry.stamp:
                return False
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await _stream(handle, send)
        return True

    def _lookup(self, relative: str) -> _Entry | None:
        """The current description of a file: one stat when cached, a read when it changed."""
        entry = self._entries.get(relative)
        # Plain os calls: this runs on every request, and pathlib objects cost more.
        file = entry.file if entry else os.path.join(self._root_str, relative)  # noqa: PTH118
        try:
            stat = os.stat(file)  # noqa: PTH116
        except OSError:  # missing, not a folder, forbidden, name too long, a symlink loop
            self._forget(relative)
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if entry is not None and entry.stamp == stamp:
            self._entries.move_to_end(relative)
            return entry
        self._forget(relative)
        try:
            if not Path(file).is_file() or not self._inside_root(file):
                return None
            fresh = self._describe(relative, file, stamp)
        except OSError:
            return None
        self._remember(relative, fresh)
        return fresh

    def _inside_root(self, file: str) -> bool:
        """Symlinks may point anywhere; only files that really live below the root are served."""
        real = os.path.realpath(file)
        root = os.path.realpath(self._root_str)
        return os.path.commonpath([real, root]) == root

    def _is_page_folder(self, relative: str) -> bool:
        folder = Path(self._root_str, relative)
        try:
            return (folder / "index.html").is_file() and self._inside_root(str(folder))
        except OSError:
            return False

    def _describe(self, relative: str, file: str, stamp: tuple[int, int]) -> _Entry:
        mtime_ns, size = stamp
        hasher = hashlib.blake2b(digest_size=16)
        body: bytes | None
        if size <= MAX_CACHED_BYTES:
            with open(file, "rb") as handle:  # noqa: PTH123  (hot path: plain os calls)
                body = handle.read()
            hasher.update(body)
            head = body[:512]
        else:
            body = None
            head = b""
            with open(file, "rb") as handle:  # noqa: PTH123
                for chunk in iter(lambda: handle.read(STREAM_CHUNK), b""):
                    if not head:
                        head = chunk[:512]
                    hasher.update(chunk)
        digest = hasher.hexdigest()
        content_type = _content_type(relative, head)
        gzipped = None
        if body is not None and len(body) >= GZIP_MIN_SIZE and _compressible(content_type):
            packed = gzip.compress(body, compresslevel=6, mtime=0)
            if len(packed) < len(body):
                gzipped = packed
        mtime = mtime_ns // 1_000_000_000
        etag = f'"{digest}"'.encode()
        gzip_etag = f'"{digest}-gzip"'.encode()
        last_modified = formatdate(mtime, usegmt=True).encode()
        common: Headers = [
            (b"cache-control", _cache_control(content_type).encode()),
            (b"x-content-type-options", b"nosniff"),
        ]
        if content_type.startswith("text/html"):
            common.extend(ARCHIVE_PAGE_SECURITY)
        elif content_type.startswith("image/svg+xml"):
            common.extend(PAGE_SECURITY)
        if _compressible(content_type):
            common.append((b"vary", b"Accept-Encoding"))
        if content_type in FEED_TYPES:
            common.extend(self._link_headers(relative))

        def full(tag: bytes, length: int, extra: Iterable[tuple[bytes, bytes]] = ()) -> Headers:
            return [
                (b"content-type", content_type.encode()),
                (b"content-length", str(length).encode()),
                (b"etag", tag),
                (b"last-modified", last_modified),
                *extra,
                *common,
            ]

        def not_modified(tag: bytes) -> Headers:
            return [(b"etag", tag), (b"last-modified", last_modified), *common]

        return _Entry(
            file=file,
            stamp=stamp,
            body=body,
            gzipped=gzipped,
            etag=etag,
            gzip_etag=gzip_etag if gzipped is not None else etag,
            last_modified=last_modified,
            mtime=mtime,
            plain_headers=full(etag, size),
            gzip_headers=full(gzip_etag, len(gzipped), [(b"content-encoding", b"gzip")])
            if gzipped is not None
            else [],
            not_modified_headers=not_modified(etag),
            not_modified_gzip_headers=not_modified(gzip_etag if gzipped else etag),
        )

    def _link_headers(self, relative: str) -> Headers:
        links = [f'<{hub}>; rel="hub"' for hub in self.hubs]
        links.append(f'<{self.site_url}/{quote(relative)}>; rel="self"')
        return [(b"link", ", ".join(links).encode("latin-1"))]

    def _remember(self, relative: str, entry: _Entry) -> None:
        self._entries[relative] = entry
        self._weight += entry.weight
        while self._weight > CACHE_BUDGET and len(self._entries) > 1:
            _, oldest = self._entries.popitem(last=False)
            self._weight -= oldest.weight

    def _forget(self, relative: str) -> None:
        old = self._entries.pop(relative, None)
        if old is not None:
            self._weight -= old.weight


async def _simple(
    send: Send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"x-content-type-options", b"nosniff"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _stream(handle: BinaryIO, send: Send) -> None:
    while chunk := handle.read(STREAM_CHUNK):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
