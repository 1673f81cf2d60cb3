"""The delivery loop: batches, concurrency, rate limit, retries, stops and failures."""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path

import pytest
import sqlalchemy as sa
from fakes import FakeAPI, SMTPServer, vendors
from fakes.http_api import RecordedRequest, Reply
from store_support import BACKENDS, open_test_store

from publisher.config import Config, parse_config
from publisher.delivery import recording
from publisher.delivery.base import SendInterrupted, make_provider
from publisher.delivery.engine import deliver, in_flight_limit, snapshot_templates
from publisher.delivery.ratelimit import TokenBucket
from publisher.delivery.retry import RETRY_AFTER_LIMIT, RetryPolicy, backoff, is_hard_bounce
from publisher.errors import ConfigError, TemporaryFailure
from publisher.mail import tokens
from publisher.mail.newsletter import MessageTemplate, Recipient, message_id_for
from publisher.models import Outcome, SendResult
from publisher.store import ledger
from publisher.store import subscribers as subscriber_store
from publisher.store.schema import deliveries, subscribers

SECRET = "s" * 40
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def make_config(tmp_path: Path, *, tables: str = "", **delivery: object) -> Config:
    values = {"concurrency": 2, "batch_size": 10, "retry_base": 0.01, "retry_max": 0.05}
    values.update(delivery)
    lines = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in values.items())
    text = f"""
[publication]
title = "Engine Test"
url = "https://example.org/"
postal_address = "1 Test Street"

[newsletter]
from = "Ed <ed@example.org>"

[delivery]
{lines}
{tables}
"""
    env = {"PUBLISHER_SECRET": SECRET, "PUBLISHER_POSTMARK_TOKEN": "pm-token"}
    return parse_config(text, root=tmp_path, env=env)


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """SQLite in tmp_path; PostgreSQL too when $PUBLISHER_TEST_POSTGRES_URL is set."""
    engine = open_test_store(request.param, tmp_path)
    yield engine
    engine.dispose()


def queue_issue(db: sa.Engine, count: int) -> int:
    with db.begin() as conn:
        conn.execute(
            sa.insert(subscribers),
            [
                {"email": f"r{n}@example.org", "name": f"R {n}", "status": "active", "source": "t",
                 "created_at": NOW, "updated_at": NOW}
                for n in range(count)
            ],
        )
    issue = ledger.create_issue(
        db, key="tag:example.org,2026-03-01:/hello", kind="article", slug="hello", subject="Hello",
        html="<html><body><p>Hello</p></body></html>", text="Hello", tag=None, status="draft", now=NOW,
    )
    ledger.enqueue(db, issue, now=NOW - timedelta(minutes=1))
    return issue


Answer = Callable[[Recipient, int], SendResult]


def always_sent(recipient: Recipient, attempt: int) -> SendResult:
    return SendResult(recipient.delivery_id, recipient.email, Outcome.SENT, provider_id="ok")


class FakeProvider:
    """Keeps every message it is handed; `answer` decides each outcome by attempt number."""

    name = "fake"

    def __init__(self, *, max_batch: int = 100, answer: Answer = always_sent,
                 on_send: Callable[[Sequence[Recipient]], None] | None = None, delay: float = 0.0) -> None:
        self.max_batch = max_batch
        self.answer = answer
        self.on_send = on_send
        self.delay = delay
        self.messages: list[tuple[str, bytes]] = []
        self.attempts: Counter[str] = Counter()
        self.times: dict[str, list[float]] = {}
        self.calls = 0
        self.active = 0
        self.most_active = 0
        self.lock = threading.Lock()

    def send(self, template: MessageTemplate, recipients: Sequence[Recipient], *, now: datetime) -> list[SendResult]:
        with self.lock:
            self.calls += 1
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            if self.on_send is not None:
                self.on_send(recipients)
            if self.delay:
                time.sleep(self.delay)
            results = []
            for recipient in recipients:
                with self.lock:
                    self.attempts[recipient.email] += 1
                    attempt = self.attempts[recipient.email]
                    self.times.setdefault(recipient.email, []).append(time.monotonic())
                result = self.answer(recipient, attempt)
                if result.outcome is Outcome.SENT:
                    raw = template.message_bytes(recipient, now)
                    with self.lock:
                        self.messages.append((recipient.email, raw))
                results.append(result)
            return results
        finally:
            with self.lock:
                self.active -= 1

    def close(self) -> None:
        pass


def run(config: Config, db: sa.Engine, provider: FakeProvider, **kwargs: object) -> object:
    stop = kwargs.pop("stop", None) or threading.Event()
    return deliver(config, db, provider, stop=stop, **kwargs)  # type: ignore[arg-type]


def states(db: sa.Engine) -> dict[str, int]:
    with db.connect() as conn:
        return dict(conn.execute(sa.select(deliveries.c.state, sa.func.count()).group_by(deliveries.c.state)).all())


