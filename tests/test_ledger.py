"""The delivery ledger: snapshots, enqueue, claims, results, recovery and status."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from pg_server import fresh_database, postgres_server
from store_support import BACKENDS, open_test_store

from publisher.delivery.retry import RetryPolicy
from publisher.errors import NotFound
from publisher.models import Outcome, SendResult
from publisher.store import ledger, open_store
from publisher.store.ledger import claiming as ledger_claiming
from publisher.store.ledger import rows as ledger_rows
from publisher.store.schema import deliveries, events, issues, subscriber_tags, subscribers

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """SQLite in tmp_path; PostgreSQL too when $PUBLISHER_TEST_POSTGRES_URL is set."""
    engine = open_test_store(request.param, tmp_path)
    yield engine
    engine.dispose()


def add_subscribers(
    db: sa.Engine, count: int, *, status: str = "active", tag: str | None = None,
    timezone: str | None = None, start: int = 0,
) -> list[int]:
    rows = [
        {
            "email": f"reader{n}@example.org",
            "name": f"Reader {n}",
            "status": status,
            "timezone": timezone,
            "source": "test",
            "created_at": NOW,
            "updated_at": NOW,
        }
        for n in range(start, start + count)
    ]
    with db.begin() as conn:
        conn.execute(sa.insert(subscribers), rows)
        ids = [
            r.id for r in conn.execute(
                sa.select(subscribers.c.id).where(
                    subscribers.c.email.in_([r["email"] for r in rows])
                ).order_by(subscribers.c.id)
            )
        ]
        if tag:
            conn.execute(sa.insert(subscriber_tags), [{"subscriber_id": i, "tag": tag} for i in ids])
    return ids


def new_issue(db: sa.Engine, key: str = "tag:example.org,2026-03-01:/first", **extra: object) -> int:
    values: dict[str, object] = {
        "key": key, "kind": "article", "slug": "first", "subject": "First", "html": "<p>one</p>",
        "text": "one", "tag": None, "status": "draft", "now": NOW,
    }
    values.update(extra)
    return ledger.create_issue(db, **values)  # type: ignore[arg-type]


def states(db: sa.Engine) -> dict[str, int]:
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(deliveries.c.state, sa.func.count()).group_by(deliveries.c.state)
        ).all()
    return {state: count for state, count in rows}


POLICY = RetryPolicy(max_attempts=3, base=10.0, cap=100.0)


def sent(row: ledger.ClaimedRow) -> SendResult:
    return SendResult(delivery_id=row.id, recipient=row.email, outcome=Outcome.SENT, provider_id=f"p{row.id}")


def test_create_issue_is_idempotent_by_key(db: sa.Engine) -> None:
    """The same key returns the first id, and its snapshot is never rewritten."""
    first = new_issue(db)
    again = new_issue(db, html="<p>edited</p>", subject="Edited")
    assert again == first
    snapshot = ledger.get_issue(db, first)
    assert (snapshot.subject, snapshot.html) == ("First", "<p>one</p>")


def test_get_issue_unknown_raises_not_found(db: sa.Engine) -> None:
    """An unknown issue id is a clear NotFound."""
    with pytest.raises(NotFound, match="issue 99"):
        ledger.get_issue(db, 99)


def test_enqueue_writes_one_row_per_active_subscriber(db: sa.Engine) -> None:
    """Only active subscribers get a row, with their address and name copied."""
    add_subscribers(db, 5)
    add_subscribers(db, 2, status="unsubscribed", start=100)
    add_subscribers(db, 1, status="pending", start=200)
    issue = new_issue(db)
    assert ledger.enqueue(db, issue, now=NOW) == 5
    assert states(db) == {"queued": 5}
    assert ledger.get_issue(db, issue).status == "sending"


def test_enqueue_again_adds_nothing(db: sa.Engine) -> None:
    """Sending the same issue again sends nothing new."""
    add_subscribers(db, 5)
    issue = new_issue(db)
    ledger.enqueue(db, issue, now=NOW)
    assert ledger.enqueue(db, issue, now=NOW) == 0
    assert states(db) == {"queued": 5}


def test_enqueue_again_adds_only_new_subscribers(db: sa.Engine) -> None:
    """A reader who joined since the first enqueue is the only one added."""
    add_subscribers(db, 3)
    issue = new_issue(db)
    ledger.enqueue(db, issue, now=NOW)
    add_subscribers(db, 1, start=50)
    assert ledger.enqueue(db, issue, now=NOW) == 1


def test_enqueue_with_tag_selects_the_segment(db: sa.Engine) -> None:
    """A tagged issue goes only to subscribers carrying that tag."""
    add_subscribers(db, 3, tag="clinicians")
    add_subscribers(db, 4, start=10)
    issue = new_issue(db, tag="clinicians")
    assert ledger.enqueue(db, issue, now=NOW) == 3


def test_enqueue_skipping_those_who_had_them_leaves_out_only_readers_with_every_copy(db: sa.Engine) -> None:
    """A digest of two articles skips the reader with a copy of both (one sent, one still
    queued), and reaches the reader who had one, the one whose copy failed, and the one who
    had neither."""
    both, one, failed, neither = add_subscribers(db, 4)
    first, second = new_issue(db, key="a:1"), new_issue(db, key="a:2")
    ledger.enqueue(db, first, now=NOW, where=[subscribers.c.id.in_([both, one, failed])])
    ledger.enqueue(db, second, now=NOW, where=[subscribers.c.id.in_([both, failed])])
    with db.begin() as conn:
        conn.execute(sa.update(deliveries).where(deliveries.c.issue_id == first).values(state="sent"))
        conn.execute(
            sa.update(deliveries)
            .where(deliveries.c.issue_id == second, deliveries.c.subscriber_id == failed)
            .values(state="failed")
        )
    digest = new_issue(db, key="d:1", kind="digest", slug="digest")
    assert ledger.enqueue(db, digest, now=NOW, skip_had=[first, second]) == 3
    with db.connect() as conn:
        reached = set(conn.execute(
            sa.select(deliveries.c.subscriber_id).where(deliveries.c.issue_id == digest)
        ).scalars())
    assert reached == {one, failed, neither}


def test_enqueue_tag_override_reaches_everyone(db: sa.Engine) -> None:
    """`tag=None` widens a tagged issue to the whole list, skipping rows already there."""
    add_subscribers(db, 3, tag="clinicians")
    add_subscribers(db, 4, start=10)
    issue = new_issue(db, tag="clinicians")
    ledger.enqueue(db, issue, now=NOW)
    assert ledger.enqueue(db, issue, now=NOW, tag=None) == 4


def test_local_not_before_is_the_readers_wall_clock_or_now() -> None:
    """A reader's row waits for the date and minute on their clock; a moment already
    passed means now."""
    nine_thirty = datetime(2026, 3, 3, 9, 30)
    tokyo = ZoneInfo("Asia/Tokyo")
    assert ledger.local_not_before(NOW, nine_thirty, tokyo) == datetime(2026, 3, 3, 0, 30, tzinfo=UTC)
    early = datetime(2026, 3, 2, 9, 30)  # 00:30 UTC in Tokyo: before NOW
    assert ledger.local_not_before(NOW, early, tokyo) == NOW


def test_local_time_keeps_date_and_minutes_at_both_ends_of_the_world(db: sa.Engine) -> None:
    """"2026-12-02 09:30" local: 09:30 on 2026-12-02 in UTC+14 and in UTC-11 alike (it
    used to be 09:00, and the next day in Kiritimati, the day before in Pago Pago)."""
    kiritimati = add_subscribers(db, 1, timezone="Pacific/Kiritimati")
    pago_pago = add_subscribers(db, 1, timezone="Pacific/Pago_Pago", start=10)
    zoneless = add_subscribers(db, 1, start=20)
    issue = new_issue(db)
    local_at = datetime(2026, 12, 2, 9, 30)
    start = datetime(2026, 12, 1, 19, 30, tzinfo=UTC)  # the moment arrives in UTC+14
    assert ledger.enqueue(db, issue, now=start, local_at=local_at, tz_of_author="Europe/Berlin") == 3
    with db.connect() as conn:
        due = dict(conn.execute(sa.select(deliveries.c.subscriber_id, deliveries.c.not_before)).all())
    for ids, zone in ((kiritimati, "Pacific/Kiritimati"), (pago_pago, "Pacific/Pago_Pago"),
                      (zoneless, "Europe/Berlin")):
        on_their_clock = due[ids[0]].astimezone(ZoneInfo(zone))
        assert on_their_clock.replace(tzinfo=None) == local_at, zone
    assert due[kiritimati[0]] == start


def test_enqueue_local_time_uses_each_subscribers_zone(db: sa.Engine) -> None:
    """Rows wait for 09:00 on the day in the reader's zone; readers without one (or with a
    zone that does not exist) get the author's."""
    tokyo = add_subscribers(db, 2, timezone="Asia/Tokyo")
    new_york = add_subscribers(db, 2, timezone="America/New_York", start=10)
    zoneless = add_subscribers(db, 2, start=20)
    broken = add_subscribers(db, 1, timezone="Not/AZone", start=30)
    issue = new_issue(db)
    nine = datetime(2026, 3, 3, 9, 0)
    assert ledger.enqueue(db, issue, now=NOW, local_at=nine, tz_of_author="Europe/Berlin") == 7
    with db.connect() as conn:
        due = dict(conn.execute(sa.select(deliveries.c.subscriber_id, deliveries.c.not_before)).all())
    assert {due[i] for i in tokyo} == {datetime(2026, 3, 3, 0, 0, tzinfo=UTC)}
    assert {due[i] for i in new_york} == {datetime(2026, 3, 3, 14, 0, tzinfo=UTC)}
    assert {due[i] for i in zoneless + broken} == {datetime(2026, 3, 3, 8, 0, tzinfo=UTC)}


