"""Scheduled sends: when an article goes out, what starts it, and what Home shows of it.

`schedule_send` takes any article (a draft, one dated later, one on the site) and a
wall-clock time read in the publication's zone, exact or refused: a time the clocks skip
is refused, one that comes twice raises AmbiguousTime with both readings. The checks that
stop a send run then and again when the daemon's `start_schedule` starts it at its
minute: a failure holds the schedule, says why on Home and mails the owners
(`notify_owners`); otherwise a draft goes on the site dated that minute and the article,
as it is then, is queued. `agenda` is what Home and the article list show: what is held,
scheduled and waiting. The schedule itself is kept in the store (`store.schedules`),
which decides, by a conditional update, that a schedule runs once.

Errors: NotFound for an unknown article or schedule; InvalidRequest (AmbiguousTime) for a
time that is unreadable, in the past, skipped or doubled, or an unknown zone; Conflict
for a schedule that can no longer be cancelled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from publisher.config import Config
from publisher.delivery.base import Provider, make_provider
from publisher.delivery.sending import find_article, prepare_article_issue, refresh_for_send, require_postal_address
from publisher.errors import ConfigError, Conflict, InvalidRequest, NotFound, PublisherError
from publisher.models import Article
from publisher.schedule import timing
from publisher.services import articles, catalogue, clock, notices, segments, subject_tests
from publisher.services.complaints import overridden, record_scheduled_override, stop_for_complaints
from publisher.services.issues import blocking_problems, get_issue, refuse_mailed_there
from publisher.services.settings_text import next_fire_times
from publisher.store import ledger, outbox, publishing, schedules, users
from publisher.store import segments as segment_store
from publisher.store.schedules import LOCAL, Schedule

__all__ = [
    "EARLIEST_ZONE",
    "LOCAL",
    "WAITING_DAYS",
    "Agenda",
    "NextDigest",
    "Schedule",
    "Scheduled",
    "Started",
    "Upcoming",
    "Waiting",
    "agenda",
    "cancel_schedule",
    "digest_skip_had",
    "list_schedules",
    "next_digest",
    "notify_owners",
    "schedule_send",
    "start_schedule",
    "unreadable_when",
]

log = logging.getLogger(__name__)


EARLIEST_ZONE = "Pacific/Kiritimati"
"""The zone whose clock is furthest ahead (UTC+14): the first place any wall-clock hour arrives."""


@dataclass(frozen=True, slots=True)
class Scheduled:
    """A scheduled send as stored, and the article it sends."""

    schedule: Schedule
    article: Article
    replaced: tuple[Schedule, ...] = ()
    """Pending schedules of the same issue that this one replaced (as they were)."""


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
    despite_complaints: bool = False,
    who: str = "",
    segment: str | None = None,
    subject_test: subject_tests.TestPlan | None = None,
    again: bool = False,
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

    The complaint rate is judged when the send starts (`start_schedule`), not now: it
    may fall (or rise) meanwhile. With `despite_complaints`, an owner's knowing choice is
    recorded now (with `who`) and the start goes ahead whatever the rate is then.

    With `segment` (a saved segment's name), it goes to that segment's readers as they are
    when the time comes; its count then is recorded on the issue. A segment deleted
    meanwhile holds the send, with the reason.

    With `subject_test` (or `subjects:` in the article's front matter, which the start reads
    again), the send starts as a subject test: the sample at the time, the winner after
    the plan's wait (counted from the start) or at its decision time. The test is checked
    now (InvalidRequest with every reason) and kept with the schedule; a new schedule of the
    issue replaces it, and cancelling the schedule drops it.
    """
    if segment and tag:
        raise InvalidRequest("give a tag or a segment, not both (a segment can hold a tag condition)")
    chosen = segments.find_segment(db, segment) if segment else None
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
            f"{shown} in {clock.zone_label(tz)} is in the past "
            f"(it is {clock.local_time(now, tz, named=False)} there{default}). "
            "Give a later time, or send it now."
        )
    found = catalogue.catalogue(config)
    article = found.whole(find_article(found.articles, slug, now=now, unpublished=""))
    require_postal_address(config)
    existing = ledger.find_issue(db, article.id)
    # An issue frozen but never sent (no copies) has not had the author's word yet.
    if not again and (existing is None or get_issue(db, existing.id).total == 0):
        refuse_mailed_there(
            config, db, article, tag=tag, where=segments.audience(db, segment, now=now)[1] if segment else (),
            how=f"publisher schedule {article.slug} --at \"{at}\" --again",
        )
    problems = blocking_problems(config, article, now=run_at)
    if problems:
        raise InvalidRequest("not scheduled: fix these first. " + " ".join(problems))
    tested = subject_test or subject_tests.written_plan(config, article, now=now)
    if tested is not None:
        subject_tests.check_scheduled(
            config, db, article.slug, tested, run_at=run_at, now=now, tag=tag, segment=segment, local_time=local_time,
        )
    issue_id = prepare_article_issue(config, db, article, now=now, status="scheduled", tag=tag)
    subject_tests.keep_scheduled(db, issue_id, subject_test, run_at=run_at, now=now)
    segment_store.record_on_issue(db, issue_id, chosen)
    if despite_complaints:
        # Recorded even when the rate is low now: the choice is for the start, whatever the rate is then.
        record_scheduled_override(db, issue_id=issue_id, who=who, now=now)
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
    and schedules again. The complaint rate holds it the same way when it stops sends
    (`complaints.stop_for_complaints`), unless an owner scheduled it despite the rate.
    Otherwise a draft or future article is put on the site, dated this
    minute, and the issue is rendered from it and queued for every reader who has not had
    it. Run twice (a daemon died between claim and finish), it queues nobody twice.
    """
    issue = ledger.get_issue(db, schedule.issue_id)
    published = ""
    # A rate that stops sends holds every kind of issue; an owner's override for this one lets it go.
    complaint_problem = [] if overridden(db, issue.id) else _complaint_problem(db, now)
    try:
        recorded, where = segments.issue_audience(db, issue.id, now=now)
    except InvalidRequest as exc:
        recorded, where = None, ()
        complaint_problem = [str(exc), *complaint_problem]
    current = None
    problems = complaint_problem
    title = issue.subject
    if issue.kind == "article" and not ledger.is_frozen(db, issue.id):
        listed = catalogue.catalogue(config)
        unreadable = listed.problems
        current = next((listed.whole(a) for a in listed.articles if a.id == issue.key), None)
        if current is None and not unreadable:
            why = f"article {issue.slug!r} no longer exists: not sent"
            schedules.finish(db, schedule.id, detail=why, state="skipped")
            return Started(schedule=schedule, skipped=why)
        if current is None:
            # Its own file may be among those that do not parse: the author fixes it first.
            problems = [f"its file cannot be read ({'; '.join(str(e) for e in unreadable[:3])}).", *problems]
        else:
            problems = [*blocking_problems(config, current, now=now), *problems]
            title = current.title
    tested = subject_tests.scheduled_plan(config, db, issue.id, current, now=now) if issue.kind == "article" else None
    if tested is not None and not problems:
        problems = subject_tests.refusals_at_start(
            config, db, issue.slug, tested, now=now, tag=issue.tag, segmented=recorded is not None,
            local_time=schedule.local_at is not None,
        )
    if problems:
        why = "held: " + " ".join(problems) + " Fix it, then schedule it again."
        schedules.finish(db, schedule.id, detail=why, state="held")
        outbox.emit_now(
            db, "issue.held", {"issue_id": issue.id, "slug": issue.slug, "schedule_id": schedule.id}, now=now
        )
        where = f"{config.public_url}/desk/articles/{issue.slug}" if issue.slug else f"{config.public_url}/desk/"
        notify_owners(
            config, db, now=now, provider_factory=provider_factory,
            subject=f"Held: {title} was not sent",
            lines=(
                f"Your scheduled newsletter “{title}” was due at "
                f"{clock.local_time(schedule.run_at, config.tz)}, "
                "but a check before sending failed, so nothing went out:",
                *problems,
                "Open the article in the desk, fix it, and schedule it again.",
                where,
            ),
        )
        return Started(schedule=schedule, held=why)
    if schedule.publishes and current is not None and not current.is_public(now):
        articles.publish_scheduled(config, current.slug, at=schedule.run_at, now=now)
        published = current.slug
    why_not = refresh_for_send(
        config, db, schedule.issue_id, now=now, articles=lambda: catalogue.scan_articles(config)[0]
    )
    if why_not:
        schedules.finish(db, schedule.id, detail=why_not, state="skipped")
        return Started(schedule=schedule, skipped=why_not, published=published)
    def enqueue() -> int:
        return ledger.enqueue(
            db, schedule.issue_id, now=now, local_at=schedule.local_at, tz_of_author=config.tz, where=where,
            digest=bool(config["schedule.digest"]), held=tested is not None,
        )

    detail = ""
    if tested is not None:
        test = subject_tests.start_scheduled(db, schedule.issue_id, tested, now=now, enqueue=enqueue)
        queued = sum(test.sample.values()) + test.held
        detail = (
            f"subject test: {sum(test.sample.values())} recipients queued under {len(tested.subjects)} subjects, "
            f"{test.held} wait for the winner at {clock.local_time(test.decide_at, config.tz)}"
        )
    else:
        queued = enqueue()
    if recorded is not None:
        segment_store.record_count(db, schedule.issue_id, queued)
    schedules.finish(db, schedule.id, detail=detail or f"{queued} recipients queued")
    return Started(schedule=schedule, queued=queued, published=published)


def _complaint_problem(db: Engine, now: datetime) -> list[str]:
    """The complaint rate's stop as one held send's reason ([] when it lets sends go)."""
    try:
        stop_for_complaints(db, now=now, despite=False)
    except InvalidRequest as exc:
        words = str(exc).removeprefix("not sent: ")
        return [words[:1].upper() + words[1:]]
    return []


def notify_owners(
    config: Config, db: Engine, *, subject: str, lines: Sequence[str], now: datetime,
    provider_factory: Callable[[Config], Provider] = make_provider,
) -> int:
    """Mail the desk's owners a short plain notice (a held send, say); how many got it.

    A provider's refusal is logged, never raised: the notice also shows on the desk's Home.
    """
    owners = [user.email for user in users.list_users(db) if user.role == "owner"]
    return notices.mail_notice(config, owners, subject=subject, lines=lines, now=now, provider_factory=provider_factory)


@dataclass(frozen=True, slots=True)
class Upcoming:
    """A pending scheduled send as the author reads it."""

    schedule: Schedule
    local: datetime
    """When, on the clock of the zone it was scheduled in (the publication's for a local-time send)."""
    zone: str
    in_words: str
    """"in 2 days 3 hours"."""
    sent_already: bool = False
    """Its issue went out since it was scheduled (the author pressed Send now): it is on the
    site, and the schedule reaches only readers who have not had it by then."""


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


@dataclass(frozen=True, slots=True)
class NextDigest:
    """The next digest as the author reads it: when, and the articles it would gather now."""

    local: datetime
    """When, on the publication's clock."""
    zone: str
    in_words: str
    titles: tuple[str, ...]
    """The articles on the site that no digest carried yet, which it would mail (to every
    active reader but those who had each of them already: `digest_skip_had`)."""


def digest_skip_had(db: Engine, articles: Sequence[Article]) -> list[int]:
    """The issues of a digest's `articles`, for `ledger.enqueue(skip_had=...)`: a reader who
    has a copy of every one of them (each sent on its own) does not get them again in the
    digest. Empty (everyone gets it) when one of them was never an issue of its own."""
    found = [ledger.find_issue(db, article.id) for article in articles]
    return [issue.id for issue in found if issue is not None] if all(found) else []


def next_digest(config: Config, db: Engine, *, now: datetime) -> NextDigest | None:
    """The next digest `schedule.digest` sends, with what it would gather if it went now (the
    daemon's rule, `jobs.digest`); None without a digest or for a line that never fires."""
    cron = str(config["schedule.digest"]).strip()
    if not cron:
        return None
    try:
        times = next_fire_times(cron, config.tz.key, now, count=1)
    except PublisherError:
        return None
    if not times:
        return None
    pending = set(publishing.undigested(db))
    # The articles are listed only when some wait for a digest: most looks at Home find none.
    listed = catalogue.catalogue(config).parsed() if pending else ()
    gathered = tuple(a.title for a in listed if a.is_public(now) and a.id in pending)
    return NextDigest(
        local=times[0].astimezone(config.tz), zone=config.tz.key, in_words=timing.in_words(times[0] - now),
        titles=gathered,
    )


def agenda(config: Config, db: Engine, *, now: datetime) -> Agenda:
    """What is coming, what was held, and what waits for the author: Home's first sections."""
    everything = schedules.list_schedules(db)
    scheduled = []
    for item in (s for s in everything if s.state == "pending"):
        zone = timing.zone(item.timezone) if item.timezone != schedules.LOCAL else config.tz
        try:
            sent = ledger.get_issue(db, item.issue_id).status in ("sending", "done")
        except NotFound:
            sent = False
        scheduled.append(Upcoming(
            schedule=item, local=item.run_at.astimezone(zone), zone=zone.key,
            in_words=timing.in_words(item.run_at - now), sent_already=sent,
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
        cancelled = schedules.cancel(db, schedule_id)
    except NotFound as exc:  # claimed by a daemon between the look and the change
        raise Conflict(str(exc)) from exc
    subject_tests.drop_scheduled(db, cancelled.issue_id)
    return cancelled