def test_backoff_is_full_jitter_under_a_doubling_ceiling() -> None:
    """Delays stay within [0, min(cap, base * 2**(n-1))]."""
    rng = random.Random(7)
    for attempt in range(1, 8):
        delays = [backoff(attempt, base=2.0, cap=20.0, rng=rng) for _ in range(200)]
        assert min(delays) >= 0 and max(delays) <= min(20.0, 2.0 * 2 ** (attempt - 1))


def test_backoff_honours_retry_after() -> None:
    """Retry-After is a floor under the jittered delay."""
    assert backoff(1, base=1.0, cap=10.0, retry_after=120.0) == 120.0


def test_hard_bounce_classification() -> None:
    """Address-level refusals are hard bounces; message-level ones are not."""
    def failed(detail: str) -> SendResult:
        return SendResult(1, "a@example.org", Outcome.FAILED, detail)

    assert is_hard_bounce(failed("550 5.1.1 <a@example.org>: Recipient address rejected: User unknown"))
    assert is_hard_bounce(failed("550 No such user here"))
    assert is_hard_bounce(failed("SMTP 550 5.1.1 unknown (refused at recipient)"))
    assert not is_hard_bounce(failed("SMTP 550 relaying denied (refused at recipient)"))
    assert not is_hard_bounce(failed("552 5.3.4 Message size exceeds fixed limit"))
    assert not is_hard_bounce(failed("554 5.7.1 Message rejected as spam"))
    assert not is_hard_bounce(SendResult(1, "a@example.org", Outcome.RETRY, "550 5.1.1"))


def test_token_bucket_spaces_reservations() -> None:
    """Past the burst, each token costs 1/rate seconds of waiting."""
    bucket = TokenBucket(10.0, 5, now=100.0)
    assert bucket.reserve(5, 100.0) == 0.0
    assert bucket.reserve(1, 100.0) == pytest.approx(0.1)
    assert bucket.reserve(2, 100.0) == pytest.approx(0.3)
    assert bucket.reserve(1, 101.0) == 0.0  # a second later the bucket is full again
    assert bucket.chunk(50) == 5
    assert TokenBucket(0.0).reserve(10**6, 0.0) == 0.0


def test_deliver_sends_each_row_once(tmp_path: Path, db: sa.Engine) -> None:
    """Every queued row is sent exactly once and the issue ends done."""
    config = make_config(tmp_path)
    issue = queue_issue(db, 57)
    provider = FakeProvider()
    report = run(config, db, provider)
    assert report.sent == 57  # type: ignore[attr-defined]
    assert sorted(Counter(e for e, _ in provider.messages).values()) == [1] * 57
    assert states(db) == {"sent": 57}
    assert ledger.get_issue(db, issue).status == "done"


def test_each_message_carries_its_row_values(tmp_path: Path, db: sa.Engine) -> None:
    """Message-ID is the row's stored one; the unsubscribe link carries the subscriber's key."""
    config = make_config(tmp_path)
    queue_issue(db, 3)
    provider = FakeProvider()
    run(config, db, provider)
    with db.connect() as conn:
        rows = {r.email: r for r in conn.execute(sa.select(deliveries))}
    for address, raw in provider.messages:
        message = message_from_bytes(raw)
        row = rows[address]
        assert message["Message-ID"] == message_id_for(row.message_key, "example.org")
        link = message["List-Unsubscribe"].split(",")[0].strip("<> ")
        target = tokens.verify(SECRET, "unsubscribe", link.rsplit("/", 1)[1])
        assert target.key == subscriber_store.link_key(db, row.subscriber_id)


def test_message_ids_are_random_and_kept_across_retries(tmp_path: Path, db: sa.Engine) -> None:
    """Every row's Message-ID has a random part of its own, and a retried row sends the same
    one again; the same issue in a second, fresh database gets other ids."""
    config = make_config(tmp_path)
    queue_issue(db, 3)

    def first_try_fails(recipient: Recipient, attempt: int) -> SendResult:
        if attempt == 1:
            return SendResult(recipient.delivery_id, recipient.email, Outcome.RETRY, "busy")
        return always_sent(recipient, attempt)

    ids: dict[str, list[str]] = {}

    def note(recipients: Sequence[Recipient]) -> None:
        for recipient in recipients:
            ids.setdefault(recipient.email, []).append(recipient.message_id)

    run(config, db, FakeProvider(answer=first_try_fails, on_send=note))
    assert all(len(sent) == 2 and sent[0] == sent[1] for sent in ids.values())
    assert len({sent[0] for sent in ids.values()}) == 3
    (tmp_path / "second").mkdir()
    other = open_test_store("sqlite", tmp_path / "second")
    queue_issue(other, 3)
    again = FakeProvider()
    run(config, other, again)
    assert not {message_from_bytes(raw)["Message-ID"] for _, raw in again.messages} & {
        sent[0] for sent in ids.values()
    }


def test_template_is_built_once_per_issue(tmp_path: Path, db: sa.Engine) -> None:
    """Many batches on many threads share one template."""
    config = make_config(tmp_path, concurrency=4, batch_size=5)
    queue_issue(db, 60)
    calls: list[int] = []
    build = snapshot_templates(config, db)

    def template_for(issue_id: int) -> MessageTemplate:
        calls.append(issue_id)
        return build(issue_id)

    run(config, db, FakeProvider(), template_for=template_for)
    assert len(calls) == 1