def test_a_send_after_a_local_time_one_is_due_now(db: sa.Engine) -> None:
    """Enqueuing again without a local time (a manual send to readers who joined since)
    queues them now: nothing of the earlier local-time send carries over."""
    add_subscribers(db, 1, timezone="Asia/Tokyo")
    issue = new_issue(db)
    ledger.enqueue(db, issue, now=NOW, local_at=datetime(2026, 3, 4, 9, 0))
    joined = add_subscribers(db, 1, timezone="Asia/Tokyo", start=10)
    assert ledger.enqueue(db, issue, now=NOW) == 1
    with db.connect() as conn:
        due = conn.execute(
            sa.select(deliveries.c.not_before).where(deliveries.c.subscriber_id == joined[0])
        ).scalar_one()
    assert due == NOW


def test_claim_takes_only_due_rows(db: sa.Engine) -> None:
    """Rows whose local time has not come stay queued."""
    add_subscribers(db, 2, timezone="Asia/Tokyo")
    add_subscribers(db, 3, timezone="America/New_York", start=10)
    issue = new_issue(db)
    ledger.enqueue(db, issue, now=NOW, local_at=datetime(2026, 3, 3, 9, 0))
    at_nine_new_york = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
    assert ledger.claim(db, worker="w", limit=10, now=NOW) == []
    assert len(ledger.claim(db, worker="w", limit=10, now=datetime(2026, 3, 3, 0, 0, tzinfo=UTC))) == 2
    rows = ledger.claim(db, worker="w", limit=10, now=at_nine_new_york)
    assert len(rows) == 3
    assert ledger.next_due(db) is None


