"""Subject tests: two to four subjects for one issue, a sample tries them, the winner goes to the rest.

`start` sends an article the way `issues.send_now` does, except that every ledger row is
written `held`; then a share of them (`sample_percent`, 20 by default, drawn by a seed
of the issue so that a run again draws the same readers) is queued, split evenly among
the subjects. At `decide_at` (a wait after the send, or a time the author named),
`settle` reads each subject's opens and clicks, counted once per copy, chooses by clicks
(or opens, if the author prefers; `subject_stats` says how), keeps the decision, and
queues the held rows with the winning subject. The daemon calls `settle` on every sweep;
so does `publisher send --resume`.

A scheduled send runs a test too: the plan given with the schedule (`keep_scheduled`,
`publisher schedule --subject ...`) or else the one in the article's front matter
(`subjects:`, `subject_sample:`, `subject_wait:`, `subject_by:`, read again when the send
starts, so an auto-published article's test runs as written). It is checked when
scheduled (`check_scheduled`) and again at the start (`refusals_at_start`: the schedule
is then held with the reason); the wait counts from the start (`start_scheduled`). A
planned test has no ledger row and is never decided; cancelling or replacing the
schedule drops it.

Refused up front, with the reason: fewer than two or more than four subjects, the same
subject twice, a sample smaller than `MIN_SAMPLE` readers, an issue that has gone out
already, and analytics that are off (`analytics.enabled`): without the pixel and the
click links nothing could be counted and the test would always keep the first subject.
Per-person analytics are not needed: each copy's token names the copy, hence its
subject, and its opens and clicks are counted once per copy in aggregate, per (issue,
subject), without a per-person record (`publisher.store.engagement`); machine traffic
never counts.

Crash bound: see `store.subject_tests`. Each step is one transaction and safe to repeat;
a held row is queued at most once, so each reader gets one copy under one subject.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from publisher import content
from publisher.config import Config
from publisher.content.articles import SUBJECT_METRICS, SubjectTestSettings, subject_test_in, wait_of
from publisher.content.folder import decode_article, read_content
from publisher.errors import ConfigError, InvalidRequest
from publisher.mail.mime import clean_header_text
from publisher.models import Article
from publisher.schedule import timing
from publisher.services import clock
from publisher.services import issues as issue_service
from publisher.services.subject_stats import VariantFigures, decide
from publisher.store import engagement, ledger
from publisher.store import subject_tests as store
from publisher.store.engine import begin_write
from publisher.store.ledger.rows import HELD

__all__ = [
    "DEFAULT_SAMPLE",
    "DEFAULT_WAIT",
    "METRICS",
    "MIN_SAMPLE",
    "Settled",
    "Started",
    "TestPlan",
    "TestReport",
    "check_scheduled",
    "decision_time",
    "drop_scheduled",
    "keep_scheduled",
    "parse_plan",
    "parse_wait",
    "plan_from",
    "refusals_at_start",
    "report",
    "report_lines",
    "scheduled_plan",
    "settle",
    "start",
    "start_scheduled",
    "written_plan",
]

DEFAULT_SAMPLE = 20
DEFAULT_WAIT = timedelta(hours=4)
MIN_SAMPLE = 100
"""Fewer readers in the sample than this cannot tell subjects apart: the test is refused."""
METRICS = SUBJECT_METRICS


@dataclass(frozen=True, slots=True)
class TestPlan:
    """What the author asked for, checked: the subjects (the first is kept on a tie)."""

    subjects: tuple[str, ...]
    sample_percent: int = DEFAULT_SAMPLE
    metric: str = "clicks"
    wait: timedelta = DEFAULT_WAIT
    at: datetime | None = None
    """Decide at this moment instead of after `wait`."""

    def decide_at(self, now: datetime) -> datetime:
        return self.at if self.at is not None else now + self.wait


@dataclass(frozen=True, slots=True)
class Started:
    issue_id: int
    sample: dict[int, int]
    """Copies queued per variant now."""
    held: int
    decide_at: datetime


@dataclass(frozen=True, slots=True)
class Settled:
    """One step `settle` took for an issue: "sampled", "decided" (with the decision) or "released"."""

    issue_id: int
    step: str
    detail: str
    copies: int = 0


@dataclass(frozen=True, slots=True)
class TestReport:
    issue_id: int
    subjects: tuple[str, ...]
    metric: str
    sample_percent: int
    decide_at: datetime
    figures: tuple[VariantFigures, ...]
    decided_at: datetime | None
    winner: int | None
    reason: str
    held: int
    released_at: datetime | None


def parse_wait(text: str) -> timedelta:
    """"30m", "4h", "2d": how long the sample has before the decision."""
    try:
        return wait_of(text)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc


def parse_plan(
    subjects: Sequence[str], *, sample_percent: int = DEFAULT_SAMPLE, metric: str = "clicks",
    wait: timedelta | str = DEFAULT_WAIT, at: datetime | None = None, now: datetime,
) -> TestPlan:
    """Check the author's choices; InvalidRequest names the one that is wrong and what to do."""
    cleaned = tuple(clean_header_text(s) for s in subjects)
    if any(not s for s in cleaned):
        raise InvalidRequest("subject test: a subject is empty; write each one out")
    if not 2 <= len(cleaned) <= 4:
        raise InvalidRequest(f"subject test: give two to four subjects, not {len(cleaned)}")
    if len({s.casefold() for s in cleaned}) != len(cleaned):
        raise InvalidRequest("subject test: two of the subjects are the same; make each one different")
    if not 1 <= sample_percent <= 100:
        raise InvalidRequest(f"subject test: sample must be a percentage from 1 to 100, not {sample_percent}")
    if metric not in METRICS:
        raise InvalidRequest(f"subject test: choose the winner by clicks or opens, not {metric!r}")
    span = parse_wait(wait) if isinstance(wait, str) else wait
    if at is not None:
        if at.tzinfo is None:
            raise InvalidRequest("subject test: the decision time needs a time zone")
        if at <= now + timedelta(minutes=10):
            raise InvalidRequest("subject test: the decision time must be at least 10 minutes from now")
    return TestPlan(subjects=cleaned, sample_percent=sample_percent, metric=metric, wait=span, at=at)


