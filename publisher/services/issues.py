"""Issue actions: dry run, test copy, send now, schedule, cancel, status.

An issue is an article's newsletter, rendered once and frozen in the ledger. `send_now`
and `schedule_send` freeze it and queue or schedule it; the rows are delivered by
whoever runs the delivery engine (the CLI in the foreground, `publisher serve` in the
background), so nothing here waits for a provider except `test_send`.

Errors: NotFound for an unknown or unpublished slug, issue or schedule; InvalidRequest
for a send time in the past; ConfigError for an unknown zone or a time the clocks skip;
Conflict for a schedule that can no longer be cancelled; DeliveryError when a test copy
is refused.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import make_msgid
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from publisher import content
from publisher.config import Config
from publisher.delivery.base import Provider, make_provider
from publisher.delivery.sending import (
    article_topics,
    find_article,
    prepare_article_issue,
    prepare_digest_issue,
    refresh_for_send,
    require_postal_address,
)
from publisher.errors import ConfigError, Conflict, InvalidRequest, NotFound, PermanentFailure, PublisherError
from publisher.mail import newsletter, preflight, tokens
from publisher.mail.mime import clean_header_text
from publisher.models import Article, Outcome, RenderedIssue
from publisher.schedule import timing
from publisher.services import articles
from publisher.services.stats import IssueFailures, issue_failures, issue_status
from publisher.store import ledger, outbox, publishing, schedules, users
from publisher.store.issues import IssueStatus
from publisher.store.schedules import LOCAL, Schedule
from publisher.store.subscribers import normalize_email

__all__ = [
    "EARLIEST_ZONE",
    "LOCAL",
    "TEST_PREFIX",
    "Agenda",
    "Cancelled",
    "IssueFailures",
    "IssueStatus",
    "Queued",
    "Schedule",
    "Scheduled",
    "SendPlan",
    "Started",
    "Upcoming",
    "Waiting",
    "agenda",
    "article_slug",
    "blocking_problems",
    "cancel_issue",
    "cancel_schedule",
    "create_issue",
    "get_issue",
    "issue_failures",
    "issue_status",
    "list_schedules",
    "notify_owners",
    "plan_send",
    "provider_label",
    "published_article",
    "retry_failed",
    "schedule_send",
    "send_issue",
    "send_now",
    "send_secret",
    "start_schedule",
    "test_send",
    "unreadable_when",
]

log = logging.getLogger(__name__)

EARLIEST_ZONE = "Pacific/Kiritimati"
"""The zone whose clock is furthest ahead (UTC+14): the first place any wall-clock hour arrives."""
MAX_TEST_ADDRESSES = 10
TEST_PREFIX = "[Test] "
"""Put before a test copy's subject, so that it is never taken for the real issue."""


@dataclass(frozen=True, slots=True)
class SendPlan:
    """What a send of an article would do now: nothing is written to make it."""

    article: Article
    subject: str
    html_bytes: int
    text_bytes: int
    warnings: tuple[str, ...]
    recipients: int
    """New recipients: readers who already had it (an earlier send) are not counted."""
    issue_id: int | None
    """The issue already in the ledger for this article, if it was sent or scheduled before."""
    frozen: bool = False
    """Its first copies have left: a send now delivers what they got, not the article as it is."""
    publishes: bool = False
    """The article is a draft (or dated later): a send now also puts it on the site."""
    problems: tuple[str, ...] = ()
    """Failing checks that stop a send (`blocking_problems`): a send now is refused until fixed."""
    provider: str = ""
    """How the mail leaves, as a confirmation names it ("Postmark")."""


@dataclass(frozen=True, slots=True)
class Scheduled:
    """A scheduled send as stored, and the article it sends."""

    schedule: Schedule
    article: Article
    replaced: tuple[Schedule, ...] = ()
    """Pending schedules of the same issue that this one replaced (as they were)."""


@dataclass(frozen=True, slots=True)
class Queued:
    """An issue frozen in the ledger with its new recipients queued for delivery."""

    issue_id: int
    article: Article
    added: int


def send_secret(config: Config) -> str:
    """The key that signs unsubscribe links; ConfigError when a real provider has none."""
    return tokens.resolve_secret(config, real_provider=config["delivery.provider"] != "maildir")


def published_article(config: Config, slug: str, *, now: datetime) -> Article:
    """The published article `slug`; NotFound (with the closest slugs) for a draft or unknown one."""
    return find_article(content.load_articles(config), slug, now=now)