def test_in_flight_rows_stay_within_the_window(tmp_path: Path, db: sa.Engine) -> None:
    """Claimed-but-unrecorded rows never exceed concurrency x batch size."""
    config = make_config(tmp_path, concurrency=3, batch_size=4)
    queue_issue(db, 80)
    seen: list[int] = []

    def count_in_flight(recipients: Sequence[Recipient]) -> None:
        seen.append(states(db).get("sending", 0))

    provider = FakeProvider(max_batch=100, on_send=count_in_flight, delay=0.01)
    run(config, db, provider)
    assert in_flight_limit(config, provider) == 12
    assert 4 < max(seen) <= 12
    assert provider.most_active <= 3


def test_provider_max_batch_caps_the_claim(tmp_path: Path, db: sa.Engine) -> None:
    """A provider that takes 3 at a time is never handed more."""
    config = make_config(tmp_path, batch_size=50)
    queue_issue(db, 10)
    sizes: list[int] = []
    run(config, db, FakeProvider(max_batch=3, on_send=lambda r: sizes.append(len(r))))
    assert max(sizes) == 3 and sum(sizes) == 10


def test_rate_limit_spaces_messages(tmp_path: Path, db: sa.Engine) -> None:
    """40 messages at 50/s with a burst of 5 take at least (40 - 5) / 50 seconds."""
    config = make_config(tmp_path, rate=50.0, burst=5)
    queue_issue(db, 40)
    started = time.monotonic()
    sizes: list[int] = []
    run(config, db, FakeProvider(on_send=lambda r: sizes.append(len(r))))
    assert time.monotonic() - started >= 0.7
    assert max(sizes) <= 5


def test_temporary_failure_is_retried(tmp_path: Path, db: sa.Engine) -> None:
    """A 4xx on the first attempt is sent on the second."""
    config = make_config(tmp_path)
    queue_issue(db, 12)

    def first_fails(recipient: Recipient, attempt: int) -> SendResult:
        if attempt == 1:
            return SendResult(recipient.delivery_id, recipient.email, Outcome.RETRY, "451 4.3.0 later")
        return always_sent(recipient, attempt)

    provider = FakeProvider(answer=first_fails)
    report = run(config, db, provider)
    assert states(db) == {"sent": 12}
    assert set(provider.attempts.values()) == {2}
    assert report.retried == 12  # type: ignore[attr-defined]


def test_retry_after_is_honoured(tmp_path: Path, db: sa.Engine) -> None:
    """The second attempt waits at least the provider's Retry-After."""
    config = make_config(tmp_path)
    queue_issue(db, 2)

    def throttled(recipient: Recipient, attempt: int) -> SendResult:
        if attempt == 1:
            return SendResult(recipient.delivery_id, recipient.email, Outcome.RETRY, "429", retry_after=0.6)
        return always_sent(recipient, attempt)

    provider = FakeProvider(answer=throttled)
    run(config, db, provider)
    for first, second in provider.times.values():
        assert second - first >= 0.55


def test_retry_after_from_a_real_http_api_is_honoured(
    tmp_path: Path, db: sa.Engine, fake_api: FakeAPI
) -> None:
    """Postmark on loopback answers 429 Retry-After: 1; the batch goes again a second later."""
    config = make_config(
        tmp_path, provider="postmark", tables=f'[delivery.postmark]\nbase_url = "{fake_api.url}"'
    )
    queue_issue(db, 3)
    moments: list[float] = []
    postmark = vendors.postmark("pm-token")

    def throttle_first(request: RecordedRequest) -> Reply:
        moments.append(time.monotonic())
        return Reply.rate_limited(1) if len(moments) == 1 else postmark(request)

    fake_api.handler = throttle_first
    provider = make_provider(config)
    try:
        deliver(config, db, provider, stop=threading.Event())
    finally:
        provider.close()
    assert fake_api.problems == []
    assert states(db) == {"sent": 3}
    assert len(moments) == 2 and moments[1] - moments[0] >= 0.95


@pytest.mark.parametrize("max_attempts", [3, 1])
def test_gives_up_after_max_attempts(tmp_path: Path, db: sa.Engine, max_attempts: int) -> None:
    """A recipient refused every time is tried max_attempts times, then failed (1: nothing is tried twice)."""
    config = make_config(tmp_path, max_attempts=max_attempts)
    queue_issue(db, 4)

    def refuse(recipient: Recipient, attempt: int) -> SendResult:
        return SendResult(recipient.delivery_id, recipient.email, Outcome.RETRY, "421 busy")

    provider = FakeProvider(answer=refuse)
    report = run(config, db, provider)
    assert set(provider.attempts.values()) == {max_attempts}
    assert states(db) == {"failed": 4}
    assert report.failed == 4  # type: ignore[attr-defined]


