"""Welcome and drip sequences: enrolled from the event log, sent through the ledger once per
step and reader, at the reader's hour, against a real SMTP server, on a clock the test moves."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from apscheduler.schedulers.background import BackgroundScheduler
from click.testing import CliRunner, Result
from fakes.smtp import SMTPServer
from pg_server import fresh_database, postgres_server

from publisher.cli import cli
from publisher.config import Config, load_config
from publisher.content import sequences as files
from publisher.delivery import hooks
from publisher.delivery.sending import deliver_queued
from publisher.errors import ContentError, InvalidRequest
from publisher.models import SubscriberStatus
from publisher.schedule import jobs, scheduler
from publisher.services import access, delivering, segments, sequences
from publisher.services import issues as issue_service
from publisher.store import ledger, open_store
from publisher.store import subscribers as subs
from publisher.store.schema import deliveries, issues, sequence_sends, webhook_messages

START = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # a Monday, 07:00 UTC
CONFIG = """
[publication]
title = "Quiet Hours"
url = "https://example.org/"
postal_address = "1 Test Street"
timezone = "Europe/Berlin"

[newsletter]
from = "Dana <news@example.org>"

[delivery]
provider = "smtp"
[delivery.smtp]
host = "127.0.0.1"
port = {port}
security = "none"
"""

STEPS = {
    "welcome": ("Welcome to Quiet Hours", "0"),
    "day-3": ("Three habits for better sleep", "3d"),
    "day-10": ("What ten days of notes show", "10d"),
}


def _step(title: str, delay: str, body: str = "") -> str:
    return f"---\ntitle: {title}\ndelay: {delay}\n---\n\n{body or 'A short note for new readers.'}\n"


def write_sequence(root: Path, name: str = "welcome", steps: dict[str, tuple[str, str]] | None = None) -> Path:
    folder = root / "sequences" / name
    folder.mkdir(parents=True, exist_ok=True)
    for step, (title, delay) in (steps or STEPS).items():
        (folder / f"{step}.md").write_text(_step(title, delay))
    return folder


@pytest.fixture
def config(tmp_path: Path, smtp_server: SMTPServer) -> Config:
    (tmp_path / "content").mkdir()
    (tmp_path / "config.toml").write_text(CONFIG.format(port=smtp_server.port))
    write_sequence(tmp_path)
    return load_config(tmp_path / "config.toml", env={"PUBLISHER_SECRET": "k" * 40})


@pytest.fixture
def db(config: Config) -> Iterator[sa.Engine]:
    engine = open_store(config.store_url)
    yield engine
    engine.dispose()


class Clock:
    """A clock the test moves; every call of the run and the sender reads it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def tick(config: Config, db: sa.Engine, clock: Clock) -> sequences.RunReport:
    """One minute job: enrol and queue, then deliver what is due, at the clock's time."""
    report = sequences.run(config, db, now=clock.now)
    deliver_queued(config, db, stop=threading.Event(), clock=clock)
    return report


def join(db: sa.Engine, email: str, now: datetime, *, zone: str | None = None) -> int:
    return subs.add(db, email, timezone=zone, now=now).id


def subjects_to(server: SMTPServer, address: str) -> list[str]:
    return [str(m.parsed()["Subject"]) for m in server.messages_to(address)]


def test_fourteen_days_each_step_once_at_the_readers_hour(config: Config, db: sa.Engine,
                                                          smtp_server: SMTPServer) -> None:
    """Over 14 simulated days each reader gets welcome, day 3 and day 10 once each, days
    at 09:00 on their own clock, the welcome at once."""
    clock = Clock(START)
    tick(config, db, clock)  # the sequence is first seen: readers from now on enter it
    readers = {"tokyo@example.org": "Asia/Tokyo", "ny@example.org": "America/New_York", "nozone@example.org": None}
    for n, (email, zone) in enumerate(readers.items()):
        join(db, email, START + timedelta(minutes=5 + n), zone=zone)
    timeline: list[tuple[datetime, str, str]] = []
    seen = 0
    while clock.now < START + timedelta(days=14):
        clock.now += timedelta(minutes=30)
        tick(config, db, clock)
        for message in smtp_server.messages[seen:]:
            timeline.append((clock.now, message.rcpt_tos[0], str(message.parsed()["Subject"])))
        seen = len(smtp_server.messages)
    for email, zone in readers.items():
        got = [(when, subject) for when, rcpt, subject in timeline if rcpt == email]
        assert [s for _w, s in got] == [t for t, _d in STEPS.values()], email
        local = ZoneInfo(zone or "Europe/Berlin")
        welcome, day3, day10 = (when for when, _s in got)
        assert welcome - START < timedelta(hours=1)
        for when, days in ((day3, 3), (day10, 10)):
            shown = when.astimezone(local)
            assert (shown.hour, shown.minute) in ((9, 0), (9, 30)), (email, shown)
            assert shown.date() == (START + timedelta(minutes=5)).astimezone(local).date() + timedelta(days=days)
    for when, rcpt, subject in timeline:
        print(f"{when:%Y-%m-%d %H:%M} UTC  {rcpt:22} {subject}")


