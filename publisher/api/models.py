"""The API's request and response bodies, as pydantic models: the OpenAPI document's schemas.

Request bodies refuse unknown fields, so a misspelt field is an error rather than
silently ignored. Responses are made from the service layer's dataclasses by the
`from_*` constructors; nothing here touches the store.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from publisher.models import SubscriberStatus
from publisher.services.articles import ArticleState, ArticleView
from publisher.services.subscribers import MAX_TAG, MAX_TAGS

Tag = Annotated[str, Field(max_length=MAX_TAG)]
Email = Annotated[str, Field(max_length=320, description="An email address.")]


class Request(BaseModel):
    """A request body: unknown fields refused, and no coercion (`"pending": 0` is not false)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Problem(BaseModel):
    """RFC 9457 problem details: `type` is stable per kind of error, `detail` says what to do."""

    type: str = Field(examples=["urn:publisher:problem:not-found"])
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = Field(default=None, description="Per-field errors (validation only).")


class Subscriber(BaseModel):
    id: int
    email: str
    name: str
    status: SubscriberStatus
    tags: list[str]
    timezone: str | None
    created_at: datetime | None


class SubscriberReceipt(BaseModel):
    """The answer to a write by a key without `subscribers:read`: the id and what it sent, no more."""

    id: int
    email: str | None = None
    name: str | None = None
    tags: list[str] | None = None
    timezone: str | None = None


class SubscriberList(BaseModel):
    data: list[Subscriber]
    has_more: bool
    next_cursor: int | None = Field(description="Pass as `starting_after` for the next page; null on the last.")


class SubscriberCreate(Request):
    email: Email
    name: str = Field(default="", max_length=200)
    tags: list[Tag] = Field(default=[], max_length=MAX_TAGS)
    timezone: str | None = Field(default=None, max_length=64, description='IANA zone, e.g. "Europe/Berlin".')
    double_opt_in: bool = Field(
        default=True,
        description="true: added as pending and sent the confirmation mail. false: added as active at once; "
        "needs the admin scope and a consent_note.",
    )
    consent_note: str = Field(default="", max_length=500, description="How the person consented (kept on record).")
    resubscribe: bool = Field(default=False, description="Put back an address that left, only if they asked.")


class SubscriberUpdate(Request):
    name: str | None = Field(default=None, max_length=200)
    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS, description="Replaces the whole set.")
    timezone: str | None = Field(default=None, max_length=64, description='IANA zone; "" clears it.')


class Event(BaseModel):
    kind: str
    source: str
    detail: str
    created_at: datetime


class Delivery(BaseModel):
    issue_id: int
    subject: str
    state: str
    attempts: int
    sent_at: datetime | None
    detail: str


class SubscriberExport(BaseModel):
    subscriber: Subscriber
    events: list[Event]
    deliveries: list[Delivery]


class TagCount(BaseModel):
    tag: str
    active: int
    total: int


class TagList(BaseModel):
    data: list[TagCount]


class ImportRecord(Request):
    email: Email
    name: str = Field(default="", max_length=200)
    tags: list[Tag] = Field(default=[], max_length=MAX_TAGS)
    timezone: str | None = Field(default=None, max_length=64)
    status: str | None = Field(default=None, max_length=32, description="active (default), pending, unsubscribed, ...")


class ImportCreate(Request):
    csv: str | None = Field(default=None, description="A CSV export (Mailchimp, Substack, Buttondown, Ghost, ours).")
    subscribers: list[ImportRecord] | None = Field(default=None, description="Or the records themselves.")
    pending: bool = Field(default=False, description="Import active rows as pending (to confirm).")
    tags: list[Tag] = Field(default=[], max_length=MAX_TAGS, description="Tags given to every imported subscriber.")


class Rejection(BaseModel):
    row: int = Field(description="The CSV line, or the record's position (from 1) in `subscribers`.")
    reason: str


class ImportJob(BaseModel):
    id: int
    state: Literal["running", "done", "failed"]
    format: Literal["csv", "json"]
    rows_read: int
    imported: int
    updated: int
    kept: int
    rejected_count: int
    rejected: list[Rejection] = Field(description="The first 1,000 rejected rows.")
    detail: str
    created_at: datetime
    finished_at: datetime | None