def decision_time(config: Config, text: str, tz_name: str | None = None) -> datetime:
    """"2026-12-01 14:00" read in `tz_name` (default: the publication's zone), as UTC."""
    try:
        zone = timing.zone(tz_name) if tz_name else config.tz
    except ConfigError as exc:
        raise InvalidRequest(f"timezone: {exc}") from exc
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d %H:%M").replace(tzinfo=zone).astimezone(UTC)
    except ValueError as exc:
        raise InvalidRequest(f'decision time {text!r} must look like "2026-12-01 14:00"') from exc


def _on(config: Config, key: str) -> bool:
    try:
        return bool(config[key])
    except KeyError:
        return False


def _seed(issue_key: str) -> int:
    return int.from_bytes(hashlib.sha256(issue_key.encode()).digest()[:4], "big") & 0x7FFFFFFF


def _refusals(config: Config, plan: TestPlan, recipients: int, had_it: int) -> list[str]:
    found = []
    if not _on(config, "analytics.enabled"):
        found.append(
            "turn on analytics to test subjects (analytics.enabled; per-person analytics are not needed): "
            "without counting opens and clicks, every test would keep the first subject"
        )
    if had_it:
        found.append(f"{had_it:,} reader(s) have this issue already: a subject test starts with an unsent issue")
    sample = recipients * plan.sample_percent // 100 // len(plan.subjects) * len(plan.subjects)
    if sample < MIN_SAMPLE:
        found.append(
            f"the sample would be {sample:,} reader(s) ({plan.sample_percent}% of {recipients:,}); a subject test "
            f"needs at least {MIN_SAMPLE}: raise the sample, or send with one subject"
        )
    return found


def start(
    config: Config, db: Engine, slug: str, plan: TestPlan, *, now: datetime, tag: str | None = None,
    segment: str | None = None, despite_complaints: bool = False, who: str = "",
) -> Started:
    """Send `slug` as a subject test: the sample's copies are queued now, the rest held.

    Raises InvalidRequest (every reason at once) before anything is written when the test
    cannot be run; otherwise as `issues.send_now`.
    """
    planned = issue_service.plan_send(config, db, slug, now=now, tag=tag, segment=segment)
    reasons = _refusals(config, plan, planned.recipients, planned.had_it)
    if reasons:
        raise InvalidRequest("subject test refused: " + "; ".join(reasons))
    decide_at = plan.decide_at(now)

    def write_test(issue_id: int) -> None:
        issue = ledger.get_issue(db, issue_id)
        with begin_write(db) as conn:
            if store.get(conn, issue_id) is None:
                store.write(
                    conn, issue_id, subjects=plan.subjects, sample_percent=plan.sample_percent,
                    metric=plan.metric, seed=_seed(issue.key), decide_at=decide_at, now=now,
                )

    queued = issue_service.send_now(
        config, db, slug, now=now, tag=tag, segment=segment, despite_complaints=despite_complaints, who=who,
        held_for=write_test,
    )
    sample = store.assign_sample(db, queued.issue_id, now=now)
    held = sum(c.copies for c in store.counts(db, queued.issue_id) if c.state == HELD)
    return Started(issue_id=queued.issue_id, sample=sample, held=held, decide_at=decide_at)


