"""config.toml into typed, immutable settings.

Every key lives in `SETTINGS` with its default and help; nothing reads a key that is not
there, and a test fails when the README's table and this one disagree. Every number has
a range (shown in the README), checked with the key and line; `nan` and `inf` are never
in one. Text that ends up in a mail header (`header=True`) may not hold line breaks or
other control characters, which would let it write headers of its own. `parse_config`
is pure (text in, `Config` out); `load_config` is the edge that reads the file.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from publisher.errors import ConfigError

__all__ = [
    "CONFIG_ENV",
    "PROVIDER_WORDS",
    "SECRETS_FILE",
    "SETTINGS",
    "Config",
    "PoolMember",
    "ProviderWords",
    "Setting",
    "SourceSettings",
    "find_config",
    "load_config",
    "parse_config",
    "provider_said",
    "secrets_beside",
    "settings_markdown",
    "sqlite_path",
]

CONFIG_ENV = "PUBLISHER_CONFIG"
REQUIRED = object()


@dataclass(frozen=True, slots=True)
class Setting:
    """One config key: dotted name, default (or REQUIRED), type and help for the docs."""

    key: str
    default: Any
    kind: str
    help: str
    choices: tuple[str, ...] = ()
    range: tuple[float, float] | None = None
    """Inclusive bounds of an int or float setting."""
    header: bool = False
    """Text that goes into a mail header: no line breaks or control characters."""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def range_text(self) -> str:
        if self.range is None:
            return ""
        low, high = self.range
        return f"{_number(low)} to {_number(high)}"


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,}"


S = Setting
PROVIDER_NAMES = ("maildir", "smtp", "postmark", "sendgrid", "mailgun", "ses", "resend", "pool")


@dataclass(frozen=True, slots=True)
class ProviderWords:
    """How the author is told of one provider: "maildir" or "ses" is a config value, not a name."""

    said: str
    """In running text, after "through" or "sending through": "the Maildir outbox", "Amazon SES"."""
    choice: str
    """Settings' choice, which says what choosing it means."""


# The one table of providers' names: the desk, the CLI, the API, Home and the log all read it,
# so a send confirmed "through the Maildir outbox" is not reported "failing" as something else.
PROVIDER_WORDS: Mapping[str, ProviderWords] = MappingProxyType({
    "maildir": ProviderWords(
        "the Maildir outbox", "None yet: write each email into a folder (for trying out; nothing reaches anyone)"),
    "smtp": ProviderWords("your mail server", "A mail server (SMTP): your own, or your mail host's"),
    "postmark": ProviderWords("Postmark", "Postmark"),
    "sendgrid": ProviderWords("SendGrid", "SendGrid"),
    "mailgun": ProviderWords("Mailgun", "Mailgun"),
    "ses": ProviderWords("Amazon SES", "Amazon SES"),
    "resend": ProviderWords("Resend", "Resend"),
})


def provider_said(name: str, *, start: bool = False) -> str:
    """A provider's name for running text; an unknown name (a pool member's typo) as written.
    With `start`, as a sentence opens: "Your mail server", "The Maildir outbox"."""
    words = PROVIDER_WORDS.get(name)
    said = words.said if words is not None else name
    return said[:1].upper() + said[1:] if start else said

