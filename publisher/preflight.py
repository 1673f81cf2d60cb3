"""Checks before a send: what a careful author looks at before an issue reaches the list.

    subject        at most 60 characters show in most inboxes; over 78 is cut everywhere
    preheader      a summary that the inbox shows beside the subject
    alt text       every image has an alt attribute (screen readers, blocked images)
    own links      links into the publication's site lead to a page the build wrote
    size           the HTML under Gmail's clipping size (`newsletter.clip_warning_bytes`)
    postal address the footer carries `publication.postal_address` (CAN-SPAM, CASL)
    unsubscribe    the one-click unsubscribe link is in the HTML and the text
    spam score     SpamAssassin's verdict, where `spamassassin` is installed
    DNS            the SPF, DKIM (with the configured key's TXT value) and DMARC records

`checks` is pure: the rendered issue and what the edge found in, `Check`s out.
`run_checks` is the edge: it reads the build output, the DKIM key and runs SpamAssassin.
Links to other sites are not fetched (a send must not wait on them), and DNS is not
queried: the records are listed for the author to compare with their DNS provider's.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import urlsplit

import lxml.html
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from publisher.config import Config
from publisher.dkim_signing import DkimKey, DkimSigner
from publisher.models import Article

__all__ = ["Check", "DnsRecord", "checks", "dns_records", "run_checks"]

APP_PATHS = ("/unsubscribe/", "/confirm/", "/manage/", "/subscribe")
"""Links the HTTP app answers, not the build: never "no page" because public/ lacks them."""
SUBJECT_SHOWN = 60
SUBJECT_MAX = 78
SPAM_TIMEOUT = 20.0
_SCORE = re.compile(rb"score=(-?[0-9.]+) required=([0-9.]+)")


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool | None
    """True passed, False needs fixing, None could not be checked here."""
    detail: str


@dataclass(frozen=True, slots=True)
class DnsRecord:
    name: str
    type: str
    value: str
    why: str


def _images_without_alt(html: str) -> list[str]:
    if not html.strip():
        return []
    tree = lxml.html.fromstring(html)
    return [str(img.get("src", "")) for img in tree.iter("img") if img.get("alt") is None]


def _own_links(html: str, site_url: str) -> list[str]:
    if not html.strip():
        return []
    tree = lxml.html.fromstring(html)
    prefix = site_url.rstrip("/") + "/"
    found = []
    for anchor in tree.iter("a"):
        href = str(anchor.get("href", ""))
        if href.startswith(prefix) or href == site_url.rstrip("/"):
            found.append(href)
    return list(dict.fromkeys(found))


def checks(
    config: Config,
    article: Article,
    *,
    subject: str,
    html: str,
    text: str,
    page_exists: Callable[[str], bool],
    spam: tuple[float, float] | None,
) -> list[Check]:
    """The checks for one article's newsletter as a reader gets it (sample values spliced).

    `page_exists(path)` says whether the build wrote a page at a site path; `spam` is
    SpamAssassin's (score, threshold), or None where it is not installed.
    """
    found: list[Check] = []
    length = len(subject)
    if length <= SUBJECT_SHOWN:
        found.append(Check("Subject length", True, f"{length} characters: shown whole in most inboxes."))
    else:
        cut = "cut in every inbox" if length > SUBJECT_MAX else "cut on phones"
        found.append(Check("Subject length", False, f"{length} characters: {cut}; aim for {SUBJECT_SHOWN} or fewer."))
    if article.summary.strip():
        found.append(Check("Preheader", True, f"Inboxes show: “{article.summary[:90]}”"))
    else:
        found.append(Check("Preheader", False, "No summary: add one (or a first paragraph) for the inbox preview."))
    missing_alt = _images_without_alt(html)
    if missing_alt:
        found.append(Check("Images have alt text", False, "Without alt text: " + ", ".join(missing_alt[:5])))
    else:
        found.append(Check("Images have alt text", True, "Every image has alt text."))
    broken = []
    for href in _own_links(html, config.site_url):
        path = urlsplit(href).path
        if path.strip("/") == article.slug or path.startswith(APP_PATHS):
            continue  # this article's own page appears with the send; the app answers the rest
        if not page_exists(path):
            broken.append(href)
    if broken:
        found.append(Check("Links to your site", False, "No page at: " + ", ".join(broken[:5])))
    else:
        found.append(Check("Links to your site", True, "Every link into your site leads to a page."))
    found.append(Check("Links to other sites", None, "Not checked: open them from the preview to be sure."))
    size = len(html.encode("utf-8"))
    limit = int(config["newsletter.clip_warning_bytes"])
    found.append(
        Check("Size", size <= limit, f"{size / 1024:.0f} KB of HTML; Gmail clips messages over {limit / 1024:.0f} KB.")
    )
    address = str(config["publication.postal_address"]).strip()
    if address and address in html:
        found.append(Check("Postal address", True, f"The footer carries “{address}”."))
    else:
        found.append(
            Check("Postal address", False, "Set [publication] postal_address in config.toml: the law asks for it.")
        )
    has_unsubscribe = "/unsubscribe/" in html and "/unsubscribe/" in text
    found.append(
        Check(
            "Unsubscribe link", has_unsubscribe,
            "One-click unsubscribe is in both parts." if has_unsubscribe
            else "A template override lost the unsubscribe link: put {{ unsubscribe_url }} back.",
        )
    )
    if spam is None:
        found.append(Check("Spam score", None, "SpamAssassin is not installed on this server."))
    else:
        score, required = spam
        verdict = f"SpamAssassin scores {score:.1f} (spam from {required:.1f})."
        found.append(Check("Spam score", score < required, verdict))
    return found


def _dkim_value(key: DkimKey) -> str:
    """The TXT value that publishes `key`'s public half (RFC 6376; Ed25519 per RFC 8463)."""
    public = key.key.public_key()
    if isinstance(public, Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode('ascii')}"
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode('ascii')}"


