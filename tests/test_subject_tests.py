"""Subject tests: the sample, the decision with its uncertainty, the release, and real sends."""

from __future__ import annotations

import dataclasses
import random
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.header import decode_header, make_header
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from fakes import SMTPServer
from store_support import BACKENDS, open_test_store

from publisher.config import Config, load_config, parse_config
from publisher.delivery.base import make_provider
from publisher.delivery.engine import deliver
from publisher.errors import InvalidRequest
from publisher.mail.mime import MessageTemplate
from publisher.mail.newsletter import Recipient
from publisher.models import RenderedIssue
from publisher.services import subject_stats
from publisher.services import subject_tests as service
from publisher.services.subject_stats import VariantFigures
from publisher.store import engagement as engagement_store
from publisher.store import ledger, open_store
from publisher.store import subject_tests as store
from publisher.store.engine import begin_write
from publisher.store.schema import deliveries, engagement, engagement_seen, subscribers

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
SECRET = "k" * 40
CONFIG = parse_config(
    '[publication]\ntitle = "T"\nurl = "https://example.org/"\n[newsletter]\nfrom = "a@example.org"\n',
    root=Path("."), env={},
)
ARTICLE = """---
title: Sleep and the Night Shift
date: 2026-12-01 08:00
---

Some words about sleep, with [a link](https://example.org/sleep/).
"""


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    engine = open_test_store(request.param, tmp_path)
    yield engine
    engine.dispose()


def add_readers(db: sa.Engine, count: int) -> None:
    with db.begin() as conn:
        conn.execute(
            sa.insert(subscribers),
            [
                {"email": f"r{n}@example.org", "name": "", "status": "active", "source": "t",
                 "created_at": NOW, "updated_at": NOW}
                for n in range(count)
            ],
        )


def issue_under_test(
    db: sa.Engine, readers: int, subjects: tuple[str, ...] = ("Sleep", "Why night shifts steal sleep"),
    *, sample: int = 20, metric: str = "clicks",
) -> int:
    """An issue with a subject test, its rows held and its sample queued (as `start` leaves it)."""
    add_readers(db, readers)
    issue = ledger.create_issue(
        db, key="tag:example.org,2026-12-01:/sleep", kind="article", slug="sleep", subject="Sleep",
        html="<html><body><p>Hello</p></body></html>", text="Hello", tag=None, status="draft", now=NOW,
    )
    with begin_write(db) as conn:
        store.write(conn, issue, subjects=subjects, sample_percent=sample, metric=metric, seed=12345,
                    decide_at=NOW + timedelta(hours=4), now=NOW)
    ledger.enqueue(db, issue, now=NOW, held=True)
    store.assign_sample(db, issue, now=NOW)
    return issue


def mark_sample_sent(db: sa.Engine, issue: int) -> dict[int, int]:
    with db.begin() as conn:
        conn.execute(
            sa.update(deliveries)
            .where(deliveries.c.issue_id == issue, deliveries.c.state == "queued")
            .values(state="sent", sent_at=NOW)
        )
    return store.sent_copies(db, issue)


def simulate_clicks(db: sa.Engine, issue: int, copies: dict[int, int], rates: list[float], seed: int = 7) -> None:
    """Each copy of variant v is clicked (and so opened) with probability rates[v], as a reader
    would, three times over; counted in aggregate as the app counts it, each copy once, no row
    naming a copy."""
    draw = random.Random(seed)
    with db.connect() as conn:
        keys = dict(conn.execute(
            sa.select(deliveries.c.id, deliveries.c.message_key).where(deliveries.c.id.in_(list(copies)))
        ).all())
    rows = []
    seen = []
    for delivery_id, variant in sorted(copies.items()):
        if draw.random() < rates[variant]:
            rows += [{"delivery_id": None, "issue_id": issue, "kind": "click", "link_id": 1,
                      "at": NOW + timedelta(minutes=30 + n), "machine": False, "reason": ""} for n in range(3)]
            digest = engagement_store.digest(issue, keys[delivery_id])
            seen += [{"issue_id": issue, "kind": kind, "link_id": link, "digest": digest, "variant": variant}
                     for kind, link in (("open", 0), ("click", 0), ("click", 1))]
    # A scanner that clicked every copy of the first subject: machines never count.
    rows += [{"delivery_id": None, "issue_id": issue, "kind": "click", "link_id": 1, "at": NOW,
              "machine": True, "reason": "scanner"} for d, v in copies.items() if v == 0]
    with db.begin() as conn:
        conn.execute(sa.insert(engagement), rows)
        if seen:
            conn.execute(sa.insert(engagement_seen), seen)


def states(db: sa.Engine, issue: int) -> Counter[tuple[str, int | None]]:
    with db.connect() as conn:
        return Counter(
            {(r.state, r.variant): int(r.n) for r in conn.execute(
                sa.select(deliveries.c.state, deliveries.c.variant, sa.func.count().label("n"))
                .where(deliveries.c.issue_id == issue)
                .group_by(deliveries.c.state, deliveries.c.variant)
            )}
        )


# --- the arithmetic -------------------------------------------------------------------------