def test_hard_bounce_suppresses(tmp_path: Path, db: sa.Engine) -> None:
    """A 5.1.1 refusal fails the row and marks the subscriber bounced."""
    config = make_config(tmp_path)
    queue_issue(db, 3)

    def bounce_first(recipient: Recipient, attempt: int) -> SendResult:
        if recipient.email == "r0@example.org":
            return SendResult(recipient.delivery_id, recipient.email, Outcome.FAILED, "550 5.1.1 unknown")
        return always_sent(recipient, attempt)

    report = run(config, db, FakeProvider(answer=bounce_first))
    assert report.suppressed == 1  # type: ignore[attr-defined]
    with db.connect() as conn:
        assert conn.execute(
            sa.select(subscribers.c.status).where(subscribers.c.email == "r0@example.org")
        ).scalar() == "bounced"


def test_whole_batch_temporary_failure_retries_it(tmp_path: Path, db: sa.Engine) -> None:
    """A provider that raises TemporaryFailure for a call gets the batch again later."""
    config = make_config(tmp_path, concurrency=1)
    queue_issue(db, 5)
    calls = {"n": 0}

    def flaky(recipients: Sequence[Recipient]) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise TemporaryFailure("connection dropped", retry_after=0.05)

    run(config, db, FakeProvider(on_send=flaky))
    assert states(db) == {"sent": 5}


def test_unexpected_error_stops_and_marks_the_chunk_uncertain(tmp_path: Path, db: sa.Engine) -> None:
    """A crash inside send is raised; that chunk's rows are uncertain, the rest queued."""
    config = make_config(tmp_path, concurrency=1, batch_size=5)
    queue_issue(db, 20)
    calls = {"n": 0}

    def crash(recipients: Sequence[Recipient]) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run(config, db, FakeProvider(on_send=crash))
    assert states(db) == {"sent": 5, "queued": 15}
    (line,) = ledger.status(db)
    assert line.uncertain == 5


def test_refused_account_stops_with_the_batch_untouched(tmp_path: Path, db: sa.Engine) -> None:
    """A ConfigError from send (bad credentials) is raised; rows go back queued, certain."""
    config = make_config(tmp_path, concurrency=1, batch_size=5)
    queue_issue(db, 10)

    def refuse_login(recipients: Sequence[Recipient]) -> None:
        raise ConfigError("the SMTP server refused the login")

    with pytest.raises(ConfigError, match="refused the login"):
        run(config, db, FakeProvider(on_send=refuse_login))
    assert states(db) == {"queued": 10}
    assert ledger.status(db)[0].uncertain == 0


def test_stop_finishes_in_flight_and_leaves_the_rest_queued(tmp_path: Path, db: sa.Engine) -> None:
    """Setting stop ends the run after the current chunk; nothing is left `sending`."""
    config = make_config(tmp_path, concurrency=2, batch_size=5)
    queue_issue(db, 100)
    stop = threading.Event()
    provider = FakeProvider(on_send=lambda r: stop.set(), delay=0.02)
    report = run(config, db, provider, stop=stop)
    assert report.stopped  # type: ignore[attr-defined]
    left = states(db)
    assert "sending" not in left
    assert left["sent"] <= 10 and left["queued"] >= 90
    assert ledger.status(db)[0].uncertain == 0


def test_unsubscribe_mid_send_stops_later_messages(tmp_path: Path, db: sa.Engine) -> None:
    """A reader who unsubscribes during the send gets nothing claimed after it."""
    config = make_config(tmp_path, concurrency=1, batch_size=5)
    queue_issue(db, 30)
    leaving = "r29@example.org"

    def unsubscribe_once(recipients: Sequence[Recipient]) -> None:
        with db.begin() as conn:
            conn.execute(sa.update(subscribers).where(subscribers.c.email == leaving).values(status="unsubscribed"))

    provider = FakeProvider(on_send=unsubscribe_once)
    run(config, db, provider)
    assert leaving not in {e for e, _ in provider.messages}
    assert states(db) == {"sent": 29, "skipped": 1}


def test_rows_due_beyond_the_linger_are_left_queued(tmp_path: Path, db: sa.Engine) -> None:
    """A Retry-After longer than the linger ends the run with next_due set."""
    config = make_config(tmp_path)
    queue_issue(db, 2)

    def much_later(recipient: Recipient, attempt: int) -> SendResult:
        return SendResult(recipient.delivery_id, recipient.email, Outcome.RETRY, "429", retry_after=3600)

    report = run(config, db, FakeProvider(answer=much_later), linger=5.0)
    assert states(db) == {"retry": 2}
    assert report.next_due is not None  # type: ignore[attr-defined]


def test_retry_policy_from_config(tmp_path: Path) -> None:
    """max_attempts, retry_base and retry_max come from [delivery]."""
    policy = RetryPolicy.from_config(make_config(tmp_path, max_attempts=7, retry_base=2.0, retry_max=9.0))
    assert (policy.max_attempts, policy.base, policy.cap) == (7, 2.0, 9.0)


