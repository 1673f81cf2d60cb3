"""`publisher doctor`: a live setup checked end to end, each finding with what to do.

    DNS          SPF on the sending domain (including the provider's, where it has a
                 known include), DKIM publishing the configured key's public half,
                 DMARC present: the records `mail.preflight` asks for, looked up
    sender rules Gmail's and Yahoo's rules for bulk senders (`mail.sender_rules`) against
                 live DNS: SPF names the sending host, DKIM and the return path align
                 with From, DMARC published and aligned, one-click unsubscribe
    complaints   the complaint rate over 30 days (`services.complaints`), read from a
                 SQLite store without writing: a warning from 0.1%, a failure from 0.3%
    return path  with VERP on (`bounces.return_path_domain`), that domain's MX (bounces
                 reach what reads them) and SPF
    TLS          the public URL's certificate is valid for its host and not within
                 EXPIRY_DAYS of its end (and the app's address, when it is another host)
    app          the subscribe page answers through the public address (the proxy
                 reaches the daemon)
    provider     the provider takes the credentials, through a call that sends nothing
                 (`CREDENTIAL_CHECKS`, one per provider: an account or domain read, or
                 an SMTP login that ends before any envelope)
    secret       PUBLISHER_SECRET set and long enough, for a real provider
    daemon       `publisher serve` beat within HEARTBEAT_LATE (`schedule.heartbeat`)
    disk         free space where the publication and its SQLite store live
    backups      the newest publisher-backup-*.tar.gz in `backup.folder` is recent
    bounces      the bounce mailbox (`bounces.imap.*`), where one is set, takes the
                 login and has its folder (`imap_bounces.NETWORK_SECONDS` a command)

Every finding is ok, warn (works, but look) or fail (readers or mail will suffer: fix
it). Nothing here waits without a deadline: DNS has `preflight.DNS_TIMEOUT` a name,
the TLS handshake, the app's page and the provider's call NETWORK_SECONDS each. Nothing
is sent and nothing is written. The secrets are the services' own when `publisher doctor --env-file`
names their EnvironmentFile (`environment_file` reads it), since the shell that runs the
check seldom has them. `diagnose` is the edge; the judging of each answer is plain
functions of values (`tls_finding`, `disk_finding`, `backup_finding`, ...) so each can
be tested alone, and `now` is passed in.
"""

from __future__ import annotations

import base64
import re
import shutil
import smtplib
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import dns.resolver
import httpx

from publisher.config import Config, sqlite_path
from publisher.errors import ConfigError, PublisherError
from publisher.mail import preflight, sender_rules, tokens
from publisher.mail.dkim_signing import DkimSigner
from publisher.mail.mime import split_mailbox
from publisher.schedule.heartbeat import BEAT_SECONDS, last_beat
from publisher.services import clock, complaints
from publisher.store import glance

__all__ = [
    "BACKUP_PATTERN", "CREDENTIAL_CHECKS", "EXPIRY_DAYS", "Finding", "app_finding", "backup_finding",
    "complaint_finding", "diagnose",
    "disk_finding", "environment_file", "heartbeat_finding", "return_path_finding", "secret_finding",
    "sender_rule_findings", "tls_finding",
]

Status = Literal["ok", "warn", "fail"]
NETWORK_SECONDS = 10.0
"""Deadline of the TLS handshake and of the provider's call, each."""
EXPIRY_DAYS = 14
HEARTBEAT_LATE = timedelta(seconds=3 * BEAT_SECONDS)
DISK_FAIL = 500 * 2**20
DISK_WARN = 2 * 2**30
BACKUP_WARN = timedelta(days=2)
BACKUP_FAIL = timedelta(days=8)
BACKUP_PATTERN = "publisher-backup-*.tar.gz"
SPF_INCLUDES: Mapping[str, str] = {
    "postmark": "spf.mtasv.net",
    "sendgrid": "sendgrid.net",
    "mailgun": "mailgun.org",
    "ses": "amazonses.com",
    "resend": "amazonses.com",
}
"""The SPF include each provider asks for on the domain its mail is sent from."""


@dataclass(frozen=True, slots=True)
class Finding:
    name: str
    status: Status
    detail: str
    fix: str = ""
    """What to do; empty when all is well."""


# DNS