def test_wilson_interval_is_the_textbook_one() -> None:
    """50 of 100 gives 40.4% to 59.6%; none of 10 gives 0% to 27.8% (never below 0)."""
    low, high = subject_stats.wilson(50, 100)
    assert (round(low, 4), round(high, 4)) == (0.4038, 0.5962)
    low, high = subject_stats.wilson(0, 10)
    assert low == 0.0 and round(high, 4) == 0.2775


def test_two_proportion_test_is_the_textbook_one() -> None:
    """45/100 against 30/100: z = 2.19, two-sided p = 0.028."""
    assert round(subject_stats.two_proportion_p(45, 100, 30, 100), 3) == 0.028


def test_too_few_copies_keep_the_first_subject() -> None:
    """Fewer than 50 copies of a variant: the first subject is kept, and the reason says so."""
    decision = subject_stats.decide([
        VariantFigures(0, "A", 40, 10, 1, "clicks"), VariantFigures(1, "B", 40, 30, 20, "clicks"),
    ])
    assert decision.winner == 0 and "too small a sample" in decision.reason


# --- the store's steps ----------------------------------------------------------------------


def test_sample_is_split_evenly_and_the_rest_held(db: sa.Engine) -> None:
    """20% of 1,000 readers: 100 per subject queued with their variant, 800 held."""
    issue = issue_under_test(db, 1000)
    assert states(db, issue) == Counter({("queued", 0): 100, ("queued", 1): 100, ("held", None): 800})


def test_sample_is_the_same_readers_on_every_draw(tmp_path: Path) -> None:
    """The draw is seeded by the issue: two stores with the same readers draw the same sample."""
    drawn = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        engine = open_store(f"sqlite:///{tmp_path / name / 'test.db'}")
        issue = issue_under_test(engine, 500)
        with engine.connect() as conn:
            drawn.append(sorted(conn.execute(
                sa.select(deliveries.c.email, deliveries.c.variant).where(
                    deliveries.c.issue_id == issue, deliveries.c.variant.is_not(None))
            ).all()))
        engine.dispose()
    assert drawn[0] == drawn[1] and len(drawn[0]) == 100


def test_the_better_subject_wins_and_goes_to_the_rest(db: sa.Engine, capsys: pytest.CaptureFixture[str]) -> None:
    """1,000 copies per subject, clicked at 3% and 6%: the second wins and goes to the rest.

    The same sample as 10,000 readers at 20% (benchmarks/subject_tests.py runs those), drawn
    from 2,500 at 80% so the store holds a quarter of the rows."""
    issue = issue_under_test(db, 2500, sample=80)
    copies = mark_sample_sent(db, issue)
    assert Counter(copies.values()) == Counter({0: 1000, 1: 1000})
    simulate_clicks(db, issue, copies, [0.03, 0.06])
    assert service.settle(CONFIG, db, now=NOW + timedelta(hours=3)) == []
    steps = service.settle(CONFIG, db, now=NOW + timedelta(hours=4))
    assert [s.step for s in steps] == ["decided", "released"]
    found = service.report(db, issue)
    assert found is not None and found.winner == 1
    a, b = found.figures
    assert "won by clicks" in found.reason
    assert states(db, issue)[("queued", 1)] == 500
    with capsys.disabled():
        print(f"\nsample of 2,000: A {a.clicks}/{a.sent} = {a.rate:.2%} "
              f"[{a.interval[0]:.2%}, {a.interval[1]:.2%}], B {b.clicks}/{b.sent} = {b.rate:.2%} "
              f"[{b.interval[0]:.2%}, {b.interval[1]:.2%}]; winner B by {b.rate - a.rate:.2%} "
              f"({found.reason})")


def test_a_tie_keeps_the_first_subject(db: sa.Engine) -> None:
    """5% against 5.5% on 1,000 copies each is a tie: the first subject goes to the rest, and why."""
    issue = issue_under_test(db, 2500, sample=80)
    copies = mark_sample_sent(db, issue)
    simulate_clicks(db, issue, copies, [0.05, 0.055])
    service.settle(CONFIG, db, now=NOW + timedelta(hours=4))
    found = service.report(db, issue)
    assert found is not None and found.winner == 0
    assert found.reason.startswith("a tie") and "first subject is kept" in found.reason
    assert states(db, issue)[("queued", 0)] == 500


def test_nothing_is_decided_before_its_time(db: sa.Engine) -> None:
    """Before the decision time every reader outside the sample stays held."""
    issue = issue_under_test(db, 1000)
    mark_sample_sent(db, issue)
    assert service.settle(CONFIG, db, now=NOW + timedelta(hours=3, minutes=59)) == []
    assert states(db, issue)[("held", None)] == 800


def test_a_send_stopped_before_its_rows_is_sampled_when_they_come(db: sa.Engine) -> None:
    """The process stopped after the test was kept and before its rows: nothing is sampled from
    nothing, and the next run that writes the rows samples them."""
    add_readers(db, 1000)
    issue = ledger.create_issue(
        db, key="tag:example.org,2026-12-01:/sleep", kind="article", slug="sleep", subject="Sleep",
        html="<p>Hi</p>", text="Hi", tag=None, status="draft", now=NOW,
    )
    with begin_write(db) as conn:
        store.write(conn, issue, subjects=("A", "B"), sample_percent=20, metric="clicks", seed=1,
                    decide_at=NOW + timedelta(hours=4), now=NOW)
    assert service.settle(CONFIG, db, now=NOW) == []
    ledger.enqueue(db, issue, now=NOW, held=True)
    assert [s.step for s in service.settle(CONFIG, db, now=NOW)] == ["sampled"]
    assert states(db, issue) == Counter({("queued", 0): 100, ("queued", 1): 100, ("held", None): 800})


