"""The delivery loop: claim ledger rows, send them through a provider, record the results.

`delivery.concurrency` threads each repeat: claim a batch of min(`delivery.batch_size`,
`provider.max_batch`) due rows, hand it to the provider in one call, record every result
in one transaction. Temporary refusals come back after a jittered exponential backoff
that honours Retry-After (the ledger's `not_before`), until `delivery.max_attempts`.

Rate limit (`delivery.rate`, `delivery.burst`): tokens are taken before the claim, and a
claim is never larger than the bucket, so no row waits on the limiter while claimed (at
one message a minute a claimed batch of 50 would sit "in flight" for most of an hour,
past the lease that lets another worker take it over). One thread at a time waits for
tokens; the others wait their turn holding nothing. The bucket is kept in the database
(`SharedBucket`): every process sending for the publication, on any host, draws from
one budget, so N workers together still send at most `delivery.rate`.

Holding off: when the provider refuses a whole call for now (`TemporaryFailure`: a 429,
a 5xx, no connection), no thread makes a new call until the provider's Retry-After, or a
backoff that grows with each refusal in a row, has passed. Without it the threads would
run through the whole list against a throttled or broken provider, spending an attempt
of every reader on each pass. A hold longer than the linger ends the run; the rows stay
queued for `publisher send --resume`.

In-flight window: a row is "in flight" from its claim to the commit of its result. Each
thread holds at most one batch, so at most `concurrency x batch_size` rows are in flight
at any instant, and `ledger.recover` flags exactly those rows as uncertain after a
`kill -9`. A provider whose server answers message by message (`answers_each`, SMTP) is
given an `answered` callback: each answer goes to the run's recorder as it arrives, and
the provider holds the end of a message (the final dot of DATA) while `unrecorded`
answers of its session (SMTP: `delivery.smtp.in_flight`, 1 by default, up to 8) are still
uncommitted. The
recorder commits in groups, on a thread of its own, while the senders go on with the
next envelopes and bodies; an answer that a final dot will wait for is committed as soon
as it is read (recording.py, `Answered.hurry`). So at most `unrecorded` messages per connection can have
been accepted without their rows saying so: that is all a `kill -9` can send twice
(every row it left claimed is flagged uncertain, and reported). Providers that answer a
batch per call (the HTTP APIs) are recorded per call.

Stopping (`stop` set, e.g. by SIGINT/SIGTERM in the CLI): no new claims; the call being
made finishes and is recorded; claimed rows not yet tried go back to the queue untouched.
Every wait (rate limit, hold, retry) wakes up for a stop within a quarter of a second;
a provider call ends within `delivery.timeout` per message.

Per recipient the only work is a `Recipient` (signed unsubscribe URL, the row's stored
Message-ID), made when the provider comes to it, and the provider's splice into the
template rendered once per issue. Memory
does not grow with the list: nothing but the current batches is ever loaded.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from typing import TYPE_CHECKING, cast, overload
from urllib.parse import urlsplit

from sqlalchemy import Connection, Engine

from publisher.config import Config
from publisher.delivery.base import CallMaybeTaken, SendInterrupted
from publisher.delivery.ratelimit import DomainThrottles, SharedBucket
from publisher.delivery.recording import Answered, Recorder, durably
from publisher.delivery.retry import RetryPolicy
from publisher.errors import ConfigError, TemporaryFailure
from publisher.mail import tokens, tracking, verp
from publisher.mail.newsletter import MessageTemplate, Recipient, message_id_for
from publisher.models import Outcome, RenderedIssue, SendResult
from publisher.store import ledger, subject_tests

if TYPE_CHECKING:
    from publisher.delivery.base import Provider

__all__ = ["DEFAULT_LINGER", "DeliveryReport", "deliver", "in_flight_limit", "lease_for", "snapshot_templates"]

DEFAULT_LINGER = 900.0
"""Seconds `deliver` waits for a retry to come due; later ones are left for a resume."""

IDLE_WAIT = 0.25
"""Seconds a thread with nothing to claim sleeps at most before it checks for a stop."""

IDLE_LOOK = 1.0
"""Seconds a thread with nothing to claim lets pass, while siblings send, before it looks
at the ledger unasked (it looks at once when a sibling's batch ends)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one `deliver` run did (also passed to `progress` after every batch)."""

    worker: str
    sent: int = 0
    retried: int = 0
    failed: int = 0
    suppressed: int = 0
    released: int = 0
    batches: int = 0
    elapsed: float = 0.0
    stopped: bool = False
    in_flight_limit: int = 0
    next_due: datetime | None = None
    """Earliest row left waiting (a retry or a local-time row beyond the linger)."""
    refusal: str = ""
    """The provider's last refusal of a whole call, while no message has gone out since."""
    hold: float = 0.0
    """Seconds of holding off that refusal started (see "Holding off")."""

    @property
    def rate(self) -> float:
        """Messages sent per second."""
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0


def in_flight_limit(config: Config, provider: Provider) -> int:
    """The most rows that can be claimed but not recorded at once: concurrency x batch."""
    return _concurrency(config) * _batch_size(config, provider)


def _batch_size(config: Config, provider: Provider) -> int:
    return max(1, min(int(config["delivery.batch_size"]), int(provider.max_batch)))


def _concurrency(config: Config) -> int:
    return max(1, int(config["delivery.concurrency"]))


def _message_domain(config: Config, template: MessageTemplate) -> str:
    address = template.sender_address or parseaddr(str(config["newsletter.from"]))[1]
    domain = address.rpartition("@")[2]
    return domain or urlsplit(config.site_url).hostname or "localhost"


def snapshot_templates(config: Config, db: Engine, secret: str = "") -> Callable[[int], MessageTemplate]:
    """Templates built from the issues' snapshots: what a send gets unless told otherwise
    (with analytics on and a `secret`, their links tracked: `publisher.mail.tracking`)."""

    def template_for(issue_id: int) -> MessageTemplate:
        issue = ledger.get_issue(db, issue_id, to_send=True)
        html = tracking.tracked_html(config, db, secret, issue_id, issue.html)
        rendered = RenderedIssue(key=issue.key, subject=issue.subject, html=html, text=issue.text)
        return MessageTemplate.from_rendered(config, rendered)

    return template_for


class _Held:
    """The recorder's connection, kept from one commit to the next rather than taken from
    the pool and given back (and reset) for each: about a quarter of the CPU of a commit
    of two answers on SQLite, and a send commits about once every two messages. A write
    that fails drops it, so the next try begins on a fresh one, as from the pool."""

    def __init__(self, db: Engine) -> None:
        self._db = db
        self._conn: Connection | None = None

    @contextlib.contextmanager
    def begin(self) -> Iterator[Connection]:
        conn = self._conn
        if conn is None:
            conn = self._conn = self._db.connect()
        try:
            with conn.begin():
                yield conn
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


class _Run:
    """State shared by the sending threads of one `deliver` call."""

    def __init__(
        self,
        *,
        config: Config,
        db: Engine,
        provider: Provider,
        template_for: Callable[[int], MessageTemplate],
        issue_id: int | None,
        stop: threading.Event,
        progress: Callable[[DeliveryReport], None] | None,
        now: Callable[[], datetime],
        secret: str,
        worker: str,
        linger: float,
        policy: RetryPolicy,
    ) -> None:
        self.config = config
        self.db = db
        self.provider = provider
        self.issue_id = issue_id
        self.stop = stop
        self.progress = progress
        self.now = now
        self.secret = secret
        self.public_url = config.public_url
        """The links' base, read once rather than twice a copy."""
        self.tracked = bool(config["analytics.enabled"])
        """Copies carry a copy token (`publisher.mail.tracking`)."""
        self.policy = policy
        self.linger = linger
        self.batch = _batch_size(config, provider)
        self.bucket = SharedBucket(db, float(config["delivery.rate"]), int(config["delivery.burst"]))
        self.domains = DomainThrottles(db, config.domains)
        self.lock = threading.Lock()
        self.claim_turn = threading.Lock()
        self.hold_until = 0.0
        """No new provider call before this (time.monotonic()); see "Holding off"."""
        self.refusals = 0
        self.busy = 0
        self.batch_ended = threading.Condition(self.lock)
        """Notified as each batch ends, for the threads that found nothing to claim."""
        self.error: BaseException | None = None
        self.started = time.monotonic()
        self.report = DeliveryReport(worker=worker, in_flight_limit=_concurrency(config) * self.batch)
        self._template_for = template_for
        self._templates: dict[tuple[int, int | None], tuple[MessageTemplate, str]] = {}
        self._template_lock = threading.Lock()
        self.answers_each = bool(getattr(provider, "answers_each", False))
        self.recorder = Recorder(self._commit_group, self.fail)
        self.held = _Held(db)
        """The recorder's connection (see `_Held`)."""
        self.writing = threading.Lock()
        """Claims and group commits of this run take turns here rather than in SQLite's
        busy handler, which sleeps in steps of milliseconds."""

    def template(self, issue_id: int, variant: int | None = None) -> tuple[MessageTemplate, str]:
        """The issue's template and Message-ID domain, built once per issue (and per subject
        of a subject test: `variant`) per run."""
        with self._template_lock:
            found = self._templates.get((issue_id, variant))
            if found is None:
                if variant is None:
                    template = self._template_for(issue_id)
                else:
                    base, _ = self._templates.get((issue_id, None)) or (self._template_for(issue_id), "")
                    subjects = subject_tests.subjects_of(self.db, issue_id)
                    if subjects is not None and 0 <= variant < len(subjects):
                        template = base.with_subject(subjects[variant])
                    else:
                        template = base
                found = (template, _message_domain(self.config, template))
                self._templates[(issue_id, variant)] = found
            return found

    def _commit_group(self, group: Sequence[SendResult]) -> None:
        """Record a group of streamed answers (the recorder's thread)."""
        now = self.now()
        # `ledger.record` asks its engine for `begin()` alone: the kept connection stands in.
        held = cast(Engine, self.held)
        with self.writing:
            counts = durably(
                lambda: ledger.record(
                    held,
                    group,
                    now=now,
                    policy=self.policy,
                    worker=self.report.worker,
                    provider=self.provider.name,
                )
            )
        self.add(
            sent=counts["sent"],
            retried=counts["retry"],
            failed=counts["failed"],
            suppressed=counts["suppressed"],
        )

    def add(self, **counts: int) -> None:
        with self.lock:
            values = {name: getattr(self.report, name) + value for name, value in counts.items()}
            self.report = replace(self.report, elapsed=time.monotonic() - self.started, **values)
            snapshot = self.report
        if self.progress is not None:
            self.progress(snapshot)

    def fail(self, exc: BaseException) -> None:
        with self.lock:
            if self.error is None:
                self.error = exc

    @property
    def halted(self) -> bool:
        return self.stop.is_set() or self.error is not None

    @property
    def holding(self) -> bool:
        with self.lock:
            return self.hold_until > time.monotonic()

    def note(self, answers: Sequence[SendResult], refusal: TemporaryFailure | None) -> None:
        """Learn from a call: a whole-call refusal extends the hold, a sent message ends the streak."""
        with self.lock:
            if refusal is not None:
                self.refusals += 1
                hold = self.policy.hold(self.refusals, refusal.retry_after)
                self.hold_until = max(self.hold_until, time.monotonic() + hold)
                self.report = replace(self.report, refusal=str(refusal), hold=hold)
            elif any(answer.outcome is Outcome.SENT for answer in answers):
                self.refusals = 0
                if self.report.refusal:
                    self.report = replace(self.report, refusal="", hold=0.0)

    def later(self, due: datetime) -> None:
        """Remember the earliest moment work is left for (reported as `next_due`)."""
        with self.lock:
            known = self.report.next_due
            if known is None or due < known:
                self.report = replace(self.report, next_due=due)

    def pause(self, seconds: float) -> bool:
        """Sleep unless stopped or failed; True when the run should go on."""
        deadline = time.monotonic() + seconds
        while not self.halted:
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            self.stop.wait(min(left, 0.25))
        return False


def _idle(run: _Run) -> bool:
    """Nothing claimable now: wait for siblings or a retry coming due. False: finish."""
    due: datetime | None = None
    looked = time.monotonic()
    while True:
        with run.lock:
            if run.busy == 0:
                break
            # A sibling's results may schedule retries, or give rows back, that this
            # thread should pick up: look when its batch ends, when the retry seen last
            # comes due, or in a while (rows another process gives back), and claim only
            # what is due, so that idle threads do not take the ledger's write lock from
            # the commits of those still sending. Looking every few hundredths of a
            # second instead cost the senders a query per idle thread each time, at
            # the end of every send.
            wait = IDLE_WAIT if due is None else min(IDLE_WAIT, (due - run.now()).total_seconds())
            ended = run.batch_ended.wait(max(wait, 0.0))
        if run.halted:
            return False
        if not ended and (due is None or due > run.now()) and time.monotonic() - looked < IDLE_LOOK:
            continue
        due = ledger.next_due(run.db, issue_id=run.issue_id)
        looked = time.monotonic()
        if due is not None and due <= run.now():
            return True
    due = ledger.next_due(run.db, issue_id=run.issue_id)
    if due is None:
        return False
    wait = (due - run.now()).total_seconds()
    if wait > run.linger:
        run.later(due)
        return False
    return run.pause(min(max(wait, 0.01), 1.0))


def _wait_out_hold(run: _Run) -> bool:
    """Sit out a provider's hold. False: stopped, or the hold outlasts the linger."""
    with run.lock:
        left = run.hold_until - time.monotonic()
    if left <= 0:
        return True
    if left > run.linger:
        run.later(run.now() + timedelta(seconds=left))
        return False
    return run.pause(left)


def _take_turn(run: _Run) -> bool:
    while not run.halted:
        if run.claim_turn.acquire(timeout=0.25):
            return True
    return False


def _claim_rows(run: _Run, size: int) -> list[ledger.ClaimedRow]:
    with run.writing:
        return ledger.claim(run.db, worker=run.report.worker, limit=size, now=run.now(), issue_id=run.issue_id)


def _claim(run: _Run) -> list[ledger.ClaimedRow] | None:
    """The next batch of due rows; None when the run stopped while waiting for tokens."""
    if run.bucket.unlimited:
        return _claim_rows(run, run.batch)
    if not _take_turn(run):
        return None
    try:
        size = run.bucket.chunk(run.batch)
        with run.writing:
            wait = run.bucket.reserve(size, time.time())
        if wait > 0 and not run.pause(wait):
            with run.writing:
                run.bucket.refund(size)
            return None
        rows = _claim_rows(run, size)
        if len(rows) < size:
            with run.writing:
                run.bucket.refund(size - len(rows))
        return rows
    finally:
        run.claim_turn.release()


def _throttle_domains(run: _Run, rows: list[ledger.ClaimedRow]) -> list[ledger.ClaimedRow]:
    """`[delivery.domains]`: rows over their domain's rate go back to the queue, claimable
    when it has room again; the rest of the batch goes on."""
    admitted, waiting = run.domains.admit(rows, time.time())
    for wait, held in waiting.items():
        ids = [r.id for r in held]
        until = run.now() + timedelta(seconds=wait)

        def defer(ids: list[int] = ids, until: datetime = until) -> int:
            return ledger.defer(run.db, ids, worker=run.report.worker, until=until)

        with run.writing:
            durably(defer)
            run.bucket.refund(len(held))
    return admitted


class _Readers(Sequence[Recipient]):
    """One call's recipients, each made (its signed links, Message-ID, return path and copy
    token) when the provider first asks for it: an SMTP session makes each just before its
    copy, while the server takes the message before, or a signing thread ahead of it,
    rather than the connection sitting idle while a whole batch's links are signed."""

    __slots__ = ("_bounces", "_domain", "_lock", "_made", "_rows", "_run")

    def __init__(self, run: _Run, rows: Sequence[ledger.ClaimedRow], domain: str) -> None:
        self._run = run
        self._rows = rows
        self._domain = domain
        self._bounces = str(run.config["bounces.return_path_domain"])
        self._made: list[Recipient | None] = [None] * len(rows)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> Recipient: ...

    @overload
    def __getitem__(self, index: slice) -> list[Recipient]: ...

    def __getitem__(self, index: int | slice) -> Recipient | list[Recipient]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self._rows)))]
        with self._lock:
            made = self._made[index]
            if made is None:
                made = self._made[index] = self._make(self._rows[index])
            return made

    def _make(self, row: ledger.ClaimedRow) -> Recipient:
        run = self._run
        unsubscribe_url, manage_url = tokens.reader_urls(run.public_url, run.secret, row.token_key, row.message_key)
        return Recipient(
            delivery_id=row.id,
            email=row.email,
            name=row.name,
            unsubscribe_url=unsubscribe_url,
            message_id=message_id_for(row.message_key, self._domain),
            manage_url=manage_url,
            return_path=verp.return_path(run.secret, row.message_key, self._bounces),
            copy_token=(
                tracking.copy_token(run.config, run.secret, row.issue_id, row.message_key, run.now())
                if run.tracked
                else ""
            ),
        )


