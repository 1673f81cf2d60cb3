"""Checks before a send: what a careful author looks at before an issue reaches the list.

    subject        at most 60 characters show in most inboxes; over 78 is cut everywhere
    preheader      a summary that the inbox shows beside the subject
    pictures       each picture of the body and the lead image is described (alt text,
                   `image_alt`), as is any a template adds; the site's own are in the
                   content folder (media/...); others answer (only when asked:
                   `external=True`). One check: a picture is named once, as the author
                   wrote it (`/media/<name>`, the file the Media page lists), never by
                   the resized copy the email carries
    own links      links into the publication's site lead to a page the build wrote
    other links    links to other sites answer (only when asked: `external=True`)
    size           the HTML under Gmail's clipping size (`newsletter.clip_warning_bytes`)
    postal address the footer carries `publication.postal_address` (CAN-SPAM, CASL)
    unsubscribe    the one-click unsubscribe link is in the HTML and the text
    spam score     SpamAssassin's verdict, where `spamassassin` is installed
    DNS            the SPF, DKIM (with the configured key's TXT value) and DMARC records,
                   looked up only when asked (`lookups=True`)
    sender rules   Gmail's and Yahoo's rules for bulk senders (`sender_rules`): DKIM's d=
                   and the return path aligned with From, one-click unsubscribe in the
                   message as it leaves; with `lookups`, SPF naming the sending host and
                   DMARC published and aligned

`checks` and `dns_checks` are pure: the rendered issue and what the edge found in,
`Check`s out. `run_checks` is the edge: it reads the build output and the DKIM key and
runs SpamAssassin; on request (the desk's "check links and DNS too") it also fetches
every link to another site, through `publisher.content.fetch` (its address rules, a few seconds
each, several at once), and asks DNS for the three records with a short timeout. A plain
check never waits on other sites or on DNS: the records are then listed for the author
to compare with their DNS provider's.

Two readers, two wordings. The CLI's reader edits config.toml, so a check or a warning names
the file and the key (`[publication] postal_address`); the desk's author changes the same
thing in Settings. `desk_words` turns each such message into the desk's: where in Settings,
and what to do there. `SETTINGS_WORDS` holds both wordings side by side, the one place to
keep them together; a message without a config key passes through unchanged.

Links to other sites are asked, not downloaded (`fetch.probe`: HEAD, else the first few KB),
so a 50 MB PDF answers like a page. Nothing outside may hold a check: each link has
LINK_TIMEOUT seconds in all, connect to last byte, however slowly a server drips; all the
links of one check have CHECK_SECONDS together; and every check in the process shares one
pool of LINK_THREADS threads, so fifty checks at once queue their links rather than
multiply threads. A link that was never asked (past MAX_LINKS, or still waiting when the
check's time was up) is reported as not checked, with why, never as broken.
"""

from __future__ import annotations

import asyncio
import base64
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formataddr
from functools import partial
from typing import Any
from urllib.parse import unquote, urlsplit

import dns.exception
import dns.resolver
import httpx
import lxml.html
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from publisher.config import Config, provider_said
from publisher.content import fetch, media
from publisher.errors import PublisherError, SourceError
from publisher.mail import sender_rules
from publisher.mail.dkim_signing import DkimKey, DkimSigner
from publisher.mail.mime import MessageTemplate, Recipient, split_mailbox
from publisher.models import Article, RenderedIssue

__all__ = [
    "CHECKS_AT_ONCE", "CHECK_SECONDS", "DNS_TIMEOUT", "LINK_THREADS", "LINK_TIMEOUT", "MAX_LINKS", "NOT_CHECKED",
    "SETTINGS_WORDS", "Check", "DnsRecord", "checks", "desk_words", "dns_checks", "dns_records",
    "external_links", "image_check", "images_of", "look_up", "probe_images", "probe_links", "run_checks",
    "run_checks_apart", "sender_rule_checks", "sent_message",
]