class RaisingTemplate:
    """A real template that raises an unexpected error for one address (a bug, not bad data)."""

    def __init__(self, inner: MessageTemplate, address: str) -> None:
        self._inner = inner
        self._address = address

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def _check(self, recipient: Recipient) -> None:
        if recipient.email == self._address:
            raise RuntimeError(f"template bug at {recipient.email}")

    def message_bytes(self, recipient: Recipient, date: datetime) -> bytes:
        self._check(recipient)
        return self._inner.message_bytes(recipient, date)

    def parts(self, recipient: Recipient) -> tuple[str, str]:
        self._check(recipient)
        return self._inner.parts(recipient)


def raising_templates(config: Config, db: sa.Engine, address: str) -> Callable[[int], MessageTemplate]:
    build = snapshot_templates(config, db)
    return lambda issue_id: RaisingTemplate(build(issue_id), address)  # type: ignore[return-value]


def test_retry_after_beyond_any_date_is_capped(tmp_path: Path, db: sa.Engine) -> None:
    """A Retry-After of 10**12 seconds waits a day, instead of crashing the record."""
    config = make_config(tmp_path)
    queue_issue(db, 3)

    def absurd(recipient: Recipient, attempt: int) -> SendResult:
        return SendResult(recipient.delivery_id, recipient.email, Outcome.RETRY, "429", retry_after=1e12)

    report = run(config, db, FakeProvider(answer=absurd), linger=5.0, clock=lambda: NOW)
    assert states(db) == {"retry": 3}
    assert report.next_due == NOW + timedelta(days=1)  # type: ignore[attr-defined]


def test_backoff_bounds_an_absurd_retry_after() -> None:
    """Retry-After is a floor up to a day; past that the provider is not believed."""
    assert backoff(1, base=1.0, cap=10.0, retry_after=1e12) == RETRY_AFTER_LIMIT == 86_400.0
    assert backoff(10**6, base=1.0, cap=10.0) <= 10.0  # no float overflow after many attempts


def test_a_throttled_provider_is_left_alone_until_retry_after(tmp_path: Path, db: sa.Engine) -> None:
    """After a 429, no thread calls again before Retry-After: no storm, few attempts spent."""
    config = make_config(tmp_path, concurrency=2, batch_size=5, max_attempts=3)
    queue_issue(db, 40)
    window: list[float] = []
    calls: list[float] = []
    lock = threading.Lock()

    def throttle_for_half_a_second(recipients: Sequence[Recipient]) -> None:
        moment = time.monotonic()
        with lock:
            calls.append(moment)
            if not window:
                window.append(moment + 0.5)
            left = window[0] - moment
        if left > 0:
            raise TemporaryFailure("HTTP 429: slow down", retry_after=left)

    provider = FakeProvider(on_send=throttle_for_half_a_second, delay=0.01)
    run(config, db, provider)
    assert states(db) == {"sent": 40}
    refused = [moment for moment in calls if moment < window[0]]
    assert len(refused) <= 2  # only the calls already in flight on the two threads
    assert max(provider.attempts.values()) == 1
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.max(deliveries.c.attempts))).scalar() <= 2


def test_an_outage_does_not_burn_the_list(tmp_path: Path, db: sa.Engine) -> None:
    """A provider refusing every call holds the run back; most rows keep all their attempts."""
    config = make_config(tmp_path, concurrency=2, batch_size=10, max_attempts=2,
                         retry_base=0.2, retry_max=2.0)
    queue_issue(db, 200)
    calls = {"n": 0}

    def down(recipients: Sequence[Recipient]) -> None:
        calls["n"] += 1
        raise TemporaryFailure("cannot connect to the SMTP server")

    report = run(config, db, FakeProvider(on_send=down), linger=0.5)
    assert calls["n"] <= 10
    with db.connect() as conn:
        untouched = conn.execute(
            sa.select(sa.func.count()).where(deliveries.c.state == "queued", deliveries.c.attempts == 0)
        ).scalar()
    assert untouched >= 100
    assert states(db).get("failed", 0) <= 100
    assert report.next_due is not None  # type: ignore[attr-defined]


def test_slow_rate_claims_only_what_it_can_send_now(tmp_path: Path, db: sa.Engine) -> None:
    """Below one message a second, no row waits for the rate limiter while claimed."""
    config = make_config(tmp_path, concurrency=2, batch_size=10, rate=0.9)
    queue_issue(db, 3)
    held: list[tuple[int, int]] = []

    def count_claimed(recipients: Sequence[Recipient]) -> None:
        held.append((states(db).get("sending", 0), len(recipients)))

    provider = FakeProvider(on_send=count_claimed)
    template = snapshot_templates(config, db)(ledger.status(db)[0].issue_id)
    run(config, db, provider, template_for=lambda issue_id: template)
    assert states(db) == {"sent": 3}
    assert held == [(1, 1)] * 3
    moments = sorted(t for times in provider.times.values() for t in times)
    assert all(b - a >= 1 / 0.9 - 0.1 for a, b in itertools.pairwise(moments))


def test_stop_during_a_slow_rate_wait_ends_at_once(tmp_path: Path, db: sa.Engine) -> None:
    """At 0.2 messages a second, a stop after the first message ends the run within a second."""
    config = make_config(tmp_path, concurrency=2, rate=0.2)
    queue_issue(db, 5)
    stop = threading.Event()
    provider = FakeProvider(on_send=lambda r: stop.set())
    started = time.monotonic()
    report = run(config, db, provider, stop=stop)
    assert time.monotonic() - started < 1.5
    assert report.stopped  # type: ignore[attr-defined]
    assert states(db) == {"sent": 1, "queued": 4}