class _Streamed:
    """The answers of one batch that went to the recorder as they came."""

    def __init__(self, recorder: Recorder) -> None:
        self.ids: set[int] = set()
        self._recorder = recorder
        self._last: Answered | None = None

    def __call__(self, result: SendResult) -> Answered:
        if result.delivery_id is not None:
            self.ids.add(result.delivery_id)
        self._last = self._recorder.submit(result)
        return self._last

    def settle(self) -> None:
        """Wait until every streamed answer is in the ledger (before rows are released)."""
        if self._last is not None:
            self._last()


def _send_issue_rows(
    run: _Run, rows: Sequence[ledger.ClaimedRow], streamed: _Streamed
) -> tuple[list[SendResult], list[int], list[int]]:
    """Send one issue's share of a batch in one call: (results, untried ids, possibly-sent ids).

    With an `answers_each` provider, answers also go to the recorder as they come (`streamed`).
    """
    template, _ = run.template(rows[0].issue_id, rows[0].variant)
    readers = _Readers(run, rows, run.template(rows[0].issue_id)[1])
    # A provider answering message by message makes each recipient as it comes to it;
    # the others take the call's recipients whole, made before the call.
    recipients: Sequence[Recipient] = readers if run.answers_each else readers[:]
    ids = [row.id for row in rows]
    try:
        if run.answers_each:
            answers = run.provider.send(template, recipients, now=run.now(), answered=streamed)  # type: ignore[call-arg]
        else:
            answers = run.provider.send(template, recipients, now=run.now())
    except TemporaryFailure as exc:
        run.note([], exc)
        if getattr(exc, "nothing_tried", False):
            # A provider pool with every member failing sent nothing: the rows go back
            # untouched (no attempt spent) while the hold lasts.
            return [], ids, []
        retry_all = [
            SendResult(
                row.id,
                row.email,
                Outcome.RETRY,
                str(exc),
                retry_after=exc.retry_after,
                maybe_sent=isinstance(exc, CallMaybeTaken),
            )
            for row in rows
        ]
        return retry_all, [], []
    except ConfigError as exc:
        # The provider refused the account before taking any message of the call.
        run.fail(exc)
        return [], ids, []
    except SendInterrupted as exc:
        # A bug stopped the call part-way: keep the answers given, so that messages
        # already out are not sent again; only the ones in flight at the error are unsure.
        run.fail(exc.__cause__ or exc)
        given = _answers_for(exc.results, ids)
        answered = {a.delivery_id for a in given}
        rest = [i for i in ids if i not in answered]
        return given, rest[exc.in_flight :], rest[: exc.in_flight]
    except BaseException as exc:
        # Part of the call may have gone out: those rows must not look untried.
        run.fail(exc)
        return [], [], ids
    answers = _answers_for(answers, ids)
    run.note(answers, None)
    answered = {a.delivery_id for a in answers}
    missing = [i for i in ids if i not in answered]
    if missing:
        run.fail(RuntimeError(f"{run.provider.name} returned no result for {len(missing)} messages"))
    return answers, [], missing