def _sending_domain(config: Config) -> str:
    """The From address's domain, a name with a comma in it read as the author wrote it."""
    address = split_mailbox(str(config["newsletter.from"]))[1]
    return address.rpartition("@")[2].lower()


def dns_findings(config: Config, found: preflight.Lookup, records: Sequence[preflight.DnsRecord]) -> list[Finding]:
    """What DNS said against the records the setup needs, the provider's SPF include too."""
    findings: list[Finding] = []
    provider = str(config["delivery.provider"])
    include = SPF_INCLUDES.get(provider)
    for check, record in zip(_dns_checks(records, found), [r for r in records if r.kind], strict=True):
        if check.ok is None:
            status: Status = "warn"
            fix = f"compare {record.name} with the record your provider shows" if record.kind == "DKIM" else \
                "run publisher doctor again once DNS answers"
        elif check.ok:
            status, fix = "ok", ""
        elif "merge" in check.detail:
            status, fix = "fail", f"merge them into one TXT record at {record.name}"
        else:
            status, fix = "fail", f"publish a TXT record at {record.name}: {record.value}"
        if record.kind == "SPF" and status == "ok" and include is not None:
            texts = [t for t in (found.get(record.name) or []) if t.lower().startswith("v=spf1")]
            if texts and f"include:{include}" not in texts[0].lower():
                status = "warn"
                fix = (f"add include:{include} to the SPF record at {record.name} (before ~all), unless "
                       f"{provider} sends from a return-path domain of its own that you set up")
        # preflight's words end with the record to publish; the fix says it here.
        detail = check.detail.split(": ", 1)[0] if status == "fail" else check.detail
        findings.append(Finding(check.name, status, detail, fix))
    return findings


def _dns_checks(records: Sequence[preflight.DnsRecord], found: preflight.Lookup) -> list[preflight.Check]:
    return preflight.dns_checks([r for r in records if r.kind], found)


def _dns(config: Config, resolver: dns.resolver.Resolver | None) -> list[Finding]:
    try:
        signer = DkimSigner.from_config(config)
    except PublisherError as exc:
        return [Finding("DNS: DKIM", "fail", str(exc), "fix [delivery.dkim] in config.toml")]
    records = preflight.dns_records(config, signer)
    if str(config["delivery.provider"]) == "mailgun" and config["delivery.mailgun.domain"]:
        # Mailgun sends from its own sending domain: that is where SPF must include it.
        domain = str(config["delivery.mailgun.domain"]).lower()
        records = [
            preflight.DnsRecord(domain, r.type, r.value, r.why, r.kind) if r.kind == "SPF" else r for r in records
        ]
    names = [r.name for r in records if r.kind and not r.value.startswith("(")]
    return dns_findings(config, preflight.look_up(names, resolver), records)


def sender_rule_findings(config: Config, resolver: dns.resolver.Resolver | None = None) -> list[Finding]:
    """Gmail's and Yahoo's rules for bulk senders against live DNS (none for the maildir demo):
    a rule broken is a failure (their filters send such mail to spam), one that cannot be
    judged from here (the provider signs, DNS did not answer) a warning."""
    if str(config["delivery.provider"]) == "maildir" or not _sending_domain(config):
        return []
    try:
        signer = DkimSigner.from_config(config)
    except PublisherError:
        return []  # the DNS findings name the broken [delivery.dkim] already
    published: bool | None = None
    if signer is not None:
        records = [r for r in preflight.dns_records(config, signer) if r.kind == "DKIM"]
        checks = preflight.dns_checks(records, preflight.look_up([r.name for r in records], resolver))
        verdicts = [c.ok for c in checks]
        published = False if False in verdicts else (True if verdicts and all(verdicts) else None)
    message = preflight.sent_message(
        config, signer, "publisher doctor", "<p>A sample.</p>", "A sample.",
    )
    findings = []
    checks = preflight.sender_rule_checks(
        config, signer, message, sender_rules.LiveDns(resolver, timeout=preflight.DNS_TIMEOUT), dkim_published=published
    )
    dmarc_passes = any(c.ok for c in checks if c.name == sender_rules.DMARC_RULE)
    for check in checks:
        if check.ok:
            findings.append(Finding(check.name, "ok", check.detail))
            continue
        said, _, fix = check.detail.partition(": ")
        # A return path of the provider's own breaks no rule while DKIM carries DMARC: worth fixing, no more.
        soft = check.ok is None or (check.name == sender_rules.RETURN_PATH_RULE and dmarc_passes)
        status: Status = "warn" if soft else "fail"
        findings.append(Finding(check.name, status, said if fix else check.detail, fix.rstrip(".")))
    return findings