def plan_send(config: Config, db: Engine, slug: str, *, now: datetime, tag: str | None = None) -> SendPlan:
    """What a send would deliver and to how many (a dry run): the article rendered as it is
    now, or, once the issue's first copies have left, the frozen snapshot they got. A
    draft may be planned too: sending it puts it on the site first."""
    articles_found, _ = content.scan_articles(config)
    article = find_article(articles_found, slug, now=now, unpublished="")
    existing = ledger.find_issue(db, article.id)
    count = ledger.count_new_recipients(
        db, issue_id=existing.id if existing else None, tag=tag, kind="article",
        topics=article_topics(config, article),
    )
    warnings: tuple[str, ...] = ()
    if existing is not None and ledger.is_frozen(db, existing.id):
        subject, html, text, frozen = existing.subject, existing.html, existing.text, True
    else:
        rendered = newsletter.render_issue(config, newsletter.issue_for_article(config, article), now)
        subject, html, text, warnings, frozen = (
            rendered.subject, rendered.html, rendered.text, rendered.warnings, False
        )
    return SendPlan(
        article=article,
        subject=subject,
        html_bytes=len(html.encode()),
        text_bytes=len(text.encode()),
        warnings=warnings,
        recipients=count,
        issue_id=existing.id if existing else None,
        frozen=frozen,
        publishes=not article.is_public(now),
        problems=() if frozen else tuple(blocking_problems(config, article, now=now)),
        provider=provider_label(config),
    )


def test_send(
    config: Config,
    slug: str,
    addresses: Sequence[str],
    *,
    now: datetime,
    provider_factory: Callable[[Config], Provider] = make_provider,
    text: str | None = None,
) -> Article:
    """Send one copy of the article's newsletter to each address; the ledger is not touched.

    Drafts and future articles may be test-sent (that is what a test copy is for); the
    subject starts with "[Test] ". The unsubscribe link in a test copy names nobody. With
    `text` (an article file's text, as the editor has it, saved or not) the copy is made
    from that text instead of the file; it must keep the slug (InvalidRequest), and
    ContentError names the line when it does not parse. Raises SubscriberError for a bad
    address, PermanentFailure when the provider refuses a copy.
    """
    if not addresses or len(addresses) > MAX_TEST_ADDRESSES:
        raise InvalidRequest(f"give 1 to {MAX_TEST_ADDRESSES} addresses for a test copy, got {len(addresses)}")
    checked = [normalize_email(address) for address in addresses]
    if text is not None:
        article = content.parse_article(text, source="(the editor)", config=config)
        if article.slug != slug:
            raise InvalidRequest(f"the text gives slug {article.slug!r}, but the test copy is for {slug!r}")
    else:
        articles, _ = content.scan_articles(config)
        article = find_article(articles, slug, now=now, unpublished="")
    rendered = newsletter.render_issue(config, newsletter.issue_for_article(config, article), now)
    rendered = dataclasses.replace(rendered, subject=TEST_PREFIX + rendered.subject)
    template = newsletter.MessageTemplate.from_rendered(config, rendered)
    secret = send_secret(config)
    domain = template.sender_address.rpartition("@")[2] or "localhost"
    provider = provider_factory(config)
    try:
        for address in checked:
            # A fresh key no subscriber holds: the links show their pages but reach nobody.
            nobody = secrets.token_hex(16)
            recipient = newsletter.Recipient(
                delivery_id=None,
                email=address,
                name="",
                unsubscribe_url=tokens.unsubscribe_url(config, secret, nobody),
                message_id=make_msgid(idstring="test", domain=domain),
                manage_url=tokens.manage_url(config, secret, nobody),
            )
            (result,) = provider.send(template, [recipient], now=now)
            if result.outcome is not Outcome.SENT:
                raise PermanentFailure(
                    f"the test copy to {address} was not sent ({result.outcome}): {result.detail}"
                )
    finally:
        provider.close()
    return article


