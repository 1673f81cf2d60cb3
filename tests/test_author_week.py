"""The author's week through the service layer: nothing sent by surprise, drafts scheduled
for a wall-clock minute, held when a check fails, cancelled and rescheduled.

The daemon's jobs run in-process with a clock the test moves; mail lands in a Maildir.
"""

from __future__ import annotations

import email
import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path

import pytest

from publisher.config import load_config
from publisher.errors import AmbiguousTime, Conflict, InvalidRequest
from publisher.schedule import jobs
from publisher.services import articles as article_service
from publisher.services import scheduling
from publisher.store import ledger, open_store, schedules, subscribers

START = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # a Friday, 10:00 in New York
_keys = itertools.count()


def text(title: str, day: str = "2026-11-20", *, draft: bool = False, body: str = "Some words.") -> str:
    flag = "draft: true\n" if draft else ""
    return f"---\ntitle: {title}\ndate: {day} 08:00\n{flag}---\n\n{body}\n"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Pub:
    """A publication with one old article, three readers and a registered daemon runtime."""

    def __init__(self, root: Path, *, policy_line: str = "", extra: str = "") -> None:
        self.root = root
        (root / "content").mkdir()
        (root / "content" / "2026-11-02-old-news.md").write_text(text("Old news", "2026-11-02"))
        (root / "config.toml").write_text(
            f"""
[publication]
title = "Week Test"
url = "https://example.org/"
timezone = "America/New_York"
postal_address = "1 Test Street"

[newsletter]
from = "Tester <news@example.org>"

[schedule]
{policy_line}
{extra}
"""
        )
        self.config = load_config(root / "config.toml", env={"PUBLISHER_SECRET": "k" * 32})
        self.db = open_store(self.config.store_url)
        self.clock = Clock(START)
        self.key = f"week-{next(_keys)}"
        jobs.register(self.key, jobs.Runtime(config=self.config, db=self.db, clock=self.clock))
        for index in range(3):
            subscribers.add(self.db, f"r{index}@example.org", now=START)
        jobs.publish_new(self.key)  # files the back catalogue

    def write(self, name: str, body: str) -> None:
        (self.root / "content" / name).write_text(body)

    def messages(self) -> list[email.message.EmailMessage]:
        folder = self.root / "outbox" / "new"
        if not folder.is_dir():
            return []
        return [
            email.message_from_bytes(p.read_bytes(), policy=policy.default)  # type: ignore[misc]
            for p in sorted(folder.iterdir())
        ]


@pytest.fixture
def pub(tmp_path: Path) -> Iterator[Pub]:
    yield Pub(tmp_path)


def test_a_new_article_waits_for_the_author_by_default(pub: Pub) -> None:
    """With no policy set, a new file goes on the site and its newsletter waits: nothing is sent."""
    pub.write("2026-11-20-fresh.md", text("Fresh"))
    assert jobs.publish_new(pub.key) == ["fresh"]
    assert "Fresh" in (pub.root / "public" / "feeds" / "atom.xml").read_text()
    [state] = [s for s in ledger.status(pub.db) if s.slug == "fresh"]
    assert state.status == "draft"
    assert schedules.pending(pub.db) == []
    assert pub.messages() == []


def test_saving_never_sends_even_under_policy_now(tmp_path: Path) -> None:
    """An article the author saves (desk, API) is not mailed by the "now" policy: it waits."""
    pub = Pub(tmp_path, policy_line='policy = "now"')
    article_service.write_article(pub.config, text("Saved"), now=pub.clock.now, db=pub.db)
    jobs.publish_new(pub.key)
    assert pub.messages() == []
    assert schedules.pending(pub.db) == []
    views = article_service.list_articles(pub.config, pub.db, now=pub.clock.now)
    [view] = [v for v in views if v.article.slug == "saved"]
    assert view.state == article_service.ArticleState.PUBLISHED


def test_a_file_from_elsewhere_follows_policy_now(tmp_path: Path) -> None:
    """"now" stays available: a file that lands in content/ by other means is mailed at once."""
    pub = Pub(tmp_path, policy_line='policy = "now"')
    pub.write("2026-11-20-dropped.md", text("Dropped"))
    jobs.publish_new(pub.key)
    assert len(pub.messages()) == 3


def later(pub: Pub, hours: float) -> str:
    """A wall-clock time in New York, `hours` after the test's now."""
    return f"{(pub.clock.now + timedelta(hours=hours)).astimezone(pub.config.tz):%Y-%m-%d %H:%M}"


