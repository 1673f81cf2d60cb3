"""The service layer: each action once, on a real publication folder and SQLite store."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from publisher.config import Config, load_config
from publisher.content import folder_lock
from publisher.errors import Conflict, ContentError, InvalidRequest, NotFound, SubscriberError
from publisher.models import SubscriberStatus
from publisher.services import articles, issues, scheduling, stats, subscribers
from publisher.store import open_store
from publisher.store import subscribers as store_subscribers
from publisher.store.schema import deliveries, metadata

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

ARTICLE = """---
title: {title}
date: {date}
---

Some words about {title}.
"""

CONFIG = """
[publication]
title = "Service Test"
url = "https://example.org/"
postal_address = "1 Test Street, Testville"
timezone = "Europe/Berlin"

[newsletter]
from = "Tester <news@example.org>"

[delivery]
provider = "maildir"

[delivery.maildir]
path = "outbox"
"""


@pytest.fixture
def config(tmp_path: Path) -> Config:
    (tmp_path / "content").mkdir()
    (tmp_path / "content" / "2026-01-05-notes-on-rest.md").write_text(
        ARTICLE.format(title="Notes on Rest", date="2026-01-05 08:00")
    )
    (tmp_path / "config.toml").write_text(CONFIG)
    return load_config(tmp_path / "config.toml", env={"PUBLISHER_SECRET": "k" * 40})


@pytest.fixture
def db(config: Config) -> sa.Engine:
    engine = open_store(config.store_url)
    yield engine
    engine.dispose()


def _add(db: sa.Engine, count: int, **kwargs: object) -> None:
    for n in range(count):
        subscribers.subscribe(db, f"reader{n}@example.org", now=NOW, **kwargs)  # type: ignore[arg-type]


def test_subscribe_says_whether_the_address_was_new(db: sa.Engine) -> None:
    """A second subscribe of the same address updates it and says so."""
    first = subscribers.subscribe(db, "Ada@Example.org", name="Ada", now=NOW)
    again = subscribers.subscribe(db, "ada@example.org", tags=["x"], now=NOW + timedelta(seconds=1))
    assert (first.created, again.created) == (True, False)
    assert again.subscriber.tags == ("x",) and again.subscriber.name == "Ada"


def test_pages_follow_each_other_without_gaps(db: sa.Engine) -> None:
    """Walking the cursor visits every subscriber once, in id order."""
    _add(db, 7)
    seen: list[str] = []
    after = None
    while True:
        page = subscribers.list_subscribers(db, limit=3, after=after)
        seen += [s.email for s in page.items]
        if not page.has_more:
            break
        after = page.next_after
    assert seen == [f"reader{n}@example.org" for n in range(7)]


def test_search_takes_wildcards_literally(db: sa.Engine) -> None:
    """A % or _ in the search matches only itself."""
    subscribers.subscribe(db, "a_b@example.org", now=NOW)
    subscribers.subscribe(db, "axb@example.org", now=NOW)
    found = subscribers.list_subscribers(db, search="A_B")
    assert [s.email for s in found.items] == ["a_b@example.org"]
    assert subscribers.list_subscribers(db, search="%").items == ()


def test_since_and_status_filter_the_listing(db: sa.Engine) -> None:
    """Only subscribers created at or after `since`, with the status asked for."""
    subscribers.subscribe(db, "old@example.org", now=NOW - timedelta(days=3))
    subscribers.subscribe(db, "new@example.org", now=NOW, pending=True)
    page = subscribers.list_subscribers(db, since=NOW - timedelta(days=1), status=SubscriberStatus.PENDING)
    assert [s.email for s in page.items] == ["new@example.org"]


def test_page_size_out_of_range_is_refused(db: sa.Engine) -> None:
    """A limit of 0 or over the maximum is an InvalidRequest, not an empty page."""
    with pytest.raises(InvalidRequest, match="limit"):
        subscribers.list_subscribers(db, limit=0)


def test_update_replaces_tags_and_keeps_the_status(db: sa.Engine) -> None:
    """Tags given replace the set; fields not given stay."""
    subscribers.subscribe(db, "ada@example.org", name="Ada", tags=["a", "b"], now=NOW)
    changed = subscribers.update_subscriber(db, "ada@example.org", tags=["C"], now=NOW)
    assert changed.tags == ("c",) and changed.name == "Ada" and changed.status is SubscriberStatus.ACTIVE


def test_update_refuses_a_bad_zone(db: sa.Engine) -> None:
    """An unknown zone is a SubscriberError and nothing changes."""
    subscribers.subscribe(db, "ada@example.org", timezone="Europe/Paris", now=NOW)
    with pytest.raises(SubscriberError, match="Mars/Olympus"):
        subscribers.update_subscriber(db, "ada@example.org", timezone="Mars/Olympus", now=NOW)
    assert subscribers.get_subscriber(db, "ada@example.org").timezone == "Europe/Paris"


def test_unsubscribe_keeps_the_address_off_the_list(db: sa.Engine) -> None:
    """An unsubscribed address is not added back by a plain subscribe."""
    subscribers.subscribe(db, "ada@example.org", now=NOW)
    left = subscribers.unsubscribe(db, "ada@example.org", now=NOW)
    assert left.status is SubscriberStatus.UNSUBSCRIBED
    with pytest.raises(SubscriberError, match="stays off the list"):
        subscribers.subscribe(db, "ada@example.org", now=NOW)


def test_erase_forgets_the_person(db: sa.Engine) -> None:
    """After erasure the address is unknown."""
    subscribers.subscribe(db, "ada@example.org", now=NOW)
    assert subscribers.erase(db, "ADA@example.org", now=NOW) == "ada@example.org"
    with pytest.raises(NotFound):
        subscribers.get_subscriber(db, "ada@example.org")


def test_export_holds_events_and_deliveries(config: Config, db: sa.Engine) -> None:
    """A person's export lists what happened to them and each copy sent to them."""
    subscribers.subscribe(db, "ada@example.org", now=NOW)
    queued = issues.send_now(config, db, "notes-on-rest", now=NOW)
    data = subscribers.export_subscriber(db, "ada@example.org")
    assert [e.kind for e in data.events] == ["subscribe"]
    assert [(d.issue_id, d.state) for d in data.deliveries] == [(queued.issue_id, "queued")]