def complaint_finding(rate: complaints.ComplaintRate) -> Finding:
    """The complaint rate over the last 30 days: a warning from 0.1%, a failure from 0.3%
    (new sends stop), judged only from `complaints.MIN_MESSAGES` messages."""
    name = "Complaints"
    why = ("find out why readers complain: mail only people who asked, say who you are in the From name, "
           "keep the unsubscribe link plain")
    if rate.level == "stop":
        return Finding(name, "fail", rate.in_words(), why + "; new sends stop until an owner sends despite it")
    if rate.level == "warn":
        return Finding(name, "warn", rate.in_words(), why)
    return Finding(name, "ok", rate.in_words())


def _complaints(config: Config, now: datetime) -> list[Finding]:
    """The rate read from a SQLite store without writing (none for a store only the daemon can open)."""
    figures = glance.complaint_figures(config.store_url, since=now - complaints.WINDOW, until=now)
    if figures is None or not figures[0]:
        return []
    accepted, complained = figures
    rate = complaints.ComplaintRate(complained, accepted, f"the last {complaints.WINDOW.days} days")
    return [complaint_finding(rate)]


# TLS


def tls_finding(url: str, not_after: datetime | None, problem: str, now: datetime) -> Finding:
    """The certificate of `url`: its end (None when the handshake failed, with `problem`)."""
    name = f"TLS: {url}"
    renew = "Caddy renews its certificates itself; with nginx, check that certbot's timer runs (certbot renew)"
    if not_after is None:
        return Finding(name, "fail", problem, "point the name at this server and let Caddy fetch a certificate, "
                       "or install one for nginx (certbot --nginx)")
    left = not_after - now
    if left <= timedelta(0):
        return Finding(name, "fail", f"the certificate ended on {not_after:%Y-%m-%d}", renew)
    if left < timedelta(days=EXPIRY_DAYS):
        return Finding(name, "warn", f"the certificate ends in {left.days} days ({not_after:%Y-%m-%d})", renew)
    return Finding(name, "ok", f"valid until {not_after:%Y-%m-%d} ({left.days} days)")


def _certificate_end(url: str, context: ssl.SSLContext | None) -> tuple[datetime | None, str]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or 443
    context = context or ssl.create_default_context()
    try:
        with socket.create_connection((host, port), timeout=NETWORK_SECONDS) as raw, \
                context.wrap_socket(raw, server_hostname=host) as tls:
            cert = tls.getpeercert()
    except ssl.SSLCertVerificationError as exc:
        return None, f"the certificate is refused: {exc.verify_message or exc.reason}"
    except (OSError, ssl.SSLError) as exc:
        return None, f"no TLS answer from {host}:{port} within {NETWORK_SECONDS:g} s ({exc})"
    end = str((cert or {}).get("notAfter", ""))
    if not end:
        return None, "the server showed no certificate"
    return datetime.fromtimestamp(ssl.cert_time_to_seconds(end), UTC), ""


def _tls(config: Config, now: datetime, context: ssl.SSLContext | None) -> list[Finding]:
    urls = list(dict.fromkeys([config.site_url + "/", config.public_url + "/"]))
    hosts: dict[tuple[str | None, int | None], str] = {}
    for url in urls:
        parts = urlsplit(url)
        hosts.setdefault((parts.hostname, parts.port), url)
    findings = []
    for url in hosts.values():
        if urlsplit(url).scheme != "https":
            findings.append(Finding(
                f"TLS: {url}", "fail", "the address is plain http: sign-ins and subscriber data cross the network "
                "unencrypted", "serve it over https (deploy/Caddyfile does it for you) and set publication.url to "
                "https://...",
            ))
            continue
        not_after, problem = _certificate_end(url, context)
        findings.append(tls_finding(url, not_after, problem, now))
    if all(f.status != "fail" for f in findings):
        findings.append(_app_answers(config.public_url + "/subscribe", context))
    return findings


