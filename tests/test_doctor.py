"""`publisher doctor` against loopback servers: DNS, a TLS site with a self-signed certificate,
a provider-shaped HTTP API, the daemon's heartbeat, the disk and the backups."""

from __future__ import annotations

import base64
import contextlib
import functools
import ipaddress
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo

import dns.resolver
import httpx
import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from fakes import SMTPServer
from test_preflight import Zone, dns_server

from publisher.cli import cli
from publisher.cli import doctor as doctor_cli
from publisher.config import Config, parse_config
from publisher.schedule import heartbeat
from publisher.services import doctor
from publisher.services.doctor import Finding, diagnose

NOW = datetime.now(UTC)
DOMAIN = "notes.example.org"
TOKEN = "server-token-1"
SECRET = "s" * 40


def certificate(folder: Path, *, days: float, name: str = "cert") -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 that ends `days` from now."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=30)).not_valid_after(NOW + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


class _Quiet(BaseHTTPRequestHandler):
    answers: ClassVar[dict[str, tuple[int, str]]] = {}
    seen: ClassVar[list[tuple[str, str, dict[str, str]]]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self) -> None:
        self.seen.append((self.command, self.path, dict(self.headers.items())))
        status, body = self.answers.get(self.path, (404, "{}"))
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer


@contextlib.contextmanager
def http_server(answers: dict[str, tuple[int, str]], tls: tuple[Path, Path] | None = None) -> Iterator[
        tuple[str, list[tuple[str, str, dict[str, str]]]]]:
    """A loopback HTTP(S) server answering `path -> (status, body)`; yields its base URL and the requests seen."""
    handler = type("Handler", (_Quiet,), {"answers": answers, "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://localhost:{server.server_address[1]}", handler.seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A DKIM key file and the p= value of its public half."""
    folder = tmp_path_factory.mktemp("dkim")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (folder / "dkim.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return folder / "dkim.pem", base64.b64encode(public).decode()


def make_config(folder: Path, site: str, provider_url: str, dkim: Path, *, env: dict[str, str] | None = None,
                provider: str = "postmark", extra: str = "") -> Config:
    text = f"""
[publication]
title = "Notes"
url = "{site}/"
postal_address = "1 Quay St, Hull"
[newsletter]
from = "Dana <dana@{DOMAIN}>"
[delivery]
provider = "{provider}"
[delivery.postmark]
base_url = "{provider_url}"
[delivery.sendgrid]
base_url = "{provider_url}"
[delivery.resend]
base_url = "{provider_url}"
[delivery.dkim]
domain = "{DOMAIN}"
selector = "news"
private_key_file = "{dkim}"
{extra}"""
    (folder / "config.toml").write_text(text, encoding="utf-8")
    return parse_config(text, root=folder, env={"PUBLISHER_POSTMARK_TOKEN": TOKEN, "PUBLISHER_SECRET": SECRET}
                        if env is None else env)


def good_zone(p: str) -> Zone:
    return Zone({
        DOMAIN: [["v=spf1 include:spf.mtasv.net ~all"]],
        f"news._domainkey.{DOMAIN}": [[f"v=DKIM1; k=rsa; p={p[:200]}", p[200:]]],
        f"_dmarc.{DOMAIN}": [["v=DMARC1; p=none"]],
    })


def roomy(folder: Path) -> tuple[int, int, int]:
    return (100 * 2**30, 10 * 2**30, 90 * 2**30)


class Live:
    """A publication whose site, provider and DNS are loopback servers, its daemon just seen,
    its disk roomy and its backup fresh: every check passes until a test spoils one."""

    def __init__(self, folder: Path, site: str, ca: Path, provider: str, seen: list, resolver: dns.resolver.Resolver,
                 dkim: Path) -> None:
        self.folder, self.site, self.provider_url, self.seen, self.resolver = folder, site, provider, seen, resolver
        self.dkim = dkim
        self.context = ssl.create_default_context(cafile=str(ca))
        self.config = make_config(folder, site, provider, dkim)
        heartbeat.beat(folder, NOW - timedelta(seconds=30))
        (folder / "backups").mkdir()
        backup = folder / "backups" / "publisher-backup-20261206-033000.tar.gz"
        backup.write_bytes(b"x")
        stamp = (NOW - timedelta(hours=20)).timestamp()
        os.utime(backup, (stamp, stamp))

    def findings(self, config: Config | None = None, **options: object) -> dict[str, Finding]:
        with httpx.Client(timeout=5) as client:
            arguments: dict[str, object] = {
                "resolver": self.resolver, "tls_context": self.context, "client": client, "disk_usage": roomy,
                **options,
            }
            found = diagnose(config or self.config, NOW, **arguments)  # type: ignore[arg-type]
        return {f.name: f for f in found}


@pytest.fixture
def live(tmp_path: Path, dkim_key: tuple[Path, str]) -> Iterator[Live]:
    cert = certificate(tmp_path, days=90)
    answers = {
        "/server": (200, '{"Name": "Notes"}'),
        "/v3/scopes": (200, '{"scopes": ["mail.send"]}'),
        "/domains": (401, '{"name": "restricted_api_key", "message": "This API key is restricted to only send"}'),
        "/v3/domains/mg.example.org": (200, '{"domain": {"name": "mg.example.org"}}'),
        "/v2/email/account": (200, '{"SendingEnabled": true}'),
        "/refusing/server": (401, '{"ErrorCode": 10, "Message": "Bad or missing Server API token."}'),
    }
    pages = {"/": (200, "hello"), "/subscribe": (200, "<form>")}
    with http_server(pages, tls=cert) as (site, _), http_server(answers) as (provider, seen), \
            dns_server(good_zone(dkim_key[1])) as resolver:
        yield Live(tmp_path, site, cert[0], provider, seen, resolver, dkim_key[0])


def test_a_sound_setup_passes_every_check(live: Live) -> None:
    """DNS, TLS, the provider's key, the heartbeat, the disk and the backup: all ok, no fix offered."""
    found = live.findings()
    # Postmark's own return path is the one rule left: DKIM carries DMARC, so it is worth a look only.
    own_return_path = "Sender rules: return path aligned with From"
    assert {name: f.status for name, f in found.items() if f.status != "ok"} == {own_return_path: "warn"}
    assert all(not f.fix for n, f in found.items() if n != own_return_path)
    assert {n.split(":")[0] for n in found} == {
        "DNS", "Sender rules", "TLS", "App", "Provider", "Link secret", "Daemon", "Disk", "Backups",
    }


def test_the_provider_check_sends_nothing(live: Live) -> None:
    """Postmark is asked for its server's settings with the token; no send endpoint is called."""
    live.findings()
    assert [(method, path) for method, path, _ in live.seen] == [("GET", "/server")]
    assert live.seen[0][2]["X-Postmark-Server-Token"] == TOKEN


def test_a_refused_key_fails_and_says_which_variable(live: Live) -> None:
    """A 401 from the provider: fail, naming the environment variable to set."""
    live.seen.clear()
    config = make_config(live.folder, live.site, live.provider_url + "/refusing", live.dkim)
    found = live.findings(config)["Provider: postmark"]
    assert found.status == "fail" and "refuses the key (401)" in found.detail
    assert "PUBLISHER_POSTMARK_TOKEN" in found.fix


def test_a_missing_key_fails_naming_it(live: Live) -> None:
    """No token in the environment: fail, naming PUBLISHER_POSTMARK_TOKEN, and nothing is asked."""
    live.seen.clear()
    config = make_config(live.folder, live.site, live.provider_url, live.dkim, env={})
    found = live.findings(config)["Provider: postmark"]
    assert found.status == "fail" and "PUBLISHER_POSTMARK_TOKEN is not set" in found.detail
    assert live.seen == []


def test_missing_records_fail_with_the_record_to_publish(live: Live, dkim_key: tuple[Path, str]) -> None:
    """No SPF, no DMARC, another DKIM key: each fails, and the fix is the record to publish."""
    zone = Zone({f"news._domainkey.{DOMAIN}": [["v=DKIM1; k=rsa; p=AAAA"]]})
    with dns_server(zone) as resolver:
        found = live.findings(resolver=resolver)
    spf, dkim, dmarc = (found[f"DNS: {k}"] for k in (
        f"SPF ({DOMAIN})", f"DKIM (news._domainkey.{DOMAIN})", f"DMARC (_dmarc.{DOMAIN})"))
    assert (spf.status, dkim.status, dmarc.status) == ("fail", "fail", "fail")
    assert spf.fix.startswith(f"publish a TXT record at {DOMAIN}: v=spf1")
    assert dkim_key[1] in dkim.fix
    assert dmarc.fix.startswith(f"publish a TXT record at _dmarc.{DOMAIN}: v=DMARC1")


def test_spf_without_the_providers_include_is_a_warning(live: Live, dkim_key: tuple[Path, str]) -> None:
    """An SPF record that does not include Postmark's: warn, saying which include to add."""
    zone = good_zone(dkim_key[1])
    zone.records[DOMAIN] = [["v=spf1 mx ~all"]]
    with dns_server(zone) as resolver:
        spf = live.findings(resolver=resolver)[f"DNS: SPF ({DOMAIN})"]
    assert spf.status == "warn" and "include:spf.mtasv.net" in spf.fix


def test_a_silent_dns_server_is_told_within_the_deadline(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """A DNS server that never answers: each record is a warning, all within the deadline."""
    monkeypatch.setattr(doctor.preflight, "DNS_TIMEOUT", 0.3)
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = 9  # discard: nothing answers
    started = time.monotonic()
    found = live.findings(resolver=resolver)
    assert time.monotonic() - started < 5
    assert all(f.status == "warn" for n, f in found.items() if n.startswith("DNS:"))


@pytest.mark.parametrize(("days", "status", "words"), [
    (5, "warn", "ends in 4 days"), (-2, "fail", "certificate has expired"),
])
def test_a_certificate_near_or_past_its_end(live: Live, tmp_path: Path, days: float, status: str, words: str) -> None:
    """Under 14 days left: warn; past its end: fail (browsers refuse it)."""
    cert = certificate(tmp_path, days=days, name="short")
    with http_server({}, tls=cert) as (site, _):
        config = make_config(live.folder, site, live.provider_url, live.dkim)
        context = ssl.create_default_context(cafile=str(cert[0]))
        found = live.findings(config, tls_context=context)[f"TLS: {site}/"]
    assert found.status == status and words in found.detail
    assert "certbot" in found.fix


def test_an_untrusted_certificate_fails(live: Live) -> None:
    """A self-signed certificate that no browser trusts: fail, with why."""
    found = live.findings(tls_context=ssl.create_default_context())[f"TLS: {live.site}/"]
    assert found.status == "fail" and "self-signed" in found.detail


def test_a_plain_http_address_fails(live: Live) -> None:
    """publication.url on http://: fail, pointing at https."""
    config = make_config(live.folder, live.provider_url, live.provider_url, live.dkim)
    found = live.findings(config)[f"TLS: {live.provider_url}/"]
    assert found.status == "fail" and "https" in found.fix


def test_a_daemon_not_seen_lately_fails(live: Live) -> None:
    """A heartbeat ten minutes old: the daemon is down; the fix says how to start it."""
    heartbeat.beat(live.folder, NOW - timedelta(minutes=10))
    found = live.findings()["Daemon"]
    assert found.status == "fail" and "10 min ago" in found.detail and "systemctl start" in found.fix


def test_when_the_daemon_was_last_seen_is_on_the_publications_clock() -> None:
    """The last heartbeat is told as the author's watch read it, the zone named, not in UTC."""
    last = datetime(2026, 12, 7, 14, 3, tzinfo=UTC)
    found = doctor.heartbeat_finding(last, last + timedelta(hours=1), ZoneInfo("America/New_York"))
    assert found.status == "fail" and "(2026-12-07 09:03 America/New York)" in found.detail


def test_a_daemon_never_started_fails(live: Live) -> None:
    """No heartbeat at all: publisher serve never ran in this folder."""
    (live.folder / heartbeat.HEARTBEAT_FILE).unlink()
    assert live.findings()["Daemon"].status == "fail"


def test_the_daemon_beats_until_stopped(tmp_path: Path) -> None:
    """keep_beating writes the time at once and stops when told."""
    stop = threading.Event()
    thread = heartbeat.keep_beating(tmp_path, stop, lambda: NOW, every=0.05)
    time.sleep(0.2)
    stop.set()
    thread.join(2)
    assert not thread.is_alive()
    assert heartbeat.last_beat(tmp_path) == NOW
    assert json.loads((tmp_path / heartbeat.HEARTBEAT_FILE).read_text())["pid"] == os.getpid()


def test_a_nearly_full_disk_fails(live: Live) -> None:
    """Under 500 MB free where the publication lives: fail."""
    found = live.findings(disk_usage=lambda folder: (20 * 2**30, 20 * 2**30 - 2**28, 2**28))
    assert found["Disk: publication folder"].status == "fail"
    assert "0.2 GB free" in found["Disk: publication folder"].detail


def test_no_backup_is_a_warning_and_an_old_one_fails(live: Live) -> None:
    """No archive yet: warn (run publisher backup); ten days old: fail."""
    backup = next((live.folder / "backups").iterdir())
    stamp = (NOW - timedelta(days=10)).timestamp()
    os.utime(backup, (stamp, stamp))
    old = live.findings()["Backups"]
    assert old.status == "fail" and "10 days old" in old.detail
    backup.unlink()
    none = live.findings()["Backups"]
    assert none.status == "warn" and "publisher backup" in none.fix


def test_the_command_prints_each_fix_and_exits_1_on_a_failure(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """publisher doctor: one line a check, the fix under a failing one, exit code 1."""
    (live.folder / heartbeat.HEARTBEAT_FILE).unlink()
    client = httpx.Client(timeout=5)
    monkeypatch.setattr(doctor_cli, "diagnose", functools.partial(
        diagnose, resolver=live.resolver, tls_context=live.context, client=client, disk_usage=roomy))
    monkeypatch.setenv("PUBLISHER_POSTMARK_TOKEN", TOKEN)
    monkeypatch.setenv("PUBLISHER_SECRET", SECRET)
    result = CliRunner().invoke(cli, ["--config", str(live.folder / "config.toml"), "doctor"])
    client.close()
    assert result.exit_code == 1, result.output
    assert "fail  Daemon: publisher serve has not run in this folder" in result.output
    assert "      fix: start it: systemctl start publisher" in result.output
    assert "ok    Provider: postmark" in result.output
    heartbeat.beat(live.folder, datetime.now(UTC))
    client = httpx.Client(timeout=5)
    monkeypatch.setattr(doctor_cli, "diagnose", functools.partial(
        diagnose, resolver=live.resolver, tls_context=live.context, client=client, disk_usage=roomy))
    again = CliRunner().invoke(cli, ["--config", str(live.folder / "config.toml"), "doctor"])
    client.close()
    assert again.exit_code == 0, again.output


def test_two_spf_records_fail_with_merge_as_the_fix(live: Live, dkim_key: tuple[Path, str]) -> None:
    """Two SPF records make receivers ignore both: the fix is to merge them, not to add a third."""
    zone = good_zone(dkim_key[1])
    zone.records[DOMAIN] = [["v=spf1 include:spf.mtasv.net ~all"], ["v=spf1 mx ~all"]]
    with dns_server(zone) as resolver:
        spf = live.findings(resolver=resolver)[f"DNS: SPF ({DOMAIN})"]
    assert spf.status == "fail" and spf.detail == "2 SPF records"
    assert spf.fix == f"merge them into one TXT record at {DOMAIN}"


@pytest.mark.parametrize(("secret", "words"), [(None, "PUBLISHER_SECRET is not set"), ("short", "is 5 bytes")])
def test_a_missing_or_short_link_secret_fails(live: Live, secret: str | None, words: str) -> None:
    """A real provider without PUBLISHER_SECRET (or with one anyone could guess): fail."""
    env = {"PUBLISHER_POSTMARK_TOKEN": TOKEN, **({"PUBLISHER_SECRET": secret} if secret else {})}
    found = live.findings(make_config(live.folder, live.site, live.provider_url, live.dkim, env=env))["Link secret"]
    assert found.status == "fail" and words in found.detail and "openssl rand -hex 32" in found.fix


def test_the_services_env_file_gives_the_secrets(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """--env-file reads the services' EnvironmentFile: its key is the one checked, not the shell's."""
    monkeypatch.delenv("PUBLISHER_POSTMARK_TOKEN", raising=False)
    monkeypatch.setenv("PUBLISHER_SECRET", "from the shell, too short")
    env_file = live.folder / "env"
    env_file.write_text(
        f"# the services' secrets\nPUBLISHER_SECRET='{SECRET}'\nexport PUBLISHER_POSTMARK_TOKEN={TOKEN}\n"
    )
    heartbeat.beat(live.folder, datetime.now(UTC))  # the command reads the real clock, later than NOW
    client = httpx.Client(timeout=5)
    monkeypatch.setattr(doctor_cli, "diagnose", functools.partial(
        diagnose, resolver=live.resolver, tls_context=live.context, client=client, disk_usage=roomy))
    result = CliRunner().invoke(cli, ["--config", str(live.folder / "config.toml"), "doctor", "--env-file",
                                      str(env_file)])
    client.close()
    assert result.exit_code == 0, result.output
    assert "ok    Provider: postmark" in result.output
    assert "ok    Link secret: PUBLISHER_SECRET is set (40 bytes)" in result.output


def test_an_unreadable_or_malformed_env_file_is_named(live: Live) -> None:
    """An env file this user cannot read, or with a line that is no NAME=value: told, with the file."""
    missing = CliRunner().invoke(cli, ["--config", str(live.folder / "config.toml"), "doctor", "--env-file",
                                       str(live.folder / "nope")])
    assert missing.exit_code == 1 and "nope: cannot be read" in missing.output and "sudo" in missing.output
    (live.folder / "env").write_text("PUBLISHER_SECRET=x\nthis is not a setting\n")
    bad = CliRunner().invoke(cli, ["--config", str(live.folder / "config.toml"), "doctor", "--env-file",
                                   str(live.folder / "env")])
    assert bad.exit_code == 1 and "env:2: expected NAME=value" in bad.output


@pytest.mark.parametrize(("provider", "env", "extra", "request_line", "auth"), [
    ("sendgrid", {"PUBLISHER_SENDGRID_API_KEY": "SG.k"}, "", "/v3/scopes", "Bearer SG.k"),
    ("resend", {"PUBLISHER_RESEND_API_KEY": "re_k"}, "", "/domains", "Bearer re_k"),
    ("mailgun", {"PUBLISHER_MAILGUN_API_KEY": "key-1"}, 'domain = "mg.example.org"\n', "/v3/domains/mg.example.org",
     "Basic " + base64.b64encode(b"api:key-1").decode()),
    ("ses", {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret"}, 'region = "eu-west-1"\n',
     "/v2/email/account", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
])
def test_each_http_provider_is_asked_with_a_call_that_sends_nothing(
    live: Live, provider: str, env: dict[str, str], extra: str, request_line: str, auth: str,
) -> None:
    """SendGrid's scopes, Resend's domains (a send-only key's refusal proves it too), Mailgun's
    domain, SES's account: one GET each, with the key, and the key is accepted."""
    live.seen.clear()
    table = {"mailgun": f'[delivery.mailgun]\nbase_url = "{live.provider_url}"\n{extra}',
             "ses": f'[delivery.ses]\nendpoint = "{live.provider_url}"\n{extra}'}.get(provider, "")
    config = make_config(live.folder, live.site, live.provider_url, live.dkim, provider=provider,
                         env={**env, "PUBLISHER_SECRET": SECRET}, extra=table)
    found = live.findings(config)[f"Provider: {provider}"]
    assert found.status == "ok", found
    assert [(method, path) for method, path, _ in live.seen] == [("GET", request_line)]
    assert live.seen[0][2]["Authorization"].startswith(auth)


def _smtp_config(live: Live, port: int, password: str) -> Config:
    table = f'[delivery.smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\nusername = "dana"\n'
    return make_config(live.folder, live.site, live.provider_url, live.dkim, provider="smtp", extra=table,
                       env={"PUBLISHER_SMTP_PASSWORD": password, "PUBLISHER_SECRET": SECRET})


class _Users:
    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    def __call__(self, server: object, session: object, envelope: object, mechanism: str,
                 auth_data: object) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        return AuthResult(success=self.users.get(auth_data.login.decode()) == auth_data.password.decode(),
                          handled=False)


@pytest.mark.parametrize(("password", "status", "words"), [
    ("s3cret", "ok", "logged in; nothing was sent"), ("wrong", "fail", "refused the login for 'dana'"),
])
def test_an_smtp_login_ends_before_any_message(live: Live, password: str, status: str, words: str) -> None:
    """A real SMTP server on loopback: the login is tried, the session quits, no message is sent."""
    with SMTPServer(authenticator=_Users({"dana": "s3cret"})) as server:
        found = live.findings(_smtp_config(live, server.port, password))["Provider: smtp"]
        assert server.messages == []
    assert found.status == status and words in found.detail, found


def test_an_smtp_server_that_is_not_there_fails(live: Live) -> None:
    """Nothing listens on the port: fail, naming host and port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    found = live.findings(_smtp_config(live, port, "x"))["Provider: smtp"]
    assert found.status == "fail" and f"cannot connect to 127.0.0.1:{port}" in found.detail


def test_a_proxy_that_cannot_reach_the_daemon_fails(live: Live, tmp_path: Path) -> None:
    """The certificate is fine but the subscribe page answers 502 (the daemon is down or the
    proxy points elsewhere): fail, saying where to look."""
    cert = certificate(tmp_path, days=90, name="gateway")
    with http_server({"/subscribe": (502, "Bad Gateway")}, tls=cert) as (site, _):
        config = make_config(live.folder, site, live.provider_url, live.dkim)
        context = ssl.create_default_context(cafile=str(cert[0]))
        found = live.findings(config, tls_context=context)[f"App: {site}/subscribe"]
    assert found.status == "fail" and "answered 502" in found.detail and "proxy_pass" in found.fix
