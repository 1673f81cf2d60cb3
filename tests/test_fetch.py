"""fetch: limits, conditional GET, and the refusals that keep fetches off private networks."""

from __future__ import annotations

import ipaddress
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from hostile_servers import drip
from loopback_sites import SiteServer, dribble, huge, redirect_to, serve_sites, slow

from publisher.config import Config, parse_config
from publisher.content import fetch as fetch_module
from publisher.content.fetch import check_address, fetch, probe, user_agent
from publisher.errors import FetchRefused, SourceError


def make_config(
    tmp_path: Path, *, allow_private: bool = True, timeout: float = 5.0, max_bytes: int = 1_000_000
) -> Config:
    text = textwrap.dedent(
        f"""
        [publication]
        title = "Test Notes"
        url = "https://notes.example.org/"
        [newsletter]
        from = "Notes <notes@example.org>"
        [fetch]
        allow_private = {"true" if allow_private else "false"}
        timeout = {timeout}
        max_bytes = {max_bytes}
        """
    )
    return parse_config(text, root=tmp_path)


@pytest.fixture
def site(tmp_path: Path):
    with serve_sites(tmp_path) as server:
        yield server


def test_fetches_a_page_with_its_validators(site: SiteServer, tmp_path: Path) -> None:
    """A plain GET returns the body, the validators and the content type."""
    result = fetch(f"{site.url}/wordpress/feed.xml", config=make_config(tmp_path))
    assert result.status == 200
    assert b"<rss" in result.body
    assert result.etag and result.last_modified
    assert result.content_type.startswith("application/xml")
    assert result.url == f"{site.url}/wordpress/feed.xml"


def test_user_agent_names_the_project_and_the_publication(site: SiteServer, tmp_path: Path) -> None:
    """Site owners can tell who is fetching and where to reach them."""
    config = make_config(tmp_path)
    fetch(f"{site.url}/wordpress/feed.xml", config=config)
    agent = site.last("/wordpress/feed.xml").headers["user-agent"]
    assert agent == user_agent(config)
    assert agent.startswith("publisher/") and "(+https://notes.example.org/)" in agent


def test_conditional_get_sends_validators_and_gets_304(site: SiteServer, tmp_path: Path) -> None:
    """The stored ETag and Last-Modified go out; an unchanged document answers 304, empty."""
    config = make_config(tmp_path)
    first = fetch(f"{site.url}/wordpress/feed.xml", config=config)
    second = fetch(f"{site.url}/wordpress/feed.xml", config=config, etag=first.etag, last_modified=first.last_modified)
    sent = site.last("/wordpress/feed.xml").headers
    assert sent["if-none-match"] == first.etag
    assert sent["if-modified-since"] == first.last_modified
    assert second.status == 304 and second.not_modified
    assert second.body == b""
    assert second.etag == first.etag


def test_http_error_is_reported_with_the_status(site: SiteServer, tmp_path: Path) -> None:
    """A 404 is an error that names the URL and the status."""
    with pytest.raises(SourceError, match=r"missing\.xml: the server answered HTTP 404"):
        fetch(f"{site.url}/missing.xml", config=make_config(tmp_path))


def test_follows_redirects_and_reports_the_final_url(site: SiteServer, tmp_path: Path) -> None:
    """A moved feed is followed; relative links resolve against where it ended up."""
    site.routes["/old-feed"] = redirect_to("/wordpress/feed.xml", 301)
    result = fetch(f"{site.url}/old-feed", config=make_config(tmp_path))
    assert result.status == 200
    assert result.url == f"{site.url}/wordpress/feed.xml"


def test_redirect_loop_stops_after_five_hops(site: SiteServer, tmp_path: Path) -> None:
    """A redirect loop ends with an error after MAX_REDIRECTS hops."""
    site.routes["/loop"] = redirect_to("/loop")
    with pytest.raises(SourceError, match="more than 5 redirects"):
        fetch(f"{site.url}/loop", config=make_config(tmp_path))
    assert site.hits("/loop") == 6


def test_declared_size_over_the_limit_is_refused(site: SiteServer, tmp_path: Path) -> None:
    """A Content-Length past fetch.max_bytes is refused before the body is read."""
    site.routes["/big"] = huge(50_000, declare_length=True)
    with pytest.raises(FetchRefused, match="max_bytes"):
        fetch(f"{site.url}/big", config=make_config(tmp_path, max_bytes=10_000))