def test_a_reader_who_joined_before_the_sequence_existed_is_not_enrolled(config: Config, db: sa.Engine,
                                                                         smtp_server: SMTPServer) -> None:
    """A sequence starts with the readers who come after it: the list it found gets no welcome."""
    join(db, "old@example.org", START - timedelta(days=1))
    clock = Clock(START)
    report = tick(config, db, clock)
    assert report.enrolled == {"welcome": 0}
    assert smtp_server.messages == []


def sent_steps(db: sa.Engine, email: str) -> list[str]:
    """The steps whose copies reached `email` (the ledger's sent rows), in order."""
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(issues.c.slug).join(deliveries, deliveries.c.issue_id == issues.c.id)
            .where(deliveries.c.email == email, deliveries.c.state == "sent").order_by(deliveries.c.id)
        ).scalars()
        return [slug.split("/", 1)[1] for slug in rows]


def run_days(config: Config, db: sa.Engine, clock: Clock, days: float, *, step: timedelta = timedelta(hours=1)) -> None:
    end = clock.now + timedelta(days=days)
    while clock.now < end:
        clock.now += step
        tick(config, db, clock)


@pytest.fixture
def started(config: Config, db: sa.Engine) -> Clock:
    """The sequence seen at START; ada joins five minutes later and has her welcome."""
    clock = Clock(START)
    tick(config, db, clock)
    join(db, "ada@example.org", START + timedelta(minutes=5))
    clock.now = START + timedelta(minutes=10)
    tick(config, db, clock)
    return clock


def test_unsubscribe_mid_sequence_stops_it(config: Config, db: sa.Engine, started: Clock,
                                           smtp_server: SMTPServer) -> None:
    """A reader who leaves on day 1 gets nothing more, and is shown as taken out."""
    run_days(config, db, started, 1)
    subs.remove(db, "ada@example.org", now=started.now)
    run_days(config, db, started, 13)
    assert subjects_to(smtp_server, "ada@example.org") == ["Welcome to Quiet Hours"]
    (view,) = sequences.overview(config, db)
    assert view.stopped == 1 and view.readers == 1


def test_an_unsubscribe_before_the_claim_wins_over_a_queued_step(config: Config, db: sa.Engine, started: Clock,
                                                                 smtp_server: SMTPServer) -> None:
    """A step already in the ledger is skipped when its reader left before a sender claimed it."""
    started.now = START + timedelta(days=3, hours=9)
    report = sequences.run(config, db, now=started.now)  # day 3 queued, not sent yet
    assert report.queued == {"welcome": 1}
    subs.remove(db, "ada@example.org", now=started.now)
    deliver_queued(config, db, stop=threading.Event(), clock=started)
    assert subjects_to(smtp_server, "ada@example.org") == ["Welcome to Quiet Hours"]
    with db.connect() as conn:
        states = conn.execute(sa.select(deliveries.c.state).order_by(deliveries.c.id)).scalars().all()
    assert states == ["sent", "skipped"]


def test_runs_again_and_again_never_send_a_step_twice(config: Config, db: sa.Engine, started: Clock,
                                                      smtp_server: SMTPServer) -> None:
    """Running the job many times at one instant, and after the end, adds no second copy."""
    for _ in range(5):
        tick(config, db, started)
    run_days(config, db, started, 15, step=timedelta(hours=6))
    for _ in range(3):
        tick(config, db, started)
    assert sorted(subjects_to(smtp_server, "ada@example.org")) == sorted(t for t, _d in STEPS.values())