def test_claim_marks_rows_sending_and_bounds_the_batch(db: sa.Engine) -> None:
    """A claim returns at most `limit` rows, each now owned by the worker."""
    add_subscribers(db, 10)
    issue = new_issue(db)
    ledger.enqueue(db, issue, now=NOW)
    rows = ledger.claim(db, worker="host:1:abc", limit=4, now=NOW)
    assert len(rows) == 4
    assert rows[0].email.startswith("reader") and rows[0].issue_id == issue
    with db.connect() as conn:
        owners = conn.execute(
            sa.select(deliveries.c.claimed_by).where(deliveries.c.state == "sending")
        ).scalars().all()
    assert owners == ["host:1:abc"] * 4


def test_claim_filters_by_issue(db: sa.Engine) -> None:
    """With `issue_id`, other issues' rows are left alone."""
    add_subscribers(db, 3)
    one = new_issue(db)
    two = new_issue(db, key="digest:2026-03-02")
    ledger.enqueue(db, one, now=NOW)
    ledger.enqueue(db, two, now=NOW)
    rows = ledger.claim(db, worker="w", limit=10, now=NOW, issue_id=two)
    assert {r.issue_id for r in rows} == {two}


def test_claims_never_overlap_across_threads(db: sa.Engine) -> None:
    """Concurrent claimers each get distinct rows, and together all of them."""
    add_subscribers(db, 300)
    ledger.enqueue(db, new_issue(db), now=NOW)
    taken: list[int] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while rows := ledger.claim(db, worker=name, limit=7, now=NOW):
            with lock:
                taken.extend(r.id for r in rows)

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == 300 == len(set(taken))