def test_held_rows_keep_the_issue_open_and_are_cancelled_with_it(db: sa.Engine) -> None:
    """The sample sent does not finish the issue; cancelling it takes back the held rows too."""
    issue = issue_under_test(db, 1000)
    mark_sample_sent(db, issue)
    assert ledger.finish_issues(db, now=NOW) == []
    assert ledger.cancel_queued(db, issue, now=NOW) == 800


# --- real sends -----------------------------------------------------------------------------


def smtp_config(tmp_path: Path, port: int, *, analytics: bool = False, per_person: bool = True) -> Config:
    (tmp_path / "content").mkdir(exist_ok=True)
    (tmp_path / "content" / "2026-12-01-sleep.md").write_text(ARTICLE)
    (tmp_path / "config.toml").write_text(f"""
[publication]
title = "Subject Test"
url = "https://example.org/"
postal_address = "1 Test Street, Testville"

[newsletter]
from = "Tester <news@example.org>"

[delivery]
provider = "smtp"
concurrency = 2
batch_size = 20

[delivery.smtp]
host = "127.0.0.1"
port = {port}
security = "none"
""" + (f"\n[analytics]\nenabled = true\nper_person = {str(per_person).lower()}\n" if analytics else ""))
    return load_config(tmp_path / "config.toml", env={"PUBLISHER_SECRET": SECRET})


def subjects_received(server: SMTPServer) -> Counter[str]:
    return Counter(str(make_header(decode_header(m.parsed()["Subject"]))) for m in server.messages)


def send_all(config: Config, db: sa.Engine, now: datetime) -> None:
    provider = make_provider(config)
    try:
        deliver(config, db, provider, stop=threading.Event(), secret=SECRET, clock=lambda: now, linger=0)
    finally:
        provider.close()


def test_two_subjects_reach_an_smtp_server_then_the_winner(
    tmp_path: Path, smtp_server: SMTPServer
) -> None:
    """Over SMTP: the sample gets both subjects, half each; after the decision the rest get the winner's."""
    config = smtp_config(tmp_path, smtp_server.port)
    db = open_store(config.store_url)
    issue = issue_under_test(db, 200, ("Sleep", "Why night shifts steal sleep – and what helps"), sample=50)
    send_all(config, db, NOW)
    assert subjects_received(smtp_server) == Counter(
        {"Sleep": 50, "Why night shifts steal sleep – and what helps": 50}
    )
    copies = store.sent_copies(db, issue)
    simulate_clicks(db, issue, copies, [0.02, 0.30])
    service.settle(config, db, now=NOW + timedelta(hours=4))
    send_all(config, db, NOW + timedelta(hours=4))
    assert subjects_received(smtp_server) == Counter(
        {"Sleep": 50, "Why night shifts steal sleep – and what helps": 150}
    )
    assert max(smtp_server.counts().values()) == 1
    db.dispose()


