"""Gmail's and Yahoo's rules for bulk senders, judged against a DNS server on loopback; and
the complaint rate that stops a send, on the command line, in the desk and at a schedule's start."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path

import dkim
import dns.resolver
import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from desk_support import add_users, csrf_of, quick_hashes, sign_in
from dnslib import MX, QTYPE, RCODE, RR, TXT, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer
from test_jobs import Pub as JobsPub
from test_jobs import article as job_article
from web_support import SECRET, AppClient, live_server, make_publication, outbox

from publisher.cli import cli
from publisher.config import Config, parse_config
from publisher.mail import preflight, sender_rules
from publisher.mail.dkim_signing import DkimSigner
from publisher.models import Article
from publisher.schedule import jobs
from publisher.services import access, complaints, doctor, scheduling
from publisher.store import open_store
from publisher.store import subscribers as subscriber_store
from publisher.store.schema import deliveries as deliveries_table
from publisher.store.schema import events as events_table
from publisher.store.schema import issues as issues_table
from publisher.web import create_app

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
ARTICLE = Article(
    slug="sleep", title="Sleep", date=datetime(2026, 1, 1, tzinfo=UTC), html="<p>x</p>",
    id="example.org,2026-01-01:sleep", url="https://example.org/sleep/", summary="Rest well.",
)
HTML = '<p>Rest. 1 Harbor Road <a href="https://example.org/unsubscribe/t">Unsubscribe</a></p>'
RELAY_ADDRESS = "93.184.216.34"


class Zone(BaseResolver):  # type: ignore[misc]
    """A DNS server's answers: TXT (lists of strings), A and MX records by name; other names do not exist."""

    def __init__(self, txt: dict[str, list[list[str]]], a: dict[str, list[str]] | None = None,
                 mx: dict[str, list[str]] | None = None) -> None:
        self.txt, self.a, self.mx = txt, a or {}, mx or {}

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".")
        if name not in self.txt and name not in self.a and name not in self.mx:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        kind = QTYPE[request.q.qtype]
        if kind == "TXT":
            for strings in self.txt.get(name, []):
                reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT([s.encode() for s in strings]), ttl=60))
        elif kind == "A":
            for address in self.a.get(name, []):
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(address), ttl=60))
        elif kind == "MX":
            for host in self.mx.get(name, []):
                reply.add_answer(RR(request.q.qname, QTYPE.MX, rdata=MX(host), ttl=60))
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


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A DKIM key file and the TXT value that publishes its public half."""
    folder = tmp_path_factory.mktemp("dkim")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (folder / "dkim.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return folder / "dkim.pem", f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"


def make_config(root: Path, *, sender: str = "Dana <dana@example.org>", provider: str = "postmark",
                dkim_domain: str = "", key: Path | None = None, url: str = "https://example.org/",
                relay: str = "localhost") -> Config:
    signing = (f'[delivery.dkim]\ndomain = "{dkim_domain}"\nselector = "news"\nprivate_key_file = "{key}"\n'
               if dkim_domain else "")
    text = f"""