def app_finding(url: str, status: int | None, problem: str = "") -> Finding:
    """What the app's subscribe page answered through the public address (None: no answer)."""
    name = f"App: {url}"
    fix = ("check that publisher serve runs (systemctl status publisher) and that the proxy's "
           "reverse_proxy / proxy_pass names server.port")
    if status is None:
        return Finding(name, "fail", problem, fix)
    if status == 200:
        return Finding(name, "ok", "the subscribe page answers through the public address")
    return Finding(name, "fail", f"answered {status} instead of the subscribe page", fix)


def _app_answers(url: str, context: ssl.SSLContext | None) -> Finding:
    try:
        with httpx.Client(verify=context or True, timeout=NETWORK_SECONDS, follow_redirects=True) as client:
            return app_finding(url, client.get(url).status_code)
    except httpx.HTTPError as exc:
        return app_finding(url, None, f"no answer within {NETWORK_SECONDS:g} s ({exc})")


# The provider's credentials


def _secret(config: Config, name: str) -> str:
    value = config.secret(name)
    if not value:
        raise ConfigError(f"{name} is not set: export it (or put it in the service's EnvironmentFile)")
    return value


def _http_answer(provider: str, secret_name: str, response: httpx.Response, *, restricted: bool = False) -> Finding:
    name = f"Provider: {provider}"
    if response.status_code < 300 or restricted:
        return Finding(name, "ok", f"{provider} accepts the key (checked with a call that sends nothing)")
    if response.status_code in (401, 403):
        return Finding(name, "fail", f"{provider} refuses the key ({response.status_code})",
                       f"set {secret_name} to a current key from {provider}'s dashboard and restart the services")
    return Finding(name, "warn", f"{provider} answered {response.status_code} to a call that sends nothing",
                   "try again in a while; if it stays, look at the provider's status page")


def _postmark(config: Config, client: httpx.Client) -> Finding:
    token = _secret(config, "PUBLISHER_POSTMARK_TOKEN")
    base = str(config["delivery.postmark.base_url"]).rstrip("/")
    response = client.get(f"{base}/server", headers={"X-Postmark-Server-Token": token, "Accept": "application/json"})
    return _http_answer("postmark", "PUBLISHER_POSTMARK_TOKEN", response)


def _sendgrid(config: Config, client: httpx.Client) -> Finding:
    key = _secret(config, "PUBLISHER_SENDGRID_API_KEY")
    base = str(config["delivery.sendgrid.base_url"]).rstrip("/")
    response = client.get(f"{base}/v3/scopes", headers={"Authorization": f"Bearer {key}"})
    return _http_answer("sendgrid", "PUBLISHER_SENDGRID_API_KEY", response)


def _mailgun(config: Config, client: httpx.Client) -> Finding:
    key = _secret(config, "PUBLISHER_MAILGUN_API_KEY")
    domain = str(config["delivery.mailgun.domain"])
    if not domain:
        raise ConfigError("[delivery.mailgun] domain is empty: set it to your Mailgun sending domain")
    base = str(config["delivery.mailgun.base_url"]).rstrip("/")
    token = base64.b64encode(f"api:{key}".encode()).decode("ascii")
    response = client.get(f"{base}/v3/domains/{quote(domain, safe='')}", headers={"Authorization": f"Basic {token}"})
    if response.status_code == 404:
        return Finding("Provider: mailgun", "fail", f"Mailgun has no domain {domain!r} for this key",
                       "set [delivery.mailgun] domain to a domain listed in Mailgun (Sending > Domains)")
    return _http_answer("mailgun", "PUBLISHER_MAILGUN_API_KEY", response)


def _resend(config: Config, client: httpx.Client) -> Finding:
    key = _secret(config, "PUBLISHER_RESEND_API_KEY")
    base = str(config["delivery.resend.base_url"]).rstrip("/")
    response = client.get(f"{base}/domains", headers={"Authorization": f"Bearer {key}"})
    # A key limited to sending may not list domains: Resend says so by name, which proves the key.
    restricted = response.status_code == 401 and "restricted_api_key" in response.text
    return _http_answer("resend", "PUBLISHER_RESEND_API_KEY", response, restricted=restricted)


