"""Feeds and archive pages from public/: conditional GET, gzip, Link headers, no escape."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from web_support import ATOM, JSON_FEED, PAGE, RSS, AppClient, live_server, make_publication, publish_manifest

from publisher.config import Config
from publisher.web import static
from publisher.web.static import StaticSite


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_publication(tmp_path)


def site_for(config: Config) -> StaticSite:
    return StaticSite(
        config.path_of("build.output"), site_url=config.site_url, hubs=config["feeds.hubs"]
    )


@pytest.fixture
def client(config: Config) -> AppClient:
    return AppClient(site_for(config))


def test_rss_feed_headers(client: AppClient) -> None:
    """An RSS feed comes with its media type, a strong ETag, Last-Modified and Cache-Control."""
    response = client.get("/feeds/rss.xml", headers={"accept-encoding": "identity"})
    assert response.status_code == 200
    assert response.content == RSS
    assert response.headers["content-type"] == "application/rss+xml; charset=utf-8"
    assert response.headers["etag"].startswith('"') and not response.headers["etag"].startswith("W/")
    assert response.headers["last-modified"].endswith("GMT")
    assert response.headers["cache-control"] == "public, max-age=300"


def test_feed_link_headers(client: AppClient) -> None:
    """Feeds name each WebSub hub (rel=hub) and their own canonical URL (rel=self)."""
    link = client.get("/feeds/atom.xml").headers["link"]
    assert '<https://hub.example.net/>; rel="hub"' in link
    assert '<https://second-hub.example.com/>; rel="hub"' in link
    assert '<https://news.example.org/feeds/atom.xml>; rel="self"' in link


def test_pages_have_no_link_header(client: AppClient) -> None:
    """Archive pages are not feeds: no hub or self links."""
    assert "link" not in client.get("/").headers


@pytest.mark.parametrize(
    ("path", "body", "media_type"),
    [
        ("/feeds/atom.xml", ATOM, "application/atom+xml; charset=utf-8"),
        ("/feeds/tags/rest.xml", ATOM, "application/atom+xml; charset=utf-8"),
        ("/feeds/feed.json", JSON_FEED, "application/feed+json; charset=utf-8"),
        ("/sleep/", PAGE, "text/html; charset=utf-8"),
        ("/", PAGE, "text/html; charset=utf-8"),
    ],
)
def test_media_types(client: AppClient, path: str, body: bytes, media_type: str) -> None:
    """Each kind of file gets the media type readers and browsers expect."""
    response = client.get(path)
    assert response.content == body
    assert response.headers["content-type"] == media_type


def test_etag_is_hash_of_bytes_and_stable_across_instances(config: Config) -> None:
    """The ETag comes from the bytes, so a restarted server (a new app) gives the same one."""
    first = AppClient(site_for(config)).get("/feeds/rss.xml", headers={"accept-encoding": ""})
    second = AppClient(site_for(config)).get("/feeds/rss.xml", headers={"accept-encoding": ""})
    expected = hashlib.blake2b(RSS, digest_size=16).hexdigest()
    assert first.headers["etag"] == second.headers["etag"] == f'"{expected}"'
    assert first.headers["last-modified"] == second.headers["last-modified"]


def test_if_none_match_gives_304(client: AppClient) -> None:
    """A matching If-None-Match is answered 304 with no body and the same validators."""
    etag = client.get("/feeds/rss.xml").headers["etag"]
    response = client.get("/feeds/rss.xml", headers={"if-none-match": etag})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag
    assert "link" in response.headers
    assert response.headers["cache-control"] == "public, max-age=300"


def test_weak_and_listed_etags_match(client: AppClient) -> None:
    """If-None-Match compares weakly and may list several tags."""
    etag = client.get("/feeds/rss.xml", headers={"accept-encoding": ""}).headers["etag"]
    header = f'"other", W/{etag}'
    response = client.get("/feeds/rss.xml", headers={"if-none-match": header})
    assert response.status_code == 304


def test_stale_etag_gives_200(client: AppClient) -> None:
    """An ETag of another version gets the full feed."""
    response = client.get("/feeds/rss.xml", headers={"if-none-match": '"stale"'})
    assert response.status_code == 200
    assert response.content == RSS


def test_if_modified_since_gives_304(client: AppClient) -> None:
    """If-Modified-Since equal to Last-Modified is answered 304."""
    last_modified = client.get("/feeds/rss.xml").headers["last-modified"]
    response = client.get("/feeds/rss.xml", headers={"if-modified-since": last_modified})
    assert response.status_code == 304


def test_if_modified_since_before_change_gives_200(client: AppClient) -> None:
    """A date before the file's mtime gets the full feed."""
    response = client.get(
        "/feeds/rss.xml", headers={"if-modified-since": "Mon, 01 Jan 2001 00:00:00 GMT"}
    )
    assert response.status_code == 200