APP_PATHS = ("/unsubscribe/", "/confirm/", "/manage/", "/subscribe")
"""Links the HTTP app answers, not the build: never "no page" because public/ lacks them."""
SUBJECT_SHOWN = 60
SUBJECT_MAX = 78
SPAM_TIMEOUT = 20.0
DNS_TIMEOUT = 3.0
"""Seconds for each DNS look-up, retries included."""
LINK_TIMEOUT = 8.0
"""Seconds for each link to another site in all, connect to last byte (at most `fetch.timeout`)."""
CHECK_SECONDS = 20.0
"""Seconds for all the links of one check together; those not asked by then are not checked."""
MAX_LINKS = 40
"""Links to other sites fetched per check; the rest are named as not checked."""
LINK_THREADS = 16
"""Links asked at once, by every check of the process together."""
NOT_CHECKED = "not checked: "
"""How a link's problem starts when the link was never asked (the reason follows)."""
_LINK_WORKERS = 8
_SCORE = re.compile(rb"score=(-?[0-9.]+) required=([0-9.]+)")


POSTAL_MISSING = "Set [publication] postal_address in config.toml: the law asks for it."
DKIM_KEY_WHY = "DKIM: the public half of a [delivery.dkim] key."
DKIM_PROVIDER_WHY = "DKIM: publish your provider's key, or set [delivery.dkim] to sign here."

SETTINGS_WORDS: tuple[tuple[re.Pattern[str], str], ...] = (
    # (what the CLI's messages say: the config key, in any of its messages; the desk's words)
    (re.compile(r"\[publication\] postal_address"),
     "Add your postal address in Settings (Publication): every email must carry it, the law asks for it."),
    (re.compile(r"\[publication\] logo (?P<logo>'[^']*'|\"[^\"]*\") is an SVG image"),
     "The logo in Settings (Publication), {logo}, is an SVG image, which Gmail and Outlook do not show: "
     "the newsletter's masthead would have an empty space. Give the address of a PNG (96 px high or "
     "more) there instead."),
    (re.compile(re.escape(DKIM_KEY_WHY)), "DKIM: the public half of the key named in Settings (DKIM signing)."),
    (re.compile(re.escape(DKIM_PROVIDER_WHY)),
     "DKIM: publish your provider's key, or fill in DKIM signing in Settings to sign here."),
    (re.compile(r"\[delivery\.dkim\] (?:selector|private_key_file) is required when domain is set"),
     "DKIM signing in Settings has a signing domain but no selector or key file: fill them in "
     "(\"Generate a key\" writes one), or empty the signing domain."),
    (re.compile(r"\[delivery\.dkim\] private_key_file (?P<file>'[^']*'|\"[^\"]*\")"),
     "The DKIM key file in Settings (DKIM signing), {file}, cannot be used: generate a new key there."),
    (re.compile(r"\[newsletter\] from must be an address such as (?P<example>\"[^\"]*\"), got (?P<got>.*)\Z"),
     "The sender address in Settings (Sender) must be an address such as dana@example.org, "
     "not {got}: correct it there."),
    (re.compile(r"\[newsletter\] reply_to must be an address such as (?P<example>\"[^\"]*\"), got (?P<got>.*)\Z"),
     "The reply-to address in Settings (Sender) must be an address such as dana@example.org, "
     "not {got}: correct it or empty it there."),
)


def desk_words(message: str) -> str:
    """The desk's wording of a check, a warning or a refusal that names a config key:
    where in Settings and what to do there. The CLI keeps `message` as it is."""
    for pattern, words in SETTINGS_WORDS:
        found = pattern.search(message)
        if found:
            return words.format(**found.groupdict())
    return message


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool | None
    """True passed, False needs fixing, None could not be checked here."""
    detail: str
    blocking: bool = False
    """A failure that must stop a send: the message would break a law or a reader's trust
    (no unsubscribe link, no postal address, a picture a reader cannot see or hear about)."""

    @property
    def stops_send(self) -> bool:
        return self.blocking and self.ok is False


