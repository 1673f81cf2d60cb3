"""Checks before a send (DNS against a DNS server on loopback), and the editor's form to file and back."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dns.resolver
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dnslib import QTYPE, RCODE, RR, TXT, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer
from hostile_servers import drip, hang
from loopback_sites import huge, serve_sites

from publisher.config import Config, load_config, parse_config
from publisher.mail import preflight
from publisher.mail.dkim_signing import DkimKey, DkimSigner
from publisher.models import Article
from publisher.web.desk.editing import parse_fields, to_text

CONFIG = """
[publication]
title = "Harbor Light Notes"
url = "https://notes.example.org/"
postal_address = "1 Harbor Road"

[newsletter]
from = "Dana <dana@notes.example.org>"
clip_warning_bytes = 2000
"""
ARTICLE = Article(
    slug="sleep", title="Sleep", date=datetime(2026, 1, 1, tzinfo=UTC), html="<p>x</p>",
    id="notes.example.org,2026-01-01:sleep", url="https://notes.example.org/sleep/", summary="Rest well.",
)
GOOD = (
    '<p><img src="https://notes.example.org/a.jpg" alt="A bed"></p>'
    '<a href="https://notes.example.org/rest/">rest</a> 1 Harbor Road '
    '<a href="https://notes.example.org/unsubscribe/preview">sample</a> '
    '<a href="https://app.example.org/unsubscribe/t">Unsubscribe</a>'
)


def run(html: str, *, subject: str = "Sleep", pages: tuple[str, ...] = ("/rest/",),
        spam: tuple[float, float] | None = None) -> dict[str, preflight.Check]:
    config = parse_config(CONFIG, root=Path("."))
    found = preflight.checks(
        config, ARTICLE, subject=subject, html=html, text="x /unsubscribe/t", page_exists=lambda p: p in pages,
        spam=spam,
    )
    return {c.name: c for c in found}


def test_a_good_issue_passes_every_check() -> None:
    """Short subject, preheader, alt text, live own links, small, address and unsubscribe."""
    found = run(GOOD, spam=(1.2, 5.0))
    assert all(c.ok for name, c in found.items() if name != "Links to other sites"), found


def test_each_problem_is_named() -> None:
    """A long subject, a dead own link, a big body, no address and a spam score fail."""
    bad = '<img src="https://notes.example.org/b.jpg"><a href="https://notes.example.org/gone/">x</a>' + "x" * 3000
    found = run(bad, subject="S" * 90, spam=(7.5, 5.0))
    for name in ("Subject length", "Links to your site", "Size", "Postal address", "Unsubscribe link", "Spam score"):
        assert found[name].ok is False, name
    assert "cut in every inbox" in found["Subject length"].detail
    assert "/gone/" in found["Links to your site"].detail


def test_without_spamassassin_the_score_is_not_checked() -> None:
    """No spamassassin on the server: said so, neither passed nor failed."""
    assert run(GOOD)["Spam score"].ok is None


def test_dns_records_carry_the_dkim_key() -> None:
    """The DKIM record holds the public half of the configured key; SPF and DMARC name the domain."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    config = parse_config(CONFIG, root=Path("."))
    signer = DkimSigner(domain="notes.example.org", keys=(DkimKey(selector="news", key=key),))
    records = preflight.dns_records(config, signer)
    names = [r.name for r in records]
    assert names == ["notes.example.org", "news._domainkey.notes.example.org", "_dmarc.notes.example.org"]
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert records[1].value == f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"


def test_the_editor_keeps_keys_it_does_not_show() -> None:
    """Form fields go back into the file; image, send_at and the like stay as they were."""
    text = "---\ntitle: Old\ndate: 2026-01-01 09:00\ntags: [a]\nimage: /i.jpg\nsend_at: 2026-02-01 08:00\n---\n\nBody\n"
    fields = parse_fields(text)
    assert (fields.title, fields.date, fields.tags, fields.body) == ("Old", "2026-01-01 09:00", "a", "Body\n")
    again = to_text(dataclasses.replace(fields, title="New: yes"), text)
    assert "title: 'New: yes'" in again and "image: /i.jpg" in again and "send_at: 2026-02-01 08:00" in again
    assert parse_fields(again).title == "New: yes"