def test_a_step_added_later_reaches_those_who_have_not_passed_it(config: Config, db: sa.Engine, started: Clock,
                                                                 smtp_server: SMTPServer) -> None:
    """Added on day 4: a day-5 step reaches ada, a day-2 step (her day had passed) does not."""
    run_days(config, db, started, 4)
    folder = config.path_of("sequences.folder") / "welcome"
    (folder / "day-5.md").write_text(_step("Day five", "5d"))
    (folder / "day-2.md").write_text(_step("Day two", "2d"))
    run_days(config, db, started, 10)
    assert sent_steps(db, "ada@example.org") == ["welcome", "day-3", "day-5", "day-10"]


def test_a_removed_step_is_skipped(config: Config, db: sa.Engine, started: Clock, smtp_server: SMTPServer) -> None:
    """Day 3 deleted on day 1: ada goes from the welcome to day 10."""
    run_days(config, db, started, 1)
    (config.path_of("sequences.folder") / "welcome" / "day-3.md").unlink()
    run_days(config, db, started, 13)
    assert sent_steps(db, "ada@example.org") == ["welcome", "day-10"]


def test_a_changed_text_goes_to_those_who_have_not_had_the_step(config: Config, db: sa.Engine, started: Clock,
                                                                smtp_server: SMTPServer) -> None:
    """Day 10 rewritten on day 4 reaches ada in its new words; her welcome, rewritten too, is not sent again."""
    run_days(config, db, started, 4)
    folder = config.path_of("sequences.folder") / "welcome"
    (folder / "day-10.md").write_text(_step("Ten days in, revised", "10d"))
    (folder / "welcome.md").write_text(_step("Welcome, revised", "0"))
    run_days(config, db, started, 10)
    assert subjects_to(smtp_server, "ada@example.org") == [
        "Welcome to Quiet Hours", "Three habits for better sleep", "Ten days in, revised",
    ]


def test_the_overview_shows_who_is_at_which_step(config: Config, db: sa.Engine, started: Clock) -> None:
    """After day 3, ada stands at day-3; bea, who joined on day 2, at the welcome."""
    started.now = START + timedelta(days=2)
    join(db, "bea@example.org", started.now)
    run_days(config, db, started, 2)
    (view,) = sequences.overview(config, db)
    assert {s.name: s.at_step for s in view.steps} == {"welcome": 1, "day-3": 1, "day-10": 0}
    shown = {r.email: r.last_step for r in sequences.readers(config, db, "welcome")}
    assert shown == {"ada@example.org": "day-3", "bea@example.org": "welcome"}


def test_a_sequence_on_a_topic_starts_for_readers_of_that_topic(config: Config, db: sa.Engine,
                                                                smtp_server: SMTPServer) -> None:
    """trigger = "topic": a reader carrying the tag enters it, one without does not."""
    write_sequence(config.root, "sleep", {"intro": ("Sleep notes begin", "0")})
    (config.path_of("sequences.folder") / "sleep" / "sequence.toml").write_text('trigger = "topic"\ntopic = "Sleep"\n')
    clock = Clock(START)
    tick(config, db, clock)
    subs.add(db, "cy@example.org", tags=["sleep"], now=START + timedelta(minutes=1))
    subs.add(db, "di@example.org", now=START + timedelta(minutes=1))
    clock.now += timedelta(minutes=2)
    tick(config, db, clock)
    assert "Sleep notes begin" in subjects_to(smtp_server, "cy@example.org")
    assert "Sleep notes begin" not in subjects_to(smtp_server, "di@example.org")


def test_imported_readers_enter_only_a_sequence_that_asks_for_them(config: Config, db: sa.Engine,
                                                                   smtp_server: SMTPServer) -> None:
    """An import does not mail the welcome; a sequence with trigger = "imported" and its tag does."""
    write_sequence(config.root, "moved", {"hello": ("You moved with us", "0")})
    (config.path_of("sequences.folder") / "moved" / "sequence.toml").write_text(
        'trigger = "imported"\ntag = "from-substack"\n'
    )
    clock = Clock(START)
    tick(config, db, clock)
    lines = ["email,name\n", "eve@example.org,Eve\n"]
    subs.import_csv(db, iter(lines), now=START + timedelta(minutes=1), origin="list.csv", tags=["from-substack"])
    clock.now += timedelta(minutes=2)
    tick(config, db, clock)
    assert subjects_to(smtp_server, "eve@example.org") == ["You moved with us"]