def plan_from(settings: SubjectTestSettings, *, now: datetime) -> TestPlan:
    """The plan an article's front matter asks for, the defaults filling what it leaves out."""
    return parse_plan(
        settings.subjects, sample_percent=settings.sample or DEFAULT_SAMPLE, metric=settings.by or "clicks",
        wait=settings.wait or DEFAULT_WAIT, now=now,
    )


def written_plan(config: Config, article: Article, *, now: datetime) -> TestPlan | None:
    """The test the article's own file asks for (`subjects:` and its companions), or None:
    no such lines, or an article that came from elsewhere (a watched feed)."""
    for path, source in content.article_files(config):
        if source == article.source:
            settings = subject_test_in(decode_article(read_content(path, source, config), source), source=source)
            return None if settings is None else plan_from(settings, now=now)
    return None


def check_scheduled(
    config: Config, db: Engine, slug: str, plan: TestPlan, *, run_at: datetime, now: datetime,
    tag: str | None = None, segment: str | None = None, local_time: bool = False,
) -> None:
    """Refuse, before a schedule is kept, a test that could not run as things stand (every
    reason at once); they are checked again when the send starts."""
    reasons = []
    if segment:
        reasons.append("a subject test goes to everyone or to a tag, not yet to a segment")
    if local_time:
        reasons.append("a subject test decides at one moment for everyone, so it cannot go with a local-time send")
    if plan.at is not None and plan.at <= run_at + timedelta(minutes=10):
        reasons.append(
            f"the decision time {clock.local_time(plan.at, config.tz)} must be at least 10 minutes after the send "
            f"starts ({clock.local_time(run_at, config.tz)})"
        )
    planned = issue_service.plan_send(config, db, slug, now=now, tag=tag)
    reasons += _refusals(config, plan, planned.recipients, planned.had_it)
    if reasons:
        raise InvalidRequest("subject test refused: " + "; ".join(reasons))


def keep_scheduled(db: Engine, issue_id: int, plan: TestPlan | None, *, run_at: datetime, now: datetime) -> None:
    """Keep (or, with None, drop) the test a schedule of `issue_id` runs when it starts; a
    test planned before for the same issue is replaced."""
    issue = ledger.get_issue(db, issue_id)
    with begin_write(db) as conn:
        store.drop_planned(conn, issue_id)
        if plan is None or store.get(conn, issue_id) is not None:
            return
        store.write(
            conn, issue_id, subjects=plan.subjects, sample_percent=plan.sample_percent, metric=plan.metric,
            seed=_seed(issue.key), decide_at=plan.decide_at(run_at), now=now,
            wait_seconds=None if plan.at is not None else int(plan.wait.total_seconds()),
        )


def drop_scheduled(db: Engine, issue_id: int) -> bool:
    """Forget the test a cancelled schedule would have run (one under way stays)."""
    with begin_write(db) as conn:
        return store.drop_planned(conn, issue_id)


def scheduled_plan(
    config: Config, db: Engine, issue_id: int, article: Article | None, *, now: datetime
) -> TestPlan | None:
    """The test a scheduled send runs as it starts: the one kept with its schedule, else the
    one its article's file asks for; None for neither (or a test already under way)."""
    with db.connect() as conn:
        kept = store.planned(conn, issue_id)
        if kept is None and store.get(conn, issue_id) is not None:
            return None
    if kept is not None:
        wait = timedelta(seconds=kept.wait_seconds) if kept.wait_seconds is not None else DEFAULT_WAIT
        return TestPlan(
            subjects=kept.subjects, sample_percent=kept.sample_percent, metric=kept.metric, wait=wait,
            at=None if kept.wait_seconds is not None else kept.decide_at,
        )
    return None if article is None else written_plan(config, article, now=now)


def refusals_at_start(config: Config, db: Engine, slug: str, plan: TestPlan, *, now: datetime,
                      tag: str | None, segmented: bool, local_time: bool) -> list[str]:
    """Why a scheduled send's test cannot run now (the send is then held, saying so)."""
    found = []
    if segmented:
        found.append("a subject test goes to everyone or to a tag, not yet to a segment")
    if local_time:
        found.append("a subject test cannot go with a local-time send")
    planned = issue_service.plan_send(config, db, slug, now=now, tag=tag)
    found += _refusals(config, plan, planned.recipients, planned.had_it)
    return [f"subject test: {reason}." for reason in found]