def test_spamassassin_reads_the_issue_where_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a `spamassassin` on PATH, the issue goes to it on stdin and its score is reported."""
    program = tmp_path / "spamassassin"
    program.write_text(
        "#!/bin/sh\ncat > \"$(dirname \"$0\")/seen.eml\"\n"
        "printf 'X-Spam-Status: Yes, score=6.1 required=5.0 tests=FOO\\n\\nbody\\n'\n",
        encoding="utf-8",
    )
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    config = parse_config(CONFIG, root=tmp_path)
    found, _ = preflight.run_checks(config, ARTICLE, subject="Sleep", html=GOOD, text="x /unsubscribe/t")
    spam = {c.name: c for c in found}["Spam score"]
    assert spam.ok is False and "6.1" in spam.detail
    assert b"Subject: Sleep" in (tmp_path / "seen.eml").read_bytes()


def test_a_date_with_an_offset_keeps_it() -> None:
    """A date written with its UTC offset is shown and saved with it, not moved into the local zone."""
    text = "---\ntitle: T\ndate: 2026-02-10T07:30:00+01:00\n---\n\nBody\n"
    fields = parse_fields(text)
    assert fields.date == "2026-02-10 07:30+01:00"
    assert "date: 2026-02-10 07:30+01:00" in to_text(fields, text)


def _key_value(key: rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


class Zone(BaseResolver):  # type: ignore[misc]
    """A DNS server's answers: TXT records by name (each a list of strings); other names do not exist."""

    def __init__(self, records: dict[str, list[list[str]]]) -> None:
        self.records = records

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".")
        if name not in self.records:
            reply.header.rcode = RCODE.NXDOMAIN
        for strings in self.records.get(name, []):
            reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT([s.encode() for s in strings]), ttl=60))
        return reply


@contextlib.contextmanager
def dns_server(zone: Zone) -> Iterator[dns.resolver.Resolver]:
    """A DNS server on 127.0.0.1 answering from `zone`; yields a resolver that asks only it."""
    server = DNSServer(zone, address="127.0.0.1", port=0, logger=DNSLogger(logf=lambda *_: None))
    server.start_thread()
    try:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = server.server.server_address[1]
        yield resolver
    finally:
        server.stop()
        server.server.server_close()


@pytest.fixture
def no_spam_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """SpamAssassin takes seconds where it is installed, and these checks are not about it."""
    monkeypatch.setattr(preflight, "_spam_score", lambda message: None)


@pytest.fixture
def signed(tmp_path: Path, no_spam_check: None) -> tuple[Path, rsa.RSAPrivateKey]:
    """A publication that signs with a 2048-bit key under the selector "news"."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "dkim.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    extra = '\n[delivery.dkim]\ndomain = "notes.example.org"\nselector = "news"\nprivate_key_file = "dkim.pem"\n'
    (tmp_path / "config.toml").write_text(CONFIG + extra, encoding="utf-8")
    return tmp_path, key


def test_dns_records_are_looked_up_on_request_and_compared(signed: tuple[Path, rsa.RSAPrivateKey]) -> None:
    """A local DNS server: SPF and DMARC found, the DKIM key (split into 255-byte strings as
    long keys are) matches the configured one; a plain check asks DNS nothing."""
    root, key = signed
    config = load_config(root / "config.toml", env={})
    value = f"v=DKIM1; k=rsa; p={_key_value(key)}"
    zone = Zone({
        "notes.example.org": [["v=spf1 include:_spf.example.net ~all"], ["google-site-verification=abc"]],
        "news._domainkey.notes.example.org": [[value[:255], value[255:]]],
        "_dmarc.notes.example.org": [["v=DMARC1; p=none"]],
    })
    with dns_server(zone) as resolver:
        found, _ = preflight.run_checks(config, ARTICLE, subject="Sleep", html=GOOD, text="x", lookups=True,
                                        resolver=resolver)
        plain, _ = preflight.run_checks(config, ARTICLE, subject="Sleep", html=GOOD, text="x", resolver=resolver)
    by_name = {c.name: c for c in found}
    assert [by_name[n].ok for n in (
        "DNS: SPF (notes.example.org)", "DNS: DKIM (news._domainkey.notes.example.org)",
        "DNS: DMARC (_dmarc.notes.example.org)",
    )] == [True, True, True], found
    assert not [c for c in plain if c.name.startswith("DNS:")]


def test_wrong_missing_and_doubled_records_are_named(signed: tuple[Path, rsa.RSAPrivateKey]) -> None:
    """Another key under the selector, two SPF records and no DMARC each fail with the fix."""
    root, _key = signed
    config = load_config(root / "config.toml", env={})
    other = f"v=DKIM1; k=rsa; p={_key_value(rsa.generate_private_key(public_exponent=65537, key_size=2048))}"
    zone = Zone({
        "notes.example.org": [["v=spf1 mx ~all"], ["v=spf1 include:x.example ~all"]],
        "news._domainkey.notes.example.org": [[other[:255], other[255:]]],
    })
    with dns_server(zone) as resolver:
        found, _ = preflight.run_checks(config, ARTICLE, subject="Sleep", html=GOOD, text="x", lookups=True,
                                        resolver=resolver)
    by_name = {c.name: c for c in found if c.name.startswith("DNS:")}
    spf, dkim, dmarc = by_name.values()
    assert (spf.ok, dkim.ok, dmarc.ok) == (False, False, False)
    assert "2 SPF records" in spf.detail and "another key" in dkim.detail and "v=DMARC1" in dmarc.detail


def test_a_silent_dns_server_is_told_within_the_timeout(
    signed: tuple[Path, rsa.RSAPrivateKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No answer in time: each record "could not be looked up", neither passed nor failed."""
    root, _key = signed
    config = load_config(root / "config.toml", env={})
    monkeypatch.setattr(preflight, "DNS_TIMEOUT", 0.2)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = silent.getsockname()[1]
        started = time.monotonic()
        found, _ = preflight.run_checks(config, ARTICLE, subject="Sleep", html=GOOD, text="x", lookups=True,
                                        resolver=resolver)
    assert time.monotonic() - started < 3
    checked = [c for c in found if c.name.startswith("DNS:")]
    assert len(checked) == 3 and all(c.ok is None and "no answer within" in c.detail for c in checked)


