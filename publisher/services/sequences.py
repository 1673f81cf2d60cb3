"""Welcome and drip sequences: the rule of who gets which step when, and the run that applies it.

A reader enters a sequence once, on the event its trigger names (see
`publisher.content.sequences`), and the steps' delays count from that event. A step
counted in whole days goes at `sequences.send_hour` on the reader's clock (their zone
where known, the author's otherwise) on that day; a step of no delay, or of hours or
minutes, goes at its exact moment. `run` (the daemon's minute job, or `publisher
sequences run`) enrols, then hands each due step to the ledger, which sends it like an
issue, exactly once; nothing here talks to a provider.

Editing a sequence while readers are in it:

- a new step reaches the readers whose moment for it comes after it was first seen and
  who have not been sent a later step; the others have passed it and never get it;
- a removed step is no longer sent (those who had it keep it in their history);
- a changed text goes to every reader not sent that step yet (each text is an issue of
  its own, rendered once); a reader never gets one step twice, whatever its text;
- a changed delay moves the step for everyone who has not had it.

A reader who unsubscribes (or bounces, or complains) is taken out at the next run; one
whose step is already in the ledger is skipped at the claim, as for any issue (an
unsubscribe committed before the claim wins; one committed after it lets that copy go,
and nothing after it). Coming back does not start it again.

A sequence that names a segment (`segment = "..."` in its sequence.toml) enrols only the
readers the segment holds as they would enter. When no segment of that name exists (it
was deleted or renamed) the sequence is held: nobody enters and no step goes, and the
run's problems, `publisher sequences list|show`, the desk and the API say why; the readers
who came meanwhile enter once a segment of that name is saved again (or the line removed).

`import_subscribers` is the import with `--sequence NAME`: the readers it adds as active
are let into that sequence (trigger "imported") in the import's own transaction; an
unknown name, or a sequence started otherwise, is refused before anything is imported.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine

from publisher.config import Config
from publisher.content import sequences as files
from publisher.content.sequences import Sequence, Step
from publisher.delivery.complaint_rate import complaint_rate
from publisher.delivery.sending import require_postal_address
from publisher.errors import ConfigError, InvalidRequest, NotFound, PublisherError
from publisher.mail import newsletter, preflight
from publisher.mail.mime import MessageTemplate, Recipient, clean_header_text
from publisher.models import Issue, IssueKind
from publisher.store import ledger
from publisher.store import segments as segment_store
from publisher.store import sequences as store
from publisher.store.segment_rules import Group
from publisher.store.subscriber_csv import ImportReport
from publisher.store.subscriber_import import import_rows

__all__ = [
    "Overview",
    "RunReport",
    "StepCheck",
    "StepView",
    "check_step",
    "due_at",
    "import_door",
    "import_subscribers",
    "importable",
    "load",
    "next_due",
    "next_moves",
    "overview",
    "overview_readable",
    "preview",
    "readers",
    "readers_page",
    "run",
    "save_step",
    "step_issue",
    "step_text",
]

log = logging.getLogger(__name__)


def _zone(name: str | None, fallback: ZoneInfo) -> ZoneInfo:
    if not name:
        return fallback
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return fallback


def due_at(started_at: datetime, step: Step, zone: ZoneInfo, send_hour: int) -> datetime:
    """When `step` is due for a reader who started at `started_at` and lives in `zone`. Pure."""
    if not step.by_day:
        return started_at + step.delay
    day = started_at.astimezone(zone).date() + timedelta(days=step.delay.days)
    local = datetime.combine(day, time(hour=send_hour), tzinfo=zone)
    # A wall-clock hour the clocks skip (or repeat) is read by zoneinfo's fold rules.
    return local.astimezone(started_at.tzinfo)


@dataclass(frozen=True, slots=True)
class Moves:
    """What to do for one reader now: steps to send, steps they passed, when to look again."""

    send: tuple[Step, ...]
    passed: tuple[Step, ...]
    next_at: datetime | None


def next_moves(
    steps: Seq[Step], *, started_at: datetime, done: frozenset[str], first_seen: dict[str, datetime],
    zone: ZoneInfo, send_hour: int, now: datetime,
) -> Moves:
    """The rule, pure: for a reader who started at `started_at` and had `done`, which
    steps go now, which they passed, and when their next step is due (None: none left).

    Steps are in order. A step is passed when a later one was done already, or when its
    moment (`started_at` + delay) came before it was first seen. At most the steps due
    now go; the first step not yet due sets `next_at`.
    """
    send: list[Step] = []
    passed: list[Step] = []
    latest_done = max((i for i, s in enumerate(steps) if s.name in done), default=-1)
    for index, step in enumerate(steps):
        if step.name in done:
            continue
        seen = first_seen.get(step.name, now)
        if index < latest_done or started_at + step.delay < seen:
            passed.append(step)
            continue
        moment = due_at(started_at, step, zone, send_hour)
        if moment > now:
            return Moves(tuple(send), tuple(passed), moment)
        send.append(step)
    return Moves(tuple(send), tuple(passed), None)


def next_due(db: Engine) -> datetime | None:
    """When the next step of any reader is due (None when nobody waits): the daemon wakes then."""
    return store.next_due(db)


def step_issue(config: Config, sequence: Sequence, step: Step) -> Issue:
    """The issue a step sends: its article, keyed by sequence, step and text, no archive link."""
    subject = clean_header_text(step.article.title)
    return Issue(
        key=f"sequence:{sequence.name}/{step.name}@{step.digest}",
        kind=IssueKind.ARTICLE,
        subject=subject,
        articles=(step.article,),
        preheader=step.article.summary,
        web_url=config.site_url,
    )


def _issue_id(config: Config, db: Engine, sequence: Sequence, step: Step, *, now: datetime) -> int:
    """The ledger's issue for this text of the step, rendered once (the first time it goes)."""
    issue = step_issue(config, sequence, step)
    found = ledger.find_issue(db, issue.key)
    if found is not None:
        return found.id
    rendered = newsletter.render_issue(config, issue, now)
    issue_id = ledger.create_issue(
        db, key=issue.key, kind="sequence", slug=f"{sequence.name}/{step.name}", subject=rendered.subject,
        html=rendered.html, text=rendered.text, tag=None, status=store.ISSUE_STATUS, now=now,
    )
    store.mark_issue(db, issue_id)
    return issue_id