def test_claim_locks_rows_with_skip_locked_on_postgresql() -> None:
    """On PostgreSQL workers skip each other's rows; SQLite gets plain portable SQL."""
    from sqlalchemy.dialects import postgresql, sqlite

    statement = ledger_claiming._claim_statement(of_issue=False)
    assert "FOR UPDATE SKIP LOCKED" in str(statement.compile(dialect=postgresql.dialect()))
    assert "FOR UPDATE" not in str(statement.compile(dialect=sqlite.dialect()))


def test_unsubscribe_before_claim_skips_the_row(db: sa.Engine) -> None:
    """Unsubscribe wins: a row whose reader left is skipped, never handed out."""
    ids = add_subscribers(db, 3)
    ledger.enqueue(db, new_issue(db), now=NOW)
    with db.begin() as conn:
        conn.execute(sa.update(subscribers).where(subscribers.c.id == ids[1]).values(status="unsubscribed"))
    rows = ledger.claim(db, worker="w", limit=10, now=NOW)
    assert ids[1] not in {r.subscriber_id for r in rows}
    assert states(db) == {"sending": 2, "skipped": 1}


def test_record_sent(db: sa.Engine) -> None:
    """A sent result stores the provider id and the time."""
    add_subscribers(db, 2)
    ledger.enqueue(db, new_issue(db), now=NOW)
    rows = ledger.claim(db, worker="w", limit=10, now=NOW)
    counts = ledger.record(db, [sent(r) for r in rows], now=NOW, policy=POLICY, worker="w")
    assert counts["sent"] == 2
    with db.connect() as conn:
        row = conn.execute(sa.select(deliveries).where(deliveries.c.id == rows[0].id)).one()
    assert (row.state, row.provider_id, row.sent_at, row.attempts) == ("sent", f"p{rows[0].id}", NOW, 1)


def test_record_retry_backs_off_and_honours_retry_after(db: sa.Engine) -> None:
    """A temporary failure waits at least the provider's Retry-After, then is claimable."""
    add_subscribers(db, 1)
    ledger.enqueue(db, new_issue(db), now=NOW)
    (row,) = ledger.claim(db, worker="w", limit=10, now=NOW)
    result = SendResult(row.id, row.email, Outcome.RETRY, detail="451 try later", retry_after=500.0)
    assert ledger.record(db, [result], now=NOW, policy=POLICY)["retry"] == 1
    assert ledger.next_due(db) == NOW + timedelta(seconds=500)
    assert ledger.claim(db, worker="w", limit=10, now=NOW + timedelta(seconds=499)) == []
    assert len(ledger.claim(db, worker="w", limit=10, now=NOW + timedelta(seconds=500))) == 1


def test_record_gives_up_after_max_attempts(db: sa.Engine) -> None:
    """The attempt that reaches max_attempts turns a temporary failure into `failed`."""
    add_subscribers(db, 1)
    ledger.enqueue(db, new_issue(db), now=NOW)
    later = NOW
    for attempt in range(1, POLICY.max_attempts + 1):
        later += timedelta(hours=1)
        (row,) = ledger.claim(db, worker="w", limit=1, now=later)
        ledger.record(db, [SendResult(row.id, row.email, Outcome.RETRY, "421 busy")], now=later, policy=POLICY)
        assert states(db) == ({"retry": 1} if attempt < POLICY.max_attempts else {"failed": 1})
    with db.connect() as conn:
        detail = conn.execute(sa.select(deliveries.c.detail)).scalar_one()
    assert detail.startswith("gave up after 3 attempts")


