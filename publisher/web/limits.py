"""Request limits at the edge of the app: subscribe attempts per client and body sizes."""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimit", "PerClientLimit", "client_key"]


def client_key(host: str | None) -> str:
    """The unit a limit counts: one IPv4 address, or one IPv6 /64 (what one household or
    host gets, so rotating through its own addresses buys nothing)."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


class PerClientLimit:
    """At most `limit` hits per client per fixed window of `window` seconds.

    Kept in memory: the subscribe form is answered by the one `publisher serve`
    process, and a restart forgiving the last hour's counts is harmless. The table holds
    at most `max_clients`; it is kept in order of window start (a renewed window moves
    to the end), so expired and, when still full, oldest windows are dropped from the
    front at constant cost per hit. A flood of new addresses (an IPv6 /48 holds 65,536
    /64s) must not make each hit scan the whole table inside the event loop.
    """

    def __init__(self, limit: int, window: float = 3600.0, *, max_clients: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        self._counts: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def hit(self, key: str, now: float) -> float:
        """Count one hit; 0.0 when allowed, else seconds until the window resets."""
        counts = self._counts
        entry = counts.get(key)
        if entry is None or now - entry[0] >= self.window:
            start, count = now, 0
        else:
            start, count = entry
        if count >= self.limit:
            return max(1.0, math.ceil(start + self.window - now))
        if entry is None:
            self._make_room(now)
        elif count == 0:
            counts.move_to_end(key)  # a new window: now the newest
        counts[key] = (start, count + 1)
        return 0.0

    def _make_room(self, now: float) -> None:
        counts = self._counts
        while counts:
            start, _ = next(iter(counts.values()))  # the front holds the oldest window
            if now - start < self.window and len(counts) < self.max_clients:
                return
            # Expired, or still full of live windows: forget the oldest rather than grow.
            counts.popitem(last=False)


class BodyLimit:
    """Refuse request bodies over `limit` bytes (413) before an endpoint sees them.

    The body is read here, up to the limit, and handed on in one piece: forms and
    webhook calls are small, and refusing before the app runs needs no exception to
    travel through Starlette's error handling. `large` lists path prefixes allowed
    `large_limit` instead (provider webhooks batch many events into one call).
    """

    def __init__(
        self, app: ASGIApp, *, limit: int, large: tuple[str, ...] = (), large_limit: int = 0
    ) -> None:
        self.app = app
        self.limit = limit
        self.large = large
        self.large_limit = large_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = self.large_limit if path.startswith(self.large) else self.limit
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                await _too_large(send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _too_large(send: Send) -> None:
    body = b"Request body too large\n"
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