def test_if_none_match_takes_precedence(client: AppClient) -> None:
    """A stale If-None-Match wins over a matching If-Modified-Since (RFC 9110 13.2.2)."""
    last_modified = client.get("/feeds/rss.xml").headers["last-modified"]
    response = client.get(
        "/feeds/rss.xml",
        headers={"if-none-match": '"stale"', "if-modified-since": last_modified},
    )
    assert response.status_code == 200


def test_changed_file_gets_new_etag(config: Config, client: AppClient) -> None:
    """A rebuilt feed is noticed at once: new ETag, full answer to the old validator."""
    old = client.get("/feeds/rss.xml").headers["etag"]
    feed = config.path_of("build.output") / "feeds" / "rss.xml"
    feed.write_bytes(RSS.replace(b"Note 1<", b"Note one<"))
    stat = feed.stat()
    os.utime(feed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    response = client.get("/feeds/rss.xml", headers={"if-none-match": old})
    assert response.status_code == 200
    assert response.headers["etag"] != old
    assert b"Note one<" in response.content


def test_304_reads_no_file(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a version is known, a conditional GET is answered without reading the file."""
    site = site_for(config)
    client = AppClient(site)
    etag = client.get("/feeds/rss.xml").headers["etag"]

    def no_reads(*args: object) -> None:
        raise AssertionError("the file was read again")

    monkeypatch.setattr(site, "_describe", no_reads)
    assert client.get("/feeds/rss.xml", headers={"if-none-match": etag}).status_code == 304


def test_gzip_when_accepted(client: AppClient) -> None:
    """With Accept-Encoding: gzip the feed is sent compressed, with Vary and its own ETag."""
    plain = client.get("/feeds/rss.xml", headers={"accept-encoding": "identity"})
    packed = client.get("/feeds/rss.xml", headers={"accept-encoding": "gzip, br"})
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.headers["vary"] == "Accept-Encoding"
    assert plain.headers["vary"] == "Accept-Encoding"
    assert int(packed.headers["content-length"]) < len(RSS)
    assert packed.content == RSS  # httpx decodes it
    assert packed.headers["etag"] != plain.headers["etag"]


def test_gzip_refused_with_q_zero(client: AppClient) -> None:
    """gzip;q=0 means "not gzip"."""
    response = client.get("/feeds/rss.xml", headers={"accept-encoding": "gzip;q=0"})
    assert "content-encoding" not in response.headers


def test_gzip_bytes_are_real_gzip(config: Config) -> None:
    """The compressed body is a gzip stream of exactly the file's bytes."""
    with live_server(site_for(config)) as url, socket.create_connection(
        ("127.0.0.1", int(url.rsplit(":", 1)[1]))
    ) as sock:
        sock.sendall(
            b"GET /feeds/rss.xml HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n"
            b"Connection: close\r\n\r\n"
        )
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"content-encoding: gzip" in head.lower()
    assert gzip.decompress(body) == RSS


def test_either_etag_revalidates(client: AppClient) -> None:
    """The plain and the gzip ETag name the same version: either gets a 304."""
    plain = client.get("/feeds/rss.xml", headers={"accept-encoding": ""}).headers["etag"]
    packed = client.get("/feeds/rss.xml", headers={"accept-encoding": "gzip"}).headers["etag"]
    for tag in (plain, packed):
        response = client.get(
            "/feeds/rss.xml", headers={"if-none-match": tag, "accept-encoding": "gzip"}
        )
        assert response.status_code == 304
        assert response.headers["etag"] == packed


def test_head_sends_headers_only(client: AppClient) -> None:
    """HEAD answers like GET without the body."""
    response = client.head("/feeds/rss.xml", headers={"accept-encoding": ""})
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == str(len(RSS))


def test_post_not_allowed(client: AppClient) -> None:
    """Files are read-only: other methods get 405 with Allow."""
    response = client.post("/feeds/rss.xml")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


def test_folder_without_slash_redirects(client: AppClient) -> None:
    """/sleep redirects to /sleep/, where its index.html is."""
    response = client.get("/sleep", follow_redirects=False)
    assert response.status_code == 301
    assert response.headers["location"] == "/sleep/"


def test_missing_file_404(client: AppClient) -> None:
    """A file that does not exist is 404."""
    assert client.get("/feeds/nothing.xml").status_code == 404


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """One live server for the traversal probes; yields its port."""
    config = make_publication(tmp_path_factory.mktemp("served"))
    (config.root / "public" / ".publisher-secret").write_text("hidden")
    publish_manifest(config.root / "public")
    with live_server(site_for(config)) as url:
        yield int(url.rsplit(":", 1)[1])


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/feeds/../../secret.txt",
        "/feeds/..%2f..%2fsecret.txt",
        "/%2e%2e/secret.txt",
        "/..\\secret.txt",
        "//etc/passwd",
        "/feeds/./rss.xml",
        "/.publisher-secret",
        "/index.html%00.xml",
        "/%2E%2E/secret.txt",
        "/feeds/%2e%2e/%2e%2e/secret.txt",
        "/sleep/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/feeds/..%5csecret.txt",
        "/%2e/secret.txt",
        "/" + "a" * 5000,
        "/" + "a/" * 2000 + "x",
    ],
)
def test_traversal_refused_over_http(served: int, path: str) -> None:
    """Raw request paths that climb out, hide or smuggle bytes get 404, over real HTTP."""
    with socket.create_connection(("127.0.0.1", served)) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    status = raw.split(b"\r\n", 1)[0]
    assert b" 404 " in status or b" 400 " in status, status
    assert b"not for the web" not in raw
    assert b"hidden" not in raw.split(b"\r\n\r\n", 1)[1]