def test_tags_count_active_and_all(db: sa.Engine) -> None:
    """A tag's count says how many active subscribers carry it, and how many in all."""
    subscribers.subscribe(db, "a@example.org", tags=["sleep"], now=NOW)
    subscribers.subscribe(db, "b@example.org", tags=["sleep"], now=NOW)
    subscribers.unsubscribe(db, "b@example.org", now=NOW)
    assert subscribers.tags(db) == [subscribers.TagCount(tag="sleep", active=1, total=2)]


NEW_TEXT = ARTICLE.format(title="Walking Daily", date="2026-02-01 08:00")


def test_write_creates_a_dated_file(config: Config) -> None:
    """A new article lands in content/ named after its date and slug."""
    written = articles.write_article(config, NEW_TEXT, now=NOW)
    assert written.created and written.path == config.path_of("build.content") / "2026-02-01-walking-daily.md"
    assert written.path.read_text() == NEW_TEXT and written.article.slug == "walking-daily"


def test_write_refuses_a_slug_in_use(config: Config) -> None:
    """Creating an article whose slug exists is a Conflict."""
    with pytest.raises(Conflict, match="notes-on-rest"):
        articles.write_article(config, ARTICLE.format(title="Notes on Rest", date="2026-03-01 08:00"), now=NOW)


def test_write_of_bad_text_writes_nothing(config: Config) -> None:
    """Front matter that does not parse is a ContentError and no file appears."""
    before = sorted(config.path_of("build.content").iterdir())
    with pytest.raises(ContentError):
        articles.write_article(config, "---\ntitle: [unclosed\n---\nbody\n", now=NOW)
    assert sorted(config.path_of("build.content").iterdir()) == before


def test_update_replaces_the_same_file(config: Config) -> None:
    """An update rewrites the article's own file; its id stays."""
    before = articles.get_article(config, open_store(config.store_url), "notes-on-rest", now=NOW)
    text = ARTICLE.format(title="Notes on Rest, revised", date="2026-01-05 08:00")
    written = articles.write_article(config, text, now=NOW, slug="notes-on-rest")
    assert not written.created and written.path.name == "2026-01-05-notes-on-rest.md"
    assert written.article.id == before.article.id and written.path.read_text() == text