SETTINGS: tuple[Setting, ...] = (
    # [publication]
    S("publication.title", REQUIRED, "str", "Name of the publication, shown in feeds and emails.", header=True),
    S("publication.url", REQUIRED, "url", "Public base URL of the site (feeds and archive live under it)."),
    S("publication.description", "", "str", "One-line description for feeds."),
    S("publication.author", "", "str", "Default author of articles, e.g. \"Dana Reyes, LCSW\".", header=True),
    S("publication.email", "", "str", "Author's public contact address (feeds' managingEditor).", header=True),
    S("publication.language", "en", "str", "Language tag for feeds and pages (BCP 47)."),
    S("publication.timezone", "UTC", "timezone", "IANA zone for dates without one, schedules and digests."),
    S("publication.postal_address", "", "str", "Postal address printed in every email footer (required to send)."),
    S("publication.logo", "", "str", "Optional logo or icon URL (absolute or relative to url)."),
    S("publication.accent_color", "#1d5c63", "color",
      "Colour of the newsletter's masthead, links and buttons and of the site's links, written #rrggbb; "
      "links are darkened (or, in dark mode, lightened) as far as needed to stay readable."),
    # [build]
    S("build.content", "content", "path", "Folder of Markdown articles."),
    S("build.output", "public", "path", "Folder `publisher build` writes."),
    S("build.templates", "templates", "path", "Folder of template overrides, by file name."),
    S("build.previews", 20, "int", "Newest articles that get a newsletter preview in newsletters/ "
      "(each costs a Jinja and premailer run, tens of ms); 0 for none.", range=(0, 10_000)),
    S("build.per_page", 20, "int", "Articles on each page of the archive and of each tag's page; 0 puts them all "
      "on one page.", range=(0, 10_000)),
    S("build.search", True, "bool", "Write a search index (search.json) and the small script that gives the "
      "archive a search box; without JavaScript the box is simply absent."),
    # [feeds]
    S("feeds.entries", 20, "int", "How many newest articles each feed carries.", range=(1, 1_000)),
    S("feeds.hubs", [], "list", "WebSub hub URLs announced in feeds and pinged on publish."),
    S("feeds.per_tag", True, "bool", "Also write one feed per tag under feeds/tags/."),
    # [newsletter]
    S("newsletter.from", REQUIRED, "str", "From header, e.g. \"Dana Reyes <dana@example.org>\".", header=True),
    S("newsletter.reply_to", "", "str", "Reply-To address; empty for none.", header=True),
    S("newsletter.subject", "{title}", "str", "Subject template; {title} and {publication} are filled in.",
      header=True),
    S("newsletter.list_id", "", "str", "List-Id value; empty derives one from the publication URL's host.",
      header=True),
    S("newsletter.reason", "", "str",
      "Footer line that tells readers why they get this email ({publication} is filled in); empty: "
      "\"You are receiving this because you subscribed to {publication}.\" in the publication's language."),
    S("newsletter.clip_warning_bytes", 102_400, "int",
      "Warn when an issue's HTML passes this size (Gmail clips at about 102 KB).", range=(1_000, 10_000_000)),
    # [delivery]
    S("delivery.provider", "maildir", "choice", "Mail provider that sends newsletters.", PROVIDER_NAMES),
    S("delivery.concurrency", 4, "int", "Messages or API calls in flight at once.", range=(1, 64)),
    S("delivery.processes", 1, "int",
      "Sending processes for one send, this one included; more use more cores (each claims its own "
      "rows from the ledger).", range=(1, 32)),
    S("delivery.batch_size", 50, "int", "Ledger rows claimed per batch (HTTP APIs cap it at their own maximum).",
      range=(1, 10_000)),
    S("delivery.rate", 0.0, "float", "Messages per second at most, all sending processes together; 0: no limit.",
      range=(0, 10_000)),
    S("delivery.burst", 0, "int", "Token bucket size for `rate`; 0 means one second's worth.", range=(0, 100_000)),
    S("delivery.max_attempts", 5, "int", "Attempts per recipient before the row is marked failed.", range=(1, 100)),
    S("delivery.retry_base", 30.0, "float", "First retry delay in seconds; doubles each attempt, with jitter.",
      range=(0, 86_400)),
    S("delivery.retry_max", 3600.0, "float", "Longest retry delay in seconds.", range=(0, 604_800)),
    S("delivery.timeout", 30.0, "float", "Seconds to wait for a provider before the attempt counts as failed.",
      range=(0.1, 3_600)),
    S("delivery.breaker_failures", 3, "int",
      "With provider \"pool\": failures of one provider in a row (no connection, a timeout, a 5xx, a 429, "
      "a refused key) before it is left out and batches go straight to the next one (a failed batch "
      "moves on at once).", range=(1, 1_000)),
    S("delivery.breaker_cooldown", 60.0, "float",
      "With provider \"pool\": seconds a failing provider is left alone before one batch tries it again.",
      range=(1, 86_400)),
    S("delivery.maildir.path", "outbox", "path", "Maildir folder the `maildir` provider writes to."),
    S("delivery.smtp.host", "localhost", "str", "SMTP server host."),
    S("delivery.smtp.port", 587, "int", "SMTP server port.", range=(1, 65_535)),
    S("delivery.smtp.security", "starttls", "choice", "Connection security.", ("none", "starttls", "tls")),
    S("delivery.smtp.username", "", "str", "SMTP login; the password comes from PUBLISHER_SMTP_PASSWORD."),
    S("delivery.smtp.connections", 4, "int", "Persistent SMTP connections kept open while sending.", range=(1, 64)),
    S("delivery.smtp.in_flight", 1, "int",
      "Accepted messages per connection that may wait to be recorded in the ledger. A crash can send "
      "that many again per connection, each reported as uncertain; 1 keeps that to one, 8 sends faster.",
      range=(1, 8)),
    S("delivery.postmark.base_url", "https://api.postmarkapp.com", "url", "Postmark API base URL."),
    S("delivery.postmark.message_stream", "broadcast", "str", "Postmark message stream for newsletters.", header=True),
    S("delivery.sendgrid.base_url", "https://api.sendgrid.com", "url", "SendGrid API base URL."),
    S("delivery.mailgun.base_url", "https://api.mailgun.net", "url",
      "Mailgun API base URL (https://api.eu.mailgun.net for the EU region)."),
    S("delivery.mailgun.domain", "", "str", "Mailgun sending domain.", header=True),
    S("delivery.ses.region", "", "str", "AWS region for SES; empty uses AWS_REGION."),
    S("delivery.ses.endpoint", "", "str", "Override the SES endpoint URL (for testing); empty for AWS's."),
    S("delivery.ses.configuration_set", "", "str", "SES configuration set name; empty for none.", header=True),
    S("delivery.resend.base_url", "https://api.resend.com", "url", "Resend API base URL."),
    S("delivery.dkim.domain", "", "str", "DKIM signing domain (d=); empty disables signing.", header=True),
    S("delivery.dkim.selector", "", "str", "DKIM selector (s=).", header=True),
    S("delivery.dkim.private_key_file", "", "path", "PEM private key file for DKIM (RSA, 2048 bits)."),
    S("delivery.dkim.ed25519_selector", "", "str",
      "Selector of a second, Ed25519 signature (RFC 8463) beside the RSA one; empty: RSA only.", header=True),
    S("delivery.dkim.ed25519_key_file", "", "path",
      "Ed25519 private key file (PEM from `openssl genpkey -algorithm ed25519`) for that signature."),
    # [store]
    S("store.url", "sqlite:///publisher.db", "str",
      "SQLAlchemy URL; relative SQLite paths are relative to config.toml. PostgreSQL: postgresql+psycopg://..."),
    # [server]
    S("server.host", "127.0.0.1", "str", "Address `publisher serve` listens on."),
    S("server.port", 8000, "int", "Port `publisher serve` listens on.", range=(1, 65_535)),
    S("server.public_url", "", "str",
      "Public URL of the app for subscribe/unsubscribe links; empty uses publication.url."),
    S("server.trusted_proxies", [], "networks",
      "Addresses or networks of reverse proxies whose X-Forwarded-For names the client "
      "(e.g. [\"127.0.0.1\"]); empty trusts none."),
    # [schedule]
    S("schedule.policy", "wait", "choice", "What a new article's newsletter does once the article is on the site: "
      "wait for the author to send or schedule it, go out now, at the next send window, or in the digest "
      "(\"draft\" is the old name of \"wait\"). Articles saved in the desk or the API always wait.",
      ("wait", "now", "window", "draft", "digest")),
    S("schedule.window", "tue 08:00", "str", "Send window for policy \"window\": weekday(s) and time, author's zone."),
    S("schedule.digest", "", "str",
      "Cron expression for digests in the author's zone, e.g. \"0 8 * * mon\"; empty: none."),
    S("schedule.grace_hours", 24.0, "float", "A scheduled send missed by more than this is skipped and reported.",
      range=(0, 8_760)),
    S("schedule.watch_interval", 60.0, "float",
      "Seconds between looks for new articles in content/ (the fallback: saved files are noticed at once).",
      range=(0.1, 86_400)),
    # [sequences]
    S("sequences.folder", "sequences", "path",
      "Folder of welcome and drip sequences: one folder per sequence, one Markdown file per step; "
      "never published on the site or in feeds."),
    S("sequences.send_hour", 9, "int",
      "Hour (0-23) on the reader's clock at which a step due on a day goes; the author's zone for "
      "readers without one. A step with no delay (a welcome) goes at once.", range=(0, 23)),
    # [subscribe]
    S("subscribe.confirm_interval", 3600.0, "float", "Seconds between two confirmation mails to one address.",
      range=(0, 604_800)),
    S("subscribe.per_ip_per_hour", 20, "int", "Subscribe requests accepted per client IP per hour.",
      range=(1, 1_000_000)),
    S("subscribe.per_network_per_hour", 100, "int",
      "Subscribe requests accepted per hour from one network (an IPv4 /24 or IPv6 /64), at every door; "
      "past it the network is refused with a time to try again and named on the desk's Home.",
      range=(1, 1_000_000)),
    S("subscribe.allowed_origins", [], "origins",
      "Sites (scheme and host, such as \"https://blog.example.org\") whose pages may send signups to "
      "/subscribe.json from a script (CORS); the publication's own address always may."),
    S("subscribe.consent_text", "", "str",
      "What a reader agrees to by subscribing, shown under every signup form and kept with the subscriber; "
      "empty: \"I agree to receive <title> by email. I can leave at any time with the link in every message.\""),
    S("subscribe.public_tags", [], "list",
      "Tags readers may choose as topics on their manage-your-subscription page."),
    S("subscribe.retired_tags", [], "list",
      "Topics no longer offered to readers; readers who chose one keep it in their history."),
    # [analytics]
    S("analytics.enabled", False, "bool",
      "Count opens (a 1x1 picture) and clicks (links through this site) in each newsletter's HTML part, "
      "per issue and per link; off: mail carries no pixel and no rewritten link. Text parts and feeds never do."),
    S("analytics.per_person", False, "bool",
      "With analytics on, also keep which copy was opened or clicked, shown to each reader on their page "
      "(\"you opened 3 of the last 5 issues\") and erased with them; off: counts per issue only."),
    S("analytics.scanner_seconds", 10, "int",
      "A click this soon after its copy was sent, or a copy's links all clicked within a second, is "
      "counted as a mail scanner's, not a reader's.", range=(0, 3_600)),
    # [desk]
    S("desk.session_hours", 336.0, "float", "Hours a desk sign-in lasts at most (default two weeks).",
      range=(0.1, 8_760)),
    S("desk.idle_hours", 24.0, "float", "Hours without a request after which a desk session ends.",
      range=(0.1, 8_760)),
    S("desk.login_failures", 5, "int", "Failed sign-ins per account in 15 minutes before it is throttled.",
      range=(1, 1_000)),
    S("desk.login_failures_per_address", 20, "int",
      "Failed sign-ins per client address in 15 minutes before it is throttled.", range=(1, 100_000)),
    S("desk.require_two_factor", "off", "choice",
      "Who must sign in with a code from an authenticator app as well: off, owners or everyone. "
      "Someone without one is sent to set it up before anything else.", ("off", "owners", "everyone")),
    S("desk.oidc.issuer", "", "url",
      "OpenID Connect provider to offer on the sign-in page (its issuer URL); empty: none. "
      "Its client secret comes from PUBLISHER_OIDC_CLIENT_SECRET."),
    S("desk.oidc.client_id", "", "str", "The desk's client id at that provider."),
    S("desk.oidc.label", "", "str", "The provider's name on the sign-in button (\"Sign in with ...\")."),
    # [api]
    S("api.rate_limit", 600, "int", "Requests per minute each API key may make; past that, 429 with Retry-After.",
      range=(1, 1_000_000)),
    # [webhooks]
    S("webhooks.ses_topic_arns", [], "list", "SNS topic ARNs whose SES bounce and complaint "
      "notifications POST /webhooks/ses accepts; empty refuses all."),
    # [bounces]
    S("bounces.return_path_domain", "", "domain",
      "Domain of each message's own return path, bounces+<token>@<domain> (VERP), so that every bounce names "
      "its reader and issue; empty: the From address is the return path, as before. It needs an MX and SPF "
      "record (the desk's Settings and `publisher doctor` show them)."),
    S("bounces.mx_host", "", "domain",
      "Host that receives mail for the return-path domain (its MX record), shown in the records to add."),
    S("bounces.soft_limit", 3, "int",
      "Soft bounces (a full mailbox, a timeout) within soft_window_days that stop mail to an address.",
      range=(1, 100)),
    S("bounces.soft_window_days", 14, "int", "Days over which soft bounces are counted.", range=(1, 365)),
    # [bounces.imap]
    S("bounces.imap.host", "", "str",
      "IMAP server of the mailbox bounces come back to (the return path's mailbox); empty: no mailbox is read. "
      "Its password comes from PUBLISHER_BOUNCES_IMAP_PASSWORD."),
    S("bounces.imap.port", 993, "int", "IMAP port (993 for tls, 143 for starttls).", range=(1, 65_535)),
    S("bounces.imap.security", "tls", "choice", "Connection security; the server's certificate is always verified.",
      ("tls", "starttls")),
    S("bounces.imap.username", "", "str", "IMAP login of the bounce mailbox."),
    S("bounces.imap.folder", "INBOX", "str", "Folder the bounces arrive in."),
    S("bounces.imap.done_folder", "Processed", "str",
      "Folder each handled message is moved to (made if missing); nothing is ever deleted."),
    S("bounces.imap.review_folder", "Needs review", "str",
      "Folder for messages that could not be understood or are too big, for a person to look at (made if missing)."),
    S("bounces.imap.poll_seconds", 60.0, "float",
      "Seconds between looks at the folder when the server does not offer IDLE; with IDLE a new message is "
      "noticed within about a second.", range=(1, 1_500)),
    S("bounces.imap.ca_file", "", "path",
      "PEM file of the certificate authority that signed the server's certificate (a self-signed server); "
      "empty: the system's."),
    S("bounces.imap.max_bytes", 25_000_000, "int",
      "Messages bigger than this are moved to review_folder without being downloaded.",
      range=(10_000, 1_000_000_000)),
    # [fetch]
    S("fetch.allow_private", False, "bool", "Allow fetching loopback and private addresses (tests, intranets)."),
    S("fetch.timeout", 20.0, "float", "Seconds a remote fetch may take.", range=(0.1, 600)),
    S("fetch.max_bytes", 5_000_000, "int", "Largest remote document fetched, in bytes.", range=(1_000, 1_000_000_000)),
    # [backup]
    S("backup.folder", "backups", "path", "Folder `publisher backup` and scheduled backups write archives to "
      "(publisher-backup-YYYYMMDD-HHMMSS.tar.gz, UTC); they hold every subscriber's address."),
    S("backup.schedule", "", "str",
      "Cron line for automatic backups by `publisher serve`, in the author's zone, e.g. \"30 3 * * *\"; "
      "empty: none."),
    S("backup.keep", 7, "int", "Archives kept in backup.folder after a scheduled backup; older ones are "
      "deleted.", range=(1, 10_000)),
)