def test_streamed_size_over_the_limit_is_refused(site: SiteServer, tmp_path: Path) -> None:
    """A body without Content-Length is cut off once it passes fetch.max_bytes."""
    site.routes["/endless"] = huge(5_000_000, declare_length=False)
    with pytest.raises(FetchRefused, match="while downloading"):
        fetch(f"{site.url}/endless", config=make_config(tmp_path, max_bytes=100_000))


def test_slow_answer_times_out(site: SiteServer, tmp_path: Path) -> None:
    """A server that does not answer within fetch.timeout is given up on."""
    site.routes["/slow"] = slow(5)
    with pytest.raises(FetchRefused, match="timeout"):
        fetch(f"{site.url}/slow", config=make_config(tmp_path, timeout=0.3))


def test_dribbling_body_hits_the_overall_deadline(site: SiteServer, tmp_path: Path) -> None:
    """fetch.timeout bounds the whole exchange, not just each read."""
    site.routes["/drip"] = dribble(chunks=40, pause=0.05)
    with pytest.raises(FetchRefused, match="timeout"):
        fetch(f"{site.url}/drip", config=make_config(tmp_path, timeout=0.6))


def test_headers_dripped_a_byte_at_a_time_hit_the_overall_deadline(tmp_path: Path) -> None:
    """A server that never finishes its headers, a byte every 0.2 s, is given up at fetch.timeout."""
    with drip(interval=0.2, lifetime=8) as server:
        started = time.monotonic()
        with pytest.raises(FetchRefused, match="timeout"):
            fetch(f"{server.url}/feed.xml", config=make_config(tmp_path, timeout=1.0))
        took = time.monotonic() - started
    assert took < 2.5


def test_a_post_to_a_dripping_server_stops_at_its_deadline(tmp_path: Path) -> None:
    """`post` holds its whole exchange to the timeout it is given, however the answer trickles."""
    with drip(interval=0.2, lifetime=8) as server:
        started = time.monotonic()
        with pytest.raises(FetchRefused, match="timeout"):
            fetch_module.post(f"{server.url}/hook", b"{}", config=make_config(tmp_path), headers={}, timeout=1.0)
        took = time.monotonic() - started
    assert took < 2.5


def test_a_probe_of_a_huge_file_reads_only_its_first_bytes(site: SiteServer, tmp_path: Path) -> None:
    """A 50 MB file answers: HEAD is refused by this server, so a GET reads a few KB and stops."""
    site.routes["/big.pdf"] = huge(50_000_000, declare_length=True)
    started = time.monotonic()
    status = probe(f"{site.url}/big.pdf", config=make_config(tmp_path, max_bytes=100_000), timeout=5.0)
    assert status == 200 and time.monotonic() - started < 2
    assert site.last("/big.pdf").headers["range"] == f"bytes=0-{fetch_module.PROBE_BYTES - 1}"


def test_a_probe_of_a_missing_page_names_the_status(site: SiteServer, tmp_path: Path) -> None:
    """A 404 is told as the server's answer, after the GET fallback confirms it."""
    with pytest.raises(SourceError, match="HTTP 404"):
        probe(f"{site.url}/no-such-page", config=make_config(tmp_path), timeout=5.0)


def test_a_probe_keeps_the_address_rules(tmp_path: Path) -> None:
    """Probing a link is fetching it: loopback stays refused without allow_private."""
    with pytest.raises(FetchRefused, match="loopback"):
        probe("http://127.0.0.1:9/x", config=make_config(tmp_path, allow_private=False), timeout=1.0)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/wordpress/feed.xml",
        "http://localhost:{port}/wordpress/feed.xml",
        "http://[::1]:{port}/wordpress/feed.xml",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.8/feed.xml",
        "http://0.0.0.0:{port}/feed.xml",
        "http://2130706433:{port}/feed.xml",
        "http://[::ffff:127.0.0.1]:{port}/feed.xml",
    ],
)
def test_private_targets_are_refused(site: SiteServer, tmp_path: Path, url: str) -> None:
    """Loopback, link-local, private and unspecified targets (also by name) never get a request."""
    config = make_config(tmp_path, allow_private=False)
    port = site.url.rsplit(":", 1)[1]
    with pytest.raises(FetchRefused, match="allow_private"):
        fetch(url.format(port=port), config=config)
    assert site.requests == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/feed.xml", "gopher://example.org/"])