def test_a_step_without_a_delay_is_named_and_the_others_still_run(config: Config, db: sa.Engine,
                                                                  smtp_server: SMTPServer) -> None:
    """A broken step file stops its own sequence only, with the file and what to write."""
    write_sequence(config.root, "broken", {"first": ("First", "0")})
    (config.path_of("sequences.folder") / "broken" / "first.md").write_text("---\ntitle: First\n---\n\nText\n")
    clock = Clock(START)
    tick(config, db, clock)
    join(db, "fay@example.org", START + timedelta(minutes=1))
    clock.now += timedelta(minutes=2)
    report = tick(config, db, clock)
    assert report.problems == [
        "sequence 'broken' not run: sequences/broken/first.md:1: front matter has no delay; "
        "add a line like 'delay: 3d' (0 for at once)"
    ]
    assert subjects_to(smtp_server, "fay@example.org") == ["Welcome to Quiet Hours"]


@pytest.mark.parametrize(("raw", "message"), [
    ("three days", "delay 'three days' is not a delay; write 0 (at once), 3d, 12h or 90m"),
    ("-3d", "delay '-3d' is not a delay"),
    ("99999d", "delay '99999d' is not a delay"),
    ("5000d", "is more than ten years"),
])
def test_a_bad_delay_is_refused_with_the_line(config: Config, raw: str, message: str) -> None:
    """The delay's own line is named."""
    text = f"---\ntitle: Hello\ndelay: {raw}\n---\n\nBody\n"
    with pytest.raises(ContentError, match=r"^s\.md:3: ") as caught:
        files.parse_step(text, name="s", source="s.md", config=config)
    assert message in str(caught.value)


def test_an_unknown_key_in_a_step_is_named_as_in_an_article(config: Config) -> None:
    """The article parser's checks apply to a step, line numbers included."""
    text = "---\ntitle: Hello\ndelay: 1d\ntitel: x\n---\n\nBody\n"
    with pytest.raises(ContentError, match=r"^s\.md:4: unknown front matter key 'titel'"):
        files.parse_step(text, name="s", source="s.md", config=config)


def cli_run(config: Config, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config.root / "config.toml"), "sequences", *args])


def test_cli_list_names_each_sequence_with_its_steps(config: Config, db: sa.Engine, started: Clock) -> None:
    """`publisher sequences list`: trigger, readers and steps with their delays."""
    result = cli_run(config, "list")
    assert result.exit_code == 0, result.output
    assert result.output == (
        "welcome: starts when a reader confirms (becomes an active reader); 1 reader(s); "
        "steps: welcome (at once), day-3 (day 3), day-10 (day 10)\n"
    )


def test_cli_show_tells_who_is_at_which_step(config: Config, db: sa.Engine, started: Clock) -> None:
    """`publisher sequences show NAME` counts readers per step and lists them with their next step."""
    result = cli_run(config, "show", "welcome")
    assert result.exit_code == 0, result.output
    assert "   at once  welcome                   1 at this step   Welcome to Quiet Hours" in result.output
    assert "    day 10  day-10                    0 at this step" in result.output
    assert "ada@example.org: at welcome, next 2026-03-05 09:00 Europe/Berlin" in result.output


def test_cli_show_of_an_unknown_sequence_names_the_known_ones(config: Config, db: sa.Engine) -> None:
    """A typo is told with the sequences there are, exit code 1."""
    result = cli_run(config, "show", "welcom")
    assert result.exit_code == 1
    assert "no sequence 'welcom' in sequences/ (sequences: welcome)" in result.output