def test_a_crash_between_decision_and_release_sends_each_reader_once(
    tmp_path: Path, smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies after the decision is kept: the next run releases the rest, each reader gets one copy."""
    config = smtp_config(tmp_path, smtp_server.port)
    db = open_store(config.store_url)
    issue = issue_under_test(db, 250, sample=40)
    send_all(config, db, NOW)
    simulate_clicks(db, issue, store.sent_copies(db, issue), [0.02, 0.30])

    def crash(*args: object, **kwargs: object) -> int:
        raise SystemExit("killed")

    monkeypatch.setattr(store, "release", crash)
    with pytest.raises(SystemExit):
        service.settle(config, db, now=NOW + timedelta(hours=4))
    monkeypatch.undo()
    found = store.get(db, issue)
    assert found is not None and found.decided_at is not None and found.released_at is None
    steps = service.settle(config, db, now=NOW + timedelta(hours=5))
    assert [s.step for s in steps] == ["released"] and steps[0].copies == 150
    assert service.settle(config, db, now=NOW + timedelta(hours=6)) == []
    send_all(config, db, NOW + timedelta(hours=6))
    assert len(smtp_server.messages) == 250
    assert set(smtp_server.counts().values()) == {1}
    db.dispose()


def test_a_reader_who_leaves_while_held_gets_nothing(tmp_path: Path, smtp_server: SMTPServer) -> None:
    """An unsubscribe during the wait wins: that reader's held copy is skipped at the claim."""
    config = smtp_config(tmp_path, smtp_server.port)
    db = open_store(config.store_url)
    issue = issue_under_test(db, 250, sample=40)
    with db.connect() as conn:
        held = conn.execute(
            sa.select(deliveries.c.email).where(deliveries.c.issue_id == issue, deliveries.c.state == "held")
        ).scalars().first()
    with db.begin() as conn:
        conn.execute(sa.update(subscribers).where(subscribers.c.email == held).values(status="unsubscribed"))
    send_all(config, db, NOW)
    service.settle(config, db, now=NOW + timedelta(hours=4))
    send_all(config, db, NOW + timedelta(hours=4))
    assert smtp_server.count(held) == 0 and len(smtp_server.messages) == 249
    db.dispose()


def test_a_template_under_another_subject_differs_in_its_subject_only() -> None:
    """The issue is encoded once per subject: the copies differ in the Subject header alone."""
    base = MessageTemplate.from_rendered(
        CONFIG, RenderedIssue(key="k", subject="First", html="<p>Hi</p>", text="Hi")
    )
    other = base.with_subject("Second ünïcode")

    who = Recipient(delivery_id=1, email="r@example.org", name="", unsubscribe_url="https://example.org/u",
                    message_id="<a@example.org>")
    one, two = base.message_bytes(who, NOW), other.message_bytes(who, NOW)
    assert b"Subject: First\r\n" in one and b"Subject: Second =?utf-8?b?w7xuw69jb2Rl?=\r\n" in two
    assert one.split(b"Subject:")[0] == two.split(b"Subject:")[0]
    assert one.split(b"\r\nDate:")[1] == two.split(b"\r\nDate:")[1]


# --- refused up front -----------------------------------------------------------------------


def refused(tmp_path: Path, readers: int, smtp_server: SMTPServer) -> str:
    config = smtp_config(tmp_path, smtp_server.port)
    db = open_store(config.store_url)
    add_readers(db, readers)
    plan = service.parse_plan(["Sleep", "Night shifts"], now=NOW)
    with pytest.raises(InvalidRequest) as caught:
        service.start(config, db, "sleep", plan, now=NOW)
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar_one() == 0
    db.dispose()
    return str(caught.value)


def test_a_sample_under_100_readers_is_refused(tmp_path: Path, smtp_server: SMTPServer) -> None:
    """20% of 300 readers is 60: refused with the reason, nothing queued."""
    message = refused(tmp_path, 300, smtp_server)
    assert "the sample would be 60 reader(s) (20% of 300)" in message and "at least 100" in message


def test_analytics_off_is_refused(tmp_path: Path, smtp_server: SMTPServer) -> None:
    """Without analytics nothing could be counted: refused, saying to turn them on (per-person ones not needed)."""
    message = refused(tmp_path, 1000, smtp_server)
    assert "turn on analytics to test subjects (analytics.enabled; per-person analytics are not needed)" in message


@pytest.mark.parametrize(
    ("subjects", "words"),
    [(["Only one"], "two to four"), (["A", "B", "C", "D", "E"], "two to four"),
     (["Same", "same"], "the same"), (["A", "  "], "empty")],
)
def test_bad_subject_lists_are_refused(subjects: list[str], words: str) -> None:
    """One subject, five, the same twice, or an empty one: each refused with what to do."""
    with pytest.raises(InvalidRequest, match=words):
        service.parse_plan(subjects, now=NOW)


def test_bad_waits_are_refused() -> None:
    """A wait that is not a duration, or under 10 minutes, is refused with examples."""
    for text in ("soon", "5m", "30d"):
        with pytest.raises(InvalidRequest, match="wait"):
            service.parse_wait(text)
    assert service.parse_wait("4h") == timedelta(hours=4)


# --- the faces ------------------------------------------------------------------------------


def test_start_sends_the_sample_through_the_service_and_holds_the_rest(
    tmp_path: Path, smtp_server: SMTPServer
) -> None:
    """`start` with analytics on: 1,000 readers, 100 per subject over SMTP, 800 held until the decision."""
    config = smtp_config(tmp_path, smtp_server.port, analytics=True)
    db = open_store(config.store_url)
    add_readers(db, 1000)
    plan = service.parse_plan(["Sleep", "Night shifts"], now=NOW)
    started = service.start(config, db, "sleep", plan, now=NOW)
    assert started.sample == {0: 100, 1: 100} and started.held == 800
    assert started.decide_at == NOW + timedelta(hours=4)
    send_all(config, db, NOW)
    assert subjects_received(smtp_server) == Counter({"Sleep": 100, "Night shifts": 100})
    with pytest.raises(InvalidRequest, match="have this issue already"):
        service.start(config, db, "sleep", plan, now=NOW)
    db.dispose()


def html_of(raw: bytes) -> str:
    for part in message_from_bytes(raw).walk():
        if part.get_content_type() == "text/html":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode()
    raise AssertionError("no HTML part")


def test_a_test_is_decided_with_aggregate_analytics_only(tmp_path: Path, smtp_server: SMTPServer) -> None:
    """Per-person analytics off: readers' clicks through the app count once per copy, by subject, and decide;
    a reader clicking three times counts once, a scanner's clicks never, and no kept request names a copy."""
    from urllib.parse import urlsplit

    from web_support import AppClient

    from publisher.web import create_app

    config = smtp_config(tmp_path, smtp_server.port, analytics=True, per_person=False)
    db = open_store(config.store_url)
    add_readers(db, 500)
    started = service.start(config, db, "sleep", service.parse_plan(["Sleep", "Night shifts"], now=NOW), now=NOW)
    send_all(config, db, NOW)
    by_subject: dict[str, list[str]] = {"Sleep": [], "Night shifts": []}
    for message in smtp_server.messages:
        html = html_of(message.data)
        link = next(chunk.split('"')[0] for chunk in html.split('href="')[1:] if "/c/" in chunk.split('"')[0])
        by_subject[str(message.parsed()["Subject"])].append(urlsplit(link).path)
    assert [len(v) for v in by_subject.values()] == [50, 50]
    client = AppClient(create_app(config, engine=db, clock=lambda: NOW + timedelta(hours=1)))
    reader = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}
    for path in by_subject["Night shifts"][:20]:
        for _ in range(3):
            assert client.get(path, headers=reader).status_code == 302
    for path in by_subject["Sleep"][:2]:
        client.get(path, headers=reader)
    for path in by_subject["Sleep"][:20]:  # a gateway that fetches every link it sees
        client.get(path, headers={"user-agent": "Mimecast Security Scanner"})
    service.settle(config, db, now=NOW + timedelta(hours=4))
    found = service.report(db, started.issue_id)
    assert found is not None and found.winner == 1, found
    assert [(f.sent, f.clicks, f.opens) for f in found.figures] == [(50, 2, 2), (50, 20, 20)]
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).where(engagement.c.delivery_id.is_not(None))).scalar() == 0
    db.dispose()