def _answers_for(answers: Sequence[SendResult], ids: Sequence[int]) -> list[SendResult]:
    """The answers about rows of this call; anything else a provider returns is ignored."""
    wanted = set(ids)
    return [a for a in answers if a.delivery_id in wanted]


def _send_batch(run: _Run, rows: Sequence[ledger.ClaimedRow]) -> None:
    by_issue: dict[tuple[int, int | None], list[ledger.ClaimedRow]] = {}
    for row in rows:
        by_issue.setdefault((row.issue_id, row.variant), []).append(row)
    results: list[SendResult] = []
    untried: list[int] = []
    uncertain: list[int] = []
    streamed = _Streamed(run.recorder)
    try:
        for issue_rows in by_issue.values():
            if run.halted or run.holding:
                untried.extend(r.id for r in issue_rows)
                continue
            got, left, unsure = _send_issue_rows(run, issue_rows, streamed)
            results.extend(got)
            untried.extend(left)
            uncertain.extend(unsure)
    except BaseException as exc:  # building a template or a recipient failed
        run.fail(exc)
        done = {r.delivery_id for r in results}
        untried.extend(r.id for r in rows if r.id not in done and r.id not in uncertain)
    worker = run.report.worker
    now = run.now()
    # Released rows must not overtake a streamed answer still on its way to the ledger.
    streamed.settle()
    unrecorded = [r for r in results if r.delivery_id not in streamed.ids]
    with run.writing:
        counts = durably(
            lambda: ledger.record(
                run.db, unrecorded, now=now, policy=run.policy, worker=worker, provider=run.provider.name
            )
        )
    released = durably(lambda: ledger.release(run.db, untried, worker=worker))
    durably(lambda: ledger.release(run.db, uncertain, worker=worker, uncertain=True))
    run.add(
        sent=counts["sent"],
        retried=counts["retry"],
        failed=counts["failed"],
        suppressed=counts["suppressed"],
        released=released,
        batches=1,
    )


