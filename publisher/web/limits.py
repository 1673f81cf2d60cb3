"""Request limits at the edge of the app: who the client is, subscribe attempts per
client and body sizes.

The client is the address of the connection, unless that address is one of the proxies
the author lists in `[server] trusted_proxies`: then it is the right-most address in
X-Forwarded-For that is not such a proxy (the one the nearest trusted proxy saw). None
are trusted by default, so a visitor cannot name themselves anyone by sending the
header; `publisher serve` also tells uvicorn to leave the header alone.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimit", "client_address", "client_key", "parse_networks"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or CIDR networks; raises ValueError naming the first that is neither."""
    out = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an IP address or network (such as 10.0.0.0/8)") from exc
    return tuple(out)


def _trusted(host: str, proxies: tuple[Network, ...]) -> bool:
    try:
        address = ipaddress.ip_address(host.strip())
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in proxies)


def client_address(peer: str | None, forwarded_for: Sequence[str], proxies: tuple[Network, ...]) -> str | None:
    """The client's address: `peer`, or when `peer` is a trusted proxy, the right-most
    X-Forwarded-For entry that is not one (an entry that is no address ends the walk)."""
    if not peer or not proxies or not _trusted(peer, proxies):
        return peer
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
    for hop in reversed(hops):
        if _trusted(hop, proxies):
            continue
        try:
            return str(ipaddress.ip_address(hop))
        except ValueError:
            return peer
    return peer


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