@dataclass(frozen=True, slots=True)
class DnsRecord:
    name: str
    type: str
    value: str
    why: str
    kind: str = ""
    """SPF, DKIM or DMARC: what `dns_checks` compares."""


def _template_images_without_alt(html: str, article: Article) -> list[str]:
    """Pictures the email's template adds (a logo, say) with no alt at all. The article's
    own are not among them: `image_check` names those, and the email's layout gives
    Markdown's `![](photo.jpg)` an `alt=""` that would hide them here."""
    if not html.strip():
        return []
    own = {image.url for image in images_of(article)}
    found = [
        str(img.get("src", "")).strip() for img in lxml.html.fromstring(html).iter("img")
        if img.get("alt") is None
    ]
    return [src for src in dict.fromkeys(found) if src not in own]


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


def external_links(html: str, config: Config) -> list[str]:
    """The http(s) links of `html` that lead off the publication's site and app, in order."""
    if not html.strip():
        return []
    own = tuple(u.rstrip("/") for u in (config.site_url, config.public_url))
    found = []
    for anchor in lxml.html.fromstring(html).iter("a"):
        href = str(anchor.get("href", "")).strip()
        if urlsplit(href).scheme not in ("http", "https"):
            continue
        if any(href == u or href.startswith(u + "/") for u in own):
            continue
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
    other_links: Mapping[str, str] | None = None,
) -> list[Check]:
    """The checks for one article's newsletter as a reader gets it (sample values spliced).

    `page_exists(path)` says whether the build wrote a page at a site path; `spam` is
    SpamAssassin's (score, threshold), or None where it is not installed; `other_links`
    is what fetching each link to another site found (link -> problem, "" when it
    answered), or None when they were not fetched.
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
    found.append(_other_links_check(other_links))
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
            Check(
                "Postal address", False, POSTAL_MISSING,
                blocking=config["delivery.provider"] != "maildir",  # the demo's outbox reaches nobody
            )
        )
    has_unsubscribe = "/unsubscribe/" in html and "/unsubscribe/" in text
    found.append(
        Check(
            "Unsubscribe link", has_unsubscribe,
            "One-click unsubscribe is in both parts." if has_unsubscribe
            else "A template override lost the unsubscribe link: put {{ unsubscribe_url }} back.",
            blocking=True,
        )
    )
    if spam is None:
        found.append(Check("Spam score", None, "SpamAssassin is not installed on this server."))
    else:
        score, required = spam
        verdict = f"SpamAssassin scores {score:.1f} (spam from {required:.1f})."
        found.append(Check("Spam score", score < required, verdict))
    return found


def _other_links_check(found: Mapping[str, str] | None) -> Check:
    name = "Links to other sites"
    if found is None:
        return Check(name, None, "Not checked: press “Check links and DNS too” to fetch each one.")
    if not found:
        return Check(name, True, "There are none.")
    skipped = {link: why[len(NOT_CHECKED):] for link, why in found.items() if why.startswith(NOT_CHECKED)}
    checked = {link: problem for link, problem in found.items() if link not in skipped}
    note = ""
    if skipped:
        reasons = "; ".join(dict.fromkeys(skipped.values()))
        note = f" {len(skipped)} not checked ({reasons})."
    broken = [f"{link} ({problem})" for link, problem in checked.items() if problem]
    if broken:
        shown = "; ".join(broken[:5])
        return Check(name, False, f"{len(broken)} of {len(checked)} checked did not answer: {shown}.{note}")
    if skipped:
        return Check(name, None, f"{len(checked)} checked, all answered.{note}")
    return Check(name, True, f"All {len(found)} answered.")


_POOL: list[ThreadPoolExecutor] = []
_POOL_LOCK = threading.Lock()


def _link_pool() -> ThreadPoolExecutor:
    """The threads every check of this process asks its links on (made on first use)."""
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(max_workers=LINK_THREADS, thread_name_prefix="link-check"))
        return _POOL[0]


def probe_links(
    config: Config, links: Sequence[str], *, client: httpx.Client | None = None, within: float | None = None
) -> dict[str, str]:
    """Ask each link whether it answers (the first MAX_LINKS, on the shared link threads):
    link -> problem, "" when it answered, NOT_CHECKED and why when it was never asked.

    Each link has LINK_TIMEOUT seconds (at most `fetch.timeout`) in all, and the whole
    call returns within `within` seconds (CHECK_SECONDS) however the sites behave.
    """
    within = CHECK_SECONDS if within is None else within
    timeout = min(float(config["fetch.timeout"]), LINK_TIMEOUT)
    ends = time.monotonic() + within
    late = f"{NOT_CHECKED}the check's {within:g} s were up"

    def one(link: str) -> str:
        budget = min(timeout, ends - time.monotonic())
        if budget <= 0:
            return late
        try:
            fetch.probe(link, config=config, timeout=budget, client=client)
        except SourceError as exc:  # FetchRefused too: unsafe, too slow
            if budget < timeout and time.monotonic() >= ends:
                return late  # cut short by the check's deadline, not by the site
            return str(exc)
        return ""

    wanted = list(links)[:MAX_LINKS]
    pool = _link_pool()
    futures: dict[str, Future[str]] = {link: pool.submit(one, link) for link in wanted}
    wait(list(futures.values()), timeout=max(0.0, ends - time.monotonic()) + 1.0)
    found: dict[str, str] = {}
    for link, future in futures.items():
        if future.done() and not future.cancelled():
            found[link] = future.result()
        else:
            future.cancel()  # still queued: never asked; one still running ends by its own deadline
            found[link] = late
    for link in list(links)[MAX_LINKS:]:
        found[link] = f"{NOT_CHECKED}the limit of {MAX_LINKS} links per check was reached"
    return found


CHECKS_AT_ONCE = 32
"""Checks run at once by `run_checks_apart`; more wait their turn."""
_CHECK_POOL: list[ThreadPoolExecutor] = []


async def run_checks_apart(config: Config, article: Article, **options: Any) -> tuple[list[Check], list[DnsRecord]]:
    """`run_checks` for a web request: on threads of its own (CHECKS_AT_ONCE), never on the
    event loop nor on the threads the server answers other requests with, so checks that
    wait on slow sites leave `/healthz`, the API and the desk answering."""
    with _POOL_LOCK:
        if not _CHECK_POOL:
            _CHECK_POOL.append(ThreadPoolExecutor(max_workers=CHECKS_AT_ONCE, thread_name_prefix="checks"))
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_CHECK_POOL[0], partial(run_checks, config, article, **options))


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
    domain = split_mailbox(str(config["newsletter.from"]))[1].rpartition("@")[2].strip().lower() or "example.org"
    provider = str(config["delivery.provider"])
    records = [
        DnsRecord(
            domain, "TXT", "v=spf1 mx ~all",
            f"SPF: add your provider's include (see {provider_said(provider)}'s domain settings) before ~all.", "SPF",
        ),
        DnsRecord(
            f"_dmarc.{domain}", "TXT", f"v=DMARC1; p=none; rua=mailto:postmaster@{domain}",
            "DMARC: start with p=none, move to quarantine once reports look right.", "DMARC",
        ),
    ]
    if signer is not None:
        records[1:1] = [
            DnsRecord(
                f"{key.selector}._domainkey.{signer.domain}", "TXT", _dkim_value(key),
                DKIM_KEY_WHY, "DKIM",
            )
            for key in signer.keys
        ]
    else:
        records.insert(
            1,
            DnsRecord(
                f"SELECTOR._domainkey.{domain}", "TXT", "(from your provider)",
                DKIM_PROVIDER_WHY, "DKIM",
            ),
        )
    return records


Lookup = Mapping[str, list[str] | str | None]
"""What DNS said for each record name: its TXT strings, None for no such record, or a
str saying why it could not be asked (no answer in time, no server)."""


def _tags(value: str) -> dict[str, str]:
    """The tag=value pairs of a DKIM or DMARC record, tag names lowered, spaces dropped."""
    pairs = (part.split("=", 1) for part in value.split(";") if "=" in part)
    return {k.strip().lower(): "".join(v.split()) for k, v in pairs}


def dns_checks(records: Sequence[DnsRecord], found: Lookup) -> list[Check]:
    """The published records against the ones `dns_records` asks for: SPF and DMARC
    present (once), each DKIM key published with the configured key's value."""
    result: list[Check] = []
    for record in records:
        answer = found.get(record.name)
        label = record.kind
        if label not in ("SPF", "DKIM", "DMARC"):
            continue
        name = f"DNS: {label} ({record.name})"
        if isinstance(answer, str):
            result.append(Check(name, None, f"Could not be looked up: {answer}."))
            continue
        if label == "DKIM" and record.value.startswith("("):
            result.append(Check(name, None, "Signed by your provider: compare with the key it shows you."))
            continue
        texts = answer or []
        if label == "DKIM":
            wanted = _tags(record.value).get("p", "")
            keys = [_tags(t).get("p") for t in texts if _tags(t).get("p") is not None]
            if wanted in keys:
                result.append(Check(name, True, "Publishes the public half of your signing key."))
            elif keys:
                result.append(Check(name, False, "Publishes another key than the one publisher signs with: "
                                                 f"replace it with {record.value}"))
            else:
                result.append(Check(name, False, f"No DKIM key there: publish {record.value}"))
            continue
        prefix = "v=spf1" if label == "SPF" else "v=dmarc1"
        matching = [t for t in texts if t.strip().lower().startswith(prefix)]
        if len(matching) == 1:
            result.append(Check(name, True, f"Published: {matching[0]}"))
        elif matching:
            result.append(Check(name, False, f"{len(matching)} {label} records: receivers ignore them all; "
                                             "merge them into one."))
        else:
            result.append(Check(name, False, f"None published: add a TXT record such as {record.value}"))
    return result


