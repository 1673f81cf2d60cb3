"""Request limits at the edge of the app: who the client is and how it came, and body sizes.

The client is the address of the connection, unless that address is one of the proxies
the author lists in `[server] trusted_proxies`: then it is the right-most hop of the
proxy's `X-Forwarded-For` or `Forwarded` (RFC 7239 `for=`) that is not such a proxy
(the one the nearest trusted proxy saw; an entry that is no address, such as `unknown`,
ends the walk and the proxy itself is the client). A request from a trusted proxy that
carries both headers naming different clients had one of them written by the visitor
(a proxy writes one and passes the other on): neither is believed, and the proxy is the
client. None are trusted by default, so a visitor cannot name themselves anyone by
sending a header; `publisher serve` also tells uvicorn to leave the headers alone.
`Proxies.client` is the one door for this: the desk's sign-in, the subscribe form and
every other per-client limit ask it.

A request came over https when its own connection did, or when a trusted proxy says so
(`X-Forwarded-Proto`, or `proto=` in `Forwarded`); `Proxies.https` answers that.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from publisher.api import problems

__all__ = ["BodyLimit", "Proxies", "client_address", "client_key", "forwarded_https", "parse_networks"]

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


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(host: str, proxies: tuple[Network, ...]) -> bool:
    address = _ip(host)
    return address is not None and any(address in network for network in proxies)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"')
    return value


def _forwarded_elements(headers: Sequence[str]) -> list[dict[str, str]]:
    """RFC 7239 elements, in order: `for=192.0.2.1;proto=https, for="[2001:db8::1]:80"`."""
    elements = []
    for header in headers:
        for element in header.split(","):
            pairs: dict[str, str] = {}
            for pair in element.split(";"):
                name, sep, value = pair.partition("=")
                if sep:
                    pairs.setdefault(name.strip().lower(), _unquote(value))
            elements.append(pairs)
    return elements


def _node(value: str) -> str:
    """The address of a `for=` node, without its port: `[2001:db8::1]:80` -> `2001:db8::1`."""
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


def _walk(hops: Sequence[str], peer: str, proxies: tuple[Network, ...]) -> tuple[str, int]:
    """The right-most hop that is not a trusted proxy, and its index (-1: the peer)."""
    for index in range(len(hops) - 1, -1, -1):
        if _trusted(hops[index], proxies):
            continue
        address = _ip(hops[index])
        return (str(address), index) if address is not None else (peer, -1)
    return peer, -1


def client_address(
    peer: str | None, proxies: tuple[Network, ...], *,
    forwarded_for: Sequence[str] = (), forwarded: Sequence[str] = (),
) -> str | None:
    """The client's address: `peer`, or when `peer` is a trusted proxy, the right-most hop
    of `X-Forwarded-For` or `Forwarded` that is not one (see the module's docstring)."""
    if not peer or not proxies or not _trusted(peer, proxies):
        return peer
    by_xff = by_forwarded = None
    if forwarded_for:
        by_xff, _ = _walk([hop.strip() for header in forwarded_for for hop in header.split(",")], peer, proxies)
    if forwarded:
        nodes = [_node(element.get("for", "")) for element in _forwarded_elements(forwarded)]
        by_forwarded, _ = _walk(nodes, peer, proxies)
    if by_xff is not None and by_forwarded is not None and by_xff != by_forwarded:
        return peer
    return by_xff or by_forwarded or peer


def forwarded_https(
    peer: str | None, proxies: tuple[Network, ...], *,
    forwarded_proto: Sequence[str] = (), forwarded: Sequence[str] = (),
) -> bool:
    """Whether a trusted proxy at `peer` says the request reached it over https: the
    right-most `X-Forwarded-Proto`, or `proto=` of the `Forwarded` element it added."""
    if not peer or not proxies or not _trusted(peer, proxies):
        return False
    protos = [value.strip().lower() for header in forwarded_proto for value in header.split(",")]
    if protos:
        return protos[-1] == "https"
    elements = _forwarded_elements(forwarded)
    if elements:
        nodes = [_node(element.get("for", "")) for element in elements]
        _, index = _walk(nodes, peer, proxies)
        element = elements[index] if index >= 0 else elements[-1]
        return element.get("proto", "").lower() == "https"
    return False


class Proxies:
    """The author's trusted proxies, and what they tell the app about one request."""

    def __init__(self, networks: tuple[Network, ...]) -> None:
        self.networks = networks

    @classmethod
    def from_list(cls, values: Iterable[str]) -> Proxies:
        return cls(parse_networks(values))

    @staticmethod
    def peer(request: HTTPConnection) -> str | None:
        return request.client.host if request.client else None

    def address(self, request: HTTPConnection) -> str | None:
        """The client's address (see the module's docstring)."""
        return client_address(
            self.peer(request), self.networks,
            forwarded_for=request.headers.getlist("x-forwarded-for"),
            forwarded=request.headers.getlist("forwarded"),
        )

    def client(self, request: HTTPConnection) -> str:
        """The unit a per-client limit counts (`client_key` of the client's address)."""
        return client_key(self.address(request))

    def https(self, request: HTTPConnection) -> bool:
        """Whether the request came over https, directly or as a trusted proxy says."""
        if request.url.scheme in ("https", "wss"):
            return True
        return forwarded_https(
            self.peer(request), self.networks,
            forwarded_proto=request.headers.getlist("x-forwarded-proto"),
            forwarded=request.headers.getlist("forwarded"),
        )

    def forwarded(self, request: HTTPConnection) -> bool:
        """Whether the request came through a trusted proxy that said it forwarded it."""
        peer = self.peer(request)
        return bool(peer and self.networks and _trusted(peer, self.networks)) and any(
            name in request.headers for name in ("x-forwarded-for", "forwarded", "x-forwarded-proto")
        )


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
    `large_limit` instead (provider webhooks batch many events into one call). `own`
    lists exact paths whose endpoint counts its body itself as it streams in, with a
    limit of its own and an answer in its own words (the desk's picture upload); they
    pass untouched, so a limit here cannot contradict the one the endpoint states.
    """

    def __init__(
        self, app: ASGIApp, *, limit: int, large: tuple[str, ...] = (), large_limit: int = 0,
        own: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.limit = limit
        self.large = large
        self.large_limit = large_limit
        self.own = own

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD") or scope["path"] in self.own:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = self.large_limit if path.startswith(self.large) else self.limit
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or len(value) > 18 or int(value) > limit):
                await _too_large(scope, receive, send)
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
                await _too_large(scope, receive, send)
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


async def _too_large(scope: Scope, receive: Receive, send: Send) -> None:
    if str(scope["path"]).startswith("/api/"):
        # The API answers every refusal as RFC 9457 problem details, this one too.
        detail = "the request body is larger than this route takes; send less (bulk imports go to /api/v1/imports)"
        answer = problems.problem_response(problems.TOO_LARGE, detail, headers={"connection": "close"})
        await answer(scope, receive, send)
        return
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