SOURCE_KEYS: tuple[Setting, ...] = (
    S("sources[].url", REQUIRED, "url", "Remote RSS or Atom feed to watch."),
    S("sources[].name", "", "str", "Label in logs and status; defaults to the URL."),
    S("sources[].interval", 1800.0, "float", "Seconds between polls (default 30 minutes).", range=(60, 604_800)),
    S("sources[].import_backlog", False, "bool",
      "On the first poll, import existing items instead of marking them seen."),
)

POOL_KEYS: tuple[Setting, ...] = (
    S("delivery.pool[].provider", REQUIRED, "choice",
      "With provider \"pool\": one provider of the pool, using its own [delivery.<name>] settings; "
      "the first listed is tried first.", PROVIDER_NAMES[:-1]),
    S("delivery.pool[].priority", 0, "int",
      "Lower goes first; 0: the entry's place in the list. Entries of one priority share the sending.",
      range=(0, 1_000)),
    S("delivery.pool[].weight", 1, "int", "Share of the sending among entries of the same priority.",
      range=(1, 1_000)),
    S("delivery.pool[].rate", 0.0, "float", "Messages per second at most through this provider; 0: no limit.",
      range=(0, 10_000)),
    S("delivery.pool[].burst", 0, "int", "Token bucket size for this entry's rate; 0 means one second's worth.",
      range=(0, 100_000)),
    S("delivery.domains.<domain>", "", "float",
      "Messages per second at most to addresses at this domain (e.g. \"gmail.com\" = 20), through every "
      "provider and process together; rows over it wait while other domains go on.", range=(0.01, 10_000)),
)