def _ses(config: Config, client: httpx.Client) -> Finding:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    access, secret = _secret(config, "AWS_ACCESS_KEY_ID"), _secret(config, "AWS_SECRET_ACCESS_KEY")
    region = str(config["delivery.ses.region"]) or config.secret("AWS_REGION") or ""
    if not region:
        raise ConfigError("no SES region: set [delivery.ses] region or AWS_REGION")
    endpoint = str(config["delivery.ses.endpoint"]) or f"https://email.{region}.amazonaws.com"
    url = endpoint.rstrip("/") + "/v2/email/account"
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(access, secret, config.secret("AWS_SESSION_TOKEN")), "ses", region).add_auth(request)
    response = client.get(url, headers=dict(request.headers.items()))
    return _http_answer("ses", "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", response)


def _smtp(config: Config, client: httpx.Client) -> Finding:
    host, port = str(config["delivery.smtp.host"]), int(config["delivery.smtp.port"])
    security, username = str(config["delivery.smtp.security"]), str(config["delivery.smtp.username"])
    where = f"{host}:{port}"
    context = ssl.create_default_context()
    try:
        conn = (smtplib.SMTP_SSL(host, port, timeout=NETWORK_SECONDS, context=context) if security == "tls"
                else smtplib.SMTP(host, port, timeout=NETWORK_SECONDS))
    except (OSError, smtplib.SMTPException) as exc:
        return Finding("Provider: smtp", "fail", f"cannot connect to {where}: {exc}",
                       "check [delivery.smtp] host and port, and that this server may connect out to it")
    try:
        conn.ehlo()
        if security == "starttls":
            conn.starttls(context=context)
            conn.ehlo()
        if username:
            conn.login(username, _secret(config, "PUBLISHER_SMTP_PASSWORD"))
    except smtplib.SMTPAuthenticationError as exc:
        return Finding("Provider: smtp", "fail", f"{where} refused the login for {username!r} ({exc.smtp_code})",
                       "check [delivery.smtp] username and PUBLISHER_SMTP_PASSWORD")
    except (OSError, smtplib.SMTPException) as exc:
        return Finding("Provider: smtp", "fail", f"{where} failed the greeting: {exc}",
                       "check [delivery.smtp] security (none, starttls or tls) and port")
    finally:
        try:
            conn.quit()
        except (OSError, smtplib.SMTPException):
            conn.close()
    how = "logged in" if username else "greeted (no login configured)"
    return Finding("Provider: smtp", "ok", f"{where} {how}; nothing was sent")


def _maildir(config: Config, client: httpx.Client) -> Finding:
    return Finding("Provider: maildir", "warn", "maildir writes messages to a folder and sends nothing",
                   "choose a real provider in [delivery] provider before readers are to get mail")


CREDENTIAL_CHECKS: Mapping[str, Callable[[Config, httpx.Client], Finding]] = {
    "maildir": _maildir,
    "smtp": _smtp,
    "postmark": _postmark,
    "sendgrid": _sendgrid,
    "mailgun": _mailgun,
    "ses": _ses,
    "resend": _resend,
}
"""Per provider, a call that proves the credentials and sends nothing."""


def secret_finding(config: Config) -> Finding | None:
    """PUBLISHER_SECRET, which a real provider will not start without (None for the maildir demo,
    whose secret is generated beside the database)."""
    if str(config["delivery.provider"]) == "maildir":
        return None
    name = "Link secret"
    where = "set it in the services' EnvironmentFile (/etc/publisher/env): openssl rand -hex 32"
    try:
        value = config.secret(tokens.SECRET_ENV)
    except ConfigError as exc:
        return Finding(name, "fail", str(exc), where)
    if not value:
        return Finding(name, "fail", f"{tokens.SECRET_ENV} is not set: publisher serve will not start", where)
    size = len(value.encode("utf-8"))
    if size < tokens.MIN_SECRET_BYTES:
        return Finding(name, "fail", f"{tokens.SECRET_ENV} is {size} bytes; unsubscribe links could be forged",
                       f"make it at least {tokens.MIN_SECRET_BYTES} bytes; {where}")
    return Finding(name, "ok", f"{tokens.SECRET_ENV} is set ({size} bytes)")