def test_the_command_line_starts_a_test_and_status_reports_it(tmp_path: Path, smtp_server: SMTPServer) -> None:
    """`publisher send SLUG --subject-test A --subject-test B` then `publisher status ISSUE`."""
    from click.testing import CliRunner

    from publisher.cli import cli

    config = smtp_config(tmp_path, smtp_server.port, analytics=True)
    db = open_store(config.store_url)
    add_readers(db, 1000)
    env = {"PUBLISHER_CONFIG": str(tmp_path / "config.toml"), "PUBLISHER_SECRET": SECRET}
    runner = CliRunner()
    sent = runner.invoke(cli, ["send", "sleep", "--subject-test", "Sleep", "--subject-test", "Night shifts",
                               "--sample", "30", "--wait", "2h", "--by", "opens", "--yes"], env=env)
    assert sent.exit_code == 0, sent.output
    assert "subject test, 300 reader(s) queued (150, 150 per subject); 700 wait for the winner" in sent.output
    assert len(smtp_server.messages) == 300
    shown = runner.invoke(cli, ["status", "sleep"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "subject test: 2 subjects to 30% of readers, chosen by opens" in shown.output
    assert "A 'Sleep': sent 150, opens 0, clicks 0, opens rate 0.0% (95% interval 0.0% to 2.5%)" in shown.output
    assert "700 reader(s) wait for the winner" in shown.output
    refused = runner.invoke(cli, ["send", "sleep", "--sample", "30", "--yes"], env=env)
    assert refused.exit_code == 2 and "go with --subject-test" in refused.output
    db.dispose()


def test_the_command_line_tells_the_decision_time_on_the_publications_clock(
    tmp_path: Path, smtp_server: SMTPServer
) -> None:
    """`publisher send --subject-test` says when the winner goes out in the publication's zone, not UTC."""
    import re

    from click.testing import CliRunner

    from publisher.cli import cli

    config = smtp_config(tmp_path, smtp_server.port, analytics=True)
    path = tmp_path / "config.toml"
    path.write_text(path.read_text().replace("postal_address", 'timezone = "Asia/Tokyo"\npostal_address', 1))
    db = open_store(config.store_url)
    add_readers(db, 1000)
    env = {"PUBLISHER_CONFIG": str(path), "PUBLISHER_SECRET": SECRET}
    sent = CliRunner().invoke(cli, ["send", "sleep", "--subject-test", "Sleep", "--subject-test", "Night shifts",
                                    "--sample", "30", "--wait", "2h", "--yes"], env=env)
    db.dispose()
    assert sent.exit_code == 0, sent.output
    assert re.search(r"wait for the winner at \d{4}-\d\d-\d\d \d\d:\d\d Asia/Tokyo \(", sent.output), sent.output
    assert "UTC" not in sent.output


def test_the_desk_issue_page_shows_each_subject_and_the_decision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue page: each subject's sent, opens, clicks, rate and interval, the winner and why."""
    import httpx
    from desk_support import add_users, quick_hashes, sign_in
    from web_support import live_server, make_publication

    from publisher.web import create_app

    quick_hashes(monkeypatch)
    config = make_publication(tmp_path)
    add_users(config)
    db = open_store(config.store_url)
    issue = issue_under_test(db, 2500, sample=80)
    simulate_clicks(db, issue, mark_sample_sent(db, issue), [0.03, 0.06])
    service.settle(config, db, now=NOW + timedelta(hours=4))
    with live_server(create_app(config)) as base, httpx.Client(base_url=base) as http:
        sign_in(http, "owner@example.org")
        page = http.get(f"/desk/issues/{issue}").text
    assert 'id="subject-test"' in page
    assert "Why night shifts steal sleep <strong>(winner)</strong>" in page
    assert "3.4%" in page and "2.4% to 4.7%" in page and "8.0%" in page
    assert "won by clicks: 8.0% against 3.4% for the first subject" in page
    db.dispose()


def test_the_desk_send_page_starts_a_subject_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The confirm page's "Test subjects first": two subjects to 20% now, the rest held, the issue page says when."""
    import httpx
    from desk_support import add_users, csrf_of, quick_hashes, sign_in
    from web_support import live_server, make_publication

    from publisher.web import create_app

    quick_hashes(monkeypatch)
    config = make_publication(tmp_path, extra="\n[analytics]\nenabled = true\nper_person = true\n")
    add_users(config)
    (tmp_path / "content").mkdir(exist_ok=True)
    (tmp_path / "content" / "2026-12-01-sleep.md").write_text(ARTICLE)
    db = open_store(config.store_url)
    add_readers(db, 1000)
    with live_server(create_app(config)) as base, httpx.Client(base_url=base) as http:
        sign_in(http, "editor@example.org")
        asked = http.post("/desk/articles/sleep/send", data={"csrf": csrf_of(http.get("/desk/articles/sleep").text)})
        assert 'id="subject-test-form"' in asked.text
        form = {"csrf": csrf_of(asked.text), "confirm": "1000", "subject_a": "Sleep", "subject_b": "Night shifts",
                "sample": "20", "wait_hours": "4", "by": "clicks"}
        done = http.post("/desk/articles/sleep/send", data=form)
        assert done.status_code == 303 and done.headers["location"].endswith("#subject-test")
        page = http.get(done.headers["location"]).text
    assert "The winner is chosen at" in page and "800 reader(s) wait for it" in page
    issue = int(done.headers["location"].split("/")[-1].split("?")[0])
    assert states(db, issue) == Counter({("queued", 0): 100, ("queued", 1): 100, ("held", None): 800})
    db.dispose()


def test_the_daemon_decides_at_the_time_and_sends_the_rest(tmp_path: Path, smtp_server: SMTPServer) -> None:
    """The daemon's delivery round, its clock moved past the decision: the winner goes to the other 150."""
    from publisher.schedule import jobs

    config = smtp_config(tmp_path, smtp_server.port, analytics=True)
    db = open_store(config.store_url)
    add_readers(db, 250)
    plan = service.parse_plan(["Sleep", "Night shifts"], sample_percent=40, now=NOW)
    started = service.start(config, db, "sleep", plan, now=NOW)
    clock = [NOW]
    key = str(tmp_path / "config.toml")
    jobs.register(key, jobs.Runtime(config=config, db=db, clock=lambda: clock[0]))
    jobs.deliver_due(key)
    assert subjects_received(smtp_server) == Counter({"Sleep": 50, "Night shifts": 50})
    simulate_clicks(db, started.issue_id, store.sent_copies(db, started.issue_id), [0.02, 0.40])
    clock[0] = NOW + timedelta(hours=3)
    jobs.deliver_due(key)
    assert len(smtp_server.messages) == 100
    clock[0] = NOW + timedelta(hours=4, minutes=1)
    jobs.deliver_due(key)
    assert subjects_received(smtp_server) == Counter({"Sleep": 50, "Night shifts": 200})
    assert set(smtp_server.counts().values()) == {1}
    assert ledger.status(db, started.issue_id)[0].status == "done"
    db.dispose()


def test_the_api_gives_the_same_numbers(tmp_path: Path) -> None:
    """GET /api/v1/stats/issues/{id}/engagement carries each subject's figures, the winner and why."""
    from web_support import AppClient, make_publication

    from publisher.services import access
    from publisher.web import create_app

    config = make_publication(tmp_path)
    db = open_store(config.store_url)
    issue = issue_under_test(db, 2500, sample=80)
    simulate_clicks(db, issue, mark_sample_sent(db, issue), [0.03, 0.06])
    service.settle(config, db, now=NOW + timedelta(hours=4))
    key = access.create_key(db, "stats", ["stats:read"], now=NOW).token
    answer = AppClient(create_app(config, engine=db)).get(
        f"/api/v1/stats/issues/{issue}/engagement", headers={"authorization": f"Bearer {key}"}
    )
    assert answer.status_code == 200, answer.text
    found = answer.json()["subject_test"]
    assert found["winner"] == 1 and found["metric"] == "clicks" and found["held"] == 0
    assert [(v["sent"], v["clicks"], v["rate"], v["low"]) for v in found["variants"]] == [
        (1000, 34, 0.034, 0.0244), (1000, 80, 0.08, 0.0647)
    ]
    assert "won by clicks" in found["reason"]
    db.dispose()


# --- on schedule and in front matter --------------------------------------------------------


RUN_AT = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


def deliveries_of(db: sa.Engine) -> int:
    with db.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar_one())


def run_due(tmp_path: Path, config: Config, db: sa.Engine, at: datetime) -> None:
    from publisher.schedule import jobs

    key = str(tmp_path / "config.toml")
    jobs.register(key, jobs.Runtime(config=config, db=db, clock=lambda: at))
    jobs.run_due_schedules(key)


def test_a_schedule_with_subjects_starts_as_a_test_at_its_time(tmp_path: Path, smtp_server: SMTPServer) -> None:
    """Scheduled with two subjects and a 2h wait: nothing is written until the time; then the sample
    goes out under both subjects, the rest held, the decision two hours after the start."""
    from publisher.services import scheduling

    config = smtp_config(tmp_path, smtp_server.port, analytics=True, per_person=False)
    db = open_store(config.store_url)
    add_readers(db, 500)
    plan = service.parse_plan(["Sleep", "Night shifts"], wait="2h", now=NOW)
    done = scheduling.schedule_send(config, db, "sleep", at="2026-12-08 09:00", tz_name="UTC", now=NOW,
                                    subject_test=plan)
    issue = done.schedule.issue_id
    assert deliveries_of(db) == 0
    assert service.settle(config, db, now=RUN_AT + timedelta(days=3)) == []  # planned: nothing to decide
    run_due(tmp_path, config, db, RUN_AT)
    assert subjects_received(smtp_server) == Counter({"Sleep": 50, "Night shifts": 50})
    assert states(db, issue)[("held", None)] == 400
    found = service.report(db, issue)
    assert found is not None and found.decide_at == RUN_AT + timedelta(hours=2)
    db.dispose()


def test_cancelling_a_schedule_drops_its_test(tmp_path: Path, smtp_server: SMTPServer) -> None:
    """A cancelled schedule leaves no test behind; scheduling again without subjects drops it too."""
    from publisher.services import scheduling

    config = smtp_config(tmp_path, smtp_server.port, analytics=True, per_person=False)
    db = open_store(config.store_url)
    add_readers(db, 500)
    plan = service.parse_plan(["Sleep", "Night shifts"], now=NOW)
    done = scheduling.schedule_send(config, db, "sleep", at="2026-12-08 09:00", tz_name="UTC", now=NOW,
                                    subject_test=plan)
    scheduling.cancel_schedule(db, done.schedule.id)
    assert store.get(db, done.schedule.issue_id) is None
    scheduling.schedule_send(config, db, "sleep", at="2026-12-08 09:00", tz_name="UTC", now=NOW, subject_test=plan)
    again = scheduling.schedule_send(config, db, "sleep", at="2026-12-08 10:00", tz_name="UTC", now=NOW)
    assert store.get(db, again.schedule.issue_id) is None
    db.dispose()


FRONT_TEST = """---
title: Sleep and the Night Shift
date: 2026-12-01 08:00
subjects: ["Sleep", "Why night shifts steal sleep"]
subject_sample: 50
subject_wait: 1h
subject_by: opens
---

Some words about sleep, with [a link](https://example.org/sleep/).
"""


def test_front_matter_subjects_run_the_test_when_the_schedule_starts(
    tmp_path: Path, smtp_server: SMTPServer
) -> None:
    """`subjects:` in the article's front matter: a schedule without flags starts as that test
    (half the readers, by opens, decided an hour after the start)."""
    from publisher.services import scheduling

    config = smtp_config(tmp_path, smtp_server.port, analytics=True, per_person=False)
    (tmp_path / "content" / "2026-12-01-sleep.md").write_text(FRONT_TEST)
    db = open_store(config.store_url)
    add_readers(db, 200)
    done = scheduling.schedule_send(config, db, "sleep", at="2026-12-08 09:00", tz_name="UTC", now=NOW)
    run_due(tmp_path, config, db, RUN_AT)
    assert subjects_received(smtp_server) == Counter({"Sleep": 50, "Why night shifts steal sleep": 50})
    found = service.report(db, done.schedule.issue_id)
    assert found is not None and found.metric == "opens" and found.sample_percent == 50
    assert found.decide_at == RUN_AT + timedelta(hours=1)
    db.dispose()


def test_an_auto_published_article_with_subjects_runs_its_test(tmp_path: Path, smtp_server: SMTPServer) -> None:
    """A new file with `send_at:` and `subjects:`, noticed by the daemon: at send_at it goes out as the test."""
    from publisher.schedule import jobs

    config = smtp_config(tmp_path, smtp_server.port, analytics=True, per_person=False)
    db = open_store(config.store_url)
    add_readers(db, 200)
    key = str(tmp_path / "config.toml")
    clock = [NOW]
    jobs.register(key, jobs.Runtime(config=config, db=db, clock=lambda: clock[0]))
    jobs.publish_new(key)
    (tmp_path / "content" / "2026-12-07-shifts.md").write_text(
        FRONT_TEST.replace("date: 2026-12-01 08:00", "date: 2026-12-07 08:00\nsend_at: 2026-12-08 09:00")
        .replace("title: Sleep and the Night Shift", "title: Shifts")
    )
    assert jobs.publish_new(key) == ["shifts"]
    assert len(smtp_server.messages) == 0
    clock[0] = RUN_AT
    jobs.run_due_schedules(key)
    assert subjects_received(smtp_server) == Counter({"Sleep": 50, "Why night shifts steal sleep": 50})
    db.dispose()


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ('subjects: ["Only one"]', ":4: subjects: give two to four subjects, not 1"),
        ("subjects: Sleep", ":4: subjects must be a list of two to four subjects"),
        ('subjects: ["A", "a"]', ":4: two of the subjects are the same"),
        ('subjects: ["A", "B"]\nsubject_wait: 5m', ":5: subject_wait '5m' must be between 10 minutes and 14 days"),
        ('subjects: ["A", "B"]\nsubject_sample: 0', ":5: subject_sample must be a percentage from 1 to 100"),
        ('subjects: ["A", "B"]\nsubject_by: likes', ":5: subject_by must be clicks or opens, not 'likes'"),
        ("subject_wait: 4h", ":4: subject_wait goes with subjects"),
    ],
)
def test_front_matter_subject_tests_are_checked_with_their_line(lines: str, expected: str) -> None:
    """Each wrong subject-test key is told with the file, its line and what to write."""
    from publisher.content.articles import parse_article
    from publisher.errors import ContentError

    text = f"---\ntitle: T\ndate: 2026-12-01 08:00\n{lines}\n---\n\nWords.\n"
    with pytest.raises(ContentError) as caught:
        parse_article(text, source="content/t.md", config=CONFIG)
    assert str(caught.value).startswith("content/t.md" + expected), str(caught.value)