def send_now(config: Config, db: Engine, slug: str, *, now: datetime, tag: str | None = None) -> Queued:
    """Freeze the article's newsletter in the ledger and queue it for every active subscriber
    (of `tag`) who has not had it: exactly once per reader, however often it is called.

    Returns at once; the rows are sent by the delivery engine. Raises ConfigError first
    if unsubscribe links cannot be signed or a real provider lacks the postal address, and
    InvalidRequest if a check that stops a send fails, so nothing is queued that could not
    go out. A draft (or an article dated later) is put on the site first, dated now.
    """
    found, _ = content.scan_articles(config)
    article = find_article(found, slug, now=now, unpublished="")
    send_secret(config)
    require_postal_address(config)
    existing = ledger.find_issue(db, article.id)
    if existing is None or not ledger.is_frozen(db, existing.id):
        problems = blocking_problems(config, article, now=now)
        if problems:
            raise InvalidRequest("not sent: fix these first. " + " ".join(problems))
    publishing.mark_seen(
        db, article_id=article.id, slug=article.slug, origin=article.source, handled="sent", now=now
    )
    if not article.is_public(now):
        article = articles.publish_scheduled(config, article.slug, at=now, now=now)
    issue_id = prepare_article_issue(config, db, article, now=now, status="sending", tag=tag)
    added = ledger.enqueue(db, issue_id, now=now, tz_of_author=config.tz, tag=tag)
    return Queued(issue_id=issue_id, article=article, added=added)


def blocking_problems(config: Config, article: Article, *, now: datetime) -> list[str]:
    """What must be fixed before this article's newsletter may go out: the checks before
    sending that stop a send (see `preflight.Check.blocking`), each as one sentence.

    Run when a send is scheduled and again when it starts; SpamAssassin and the checks
    that wait on other sites are left to the author's own "check" in the desk.
    """
    shown = articles.preview_article(config, article, now=now)
    found, _ = preflight.run_checks(
        config, article, subject=shown.subject, html=shown.html, text=shown.text, spam=False
    )
    return [f"{check.name}: {check.detail}" for check in found if check.stops_send]


def schedule_send(
    config: Config,
    db: Engine,
    slug: str,
    *,
    at: str,
    now: datetime,
    tz_name: str | None = None,
    tag: str | None = None,
    local_time: bool = False,
) -> Scheduled:
    """Schedule the article for the wall-clock time `at`: at that minute it goes on the site
    (a draft is published then, dated that minute) and its newsletter to the list.

    `at` is "YYYY-MM-DD HH:MM" (or with a T), or "HH:MM" for the next time that hour comes,
    read in `tz_name` (default: the publication's zone). A time the clocks skip is refused;
    one that comes twice raises AmbiguousTime, whose choices (the time with its offset)
    each name one instant. With `local_time`, each subscriber gets it at that date and time
    on their own clock (their zone; the publication's for the rest): the send starts when
    the moment first arrives anywhere on Earth (UTC+14), and ends when it arrives in the
    last zone, about a day later.

    Any article may be scheduled: a draft, one dated later, one on the site already. What
    goes out is the article as it is when the time comes (edits after scheduling are sent),
    and the checks that stop a send run now (InvalidRequest listing what to fix) and again
    then. The schedule is kept in the store, so it survives restarts; `publisher serve`
    runs it. A new time for an issue replaces its pending schedule (returned in
    `replaced`). InvalidRequest for a time in the past or unreadable, or an unknown zone.
    """
    if local_time and tz_name:
        raise InvalidRequest(
            "a local-time send takes no zone: each reader gets it at that time on their own "
            "clock (readers without a zone: publication.timezone's)"
        )
    try:
        author_tz = timing.zone(tz_name) if tz_name else config.tz
    except ConfigError as exc:
        raise InvalidRequest(f"timezone: {exc}") from exc
    if local_time:
        # A local-time send starts when that wall-clock moment first comes anywhere; each row
        # then waits for it on its reader's clock (see ledger.enqueue's local_at).
        tz = timing.zone(EARLIEST_ZONE)
        try:
            wall = timing.parse_wall(at, author_tz, now=now)
            run_at = timing.local_to_utc(wall, tz)
        except ConfigError as exc:
            raise InvalidRequest(str(exc)) from exc
    else:
        tz = author_tz
        wall, run_at = timing.exact_instant(at, tz, now=now)
    shown = f"{wall:{timing.LOCAL_LAYOUT}}"
    if run_at <= now:
        default = "" if tz_name or local_time else (
            "; the time is read in the publication's zone unless you give another (the desk's Time zone "
            "field, --tz ZONE on the command line)"
        )
        raise InvalidRequest(
            f"{shown} in {tz.key} is in the past (it is {now.astimezone(tz):%Y-%m-%d %H:%M} there{default}). "
            "Give a later time, or send it now."
        )
    articles, _ = content.scan_articles(config)
    article = find_article(articles, slug, now=now, unpublished="")
    require_postal_address(config)
    problems = blocking_problems(config, article, now=run_at)
    if problems:
        raise InvalidRequest("not scheduled: fix these first. " + " ".join(problems))
    issue_id = prepare_article_issue(config, db, article, now=now, status="scheduled", tag=tag)
    # Noticed now, so that no policy acts on it when it goes on the site: the schedule does.
    publishing.mark_seen(
        db, article_id=article.id, slug=article.slug, origin=article.source, handled="scheduled", now=now
    )
    replaced = tuple(item for item in schedules.pending(db) if item.issue_id == issue_id)
    if local_time:
        # Kept as date and minutes, so that every reader's clock can be asked for it.
        zone_label, written = schedules.LOCAL, f"{run_at.astimezone(tz):{timing.LOCAL_LAYOUT}}"
    else:
        zone_label, written = tz.key, shown
    item = schedules.add(
        db, issue_id=issue_id, run_at=run_at, timezone=zone_label, local_time=written, now=now,
        publishes=not article.is_public(now),
    )
    data = {"issue_id": issue_id, "slug": article.slug, "schedule_id": item.id, "run_at": item.run_at.isoformat()}
    outbox.emit_now(db, "issue.scheduled", data, now=now)
    return Scheduled(schedule=item, article=article, replaced=replaced)