def environment_file(text: str, origin: str) -> dict[str, str]:
    """The NAME=value lines of a systemd EnvironmentFile (or a compose .env): comments and blank
    lines skipped, `export ` and one pair of quotes around a value allowed."""
    found: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        match = re.fullmatch(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)", line)
        if match is None:
            raise ConfigError(f"{origin}:{number}: expected NAME=value, got {line[:40]!r}")
        value = match[2]
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        found[match[1]] = value
    return found


def _provider(config: Config, client: httpx.Client | None) -> Finding:
    name = str(config["delivery.provider"])
    check = CREDENTIAL_CHECKS.get(name)
    if check is None:
        return Finding(f"Provider: {name}", "warn", "no check that sends nothing is known for it")
    own = client is None
    http = client if client is not None else httpx.Client(timeout=NETWORK_SECONDS)
    try:
        return check(config, http)
    except ConfigError as exc:
        return Finding(f"Provider: {name}", "fail", str(exc), "set it, then restart the services")
    except httpx.HTTPError as exc:
        return Finding(f"Provider: {name}", "fail", f"cannot reach {name} within {NETWORK_SECONDS:g} s: {exc}",
                       "check that this server may connect out (firewall, DNS) and the provider's status page")
    finally:
        if own:
            http.close()


# The return path (VERP)


def return_path_finding(domain: str, mx: list[str] | None, spf: list[str] | None, fix: str) -> Finding:
    """The return-path domain's MX and SPF as DNS gave them (None: DNS did not answer)."""
    name = f"Return path: {domain}"
    if mx is None or spf is None:
        return Finding(name, "warn", "DNS did not answer for the return-path domain",
                       "run publisher doctor again once DNS answers")
    if not mx:
        return Finding(name, "fail", "no MX record: bounces sent to bounces+...@" + domain + " reach no one", fix)
    if not spf:
        return Finding(name, "fail", "no SPF record: receivers cannot check the envelope sender's domain", fix)
    return Finding(name, "ok", f"MX {', '.join(mx)}; SPF published")


def _return_path(config: Config, resolver: dns.resolver.Resolver | None) -> list[Finding]:
    from publisher.services.bounce_intake import return_path_records

    records = return_path_records(config)
    if not records:
        return []
    domain = records[0].name
    fix = "publish " + "; ".join(f"{r.type} {r.value} at {r.name}" for r in records)
    if resolver is None:
        resolver = dns.resolver.Resolver()
        resolver.timeout = resolver.lifetime = preflight.DNS_TIMEOUT
    try:
        answer = resolver.resolve(domain, "MX", lifetime=preflight.DNS_TIMEOUT, search=False)
        mx: list[str] | None = sorted(str(r.exchange).rstrip(".") for r in answer)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        mx = []
    except dns.exception.DNSException:
        mx = None
    texts = preflight.look_up([domain], resolver).get(domain)
    spf = None if isinstance(texts, str) else [t for t in texts or [] if t.lower().startswith("v=spf1")]
    return [return_path_finding(domain, mx, spf, fix)]


# The daemon, the disk, the backups


def bounce_mailbox_finding(config: Config) -> Finding | None:
    """The bounce mailbox (`bounces.imap.*`) logs in and its folder can be selected; None
    when none is configured. Reads nothing and moves nothing."""
    from publisher.delivery.imap_bounces import Mailbox, MailboxSettings

    name = "Bounce mailbox"
    try:
        settings = MailboxSettings.from_config(config)
        if settings is None:
            return None
        with Mailbox(settings) as mailbox:
            waiting = len(mailbox.waiting())
    except PublisherError as exc:
        return Finding(name, "fail", str(exc), "fix [bounces.imap] or PUBLISHER_BOUNCES_IMAP_PASSWORD as the "
                       "message says; until then bounces that come back by mail are not read")
    idle = "IDLE: new bounces are read at once" if mailbox.can_idle else "no IDLE: read every poll_seconds"
    return Finding(name, "ok", f"{settings.username} logged in at {settings.where}, folder {settings.folder!r} "
                   f"holds {waiting} message(s) not yet read; {idle}")