def test_hard_bounce_suppresses_the_subscriber(db: sa.Engine) -> None:
    """A 5.1.1 refusal fails the row, marks the reader bounced and writes an event."""
    ids = add_subscribers(db, 2)
    ledger.enqueue(db, new_issue(db), now=NOW)
    rows = ledger.claim(db, worker="w", limit=10, now=NOW)
    bounce = SendResult(rows[0].id, rows[0].email, Outcome.FAILED, "550 5.1.1 user unknown")
    counts = ledger.record(db, [bounce, sent(rows[1])], now=NOW, policy=POLICY, provider="smtp")
    assert counts == {"sent": 1, "retry": 0, "failed": 1, "suppressed": 1}
    with db.connect() as conn:
        status = conn.execute(sa.select(subscribers.c.status).where(subscribers.c.id == ids[0])).scalar()
        kinds = conn.execute(sa.select(events.c.kind, events.c.provider)).all()
    assert status == "bounced"
    assert kinds == [("bounce", "smtp")]


def test_message_level_refusal_does_not_suppress(db: sa.Engine) -> None:
    """A 5.7.1 content refusal fails the row but keeps the reader subscribed."""
    ids = add_subscribers(db, 1)
    ledger.enqueue(db, new_issue(db), now=NOW)
    (row,) = ledger.claim(db, worker="w", limit=10, now=NOW)
    refusal = SendResult(row.id, row.email, Outcome.FAILED, "554 5.7.1 message refused")
    assert ledger.record(db, [refusal], now=NOW, policy=POLICY)["suppressed"] == 0
    with db.connect() as conn:
        assert conn.execute(sa.select(subscribers.c.status).where(subscribers.c.id == ids[0])).scalar() == "active"


def test_record_ignores_rows_another_worker_now_holds(db: sa.Engine) -> None:
    """A late failure report from a worker that lost its claim changes nothing."""
    add_subscribers(db, 1)
    ledger.enqueue(db, new_issue(db), now=NOW)
    (row,) = ledger.claim(db, worker="old", limit=1, now=NOW)
    ledger.recover(db, now=NOW + timedelta(hours=1), lease=timedelta(minutes=5))
    ledger.claim(db, worker="new", limit=1, now=NOW + timedelta(hours=1))
    late = SendResult(row.id, row.email, Outcome.RETRY, "421")
    assert ledger.record(db, [late], now=NOW, policy=POLICY, worker="old")["retry"] == 0
    assert states(db) == {"sending": 1}


def test_release_returns_untried_rows(db: sa.Engine) -> None:
    """Released rows are queued again and not marked uncertain."""
    add_subscribers(db, 3)
    ledger.enqueue(db, new_issue(db), now=NOW)
    rows = ledger.claim(db, worker="w", limit=10, now=NOW)
    assert ledger.release(db, [r.id for r in rows], worker="w") == 3
    assert states(db) == {"queued": 3}
    assert ledger.status(db)[0].uncertain == 0


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_worker_is_dead_on_this_host() -> None:
    """A local worker whose process is gone is dead; a live one and a remote one are not."""
    host = socket.gethostname()
    assert ledger.worker_is_dead(f"{host}:{dead_pid()}:abc")
    assert not ledger.worker_is_dead(f"{host}:{os.getpid()}:abc")
    assert not ledger.worker_is_dead(f"elsewhere.example:{dead_pid()}:abc")
    assert not ledger.worker_is_dead("garbage")


def test_recover_requeues_dead_workers_rows_as_uncertain(db: sa.Engine) -> None:
    """Rows of a dead local worker come back queued, flagged uncertain, and are reported."""
    add_subscribers(db, 5)
    issue = new_issue(db)
    ledger.enqueue(db, issue, now=NOW)
    dead = f"{socket.gethostname()}:{dead_pid()}:abc"
    alive = f"{socket.gethostname()}:{os.getpid()}:def"
    lost = ledger.claim(db, worker=dead, limit=2, now=NOW)
    ledger.claim(db, worker=alive, limit=2, now=NOW)
    recovered = ledger.recover(db, now=NOW, lease=timedelta(minutes=15))
    assert recovered.count == 2
    assert {r.id for r in recovered.rows} == {r.id for r in lost}
    assert {r.claimed_by for r in recovered.rows} == {dead}
    assert states(db) == {"queued": 3, "sending": 2}
    (line,) = ledger.status(db, issue)
    assert (line.queued, line.sending, line.uncertain) == (3, 2, 2)