@dataclass
class RunReport:
    """What one run did, per sequence."""

    enrolled: dict[str, int] = field(default_factory=dict)
    queued: dict[str, int] = field(default_factory=dict)
    passed: dict[str, int] = field(default_factory=dict)
    stopped: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    """Sequences that could not be read (the others ran)."""

    @property
    def total_queued(self) -> int:
        return sum(self.queued.values())


def load(config: Config) -> list[Sequence]:
    """Every sequence in `sequences.folder`; ContentError for the first that cannot be read."""
    return files.load_sequences(config)


def run(config: Config, db: Engine, *, now: datetime) -> RunReport:
    """Enrol readers from the event log and hand every due step to the ledger.

    A sequence whose files cannot be read is left as it is (its readers wait) and named
    in the report's problems; the others run.
    """
    report = RunReport()
    names = files.sequence_names(config.path_of("sequences.folder"))
    if not names:
        return report
    held = _held(config, db, now=now)
    if held:
        report.problems.append(held)
    for name in names:
        try:
            sequence = files.load_sequence(config, name)
        except PublisherError as exc:
            report.problems.append(f"sequence {name!r} not run: {exc}")
            continue
        _run_one(config, db, sequence, now=now, report=report, hold=bool(held))
    return report


def _held(config: Config, db: Engine, *, now: datetime) -> str:
    """Why no step may go now ("" when they may): what stops any send stops these too.
    Readers are still enrolled meanwhile, and get their due steps once it is lifted."""
    try:
        require_postal_address(config)
    except ConfigError as exc:
        return f"sequences hold their steps: {exc}"
    rate = complaint_rate(db, now=now)
    if rate.level == "stop":
        return (f"sequences hold their steps: the complaint rate is {rate.in_words()}; "
                "readers get their due steps once it falls")
    return ""


