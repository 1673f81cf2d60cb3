"""The API's request and response bodies, as pydantic models: the OpenAPI document's schemas.

Request bodies refuse unknown fields, so a misspelt field is an error rather than
silently ignored. Responses are made from the service layer's dataclasses by the
`from_*` constructors; nothing here touches the store.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import available_timezones

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from publisher.models import SubscriberStatus
from publisher.services.articles import ArticleState, ArticleView
from publisher.services.imports import MAX_RECORDS
from publisher.services.subscribers import MAX_TAG, MAX_TAGS

Tag = Annotated[str, Field(max_length=MAX_TAG)]
_RESERVED = "|".join("".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in name)
                     for name in SPECIAL_USE_DOMAIN_NAMES)
Email = Annotated[str, Field(
    max_length=320, description="An email address (not at a special-use domain such as .test or .invalid).",
    json_schema_extra={"format": "email", "not": {"pattern": f"[@.](?:{_RESERVED})\\.?$"}},
)]
ZONES = ["", *sorted(available_timezones())]
"""The IANA zones this server knows ("" for none): the document lists them, so that a
client (and a fuzzer) knows which names the server takes."""
Zone = Annotated[str, Field(max_length=64, json_schema_extra={"enum": ZONES})]


class Request(BaseModel):
    """A request body: unknown fields refused, and no coercion (`"pending": 0` is not false).

    `one_of` names fields of which exactly one must be given; those may be left out but
    are never null, as the document says. `never_null` names other fields that may be left
    out but are never null (the document offers no null): null is refused naming the field.
    """

    model_config = ConfigDict(extra="forbid", strict=True)
    one_of: ClassVar[tuple[str, ...]] = ()
    never_null: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data: Any) -> Any:
        if cls.never_null and isinstance(data, dict):
            nulls = [name for name in cls.never_null if name in data and data[name] is None]
            if nulls:
                raise ValueError(f"{nulls[0]} is null: leave it out instead, or give a value")
        if cls.one_of and isinstance(data, dict):
            given = [name for name in cls.one_of if data.get(name) is not None]
            nulls = [name for name in cls.one_of if name in data and data[name] is None]
            if nulls or len(given) != 1:
                raise ValueError(f"give exactly one of {' or '.join(cls.one_of)} (never null)")
        return data

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        schema: dict[str, Any] = handler(core_schema)
        schema = handler.resolve_ref_schema(schema)
        if cls.one_of:
            schema["oneOf"] = [{"required": [name]} for name in cls.one_of]
            for name in cls.one_of:
                schema["properties"][name].pop("default", None)
        return schema


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
    """The answer to a write by a key without `subscribers:read`: the id and what it sent, no more
    (a POST /subscribers, which must not tell a new address from a known one, leaves out the id)."""

    id: int | None = None
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
    timezone: Zone | None = Field(default=None, description='IANA zone, e.g. "Europe/Berlin".')
    double_opt_in: bool = Field(
        default=True,
        description="true: added as pending and sent the confirmation mail. false: added as active at once; "
        "needs the admin scope and a consent_note.",
    )
    consent_note: str = Field(
        default="", max_length=500,
        description="How the person consented (kept on record); needed, not blank, with double_opt_in false.",
    )
    resubscribe: bool = Field(default=False, description="Put back an address that left, only if they asked.")

    model_config = ConfigDict(json_schema_extra={
        "if": {"required": ["double_opt_in"], "properties": {"double_opt_in": {"const": False}}},
        "then": {"required": ["consent_note"], "properties": {"consent_note": {"pattern": r"\S"}}},
    })

    @model_validator(mode="after")
    def _consented(self) -> SubscriberCreate:
        if not self.double_opt_in and not self.consent_note.strip():
            raise ValueError("double_opt_in false needs a consent_note saying how the person consented")
        return self


class SubscriberUpdate(Request):
    name: str | None = Field(default=None, max_length=200)
    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS, description="Replaces the whole set.")
    timezone: Zone | None = Field(default=None, description='IANA zone; "" clears it.')


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
    email: str = Field(max_length=320, description="An address; an unusable one is a rejected row of the job.")
    name: str = Field(default="", max_length=200)
    tags: list[Tag] = Field(default=[], max_length=MAX_TAGS)
    timezone: str | None = Field(
        default=None, max_length=64, description="IANA zone; an unknown one is a rejected row."
    )
    status: str | None = Field(default=None, max_length=32, description="active (default), pending, unsubscribed, ...")


class ImportCreate(Request):
    one_of: ClassVar[tuple[str, ...]] = ("csv", "subscribers")

    csv: str | SkipJsonSchema[None] = Field(
        default=None,
        description=(
            "A CSV export (Mailchimp, Substack, Buttondown, Ghost, listmonk, Wix, Kit, beehiiv, MailerLite or ours)."
        ),
    )
    subscribers: Annotated[list[ImportRecord], Field(max_length=MAX_RECORDS)] | SkipJsonSchema[None] = Field(
        default=None, description="Or the records themselves."
    )
    pending: bool = Field(default=False, description="Import active rows as pending (to confirm).")
    tags: list[Tag] = Field(default=[], max_length=MAX_TAGS, description="Tags given to every imported subscriber.")


class Rejection(BaseModel):
    row: int = Field(description="The CSV line, or the record's position (from 1) in `subscribers`.")
    reason: str


class ImportJob(BaseModel):
    id: int
    state: Literal["running", "done", "failed"]
    format: Literal["csv", "json"]
    rows_read: int = Field(description="imported + updated + unchanged + kept + rejected_count, once done.")
    imported: int
    updated: int
    unchanged: int = Field(description="Addresses already on the list that the file brought nothing new for.")
    kept: int = Field(description="Addresses that had unsubscribed, bounced or complained here: left as they were.")
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
        min_length=1, max_length=2_000_000, pattern=r"^---\r?\n",
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


class IssueSegment(BaseModel):
    id: int
    name: str = Field(description="Its name when the issue was sent or scheduled (kept if it was deleted).")
    count: int | None = Field(description="Copies its send queued: the segment's count then; null before.")


class Issue(BaseModel):
    id: int
    key: str
    slug: str
    subject: str
    status: str = Field(description="draft, scheduled, sending or done")
    created_at: datetime
    counts: IssueCounts
    segment: IssueSegment | None = Field(default=None, description="The saved segment it went (or goes) to.")


class IssueList(BaseModel):
    data: list[Issue]


Slugs = Annotated[list[Annotated[str, Field(max_length=200)]], Field(min_length=1, max_length=100)]


class IssueCreate(Request):
    one_of: ClassVar[tuple[str, ...]] = ("article", "digest")

    article: str | SkipJsonSchema[None] = Field(
        default=None, max_length=200, description="The slug of a published article."
    )
    digest: Slugs | SkipJsonSchema[None] = Field(
        default=None, description="Or the slugs of the published articles of a digest."
    )


DESPITE_COMPLAINTS = (
    "Send even though the complaint rate over the last 30 days is at 0.3% or more (from 1,000 messages), "
    "which otherwise stops a send; an owner's choice (a key with the admin scope), recorded with the key's name."
)


SEGMENT = "The name of a saved segment: only its active readers (as it holds them when the send starts)."

AGAIN = (
    "Send an article moved in from another service that already mailed it there; without it such a send "
    "is refused (400), naming the service, the day and the readers it would reach."
)


class SendNow(Request):
    never_null: ClassVar[tuple[str, ...]] = ("segment",)

    despite_complaints: bool = Field(default=False, description=DESPITE_COMPLAINTS)
    segment: str | SkipJsonSchema[None] = Field(default=None, min_length=1, max_length=100, description=SEGMENT)
    again: bool = Field(default=False, description=AGAIN)


class TestSend(Request):
    addresses: list[Email] = Field(min_length=1, max_length=10)


class TestSent(BaseModel):
    slug: str
    addresses: list[str]


class Queued(BaseModel):
    issue_id: int
    added: int = Field(description="Copies queued now; readers who already had it are not queued again.")


class SubjectTestFields(Request):
    """A subject test a schedule starts with, as `publisher send --subject-test` and the desk
    take it (the front matter's `subjects:`, `subject_sample:`, `subject_wait:`, `subject_by:`)."""

    never_null: ClassVar[tuple[str, ...]] = ("subjects", "subject_wait", "subject_decide_at", "segment")

    subjects: list[Annotated[str, Field(min_length=1, max_length=300)]] | SkipJsonSchema[None] = Field(
        default=None, min_length=2, max_length=4,
        description="Two to four subjects to test (the first is kept on a tie); a share of the readers gets them "
        "when the send starts, the winner goes to the rest. Needs analytics on.",
    )
    subject_sample: int = Field(default=20, ge=1, le=100, description="Percent of readers who try the subjects.")
    subject_wait: str | SkipJsonSchema[None] = Field(
        default=None, max_length=16, pattern=r"^\s*\d{1,8}\s*([mM]|[mM][iI][nN]|[hH]|[dD])\s*$",
        description='How long after the start the winner is chosen: "30m", "4h", "2d" (10 minutes to 14 days; '
        "default 4h).",
    )
    subject_decide_at: str | SkipJsonSchema[None] = Field(
        default=None, max_length=32, pattern=r"^\s*\d{4}-\d{2}-\d{2} \d{2}:\d{2}\s*$",
        description='Instead of subject_wait: the wall-clock time to choose the winner at, "YYYY-MM-DD HH:MM" in '
        "the schedule's zone.",
    )
    subject_by: Literal["clicks", "opens"] = Field(default="clicks", description="How the winner is chosen.")


class ScheduleCreate(SubjectTestFields):
    at: str = Field(
        max_length=32, pattern=r"^\s*\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2})?\s*$",
        description='Wall-clock time, "YYYY-MM-DD HH:MM".',
    )
    timezone: Zone | None = Field(default=None, description="IANA zone of `at` (default: the publication's).")
    local_time: bool = Field(default=False, description="At the `at` hour of each subscriber's own day.")
    despite_complaints: bool = Field(default=False, description=DESPITE_COMPLAINTS)
    segment: str | SkipJsonSchema[None] = Field(default=None, min_length=1, max_length=100, description=SEGMENT)
    again: bool = Field(default=False, description=AGAIN)


class ArticleScheduleCreate(SubjectTestFields):
    at: str = Field(
        max_length=40, pattern=r"^\s*\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?(Z|[+-]\d{2}:\d{2})?\s*$",
        description='When to send: "YYYY-MM-DDTHH:MM" on the clock of `timezone` (or with an offset, that instant).',
    )
    timezone: Zone | None = Field(default=None, description="IANA zone of `at` (default: the publication's).")
    despite_complaints: bool = Field(default=False, description=DESPITE_COMPLAINTS)
    segment: str | SkipJsonSchema[None] = Field(default=None, min_length=1, max_length=100, description=SEGMENT)
    again: bool = Field(default=False, description=AGAIN)


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
    sent: int = Field(description="Copies the provider accepted; providers here report no delivery back.")
    deferred: int = Field(description="Copies waiting for another try after a temporary refusal.")
    failed: int
    bounced: int = Field(description="Bounces reported for this issue: each counts for its reader's latest copy "
                                     "sent within the week before it.")
    complained: int = Field(description="Complaints, counted as bounces are.")
    unsubscribed: int = Field(description="Readers who left by a link in this issue's own message "
                                          "(one-click or the footer's link).")


class MinuteCount(BaseModel):
    minute: datetime
    sent: int


class MinuteList(BaseModel):
    data: list[MinuteCount]