@dataclass(frozen=True, slots=True)
class Started:
    """What starting a due scheduled send did."""

    schedule: Schedule
    queued: int = 0
    """Copies queued for delivery."""
    published: str = ""
    """The slug of the article this start put on the site ("" when it was there already)."""
    held: str = ""
    """Why it was held instead (the checks that stop a send failed): the author is told."""
    skipped: str = ""
    """Why it must not go out at all (the article was removed)."""


def start_schedule(
    config: Config, db: Engine, schedule: Schedule, *, now: datetime,
    provider_factory: Callable[[Config], Provider] = make_provider,
) -> Started:
    """Start a scheduled send its daemon has claimed: check, publish, render, queue.

    The article as it is now is what goes out. The checks that stop a send run first: a
    failure holds the schedule (state "held", the reasons in its detail; the article stays
    as it was) and mails the desk's owners, and nothing is queued until the author fixes it
    and schedules again. Otherwise a draft or future article is put on the site, dated this
    minute, and the issue is rendered from it and queued for every reader who has not had
    it. Run twice (a daemon died between claim and finish), it queues nobody twice.
    """
    issue = ledger.get_issue(db, schedule.issue_id)
    published = ""
    if issue.kind == "article" and not ledger.is_frozen(db, issue.id):
        found, unreadable = content.scan_articles(config)
        current = next((a for a in found if a.id == issue.key), None)
        if current is None and not unreadable:
            why = f"article {issue.slug!r} no longer exists: not sent"
            schedules.finish(db, schedule.id, detail=why, state="skipped")
            return Started(schedule=schedule, skipped=why)
        if current is None:
            # Its own file may be among those that do not parse: the author fixes it first.
            problems = [f"its file cannot be read ({'; '.join(str(e) for e in unreadable[:3])})."]
            title = issue.subject
        else:
            problems = blocking_problems(config, current, now=now)
            title = current.title
        if problems:
            why = "held: " + " ".join(problems) + " Fix it, then schedule it again."
            schedules.finish(db, schedule.id, detail=why, state="held")
            outbox.emit_now(
                db, "issue.held", {"issue_id": issue.id, "slug": issue.slug, "schedule_id": schedule.id}, now=now
            )
            notify_owners(
                config, db, now=now, provider_factory=provider_factory,
                subject=f"Held: {title} was not sent",
                lines=(
                    f"Your scheduled newsletter “{title}” was due at "
                    f"{schedule.run_at.astimezone(config.tz):%Y-%m-%d %H:%M} {config.tz.key}, "
                    "but a check before sending failed, so nothing went out:",
                    *problems,
                    "Open the article in the desk, fix it, and schedule it again.",
                    f"{config.public_url}/desk/articles/{issue.slug}",
                ),
            )
            return Started(schedule=schedule, held=why)
        if schedule.publishes and current is not None and not current.is_public(now):
            articles.publish_scheduled(config, current.slug, at=schedule.run_at, now=now)
            published = current.slug
    why_not = refresh_for_send(
        config, db, schedule.issue_id, now=now, articles=lambda: content.scan_articles(config)[0]
    )
    if why_not:
        schedules.finish(db, schedule.id, detail=why_not, state="skipped")
        return Started(schedule=schedule, skipped=why_not, published=published)
    queued = ledger.enqueue(db, schedule.issue_id, now=now, local_at=schedule.local_at, tz_of_author=config.tz)
    schedules.finish(db, schedule.id, detail=f"{queued} recipients queued")
    return Started(schedule=schedule, queued=queued, published=published)