_BY_KEY: Mapping[str, Setting] = {s.key: s for s in SETTINGS}


@dataclass(frozen=True, slots=True)
class SourceSettings:
    url: str
    name: str
    interval: float
    import_backlog: bool


@dataclass(frozen=True, slots=True)
class PoolMember:
    """One `[[delivery.pool]]` entry: a provider, its place in the order, its own limit."""

    provider: str
    priority: int
    weight: int = 1
    rate: float = 0.0
    burst: int = 0


@dataclass(frozen=True, slots=True)
class Config:
    """The parsed configuration. `values` holds every key of SETTINGS, defaults applied."""

    root: Path
    """Folder of config.toml: relative paths are resolved against it."""
    values: Mapping[str, Any]
    sources: tuple[SourceSettings, ...] = ()
    path: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    pool: tuple[PoolMember, ...] = ()
    """`[[delivery.pool]]`, in the order written (used when `delivery.provider` is "pool")."""
    domains: Mapping[str, float] = field(default_factory=dict)
    """`[delivery.domains]`: messages per second at most per recipient domain (lower case)."""

    def __getitem__(self, key: str) -> Any:
        if key not in _BY_KEY:
            raise KeyError(key)
        return self.values[key]

    def path_of(self, key: str) -> Path:
        """A `path` setting resolved against the publication folder."""
        return (self.root / str(self[key])).resolve()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self["publication.timezone"])

    @property
    def public_url(self) -> str:
        """Base URL for links into the app (unsubscribe, confirm), without a trailing slash."""
        return str(self["server.public_url"] or self["publication.url"]).rstrip("/")

    @property
    def site_url(self) -> str:
        return str(self["publication.url"]).rstrip("/")

    @property
    def store_url(self) -> str:
        """`store.url` with a relative SQLite path made absolute against the config folder."""
        url = str(self["store.url"])
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://":
            rest = url[len(prefix):]
            if rest and rest != ":memory:":
                return prefix + str((self.root / rest).resolve())
        return url

    def secret(self, name: str) -> str | None:
        """An environment secret; `NAME_FILE` names a file holding it instead."""
        value = self.env.get(name)
        if value:
            return value
        file_name = self.env.get(name + "_FILE")
        if file_name:
            try:
                return Path(file_name).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{name}_FILE names {file_name!r}, which cannot be read: {exc}") from exc
        return None


