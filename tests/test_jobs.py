"""The daemon's jobs, run in-process with a controlled clock: publish, windows, digests, local time."""

from __future__ import annotations

import email
import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path

import pytest
from hub import Hub
from loopback_sites import serve_sites

from publisher.config import load_config
from publisher.schedule import jobs
from publisher.services import issues as issue_service
from publisher.services import scheduling
from publisher.store import ledger, open_store, publishing, schedules, subscribers

START = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # a Friday, 10:00 in New York
_keys = itertools.count()


def article(slug: str, day: str, body: str = "Some words.") -> str:
    return f"---\ntitle: {slug.replace('-', ' ').title()}\ndate: {day} 08:00\n---\n\n{body}\n"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Pub:
    """A publication folder with a registered runtime whose clock the test moves."""

    def __init__(self, root: Path, *, policy: str = "now", extra: str = "", empty: bool = False) -> None:
        self.root = root
        (root / "content").mkdir()
        if not empty:
            (root / "content" / "2026-11-02-old-news.md").write_text(article("old-news", "2026-11-02"))
        (root / "config.toml").write_text(
            f"""
[publication]
title = "Jobs Test"
url = "https://example.org/"
timezone = "America/New_York"
postal_address = "1 Test Street"

[fetch]
allow_private = true

[newsletter]
from = "Tester <news@example.org>"

[schedule]
policy = "{policy}"
window = "tue 08:00"
{extra}
"""
        )
        self.config = load_config(root / "config.toml", env={"PUBLISHER_SECRET": "k" * 32})
        self.db = open_store(self.config.store_url)
        self.clock = Clock(START)
        self.key = f"test-{next(_keys)}"
        jobs.register(self.key, jobs.Runtime(config=self.config, db=self.db, clock=self.clock))
        for index, zone in enumerate(("Asia/Tokyo", "America/Los_Angeles", None)):
            subscribers.add(self.db, f"r{index}@example.org", timezone=zone, now=START)

    def write(self, name: str, text: str) -> None:
        (self.root / "content" / name).write_text(text)

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


def test_first_run_files_the_back_catalogue(pub: Pub) -> None:
    """On a fresh database the existing articles are marked seen, built, and never mailed."""
    assert jobs.publish_new(pub.key) == []
    assert (pub.root / "public" / "feeds" / "atom.xml").is_file()
    assert publishing.seen_ids(pub.db)
    assert pub.messages() == []


def test_new_article_sends_once_and_edits_never_resend(pub: Pub) -> None:
    """A new article goes to every subscriber once; an edit rebuilds the feeds but sends nothing."""
    jobs.publish_new(pub.key)
    pub.write("2026-11-20-fresh.md", article("fresh", "2026-11-20"))
    assert jobs.publish_new(pub.key) == ["fresh"]
    assert len(pub.messages()) == 3
    pub.write("2026-11-20-fresh.md", article("fresh", "2026-11-20", body="Edited words, new paragraph."))
    assert jobs.publish_new(pub.key) == []
    assert len(pub.messages()) == 3
    assert "Edited words" in (pub.root / "public" / "feeds" / "atom.xml").read_text()


def test_window_policy_waits_for_the_window(tmp_path: Path) -> None:
    """Under policy "window" a new article is scheduled for the next Tuesday 08:00, and sent then."""
    pub = Pub(tmp_path, policy="window")
    jobs.publish_new(pub.key)
    pub.write("2026-11-20-fresh.md", article("fresh", "2026-11-20"))
    jobs.publish_new(pub.key)
    [pending] = schedules.pending(pub.db)
    assert pending.run_at == datetime(2026, 11, 24, 13, 0, tzinfo=UTC)  # Tuesday 08:00 EST
    assert jobs.run_due_schedules(pub.key) == 0
    assert pub.messages() == []
    pub.clock.now = pending.run_at + timedelta(seconds=1)
    assert jobs.run_due_schedules(pub.key) == 1
    assert len(pub.messages()) == 3


def test_draft_policy_holds_the_issue(tmp_path: Path) -> None:
    """Under policy "draft" the issue is created and held; nothing is scheduled or sent."""
    pub = Pub(tmp_path, policy="draft")
    jobs.publish_new(pub.key)
    pub.write("2026-11-20-fresh.md", article("fresh", "2026-11-20"))
    jobs.publish_new(pub.key)
    [state] = [s for s in ledger.status(pub.db) if s.slug == "fresh"]
    assert state.status == "draft"
    assert schedules.pending(pub.db) == []
    assert pub.messages() == []