def test_the_schedule_command_takes_subjects(tmp_path: Path, smtp_server: SMTPServer) -> None:
    """`publisher schedule SLUG --at ... --subject A --subject B --wait 2h`; wrong flags are usage errors."""
    from click.testing import CliRunner

    from publisher.cli import cli

    smtp_config(tmp_path, smtp_server.port, analytics=True, per_person=False)
    db = open_store(load_config(tmp_path / "config.toml", env={"PUBLISHER_SECRET": SECRET}).store_url)
    add_readers(db, 500)
    env = {"PUBLISHER_CONFIG": str(tmp_path / "config.toml"), "PUBLISHER_SECRET": SECRET}
    at = f"{datetime.now(UTC) + timedelta(days=2):%Y-%m-%d} 09:00"
    runner = CliRunner()
    done = runner.invoke(cli, ["schedule", "sleep", "--at", at, "--tz", "UTC", "--subject", "Sleep",
                               "--subject", "Night shifts", "--wait", "2h", "--by", "opens"], env=env)
    assert done.exit_code == 0, done.output
    assert "subject test: 2 subjects to 20% of readers, the winner by opens 2h after it starts" in done.output
    lone = runner.invoke(cli, ["schedule", "sleep", "--at", at, "--sample", "30"], env=env)
    assert lone.exit_code == 2 and "go with --subject" in lone.output
    short = runner.invoke(cli, ["schedule", "sleep", "--at", at, "--subject", "A", "--subject", "B",
                                "--wait", "5m"], env=env)
    assert short.exit_code == 2 and "--wait: wait '5m' must be between 10 minutes and 14 days" in short.output
    vague = runner.invoke(cli, ["schedule", "sleep", "--at", at, "--subject", "A", "--subject", "B",
                                "--decide-at", "tomorrow"], env=env)
    assert vague.exit_code == 2 and "--decide-at: decision time 'tomorrow' must look like" in vague.output
    db.dispose()