def _run_one(
    config: Config, db: Engine, sequence: Sequence, *, now: datetime, report: RunReport, hold: bool = False
) -> None:
    name = sequence.name
    known = store.sync(db, name, [s.name for s in sequence.steps], sequence.steps_key, now=now)
    segment, held = _segment(db, sequence)
    if held:
        report.problems.append(held)
        report.enrolled[name] = report.queued[name] = 0
        return
    report.enrolled[name] = store.enrol(db, name, sequence.trigger, sequence.topic, now=now, segment=segment)
    if hold:
        report.queued[name] = 0
        return
    send_hour = int(config["sequences.send_hour"])
    first_seen = dict(known.step_first_seen)
    issue_ids: dict[str, int] = {}
    queued = passed = stopped = 0
    while True:
        batch = store.due(db, name, now=now)
        if not batch:
            break
        for enrolment in batch:
            if enrolment.status != "active":
                store.stop(db, enrolment.id, f"reader {enrolment.status}")
                stopped += 1
                continue
            moves = next_moves(
                sequence.steps, started_at=enrolment.started_at, done=enrolment.done, first_seen=first_seen,
                zone=_zone(enrolment.timezone, config.tz), send_hour=send_hour, now=now,
            )
            for step in moves.passed:
                store.pass_step(db, name, step.name, enrolment.subscriber_id, now=now)
                passed += 1
            for step in moves.send:
                if step.name not in issue_ids:
                    issue_ids[step.name] = _issue_id(config, db, sequence, step, now=now)
                if store.queue_step(db, name, step.name, enrolment, issue_ids[step.name], now=now):
                    queued += 1
            store.set_next(db, enrolment.id, moves.next_at)
        if len(batch) < 500:
            break
    report.queued[name] = queued
    report.passed[name] = passed
    report.stopped[name] = stopped


def _segment(db: Engine, sequence: Sequence) -> tuple[Group | None, str]:
    """The rules of the segment `sequence` names (None when it names none), or why it is held."""
    if not sequence.segment:
        return None, ""
    try:
        return segment_store.by_name(db, sequence.segment).rules, ""
    except NotFound:
        return None, (f"sequence {sequence.name!r} is held: its segment {sequence.segment!r} no longer exists; "
                      "save a segment of that name again, or change or remove the segment line in its "
                      "sequence.toml (nobody enters and no step goes meanwhile)")


@dataclass(frozen=True, slots=True)
class StepView:
    name: str
    title: str
    delay: str
    source: str
    at_step: int
    """Active readers whose last step sent is this one."""


@dataclass(frozen=True, slots=True)
class Overview:
    """A sequence as the desk and `publisher sequences list|show` present it."""

    name: str
    trigger: str
    topic: str
    steps: tuple[StepView, ...]
    waiting: int
    """Readers in it who have not been sent a step yet."""
    stopped: int
    """Readers taken out (they left the list)."""
    elsewhere: int
    """Readers whose last step was removed from the sequence since."""
    segment: str = ""
    """The saved segment that limits who enters ("" for every reader the trigger brings)."""
    held: str = ""
    """Why nobody enters and no step goes ("" when it runs)."""
    finished: int = 0
    """Active readers with no step left for them (counted at their last step too)."""

    @property
    def readers(self) -> int:
        return self.waiting + self.stopped + self.elsewhere + sum(s.at_step for s in self.steps)

    @property
    def trigger_text(self) -> str:
        """What starts it, after "starts when a reader": "confirms (becomes an active reader)"."""
        if self.trigger == "topic":
            return f"joins the topic {self.topic!r}"
        if self.trigger == "imported":
            named = f"is imported with --sequence {self.name}"
            return f"{named}, or imported with the tag {self.topic!r}" if self.topic else named
        return "confirms (becomes an active reader)"