def notify_owners(
    config: Config, db: Engine, *, subject: str, lines: Sequence[str], now: datetime,
    provider_factory: Callable[[Config], Provider] = make_provider,
) -> int:
    """Mail the desk's owners a short plain notice (a held send, say); how many got it.

    A provider's refusal is logged, never raised: the notice also shows on the desk's Home.
    """
    owners = [user.email for user in users.list_users(db) if user.role == "owner"]
    if not owners:
        return 0
    text = "\n\n".join(lines) + "\n"
    body = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
    rendered = RenderedIssue(
        key="notice", subject=clean_header_text(subject),
        html=f"<!doctype html><html><body>{body}</body></html>", text=text,
    )
    template = newsletter.MessageTemplate.from_rendered(config, rendered)
    domain = template.sender_address.rpartition("@")[2] or "localhost"
    provider = provider_factory(config)
    told = 0
    try:
        for address in owners:
            recipient = newsletter.Recipient(
                delivery_id=None, email=address, name="", unsubscribe_url="",
                message_id=make_msgid(idstring="notice", domain=domain),
            )
            try:
                (result,) = provider.send(template, [recipient], now=now)
            except PublisherError as exc:
                log.error("the notice %r to %s was not sent: %s", subject, address, exc)
                continue
            if result.outcome is Outcome.SENT:
                told += 1
            else:
                log.error("the notice %r to %s was not sent (%s): %s", subject, address, result.outcome, result.detail)
    finally:
        provider.close()
    return told


PROVIDER_NAMES = {
    "smtp": "your mail server",
    "postmark": "Postmark",
    "sendgrid": "SendGrid",
    "mailgun": "Mailgun",
    "ses": "Amazon SES",
    "resend": "Resend",
    "maildir": "the Maildir outbox",
}


def provider_label(config: Config) -> str:
    """How a confirmation names the way mail leaves: "Postmark", "your mail server (smtp.example.org)"."""
    name = str(config["delivery.provider"])
    label = PROVIDER_NAMES.get(name, name)
    if name == "smtp":
        label += f" ({config['delivery.smtp.host']})"
    return label


@dataclass(frozen=True, slots=True)
class Upcoming:
    """A pending scheduled send as the author reads it."""

    schedule: Schedule
    local: datetime
    """When, on the clock of the zone it was scheduled in (the publication's for a local-time send)."""
    zone: str
    in_words: str
    """"in 2 days 3 hours"."""


@dataclass(frozen=True, slots=True)
class Waiting:
    """An article on the site whose newsletter waits for the author to send or schedule it."""

    slug: str
    title: str
    noticed_at: datetime
    issue_id: int | None


@dataclass(frozen=True, slots=True)
class Agenda:
    scheduled: list[Upcoming]
    held: list[Schedule]
    """Scheduled sends that a failing check held, not scheduled again or cancelled since."""
    waiting: list[Waiting]


WAITING_DAYS = 30
"""How far back Home looks for articles whose newsletter waits."""


def agenda(config: Config, db: Engine, *, now: datetime) -> Agenda:
    """What is coming, what was held, and what waits for the author: Home's first sections."""
    everything = schedules.list_schedules(db)
    scheduled = []
    for item in (s for s in everything if s.state == "pending"):
        zone = timing.zone(item.timezone) if item.timezone != schedules.LOCAL else config.tz
        scheduled.append(Upcoming(
            schedule=item, local=item.run_at.astimezone(zone), zone=zone.key,
            in_words=timing.in_words(item.run_at - now),
        ))
    later: dict[int, Schedule] = {}
    for item in everything:  # in time order: the last schedule of each issue wins
        if item.state != "cancelled" or item.detail != "replaced by a new schedule":
            later[item.issue_id] = item
    held = [item for item in later.values() if item.state == "held"]
    busy = {item.issue_id for item in everything if item.state in ("pending", "claimed")}
    waiting = []
    for noticed in publishing.waiting(db, since=now - timedelta(days=WAITING_DAYS)):
        issue = ledger.find_issue(db, noticed.article_id)
        if issue is not None and (issue.status in ("sending", "done") or issue.id in busy):
            continue
        waiting.append(Waiting(
            slug=noticed.slug, title=issue.subject if issue else noticed.slug,
            noticed_at=noticed.first_seen_at, issue_id=issue.id if issue else None,
        ))
    return Agenda(scheduled=scheduled, held=held, waiting=waiting)