def test_digest_sends_what_is_new_and_nothing_when_nothing_is(tmp_path: Path) -> None:
    """A digest carries every article since the last one; a digest with nothing new sends nothing."""
    pub = Pub(tmp_path, policy="digest")
    jobs.publish_new(pub.key)
    assert jobs.digest(pub.key) is None
    pub.write("2026-11-18-first-thing.md", article("first-thing", "2026-11-18"))
    pub.write("2026-11-19-second-thing.md", article("second-thing", "2026-11-19"))
    jobs.publish_new(pub.key)
    assert pub.messages() == []
    assert jobs.digest(pub.key) is not None
    sent = pub.messages()
    assert len(sent) == 3
    body = sent[0].get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "First Thing" in text and "Second Thing" in text and "Old News" not in text
    pub.clock.now += timedelta(days=7)
    assert jobs.digest(pub.key) is None
    assert len(pub.messages()) == 3


def _choose_the_digest_only(pub: Pub, address: str) -> None:
    from publisher.store import preferences

    found = subscribers.find(pub.db, address)
    assert found is not None
    preferences.set_preferences(
        pub.db, found.id, name="", timezone=None, frequency="digest", topics=None, allowed_topics=(), now=START
    )


def test_a_reader_who_had_each_article_gets_no_digest_of_them(tmp_path: Path) -> None:
    """While articles go out one by one, the digest goes only to the reader who chose "the
    digest only": the others, who had each article, do not get the same articles twice."""
    pub = Pub(tmp_path, policy="now", extra='digest = "0 7 * * 1"')
    _choose_the_digest_only(pub, "r2@example.org")
    jobs.publish_new(pub.key)
    pub.write("2026-11-20-fresh.md", article("fresh", "2026-11-20"))
    jobs.publish_new(pub.key)
    jobs.deliver_due(pub.key)
    assert sorted(str(m["To"]) for m in pub.messages()) == ["r0@example.org", "r1@example.org"]
    assert jobs.digest(pub.key) is not None
    sent = [str(m["To"]) for m in pub.messages()]
    assert sorted(sent) == ["r0@example.org", "r1@example.org", "r2@example.org"]


def test_a_reader_who_missed_one_of_its_articles_gets_the_digest(tmp_path: Path) -> None:
    """An article the author never sent on its own reaches everyone through the digest:
    only a reader who had every one of its articles is left out."""
    pub = Pub(tmp_path, policy="wait", extra='digest = "0 7 * * 1"')
    jobs.publish_new(pub.key)
    pub.write("2026-11-19-sent.md", article("sent", "2026-11-19"))
    pub.write("2026-11-20-kept.md", article("kept", "2026-11-20"))
    jobs.publish_new(pub.key)
    issue_service.send_now(pub.config, pub.db, "sent", now=START)
    jobs.deliver_due(pub.key)
    assert len(pub.messages()) == 3
    assert jobs.digest(pub.key) is not None
    assert sorted(str(m["To"]) for m in pub.messages()[3:]) == ["r0@example.org", "r1@example.org", "r2@example.org"]


def test_with_articles_going_into_the_digest_every_reader_gets_it(tmp_path: Path) -> None:
    """When new articles reach readers only through the digest, it goes to every active
    reader, whichever frequency they chose."""
    pub = Pub(tmp_path, policy="digest", extra='digest = "0 7 * * 1"')
    _choose_the_digest_only(pub, "r2@example.org")
    jobs.publish_new(pub.key)
    pub.write("2026-11-20-fresh.md", article("fresh", "2026-11-20"))
    jobs.publish_new(pub.key)
    assert pub.messages() == []
    assert jobs.digest(pub.key) is not None
    assert sorted(str(m["To"]) for m in pub.messages()) == ["r0@example.org", "r1@example.org", "r2@example.org"]