def test_a_draft_scheduled_comes_out_and_is_sent_at_its_minute(pub: Pub) -> None:
    """Monday's draft, scheduled for Tuesday 07:00: nothing before, then on the site (dated
    07:00, the draft line gone, every other line kept) and in every inbox; edits made after
    scheduling are what is sent."""
    pub.write("2026-11-20-tuesday.md", text("Tuesday", draft=True, body="First words.") + "<!-- kept -->\n")
    done = scheduling.schedule_send(pub.config, pub.db, "tuesday", at="2026-11-24 07:00", now=pub.clock.now)
    assert done.schedule.run_at == datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert done.schedule.publishes
    jobs.publish_new(pub.key)
    assert pub.messages() == []
    pub.write("2026-11-20-tuesday.md", text("Tuesday", draft=True, body="Edited words.") + "<!-- kept -->\n")
    pub.clock.now = datetime(2026, 11, 24, 11, 59, 59, tzinfo=UTC)
    assert jobs.run_due_schedules(pub.key) == 0
    pub.clock.now = datetime(2026, 11, 24, 12, 0, 1, tzinfo=UTC)
    assert jobs.run_due_schedules(pub.key) == 1
    sent = pub.messages()
    assert len(sent) == 3
    assert all("Edited words." in m.get_body(("plain",)).get_content() for m in sent)  # type: ignore[union-attr]
    written = (pub.root / "content" / "2026-11-20-tuesday.md").read_text()
    assert "draft:" not in written and "date: 2026-11-24 07:00" in written and "<!-- kept -->" in written
    assert "Tuesday" in (pub.root / "public" / "feeds" / "atom.xml").read_text()
    assert schedules.get(pub.db, done.schedule.id).state == "done"


def test_a_scheduled_send_is_held_when_a_check_fails_and_the_owners_are_told(pub: Pub) -> None:
    """A picture without alt text at send time holds the send: nothing goes out, the article
    stays a draft, the schedule says why, and each owner gets a notice."""
    from publisher import accounts

    accounts.add_user(pub.db, "owner@example.org", role="owner", password="a long passphrase here", now=START)
    pub.write("2026-11-20-pics.md", text("Pics", draft=True))
    done = scheduling.schedule_send(pub.config, pub.db, "pics", at=later(pub, 2), now=pub.clock.now)
    pub.write("2026-11-20-pics.md", text("Pics", draft=True, body="<img src=\"https://example.org/a.jpg\">"))
    pub.clock.now += timedelta(hours=3)
    assert jobs.run_due_schedules(pub.key) == 0
    held = schedules.get(pub.db, done.schedule.id)
    assert held.state == "held" and "alt text" in held.detail
    notices = pub.messages()
    assert [m["To"] for m in notices] == ["owner@example.org"]
    assert notices[0]["Subject"] == "Held: Pics was not sent"
    assert "draft: true" in (pub.root / "content" / "2026-11-20-pics.md").read_text()


def test_a_failing_check_refuses_the_schedule_and_says_what_to_fix(pub: Pub) -> None:
    """The checks also run when the author schedules: refused, naming the problem."""
    pub.write("2026-11-20-pics.md", text("Pics", draft=True, body="<img src=\"https://example.org/a.jpg\">"))
    with pytest.raises(InvalidRequest, match="alt text"):
        scheduling.schedule_send(pub.config, pub.db, "pics", at=later(pub, 2), now=pub.clock.now)
    assert schedules.pending(pub.db) == []


def test_a_cancelled_draft_stays_a_draft_and_nothing_goes(pub: Pub) -> None:
    """Cancel before the time: the draft is left as it was and no copy leaves."""
    pub.write("2026-11-20-maybe.md", text("Maybe", draft=True))
    done = scheduling.schedule_send(pub.config, pub.db, "maybe", at=later(pub, 1), now=pub.clock.now)
    scheduling.cancel_schedule(pub.db, done.schedule.id)
    pub.clock.now += timedelta(hours=2)
    assert jobs.run_due_schedules(pub.key) == 0
    assert pub.messages() == []
    assert "draft: true" in (pub.root / "content" / "2026-11-20-maybe.md").read_text()


