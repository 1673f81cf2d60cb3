"""The return path per message (VERP): what it encodes, that it cannot be forged, and that
each copy leaves with its own, over real SMTP and through a real send."""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import dns.resolver
import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from desk_support import add_users, quick_hashes, sign_in
from dnslib import MX, QTYPE, RCODE, RR, TXT, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer
from fakes import SMTPServer
from fakes.messages import publication_config, recipients, sample_template
from web_support import SECRET, live_server, make_publication, outbox

from publisher.cli import cli
from publisher.config import Config, load_config
from publisher.delivery.smtp import SmtpProvider
from publisher.errors import ConfigError, TokenError
from publisher.mail import verp
from publisher.models import Outcome
from publisher.services import doctor
from publisher.store import open_store, subscribers
from publisher.web import create_app

NOW = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)
KEY = "0123456789abcdef01234567"


def test_return_path_names_its_message() -> None:
    """The token reads back to the ledger key it was made from."""
    address = verp.return_path(SECRET, KEY, "bounces.example.org")
    local, _, domain = address.partition("@")
    assert domain == "bounces.example.org"
    assert local.startswith("bounces+") and len(local) <= 64
    assert verp.read(SECRET, local.removeprefix("bounces+")) == KEY


def test_a_lower_or_upper_cased_token_still_reads() -> None:
    """MTAs that change the case of an address do not break it."""
    token = verp.return_path(SECRET, KEY, "b.example.org").split("+")[1].split("@")[0]
    assert verp.read(SECRET, token.upper()) == KEY


def test_another_secret_cannot_make_a_token() -> None:
    """A token signed with any other secret is refused: a forged bounce names no one."""
    forged = verp.return_path("another-secret-of-enough-length-0000000", KEY, "b.example.org")
    with pytest.raises(TokenError):
        verp.read(SECRET, forged.split("+")[1].split("@")[0])


def test_an_edited_token_is_refused() -> None:
    """Changing one character of a real token (to aim at another reader) breaks its signature."""
    token = verp.return_path(SECRET, KEY, "b.example.org").split("+")[1].split("@")[0]
    edited = ("b" if token[0] != "b" else "c") + token[1:]
    with pytest.raises(TokenError):
        verp.read(SECRET, edited)


def test_no_domain_means_no_return_path() -> None:
    """With bounces.return_path_domain empty, messages keep today's envelope sender."""
    assert verp.return_path(SECRET, KEY, "") == ""


def test_a_row_from_before_message_keys_keeps_the_from_address() -> None:
    """A resumed row keyed `i<issue>.d<row>` goes out as before, without a token."""
    assert verp.return_path(SECRET, "i7.d100", "b.example.org") == ""


def test_token_is_found_where_the_bounce_was_delivered() -> None:
    """The bounce's To (or Delivered-To) holds the return path; another domain's is not ours."""
    address = verp.return_path(SECRET, KEY, "b.example.org")
    token = address.split("+")[1].split("@")[0]
    assert verp.find_token(["someone@else.org", address.upper()], "b.example.org") == token
    assert verp.find_token([address.replace("b.example.org", "evil.example")], "b.example.org") == ""


def test_dns_records_for_the_bounce_domain() -> None:
    """The domain needs an MX to the host that reads bounces and an SPF naming the sender."""
    records = verp.bounce_domain_records("b.example.org", mx_host="mx.example.org", sending_host="smtp.example.org")
    assert [(r.name, r.type) for r in records] == [("b.example.org", "MX"), ("b.example.org", "TXT")]
    assert records[0].value == "10 mx.example.org."
    assert records[1].value == "v=spf1 a:smtp.example.org ~all"


def test_smtp_envelope_sender_is_each_copys_return_path(tmp_path: Path) -> None:
    """Over real SMTP, MAIL FROM is the copy's own return path; the From header is unchanged."""
    template = sample_template(publication_config(tmp_path))
    readers = [
        replace(r, return_path=verp.return_path(SECRET, secrets.token_hex(12), "b.example.org"))
        for r in recipients(3)
    ]
    server = SMTPServer().start()
    provider = SmtpProvider(host=server.host, port=server.port, security="none", timeout=5.0)
    try:
        results = provider.send(template, readers, now=NOW)
    finally:
        provider.close()
        server.stop()
    assert [r.outcome for r in results] == [Outcome.SENT] * 3
    for reader in readers:
        (got,) = server.messages_to(reader.email)
        assert got.mail_from == reader.return_path
        assert "dana@example.org" in str(got.parsed()["From"])