def test_a_template_bug_keeps_the_answers_already_given(
    tmp_path: Path, db: sa.Engine, smtp_server: SMTPServer
) -> None:
    """SMTP: messages sent before a template raises are recorded sent, not uncertain."""
    config = make_config(tmp_path, concurrency=1, batch_size=10, provider="smtp",
                         tables=f'[delivery.smtp]\nhost = "127.0.0.1"\nport = {smtp_server.port}\n'
                                'security = "none"')
    queue_issue(db, 10)
    provider = make_provider(config)
    try:
        with pytest.raises(RuntimeError, match="template bug"):
            deliver(config, db, provider, stop=threading.Event(),
                    template_for=raising_templates(config, db, "r3@example.org"))
    finally:
        provider.close()
    assert len(smtp_server.messages) == 3
    assert states(db) == {"sent": 3, "queued": 7}
    assert ledger.status(db)[0].uncertain == 0


def test_an_http_provider_bug_keeps_earlier_calls_answers(
    tmp_path: Path, db: sa.Engine, fake_api: FakeAPI
) -> None:
    """Postmark: calls answered before a template raises are recorded; nothing is uncertain."""
    config = make_config(tmp_path, concurrency=1, batch_size=10, provider="postmark",
                         tables=f'[delivery.postmark]\nbase_url = "{fake_api.url}"')
    queue_issue(db, 10)
    fake_api.handler = vendors.postmark("pm-token")
    provider = make_provider(config)
    provider.call_size = 2  # type: ignore[attr-defined]
    try:
        with pytest.raises(RuntimeError, match="template bug"):
            deliver(config, db, provider, stop=threading.Event(),
                    template_for=raising_templates(config, db, "r5@example.org"))
    finally:
        provider.close()
    assert len(fake_api.requests) == 2
    assert states(db) == {"sent": 4, "queued": 6}
    assert ledger.status(db)[0].uncertain == 0