def _line_of(text: str, section: str, key: str) -> int | None:
    """The line where `key` is set inside `[section]`, for error messages."""
    current = ""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?", stripped)
        if header:
            current = header.group(1)
            continue
        if current == section and re.match(rf"^\"?{re.escape(key)}\"?\s*=", stripped):
            return number
    return None


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in table.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            flat.update(_flatten(value, key + "."))
        else:
            flat[key] = value
    return flat


def _where(origin: str, text: str, key: str) -> str:
    section, _, name = key.rpartition(".")
    line = _line_of(text, section, name)
    return f"{origin}:{line}" if line else origin


def _check_type(setting: Setting, value: Any, fail: Callable[[str], ConfigError]) -> Any:
    kind = setting.kind
    if kind in ("str", "path", "url", "timezone", "choice", "domain"):
        if not isinstance(value, str):
            raise fail(f"must be text in quotes, got {value!r}")
        if setting.header and _CONTROL.search(value):
            raise fail(f"must be one line without control characters (it goes into mail headers), got {value!r}")
        if kind == "url" and value:
            try:
                parts = urlsplit(value)
                parts.port  # noqa: B018  (a ValueError when not a port number)
            except ValueError as exc:
                raise fail(f"must be an absolute http(s) URL, got {value!r} ({exc})") from exc
            if parts.scheme not in ("http", "https") or not parts.netloc or _CONTROL.search(value):
                raise fail(f"must be an absolute http(s) URL, got {value!r}")
        if kind == "timezone":
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise fail(f"must be an IANA time zone such as \"Europe/Berlin\", got {value!r}") from exc
        if kind == "domain" and value and not _DOMAIN.fullmatch(value.lower().rstrip(".")):
            raise fail(f"must be a domain name such as \"bounces.example.org\" (no @, no spaces), got {value!r}")
        if kind == "choice" and value not in setting.choices:
            raise fail(f"must be one of {', '.join(setting.choices)}, got {value!r}")
        return value
    if kind == "color":
        if not isinstance(value, str) or not _COLOR.fullmatch(value):
            raise fail(f"must be a colour written #rrggbb, such as \"#1d5c63\", got {value!r}")
        return value.lower()
    if kind == "bool":
        if not isinstance(value, bool):
            raise fail(f"must be true or false, got {value!r}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(f"must be a whole number, got {value!r}")
        if value < 0:
            raise fail(f"must not be negative, got {value}")
        return _in_range(setting, value, fail)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail(f"must be a number, got {value!r}")
        if not math.isfinite(value):
            raise fail(f"must be a finite number ({setting.range_text}), got {value}")
        if value < 0:
            raise fail(f"must not be negative, got {value}")
        return _in_range(setting, float(value), fail)
    if kind in ("list", "networks", "origins"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise fail(f"must be a list of text values, got {value!r}")
        if kind == "origins":
            return tuple(_origin(item, fail) for item in value)
        if kind == "networks":
            for item in value:
                try:
                    ipaddress.ip_network(item.strip(), strict=False)
                except ValueError as exc:
                    raise fail(f"must list IP addresses or networks such as \"10.0.0.0/8\", got {item!r}") from exc
        return tuple(value)
    raise AssertionError(f"unknown setting kind {kind}")


def _origin(value: str, fail: Callable[[str], ConfigError]) -> str:
    """A web origin as browsers send it in `Origin`: scheme://host[:port], lower-case."""
    text = value.strip().rstrip("/").lower()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (a ValueError when not a port number)
    except ValueError as exc:
        raise fail(f"must list origins such as \"https://blog.example.org\", got {value!r} ({exc})") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query \
            or parts.fragment or "@" in parts.netloc or _CONTROL.search(text):
        raise fail(f"must list origins such as \"https://blog.example.org\" (scheme and host, no path), "
                   f"got {value!r}")
    return text


def _in_range(setting: Setting, value: float, fail: Callable[[str], ConfigError]) -> Any:
    if setting.range is not None:
        low, high = setting.range
        if not low <= value <= high:
            raise fail(f"must be from {setting.range_text}, got {_number(value)}")
    return value


_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
"""A colour as every mail client understands it (publisher.content.palette reads it)."""
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\u2028\u2029]")
"""Control characters (a tab is allowed): CR and LF above all, which would end a header."""


def _unknown(key: str, known: list[str], where: str) -> ConfigError:
    import difflib  # only for a key that is wrong: every command reads this module

    guess = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f" Did you mean {guess[0]!r}?" if guess else " See the configuration table in README.md."
    return ConfigError(f"{where}: unknown key {key!r}.{hint}")


def _parse_sources(raw: Any, origin: str, problems: list[str]) -> tuple[SourceSettings, ...]:
    if not isinstance(raw, list):
        problems.append(f"{origin}: sources must be written as [[sources]] tables")
        return ()
    known = {s.key.removeprefix("sources[]."): s for s in SOURCE_KEYS}
    out = []
    for index, table in enumerate(raw, start=1):
        where = f"{origin}: [[sources]] entry {index}"
        values: dict[str, Any] = {}
        for name, value in table.items():
            if name not in known:
                problems.append(str(_unknown(name, list(known), where)))
                continue
            setting = known[name]

            def fail(msg: str, where: str = where, name: str = name) -> ConfigError:
                return ConfigError(f"{where}: {name} {msg}")

            try:
                values[name] = _check_type(setting, value, fail)
            except ConfigError as exc:
                problems.append(str(exc))
        if "url" not in values:
            if "url" not in table:
                problems.append(f"{where}: url is required (the feed to watch)")
            continue
        out.append(
            SourceSettings(
                url=values["url"],
                name=values.get("name") or values["url"],
                interval=values.get("interval", 1800.0),
                import_backlog=values.get("import_backlog", False),
            )
        )
    return tuple(out)


def _entry_line(text: str, table: str, index: int, key: str | None = None) -> int | None:
    """The line of the `index`-th (1-based) `[[table]]` header, or of `key` inside that entry."""
    seen = 0
    inside = False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?", stripped)
        if header:
            inside = stripped.startswith("[[") and header.group(1) == table
            if inside:
                seen += 1
                if seen == index and key is None:
                    return number
            continue
        if inside and seen == index and key is not None and re.match(rf"^\"?{re.escape(key)}\"?\s*=", stripped):
            return number
    return None


def _parse_pool(raw: Any, origin: str, text: str, problems: list[str]) -> tuple[PoolMember, ...]:
    """`[[delivery.pool]]` entries, each checked like any key (file, line, key, what to do)."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(entry, dict) for entry in raw):
        problems.append(
            f"{origin}: [delivery] pool must be written as [[delivery.pool]] tables, one per provider"
        )
        return ()
    known = {s.key.removeprefix("delivery.pool[]."): s for s in POOL_KEYS if s.key.startswith("delivery.pool[]")}
    members: list[PoolMember] = []
    seen: dict[str, int] = {}
    for index, table in enumerate(raw, start=1):
        line = _entry_line(text, "delivery.pool", index)
        entry = f"{origin}:{line}" if line else origin
        values: dict[str, Any] = {}
        for name, value in table.items():
            key_line = _entry_line(text, "delivery.pool", index, name)
            where = f"{origin}:{key_line or line}" if (key_line or line) else origin
            if name not in known:
                problems.append(str(_unknown(name, list(known), f"{where}: [[delivery.pool]] entry {index}")))
                continue

            def fail(msg: str, where: str = where, name: str = name, index: int = index) -> ConfigError:
                return ConfigError(f"{where}: [[delivery.pool]] entry {index}: {name} {msg}")

            try:
                values[name] = _check_type(known[name], value, fail)
            except ConfigError as exc:
                problems.append(str(exc))
        provider = values.get("provider")
        if provider is None:
            if "provider" not in table:
                problems.append(
                    f"{entry}: [[delivery.pool]] entry {index}: provider is required (one of "
                    f"{', '.join(PROVIDER_NAMES[:-1])})"
                )
            continue
        if provider in seen:
            problems.append(
                f"{entry}: [[delivery.pool]] entry {index}: provider {provider!r} is already entry "
                f"{seen[provider]}; each provider appears once (it has one [delivery.{provider}] table)"
            )
            continue
        seen[provider] = index
        members.append(
            PoolMember(
                provider=provider,
                priority=values.get("priority") or index,
                weight=values.get("weight", 1),
                rate=values.get("rate", 0.0),
                burst=values.get("burst", 0),
            )
        )
    return tuple(members)


_DOMAIN = re.compile(r"(?=.{1,253}\Z)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+")


def _parse_domains(raw: Any, origin: str, text: str, problems: list[str]) -> dict[str, float]:
    """`[delivery.domains]`: a rate per recipient domain, keys in lower case."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(f"{origin}: [delivery] domains must be a table: [delivery.domains] then \"gmail.com\" = 20")
        return {}
    setting = POOL_KEYS[-1]
    domains: dict[str, float] = {}
    for name, value in raw.items():
        line = _line_of(text, "delivery.domains", name)
        where = f"{origin}:{line}" if line else origin
        domain = name.strip().lower().rstrip(".")
        if isinstance(value, dict) or not _DOMAIN.fullmatch(domain):
            problems.append(
                f"{where}: [delivery.domains] {name!r} is not a mail domain; write it in quotes with the "
                "rate after it, e.g. \"gmail.com\" = 20"
            )
            continue

        def fail(msg: str, where: str = where, name: str = name) -> ConfigError:
            return ConfigError(f"{where}: [delivery.domains] {name!r} {msg} (messages per second)")

        try:
            domains[domain] = float(_check_type(setting, value, fail))
        except ConfigError as exc:
            problems.append(str(exc))
    return domains


