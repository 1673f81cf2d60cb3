"""Fetch a remote document safely: watched feeds and imported pages come from here.

A URL an author pastes, or one a feed redirects to, must not reach into the machine or
network publisher runs on (a metadata service, an admin page on localhost, a router).
So every hop is vetted: the scheme must be http(s); the host is resolved once, every
address it resolves to must be public, and the connection goes to the vetted address
itself (the URL is pinned to the IP, with the original name kept for the Host header and
TLS), so a DNS answer that changes between check and connect cannot slip through.
Redirects are followed here, one hop at a time, each vetted again. Time and size are
bounded: `fetch.timeout` covers the whole exchange, `fetch.max_bytes` the decoded body.
`fetch.allow_private = true` lifts the address checks (tests, intranet feeds).

The time limit is a wall clock, not httpx's: httpx's timeouts apply to each read, so a
server that drips one byte a second would hold a fetch for as long as it likes. Every
socket operation of a fetch made here (connect, TLS handshake, each read and write) is
given what is left of the one deadline, and fails once it has passed (`DeadlineTransport`).
A caller's own `client` keeps its own transport, and so only httpx's limits.

`probe` asks whether a link answers without downloading it: HEAD, and where a server
refuses HEAD, a GET of the first few KB (a Range request, and the reading stops there).
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from publisher import __version__
from publisher.config import Config
from publisher.errors import FetchRefused, SourceError
from publisher.numbers import plain_int

__all__ = [
    "MAX_REDIRECTS", "PROBE_BYTES", "DeadlineTransport", "FetchResult", "check_address", "fetch", "post", "probe",
    "resolve_host", "user_agent",
]

MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
PROBE_BYTES = 4096
"""Bytes of a body `probe` reads at most when HEAD is refused."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class FetchResult:
    """One completed fetch. `status` is 200-ish, or 304 with an empty body."""

    status: int
    body: bytes
    etag: str | None
    last_modified: str | None
    url: str
    """The final address, after redirects: relative links in the body are relative to it."""
    content_type: str

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class _DeadlineStream(httpcore.NetworkStream):
    """A socket whose every operation gets at most what is left until `deadline` (monotonic)."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: float) -> None:
        self._stream = stream
        self._deadline = deadline

    def _budget(self, timeout: float | None, error: type[Exception]) -> float:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise error("the deadline has passed")
        return remaining if timeout is None else min(timeout, remaining)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._budget(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._budget(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        budget = self._budget(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, budget), self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, deadline: float) -> None:
        self._backend = httpcore.SyncBackend()
        self._deadline = deadline

    def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise httpcore.ConnectTimeout("the deadline has passed")
        budget = remaining if timeout is None else min(timeout, remaining)
        stream = self._backend.connect_tcp(host, port, budget, local_address, socket_options)
        return _DeadlineStream(stream, self._deadline)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not fetched from")

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, min(seconds, self._deadline - time.monotonic())))


class DeadlineTransport(httpx.HTTPTransport):
    """httpx's transport, whose connections give up for good at `deadline` (time.monotonic()).

    A fetch that is still connecting, shaking hands or reading then fails with
    httpx.TimeoutException, however slowly and steadily the server sends.
    """

    def __init__(self, deadline: float) -> None:
        context = _ssl_context()
        super().__init__(verify=context, trust_env=False)
        self._pool = httpcore.ConnectionPool(ssl_context=context, network_backend=_DeadlineBackend(deadline))


_SSL_CONTEXTS: list[ssl.SSLContext] = []


def _ssl_context() -> ssl.SSLContext:
    """One TLS context for every fetch: loading the CA bundle costs tens of milliseconds."""
    if not _SSL_CONTEXTS:
        _SSL_CONTEXTS.append(httpx.create_ssl_context(trust_env=False))
    return _SSL_CONTEXTS[0]


def _client(deadline: float) -> httpx.Client:
    return httpx.Client(transport=DeadlineTransport(deadline), trust_env=False, follow_redirects=False)


def user_agent(config: Config) -> str:
    """Names the software and where to find the publication, so a site owner can reach us."""
    return f"publisher/{__version__} (+{config.site_url}/)"


def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, in the resolver's order (the edge tests replace)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise SourceError(f"cannot resolve host {host!r}: {exc}. Check the address.") from exc
    addresses: list[IPAddress] = []
    for info in infos:
        # The scope of a link-local IPv6 address ("fe80::1%eth0") is not part of the check.
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo, NAT64), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def check_address(address: IPAddress) -> str | None:
    """Why `address` must not be fetched from (e.g. "loopback"), or None when it is public."""
    for candidate in (_embedded_ipv4(address), address):
        if candidate is None:
            continue
        for reason, flag in (
            ("loopback", candidate.is_loopback),
            ("unspecified", candidate.is_unspecified),
            ("link-local", candidate.is_link_local),
            ("multicast", candidate.is_multicast),
            ("reserved", candidate.is_reserved),
            ("private", candidate.is_private),
            ("not globally routable", not candidate.is_global),
        ):
            if flag:
                return reason
    return None


def _refuse_private(url: httpx.URL, addresses: list[IPAddress]) -> None:
    for address in addresses:
        reason = check_address(address)
        if reason:
            raise FetchRefused(
                f"{url}: refused, {url.host} is {address}, a {reason} address. Only public "
                "hosts are fetched; set [fetch] allow_private = true in config.toml to allow "
                "private and loopback targets (intranet feeds, tests)."
            )


def _host_header(url: httpx.URL) -> str:
    host = url.raw_host.decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    return host if url.port is None else f"{host}:{url.port}"


def _targets(
    url: httpx.URL, config: Config, *, allow_private: bool = False
) -> list[tuple[httpx.URL, dict[str, str], dict[str, str]]]:
    """Where to connect for `url`: (request URL, extra headers, extensions) per vetted address.

    With private targets allowed, httpx connects by name as usual. Otherwise each public
    address becomes a request URL of its own, with Host and the TLS server name kept.
    """
    if url.scheme not in ("http", "https") or not url.host:
        raise FetchRefused(f"{url}: refused, only http:// and https:// addresses can be fetched.")
    if allow_private or config["fetch.allow_private"]:
        return [(url, {}, {})]
    host = url.raw_host.decode("ascii")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(host)]
    except ValueError:
        addresses = resolve_host(host, port)
    if not addresses:
        raise SourceError(f"cannot resolve host {host!r}. Check the address.")
    _refuse_private(url, addresses)
    headers = {"Host": _host_header(url)}
    extensions = {"sni_hostname": host} if url.scheme == "https" else {}
    return [(url.copy_with(host=str(address)), headers, extensions) for address in addresses]


def _parse_url(url: str, *, base: httpx.URL | None = None) -> httpx.URL:
    try:
        return base.join(url) if base is not None else httpx.URL(url)
    except httpx.InvalidURL as exc:
        where = f" (a redirect from {base})" if base is not None else ""
        raise SourceError(f"{url!r}{where} is not a valid address: {exc}") from exc


def _header(response: httpx.Response, name: str) -> str | None:
    value = response.headers.get(name)
    return value.strip() if value else None


def _read_body(response: httpx.Response, url: httpx.URL, *, max_bytes: int, deadline: float, timeout: float) -> bytes:
    declared = response.headers.get("content-length", "")
    if (plain_int(declared) or 0) > max_bytes:
        raise FetchRefused(
            f"{url}: refused, the document is {int(declared):,} bytes and [fetch] max_bytes "
            f"is {max_bytes:,}. Raise max_bytes in config.toml if this is expected."
        )
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes(_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise FetchRefused(
                f"{url}: refused, the document passed [fetch] max_bytes ({max_bytes:,} bytes) "
                "while downloading. Raise max_bytes in config.toml if this is expected."
            )
        if time.monotonic() > deadline:
            raise _too_slow(url, timeout)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_slow(url: httpx.URL, timeout: float) -> FetchRefused:
    return FetchRefused(
        f"{url}: gave up, no complete answer within [fetch] timeout ({timeout:g} s). "
        "Try again later, or raise the timeout in config.toml."
    )


def fetch(
    url: str,
    *,
    config: Config,
    client: httpx.Client | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
    accept: str = "*/*",
) -> FetchResult:
    """GET `url` within the safety rules above; conditional when `etag`/`last_modified` are given.

    Raises FetchRefused (unsafe target, too large, too slow) or SourceError (unreachable,
    an HTTP error status, too many redirects). Pass `client` to reuse connections or to
    route requests through a test transport; it must not follow redirects by itself.
    """
    timeout = float(config["fetch.timeout"])
    max_bytes = int(config["fetch.max_bytes"])
    deadline = time.monotonic() + timeout
    headers = {"User-Agent": user_agent(config), "Accept": accept}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    own_client = client is None
    http = client or _client(deadline)
    try:
        current = _parse_url(url)
        for _hop in range(MAX_REDIRECTS + 1):
            response = _open(http, "GET", current, config, headers, deadline, timeout)
            try:
                status = response.status_code
                if status in _REDIRECTS and "location" in response.headers:
                    current = _parse_url(response.headers["location"], base=current)
                    continue
                if status == 304:
                    return FetchResult(
                        status=304,
                        body=b"",
                        etag=_header(response, "etag") or etag,
                        last_modified=_header(response, "last-modified") or last_modified,
                        url=str(current),
                        content_type=response.headers.get("content-type", ""),
                    )
                if status >= 300:
                    raise SourceError(
                        f"{current}: the server answered HTTP {status} "
                        f"{response.reason_phrase}. Check the address, or try again later."
                    )
                try:
                    body = _read_body(response, current, max_bytes=max_bytes, deadline=deadline, timeout=timeout)
                except httpx.TimeoutException as exc:
                    raise _too_slow(current, timeout) from exc
                except httpx.HTTPError as exc:
                    raise SourceError(f"{current}: the download broke off: {exc}") from exc
                return FetchResult(
                    status=status,
                    body=body,
                    etag=_header(response, "etag"),
                    last_modified=_header(response, "last-modified"),
                    url=str(current),
                    content_type=response.headers.get("content-type", ""),
                )
            finally:
                response.close()
        raise SourceError(f"{url}: more than {MAX_REDIRECTS} redirects; gave up. Check the address.")
    finally:
        if own_client:
            http.close()


def _open(
    http: httpx.Client,
    method: str,
    url: httpx.URL,
    config: Config,
    headers: dict[str, str],
    deadline: float,
    timeout: float,
) -> httpx.Response:
    """Open a streamed `method` request of `url` on the first vetted address that accepts a connection."""
    targets = _targets(url, config)
    last_error: httpx.TransportError | None = None
    for target, extra_headers, extensions in targets:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _too_slow(url, timeout)
        request = http.build_request(
            method,
            target,
            headers={**headers, **extra_headers},
            timeout=httpx.Timeout(remaining),
            extensions=extensions,
        )
        try:
            return http.send(request, stream=True, follow_redirects=False)
        except httpx.TimeoutException as exc:
            raise _too_slow(url, timeout) from exc
        except httpx.ConnectError as exc:
            last_error = exc  # try the host's next address
        except httpx.TransportError as exc:
            raise SourceError(f"{url}: the request failed: {exc}. Try again later.") from exc
    raise SourceError(f"{url}: cannot connect: {last_error}. Check the address, or try again later.")


def probe(url: str, *, config: Config, timeout: float, client: httpx.Client | None = None) -> int:
    """Whether `url` answers, within `timeout` seconds in all: the final status (below 400).

    HEAD first; a server that answers HEAD with an error (some refuse the method, some
    answer it wrongly) is asked again with a GET of the first PROBE_BYTES, read no further,
    so a 50 MB file costs a few KB. Redirects are followed and vetted as `fetch` does.
    Raises FetchRefused (unsafe target, too slow) or SourceError (unreachable, an HTTP
    error status, too many redirects).
    """
    deadline = time.monotonic() + timeout
    headers = {"User-Agent": user_agent(config), "Accept": "*/*"}
    own_client = client is None
    http = client or _client(deadline)
    status, reason = 0, ""
    try:
        for method in ("HEAD", "GET"):
            extra = {"Range": f"bytes=0-{PROBE_BYTES - 1}"} if method == "GET" else {}
            current = _parse_url(url)
            for _hop in range(MAX_REDIRECTS + 1):
                response = _open(http, method, current, config, {**headers, **extra}, deadline, timeout)
                try:
                    status, reason = response.status_code, response.reason_phrase
                    if status in _REDIRECTS and "location" in response.headers:
                        current = _parse_url(response.headers["location"], base=current)
                        continue
                    if method == "GET" and status < 400:
                        _read_some(response, current, deadline=deadline, timeout=timeout)
                    break
                finally:
                    response.close()
            else:
                raise SourceError(f"{url}: more than {MAX_REDIRECTS} redirects; gave up. Check the address.")
            # 416: a Range past the end of an empty file; the link is there all the same.
            if status < 400 or status == 416:
                return status
        raise SourceError(
            f"{current}: the server answered HTTP {status} {reason}. Check the address."
        )
    finally:
        if own_client:
            http.close()


def _read_some(response: httpx.Response, url: httpx.URL, *, deadline: float, timeout: float) -> None:
    """Read the first PROBE_BYTES of the body at most: enough to know that it comes."""
    size = 0
    try:
        for chunk in response.iter_raw(PROBE_BYTES):
            size += len(chunk)
            if size >= PROBE_BYTES or time.monotonic() > deadline:
                return
    except httpx.TimeoutException as exc:
        raise _too_slow(url, timeout) from exc
    except httpx.HTTPError as exc:
        raise SourceError(f"{url}: the answer broke off: {exc}") from exc


def post(
    url: str,
    body: bytes,
    *,
    config: Config,
    headers: dict[str, str],
    client: httpx.Client | None = None,
    timeout: float | None = None,
    allow_private: bool = False,
) -> int:
    """POST `body` to `url` under the same address rules as `fetch`; returns the status code.

    Redirects are not followed (a webhook receiver that moved must be re-registered), and
    only the first 64 KiB of the answer is read, all within `timeout` seconds (default
    `fetch.timeout`). `allow_private` lifts the address rules for this one target (a
    receiver the owner registered on their own network). Raises FetchRefused for an unsafe
    target or a slow answer, SourceError when no connection can be made.
    """
    timeout = float(config["fetch.timeout"]) if timeout is None else timeout
    deadline = time.monotonic() + timeout
    target_url = _parse_url(url)
    own_client = client is None
    http = client or _client(deadline)
    base = {"User-Agent": user_agent(config), **headers}
    last_error: httpx.TransportError | None = None
    try:
        for target, extra_headers, extensions in _targets(target_url, config, allow_private=allow_private):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _too_slow(target_url, timeout)
            request = http.build_request(
                "POST", target, content=body, headers={**base, **extra_headers},
                timeout=httpx.Timeout(remaining), extensions=extensions,
            )
            try:
                response = http.send(request, stream=True, follow_redirects=False)
            except httpx.TimeoutException as exc:
                raise _too_slow(target_url, timeout) from exc
            except httpx.ConnectError as exc:
                last_error = exc
                continue
            except httpx.TransportError as exc:
                raise SourceError(f"{target_url}: the request failed: {exc}") from exc
            try:
                for _ in response.iter_bytes(_CHUNK):
                    break
            except httpx.HTTPError:
                pass  # the status is what counts; a broken answer body changes nothing
            finally:
                response.close()
            return response.status_code
        raise SourceError(f"{target_url}: cannot connect: {last_error}")
    finally:
        if own_client:
            http.close()
