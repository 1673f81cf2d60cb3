"""Welcome and drip sequences: enrolled from the event log, sent through the ledger once per
step and reader, at the reader's hour, against a real SMTP server, on a clock the test moves."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from fakes.smtp import SMTPServer

from publisher.config import Config, load_config
from publisher.delivery.sending import deliver_queued
from publisher.services import sequences
from publisher.store import open_store
from publisher.store import subscribers as subs

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