def test_the_event_that_starts_a_sequence_reaches_a_webhook_too(config: Config, db: sa.Engine,
                                                                 smtp_server: SMTPServer) -> None:
    """A double opt-in confirmation feeds both: the endpoint gets subscriber.confirmed and
    sequence.started, and the reader gets the welcome."""
    received: list[dict[str, object]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        access.add_endpoint(db, url, ["subscriber.confirmed", "sequence.started"], now=START, allow_private=True)
        clock = Clock(START)
        tick(config, db, clock)
        reader = subs.add(db, "gus@example.org", status=SubscriberStatus.PENDING, now=START)
        subs.mark_confirm_sent(db, reader.id, now=START, interval=timedelta(hours=1))
        assert subs.confirm(db, reader.id, sent_at=START, now=START + timedelta(minutes=1))
        clock.now += timedelta(minutes=2)
        tick(config, db, clock)
        hooks.deliver_due(config, db, now=clock.now)
    finally:
        server.shutdown()
        server.server_close()
    assert [m["type"] for m in received] == ["subscriber.confirmed", "sequence.started"]
    assert received[1]["data"] == {"sequence": "welcome", "id": reader.id, "email": "gus@example.org",
                                   "started_at": "2026-03-02T07:01:00+00:00"}
    assert subjects_to(smtp_server, "gus@example.org") == ["Welcome to Quiet Hours"]


def test_the_daemon_job_enrols_and_sends(config: Config, db: sa.Engine, smtp_server: SMTPServer) -> None:
    """`jobs.run_sequences`, as the scheduler calls it every minute, queues and delivers on its clock."""
    clock = Clock(START)
    path = str(config.root / "config.toml")
    jobs.register(path, jobs.Runtime(config=config, db=db, clock=clock))
    assert jobs.run_sequences(path) == 0
    join(db, "hal@example.org", START + timedelta(seconds=30))
    clock.now += timedelta(minutes=1)
    assert jobs.run_sequences(path) == 1
    assert subjects_to(smtp_server, "hal@example.org") == ["Welcome to Quiet Hours"]


KILLED_SENDER = """
import sys, threading
from datetime import UTC, datetime
from publisher.config import load_config
from publisher.delivery.sending import deliver_queued
from publisher.services import sequences
from publisher.store import open_store

config = load_config(sys.argv[1], env={"PUBLISHER_SECRET": "k" * 40})
db = open_store(config.store_url)
sequences.run(config, db, now=datetime.now(UTC))
deliver_queued(config, db, stop=threading.Event())
"""


@pytest.mark.slow
def test_kill_9_during_a_steps_send_then_resume_sends_no_step_twice(config: Config, db: sa.Engine,
                                                                    smtp_server: SMTPServer) -> None:
    """A sender killed with SIGKILL mid-welcome: the next run queues nothing again, the
    resume sends the rest, and a second copy reaches only a row flagged uncertain."""
    smtp_server.delay = 0.02
    begin = datetime.now(UTC) - timedelta(hours=1)
    sequences.run(config, db, now=begin)
    readers = [f"reader{i}@example.org" for i in range(150)]
    for email in readers:
        join(db, email, begin + timedelta(minutes=1))
    log = config.root / "sender.log"
    with log.open("wb") as out:
        sender = subprocess.Popen([sys.executable, "-c", KILLED_SENDER, str(config.root / "config.toml")],
                                  stdout=out, stderr=out)
    deadline = time.monotonic() + 60
    while len(smtp_server.messages) < 40 and time.monotonic() < deadline and sender.poll() is None:
        time.sleep(0.02)
    sender.send_signal(signal.SIGKILL)
    sender.wait()
    at_kill = len(smtp_server.messages)
    assert 0 < at_kill < len(readers), log.read_text()

    now = datetime.now(UTC)
    again = sequences.run(config, db, now=now)
    assert again.queued == {"welcome": 0}
    recovered = delivering.recover(config, db, now=now)
    deliver_queued(config, db, stop=threading.Event())
    counts = smtp_server.counts()
    assert sorted(counts) == sorted(readers)
    with db.connect() as conn:
        handed = conn.execute(sa.select(sa.func.count()).select_from(sequence_sends)).scalar_one()
        rows = conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar_one()
        uncertain = set(conn.execute(sa.select(deliveries.c.email).where(deliveries.c.uncertain.is_(True))).scalars())
    assert handed == rows == len(readers)
    doubles = {email for email, n in counts.items() if n > 1}
    assert doubles <= uncertain
    assert len(uncertain) <= recovered.count
    print(f"killed after {at_kill} copies; {recovered.count} rows recovered as uncertain; "
          f"{len(doubles)} reader(s) got a second copy")


def test_a_steps_issue_cannot_be_sent_to_the_whole_list(config: Config, db: sa.Engine, started: Clock) -> None:
    """Sending a step's issue as an issue (the API's or the desk's send) is refused: nobody
    else gets the welcome by that door."""
    join(db, "ivy@example.org", START - timedelta(days=30))  # on the list, not in the sequence
    with db.connect() as conn:
        issue_id = conn.execute(sa.select(issues.c.id).where(issues.c.kind == "sequence")).scalar_one()
    with pytest.raises(InvalidRequest, match="is step 'welcome/welcome' of a sequence"):
        issue_service.send_issue(config, db, issue_id, now=started.now)
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar_one() == 1


def test_a_tag_added_later_starts_a_topic_sequence_and_tells_webhooks(config: Config, db: sa.Engine,
                                                                      smtp_server: SMTPServer) -> None:
    """A reader tagged "sleep" in the desk a week after joining enters the sleep sequence
    then; the event is queued for webhooks as subscriber.topic_joined."""
    write_sequence(config.root, "sleep", {"intro": ("Sleep notes begin", "0")})
    (config.path_of("sequences.folder") / "sleep" / "sequence.toml").write_text('trigger = "topic"\ntopic = "sleep"\n')
    access.add_endpoint(db, "http://127.0.0.1:9/hook", ["subscriber.topic_joined"], now=START, allow_private=True)
    clock = Clock(START)
    tick(config, db, clock)
    reader = join(db, "jo@example.org", START + timedelta(minutes=1))
    clock.now = START + timedelta(days=7)
    subs.edit(db, reader, tags=["Sleep"], now=clock.now)
    clock.now += timedelta(minutes=1)
    tick(config, db, clock)
    assert subjects_to(smtp_server, "jo@example.org").count("Sleep notes begin") == 1
    with db.connect() as conn:
        payloads = conn.execute(sa.select(webhook_messages.c.payload)).scalars().all()
    assert [json.loads(p)["data"]["detail"] for p in payloads] == ["sleep"]


@pytest.mark.slow
def test_the_same_run_on_postgresql(tmp_path: Path, smtp_server: SMTPServer) -> None:
    """On PostgreSQL too: enrolment, the day-3 step at the reader's hour, one copy each,
    and an unsubscribe that stops the rest."""
    with postgres_server() as server:
        url = fresh_database(server, "sequences")
        (tmp_path / "content").mkdir()
        (tmp_path / "config.toml").write_text(CONFIG.format(port=smtp_server.port) + f'\n[store]\nurl = "{url}"\n')
        write_sequence(tmp_path)
        config = load_config(tmp_path / "config.toml", env={"PUBLISHER_SECRET": "k" * 40})
        db = open_store(config.store_url)
        try:
            clock = Clock(START)
            tick(config, db, clock)
            join(db, "pat@example.org", START + timedelta(minutes=1), zone="Asia/Tokyo")
            join(db, "quin@example.org", START + timedelta(minutes=1))
            run_days(config, db, clock, 4, step=timedelta(hours=1))
            subs.remove(db, "quin@example.org", now=clock.now)
            run_days(config, db, clock, 8, step=timedelta(hours=2))
            for _ in range(3):
                tick(config, db, clock)
        finally:
            db.dispose()
    assert subjects_to(smtp_server, "pat@example.org") == [t for t, _d in STEPS.values()]
    assert subjects_to(smtp_server, "quin@example.org") == [t for t, _d in list(STEPS.values())[:2]]


def test_without_a_postal_address_steps_wait_and_readers_still_enter(config: Config, db: sa.Engine,
                                                                     smtp_server: SMTPServer) -> None:
    """As for any send through a real provider: no step leaves without the sender's postal
    address; readers are enrolled meanwhile and get their welcome once it is set."""
    toml = config.root / "config.toml"
    toml.write_text(toml.read_text().replace('postal_address = "1 Test Street"\n', ""))
    bare = load_config(toml, env={"PUBLISHER_SECRET": "k" * 40})
    clock = Clock(START)
    tick(bare, db, clock)
    join(db, "kim@example.org", START + timedelta(minutes=1))
    clock.now += timedelta(minutes=2)
    report = tick(bare, db, clock)
    assert report.enrolled == {"welcome": 1} and report.total_queued == 0
    assert report.problems[0].startswith("sequences hold their steps: config.toml: [publication] postal_address")
    assert smtp_server.messages == []
    clock.now += timedelta(minutes=1)
    tick(config, db, clock)
    assert subjects_to(smtp_server, "kim@example.org") == ["Welcome to Quiet Hours"]


def test_a_reader_whose_last_step_was_removed_is_shown_so(config: Config, db: sa.Engine, started: Clock) -> None:
    """The welcome deleted after ada had it: she is counted at "a step since removed"."""
    (config.path_of("sequences.folder") / "welcome" / "welcome.md").unlink()
    (view,) = sequences.overview(config, db)
    assert (view.elsewhere, view.waiting, view.readers) == (1, 0, 1)
    assert [s.at_step for s in view.steps] == [0, 0]


# Started by an import, limited to a segment


def write_moved(config: Config, settings: str = 'trigger = "imported"\n') -> None:
    """A sequence "moved" whose welcome goes at once and whose note follows on day 3."""
    write_sequence(config.root, "moved", {"hello": ("You moved with us", "0"), "day-3": ("Settling in", "3d")})
    (config.path_of("sequences.folder") / "moved" / "sequence.toml").write_text(settings)


def import_file(config: Config, tmp: Path, rows: str, *args: str) -> Result:
    csv = tmp / "list.csv"
    csv.write_text("email,name,status\n" + rows)
    return CliRunner().invoke(cli, ["--config", str(config.root / "config.toml"), "subscribers", "import",
                                    str(csv), *args])


def test_import_with_a_sequence_starts_it_for_the_new_active_readers_only(
    config: Config, db: sa.Engine, tmp_path: Path, smtp_server: SMTPServer,
) -> None:
    """--sequence lets in the readers the import adds as active: not those already on the
    list, not unsubscribed rows; over 14 days each new one gets the welcome and day 3 once."""
    write_moved(config)
    clock = Clock(datetime.now(UTC))  # the command imports at the real time
    join(db, "known@example.org", clock.now - timedelta(days=1))
    rows = ("new@example.org,New,subscribed\nknown@example.org,Known,subscribed\n"
            "gone@example.org,Gone,unsubscribed\n")
    done = import_file(config, tmp_path, rows, "--sequence", "moved")
    assert done.exit_code == 0, done.output
    assert "sequence moved: 1 new active reader(s)" in done.output
    end = clock.now + timedelta(days=14)
    clock.now += timedelta(minutes=1)
    tick(config, db, clock)  # the welcome, at once
    assert subjects_to(smtp_server, "new@example.org") == ["You moved with us"]
    while clock.now < end:  # then the days, twice a day (each run is idempotent)
        clock.now += timedelta(hours=12)
        tick(config, db, clock)
    assert subjects_to(smtp_server, "new@example.org") == ["You moved with us", "Settling in"]
    assert subjects_to(smtp_server, "known@example.org") == []
    assert subjects_to(smtp_server, "gone@example.org") == []


def test_an_imported_sequence_without_a_tag_waits_for_the_flag(config: Config, db: sa.Engine, tmp_path: Path,
                                                                smtp_server: SMTPServer) -> None:
    """A plain import (no --sequence) starts no imported sequence that names no tag."""
    write_moved(config)
    clock = Clock(datetime.now(UTC))
    tick(config, db, clock)
    assert import_file(config, tmp_path, "eve@example.org,Eve,subscribed\n").exit_code == 0
    clock.now += timedelta(hours=1)
    tick(config, db, clock)
    assert subjects_to(smtp_server, "eve@example.org") == []


def test_an_unknown_sequence_is_refused_before_anything_is_imported(config: Config, db: sa.Engine,
                                                                     tmp_path: Path) -> None:
    """A name that is no sequence: exit 1, the known ones named, nobody imported."""
    done = import_file(config, tmp_path, "eve@example.org,Eve,subscribed\n", "--sequence", "mvoed")
    assert done.exit_code == 1
    assert "no sequence 'mvoed'" in done.output and "welcome" in done.output
    assert "Traceback" not in done.output
    assert subs.counts(db)["active"] == 0


def test_a_sequence_not_started_by_imports_is_refused_for_an_import(config: Config, db: sa.Engine,
                                                                     tmp_path: Path) -> None:
    """--sequence welcome (started by a confirmation) says what to write, and imports nobody."""
    done = import_file(config, tmp_path, "eve@example.org,Eve,subscribed\n", "--sequence", "welcome")
    assert done.exit_code == 1
    assert 'trigger = "imported"' in done.output and "Nothing was imported" in done.output
    assert subs.counts(db)["active"] == 0


def test_a_segment_limited_sequence_enrols_only_the_readers_it_holds(config: Config, db: sa.Engine,
                                                                      smtp_server: SMTPServer) -> None:
    """With segment = "europe", only a reader tagged europe as they would enter gets the welcome."""
    segments.save_segment(db, name="Europe", now=START, rules={
        "match": "all", "conditions": [{"field": "tag", "op": "has", "value": "europe"}]})
    (config.path_of("sequences.folder") / "welcome" / "sequence.toml").write_text('segment = "europe"\n')
    clock = Clock(START)
    tick(config, db, clock)
    subs.add(db, "eu@example.org", tags=["europe"], now=START + timedelta(minutes=1))
    subs.add(db, "us@example.org", tags=["americas"], now=START + timedelta(minutes=1))
    clock.now += timedelta(minutes=5)
    report = tick(config, db, clock)
    assert report.enrolled == {"welcome": 1}
    assert subjects_to(smtp_server, "eu@example.org") == ["Welcome to Quiet Hours"]
    assert subjects_to(smtp_server, "us@example.org") == []


def test_a_deleted_segment_holds_the_sequence_and_says_why(config: Config, db: sa.Engine,
                                                           smtp_server: SMTPServer) -> None:
    """Its segment deleted, a sequence enrols nobody and sends no step; run, overview and
    `sequences show` name the segment and what to do; saved again, the readers enter."""
    rules = {"match": "all", "conditions": [{"field": "tag", "op": "has", "value": "europe"}]}
    made = segments.save_segment(db, name="europe", now=START, rules=rules)
    (config.path_of("sequences.folder") / "welcome" / "sequence.toml").write_text('segment = "europe"\n')
    clock = Clock(START)
    tick(config, db, clock)
    segments.delete_segment(db, made.id)
    subs.add(db, "eu@example.org", tags=["europe"], now=START + timedelta(minutes=1))
    clock.now += timedelta(minutes=5)
    report = tick(config, db, clock)
    assert report.enrolled == {"welcome": 0}
    assert any("segment 'europe' no longer exists" in p for p in report.problems)
    assert smtp_server.messages == []
    (view,) = sequences.overview(config, db)
    assert "no longer exists" in view.held and view.segment == "europe"
    shown = CliRunner().invoke(cli, ["--config", str(config.root / "config.toml"), "sequences", "show", "welcome"])
    assert "held: " in shown.output and "segment 'europe'" in shown.output
    segments.save_segment(db, name="europe", now=clock.now, rules=rules)
    clock.now += timedelta(minutes=5)
    tick(config, db, clock)
    assert subjects_to(smtp_server, "eu@example.org") == ["Welcome to Quiet Hours"]


def test_unsubscribing_while_a_step_is_being_sent_gets_nothing_more(
    config: Config, db: sa.Engine, started: Clock, smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reader who leaves between the claim of their day-3 copy and its send: that copy,
    already handed out, goes once; day 10 never does, and they are shown as taken out."""
    real_claim = ledger.claim

    def claim_then_leave(*args: object, **kwargs: object) -> list[ledger.ClaimedRow]:
        rows = real_claim(*args, **kwargs)  # type: ignore[arg-type]
        if any(row.email == "ada@example.org" for row in rows):
            subs.remove(db, "ada@example.org", now=started.now)
        return rows

    monkeypatch.setattr(ledger, "claim", claim_then_leave)
    started.now = START + timedelta(days=3, hours=9)
    tick(config, db, started)
    run_days(config, db, started, 11, step=timedelta(hours=6))
    assert subjects_to(smtp_server, "ada@example.org") == ["Welcome to Quiet Hours", "Three habits for better sleep"]
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar_one() == 2
    (view,) = sequences.overview(config, db)
    assert view.stopped == 1


def test_a_step_goes_at_its_moment_not_at_the_next_minute(config: Config, db: sa.Engine,
                                                          smtp_server: SMTPServer) -> None:
    """After the minute job's run, the daemon wakes at the next step's moment (4 s away
    here), not a minute later: the step reaches the server a few seconds after it at most
    (rendering it and sending it, on a busy machine)."""
    write_sequence(config.root, "soon", {"first": ("First", "0"), "then": ("A minute later", "1m")})
    path = str(config.root / "config.toml")
    now = datetime.now(UTC)
    jobs.register(path, jobs.Runtime(config=config, db=db))
    sequences.run(config, db, now=now - timedelta(minutes=2))  # the sequences are first seen
    join(db, "ada@example.org", now - timedelta(seconds=56))
    clock = BackgroundScheduler(timezone=UTC)
    clock.start()
    scheduler.remember(path, clock)
    try:
        scheduler.run_sequences_on_time(path)
        assert subjects_to(smtp_server, "ada@example.org")[-1] in ("First", "Welcome to Quiet Hours")
        due = now + timedelta(seconds=4)
        deadline = time.monotonic() + 10
        while "A minute later" not in subjects_to(smtp_server, "ada@example.org") and time.monotonic() < deadline:
            time.sleep(0.05)
        arrived = datetime.now(UTC)
    finally:
        scheduler.forget(path)
        clock.shutdown(wait=True)
    assert "A minute later" in subjects_to(smtp_server, "ada@example.org")
    print(f"the step reached the server {(arrived - due).total_seconds():.2f} s after its moment")
    assert timedelta(0) <= arrived - due < timedelta(seconds=5), arrived - due
