"""The delivery loop: claim ledger rows, send them through a provider, record the results.

`delivery.concurrency` threads each repeat: claim a batch of min(`delivery.batch_size`,
`provider.max_batch`) due rows, draw tokens from the provider's bucket (`delivery.rate`,
`delivery.burst`), hand the batch to the provider, record every result in one
transaction. Temporary refusals come back after a jittered exponential backoff that
honours Retry-After (the ledger's `not_before`), until `delivery.max_attempts`.

In-flight window: a row is "in flight" from its claim to the commit of its result. Each
thread holds at most one batch, so at most `concurrency x batch_size` rows are in flight
at any instant; a `kill -9` can therefore cause at most that many second copies, and
`ledger.recover` flags exactly those rows as uncertain.

Stopping (`stop` set, e.g. by SIGINT/SIGTERM in the CLI): no new claims; the chunk being
sent finishes and is recorded; claimed rows not yet tried go back to the queue untouched.

Per recipient the only work is a `Recipient` (signed unsubscribe URL, deterministic
Message-ID) and the provider's splice into the template rendered once per issue. Memory
does not grow with the list: nothing but the current batches is ever loaded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sqlalchemy import Engine

from publisher import tokens
from publisher.config import Config
from publisher.delivery.ratelimit import TokenBucket
from publisher.delivery.retry import RetryPolicy
from publisher.errors import ConfigError, TemporaryFailure
from publisher.models import Outcome, RenderedIssue, SendResult
from publisher.newsletter import MessageTemplate, Recipient, message_id_for
from publisher.store import ledger

if TYPE_CHECKING:
    from publisher.delivery.base import Provider

__all__ = ["DEFAULT_LINGER", "DeliveryReport", "deliver", "in_flight_limit", "lease_for", "snapshot_templates"]

DEFAULT_LINGER = 900.0
"""Seconds `deliver` waits for a retry to come due; later ones are left for a resume."""


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


def snapshot_templates(config: Config, db: Engine) -> Callable[[int], MessageTemplate]:
    """Templates built from the issues' snapshots: what a send gets unless told otherwise."""

    def template_for(issue_id: int) -> MessageTemplate:
        issue = ledger.get_issue(db, issue_id)
        rendered = RenderedIssue(key=issue.key, subject=issue.subject, html=issue.html, text=issue.text)
        return MessageTemplate.from_rendered(config, rendered)

    return template_for


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
        self.policy = policy
        self.linger = linger
        self.batch = _batch_size(config, provider)
        self.bucket = TokenBucket(
            float(config["delivery.rate"]), int(config["delivery.burst"]), now=time.monotonic()
        )
        self.lock = threading.Lock()
        self.busy = 0
        self.error: BaseException | None = None
        self.started = time.monotonic()
        self.report = DeliveryReport(
            worker=worker, in_flight_limit=_concurrency(config) * self.batch
        )
        self._template_for = template_for
        self._templates: dict[int, tuple[MessageTemplate, str]] = {}
        self._template_lock = threading.Lock()

    def template(self, issue_id: int) -> tuple[MessageTemplate, str]:
        """The issue's template and Message-ID domain, built once per issue per run."""
        with self._template_lock:
            found = self._templates.get(issue_id)
            if found is None:
                template = self._template_for(issue_id)
                found = (template, _message_domain(self.config, template))
                self._templates[issue_id] = found
            return found

    def add(self, **counts: int) -> None:
        with self.lock:
            values = {name: getattr(self.report, name) + value for name, value in counts.items()}
            self.report = replace(
                self.report, elapsed=time.monotonic() - self.started, **values
            )
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
    with run.lock:
        siblings_busy = run.busy > 0
    if siblings_busy:
        # A sibling's results may schedule retries this thread should pick up.
        return run.pause(0.05)
    due = ledger.next_due(run.db, issue_id=run.issue_id)
    if due is None:
        return False
    wait = (due - run.now()).total_seconds()
    if wait > run.linger:
        with run.lock:
            run.report = replace(run.report, next_due=due)
        return False
    return run.pause(min(max(wait, 0.01), 1.0))