def dns_records(config: Config, signer: DkimSigner | None) -> list[DnsRecord]:
    """The records the sending domain should publish for mail to arrive."""
    sender = str(config["newsletter.from"])
    domain = sender.rpartition("@")[2].strip(" >").lower() or "example.org"
    provider = str(config["delivery.provider"])
    records = [
        DnsRecord(
            domain, "TXT", "v=spf1 mx ~all",
            f"SPF: add your provider's include (see {provider}'s domain settings) before ~all.",
        ),
        DnsRecord(
            f"_dmarc.{domain}", "TXT", f"v=DMARC1; p=none; rua=mailto:postmaster@{domain}",
            "DMARC: start with p=none, move to quarantine once reports look right.",
        ),
    ]
    if signer is not None:
        records[1:1] = [
            DnsRecord(
                f"{key.selector}._domainkey.{signer.domain}", "TXT", _dkim_value(key),
                "DKIM: the public half of a [delivery.dkim] key.",
            )
            for key in signer.keys
        ]
    else:
        records.insert(
            1,
            DnsRecord(
                f"SELECTOR._domainkey.{domain}", "TXT", "(from your provider)",
                "DKIM: publish your provider's key, or set [delivery.dkim] to sign here.",
            ),
        )
    return records


def _spam_score(message: bytes) -> tuple[float, float] | None:
    program = shutil.which("spamassassin")
    if program is None:
        return None
    try:
        done = subprocess.run(
            [program, "--local", "--test-mode"], input=message, capture_output=True, timeout=SPAM_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = _SCORE.search(done.stdout)
    return (float(found.group(1)), float(found.group(2))) if found else None


def _message(config: Config, subject: str, html: str, text: str) -> bytes:
    """The issue as one message, for SpamAssassin to read (headers as a send has them)."""
    message = EmailMessage()
    message["From"] = str(config["newsletter.from"])
    message["To"] = "reader@example.com"
    message["Subject"] = subject
    message["List-Unsubscribe"] = f"<{config.public_url}/unsubscribe/preview>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return bytes(message)


def run_checks(
    config: Config, article: Article, *, subject: str, html: str, text: str
) -> tuple[list[Check], list[DnsRecord]]:
    """`checks` with what this server can find out, and the DNS records to publish."""
    output = config.path_of("build.output")

    def page_exists(path: str) -> bool:
        relative = path.strip("/")
        target = (output / relative).resolve()
        if not target.is_relative_to(output):
            return False
        return target.is_file() or (target / "index.html").is_file() or relative == ""

    signer = DkimSigner.from_config(config)
    found = checks(
        config, article, subject=subject, html=html, text=text, page_exists=page_exists,
        spam=_spam_score(_message(config, subject, html, text)) if shutil.which("spamassassin") else None,
    )
    return found, dns_records(config, signer)