def test_symlink_out_of_root_refused(config: Config, client: AppClient) -> None:
    """A symlink in public/ pointing outside it is not followed."""
    (config.root / "public" / "leak.txt").symlink_to(config.root / "secret.txt")
    publish_manifest(config.root / "public")
    assert client.get("/leak.txt").status_code == 404


def test_large_file_streamed(
    config: Config, client: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files above the memory limit are streamed whole, with the same validators."""
    monkeypatch.setattr(static, "MAX_CACHED_BYTES", 1000)
    blob = bytes(range(256)) * 40
    (config.root / "public" / "image.png").write_bytes(blob)
    publish_manifest(config.root / "public")
    response = client.get("/image.png")
    assert response.content == blob
    assert response.headers["content-type"] == "image/png"
    etag = response.headers["etag"]
    assert client.get("/image.png", headers={"if-none-match": etag}).status_code == 304


def test_very_long_path_is_not_found(client: AppClient) -> None:
    """A path longer than any file name (the system would refuse to stat it) is a 404."""
    for path in ("/" + "a" * 5000, "/feeds/" + "b" * 300, "/" + "c/" * 600):
        assert client.get(path).status_code == 404


def test_symlink_loop_is_not_found(config: Config, client: AppClient) -> None:
    """A symlink pointing at itself is a 404, not a server error."""
    (config.root / "public" / "loop").symlink_to("loop")
    publish_manifest(config.root / "public")
    assert client.get("/loop").status_code == 404
    assert client.get("/loop/").status_code == 404


def test_future_if_modified_since_is_ignored(client: AppClient) -> None:
    """A date later than now is not a valid validator (RFC 9110 13.1.3): the full answer."""
    response = client.get(
        "/feeds/rss.xml", headers={"if-modified-since": "Fri, 01 Jan 2100 00:00:00 GMT"}
    )
    assert response.status_code == 200
    assert response.content == RSS


@pytest.mark.parametrize(
    "date",
    [
        "", "yesterday", "1", "-1", "Mon, 99 Jan 2001 00:00:00 GMT",
        "Mon, 01 Jan 99999 00:00:00 GMT", "Mon, 01 Jan 2001 25:61:61 GMT",
        "Mon, 01 Jan 0001 00:00:00 GMT", "Mon, 01 Jan 2001 00:00:00 -0000", "\xff\xfe",
    ],
)
def test_bad_if_modified_since_is_ignored(client: AppClient, date: str) -> None:
    """A date that cannot be read, or names no moment, is ignored: 200, never a 500."""
    response = client.get("/feeds/rss.xml", headers={"if-modified-since": date.encode("latin-1")})
    assert response.status_code == 200


def test_range_is_ignored(client: AppClient) -> None:
    """Ranges are not supported: the whole file with 200, no partial content headers."""
    response = client.get(
        "/feeds/rss.xml",
        headers={"range": "bytes=0-9", "if-range": "whatever", "accept-encoding": "identity"},
    )
    assert response.status_code == 200
    assert response.content == RSS
    assert "content-range" not in response.headers
    assert "accept-ranges" not in response.headers


@pytest.mark.parametrize("path", ["/", "/sleep/", "/logo.svg"])
def test_pages_have_security_headers(config: Config, client: AppClient, path: str) -> None:
    """Archive pages and SVG (which may hold scripts): a CSP with scripts from the site
    itself at most (none for SVG, never inline), nosniff, a referrer policy and framing
    by the site itself only, on 200 and on 304."""
    (config.root / "public" / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    publish_manifest(config.root / "public")
    first = client.get(path)
    again = client.get(path, headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304
    for response in (first, again):
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        scripts = re.findall(r"script-src ([^;]*)", policy)
        assert scripts == ([] if path.endswith(".svg") else ["'self'"])
        assert "unsafe" not in "".join(scripts)
        assert "frame-ancestors 'self'" in policy
        assert response.headers["x-frame-options"] == "SAMEORIGIN"
        assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
        assert response.headers["x-content-type-options"] == "nosniff"


def test_feeds_carry_no_page_policy(client: AppClient) -> None:
    """Feeds are data, not pages: no CSP (feed readers ignore it), nosniff all the same."""
    response = client.get("/feeds/atom.xml")
    assert "content-security-policy" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


def test_missing_file_gets_a_page(client: AppClient) -> None:
    """Without a 404.html in the build, a small HTML page of our own, with the page headers;
    HEAD gets the status without the body."""
    response = client.get("/no-such-article/")
    assert response.status_code == 404
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "Not found" in response.text
    assert 'href="https://news.example.org/"' in response.text
    assert "default-src 'none'" in response.headers["content-security-policy"]
    head = client.head("/no-such-article/")
    assert head.status_code == 404
    assert head.content == b""


def test_build_404_page_is_used(config: Config, client: AppClient) -> None:
    """A 404.html in the build output is the answer, with status 404, to a missing path and
    to a refused one."""
    (config.root / "public" / "404.html").write_text("<!doctype html><p>Lost at sea</p>")
    publish_manifest(config.root / "public")
    for path in ("/nothing-here", "/.hidden"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.text == "<!doctype html><p>Lost at sea</p>"


def test_feeds_folder_without_index_is_404(client: AppClient) -> None:
    """A folder without index.html lists nothing."""
    assert client.get("/feeds/").status_code == 404
    assert client.get("/feeds", follow_redirects=False).status_code == 404


def test_rebuild_without_change_keeps_the_etag(config: Config, client: AppClient) -> None:
    """The same bytes written again (a new mtime) keep their ETag, so readers still get 304."""
    etag = client.get("/feeds/rss.xml").headers["etag"]
    feed = config.path_of("build.output") / "feeds" / "rss.xml"
    feed.write_bytes(RSS)
    stat = feed.stat()
    os.utime(feed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    response = client.get("/feeds/rss.xml", headers={"if-none-match": etag})
    assert response.status_code == 304
    assert response.headers["etag"] == etag
    second_instance = AppClient(site_for(config)).get("/feeds/rss.xml")
    assert second_instance.headers["etag"] == etag


def test_streamed_file_replaced_while_answering(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large file renamed over between describing and sending is answered consistently:
    the body is the file the headers (length, ETag) describe."""
    monkeypatch.setattr(static, "MAX_CACHED_BYTES", 1000)
    target = config.root / "public" / "episode.bin"
    target.write_bytes(b"old" * 1000)
    publish_manifest(config.root / "public")
    site = site_for(config)
    describe = site._describe
    replaced: list[bool] = []

    def describe_then_rebuild(relative: str, file: str, stamp: tuple[int, int]) -> object:
        entry = describe(relative, file, stamp)
        if not replaced:
            replaced.append(True)
            fresh = target.with_name("episode.tmp")
            fresh.write_bytes(b"new!" * 1500)
            fresh.replace(target)
        return entry

    monkeypatch.setattr(site, "_describe", describe_then_rebuild)
    response = AppClient(site).get("/episode.bin")
    assert response.status_code == 200
    assert response.content == b"new!" * 1500
    assert response.headers["content-length"] == str(len(response.content))
    digest = hashlib.blake2b(response.content, digest_size=16).hexdigest()
    assert response.headers["etag"] == f'"{digest}"'