def _recipients(run: _Run, rows: Sequence[ledger.ClaimedRow]) -> list[Recipient]:
    recipients = []
    for row in rows:
        _, domain = run.template(row.issue_id)
        recipients.append(
            Recipient(
                delivery_id=row.id,
                email=row.email,
                name=row.name,
                unsubscribe_url=tokens.unsubscribe_url(run.config, run.secret, row.subscriber_id),
                message_id=message_id_for(row.issue_id, row.id, domain),
            )
        )
    return recipients


def _send_issue_rows(
    run: _Run, rows: Sequence[ledger.ClaimedRow]
) -> tuple[list[SendResult], list[int], list[int]]:
    """Send one issue's share of a batch: (results, untried row ids, possibly-sent row ids)."""
    template, _ = run.template(rows[0].issue_id)
    recipients = _recipients(run, rows)
    results: list[SendResult] = []
    position = 0
    while position < len(recipients):
        if run.halted:
            break
        size = run.bucket.chunk(len(recipients) - position)
        wait = run.bucket.reserve(size, time.monotonic())
        if wait > 0 and not run.pause(wait):
            break
        chunk = recipients[position : position + size]
        try:
            answers = run.provider.send(template, chunk, now=run.now())
        except TemporaryFailure as exc:
            answers = [
                SendResult(
                    delivery_id=r.delivery_id,
                    recipient=r.email,
                    outcome=Outcome.RETRY,
                    detail=str(exc),
                    retry_after=exc.retry_after,
                )
                for r in chunk
            ]
        except ConfigError as exc:
            # The provider refused the account before taking any message of the call.
            run.fail(exc)
            untried = [r.delivery_id for r in recipients[position:] if r.delivery_id is not None]
            return results, untried, []
        except BaseException as exc:
            # Part of the chunk may have gone out: those rows must not look untried.
            run.fail(exc)
            uncertain = [r.delivery_id for r in chunk if r.delivery_id is not None]
            untried = [r.delivery_id for r in recipients[position + size :] if r.delivery_id is not None]
            return results, untried, uncertain
        answered = {a.delivery_id for a in answers}
        results.extend(answers)
        missing = [r.delivery_id for r in chunk if r.delivery_id not in answered]
        if missing:
            run.fail(RuntimeError(f"{run.provider.name} returned no result for {len(missing)} messages"))
            untried = [r.delivery_id for r in recipients[position + size :] if r.delivery_id is not None]
            return results, untried, [m for m in missing if m is not None]
        position += size
    untried = [r.delivery_id for r in recipients[position:] if r.delivery_id is not None]
    return results, untried, []


def _send_batch(run: _Run, rows: Sequence[ledger.ClaimedRow]) -> None:
    by_issue: dict[int, list[ledger.ClaimedRow]] = {}
    for row in rows:
        by_issue.setdefault(row.issue_id, []).append(row)
    results: list[SendResult] = []
    untried: list[int] = []
    uncertain: list[int] = []
    try:
        for issue_rows in by_issue.values():
            if run.halted:
                untried.extend(r.id for r in issue_rows)
                continue
            got, left, unsure = _send_issue_rows(run, issue_rows)
            results.extend(got)
            untried.extend(left)
            uncertain.extend(unsure)
    except BaseException as exc:  # building a template or a recipient failed
        run.fail(exc)
        done = {r.delivery_id for r in results}
        untried.extend(r.id for r in rows if r.id not in done and r.id not in uncertain)
    worker = run.report.worker
    counts = ledger.record(
        run.db, results, now=run.now(), policy=run.policy, worker=worker, provider=run.provider.name
    )
    released = ledger.release(run.db, untried, worker=worker)
    ledger.release(run.db, uncertain, worker=worker, uncertain=True)
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
            rows = ledger.claim(
                run.db, worker=run.report.worker, limit=run.batch, now=run.now(), issue_id=run.issue_id
            )
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
    run = _Run(
        config=config,
        db=db,
        provider=provider,
        template_for=template_for or snapshot_templates(config, db),
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
    if run.error is not None:
        raise run.error
    ledger.finish_issues(db, now=clock())
    return replace(run.report, elapsed=time.monotonic() - run.started, stopped=stop.is_set())


def lease_for(config: Config) -> timedelta:
    """How old a claim must be before `recover` treats its worker (on another host) as dead.

    Generous: a batch can wait on the rate limit and on `delivery.timeout` per chunk.
    """
    timeout = float(config["delivery.timeout"])
    return timedelta(seconds=max(900.0, 4 * timeout * max(1, int(config["delivery.batch_size"]))))