class Article(BaseModel):
    slug: str
    title: str
    date: datetime
    updated: datetime | None
    author: str
    summary: str
    tags: list[str]
    draft: bool
    state: ArticleState
    url: str
    path: str = Field(description="The Markdown file, relative to the publication's folder.")
    issue_id: int | None

    @classmethod
    def from_view(cls, view: ArticleView) -> Article:
        a = view.article
        return cls(
            slug=a.slug, title=a.title, date=a.date, updated=a.updated, author=a.author, summary=a.summary,
            tags=list(a.tags), draft=a.draft, state=view.state, url=a.url, path=view.path, issue_id=view.issue_id,
        )


class ArticleDetail(Article):
    markdown: str = Field(description="The file's text: front matter and body.")


class ArticleList(BaseModel):
    data: list[Article]


class ArticleWrite(Request):
    markdown: str = Field(
        min_length=1, max_length=2_000_000,
        description="The whole file: YAML front matter between --- lines (title, date, ...) and the Markdown body.",
    )


class Preview(BaseModel):
    slug: str
    subject: str
    html: str
    text: str
    warnings: list[str]


class IssueCounts(BaseModel):
    queued: int
    sending: int
    sent: int
    retrying: int
    failed: int
    skipped: int
    uncertain: int = Field(description="Copies that were in flight when a sender stopped: maybe sent twice.")


class Issue(BaseModel):
    id: int
    key: str
    slug: str
    subject: str
    status: str = Field(description="draft, scheduled, sending or done")
    created_at: datetime
    counts: IssueCounts


class IssueList(BaseModel):
    data: list[Issue]


class IssueCreate(Request):
    article: str | None = Field(default=None, max_length=200, description="The slug of a published article.")
    digest: list[Annotated[str, Field(max_length=200)]] | None = Field(
        default=None, max_length=100, description="Or the slugs of the published articles of a digest."
    )


class TestSend(Request):
    addresses: list[Email] = Field(min_length=1, max_length=10)


class TestSent(BaseModel):
    slug: str
    addresses: list[str]


class Queued(BaseModel):
    issue_id: int
    added: int = Field(description="Copies queued now; readers who already had it are not queued again.")


class ScheduleCreate(Request):
    at: str = Field(
        max_length=32, pattern=r"^\s*\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2})?\s*$",
        description='Wall-clock time, "YYYY-MM-DD HH:MM".',
    )
    timezone: str | None = Field(
        default=None, max_length=64, description="IANA zone of `at` (default: the publication's)."
    )
    local_time: bool = Field(default=False, description="At the `at` hour of each subscriber's own day.")


class Schedule(BaseModel):
    id: int
    issue_id: int
    slug: str
    subject: str
    run_at: datetime = Field(description="When the send starts (UTC).")
    timezone: str = Field(description='The zone `wall_clock` is read in, or "local" for each reader\'s own.')
    wall_clock: str = Field(description='The date and time as the author gave them, "YYYY-MM-DD HH:MM".')
    local_time: bool = Field(description="true: each reader gets it at `wall_clock` on their own clock.")
    state: str = Field(description="pending, claimed, done, skipped or cancelled")
    detail: str


class ScheduleList(BaseModel):
    data: list[Schedule]


class Cancelled(BaseModel):
    schedules: list[Schedule]
    rows: int = Field(description="Queued copies taken back; copies already in flight still go out.")


class Failure(BaseModel):
    email: str
    state: str = Field(description="failed (for good) or retry (waits for another try)")
    attempts: int
    reason: str
    next_try: datetime | None = Field(description="When a retry goes out; null once failed for good.")


class FailureList(BaseModel):
    data: list[Failure]


class DayCounts(BaseModel):
    day: date
    joined: int
    confirmed: int
    left: int
    bounced: int
    complained: int


class DayList(BaseModel):
    data: list[DayCounts]


class IssueStats(BaseModel):
    issue_id: int
    sent: int
    failed: int
    bounced: int
    complained: int
    unsubscribed: int = Field(description="Readers who left within a week of their copy.")


class MinuteCount(BaseModel):
    minute: datetime
    sent: int


class MinuteList(BaseModel):
    data: list[MinuteCount]