def test_local_time_delivery_follows_each_readers_clock(pub: Pub) -> None:
    """With local-time delivery each reader gets the issue at 09:30 on 2026-11-23 on
    their own clock (the author's zone for readers without one)."""
    jobs.publish_new(pub.key)
    pub.write("2026-11-20-fresh.md", article("fresh", "2026-11-20"))
    done = scheduling.schedule_send(
        pub.config, pub.db, "fresh", at="2026-11-23 09:30", now=START, local_time=True
    )
    start = datetime(2026, 11, 22, 19, 30, tzinfo=UTC)  # 09:30 on Nov 23 in UTC+14
    assert done.schedule.run_at == start
    pub.clock.now = start
    jobs.run_due_schedules(pub.key)
    assert pub.messages() == []
    pub.clock.now = datetime(2026, 11, 23, 0, 29, tzinfo=UTC)  # 09:29 in Tokyo
    jobs.deliver_due(pub.key)
    assert pub.messages() == []
    pub.clock.now = datetime(2026, 11, 23, 0, 30, tzinfo=UTC)  # 09:30 in Tokyo
    jobs.deliver_due(pub.key)
    assert [str(m["To"]) for m in pub.messages()] == ["r0@example.org"]
    pub.clock.now = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)  # 09:30 in New York (the author's zone)
    jobs.deliver_due(pub.key)
    assert sorted(str(m["To"]) for m in pub.messages()) == ["r0@example.org", "r2@example.org"]
    pub.clock.now = datetime(2026, 11, 23, 17, 30, tzinfo=UTC)  # 09:30 in Los Angeles
    jobs.deliver_due(pub.key)
    assert len(pub.messages()) == 3


def test_a_manual_send_does_not_inherit_a_local_time(pub: Pub) -> None:
    """`send` while a local-time schedule is pending goes to everyone now; the schedule,
    when it comes, has no one left to send to."""
    jobs.publish_new(pub.key)
    pub.write("2026-11-20-fresh.md", article("fresh", "2026-11-20"))
    scheduling.schedule_send(pub.config, pub.db, "fresh", at="2026-11-23 09:30", now=START, local_time=True)
    queued = issue_service.send_now(pub.config, pub.db, "fresh", now=START)
    assert queued.added == 3
    jobs.deliver_due(pub.key)
    assert len(pub.messages()) == 3
    pub.clock.now = datetime(2026, 11, 22, 19, 30, tzinfo=UTC)
    jobs.run_due_schedules(pub.key)
    jobs.deliver_due(pub.key)
    assert len(pub.messages()) == 3


def test_new_article_pings_the_hub(tmp_path: Path) -> None:
    """Publishing a new article pings the configured hub for each feed."""
    hub = Hub()
    try:
        pub = Pub(tmp_path, extra=f'\n[feeds]\nhubs = ["{hub.url}"]\n')
        jobs.publish_new(pub.key)
        hub.pings.clear()
        pub.write(
            "2026-11-20-fresh.md", "---\ntitle: Fresh\ndate: 2026-11-20 08:00\ntags: [sleep]\n---\n\nWords.\n"
        )
        jobs.publish_new(pub.key)
        assert sorted(p["hub.url"][0] for p in hub.pings) == [
            "https://example.org/feeds/atom.xml",
            "https://example.org/feeds/feed.json",
            "https://example.org/feeds/rss.xml",
            "https://example.org/feeds/tags/sleep.xml",
        ]
    finally:
        hub.close()


def test_first_article_of_a_new_publication_is_sent(tmp_path: Path) -> None:
    """A publication that started empty mails its first article: only what existed at the first look is filed."""
    pub = Pub(tmp_path, empty=True)
    assert jobs.publish_new(pub.key) == []
    pub.write("2026-11-20-first.md", article("first", "2026-11-20"))
    assert jobs.publish_new(pub.key) == ["first"]
    assert len(pub.messages()) == 3


def test_broken_article_is_reported_and_blocks_nothing_later(pub: Pub, caplog: pytest.LogCaptureFixture) -> None:
    """Broken front matter is logged with its file and line; once fixed, the article goes out."""
    jobs.publish_new(pub.key)
    pub.write("2026-11-20-fresh.md", "---\ntitle: [unclosed\ndate: 2026-11-20\n---\nBody\n")
    assert jobs.publish_new(pub.key) == []
    assert "2026-11-20-fresh.md:2: front matter is not valid YAML" in caplog.text
    pub.write("2026-11-20-fresh.md", article("fresh", "2026-11-20"))
    assert jobs.publish_new(pub.key) == ["fresh"]


def test_send_at_in_front_matter_schedules_the_article(pub: Pub) -> None:
    """`send_at:` schedules that article's send, whatever the policy."""
    jobs.publish_new(pub.key)
    pub.write(
        "2026-11-20-later.md",
        "---\ntitle: Later\ndate: 2026-11-20 08:00\nsend_at: 2026-11-24 07:30\n---\n\nSoon.\n",
    )
    jobs.publish_new(pub.key)
    [pending] = schedules.pending(pub.db)
    assert pending.run_at == datetime(2026, 11, 24, 12, 30, tzinfo=UTC)
    assert pub.messages() == []