def test_links_to_other_sites_are_fetched_only_on_request(tmp_path: Path, no_spam_check: None) -> None:
    """On request each link off the site is fetched and a dead one named; links into the
    site and the app are not fetched; a plain check fetches nothing."""
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(404 if request.url.path == "/gone" else 200, text="ok")

    extra = "\n[fetch]\nallow_private = true\n\n[server]\npublic_url = \"https://app.example.org\"\n"
    (tmp_path / "config.toml").write_text(CONFIG + extra, encoding="utf-8")
    config = load_config(tmp_path / "config.toml", env={})
    html = GOOD + ('<a href="http://127.0.0.1:9/fine">a</a> <a href="http://127.0.0.1:9/gone">b</a> '
                   '<a href="mailto:dana@notes.example.org">c</a>')
    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        plain, _ = preflight.run_checks(config, ARTICLE, subject="S", html=html, text="x", client=client)
        assert asked == [] and {c.name: c for c in plain}["Links to other sites"].ok is None
        found, _ = preflight.run_checks(config, ARTICLE, subject="S", html=html, text="x", external=True,
                                        client=client)
    other = {c.name: c for c in found}["Links to other sites"]
    assert other.ok is False and "1 of 2" in other.detail and "/gone" in other.detail and "/fine" not in other.detail
    assert sorted(set(asked)) == ["http://127.0.0.1:9/fine", "http://127.0.0.1:9/gone"]


def _link_config(tmp_path: Path, timeout: float = 5.0) -> Config:
    extra = f"\n[fetch]\nallow_private = true\ntimeout = {timeout}\n"
    (tmp_path / "config.toml").write_text(CONFIG + extra, encoding="utf-8")
    return load_config(tmp_path / "config.toml", env={})


def test_a_link_that_drips_is_given_up_at_its_deadline(tmp_path: Path) -> None:
    """A server sending a header byte every 0.2 s is cut off at the link's limit, not waited for."""
    config = _link_config(tmp_path, timeout=1.0)
    with drip(interval=0.2, lifetime=10) as server:
        started = time.monotonic()
        found = preflight.probe_links(config, [f"{server.url}/slow"])
        took = time.monotonic() - started
    assert took < 3 and "timeout" in found[f"{server.url}/slow"]


def test_a_check_ends_at_its_deadline_and_names_the_rest_not_checked(tmp_path: Path) -> None:
    """Links that never answer: the check returns at its deadline and says they were not checked."""
    config = _link_config(tmp_path)
    with hang(lifetime=15) as server:
        links = [f"{server.url}/{n}" for n in range(30)]
        started = time.monotonic()
        found = preflight.probe_links(config, links, within=1.5)
        took = time.monotonic() - started
    assert took < 3.5
    assert all(why.startswith(preflight.NOT_CHECKED) and "1.5 s were up" in why for why in found.values())
    check = preflight._other_links_check(found)
    assert check.ok is None and "30 not checked" in check.detail and "did not answer" not in check.detail


def test_a_large_file_answers_like_a_page(tmp_path: Path) -> None:
    """A 50 MB PDF is a working link: asked for its first bytes, not downloaded and not refused."""
    config = _link_config(tmp_path)
    with serve_sites(tmp_path) as site:
        site.routes["/report.pdf"] = huge(50_000_000, declare_length=True)
        found = preflight.probe_links(config, [f"{site.url}/report.pdf"])
    assert found == {f"{site.url}/report.pdf": ""}
    assert preflight._other_links_check(found).ok is True


def test_links_past_the_limit_are_not_checked_rather_than_broken(tmp_path: Path) -> None:
    """The links past MAX_LINKS are named as not checked (limit reached), never as failures."""
    config = _link_config(tmp_path)
    links = [f"http://127.0.0.1:9/{n}" for n in range(preflight.MAX_LINKS + 3)]
    with httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200))) as client:
        found = preflight.probe_links(config, links, client=client)
    check = preflight._other_links_check(found)
    assert check.ok is None and "did not answer" not in check.detail
    assert "3 not checked (the limit of 40 links per check was reached)" in check.detail