def unreadable_when(
    default: ZoneInfo, at: str, zone: str | None, *, local_time: bool, now: datetime
) -> tuple[str, str] | None:
    """The field ("timezone" or "at") and why, for a zone that does not exist or a time
    that cannot be read (or that the clocks skip); None when both can be read."""
    tz = default
    if zone:
        try:
            tz = timing.zone(zone)
        except PublisherError as exc:
            return "timezone", str(exc)
    try:
        wall = timing.parse_wall(at, tz, now=now)
        if not local_time:
            timing.local_to_utc(wall, tz)
    except PublisherError as exc:
        return "at", str(exc)
    return None


def list_schedules(db: Engine, *, include_finished: bool = False) -> list[Schedule]:
    """Scheduled sends in time order: the pending ones, or all with `include_finished`."""
    return schedules.list_schedules(db, include_finished=include_finished)


def cancel_schedule(db: Engine, schedule_id: int) -> Schedule:
    """Cancel a pending scheduled send; Conflict once it ran, was claimed or was cancelled."""
    current = schedules.get(db, schedule_id)
    if current.state != "pending":
        raise Conflict(f"schedule {schedule_id} is {current.state}, not pending: it cannot be cancelled")
    try:
        return schedules.cancel(db, schedule_id)
    except NotFound as exc:  # claimed by a daemon between the look and the change
        raise Conflict(str(exc)) from exc


def get_issue(db: Engine, issue_id: int) -> IssueStatus:
    """One issue's delivery counts; NotFound for an unknown id."""
    (line,) = ledger.status(db, issue_id)
    return line


def create_issue(
    config: Config, db: Engine, *, now: datetime, article: str | None = None, digest: Sequence[str] = ()
) -> IssueStatus:
    """Freeze an issue in the ledger without sending it: the newsletter of the published
    `article`, or a digest of the published articles in `digest`. Creating it again
    returns the one already there (an issue is rendered once)."""
    if (article is None) == (not digest):
        raise InvalidRequest("give either an article's slug or the slugs of a digest's articles, not both")
    if article is not None:
        issue_id = prepare_article_issue(config, db, published_article(config, article, now=now), now=now)
    else:
        articles = content.load_articles(config)
        chosen = [find_article(articles, slug, now=now) for slug in dict.fromkeys(digest)]
        issue_id = prepare_digest_issue(config, db, chosen, now=now)
    return get_issue(db, issue_id)


def send_issue(config: Config, db: Engine, issue_id: int, *, now: datetime) -> int:
    """Queue an issue already in the ledger for every active subscriber (of its tag) who
    has not had it; returns the number of rows added. Exactly once per reader."""
    send_secret(config)
    return ledger.enqueue(db, get_issue(db, issue_id).issue_id, now=now, tz_of_author=config.tz)


def article_slug(db: Engine, issue_id: int) -> str:
    """The slug of the article an issue sends; InvalidRequest for a digest."""
    snapshot = ledger.get_issue(db, issue_id)
    if not snapshot.slug:
        raise InvalidRequest(f"issue {issue_id} is a digest: only an article's issue can be test-sent or scheduled")
    return snapshot.slug


@dataclass(frozen=True, slots=True)
class Cancelled:
    schedules: tuple[Schedule, ...]
    rows: int
    """Queued copies taken back (copies already in flight still go out)."""


def cancel_issue(db: Engine, issue_id: int, *, now: datetime) -> Cancelled:
    """Cancel what is still to come of an issue: its pending schedules and its queued copies."""
    get_issue(db, issue_id)
    done = []
    for item in schedules.pending(db):
        if item.issue_id == issue_id:
            try:
                done.append(schedules.cancel(db, item.id))
            except NotFound:
                continue  # claimed meanwhile: its rows are taken back below
    rows = ledger.cancel_queued(db, issue_id, now=now)
    return Cancelled(schedules=tuple(done), rows=rows)


def retry_failed(db: Engine, issue_id: int, *, now: datetime) -> int:
    """Queue the issue's failed copies again (the delivery engine sends them); how many."""
    return ledger.retry_failed(db, issue_id, now=now)