def test_watched_feed_item_is_published_once(tmp_path: Path) -> None:
    """A new item of a watched feed is mailed once; its back catalogue and re-polls are not."""
    with serve_sites(tmp_path) as site:
        feed_url = f"{site.url}/wordpress/feed.xml"
        root = tmp_path / "pub"
        root.mkdir()
        pub = Pub(root, extra=f'\n[[sources]]\nurl = "{feed_url}"\n')
        jobs.publish_new(pub.key)
        assert jobs.poll_sources(pub.key) == 0  # first poll: the back catalogue is only marked seen
        feed = (site.root / "wordpress" / "feed.xml").read_text()
        new_item = """<item>
		<title>Morning Light</title>
		<link>https://quiethours.example.com/2026/11/19/morning-light/</link>
		<pubDate>Thu, 19 Nov 2026 14:30:00 +0000</pubDate>
		<guid isPermaLink="false">https://quiethours.example.com/?p=999</guid>
		<description>Light in the morning steadies the body clock.</description>
		<content:encoded><![CDATA[<p>Light in the morning steadies the body clock.</p>]]></content:encoded>
	</item>
	<item>"""
        site.write("wordpress/feed.xml", feed.replace("<item>", new_item, 1))
        pub.clock.now += timedelta(hours=1)
        assert jobs.poll_sources(pub.key) == 1
        sent = pub.messages()
        assert len(sent) == 3
        assert {str(m["Subject"]) for m in sent} == {"Morning Light"}
        pub.clock.now += timedelta(hours=1)
        site.write("wordpress/feed.xml", feed.replace("<item>", new_item.replace("Morning Light", "Morning Light!"), 1))
        assert jobs.poll_sources(pub.key) == 0
        assert len(pub.messages()) == 3


def test_delivery_sweep_recovers_rows_of_a_dead_sender(pub: Pub) -> None:
    """Rows a crashed sender on this host left in flight are sent by the next sweep and marked uncertain."""
    jobs.publish_new(pub.key)
    from publisher import content
    from publisher.delivery.sending import prepare_article_issue

    old = next(a for a in content.load_articles(pub.config) if a.slug == "old-news")
    issue_id = prepare_article_issue(pub.config, pub.db, old, now=START, status="sending")
    ledger.enqueue(pub.db, issue_id, now=START, tz_of_author=pub.config.tz)
    host, _, _ = ledger.new_worker_id().split(":")
    dead = f"{host}:{2**22 + 12345}:deadbeef"  # above any pid this machine hands out
    assert len(ledger.claim(pub.db, worker=dead, limit=10, now=START)) == 3
    jobs.deliver_due(pub.key)
    assert len(pub.messages()) == 3
    [state] = [s for s in ledger.status(pub.db) if s.slug == "old-news"]
    assert (state.sent, state.uncertain) == (3, 3)


def letter(title: str, body: str) -> str:
    return f"---\ntitle: {title}\ndate: 2026-11-20 08:00\n---\n\n{body}\n"


def plain(message: email.message.EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def test_a_scheduled_send_renders_the_article_as_it_is_when_it_starts(pub: Pub) -> None:
    """An article edited after `schedule` goes out as edited, and as the dry run showed it
    (it used to go out as it was when scheduled)."""
    jobs.publish_new(pub.key)
    pub.write("2026-11-20-fresh.md", letter("First Title", "First draft of the words."))
    scheduling.schedule_send(pub.config, pub.db, "fresh", at="2026-11-21 09:00", now=START)
    pub.write("2026-11-20-fresh.md", letter("Better Title", "Corrected words."))
    plan = issue_service.plan_send(pub.config, pub.db, "fresh", now=START)
    assert plan.subject == "Better Title" and not plan.frozen
    pub.clock.now = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)  # 09:00 in New York
    jobs.run_due_schedules(pub.key)
    messages = pub.messages()
    assert len(messages) == 3
    assert {str(m["Subject"]) for m in messages} == {plan.subject}
    assert all("Corrected words." in plain(m) and "First draft" not in plain(m) for m in messages)


def test_a_scheduled_article_made_a_draft_is_not_sent(pub: Pub) -> None:
    """An article turned back into a draft after `schedule` is not mailed; the schedule
    says why."""
    jobs.publish_new(pub.key)
    pub.write("2026-11-20-fresh.md", letter("Fresh", "Words."))
    done = scheduling.schedule_send(pub.config, pub.db, "fresh", at="2026-11-21 09:00", now=START)
    pub.write("2026-11-20-fresh.md", "---\ntitle: Fresh\ndate: 2026-11-20 08:00\ndraft: true\n---\n\nWords.\n")
    pub.clock.now = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)
    jobs.run_due_schedules(pub.key)
    assert pub.messages() == []
    item = schedules.get(pub.db, done.schedule.id)
    assert item.state == "skipped" and "draft" in item.detail