def look_up(names: Sequence[str], resolver: dns.resolver.Resolver | None = None) -> dict[str, list[str] | str | None]:
    """The TXT strings at each name (None: no such record), within DNS_TIMEOUT each.

    A record split into several strings (as long DKIM keys are) is joined back into one.
    """
    if resolver is None:
        resolver = dns.resolver.Resolver()
        resolver.timeout = resolver.lifetime = DNS_TIMEOUT
    found: dict[str, list[str] | str | None] = {}
    for name in dict.fromkeys(names):
        try:
            answer = resolver.resolve(name, "TXT", lifetime=DNS_TIMEOUT, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            found[name] = None
        except dns.exception.Timeout:
            found[name] = f"no answer within {DNS_TIMEOUT:g} s"
        except dns.exception.DNSException as exc:
            found[name] = str(exc) or type(exc).__name__
        else:
            found[name] = [
                b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer
            ]
    return found


@dataclass(frozen=True, slots=True)
class _Image:
    url: str
    alt: str | None
    lead: bool
    srcset: tuple[str, ...] = ()


def images_of(article: Article) -> list[_Image]:
    """The article's pictures: its lead image (`image:`), then each `img` of its body."""
    found = [_Image(article.image, article.image_alt, True)] if article.image else []
    if article.html.strip():
        for img in lxml.html.fromstring(article.html).iter("img"):
            srcset = tuple(part.split()[0] for part in str(img.get("srcset", "")).split(",") if part.strip())
            found.append(_Image(str(img.get("src", "")).strip(), img.get("alt"), False, srcset))
    return found


def _as_written(image: _Image, config: Config) -> str:
    """How the author knows a picture: the lead image as such (there is one, and the
    email carries a resized copy of it whose name she never wrote); a stored picture by
    the name she wrote (`/media/<name>`, the widest of its sizes, the one the Media page
    lists) rather than the resized copy the email carries; another site's by its address."""
    if image.lead:
        return "the lead image"
    stored = [n for n in (media.media_name_of(u, config.site_url) for u in (image.url, *image.srcset)) if n]
    if stored:
        return f"the picture /{media.FOLDER}/{max(stored, key=lambda n: n.width).name}"
    return f"the picture {image.url}"


def _own_path(url: str, config: Config) -> str | None:
    """The path of `url` under the site (`media/x.jpg`), or None for another site's."""
    site = urlsplit(config.site_url.rstrip("/") + "/")
    parts = urlsplit(url)
    if parts.netloc.lower() != site.netloc.lower() or not parts.path.startswith(site.path):
        return None
    return unquote(parts.path[len(site.path):])


def image_check(
    config: Config, article: Article, *, file_exists: Callable[[str], bool],
    other_images: Mapping[str, str] | None = None, html: str = "",
) -> Check:
    """Every picture described, the site's own present in the content folder, others
    answering. `file_exists(path)` says whether the content folder (or the build) has the
    site path `path`; `other_images` is what fetching each image of another site found
    (url -> problem, "" when it answered), or None when they were not fetched; `html`,
    the email as rendered, adds the pictures its template brings (each must have an alt).

    A picture without words or without its file stops a send (a reader would get a
    broken or unexplained picture); one on another site that did not answer does not
    (it may be down a moment, and only the deep check asks)."""
    name = "Pictures"
    problems: list[str] = []
    unseen = 0  # problems that leave a reader without the picture or word of it
    images = images_of(article)
    for image in images:
        label = _as_written(image, config)
        if image.alt is None or not image.alt.strip():
            how = (
                "add image_alt: to the front matter" if image.lead
                else "write it between the brackets: ![what it shows](…)"
            )
            problems.append(f"{label} has no alt text ({how})")
            unseen += 1
        # One line a picture, whichever of its sizes is gone: the author uploads a picture,
        # not its widths, and one upload again writes every width back.
        missing = [
            path for path in (_own_path(url, config) for url in dict.fromkeys((image.url, *image.srcset)))
            if path is not None and not file_exists(path)
        ]
        if missing:
            problems.append(
                f"{label} is not in the content folder (content/{missing[-1]}"
                + (f" and {len(missing) - 1} more of its sizes" if len(missing) > 1 else "")
                + "); upload it again on the Media page or fix the address"
            )
            unseen += 1
    for src in _template_images_without_alt(html, article):
        problems.append(f"the template's picture {src} has no alt text (give its img an alt=\"…\")")
        unseen += 1
    others = [i.url for i in images if _own_path(i.url, config) is None]
    if other_images is not None:
        problems += [f"{url} did not answer ({why})" for url, why in other_images.items() if why]
    if problems:
        shown = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
        return Check(name, False, shown[:1].upper() + shown[1:] + ".", blocking=unseen > 0)
    if not images:
        return Check(name, True, "There are none.")
    if others and other_images is None:
        return Check(
            name, True,
            f"{len(images)} described, yours all present; {len(others)} from other sites not fetched: "
            "press “Check links and DNS too” to fetch them.",
        )
    return Check(name, True, f"All {len(images)} described and present.")


def probe_images(config: Config, article: Article, *, client: httpx.Client | None = None) -> dict[str, str]:
    """Fetch each picture of another site in `article` (the first MAX_LINKS): url -> problem."""
    timeout = min(float(config["fetch.timeout"]), LINK_TIMEOUT)
    limited = replace(config, values={**config.values, "fetch.timeout": timeout})
    wanted = list(dict.fromkeys(
        i.url for i in images_of(article)
        if _own_path(i.url, config) is None and urlsplit(i.url).scheme in ("http", "https")
    ))[:MAX_LINKS]

    def one(url: str) -> str:
        try:
            fetch.fetch(url, config=limited, client=client, accept="image/*")
        except SourceError as exc:
            return str(exc)
        return ""

    with ThreadPoolExecutor(max_workers=_LINK_WORKERS) as pool:
        return dict(zip(wanted, pool.map(one, wanted), strict=True))


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
    message["From"] = formataddr(split_mailbox(str(config["newsletter.from"])))
    message["To"] = "reader@example.com"
    message["Subject"] = subject
    message["List-Unsubscribe"] = f"<{config.public_url}/unsubscribe/preview>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return bytes(message)


def run_checks(
    config: Config, article: Article, *, subject: str, html: str, text: str, external: bool = False,
    lookups: bool = False, resolver: dns.resolver.Resolver | None = None, client: httpx.Client | None = None,
    spam: bool = True,
) -> tuple[list[Check], list[DnsRecord]]:
    """`checks` with what this server can find out, and the DNS records to publish.

    With `external`, every link to another site is fetched (`client` routes them in
    tests); with `lookups`, the records are looked up (through `resolver`, else the system's).
    Without `spam`, SpamAssassin is not asked (it takes seconds: the checks a send makes skip it).
    """
    output = config.path_of("build.output")

    def page_exists(path: str) -> bool:
        relative = path.strip("/")
        target = (output / relative).resolve()
        if not target.is_relative_to(output):
            return False
        return target.is_file() or (target / "index.html").is_file() or relative == ""

    signer = DkimSigner.from_config(config)
    records = dns_records(config, signer)
    found = checks(
        config, article, subject=subject, html=html, text=text, page_exists=page_exists,
        spam=_spam_score(_message(config, subject, html, text)) if spam and shutil.which("spamassassin") else None,
        other_links=probe_links(config, external_links(html, config), client=client) if external else None,
    )
    content = config.path_of("build.content")

    def file_exists(path: str) -> bool:
        return any(
            (root / path).resolve().is_relative_to(root.resolve()) and (root / path).is_file()
            for root in (content, output)
        )

    found.append(image_check(
        config, article, file_exists=file_exists,
        other_images=probe_images(config, article, client=client) if external else None, html=html,
    ))
    dkim_published: bool | None = None
    if lookups:
        # A placeholder (a provider's key under a selector we do not know) is not asked for.
        published = dns_checks(records, look_up([r.name for r in records if not r.value.startswith("(")], resolver))
        found += published
        dkim = [c.ok for c in published if c.name.startswith("DNS: DKIM")]
        dkim_published = False if False in dkim else (True if dkim and all(dkim) else None)
    if config["delivery.provider"] != "maildir":  # the demo's outbox reaches no mailbox provider
        found += sender_rule_checks(
            config, signer, sent_message(config, signer, subject, html, text),
            sender_rules.LiveDns(resolver, timeout=DNS_TIMEOUT) if lookups else None, dkim_published=dkim_published,
        )
    return found, records


_SAMPLE_DATE = datetime(2024, 2, 1, tzinfo=UTC)
"""The Date of the sample message the rules read (any date serves)."""


def sent_message(config: Config, signer: DkimSigner | None, subject: str, html: str, text: str) -> bytes | None:
    """The issue as one sample reader gets it, headers and DKIM signature as a send makes
    them; None when the config cannot make one (the send's own checks say why)."""
    try:
        template = MessageTemplate.from_rendered(config, RenderedIssue("preflight", subject, html, text), dkim=signer)
        domain = template.sender_address.rpartition("@")[2] or "localhost"
        reader = Recipient(
            delivery_id=None, email="reader@example.com", name="",
            unsubscribe_url=f"{config.public_url}/unsubscribe/preview", message_id=f"<preflight@{domain}>",
        )
        return template.message_bytes(reader, _SAMPLE_DATE)
    except (PublisherError, ValueError):
        return None


def sender_rule_checks(
    config: Config, signer: DkimSigner | None, message: bytes | None, dns_view: sender_rules.Dns | None, *,
    dkim_published: bool | None = None,
) -> list[Check]:
    """`sender_rules.rules` as checks (none stops a send: each says what to publish or change)."""
    setup = sender_rules.sender_setup(config, signer)
    return [
        Check(rule.name, rule.ok, rule.detail)
        for rule in sender_rules.rules(setup, message, dns_view, dkim_key_published=dkim_published)
    ]