def test_a_schedule_with_subjects_is_refused_without_analytics(tmp_path: Path, smtp_server: SMTPServer) -> None:
    """Analytics off: the schedule is refused with the reason, and nothing is kept."""
    from publisher.services import scheduling
    from publisher.store import schedules

    config = smtp_config(tmp_path, smtp_server.port)
    db = open_store(config.store_url)
    add_readers(db, 500)
    plan = service.parse_plan(["Sleep", "Night shifts"], now=NOW)
    with pytest.raises(InvalidRequest, match="subject test refused: turn on analytics"):
        scheduling.schedule_send(config, db, "sleep", at="2026-12-08 09:00", tz_name="UTC", now=NOW,
                                 subject_test=plan)
    assert schedules.pending(db) == []
    db.dispose()


def report_of(**changes: object) -> service.TestReport:
    """A two-subject test deciding at 14:00 UTC on 7 December 2026, undecided unless changed."""
    figures = tuple(VariantFigures(n, subject, 150, 30, 3, "opens") for n, subject in enumerate(("Sleep", "Rest")))
    report = service.TestReport(
        issue_id=1, subjects=("Sleep", "Rest"), metric="opens", sample_percent=30,
        decide_at=datetime(2026, 12, 7, 14, 0, tzinfo=UTC), figures=figures, decided_at=None, winner=None,
        reason="", held=700, released_at=None,
    )
    return dataclasses.replace(report, **changes)  # type: ignore[arg-type]


def test_the_reports_decision_time_is_on_the_publications_clock() -> None:
    """`publisher status` says when the test decides as the author's watch does, zone named."""
    lines = service.report_lines(report_of(), ZoneInfo("America/New_York"))
    assert "  deciding at 2026-12-07 09:00 America/New York; 700 reader(s) wait for the winner" in lines


def test_the_reports_decided_time_is_on_the_publications_clock() -> None:
    """A decided test says when, on the publication's clock with its zone, not in UTC."""
    decided = report_of(decided_at=datetime(2026, 12, 7, 14, 1, tzinfo=UTC), winner=0, reason="A had more opens")
    lines = service.report_lines(decided, ZoneInfo("America/New_York"))
    assert "  decided 2026-12-07 09:01 America/New York: A had more opens" in lines