def test_a_provider_error_mid_transmission_is_uncertain(
    tmp_path: Path, db: sa.Engine, smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SMTP: an unexpected error during DATA leaves that one row uncertain, earlier ones sent."""
    import smtplib

    config = make_config(tmp_path, concurrency=1, batch_size=10, provider="smtp",
                         tables=f'[delivery.smtp]\nhost = "127.0.0.1"\nport = {smtp_server.port}\n'
                                'security = "none"')
    queue_issue(db, 10)
    real_docmd = smtplib.SMTP.docmd
    count = {"n": 0}

    def docmd(self: smtplib.SMTP, cmd: str, args: str = "") -> tuple[int, bytes]:
        if cmd == "data":
            count["n"] += 1
            if count["n"] == 4:
                raise RuntimeError("smtplib bug")
        return real_docmd(self, cmd, args)

    monkeypatch.setattr(smtplib.SMTP, "docmd", docmd)
    provider = make_provider(config)
    try:
        with pytest.raises(RuntimeError, match="smtplib bug"):
            deliver(config, db, provider, stop=threading.Event())
    finally:
        provider.close()
    assert states(db) == {"sent": 3, "queued": 7}
    assert ledger.status(db)[0].uncertain == 1


def test_a_subscriber_purged_mid_send_gets_nothing_more(tmp_path: Path, db: sa.Engine) -> None:
    """Erasure while sending: the purged readers' rows stay, emptied of them; nobody else is disturbed."""
    config = make_config(tmp_path, concurrency=1, batch_size=5)
    queue_issue(db, 12)
    purged: list[str] = []

    def purge_two(recipients: Sequence[Recipient]) -> None:
        if purged:
            return
        in_flight = recipients[0].email  # this call still carries it
        calling = {r.email for r in recipients}
        later = next(f"r{n}@example.org" for n in range(11, -1, -1) if f"r{n}@example.org" not in calling)
        for address in (in_flight, later):
            subscriber_store.remove(db, address, now=NOW, purge=True)
            purged.append(address)

    provider = FakeProvider(on_send=purge_two)
    report = run(config, db, provider)
    sent_to = [e for e, _ in provider.messages]
    assert purged[1] not in sent_to
    assert len(sent_to) == len(set(sent_to)) == 11
    # The copy in flight is counted as sent, the later one skipped; neither names anyone now.
    assert states(db) == {"sent": 11, "skipped": 1}
    with db.connect() as conn:
        kept = set(conn.execute(sa.select(deliveries.c.email)).scalars())
    assert not kept & set(purged) and "" in kept
    assert report.sent == 11  # type: ignore[attr-defined]
    assert ledger.get_issue(db, ledger.status(db)[0].issue_id).status == "done"


def test_a_passing_database_error_while_recording_is_ridden_out(
    tmp_path: Path, db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The results of messages already sent are recorded once the database answers again."""
    config = make_config(tmp_path, concurrency=1, batch_size=5)
    queue_issue(db, 10)
    real_record = ledger.record
    failures = {"left": 2}

    def flaky_record(*args: object, **kwargs: object) -> dict[str, int]:
        if failures["left"]:
            failures["left"] -= 1
            raise sa.exc.OperationalError("UPDATE deliveries ...", {}, Exception("database is locked"))
        return real_record(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ledger, "record", flaky_record)
    provider = FakeProvider()
    report = run(config, db, provider)
    assert states(db) == {"sent": 10}
    assert len(provider.messages) == 10
    assert report.sent == 10  # type: ignore[attr-defined]


def test_a_retry_after_an_unanswered_attempt_is_flagged_uncertain(tmp_path: Path, db: sa.Engine) -> None:
    """A timeout after the message left: sent again on retry, and reported as possibly doubled."""
    config = make_config(tmp_path)
    queue_issue(db, 3)

    def first_unanswered(recipient: Recipient, attempt: int) -> SendResult:
        if recipient.email == "r1@example.org" and attempt == 1:
            return SendResult(recipient.delivery_id, recipient.email, Outcome.RETRY,
                              "no answer after DATA", maybe_sent=True)
        return always_sent(recipient, attempt)

    run(config, db, FakeProvider(answer=first_unanswered))
    assert states(db) == {"sent": 3}
    with db.connect() as conn:
        flagged = conn.execute(sa.select(deliveries.c.email).where(deliveries.c.uncertain)).scalars().all()
    assert flagged == ["r1@example.org"]


def test_a_timed_out_http_call_is_flagged_uncertain(
    tmp_path: Path, db: sa.Engine, fake_api: FakeAPI
) -> None:
    """Postmark takes the batch but answers too late: the retry's copies are reported uncertain."""
    config = make_config(tmp_path, provider="postmark", timeout=0.3,
                         tables=f'[delivery.postmark]\nbase_url = "{fake_api.url}"')
    queue_issue(db, 3)
    fake_api.handler = vendors.postmark("pm-token")
    fake_api.script(Reply.hang(1.0))
    provider = make_provider(config)
    try:
        deliver(config, db, provider, stop=threading.Event())
    finally:
        provider.close()
    assert states(db) == {"sent": 3}
    assert ledger.status(db)[0].uncertain == 3


def test_a_refused_http_call_is_not_uncertain(tmp_path: Path, db: sa.Engine, fake_api: FakeAPI) -> None:
    """A 503 answer means the call was not taken: the retry is certain."""
    config = make_config(tmp_path, provider="postmark",
                         tables=f'[delivery.postmark]\nbase_url = "{fake_api.url}"')
    queue_issue(db, 3)
    fake_api.handler = vendors.postmark("pm-token")
    fake_api.script(Reply.server_error(503))
    provider = make_provider(config)
    try:
        deliver(config, db, provider, stop=threading.Event())
    finally:
        provider.close()
    assert states(db) == {"sent": 3}
    assert ledger.status(db)[0].uncertain == 0


class EachProvider(FakeProvider):
    """A provider whose server answers message by message, as SMTP does: each answer goes
    to `answered` as it comes, and the next message waits until it is recorded."""

    answers_each = True

    def send(  # type: ignore[override]
        self, template: MessageTemplate, recipients: Sequence[Recipient], *, now: datetime,
        answered: Callable[[SendResult], Callable[[], None]],
    ) -> list[SendResult]:
        results: list[SendResult] = []
        recorded: Callable[[], None] | None = None
        try:
            for recipient in recipients:
                if recorded is not None:
                    recorded()
                results.extend(super().send(template, [recipient], now=now))
                recorded = answered(results[-1])
            if recorded is not None:
                recorded()
        except Exception as exc:
            raise SendInterrupted(results, 1) from exc
        return results


def test_answers_each_records_every_answer_before_the_next_message(tmp_path: Path, db: sa.Engine) -> None:
    """With `answers_each`, a thread's earlier messages are all `sent` in the ledger when it
    hands over the next one: a crash can repeat one message per thread, not a batch."""
    config = make_config(tmp_path, concurrency=3, batch_size=10)
    queue_issue(db, 90)
    earlier: dict[int, list[int]] = {}
    unrecorded: list[int] = []

    def check(recipients: Sequence[Recipient]) -> None:
        assert len(recipients) == 1
        mine = earlier.setdefault(threading.get_ident(), [])
        with db.connect() as conn:
            recorded = conn.execute(
                sa.select(sa.func.count()).select_from(deliveries)
                .where(deliveries.c.id.in_(mine), deliveries.c.state == "sent")
            ).scalar_one()
        unrecorded.append(len(mine) - recorded)
        mine.append(recipients[0].delivery_id or 0)

    provider = EachProvider(on_send=check)
    run(config, db, provider)
    assert states(db) == {"sent": 90}
    assert provider.calls == 90
    assert len(earlier) > 1 and max(unrecorded) == 0


def test_answers_each_crash_leaves_earlier_answers_recorded(tmp_path: Path, db: sa.Engine) -> None:
    """A crash on the third message of a batch keeps the first two as sent; the third
    becomes uncertain and the rest of the batch goes back to the queue untried."""
    config = make_config(tmp_path, concurrency=1, batch_size=5)
    queue_issue(db, 10)
    calls = {"n": 0}

    def crash(recipients: Sequence[Recipient]) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run(config, db, EachProvider(on_send=crash))
    assert states(db) == {"sent": 2, "queued": 8}
    (line,) = ledger.status(db)
    assert line.uncertain == 1


class WindowProvider(FakeProvider):
    """A provider that, as SMTP does, waits before a message only while `window` answers are
    unrecorded, and for all of them before it returns."""

    answers_each = True

    def __init__(self, *, window: int, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.window = window

    def send(  # type: ignore[override]
        self, template: MessageTemplate, recipients: Sequence[Recipient], *, now: datetime,
        answered: Callable[[SendResult], Callable[[], None]],
    ) -> list[SendResult]:
        results: list[SendResult] = []
        waits: list[Callable[[], None]] = []
        for recipient in recipients:
            while len(waits) >= self.window:
                waits.pop(0)()
            results.extend(super().send(template, [recipient], now=now))
            waits.append(answered(results[-1]))
        if waits:
            waits[-1]()
        return results


def test_a_recipient_is_made_as_the_provider_comes_to_it(
    tmp_path: Path, db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider answering message by message gets each recipient (its signed links) made
    when it comes to that message, not the whole batch's before the first goes out: its
    connection does not sit idle while fifty readers' links are signed."""
    config = make_config(tmp_path, concurrency=1, batch_size=5)
    queue_issue(db, 5)
    events: list[str] = []
    sign = tokens.reader_urls

    def signing(*args: object) -> tuple[str, str]:
        events.append("made")
        return sign(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(tokens, "reader_urls", signing)
    answer = FakeProvider().answer

    def sending(recipient: Recipient, attempt: int) -> SendResult:
        events.append("sent")
        return answer(recipient, attempt)

    run(config, db, WindowProvider(window=1, answer=sending))
    assert states(db) == {"sent": 5}
    assert events == ["made", "sent"] * 5


def test_a_thread_with_nothing_to_claim_does_not_claim_again_while_a_sibling_sends(
    tmp_path: Path, db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread that found nothing to claim waits for its siblings' batches to end and
    claims again only when rows are due: empty claims would take the ledger's write lock
    from the commits of the threads still sending."""
    config = make_config(tmp_path, concurrency=2, batch_size=5)
    queue_issue(db, 5)
    claims: list[int] = []
    claim = ledger.claim

    def counting(*args: object, **kwargs: object) -> list[ledger.ClaimedRow]:
        rows = claim(*args, **kwargs)  # type: ignore[arg-type]
        claims.append(len(rows))
        return rows

    monkeypatch.setattr(ledger, "claim", counting)
    run(config, db, FakeProvider(delay=0.6))
    assert states(db) == {"sent": 5}
    assert sorted(claims, reverse=True)[0] == 5
    assert claims.count(0) <= 3, claims


def counted_commits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every group of results the ledger records, as they are recorded."""
    sizes: list[int] = []
    record = ledger.record

    def counting(engine: sa.Engine, results: Sequence[SendResult], **kwargs: object) -> dict[str, int]:
        results = list(results)
        if results:
            sizes.append(len(results))
        return record(engine, results, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ledger, "record", counting)
    return sizes


def test_answers_nobody_waits_for_yet_are_committed_in_groups(
    tmp_path: Path, db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a window of unrecorded answers, the recorder gathers answers rather than
    committing each one: a commit costs about as much as sixteen answers in it."""
    monkeypatch.setattr(recording, "GATHER", 30.0)  # however slow the machine
    config = make_config(tmp_path, concurrency=1, batch_size=40)
    queue_issue(db, 80)
    sizes = counted_commits(monkeypatch)
    run(config, db, WindowProvider(window=8, delay=0.002))
    assert states(db) == {"sent": 80}
    assert sum(sizes) == 80
    assert len(sizes) <= 80 // 6, sizes


def test_an_answer_hurried_is_committed_before_anyone_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """An answer the sender says it will wait for is committed at once, while the sender
    goes on: without a group to fill, the gathering time, or the wait itself."""
    monkeypatch.setattr(recording, "GATHER", 30.0)
    committed = threading.Event()
    recorder = recording.Recorder(lambda group: committed.set(), lambda exc: None)
    try:
        recorder.submit(SendResult(1, "a@example.org", Outcome.SENT, "")).hurry()
        assert committed.wait(10)
    finally:
        recorder.close()


def test_an_answer_a_sender_waits_for_is_committed_at_once(
    tmp_path: Path, db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sender waiting on an answer gets it committed without waiting for a group to fill
    or for the gathering time to pass."""
    monkeypatch.setattr(recording, "GATHER", 30.0)
    config = make_config(tmp_path, concurrency=1, batch_size=5)
    queue_issue(db, 5)
    started = time.monotonic()
    run(config, db, WindowProvider(window=1))
    assert states(db) == {"sent": 5}
    assert time.monotonic() - started < 10