def _work(run: _Run) -> None:
    try:
        while not run.halted:
            if not _wait_out_hold(run):
                return
            rows = _claim(run)
            if rows is None:
                return
            if rows and run.domains:
                rows = _throttle_domains(run, rows)
            if not rows:
                if _idle(run):
                    continue
                return
            with run.lock:
                run.busy += 1
            try:
                _send_batch(run, rows)
            finally:
                with run.lock:
                    run.busy -= 1
                    run.batch_ended.notify_all()
    except BaseException as exc:
        run.fail(exc)


def deliver(
    config: Config,
    db: Engine,
    provider: Provider,
    *,
    stop: threading.Event,
    template_for: Callable[[int], MessageTemplate] | None = None,
    issue_id: int | None = None,
    progress: Callable[[DeliveryReport], None] | None = None,
    clock: Callable[[], datetime] = _utcnow,
    secret: str | None = None,
    worker: str | None = None,
    linger: float = DEFAULT_LINGER,
    policy: RetryPolicy | None = None,
) -> DeliveryReport:
    """Send every due row (of `issue_id`, or of every issue) until none is left or `stop`.

    Waits up to `linger` seconds for retries to come due; rows due later stay queued for
    `publisher send --resume` or the daemon, and the report's `next_due` says when. The
    first unexpected error stops every thread and is raised once in-flight work is
    recorded. `template_for` defaults to templates built from the issues' snapshots.
    """
    if secret is None:
        secret = tokens.resolve_secret(config, real_provider=provider.name != "maildir")
    bind_store = getattr(provider, "bind_store", None)
    if bind_store is not None:
        bind_store(db)  # a provider pool keeps its members' breakers in the run's database
    run = _Run(
        config=config,
        db=db,
        provider=provider,
        template_for=template_for or snapshot_templates(config, db, secret),
        issue_id=issue_id,
        stop=stop,
        progress=progress,
        now=clock,
        secret=secret,
        worker=worker or ledger.new_worker_id(),
        linger=linger,
        policy=policy or RetryPolicy.from_config(config),
    )
    threads = [
        threading.Thread(target=_work, args=(run,), name=f"deliver-{n}", daemon=True)
        for n in range(_concurrency(config))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(timeout=0.2)
    run.recorder.close()
    run.held.close()
    if run.error is not None:
        raise run.error
    ledger.finish_issues(db, now=clock())
    return replace(run.report, elapsed=time.monotonic() - run.started, stopped=stop.is_set())


def lease_for(config: Config) -> timedelta:
    """How old a claim must be before `recover` treats its worker (on another host) as dead.

    Generous: sending a claimed batch can take `delivery.timeout` per message (SMTP sends
    one at a time), and a thread may wait for a free SMTP connection first. Rate-limit
    waits and holds come before the claim, so they never count against it.
    """
    timeout = float(config["delivery.timeout"])
    return timedelta(seconds=max(900.0, 4 * timeout * max(1, int(config["delivery.batch_size"]))))