def test_a_send_gives_every_copy_a_return_path_naming_its_row(tmp_path: Path) -> None:
    """`publisher send` with the setting on: each copy's return path reads back to its ledger row."""
    config = make_publication(tmp_path, extra='\n[bounces]\nreturn_path_domain = "bounces.example.org"\n')
    folder = tmp_path / "content"
    folder.mkdir(exist_ok=True)
    (folder / "2026-01-05-rest.md").write_text("---\ntitle: Rest\ndate: 2026-01-05 08:00\n---\n\nRest.\n",
                                               encoding="utf-8")
    engine = open_store(config.store_url)
    subscribers.add(engine, "ann@example.org", now=NOW)
    subscribers.add(engine, "bo@example.org", now=NOW)
    sent = CliRunner().invoke(cli, ["send", "rest", "--yes"], catch_exceptions=False, env={
        "PUBLISHER_CONFIG": str(tmp_path / "config.toml"), "PUBLISHER_SECRET": SECRET,
    })
    assert sent.exit_code == 0, sent.output
    with engine.connect() as conn:
        keys = dict(conn.execute(sa.text("SELECT email, message_key FROM deliveries")).all())
    engine.dispose()
    copies = outbox(config)
    assert len(copies) == 2
    for copy in copies:
        path = str(copy["Return-Path"]).strip("<>")
        token = verp.find_token([path], "bounces.example.org")
        assert verp.read(SECRET, token) == keys[str(copy["To"])]


class BounceZone(BaseResolver):  # type: ignore[misc]
    """A DNS server's MX and TXT answers for the return-path domain; other names do not exist."""

    def __init__(self, mx: dict[str, str], txt: dict[str, str]) -> None:
        self.mx, self.txt = mx, txt

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".")
        if name not in self.mx and name not in self.txt:
            reply.header.rcode = RCODE.NXDOMAIN
        if request.q.qtype == QTYPE.MX and name in self.mx:
            reply.add_answer(RR(request.q.qname, QTYPE.MX, rdata=MX(self.mx[name], 10), ttl=60))
        if request.q.qtype == QTYPE.TXT and name in self.txt:
            reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT([self.txt[name].encode()]), ttl=60))
        return reply


@contextlib.contextmanager
def dns_answering(zone: BounceZone) -> Iterator[dns.resolver.Resolver]:
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


def verp_config(root: Path) -> Config:
    extra = '\n[bounces]\nreturn_path_domain = "b.example.org"\nmx_host = "mx.example.org"\n'
    return make_publication(root, extra=extra)


def test_doctor_passes_a_return_path_domain_with_mx_and_spf(tmp_path: Path) -> None:
    """Live DNS (a server on loopback) with both records: the check is ok and names the MX."""
    zone = BounceZone({"b.example.org": "mx.example.org"}, {"b.example.org": "v=spf1 a:smtp.example.org ~all"})
    with dns_answering(zone) as resolver:
        (found,) = doctor._return_path(verp_config(tmp_path), resolver)
    assert (found.name, found.status) == ("Return path: b.example.org", "ok")
    assert "mx.example.org" in found.detail


def test_doctor_fails_a_return_path_domain_without_mx_naming_the_record(tmp_path: Path) -> None:
    """No MX: bounces would reach no one; the fix is the MX record to publish."""
    zone = BounceZone({}, {"b.example.org": "v=spf1 ~all"})
    with dns_answering(zone) as resolver:
        (found,) = doctor._return_path(verp_config(tmp_path), resolver)
    assert found.status == "fail" and "no MX record" in found.detail
    assert "MX 10 mx.example.org. at b.example.org" in found.fix


def test_doctor_says_nothing_of_a_return_path_while_verp_is_off(tmp_path: Path) -> None:
    """Without bounces.return_path_domain there is nothing to check."""
    assert doctor._return_path(make_publication(tmp_path), None) == []


def test_desk_settings_show_the_return_path_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The owner's Settings page lists the MX and SPF records the bounce domain needs."""
    config = verp_config(tmp_path)
    quick_hashes(monkeypatch)
    add_users(config)
    with live_server(create_app(config)) as base, httpx.Client(base_url=base) as http:
        sign_in(http, "owner@example.org")
        page = http.get("/desk/settings").text
    section = page.split('id="bounce-h"')[1].split("</section>")[0]
    assert "<code>bounces+…@b.example.org</code>" in section
    assert "<code>10 mx.example.org.</code>" in section and "MX" in section
    assert "v=spf1" in section


def test_a_return_path_domain_with_an_at_sign_is_refused_naming_the_key(tmp_path: Path) -> None:
    """An address typed where a domain belongs is told at once, with the file, line and key."""
    (tmp_path / "config.toml").write_text(
        '[publication]\ntitle = "T"\nurl = "https://e.org/"\n[newsletter]\nfrom = "a@e.org"\n'
        '[bounces]\nreturn_path_domain = "bounces@example.org"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r'config.toml:7: \[bounces\] return_path_domain must be a domain name'):
        load_config(tmp_path / "config.toml", env={})
