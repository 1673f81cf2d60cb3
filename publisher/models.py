"""The values that flow through publisher. Frozen, so a stage can never alter another's input."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Article:
    """One published (or draft) article, ready for feeds and newsletters.

    `html` is sanitised and every link and image in it is absolute. `id` never changes
    when the article is edited (feeds and the ledger key on it).
    """

    slug: str
    title: str
    date: datetime
    html: str
    id: str
    url: str
    author: str = ""
    summary: str = ""
    updated: datetime | None = None
    tags: tuple[str, ...] = ()
    image: str | None = None
    image_alt: str = ""
    draft: bool = False
    send_at: datetime | None = None
    source: str = ""
    """Where the article came from: a file path or a remote URL (for error messages)."""

    @property
    def modified(self) -> datetime:
        """The latest of date and updated: what feeds call `updated`."""
        return self.updated if self.updated and self.updated > self.date else self.date

    def is_public(self, now: datetime) -> bool:
        """Drafts and articles dated in the future appear nowhere."""
        return not self.draft and self.date <= now


class IssueKind(enum.StrEnum):
    ARTICLE = "article"
    DIGEST = "digest"


@dataclass(frozen=True, slots=True)
class Issue:
    """What goes out as one newsletter: one article, or a digest of several."""

    key: str
    """Stable identity in the ledger: the article id, or `digest:<date>`."""
    kind: IssueKind
    subject: str
    articles: tuple[Article, ...]
    preheader: str = ""
    web_url: str = ""
    """The "view in browser" address."""


@dataclass(frozen=True, slots=True)
class RenderedIssue:
    """An issue rendered once: HTML inlined by premailer and the text part.

    Per-recipient values are placeholder tokens (see `newsletter.PLACEHOLDERS`) that
    survive inlining and are spliced in per recipient.
    """

    key: str
    subject: str
    html: str
    text: str
    warnings: tuple[str, ...] = ()


_PERSON_RE = re.compile(r"\s*(?P<name>[^<>]*?)\s*<(?P<email>[^<>\s@]+@[^<>\s@]+)>\s*")
_ADDRESS_RE = re.compile(r"[^<>\s@]+@[^<>\s@]+")


def split_person(text: str) -> tuple[str, str]:
    """An author as written, "Dana Reyes <dana@example.org>", as (name, email).

    Text without an address is all name; a bare address is all email (name ""). Feeds
    put each part in its own element, pages and mails show the name only.
    """
    match = _PERSON_RE.fullmatch(text)
    if match:
        return match.group("name").strip().strip('"').strip(), match.group("email")
    if _ADDRESS_RE.fullmatch(text.strip()):
        return "", text.strip()
    return text.strip(), ""


class SubscriberStatus(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


@dataclass(frozen=True, slots=True)
class Subscriber:
    id: int
    email: str
    name: str = ""
    status: SubscriberStatus = SubscriberStatus.ACTIVE
    tags: tuple[str, ...] = ()
    timezone: str | None = None
    created_at: datetime | None = None
    confirmed_at: datetime | None = None
    """When they consented: confirmed here, or signed up on the platform they were imported from."""
    source: str = ""
    """Where they came from: cli, web, or the platform and file of an import."""
    opted_in_at: datetime | None = None
    """When they opted in on the service they were moved in from, where it said."""
    consent_text: str = ""
    """What that service recorded about their consent (form, address, plan, file)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One finished email for one recipient: RFC 5322 bytes plus the envelope.

    HTTP API providers that cannot take raw MIME read the parts they need from
    `subject`, `html`, `text` and `headers`.
    """

    delivery_id: int | None
    recipient: str
    sender: str
    message_id: str
    raw: bytes
    subject: str = ""
    html: str = ""
    text: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    """Extra headers for API providers (List-Unsubscribe, List-Id, ...)."""


class Outcome(enum.StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class SendResult:
    """What a provider did with one message."""

    delivery_id: int | None
    recipient: str
    outcome: Outcome
    detail: str = ""
    provider_id: str = ""
    retry_after: float | None = None
    maybe_sent: bool = False
    """Not SENT, yet the provider may have taken it (no answer after the data left)."""


@dataclass(frozen=True, slots=True)
class BuildReport:
    """What `publisher build` wrote, left alone and warned about."""

    written: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)
    removed: tuple[str, ...] = ()
    """Files an earlier build wrote that no longer have a source (a removed article)."""


@dataclass(frozen=True, slots=True)
class IssueStatus:
    """Per-issue counts; `uncertain` counts rows that may have been sent twice."""

    issue_id: int
    key: str
    slug: str
    subject: str
    status: str
    created_at: datetime
    queued: int = 0
    sending: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    skipped: int = 0
    uncertain: int = 0

    @property
    def total(self) -> int:
        return self.queued + self.sending + self.sent + self.retrying + self.failed + self.skipped

    @property
    def remaining(self) -> int:
        return self.queued + self.sending + self.retrying