def heartbeat_finding(last: datetime | None, now: datetime, zone: ZoneInfo) -> Finding:
    name = "Daemon"
    start = "start it: systemctl start publisher (or docker compose up -d)"
    if last is None:
        return Finding(name, "fail", "publisher serve has not run in this folder", start)
    ago = now - last
    if ago > HEARTBEAT_LATE:
        return Finding(name, "fail", f"publisher serve was last seen {_ago(ago)} ago ({clock.local_time(last, zone)})",
                       start + "; journalctl -u publisher says why it stopped")
    return Finding(name, "ok", f"publisher serve is running (seen {_ago(ago)} ago)")


def _ago(span: timedelta) -> str:
    seconds = max(0, int(span.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172_800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86_400} days"


def disk_finding(what: str, folder: Path, total: int, free: int) -> Finding:
    name = f"Disk: {what}"
    shown = f"{free / 2**30:.1f} GB free of {total / 2**30:.1f} GB at {folder}"
    fix = "free space (old backups, logs: journalctl --vacuum-size=200M) or grow the disk"
    if free < DISK_FAIL:
        return Finding(name, "fail", shown + ": sends and backups may stop half-way", fix)
    if free < DISK_WARN or free < total / 10:
        return Finding(name, "warn", shown, fix)
    return Finding(name, "ok", shown)


def backup_finding(folder: Path, newest: tuple[str, datetime] | None, now: datetime, scheduled: bool) -> Finding:
    name = "Backups"
    plan = "" if scheduled else "; set backup.schedule (e.g. \"30 3 * * *\") so that the daemon makes them"
    if newest is None:
        return Finding(name, "warn", f"no {BACKUP_PATTERN} in {folder}", "run publisher backup" + plan)
    file, when = newest
    age = now - when
    shown = f"newest is {file}, {_ago(age)} old"
    if age > BACKUP_FAIL:
        return Finding(name, "fail", shown, "run publisher backup" + (plan or "; check that scheduled backups run"))
    if age > BACKUP_WARN:
        return Finding(name, "warn", shown, "run publisher backup" + plan)
    return Finding(name, "ok", shown)


def _newest_backup(folder: Path) -> tuple[str, datetime] | None:
    try:
        found = [(p.stat().st_mtime, p.name) for p in folder.glob(BACKUP_PATTERN) if p.is_file()]
    except OSError:
        return None
    if not found:
        return None
    mtime, name = max(found)
    return name, datetime.fromtimestamp(mtime, UTC)


def _local(
    config: Config, now: datetime, disk_usage: Callable[[Path], tuple[int, int, int]]
) -> list[Finding]:
    findings = [heartbeat_finding(last_beat(config.root), now, config.tz)]
    places = {"publication folder": config.root}
    database = sqlite_path(config.store_url)
    if database:
        places["SQLite store"] = Path(database).parent
    seen: set[Path] = set()
    for what, folder in places.items():
        if folder in seen:
            continue
        seen.add(folder)
        try:
            total, _used, free = disk_usage(folder)
        except OSError as exc:
            findings.append(Finding(f"Disk: {what}", "fail", f"cannot read {folder}: {exc.strerror or exc}",
                                    "check that the folder exists and this user may read it"))
            continue
        findings.append(disk_finding(what, folder, total, free))
    folder = (config.root / str(config.values.get("backup.folder") or "backups")).resolve()
    findings.append(backup_finding(folder, _newest_backup(folder), now, bool(config.values.get("backup.schedule"))))
    return findings


def diagnose(
    config: Config,
    now: datetime,
    *,
    resolver: dns.resolver.Resolver | None = None,
    tls_context: ssl.SSLContext | None = None,
    client: httpx.Client | None = None,
    disk_usage: Callable[[Path], tuple[int, int, int]] = shutil.disk_usage,
) -> list[Finding]:
    """Every check, in the order above. `resolver`, `tls_context` and `client` stand in for
    the system's DNS, trust store and HTTP client (tests point them at loopback servers)."""
    return [
        *_dns(config, resolver),
        *sender_rule_findings(config, resolver),
        *_complaints(config, now),
        *_return_path(config, resolver),
        *_tls(config, now, tls_context),
        _provider(config, client),
        *[f for f in (secret_finding(config),) if f is not None],
        *[f for f in (bounce_mailbox_finding(config),) if f is not None],
        *_local(config, now, disk_usage),
    ]