def _in_a_thread(action: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(action())
        except Exception as exc:  # the test reads what happened
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_a_save_waits_for_another_writer_and_never_overwrites_it(config: Config) -> None:
    """Another writer holds the folder's lock and changes the file: the save that started
    meanwhile waits, then finds the change and is a Conflict; the other version stays."""
    folder = config.path_of("build.content")
    path = folder / "2026-01-05-notes-on-rest.md"
    opened = articles.fingerprint(path.read_text())
    mine = ARTICLE.format(title="Notes on Rest", date="2026-01-05 08:00").replace("Some words", "My words")
    theirs = ARTICLE.format(title="Notes on Rest", date="2026-01-05 08:00").replace("Some words", "Their words")
    with folder_lock.content_lock(folder) as lock:
        saver, outcome = _in_a_thread(
            lambda: articles.write_article(config, mine, now=NOW, slug="notes-on-rest", expected=opened)
        )
        saver.join(timeout=0.3)
        assert saver.is_alive(), f"the save did not wait for the lock: {outcome}"
        path.write_text(theirs)
    saver.join(timeout=10)
    assert isinstance(outcome[0], Conflict) and "changed on disk" in str(outcome[0])
    assert path.read_text() == theirs
    assert lock.parent == folder.parent and sorted(p.name for p in folder.iterdir()) == [path.name]


def test_two_new_articles_with_one_name_never_overwrite_each_other(config: Config) -> None:
    """A file that appears under the new article's name while it waits is kept; the new one is a Conflict."""
    folder = config.path_of("build.content")
    target = folder / "2026-02-01-walking-daily.md"
    with folder_lock.content_lock(folder):
        creator, outcome = _in_a_thread(lambda: articles.write_article(config, NEW_TEXT, now=NOW))
        creator.join(timeout=0.3)
        assert creator.is_alive(), f"the new article did not wait for the lock: {outcome}"
        target.write_text("someone else's file\n")
    creator.join(timeout=10)
    assert isinstance(outcome[0], Conflict)
    assert target.read_text() == "someone else's file\n"
    assert sorted(p.name for p in folder.iterdir()) == ["2026-01-05-notes-on-rest.md", target.name]


def test_a_lock_held_too_long_is_told_and_nothing_is_written(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer that never lets go makes a save a Conflict naming the lock file, after a short wait."""
    monkeypatch.setattr(folder_lock, "LOCK_WAIT", 0.05)
    folder = config.path_of("build.content")
    path = folder / "2026-01-05-notes-on-rest.md"
    before = path.read_text()
    with folder_lock.content_lock(folder) as lock, pytest.raises(Conflict, match=str(lock.name)):
        articles.write_article(config, before.replace("Some words", "Other words"), now=NOW, slug="notes-on-rest")
    assert path.read_text() == before


def test_update_may_not_change_the_slug(config: Config) -> None:
    """Text giving another slug is refused: it would move the article."""
    text = "---\ntitle: Other\ndate: 2026-01-05 08:00\nslug: other\n---\nbody\n"
    with pytest.raises(InvalidRequest, match="keep the slug"):
        articles.write_article(config, text, now=NOW, slug="notes-on-rest")


def test_articles_carry_their_state(config: Config, db: sa.Engine) -> None:
    """Draft, scheduled (future), published and sent are told apart."""
    content = config.path_of("build.content")
    (content / "2026-02-01-draft.md").write_text("---\ntitle: Draft\ndate: 2026-02-01\ndraft: true\n---\nx\n")
    (content / "2027-01-01-later.md").write_text(ARTICLE.format(title="Later", date="2027-01-01 08:00"))
    articles.write_article(config, NEW_TEXT, now=NOW)
    subscribers.subscribe(db, "ada@example.org", now=NOW)
    issues.send_now(config, db, "notes-on-rest", now=NOW)
    states = {v.article.slug: v.state for v in articles.list_articles(config, db, now=NOW)}
    assert states == {
        "draft": articles.ArticleState.DRAFT,
        "later": articles.ArticleState.SCHEDULED,
        "walking-daily": articles.ArticleState.PUBLISHED,
        "notes-on-rest": articles.ArticleState.SENT,
    }


def test_preview_fills_in_a_sample_reader(config: Config) -> None:
    """The preview has the reader's values spliced in, no placeholder left."""
    shown = articles.preview(config, "notes-on-rest", now=NOW)
    assert "Some words about Notes on Rest" in shown.html and "__pub_" not in shown.html + shown.text
    assert "/unsubscribe/preview" in shown.text


def test_send_now_queues_each_reader_once(config: Config, db: sa.Engine) -> None:
    """Sending twice queues only readers who joined in between."""
    _add(db, 3)
    first = issues.send_now(config, db, "notes-on-rest", now=NOW)
    subscribers.subscribe(db, "late@example.org", now=NOW)
    again = issues.send_now(config, db, "notes-on-rest", now=NOW)
    assert (first.added, again.added, again.issue_id) == (3, 1, first.issue_id)


def test_plan_counts_without_writing(config: Config, db: sa.Engine) -> None:
    """A dry run counts the readers and leaves the ledger empty."""
    _add(db, 2)
    plan = issues.plan_send(config, db, "notes-on-rest", now=NOW)
    assert plan.recipients == 2 and plan.issue_id is None
    assert issues.issue_status(db) == []


def test_schedule_in_the_past_is_refused(config: Config, db: sa.Engine) -> None:
    """A time already gone is an InvalidRequest that points to sending now."""
    with pytest.raises(InvalidRequest, match="in the past"):
        scheduling.schedule_send(config, db, "notes-on-rest", at="2026-03-01 09:00", now=NOW)


def test_schedule_reads_the_time_in_the_publication_zone(config: Config, db: sa.Engine) -> None:
    """09:00 in Europe/Berlin in March is 08:00 UTC."""
    done = scheduling.schedule_send(config, db, "notes-on-rest", at="2026-03-10 09:00", now=NOW)
    assert done.schedule.run_at == datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
    assert done.schedule.timezone == "Europe/Berlin" and done.article.slug == "notes-on-rest"


def test_local_time_schedule_starts_where_the_hour_comes_first(config: Config, db: sa.Engine) -> None:
    """A local-time send starts at 09:30 in UTC+14 and keeps date and minutes for each reader."""
    done = scheduling.schedule_send(config, db, "notes-on-rest", at="2026-03-10 09:30", now=NOW, local_time=True)
    assert done.schedule.run_at == datetime(2026, 3, 9, 19, 30, tzinfo=UTC)
    assert done.schedule.timezone == "local"
    assert done.schedule.local_at == datetime(2026, 3, 10, 9, 30)


def test_local_time_schedule_takes_no_zone(config: Config, db: sa.Engine) -> None:
    """--tz with --local-time would be ignored: it is refused, saying what is used instead."""
    with pytest.raises(InvalidRequest, match="own clock"):
        scheduling.schedule_send(
            config, db, "notes-on-rest", at="2026-03-10 09:30", now=NOW, local_time=True,
            tz_name="Asia/Tokyo",
        )


def test_cancel_twice_is_a_conflict(config: Config, db: sa.Engine) -> None:
    """A cancelled schedule cannot be cancelled again; an unknown one is NotFound."""
    done = scheduling.schedule_send(config, db, "notes-on-rest", at="2026-03-10 09:00", now=NOW)
    assert scheduling.cancel_schedule(db, done.schedule.id).state == "cancelled"
    with pytest.raises(Conflict, match="cancelled"):
        scheduling.cancel_schedule(db, done.schedule.id)
    with pytest.raises(NotFound):
        scheduling.cancel_schedule(db, 999)


def test_subscriber_days_count_joins_and_leaves(db: sa.Engine) -> None:
    """Each day's line counts that day's joins and unsubscribes; empty days are zero."""
    subscribers.subscribe(db, "a@example.org", now=NOW - timedelta(days=1))
    subscribers.subscribe(db, "b@example.org", now=NOW)
    subscribers.unsubscribe(db, "a@example.org", now=NOW)
    days = stats.subscriber_days(db, now=NOW, days=3)
    assert [(d.day.isoformat(), d.joined, d.left) for d in days] == [
        ("2026-02-28", 0, 0), ("2026-03-01", 1, 0), ("2026-03-02", 1, 1),
    ]


def test_issue_counts_a_bounce_after_the_copy_not_an_unsubscribe_by_hand(config: Config, db: sa.Engine) -> None:
    """A bounce reported after a reader's copy counts for that issue; an unsubscribe made
    by hand (not by a link in the issue's message) counts for no issue."""
    _add(db, 2)
    queued = issues.send_now(config, db, "notes-on-rest", now=NOW)
    with db.begin() as conn:
        conn.execute(sa.update(deliveries).values(state="sent", sent_at=NOW))
    subscribers.unsubscribe(db, "reader0@example.org", now=NOW + timedelta(hours=1))
    store_subscribers.suppress(db, "reader1@example.org", "bounce", provider="smtp", now=NOW + timedelta(hours=1))
    counted = stats.issue_counts(db, queued.issue_id)
    assert (counted.sent, counted.unsubscribed, counted.bounced) == (2, 0, 1)
    assert stats.send_pace(db, queued.issue_id) == [stats.MinuteCount(minute=NOW, sent=2)]


def test_erase_keeps_each_issue_count_without_the_person(config: Config, db: sa.Engine) -> None:
    """After erasure the issue still counts the copy sent, and the address is in no table."""
    _add(db, 2)
    queued = issues.send_now(config, db, "notes-on-rest", now=NOW)
    with db.begin() as conn:
        conn.execute(sa.update(deliveries).values(state="sent", sent_at=NOW, provider_id="pm-1"))
    subscribers.erase(db, "reader0@example.org", now=NOW)
    assert issues.get_issue(db, queued.issue_id).sent == 2
    with db.connect() as conn:
        dump = " ".join(str(row) for table in metadata.sorted_tables for row in conn.execute(sa.select(table)))
    assert "reader0@example.org" not in dump and "reader1@example.org" in dump


def _confirm_links(config: Config) -> list[str]:
    import email
    import re
    from email import policy

    found = []
    for path in sorted((config.path_of("delivery.maildir.path") / "new").iterdir()):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        found.extend(re.findall(r"https?://\S+/confirm/\S+", text))
    return found


def test_confirmations_are_rendered_once_a_day_and_each_carries_its_own_link(
    config: Config, db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One rendering serves a burst of sign-ups; each mail still confirms only its reader."""
    from publisher.mail import newsletter

    renders: list[str] = []
    real = newsletter.render_confirmation

    def counted(*args: object, **kwargs: object) -> object:
        renders.append(str(args[1]))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(newsletter, "render_confirmation", counted)
    mailer = subscribers.ConfirmationMailer(config, db, secret="k" * 40)
    people = [subscribers.subscribe(db, f"new{n}@example.org", pending=True, now=NOW).subscriber
              for n in range(3)]
    assert [mailer.send(person, now=NOW) for person in people] == [True, True, True]
    assert renders == [subscribers.CONFIRM_PLACEHOLDER]
    links = _confirm_links(config)
    assert len(links) == len(set(links)) == 3 and not any("confirm.invalid" in link for link in links)
    # Again within the interval: nobody is mailed twice. A complained address never is.
    assert not mailer.send(people[0], now=NOW + timedelta(minutes=1))
    spam = subscribers.subscribe(db, "spam@example.org", pending=True, now=NOW).subscriber
    store_subscribers.set_status(db, spam.id, SubscriberStatus.COMPLAINED, now=NOW, kind="complaint")
    assert not mailer.send(subscribers.get_subscriber(db, spam.id), now=NOW)
    # The next day renders afresh.
    later = subscribers.subscribe(db, "next@example.org", pending=True, now=NOW).subscriber
    assert mailer.send(later, now=NOW + timedelta(days=1))
    assert len(renders) == 2 and len(_confirm_links(config)) == 4


def test_a_template_that_hides_the_link_is_rendered_per_address(config: Config, db: sa.Engine) -> None:
    """A confirmation template that shows the link only through a filter (so the cached
    rendering's placeholder does not come out verbatim) still gives each reader their own
    link: the mail is rendered per address instead of spliced."""
    folder = config.path_of("build.templates") / "email"
    folder.mkdir(parents=True)
    (folder / "confirm.txt").write_text("Confirm: {{ confirm_url.split('/') | join(' / ') }}\n")
    mailer = subscribers.ConfirmationMailer(config, db, secret="k" * 40)
    people = [subscribers.subscribe(db, f"new{n}@example.org", pending=True, now=NOW).subscriber
              for n in range(2)]
    assert all(mailer.send(person, now=NOW) for person in people)
    import email
    from email import policy

    links = set()
    for path in (config.path_of("delivery.maildir.path") / "new").iterdir():
        text = email.message_from_bytes(path.read_bytes(), policy=policy.default).get_body(("plain",))
        line = text.get_content().split("Confirm: ", 1)[1].split("\n", 1)[0]  # type: ignore[union-attr]
        links.add(line.replace(" / ", "/"))
    assert len(links) == 2 and all("/confirm/" in link and "confirm.invalid" not in link for link in links)


def test_a_new_publication_and_this_repository_ignore_the_save_lock(tmp_path: Path) -> None:
    """The lock file a save leaves beside content/ is in `publisher init`'s .gitignore and in ours."""
    from click.testing import CliRunner

    from publisher.cli import cli

    made = CliRunner().invoke(
        cli,
        ["init", str(tmp_path / "new"), "--title", "Quiet", "--url", "https://quiet.example.net",
         "--author", "Sam Ito", "--from", "Sam Ito <sam@quiet.example.net>",
         "--postal-address", "4 Elm Row, Leeds", "--timezone", "Europe/London"],
        env={"PUBLISHER_CONFIG": ""},
    )
    assert made.exit_code == 0, made.output
    config = load_config(tmp_path / "new" / "config.toml", env={"PUBLISHER_SECRET": "k" * 40})
    with folder_lock.content_lock(config.path_of("build.content")) as lock:
        assert lock.parent == config.root.resolve()
    assert f"/{lock.name}" in (tmp_path / "new" / ".gitignore").read_text().splitlines()
    ours = Path(__file__).resolve().parent.parent / ".gitignore"
    assert f"/{lock.name}" in ours.read_text().splitlines()