def test_recover_uses_the_lease_for_other_hosts(db: sa.Engine) -> None:
    """A remote worker's rows come back only once its claim is older than the lease."""
    add_subscribers(db, 2)
    ledger.enqueue(db, new_issue(db), now=NOW)
    ledger.claim(db, worker="elsewhere.example:42:abc", limit=2, now=NOW)
    assert ledger.recover(db, now=NOW + timedelta(minutes=10), lease=timedelta(minutes=15)).count == 0
    assert ledger.recover(db, now=NOW + timedelta(minutes=16), lease=timedelta(minutes=15)).count == 2


def test_status_counts_every_state(db: sa.Engine) -> None:
    """status() gives per-issue counts of each state, newest issue first."""
    ids = add_subscribers(db, 6)
    old = new_issue(db, key="old")
    issue = new_issue(db)
    ledger.enqueue(db, issue, now=NOW)
    with db.begin() as conn:
        conn.execute(sa.update(subscribers).where(subscribers.c.id == ids[0]).values(status="complained"))
    rows = ledger.claim(db, worker="w", limit=4, now=NOW)
    results = [
        sent(rows[0]),
        SendResult(rows[1].id, rows[1].email, Outcome.RETRY, "421"),
        SendResult(rows[2].id, rows[2].email, Outcome.FAILED, "554 5.7.1 no"),
    ]
    ledger.record(db, results, now=NOW, policy=POLICY)
    first, second = ledger.status(db)
    assert (first.issue_id, second.issue_id) == (issue, old)
    assert (first.queued, first.sending, first.sent, first.retrying, first.failed, first.skipped) == (
        2, 0, 1, 1, 1, 1,
    )
    assert ledger.status(db, "first")[0].issue_id == issue
    with pytest.raises(NotFound):
        ledger.status(db, "nope")


def test_finish_issues_marks_done_when_nothing_is_left(db: sa.Engine) -> None:
    """An issue is done once no row is queued, sending or waiting to retry."""
    add_subscribers(db, 2)
    issue = new_issue(db)
    ledger.enqueue(db, issue, now=NOW)
    assert ledger.finish_issues(db, now=NOW) == []
    rows = ledger.claim(db, worker="w", limit=10, now=NOW)
    ledger.record(db, [sent(r) for r in rows], now=NOW, policy=POLICY)
    assert ledger.finish_issues(db, now=NOW) == [issue]
    assert ledger.get_issue(db, issue).finished_at == NOW


def test_tag_segment_ignores_case(tmp_path: Path) -> None:
    """`--tag Clinicians` reaches subscribers tagged "clinicians" (tags are stored lower-case)."""
    from publisher.store import open_store
    from publisher.store import subscribers as subs

    db = open_store(f"sqlite:///{tmp_path / 'tags.db'}")
    now = datetime(2026, 11, 20, tzinfo=UTC)
    subs.add(db, "a@example.org", tags=("clinicians",), now=now)
    subs.add(db, "b@example.org", tags=("families",), now=now)
    issue_id = ledger.create_issue(
        db, key="k", kind="article", slug="s", subject="S", html="<p>x</p>", text="x", tag="Clinicians",
        status="sending", now=now,
    )
    assert ledger.enqueue(db, issue_id, now=now) == 1