def _pool_problems(values: Mapping[str, Any], pool: tuple[PoolMember, ...], origin: str, text: str) -> list[str]:
    """`provider = "pool"` needs entries. Entries beside another provider are kept unused, as
    a `[delivery.postmark]` table is while provider = "smtp"."""
    where = _where(origin, text, "delivery.provider")
    if values["delivery.provider"] == "pool" and not pool:
        return [
            f"{where}: [delivery] provider is \"pool\" but no [[delivery.pool]] entry names a provider; "
            "add one per provider, e.g. [[delivery.pool]] then provider = \"postmark\""
        ]
    return []


def parse_config(
    text: str,
    *,
    root: Path,
    origin: str = "config.toml",
    env: Mapping[str, str] | None = None,
) -> Config:
    """Parse config text. Pure: `root` and `env` are passed in, nothing is read.

    Every problem in the file is found before one ConfigError is raised: its message has
    one line per problem (and `problems` holds them), so the author fixes them in one go.
    """
    text = text.removeprefix("\ufeff")  # a byte order mark, as some Windows editors save
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML: {exc}. Fix the syntax and run again.") from exc
    problems: list[str] = []
    sources = _parse_sources(data.pop("sources", []), origin, problems)
    delivery_table = data.get("delivery")
    pool_raw: Any = None
    domains_raw: Any = None
    if isinstance(delivery_table, dict):
        pool_raw = delivery_table.pop("pool", None)
        domains_raw = delivery_table.pop("domains", None)
    pool = _parse_pool(pool_raw, origin, text, problems)
    domains = _parse_domains(domains_raw, origin, text, problems)
    flat = _flatten(data)
    known = list(_BY_KEY)
    values: dict[str, Any] = {}
    for key, value in flat.items():
        setting = _BY_KEY.get(key)
        if setting is None:
            problems.append(str(_unknown(key, known, _where(origin, text, key))))
            continue

        def fail(msg: str, key: str = key) -> ConfigError:
            section, _, name = key.rpartition(".")
            return ConfigError(f"{_where(origin, text, key)}: [{section}] {name} {msg}")

        try:
            values[key] = _check_type(setting, value, fail)
        except ConfigError as exc:
            problems.append(str(exc))
    for setting in SETTINGS:
        if setting.key in values:
            continue
        if setting.required:
            if setting.key not in flat:
                section, _, name = setting.key.rpartition(".")
                problems.append(f"{origin}: [{section}] {name} is required: {setting.help} Add it and run again.")
            continue
        default = setting.default
        values[setting.key] = tuple(default) if isinstance(default, list) else default
    if not problems:
        problems.extend(_pool_problems(values, pool, origin, text))
    if not problems:
        problems.extend(_private_in_public(values, root, origin, text, lambda path: Path(os.path.normpath(path))))
    if problems:
        raise ConfigError("\n".join(problems), problems=problems)
    return Config(
        root=root,
        values=MappingProxyType(values),
        sources=sources,
        path=root / Path(origin).name,
        env=MappingProxyType(dict(env or {})),
        pool=pool,
        domains=MappingProxyType(domains),
    )