def test_once_a_copy_has_left_every_reader_gets_the_same_version(pub: Pub) -> None:
    """After the first copies went out, an edit changes nothing for later readers (a
    reader who joined since, or rows a crashed sender left): the dry run says so and
    shows what they will get."""
    jobs.publish_new(pub.key)
    pub.write("2026-11-20-fresh.md", letter("First Title", "The words as first sent."))
    queued = issue_service.send_now(pub.config, pub.db, "fresh", now=START)
    host, _, _ = ledger.new_worker_id().split(":")
    dead = f"{host}:{2**22 + 12345}:deadbeef"  # a sender that died with one row in flight
    assert len(ledger.claim(pub.db, worker=dead, limit=1, now=START)) == 1
    pub.write("2026-11-20-fresh.md", letter("Second Title", "The words edited later."))
    subscribers.add(pub.db, "late@example.org", now=START)
    plan = issue_service.plan_send(pub.config, pub.db, "fresh", now=START)
    assert plan.frozen and plan.subject == "First Title" and plan.recipients == 1
    assert issue_service.send_now(pub.config, pub.db, "fresh", now=START).issue_id == queued.issue_id
    jobs.deliver_due(pub.key)
    messages = pub.messages()
    assert len(messages) == 4
    assert {str(m["Subject"]) for m in messages} == {"First Title"}
    assert all("The words as first sent." in plain(m) for m in messages)


def test_a_send_in_progress_does_not_hold_up_the_next_article(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the daemon (sends in the background), a second article is noticed while the first
    one's send is still running, and the running loop goes round once more to send it."""
    import threading

    pub = Pub(tmp_path)
    jobs.runtime_for(pub.key).deliver_in_background = True
    gate = threading.Event()
    calls: list[int] = []
    real = jobs.deliver_queued

    def held(*args: object, **kwargs: object) -> int:
        calls.append(1)
        if len(calls) == 1:
            assert gate.wait(30)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jobs, "deliver_queued", held)
    jobs.publish_new(pub.key)
    pub.write("2026-11-20-first.md", article("first", "2026-11-20"))
    assert jobs.publish_new(pub.key) == ["first"]
    pub.write("2026-11-20-second.md", article("second", "2026-11-20"))
    assert jobs.publish_new(pub.key) == ["second"]  # noticed while the first send is held
    assert pub.messages() == []
    gate.set()
    deadline = time.monotonic() + 30
    while len(pub.messages()) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    subjects = sorted(str(m["Subject"]) for m in pub.messages())
    assert subjects == ["First"] * 3 + ["Second"] * 3


def test_a_broken_file_elsewhere_does_not_hold_a_scheduled_send(pub: Pub) -> None:
    """A broken file in content/ when the send starts does not hold another article's
    newsletter back: it goes out, rendered from its own file as it is then."""
    jobs.publish_new(pub.key)
    pub.write("2026-11-20-fresh.md", letter("Fresh", "Words as scheduled."))
    scheduling.schedule_send(pub.config, pub.db, "fresh", at="2026-11-21 09:00", now=START)
    pub.write("2026-11-20-fresh.md", letter("Fresh", "Words edited since."))
    pub.write("2026-11-21-broken.md", "---\ntitle: [unclosed\n---\n\nText.\n")
    pub.clock.now = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)
    jobs.run_due_schedules(pub.key)
    assert len(pub.messages()) == 3
    assert all("Words edited since." in plain(m) for m in pub.messages())


def test_a_wake_up_handed_over_while_the_scheduler_stops_is_dropped_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The scheduler's loop may submit one last due job after its pool was shut down; the
    pool drops it without a traceback (the job's truth is in the store, read at next start)."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from publisher.schedule.scheduler import _Pool

    ran: list[int] = []
    sched = BackgroundScheduler(executors={"default": _Pool(max_workers=1)}, timezone="UTC")
    sched.start(paused=True)
    job = sched.add_job(ran.append, "date", run_date=datetime.now(UTC), args=[1], misfire_grace_time=None)
    pool = sched._lookup_executor("default")
    pool.shutdown(wait=True)
    with caplog.at_level("DEBUG", logger="publisher.schedule.scheduler"):
        pool.submit_job(job, [datetime.now(UTC)])
    sched.shutdown(wait=True)
    assert ran == []
    assert "the scheduler is stopping" in caplog.text