def overview(config: Config, db: Engine, name: str | None = None) -> list[Overview]:
    """Each sequence (or the one named) with its steps and who is at which step."""
    sequences = [files.load_sequence(config, name)] if name is not None else load(config)
    found = []
    for sequence in sequences:
        order = [s.name for s in sequence.steps]
        counts = store.step_counts(db, sequence.name, order)
        steps = tuple(
            StepView(name=s.name, title=s.article.title, delay=s.delay_text, source=s.source,
                     at_step=counts.get(s.name, 0))
            for s in sequence.steps
        )
        elsewhere = counts.get(store.ELSEWHERE, 0)
        found.append(Overview(
            name=sequence.name, trigger=sequence.trigger, topic=sequence.topic, steps=steps,
            waiting=counts.get("", 0), stopped=counts.get("(stopped)", 0), elsewhere=elsewhere,
            segment=sequence.segment, held=_segment(db, sequence)[1], finished=counts.get(store.FINISHED, 0),
        ))
    return found


def overview_readable(config: Config, db: Engine) -> tuple[list[Overview], list[str]]:
    """Each sequence that can be read, and for each that cannot, the problem (its file and line)."""
    found: list[Overview] = []
    problems: list[str] = []
    for name in files.sequence_names(config.path_of("sequences.folder")):
        try:
            found.extend(overview(config, db, name))
        except PublisherError as exc:
            problems.append(f"sequence {name!r} cannot be read: {exc}")
    return found, problems


def readers(config: Config, db: Engine, name: str, *, limit: int = 200) -> list[store.Reader]:
    """The readers in a sequence, newest first, with their last step (for owners)."""
    sequence = files.load_sequence(config, name)
    return store.readers(db, name, [s.name for s in sequence.steps], limit=limit)


def readers_page(
    config: Config, db: Engine, name: str, *, after: int = 0, limit: int = 100, addresses: bool = True,
) -> tuple[list[store.Reader], bool]:
    """The readers in a sequence in the order they entered, a page after the cursor
    `after` (a reader's `enrolment_id`), with their last step; and whether more follow.
    Without `addresses` (a caller who may not read subscribers) each email is ""."""
    if not 1 <= limit <= 1000:
        raise InvalidRequest(f"limit must be between 1 and 1000, got {limit}")
    sequence = files.load_sequence(config, name)
    found, more = store.readers_page(db, name, [s.name for s in sequence.steps], after=after, limit=limit)
    if not addresses:
        found = [dataclasses.replace(reader, email="") for reader in found]
    return found, more


def importable(config: Config) -> list[str]:
    """The sequences an import may start by name (trigger "imported"), readable ones only."""
    found = []
    for name in files.sequence_names(config.path_of("sequences.folder")):
        try:
            if files.load_sequence(config, name).trigger == "imported":
                found.append(name)
        except PublisherError:
            continue
    return found