def start_scheduled(
    db: Engine, issue_id: int, plan: TestPlan, *, now: datetime, enqueue: Callable[[], int]
) -> Started:
    """Start a scheduled send as a subject test: keep the test (its decision time counted
    from now, or the time the author named), write the rows held through `enqueue`, queue
    the sample."""
    issue = ledger.get_issue(db, issue_id)
    decide_at = plan.at if plan.at is not None else now + plan.wait
    decide_at = max(decide_at, now + timedelta(minutes=10))  # a start late past the named time: still a wait
    with begin_write(db) as conn:
        if store.get(conn, issue_id) is None:
            store.write(
                conn, issue_id, subjects=plan.subjects, sample_percent=plan.sample_percent, metric=plan.metric,
                seed=_seed(issue.key), decide_at=decide_at, now=now,
            )
        else:
            store.start_planned(conn, issue_id, decide_at=decide_at)
    enqueue()
    sample = store.assign_sample(db, issue_id, now=now)
    held = sum(c.copies for c in store.counts(db, issue_id) if c.state == HELD)
    return Started(issue_id=issue_id, sample=sample, held=held, decide_at=decide_at)


def _figures(db: Engine, test: store.SubjectTest) -> list[VariantFigures]:
    sent = store.sent_per_variant(db, test.issue_id)
    seen = engagement.per_variant(db, test.issue_id)
    return [
        VariantFigures(
            variant=v, subject=s, sent=sent.get(v, 0), opens=seen.get(v, (0, 0))[0],
            clicks=seen.get(v, (0, 0))[1], metric=test.metric,
        )
        for v, s in enumerate(test.subjects)
    ]


def settle(config: Config, db: Engine, *, now: datetime) -> list[Settled]:
    """Take every step that is due: sample, decide, release. Safe to call at any time, twice
    at once, or after a crash between two steps (each step is taken once)."""
    done: list[Settled] = []
    for test in store.due(db, now=now):
        if test.sampled_at is None:
            sample = store.assign_sample(db, test.issue_id, now=now)
            if sample:
                done.append(Settled(test.issue_id, "sampled", "sample queued", sum(sample.values())))
            else:
                kept = store.get(db, test.issue_id)
                if kept is None or kept.sampled_at is None:
                    continue  # no rows yet (planned with a schedule, or stopped before them): nothing to decide
        if test.decided_at is None:
            if test.decide_at > now:
                continue
            figures = _figures(db, test)
            decision = decide(figures)
            if store.record_decision(
                db, test.issue_id, winner=decision.winner, reason=decision.reason,
                figures=[f.as_dict() for f in figures], now=now,
            ):
                done.append(Settled(test.issue_id, "decided", decision.reason))
        released = store.release(db, test.issue_id, now=now)
        kept = store.get(db, test.issue_id)
        subject = kept.subjects[kept.winner] if kept is not None and kept.winner is not None else ""
        done.append(Settled(test.issue_id, "released", f"the rest go out under {subject!r}", released))
    return done


def report(db: Engine, issue_id: int) -> TestReport | None:
    """The test's figures: as kept at the decision, or as they stand while the sample waits."""
    test = store.get(db, issue_id)
    if test is None:
        return None
    if test.decided_at is not None and test.figures:
        figures = tuple(
            VariantFigures(
                variant=int(str(f["variant"])), subject=str(f["subject"]), sent=int(str(f["sent"])),
                opens=int(str(f["opens"])), clicks=int(str(f["clicks"])), metric=str(f["metric"]),
            )
            for f in test.figures
        )
    else:
        figures = tuple(_figures(db, test))
    held = sum(c.copies for c in store.counts(db, issue_id) if c.state == HELD)
    return TestReport(
        issue_id=issue_id, subjects=test.subjects, metric=test.metric, sample_percent=test.sample_percent,
        decide_at=test.decide_at, figures=figures, decided_at=test.decided_at, winner=test.winner,
        reason=test.reason, held=held, released_at=test.released_at,
    )


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def report_lines(found: TestReport, zone: ZoneInfo) -> list[str]:
    """The report as plain lines (the CLI's `status`, and the desk's block says the same),
    its times on `zone`'s clock (the publication's) and named."""
    lines = [f"subject test: {len(found.subjects)} subjects to {found.sample_percent}% of readers, "
             f"chosen by {found.metric}"]
    for f in found.figures:
        low, high = f.interval
        mark = " (winner)" if found.winner == f.variant else ""
        lines.append(
            f"  {chr(65 + f.variant)} {f.subject!r}{mark}: sent {f.sent:,}, opens {f.opens:,}, clicks {f.clicks:,}, "
            f"{found.metric} rate {_pct(f.rate)} (95% interval {_pct(low)} to {_pct(high)})"
        )
    if found.decided_at is None:
        lines.append(
            f"  deciding at {clock.local_time(found.decide_at, zone)}; {found.held:,} reader(s) wait for the winner"
        )
    else:
        lines.append(f"  decided {clock.local_time(found.decided_at, zone)}: {found.reason}")
        if found.released_at is None:
            lines.append(
                f"  {found.held:,} reader(s) still to be given the winner (the daemon or send --resume does it)"
            )
    return lines