def test_non_http_schemes_are_refused(tmp_path: Path, url: str) -> None:
    """Only http and https are fetched, even with private targets allowed."""
    with pytest.raises(FetchRefused, match="only http"):
        fetch(url, config=make_config(tmp_path, allow_private=True))


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("172.16.5.4", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "not globally routable"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::7f00:1", "loopback"),
        ("2002:7f00:1::", "loopback"),
    ],
)
def test_check_address_names_the_reason(address: str, reason: str) -> None:
    """Each kind of non-public address is named in the refusal."""
    assert check_address(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
def test_check_address_allows_public_addresses(address: str) -> None:
    """Public IPv4 and IPv6 addresses pass."""
    assert check_address(ipaddress.ip_address(address)) is None


class PublicWeb:
    """A pretend internet: names resolve to public addresses, answers come from a handler.

    Stands in for the network where a real public host is needed; the requests it sees
    show where fetch really connected.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, names: dict[str, str]) -> None:
        self.names = names
        self.seen: list[httpx.Request] = []
        self.answers: dict[tuple[str, str], httpx.Response] = {}
        monkeypatch.setattr(fetch_module, "resolve_host", self.resolve)

    def resolve(self, host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        if host not in self.names:
            raise SourceError(f"cannot resolve host {host!r}")
        return [ipaddress.ip_address(a) for a in self.names[host].split(",")]

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return self.answers.get((request.headers["host"], request.url.path), httpx.Response(404))

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handle))


def test_connection_goes_to_the_vetted_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The request is sent to the resolved, checked IP, with the name kept in Host and TLS SNI."""
    web = PublicWeb(monkeypatch, {"blog.example.com": "93.184.215.14"})
    web.answers[("blog.example.com", "/feed")] = httpx.Response(200, content=b"<rss/>")
    result = fetch(
        "https://blog.example.com/feed", config=make_config(tmp_path, allow_private=False), client=web.client()
    )
    assert result.body == b"<rss/>"
    (request,) = web.seen
    assert request.url.host == "93.184.215.14"
    assert request.headers["host"] == "blog.example.com"
    assert request.extensions["sni_hostname"] == "blog.example.com"
    assert result.url == "https://blog.example.com/feed"


def test_redirect_to_a_private_host_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A public page redirecting to the cloud metadata address is stopped at that hop."""
    web = PublicWeb(monkeypatch, {"blog.example.com": "93.184.215.14"})
    web.answers[("blog.example.com", "/feed")] = httpx.Response(
        302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
    )
    with pytest.raises(FetchRefused, match="link-local"):
        fetch("https://blog.example.com/feed", config=make_config(tmp_path, allow_private=False), client=web.client())
    assert [r.url.host for r in web.seen] == ["93.184.215.14"]


def test_redirect_to_a_name_resolving_to_loopback_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A redirect to a name that resolves to loopback is refused after resolution."""
    web = PublicWeb(monkeypatch, {"blog.example.com": "93.184.215.14", "sneaky.example.net": "127.0.0.1"})
    web.answers[("blog.example.com", "/feed")] = httpx.Response(
        307, headers={"Location": "http://sneaky.example.net/admin"}
    )
    with pytest.raises(FetchRefused, match=r"sneaky\.example\.net is 127\.0\.0\.1, a loopback"):
        fetch("https://blog.example.com/feed", config=make_config(tmp_path, allow_private=False), client=web.client())
    assert len(web.seen) == 1


def test_a_name_with_one_private_address_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every resolved address must be public, not just the first."""
    web = PublicWeb(monkeypatch, {"mixed.example.com": "93.184.215.14,10.0.0.5"})
    with pytest.raises(FetchRefused, match="private"):
        fetch("http://mixed.example.com/feed", config=make_config(tmp_path, allow_private=False), client=web.client())
    assert web.seen == []


def test_unresolvable_host_is_a_clear_error(tmp_path: Path) -> None:
    """A name that does not resolve says so."""
    with pytest.raises(SourceError, match="cannot resolve host"):
        fetch("http://no-such-host.invalid/feed", config=make_config(tmp_path, allow_private=False))


def test_malformed_address_is_a_clear_error(tmp_path: Path) -> None:
    """A URL that cannot be parsed is an error naming it, not a crash."""
    with pytest.raises(SourceError, match="is not a valid address"):
        fetch("http://[::1/feed", config=make_config(tmp_path))