def test_cancel_and_claim_at_the_same_second_one_wins_whole(pub: Pub) -> None:
    """Once the daemon has claimed a schedule, Cancel is refused with a reason (it went);
    before, the claim finds nothing: never half."""
    pub.write("2026-11-20-race.md", text("Race", draft=True))
    done = scheduling.schedule_send(pub.config, pub.db, "race", at=later(pub, 1), now=pub.clock.now)
    pub.clock.now += timedelta(hours=1, seconds=1)
    claimed = schedules.claim_due(pub.db, worker="w", now=pub.clock.now, grace=timedelta(hours=1))
    assert [c.schedule.id for c in claimed] == [done.schedule.id]
    with pytest.raises(Conflict, match="claimed"):
        scheduling.cancel_schedule(pub.db, done.schedule.id)


def test_two_articles_for_the_same_minute_both_go_in_order(pub: Pub) -> None:
    """Two schedules at one minute: both are sent, the earlier-scheduled first."""
    for name in ("one", "two"):
        pub.write(f"2026-11-20-{name}.md", text(name.title(), draft=True))
    at = later(pub, 1)
    first = scheduling.schedule_send(pub.config, pub.db, "one", at=at, now=pub.clock.now)
    second = scheduling.schedule_send(pub.config, pub.db, "two", at=at, now=pub.clock.now)
    pub.clock.now += timedelta(hours=1, seconds=1)
    assert jobs.run_due_schedules(pub.key) == 2
    subjects = [m["Subject"] for m in pub.messages()]
    assert sorted(subjects) == ["One"] * 3 + ["Two"] * 3
    assert schedules.get(pub.db, first.schedule.id).state == "done"
    assert schedules.get(pub.db, second.schedule.id).state == "done"


def test_a_reschedule_replaces_the_pending_time(pub: Pub) -> None:
    """Scheduling again moves the send: the old schedule is cancelled, the new one runs."""
    pub.write("2026-11-20-moved.md", text("Moved", draft=True))
    first = scheduling.schedule_send(pub.config, pub.db, "moved", at=later(pub, 1), now=pub.clock.now)
    second = scheduling.schedule_send(pub.config, pub.db, "moved", at=later(pub, 5), now=pub.clock.now)
    assert [s.id for s in second.replaced] == [first.schedule.id]
    pub.clock.now += timedelta(hours=2)
    assert jobs.run_due_schedules(pub.key) == 0
    pub.clock.now += timedelta(hours=4)
    assert jobs.run_due_schedules(pub.key) == 1
    assert len(pub.messages()) == 3


def test_bad_times_are_refused_with_the_field_named(pub: Pub) -> None:
    """A malformed time, an unknown zone and a past time are InvalidRequest, never a crash."""
    pub.write("2026-11-20-x.md", text("X", draft=True))
    with pytest.raises(InvalidRequest, match="must look like"):
        scheduling.schedule_send(pub.config, pub.db, "x", at="next tuesday", now=pub.clock.now)
    with pytest.raises(InvalidRequest, match="timezone: unknown time zone"):
        scheduling.schedule_send(pub.config, pub.db, "x", at=later(pub, 1), tz_name="Mars/Base", now=pub.clock.now)
    with pytest.raises(InvalidRequest, match="in the past"):
        scheduling.schedule_send(pub.config, pub.db, "x", at=later(pub, -1), now=pub.clock.now)
    with pytest.raises(AmbiguousTime) as asked:
        scheduling.schedule_send(pub.config, pub.db, "x", at="2027-11-07 01:30", now=pub.clock.now)
    assert [label for label, _ in asked.value.choices] == ["2027-11-07T01:30-04:00", "2027-11-07T01:30-05:00"]


def test_the_daemon_wakes_at_the_scheduled_second(tmp_path: Path) -> None:
    """With the daemon running (as `publisher serve` runs it beside the desk), a send
    scheduled a few seconds ahead leaves at that second, not at the next sweep."""
    from publisher.schedule import daemon

    pub = Pub(tmp_path)
    pub.write("2026-11-20-soon.md", text("Soon", draft=True))
    key, rt, sched = daemon.start_background(pub.config)
    try:
        due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4)
        scheduling.schedule_send(pub.config, rt.db, "soon", at=due.isoformat(), now=datetime.now(UTC))
        folder = pub.root / "outbox" / "new"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (folder.is_dir() and any(folder.iterdir())):
            time.sleep(0.02)
        first = min(p.stat().st_mtime for p in folder.iterdir())
    finally:
        daemon.stop_background(key, rt, sched)
    assert -0.5 < first - due.timestamp() < 5.0