def import_subscribers(
    config: Config,
    db: Engine,
    lines: Iterable[str],
    *,
    now: datetime,
    origin: str,
    sequence: str,
    pending: bool = False,
    tags: Iterable[str] = (),
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a CSV export as `services.subscribers.import_subscribers` does, and let the
    readers it adds as active into `sequence`: the next run enrols them (its segment, if
    any, permitting) and their first step goes then. Refused before anything is read or
    written when there is no such sequence or it is not started by an import."""
    found = import_door(config, sequence)
    # Seen before the import: a sequence first seen after it would read past its events.
    store.sync(db, found.name, [s.name for s in found.steps], found.steps_key, now=now)
    return import_rows(db, lines, now=now, origin=origin, pending=pending, tags=tags, progress=progress,
                       sequence=found.name)


def import_door(config: Config, name: str) -> Sequence:
    """The sequence an import may start by name; NotFound (naming those there are) or
    InvalidRequest (it is started otherwise) before anything is imported."""
    found = files.load_sequence(config, name)
    if found.trigger != "imported":
        raise InvalidRequest(
            f"sequence {name!r} starts when a reader {_starts(found)}, not by an import; "
            'put trigger = "imported" in its sequence.toml to start it from an import. Nothing was imported.'
        )
    return found


def _starts(sequence: Sequence) -> str:
    return Overview(name=sequence.name, trigger=sequence.trigger, topic=sequence.topic, steps=(), waiting=0,
                    stopped=0, elsewhere=0).trigger_text


def preview(config: Config, name: str, step: str, *, now: datetime) -> tuple[str, str, str]:
    """A step rendered as its readers would get it: (subject, html, text)."""
    sequence = files.load_sequence(config, name)
    return _as_read(config, sequence, sequence.step(step), now)


@dataclass(frozen=True, slots=True)
class StepCheck:
    """A step as its readers would get it, with the checks before sending."""

    sequence: str
    step: str
    delay: str
    source: str
    subject: str
    html: str
    checks: tuple[preflight.Check, ...]

    @property
    def blocking(self) -> tuple[preflight.Check, ...]:
        """Failing checks that would stop an issue's send: a step's readers deserve the same."""
        return tuple(c for c in self.checks if c.ok is False and c.blocking)


def check_step(config: Config, name: str, step: str, *, now: datetime) -> StepCheck:
    """Render one step and run the checks before sending (no network, no SpamAssassin):
    what the desk's step page shows. NotFound for an unknown sequence or step."""
    sequence = files.load_sequence(config, name)
    found = sequence.step(step)
    subject, html, text = _as_read(config, sequence, found, now)
    checks, _records = preflight.run_checks(config, found.article, subject=subject, html=html, text=text, spam=False)
    return StepCheck(sequence=name, step=step, delay=found.delay_text, source=found.source,
                     subject=subject, html=html, checks=tuple(checks))


def _as_read(config: Config, sequence: Sequence, step: Step, now: datetime) -> tuple[str, str, str]:
    """The step rendered and spliced for a sample reader, as each reader's copy is made."""
    rendered = newsletter.render_issue(config, step_issue(config, sequence, step), now)
    sample = Recipient(
        delivery_id=None, email="reader@example.com", name="Reader",
        unsubscribe_url=config.public_url + "/unsubscribe/example", message_id="",
        manage_url=config.public_url + "/manage/example",
    )
    html, text = MessageTemplate.from_rendered(config, rendered).parts(sample)
    return rendered.subject, html, text


def step_text(config: Config, name: str, step: str) -> str:
    """A step file's text, for the desk's editor. NotFound for an unknown one."""
    files.load_sequence(config, name).step(step)
    path = config.path_of("sequences.folder") / name / f"{step}.md"
    return files.read_step_text(config, path)


def save_step(config: Config, name: str, step: str, text: str) -> Step:
    """Write a step file (a new sequence's folder too), after reading it as a step: a text
    that is not a step (no title, no delay, an unknown key) is refused with its line, and
    nothing is written. Written to a temporary file, then renamed over the old one."""
    for value, what in ((name, "sequence"), (step, "step")):
        if not files.NAME_RE.match(value):
            raise InvalidRequest(f"{what} name {value!r}: use lower-case letters, digits, - and _ (e.g. day-3)")
    shown = f"{config['sequences.folder']}/{name}/{step}.md"
    parsed = files.parse_step(text, name=step, source=shown, config=config)
    folder = config.path_of("sequences.folder") / name
    files.write_step_text(folder, f"{step}.md", text)
    return parsed