def find_config(explicit: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path:
    """`--config`, then PUBLISHER_CONFIG, then ./config.toml."""
    chosen = explicit or env.get(CONFIG_ENV) or "config.toml"
    return Path(chosen)


def load_config(
    explicit: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Read and parse the publication's config.toml (the edge around `parse_config`)."""
    environ = dict(os.environ if env is None else env)
    path = find_config(explicit, environ)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{path}: no such file. Run publisher in a publication folder, or pass "
            f"--config PATH (or set {CONFIG_ENV})."
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from exc
    # Secrets the desk's Settings page keeps beside config.toml; the environment wins.
    environ = {**secrets_beside(path), **environ}
    config = parse_config(text, root=path.resolve().parent, origin=str(path), env=environ)
    # Again with links resolved: a folder linked into content/ is inside it all the same.
    problems = _private_in_public(config.values, config.root, str(path), text, _resolved)
    if problems:
        raise ConfigError("\n".join(problems), problems=problems)
    return config


SECRETS_FILE = ".publisher-secrets"
"""Provider secrets set in the desk's Settings page, `NAME=value` a line, mode 0600."""


def secrets_beside(config_path: Path) -> dict[str, str]:
    """The secrets file beside `config_path`: each `NAME=value` line (none when it is absent)."""
    try:
        text = (config_path.parent / SECRETS_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{config_path.parent / SECRETS_FILE}: cannot be read: {exc}") from exc
    found = (re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line.strip()) for line in text.splitlines())
    return {match[1]: match[2] for match in found if match and match[2]}


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a link loop: compared as written
        return Path(os.path.normpath(path))


_SQLITE_URL = re.compile(r"sqlite(?:\+\w+)?:///(?P<path>[^?]*)(?:\?.*)?", re.DOTALL)


def sqlite_path(url: str) -> str | None:
    """The database file of an SQLite URL, as written (relative to config.toml unless
    absolute), in any of SQLAlchemy's forms (`sqlite+pysqlite:///x.db?timeout=5`); None for
    another database or one in memory."""
    found = _SQLITE_URL.fullmatch(url.strip())
    if found is None or found["path"] in ("", ":memory:") or found["path"].startswith("file:"):
        return None
    return found["path"]


_SECRET_FILE = ".publisher-secret"  # noqa: S105  (a file name, not a secret)
"""The demo secret beside config.toml (publisher.mail.tokens writes it)."""
_CACHE_FOLDER = ".publisher-cache"
"""The build cache beside config.toml (publisher.site.build_cache)."""


def _private_in_public(
    values: Mapping[str, Any], root: Path, origin: str, text: str, resolve: Callable[[Path], Path]
) -> list[str]:
    """A problem for each private file (the database, the DKIM keys, the outbox, the demo
    secret, the build cache) configured inside the content folder, whose files the build
    copies into the site as they are: it would be published, mode 0644, to anyone.

    `resolve` makes a path absolute and normal: os.path.normpath in `parse_config` (pure),
    Path.resolve at load, so that a linked folder counts where it leads.
    """
    content_value = str(values["build.content"])
    content = resolve(root / content_value)
    shown = content_value.rstrip("/") or content_value

    def inside(path: Path) -> bool:
        return path == content or content in path.parents

    problems: list[str] = []
    private: list[tuple[str, str, Path]] = []
    database = sqlite_path(str(values["store.url"]))
    if database is not None:
        private.append(("store.url", "the database", root / database))
    for key, what in (
        ("delivery.dkim.private_key_file", "the DKIM key"),
        ("delivery.dkim.ed25519_key_file", "the Ed25519 DKIM key"),
        ("delivery.maildir.path", "the outbox (subscribers' mail)"),
        ("backup.folder", "the backups (every subscriber's address)"),
    ):
        if str(values[key]).strip():
            private.append((key, what, root / str(values[key])))
    for key, what, path in private:
        if inside(resolve(path)):
            section, _, name = key.rpartition(".")
            problems.append(
                f"{_where(origin, text, key)}: [{section}] {name} puts {what} inside {shown}/, whose "
                f"files are published as they are; keep it out of [build] content (e.g. beside "
                "config.toml), or give the articles a folder of their own"
            )
    held = [name for name in (_SECRET_FILE, SECRETS_FILE, _CACHE_FOLDER) if inside(resolve(root / name))]
    if held:
        problems.append(
            f"{_where(origin, text, 'build.content')}: [build] content = {content_value!r} holds the "
            f"publication's private files ({', '.join(held)}, beside config.toml), whose files would "
            "be published as they are; give the articles a folder of their own, e.g. content = \"content\""
        )
    return problems


def settings_markdown() -> str:
    """The configuration reference as a Markdown table (README.md carries it verbatim)."""
    rows = ["| key | default | help |", "| --- | --- | --- |"]
    for setting in (*SETTINGS, *SOURCE_KEYS, *POOL_KEYS):
        if setting.required:
            default = "*required*"
        elif setting.default in ("", [], ()):
            default = "(empty)"
        else:
            default = f"`{setting.default!r}`".replace("'", '"').replace("True", "true").replace(
                "False", "false"
            )
        extra = f" One of: {', '.join(setting.choices)}." if setting.choices else ""
        if setting.range is not None:
            extra += f" Range: {setting.range_text}."
        rows.append(f"| `{setting.key}` | {default} | {setting.help}{extra} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(settings_markdown(), end="")