[publication]
title = "Harbor Light Notes"
url = "{url}"
postal_address = "1 Harbor Road"
[newsletter]
from = {sender!r}
[delivery]
provider = "{provider}"
[delivery.smtp]
host = "{relay}"
{signing}"""
    return parse_config(text, root=root, env={})


def judged(config: Config, zone: Zone) -> dict[str, preflight.Check]:
    """Every sender rule for `config`, DNS asked of a loopback server answering from `zone`."""
    signer = DkimSigner.from_config(config)
    message = preflight.sent_message(config, signer, "Sleep", HTML, "Rest. /unsubscribe/t")
    with dns_server(zone) as resolver:
        found = preflight.sender_rule_checks(config, signer, message, sender_rules.LiveDns(resolver))
    return {c.name.removeprefix("Sender rules: "): c for c in found}


def test_a_subdomain_from_aligns_with_its_parents_dkim_domain(tmp_path: Path, key_file: tuple[Path, str]) -> None:
    """From news.example.org, signed d=example.org: aligned under relaxed alignment, and the
    DMARC record of the organisational domain governs the subdomain."""
    config = make_config(tmp_path, sender="Dana <dana@news.example.org>", dkim_domain="example.org",
                         key=key_file[0])
    found = judged(config, Zone({"_dmarc.example.org": [["v=DMARC1; p=quarantine"]]}))
    assert found["DKIM aligned with From"].ok is True
    assert found["DMARC published and aligned"].ok is True
    assert "_dmarc.example.org" in found["DMARC published and aligned"].detail


def test_a_dkim_domain_of_another_organisation_does_not_align(tmp_path: Path, key_file: tuple[Path, str]) -> None:
    """From example.org, signed d=example.net: not aligned; the rule names the domain to sign with,
    and DMARC (with Postmark's own return path) then has nothing aligned."""
    config = make_config(tmp_path, dkim_domain="example.net", key=key_file[0])
    found = judged(config, Zone({"_dmarc.example.org": [["v=DMARC1; p=none"]]}))
    dkim_rule = found["DKIM aligned with From"]
    assert dkim_rule.ok is False and "set [delivery.dkim] domain to example.org" in dkim_rule.detail
    assert found["DMARC published and aligned"].ok is False


def test_a_public_suffix_is_no_organisation(tmp_path: Path) -> None:
    """a.co.uk and b.co.uk share only a public suffix: they do not align."""
    assert sender_rules.aligned("news.a.co.uk", "a.co.uk")
    assert not sender_rules.aligned("a.co.uk", "b.co.uk")


def test_strict_dmarc_refuses_a_subdomains_signature(tmp_path: Path, key_file: tuple[Path, str]) -> None:
    """adkim=s asks for the very From domain: a parent's signature no longer aligns."""
    config = make_config(tmp_path, sender="Dana <dana@news.example.org>", dkim_domain="example.org",
                         key=key_file[0])
    found = judged(config, Zone({"_dmarc.example.org": [["v=DMARC1; p=reject; adkim=s"]]}))
    assert found["DMARC published and aligned"].ok is False
    assert "strict" in found["DMARC published and aligned"].detail


def test_a_missing_dmarc_record_names_the_one_to_publish(tmp_path: Path, key_file: tuple[Path, str]) -> None:
    """No DMARC at the From domain nor its organisational domain: the record to add is named."""
    config = make_config(tmp_path, dkim_domain="example.org", key=key_file[0])
    found = judged(config, Zone({"example.org": [["v=spf1 include:spf.mtasv.net ~all"]]}))
    rule = found["DMARC published and aligned"]
    assert rule.ok is False and "_dmarc.example.org" in rule.detail and "v=DMARC1; p=none" in rule.detail


def test_a_providers_own_key_at_the_from_domain_aligns(tmp_path: Path) -> None:
    """Resend signs with resend._domainkey.<domain> once verified: found in DNS, DKIM aligns and
    carries DMARC; not found, the rule says Resend signs with a domain of its own."""
    config = make_config(tmp_path, provider="resend")
    dmarc = {"_dmarc.example.org": [["v=DMARC1; p=none"]]}
    verified = judged(config, Zone({**dmarc, "resend._domainkey.example.org": [["p=MIGfMA0GCSqGSIb3DQEB"]]}))
    assert verified["DKIM aligned with From"].ok is True
    assert verified["DMARC published and aligned"].ok is True
    unverified = judged(config, Zone(dmarc))["DKIM aligned with From"]
    assert unverified.ok is False and "resend._domainkey.example.org" in unverified.detail


def test_a_rule_names_the_provider_as_the_desk_does(tmp_path: Path) -> None:
    """A rule's words call the provider by its name, "Postmark", not its config value "postmark"."""
    found = judged(make_config(tmp_path, provider="postmark"), Zone({}))
    rule = found["return path aligned with From"]
    assert rule.detail.startswith("Postmark's own return path"), rule.detail


def test_spf_without_the_providers_include_is_named(tmp_path: Path) -> None:
    """Resend sends with the return path send.<From domain>: its SPF must include amazonses.com."""
    config = make_config(tmp_path, provider="resend")
    found = judged(config, Zone({"send.example.org": [["v=spf1 include:_spf.google.com ~all"]]}))
    rule = found["SPF names the sending host"]
    assert rule.ok is False and "add include:amazonses.com" in rule.detail and "send.example.org" in rule.detail


def test_spf_that_includes_the_provider_through_another_record_passes(tmp_path: Path) -> None:
    """An include reached through another include (as many hosted records are) counts."""
    config = make_config(tmp_path, provider="resend")
    zone = Zone({
        "send.example.org": [["v=spf1 include:_spf.example.org -all"]],
        "_spf.example.org": [["v=spf1 include:amazonses.com ~all"]],
    })
    assert judged(config, zone)["SPF names the sending host"].ok is True


def test_spf_names_the_smtp_relay_by_its_address(tmp_path: Path) -> None:
    """Through a relay, SPF must name the relay's address: by a:host, by ip4: range, not by another range."""
    config = make_config(tmp_path, provider="smtp", relay="relay.example.net")
    hosts = {"relay.example.net": [RELAY_ADDRESS]}
    by_name = Zone({"example.org": [["v=spf1 a:relay.example.net -all"]]}, a=hosts)
    by_range = Zone({"example.org": [["v=spf1 ip4:93.184.216.0/24 -all"]]}, a=hosts)
    by_mx = Zone({"example.org": [["v=spf1 mx -all"]]}, a=hosts, mx={"example.org": ["relay.example.net"]})
    elsewhere = Zone({"example.org": [["v=spf1 ip4:10.1.2.3 ~all"]]}, a=hosts)
    assert judged(config, by_name)["SPF names the sending host"].ok is True
    assert judged(config, by_range)["SPF names the sending host"].ok is True
    assert judged(config, by_mx)["SPF names the sending host"].ok is True
    missing = judged(config, elsewhere)["SPF names the sending host"]
    assert missing.ok is False and f"ip4:{RELAY_ADDRESS}" in missing.detail


def test_a_relay_on_this_machine_is_not_judged(tmp_path: Path) -> None:
    """localhost sends out from an address DNS cannot tell: the rule says what to publish, unjudged."""
    config = make_config(tmp_path, provider="smtp", relay="127.0.0.1")
    rule = judged(config, Zone({"example.org": [["v=spf1 mx ~all"]]}))["SPF names the sending host"]
    assert rule.ok is None and "public address" in rule.detail


def test_an_spf_record_that_loops_is_named_not_followed_forever(tmp_path: Path) -> None:
    """An include that includes itself: after 10 look-ups receivers give up, and so does the rule."""
    config = make_config(tmp_path, provider="resend")
    zone = Zone({"send.example.org": [["v=spf1 include:loop.example.org ~all"]],
                 "loop.example.org": [["v=spf1 include:loop.example.org ~all"]]})
    rule = judged(config, zone)["SPF names the sending host"]
    assert rule.ok is False and "more than 10 look-ups" in rule.detail


def test_a_malformed_spf_term_does_not_pass(tmp_path: Path) -> None:
    """ip4:not-an-address names no host: the relay is not let through, and nothing raises."""
    config = make_config(tmp_path, provider="smtp", relay="relay.example.net")
    zone = Zone({"example.org": [["v=spf1 ip4:not-an-address ~all"]]}, a={"relay.example.net": [RELAY_ADDRESS]})
    assert judged(config, zone)["SPF names the sending host"].ok is False


def test_two_spf_records_are_named(tmp_path: Path) -> None:
    """Two v=spf1 records at one name: receivers ignore both."""
    config = make_config(tmp_path, provider="resend")
    zone = Zone({"send.example.org": [["v=spf1 include:amazonses.com ~all"], ["v=spf1 mx ~all"]]})
    rule = judged(config, zone)["SPF names the sending host"]
    assert rule.ok is False and "merge" in rule.detail


def test_a_providers_own_return_path_does_not_align(tmp_path: Path) -> None:
    """Postmark's default return path (pm.mtasv.net) is not the author's: the fix is Postmark's custom Return-Path."""
    rule = judged(make_config(tmp_path), Zone({}))["return path aligned with From"]
    assert rule.ok is False and "pm-bounces.example.org" in rule.detail


def test_a_custom_return_path_found_in_dns_aligns(tmp_path: Path) -> None:
    """pm-bounces.<domain> in DNS (a CNAME to Postmark): the return path aligns and SPF is Postmark's;
    without DNS the rule cannot tell, and says what to look for."""
    config = make_config(tmp_path)
    found = judged(config, Zone({}, a={"pm-bounces.example.org": [RELAY_ADDRESS]}))
    assert found["return path aligned with From"].ok is True
    assert found["SPF names the sending host"].ok is True
    plain, _ = preflight.run_checks(config, ARTICLE, subject="Sleep", html=HTML, text="x", spam=False)
    rule = next(c for c in plain if c.name == sender_rules.RETURN_PATH_RULE)
    assert rule.ok is None and "pm-bounces.example.org" in rule.detail


def test_a_chosen_return_path_domain_is_the_one_judged(tmp_path: Path) -> None:
    """`bounces.return_path_domain` (a per-recipient return path) is where SPF is asked and what must
    align, through an SMTP relay; an HTTP provider such as Postmark keeps its own envelope sender."""
    config = make_config(tmp_path, provider="smtp", relay="relay.example.net")
    config = dataclasses.replace(config, values={**config.values, "bounces.return_path_domain": "bounces.example.org"})
    zone = Zone({"bounces.example.org": [["v=spf1 a:relay.example.net -all"]]},
                a={"relay.example.net": [RELAY_ADDRESS]})
    found = judged(config, zone)
    assert found["return path aligned with From"].ok is True
    assert found["SPF names the sending host"].ok is True
    assert "bounces.example.org" in found["SPF names the sending host"].detail
    postmark = make_config(tmp_path)
    postmark = dataclasses.replace(postmark, values={**postmark.values, "bounces.return_path_domain": "b.example.org"})
    assert sender_rules.sender_setup(postmark, None).return_path == "pm.mtasv.net"  # Postmark keeps its own


def test_one_click_unsubscribe_is_read_from_the_message(tmp_path: Path) -> None:
    """Both headers, with an https address, in the message as it leaves; over http one-click is refused."""
    assert judged(make_config(tmp_path), Zone({}))["one-click unsubscribe"].ok is True
    plain = make_config(tmp_path, url="http://example.org/")
    rule = judged(plain, Zone({}))["one-click unsubscribe"]
    assert rule.ok is False and "https" in rule.detail


def test_a_signature_that_leaves_out_the_one_click_header_is_named(
    tmp_path: Path, key_file: tuple[Path, str]
) -> None:
    """RFC 8058 wants both one-click headers under the DKIM signature: publisher's own covers them;
    one whose h= leaves List-Unsubscribe-Post out is named."""
    config = make_config(tmp_path, dkim_domain="example.org", key=key_file[0])
    message = preflight.sent_message(config, DkimSigner.from_config(config), "Sleep", HTML, "x /unsubscribe/t")
    assert message is not None and b"DKIM-Signature" in message
    assert sender_rules.one_click_rule(message).ok is True
    narrowed = message.replace(b":list-unsubscribe-post", b"", 1).replace(b":List-Unsubscribe-Post", b"", 1)
    assert narrowed != message
    rule = sender_rules.one_click_rule(narrowed)
    assert rule.ok is False and "RFC 8058" in rule.detail


def test_without_lookups_only_what_the_config_tells_is_judged(tmp_path: Path, key_file: tuple[Path, str]) -> None:
    """A plain check asks DNS nothing: DKIM's and the return path's alignment and one-click are judged,
    SPF and DMARC wait for the deep check."""
    config = make_config(tmp_path, dkim_domain="example.org", key=key_file[0])
    found, _ = preflight.run_checks(config, ARTICLE, subject="Sleep", html=HTML, text="x", spam=False)
    names = {c.name for c in found if c.name.startswith("Sender rules")}
    assert names == {sender_rules.DKIM_RULE, sender_rules.RETURN_PATH_RULE, sender_rules.ONE_CLICK_RULE}


def test_the_signature_verifies_against_the_published_key(tmp_path: Path, key_file: tuple[Path, str]) -> None:
    """The sample message the rules read is signed as a send signs it, and an independent
    verifier (dkimpy) accepts it with the key the loopback DNS publishes: DKIM passes."""
    config = make_config(tmp_path, sender="Dana <dana@news.example.org>", dkim_domain="example.org",
                         key=key_file[0])
    message = preflight.sent_message(config, DkimSigner.from_config(config), "Sleep", HTML, "Rest. /unsubscribe/t")
    assert message is not None
    zone = Zone({"news._domainkey.example.org": [[key_file[1][:200], key_file[1][200:]]]})
    with dns_server(zone) as resolver:
        looked = sender_rules.LiveDns(resolver)

        def txt(name: bytes, timeout: int = 5) -> bytes:
            return "".join(looked.txt(name.decode().rstrip(".")) or []).encode()

        assert dkim.verify(message, dnsfunc=txt)
        found, _ = preflight.run_checks(config, ARTICLE, subject="Sleep", html=HTML, text="x", spam=False,
                                        lookups=True, resolver=resolver)
    rule = next(c for c in found if c.name == sender_rules.DKIM_RULE)
    assert rule.ok is True and "d=example.org" in rule.detail


def test_the_spam_check_and_doctor_read_a_name_with_a_comma(tmp_path: Path) -> None:
    """“Dana Reyes, LCSW <dana@example.org>” is one mailbox: SpamAssassin's copy has that From,
    and doctor's sending domain is example.org (parseaddr read it as the name “Dana”)."""
    config = make_config(tmp_path, sender='Dana Reyes, LCSW <dana@example.org>')
    sample = BytesParser(policy=default_policy).parsebytes(preflight._message(config, "Sleep", HTML, "x"))
    assert sample["From"].addresses[0].addr_spec == "dana@example.org"
    assert sample["From"].addresses[0].display_name == "Dana Reyes, LCSW"
    assert doctor._sending_domain(config) == "example.org"


def test_doctor_names_each_broken_rule_with_its_fix(tmp_path: Path, key_file: tuple[Path, str]) -> None:
    """Against live DNS, a rule broken is a failure whose fix says what to publish."""
    config = make_config(tmp_path, provider="resend", dkim_domain="example.net", key=key_file[0])
    zone = Zone({"send.example.org": [["v=spf1 mx ~all"]]})
    with dns_server(zone) as resolver:
        found = {f.name: f for f in doctor.sender_rule_findings(config, resolver)}
    assert found[sender_rules.SPF_RULE].status == "fail"
    assert "include:amazonses.com" in found[sender_rules.SPF_RULE].fix
    assert found[sender_rules.DKIM_RULE].status == "fail"
    assert found[sender_rules.DMARC_RULE].status == "fail"
    assert "_dmarc.example.org" in found[sender_rules.DMARC_RULE].fix
    assert found[sender_rules.ONE_CLICK_RULE].status == "ok"


# The complaint rate and the stop it puts on a new send


COMPLAINT_ARTICLE = """---
title: Sleep after a loss
date: 2026-01-05 08:00
tags: [sleep]
---

Grief changes sleep. Here is what helps.
"""
SLUG = "sleep-after-a-loss"


def seed_history(db: sa.Engine, *, accepted: int, complaints: int, now: datetime) -> None:
    """A past issue ten days before `now`: `accepted` copies the provider took, `complaints` readers complaining."""
    with db.begin() as conn:
        issue_id = conn.execute(sa.insert(issues_table).values(
            key="past-issue", kind="article", slug="past", subject="Past", html="", text="", status="done",
            created_at=now - timedelta(days=10),
        )).inserted_primary_key[0]
        conn.execute(sa.insert(deliveries_table), [
            {"issue_id": issue_id, "email": f"past{n}@example.org", "state": "sent", "attempts": 1,
             "not_before": now - timedelta(days=10), "sent_at": now - timedelta(days=10)}
            for n in range(accepted)
        ])
        if complaints:
            conn.execute(sa.insert(events_table), [
                {"email": f"past{n}@example.org", "kind": "complaint", "provider": "postmark",
                 "detail": "spam report", "created_at": now - timedelta(days=9), "issue_id": issue_id}
                for n in range(complaints)
            ])


class Publication:
    """A publication on the Maildir demo with three readers, and a past issue whose figures
    make the complaint rate over the last 30 days."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        quick_hashes(monkeypatch)
        self.config = make_publication(root)
        (root / "content").mkdir()
        (root / "content" / f"2026-01-05-{SLUG}.md").write_text(COMPLAINT_ARTICLE, encoding="utf-8")
        add_users(self.config)
        self.db = open_store(self.config.store_url)
        now = datetime.now(UTC)
        for n in range(3):
            subscriber_store.add(self.db, f"reader{n}@example.org", now=now)

    def history(self, *, accepted: int, complaints: int) -> None:
        """A past issue, ten days ago: `accepted` copies taken by the provider, `complaints` readers complaining."""
        seed_history(self.db, accepted=accepted, complaints=complaints, now=datetime.now(UTC))

    def queued(self) -> int:
        """Copies of the article's issue in the ledger (0: nothing was queued)."""
        with self.db.connect() as conn:
            return int(conn.execute(
                sa.select(sa.func.count()).select_from(deliveries_table.join(
                    issues_table, issues_table.c.id == deliveries_table.c.issue_id))
                .where(issues_table.c.slug == SLUG)
            ).scalar_one())

    def issue_id(self) -> int:
        with self.db.connect() as conn:
            return int(conn.execute(sa.select(issues_table.c.id).where(issues_table.c.slug == SLUG)).scalar_one())

    def cli(self, *args: str) -> Result:
        env = {"PUBLISHER_CONFIG": str(self.config.root / "config.toml"), "PUBLISHER_SECRET": SECRET}
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def publication(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Publication]:
    made = Publication(tmp_path, monkeypatch)
    yield made
    made.db.dispose()


def test_the_rate_is_judged_from_a_thousand_messages() -> None:
    """0.1% warns, 0.3% stops; under 1,000 messages any rate is shown and never judged."""
    assert complaints.ComplaintRate(1, 1000, "x").level == "warn"
    assert complaints.ComplaintRate(3, 1000, "x").level == "stop"
    assert complaints.ComplaintRate(0, 1000, "x").level == "ok"
    assert complaints.ComplaintRate(50, 999, "x").level == "unjudged"
    assert "0.30%" in complaints.ComplaintRate(3, 1000, "the last 30 days").in_words()


def test_the_command_line_send_stops_at_the_stop_rate(publication: Publication) -> None:
    """3 complaints in 1,000 messages: `publisher send` names the rate and the way round it; nothing is queued."""
    publication.history(accepted=1000, complaints=3)
    result = publication.cli("send", SLUG, "--yes")
    assert result.exit_code == 1
    assert "0.30%" in result.output and "--despite-complaints" in result.output
    assert publication.queued() == 0
    assert outbox(publication.config) == []


def test_a_dry_run_says_a_send_would_be_stopped(publication: Publication) -> None:
    """--dry-run names the rate and that a send would stop, and writes nothing."""
    publication.history(accepted=1000, complaints=3)
    result = publication.cli("send", SLUG, "--dry-run")
    assert result.exit_code == 0
    assert "complaint rate 0.30%" in result.output and "would be stopped" in result.output
    assert publication.queued() == 0


def test_the_command_line_override_sends_and_is_recorded(publication: Publication) -> None:
    """--despite-complaints sends to every reader and keeps who chose it, and the rate then, with the issue."""
    publication.history(accepted=1000, complaints=3)
    result = publication.cli("send", SLUG, "--yes", "--despite-complaints")
    assert result.exit_code == 0, result.output
    assert publication.queued() == 3
    (override,) = complaints.issue_overrides(publication.db, publication.issue_id())
    assert "publisher send --despite-complaints" in override.who and "0.30%" in override.detail


def test_below_the_minimum_volume_a_high_rate_never_stops(publication: Publication) -> None:
    """10 complaints in 999 messages (1%) are too few messages to judge: the send goes, nothing recorded."""
    publication.history(accepted=999, complaints=10)
    result = publication.cli("send", SLUG, "--yes")
    assert result.exit_code == 0, result.output
    assert publication.queued() == 3
    assert complaints.issue_overrides(publication.db, publication.issue_id()) == []


def test_status_shows_the_rate_over_thirty_days(publication: Publication) -> None:
    """`publisher status` ends with the 30-day rate and says that new sends are stopped."""
    publication.history(accepted=1000, complaints=3)
    result = publication.cli("status")
    assert "complaint rate 0.30%: 3 complaints in 1,000 messages" in result.output
    assert "new sends are stopped" in result.output


def test_doctor_reads_the_rate_without_writing(publication: Publication) -> None:
    """publisher doctor fails at 0.3% over 30 days, with what to do, from the SQLite store read-only."""
    publication.history(accepted=1000, complaints=3)
    (found,) = doctor._complaints(publication.config, datetime.now(UTC))
    assert found.status == "fail" and "0.30%" in found.detail and "new sends stop" in found.fix
    assert doctor.complaint_finding(complaints.ComplaintRate(1, 1000, "x")).status == "warn"
    assert doctor.complaint_finding(complaints.ComplaintRate(9, 999, "x")).status == "ok"


def test_scheduling_on_the_command_line_warns_of_the_hold_to_come(publication: Publication) -> None:
    """`publisher schedule` at 0.3% schedules, and says the start will be held unless the rate falls."""
    publication.history(accepted=1000, complaints=3)
    result = publication.cli("schedule", SLUG, "--at", "2099-01-01 09:00")
    assert result.exit_code == 0 and "scheduled #" in result.output
    assert "the send is held at its start" in result.output and "--despite-complaints" in result.output


def test_the_daemons_digest_waits_while_the_rate_stops_sends(tmp_path: Path) -> None:
    """A digest due at 0.3% sends nothing and keeps its articles; once the complaints are older
    than 30 days the next digest carries them."""
    pub = JobsPub(tmp_path, policy="digest")
    jobs.publish_new(pub.key)
    pub.write("2026-11-18-first-thing.md", job_article("first-thing", "2026-11-18"))
    jobs.publish_new(pub.key)
    seed_history(pub.db, accepted=1000, complaints=3, now=pub.clock.now)
    assert jobs.digest(pub.key) is None
    assert pub.messages() == []
    pub.clock.now += timedelta(days=31)
    assert jobs.digest(pub.key) is not None
    assert len(pub.messages()) == 3 and "First Thing" in pub.messages()[0].get_body(("plain",)).get_content()


def test_the_desk_stops_the_send_and_only_an_owner_may_override(publication: Publication) -> None:
    """The confirm page names the rate; an editor gets no box and cannot send; an owner who
    confirms without the box is asked again (409), with it the issue is queued and the choice kept."""
    publication.history(accepted=1000, complaints=3)
    path = f"/desk/articles/{SLUG}/send"
    with live_server(create_app(publication.config)) as base:
        with httpx.Client(base_url=base) as editor:
            sign_in(editor, "editor@example.org")
            csrf = csrf_of(editor.get("/desk/").text)
            ask = editor.post(path, data={"csrf": csrf})
            assert "0.30%" in ask.text and "despite_complaints" not in ask.text
            refused = editor.post(path, data={"csrf": csrf, "confirm": "3", "despite_complaints": "on"})
            assert refused.status_code == 409 and publication.queued() == 0
            assert "Only an owner of this desk can send it anyway" in refused.text
        with httpx.Client(base_url=base) as owner:
            sign_in(owner, "owner@example.org")
            csrf = csrf_of(owner.get("/desk/").text)
            ask = owner.post(path, data={"csrf": csrf})
            assert 'name="despite_complaints"' in ask.text and "I understand that" in ask.text
            unticked = owner.post(path, data={"csrf": csrf, "confirm": "3"})
            assert unticked.status_code == 409 and "Nothing was sent" in unticked.text
            assert publication.queued() == 0
            sent = owner.post(path, data={"csrf": csrf, "confirm": "3", "despite_complaints": "on"})
            assert sent.status_code == 303
            page = owner.get(sent.headers["location"]).text
            home = owner.get("/desk/").text
    assert publication.queued() == 3
    (override,) = complaints.issue_overrides(publication.db, publication.issue_id())
    assert override.who == "owner@example.org"
    assert "owner@example.org chose" in page
    assert 'id="complaint-rate"' in home and "New sends are stopped" in home


def test_a_schedule_is_held_at_its_start_and_the_owner_told(publication: Publication) -> None:
    """The rate is judged when a scheduled send starts: at 0.3% it is held, nothing queued, and
    the owners get a notice naming the rate; scheduled with the override, it starts."""
    now = datetime.now(UTC)
    at = f"{(now + timedelta(days=1)).astimezone(publication.config.tz):%Y-%m-%d %H:%M}"
    made = scheduling.schedule_send(publication.config, publication.db, SLUG, at=at, now=now)
    publication.history(accepted=1000, complaints=3)
    due = made.schedule.run_at + timedelta(seconds=1)
    started = scheduling.start_schedule(publication.config, publication.db, made.schedule, now=due)
    assert started.held and "0.30%" in started.held and started.queued == 0
    assert publication.queued() == 0
    (notice,) = [m for m in outbox(publication.config) if str(m["Subject"]).startswith("Held:")]
    assert notice["To"] == "owner@example.org" and "0.30%" in notice.get_body(("plain",)).get_content()
    again = scheduling.schedule_send(publication.config, publication.db, SLUG, at=at, now=now,
                                     despite_complaints=True, who="owner@example.org")
    done = scheduling.start_schedule(publication.config, publication.db, again.schedule, now=due)
    assert not done.held and done.queued == 3


def test_the_api_stops_a_send_unless_told_despite(publication: Publication) -> None:
    """POST /issues/{id}/send: 400 naming the rate; despite_complaints needs an admin key (403 for
    others), and then the issue is queued and the choice recorded under the key's name."""
    publication.history(accepted=1000, complaints=3)
    token = access.create_key(publication.db, "deploy-bot", ["admin"], now=datetime.now(UTC)).token
    writer = access.create_key(publication.db, "writer", ["issues:write"], now=datetime.now(UTC)).token
    client = AppClient(create_app(publication.config, engine=publication.db))
    headers = {"authorization": f"Bearer {token}"}
    made = client.request("POST", "/api/v1/issues", headers=headers, json={"article": SLUG}).json()
    refused = client.request("POST", f"/api/v1/issues/{made['id']}/send", headers=headers)
    assert refused.status_code == 400 and "0.30%" in refused.json()["detail"]
    not_owner = client.request("POST", f"/api/v1/issues/{made['id']}/send", json={"despite_complaints": True},
                               headers={"authorization": f"Bearer {writer}"})
    assert not_owner.status_code == 403 and publication.queued() == 0
    sent = client.request("POST", f"/api/v1/issues/{made['id']}/send", headers=headers,
                          json={"despite_complaints": True})
    assert sent.status_code == 202 and sent.json()["added"] == 3
    (override,) = complaints.issue_overrides(publication.db, made["id"])
    assert override.who == "API key 'deploy-bot'"