def test_a_worker_in_another_pid_namespace_is_never_judged_dead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Same hostname, other PID namespace (a container with host networking): left to the lease."""
    monkeypatch.setattr(ledger_rows, "_pid_namespace", lambda: "f0f0")
    host, _, _ = ledger.new_worker_id().rsplit(":", 2)
    assert host == f"{socket.gethostname()}~f0f0"
    worker = f"{host}:{dead_pid()}:abc"
    assert ledger.worker_is_dead(worker)
    monkeypatch.setattr(ledger_rows, "_pid_namespace", lambda: "0a0a")
    assert not ledger.worker_is_dead(worker)
    assert ledger.worker_is_dead(f"{socket.gethostname()}:{dead_pid()}:abc")  # an older id


def test_record_flags_a_result_that_may_have_been_taken(db: sa.Engine) -> None:
    """maybe_sent marks the row uncertain; a later certain result never clears the flag."""
    add_subscribers(db, 2)
    issue = new_issue(db)
    ledger.enqueue(db, issue, now=NOW)
    first, second = ledger.claim(db, worker="w", limit=10, now=NOW)
    ledger.record(db, [
        SendResult(first.id, first.email, Outcome.RETRY, "no answer after DATA", maybe_sent=True),
        SendResult(second.id, second.email, Outcome.RETRY, "451 later"),
    ], now=NOW, policy=POLICY, worker="w")
    assert ledger.status(db, issue)[0].uncertain == 1
    later = NOW + timedelta(hours=1)
    again = ledger.claim(db, worker="w", limit=10, now=later)
    assert {r.id: r.uncertain for r in again} == {first.id: True, second.id: False}
    ledger.record(db, [SendResult(r.id, r.email, Outcome.RETRY, "451 later") for r in again],
                  now=later, policy=POLICY, worker="w")
    assert ledger.status(db, issue)[0].uncertain == 1


def test_non_ascii_mailboxes_are_found_and_failed_at_once(db: sa.Engine) -> None:
    """Waiting rows with a non-ASCII mailbox name are counted and failed in one statement,
    with the reason given; rows of ASCII addresses are left waiting."""
    add_subscribers(db, 2)
    with db.begin() as conn:
        conn.execute(
            sa.insert(subscribers),
            [{"email": e, "name": "", "status": "active", "source": "t", "created_at": NOW,
              "updated_at": NOW} for e in ("josé@example.org", "дарья@example.org")],
        )
    issue = new_issue(db)
    ledger.enqueue(db, issue, now=NOW)
    assert ledger.count_non_ascii(db, issue_id=issue) == 2
    assert ledger.count_non_ascii(db, issue_id=issue + 1) == 0
    failed = ledger.fail_non_ascii(db, issue_id=None, detail="needs SMTPUTF8")
    assert failed == sorted(["josé@example.org", "дарья@example.org"])
    assert ledger.count_non_ascii(db, issue_id=None) == 0
    assert [(r.email, r.state, r.reason) for r in ledger.failures(db, issue)] == [
        ("josé@example.org", "failed", "needs SMTPUTF8"),
        ("дарья@example.org", "failed", "needs SMTPUTF8"),
    ]
    assert len(ledger.claim(db, worker="w", limit=10, now=NOW)) == 2


def test_failure_reasons_count_one_cause_once(db: sa.Engine) -> None:
    """Answers that differ only by the address they name count as one reason."""
    ids = add_subscribers(db, 4)
    issue = new_issue(db)
    ledger.enqueue(db, issue, now=NOW)
    with db.begin() as conn:
        for n, subscriber_id in enumerate(ids):
            detail = f"550 <reader{n}@example.org> unknown" if n < 3 else "552 mailbox full"
            conn.execute(
                sa.update(deliveries)
                .where(deliveries.c.subscriber_id == subscriber_id)
                .values(state="failed", detail=detail)
            )
    assert ledger.failure_reasons(db, issue) == [("550 <…> unknown", 3), ("552 mailbox full", 1)]


def test_a_snapshot_follows_the_article_until_a_copy_leaves(db: sa.Engine) -> None:
    """refresh_issue replaces the snapshot while no copy has left; a claimed row freezes it."""
    add_subscribers(db, 2)
    issue = new_issue(db)
    ledger.enqueue(db, issue, now=NOW)
    assert not ledger.is_frozen(db, issue)
    assert ledger.refresh_issue(db, issue, subject="Second", html="<p>two</p>", text="two")
    ledger.claim(db, worker="w", limit=1, now=NOW)
    assert ledger.is_frozen(db, issue)
    assert not ledger.refresh_issue(db, issue, subject="Third", html="<p>3</p>", text="3")
    assert ledger.get_issue(db, issue).subject == "Second"


def test_a_sender_waits_for_a_refresh_in_progress(tmp_path: Path) -> None:
    """PostgreSQL: a sender reading the issue to send it waits while a refresh holds the
    issue row, then reads the new version (SQLite has one writer and needs no wait)."""
    with postgres_server() as server:
        db = open_store(fresh_database(server, "refresh_lock"))
        try:
            issue = new_issue(db)
            seen: list[str] = []

            def read() -> None:
                seen.append(ledger.get_issue(db, issue, to_send=True).subject)

            reader = threading.Thread(target=read)
            with db.begin() as conn:
                conn.execute(sa.select(issues.c.id).where(issues.c.id == issue).with_for_update())
                conn.execute(sa.update(issues).where(issues.c.id == issue).values(subject="Second"))
                reader.start()
                reader.join(0.5)
                assert seen == []
            reader.join(10)
            assert seen == ["Second"]
        finally:
            db.dispose()
