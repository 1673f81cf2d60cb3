"""Bounces read from mail: one message in, one decision out, recorded once, against a real
send's ledger; and the classifier on a corpus of real bounce messages."""

from __future__ import annotations

import csv
import logging
import os
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import postfix_server
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from desk_support import add_users, csrf_of, quick_hashes, sign_in
from web_support import SECRET, live_server, make_publication

from publisher.cli import cli
from publisher.config import Config, load_config
from publisher.errors import Conflict, PublisherError
from publisher.mail import verp
from publisher.mail.bounce_parse import classify
from publisher.models import SubscriberStatus
from publisher.services.bounce_intake import apply_decision, take_message
from publisher.store import bounce_review, open_store, subscribers
from publisher.web import create_app

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
DOMAIN = "bounces.example.org"
CORPUS = Path(__file__).parent / "data" / "bounces" / "sisimai"


def dsn(to: str, recipient: str, *, status: str = "5.1.1", diagnostic: str = "550 5.1.1 User unknown",
        action: str = "failed", message_id: str = "<dsn-1@mx.example.net>") -> bytes:
    """A delivery status notification (RFC 3464) as Postfix writes one."""
    return textwrap.dedent(f"""\
        From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
        To: {to}
        Subject: Undelivered Mail Returned to Sender
        Message-ID: {message_id}
        Auto-Submitted: auto-replied
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=delivery-status; boundary="B"

        --B
        Content-Type: text/plain

        I'm sorry to have to inform you that your message could not be delivered.

        --B
        Content-Type: message/delivery-status

        Reporting-MTA: dns; mx.example.net

        Final-Recipient: rfc822; {recipient}
        Original-Recipient: rfc822; {recipient}
        Action: {action}
        Status: {status}
        Diagnostic-Code: smtp; {diagnostic}

        --B
        Content-Type: text/rfc822-headers

        From: Quiet Harbor <letters@example.org>
        To: {recipient}
        Subject: Rest

        --B--
        """).replace("\n", "\r\n").encode()


def publication(root: Path, addresses: tuple[str, ...], *, verp_on: bool = True) -> Config:
    """A publication whose readers were each sent "rest", with VERP on unless told (a real `publisher send`)."""
    config = make_publication(root, extra=f'\n[bounces]\nreturn_path_domain = "{DOMAIN}"\n' if verp_on else "")
    folder = root / "content"
    folder.mkdir(exist_ok=True)
    (folder / "2026-01-05-rest.md").write_text("---\ntitle: Rest\ndate: 2026-01-05 08:00\n---\n\nRest.\n",
                                               encoding="utf-8")
    engine = open_store(config.store_url)
    for address in addresses:
        subscribers.add(engine, address, now=NOW - timedelta(days=30))
    engine.dispose()
    result = CliRunner().invoke(cli, ["send", "rest", "--yes"], catch_exceptions=False, env={
        "PUBLISHER_CONFIG": str(root / "config.toml"), "PUBLISHER_SECRET": SECRET,
    })
    assert result.exit_code == 0, result.output
    return config


@pytest.fixture
def sent(tmp_path: Path) -> Config:
    """Ann, Bo and Cy, each sent "rest"."""
    return publication(tmp_path, ("ann@example.org", "bo@example.org", "cy@example.org"))


@pytest.fixture
def plain(tmp_path: Path) -> Config:
    """Ann, Bo and Cy, each sent "rest" with VERP off: bounces name the address alone."""
    return publication(tmp_path, ("ann@example.org", "bo@example.org", "cy@example.org"), verp_on=False)


def db(config: Config) -> sa.Engine:
    return open_store(config.store_url)


def return_path(config: Config, address: str) -> str:
    with db(config).connect() as conn:
        key = conn.execute(sa.text("SELECT message_key FROM deliveries WHERE email = :e"), {"e": address}).scalar()
    return verp.return_path(SECRET, str(key), DOMAIN)


def issue_of(config: Config, address: str) -> int:
    with db(config).connect() as conn:
        return int(conn.execute(sa.text("SELECT issue_id FROM deliveries WHERE email = :e"), {"e": address}).scalar())


def status(config: Config, address: str) -> SubscriberStatus:
    found = subscribers.find(db(config), address)
    assert found is not None
    return found.status


def test_hard_bounce_to_a_return_path_suppresses_its_reader(sent: Config) -> None:
    """A 5.1.1 to Ann's return path suppresses Ann at once and counts for the issue she was sent."""
    raw = dsn(return_path(sent, "ann@example.org"), "ann@example.org")
    intake = take_message(sent, db(sent), raw, now=NOW, source="pipe")
    assert (intake.outcome, intake.address, intake.issue_id) == ("suppressed", "ann@example.org",
                                                                 issue_of(sent, "ann@example.org"))
    assert status(sent, "ann@example.org") is SubscriberStatus.BOUNCED
    with db(sent).connect() as conn:
        events = conn.execute(sa.text("SELECT kind, issue_id FROM events WHERE provider = 'bounce-mail'")).all()
    assert [tuple(e) for e in events] == [("bounce", intake.issue_id)]


def test_the_return_path_wins_over_what_the_report_names(sent: Config) -> None:
    """A forwarding address in the report does not matter: the token names Bo."""
    raw = dsn(return_path(sent, "bo@example.org"), "bo.forwarded@elsewhere.example")
    intake = take_message(sent, db(sent), raw, now=NOW, source="pipe")
    assert (intake.outcome, intake.address) == ("suppressed", "bo@example.org")


def test_the_same_message_twice_is_one_decision(sent: Config) -> None:
    """An MTA's retry or a mailbox read again records nothing new."""
    raw = dsn(return_path(sent, "ann@example.org"), "ann@example.org")
    first = take_message(sent, db(sent), raw, now=NOW, source="pipe")
    second = take_message(sent, db(sent), raw, now=NOW + timedelta(minutes=5), source="imap")
    assert (first.outcome, second.outcome) == ("suppressed", "suppressed")
    with db(sent).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM bounce_messages")).scalar() == 1
        assert conn.execute(sa.text("SELECT count(*) FROM events WHERE provider = 'bounce-mail'")).scalar() == 1


def test_forged_return_path_is_ignored_and_logged(sent: Config, caplog: pytest.LogCaptureFixture) -> None:
    """A bounce to a return path signed with another secret suppresses no one."""
    with db(sent).connect() as conn:
        key = conn.execute(sa.text("SELECT message_key FROM deliveries WHERE email = 'ann@example.org'")).scalar()
    forged = verp.return_path("not-the-publication-secret-0000000000000", str(key), DOMAIN)
    with caplog.at_level(logging.WARNING):
        intake = take_message(sent, db(sent), dsn(forged, "ann@example.org"), now=NOW, source="pipe")
    assert intake.outcome == "forged"
    assert status(sent, "ann@example.org") is SubscriberStatus.ACTIVE
    assert "signature does not match" in caplog.text


def test_with_verp_off_the_reports_address_is_used(plain: Config) -> None:
    """A DSN to the From address names Cy in Final-Recipient; the issue is Cy's latest copy."""
    raw = dsn("letters@example.org", "cy@example.org")
    intake = take_message(plain, db(plain), raw, now=datetime.now(UTC), source="pipe")
    assert (intake.outcome, intake.address) == ("suppressed", "cy@example.org")
    assert intake.issue_id == issue_of(plain, "cy@example.org")


def test_with_verp_on_an_unsigned_bounce_waits_for_review(sent: Config) -> None:
    """A DSN naming Cy but carrying no return path token could be anyone's forgery: it acts
    on no one by itself, and waits for a person."""
    intake = take_message(sent, db(sent), dsn("letters@example.org", "cy@example.org"), now=NOW, source="pipe")
    assert (intake.outcome, intake.address) == ("review", "cy@example.org")
    assert "without a signed return path" in intake.detail
    assert status(sent, "cy@example.org") is SubscriberStatus.ACTIVE


def test_soft_bounces_suppress_at_the_third_within_the_window(sent: Config) -> None:
    """Two full mailboxes are counted; the third within 14 days stops the mail."""
    outcomes = []
    for day in range(3):
        raw = dsn(return_path(sent, "bo@example.org"), "bo@example.org", status="4.2.2",
                  diagnostic="452 4.2.2 Mailbox full", action="delayed", message_id=f"<soft-{day}@mx>")
        outcomes.append(take_message(sent, db(sent), raw, now=NOW + timedelta(days=day * 4), source="imap").outcome)
    assert outcomes == ["counted", "counted", "suppressed"]
    assert status(sent, "bo@example.org") is SubscriberStatus.BOUNCED


def test_soft_bounces_spread_wider_than_the_window_never_add_up(sent: Config) -> None:
    """Three soft bounces, each 15 days apart, leave the reader on the list."""
    for step in range(3):
        raw = dsn(return_path(sent, "bo@example.org"), "bo@example.org", status="4.2.2",
                  diagnostic="452 4.2.2 Mailbox full", message_id=f"<spread-{step}@mx>")
        later = NOW + timedelta(days=15 * step)
        assert take_message(sent, db(sent), raw, now=later, source="imap").outcome == "counted"
    assert status(sent, "bo@example.org") is SubscriberStatus.ACTIVE


def test_complaint_unsubscribes_and_counts_for_the_issue(plain: Config) -> None:
    """A real feedback report (ARF) naming Ann marks her complained, counted against the issue."""
    raw = (CORPUS / "arf-01.eml").read_bytes()
    original = classify(raw).addresses[0]
    raw = raw.replace(original.encode(), b"ann@example.org")
    intake = take_message(plain, db(plain), raw, now=datetime.now(UTC), source="imap")
    assert (intake.outcome, intake.address) == ("complaint", "ann@example.org")
    assert intake.issue_id == issue_of(plain, "ann@example.org")
    assert status(plain, "ann@example.org") is SubscriberStatus.COMPLAINED


def test_complaint_quoting_the_return_path_names_its_reader(sent: Config) -> None:
    """An ARF report whose quoted message keeps its Return-Path is signed by it: Bo complained."""
    raw = (CORPUS / "arf-01.eml").read_bytes()
    original = classify(raw).addresses[0]
    quoted = f"Return-Path: <{return_path(sent, 'bo@example.org')}>".encode()
    raw = raw.replace(original.encode(), b"bo@example.org").replace(b"Return-Path: <support@example.ed.jp>", quoted)
    intake = take_message(sent, db(sent), raw, now=NOW, source="imap")
    assert (intake.outcome, intake.address) == ("complaint", "bo@example.org")
    assert status(sent, "bo@example.org") is SubscriberStatus.COMPLAINED


def test_auto_reply_is_not_a_bounce(sent: Config) -> None:
    """A holiday notice sent to the return path changes nothing."""
    raw = textwrap.dedent(f"""\
        From: Ann <ann@example.org>
        To: {return_path(sent, "ann@example.org")}
        Subject: Out of office: Rest
        Auto-Submitted: auto-replied
        Message-ID: <holiday@example.org>

        I am away until Monday and will read your mail then.
        """).encode()
    intake = take_message(sent, db(sent), raw, now=NOW, source="imap")
    assert (intake.outcome, intake.address) == ("not_a_bounce", "ann@example.org")
    assert status(sent, "ann@example.org") is SubscriberStatus.ACTIVE


def test_bounce_for_a_reader_who_already_left_is_recorded(sent: Config) -> None:
    """A hard bounce for someone who unsubscribed keeps them off the list, says so, loses nothing."""
    subscribers.suppress(db(sent), "cy@example.org", "unsubscribe", provider="web", now=NOW)
    intake = take_message(sent, db(sent), dsn(return_path(sent, "cy@example.org"), "cy@example.org"),
                          now=NOW, source="pipe")
    assert intake.outcome == "suppressed"
    assert "was unsubscribed already" in intake.detail
    assert status(sent, "cy@example.org") is SubscriberStatus.BOUNCED


def test_bounce_for_an_address_not_on_the_list(sent: Config) -> None:
    """A DSN naming a stranger is recorded as such and changes no subscriber."""
    intake = take_message(sent, db(sent), dsn("letters@example.org", "stranger@example.net"), now=NOW, source="pipe")
    assert (intake.outcome, intake.address) == ("unknown_subscriber", "stranger@example.net")


def test_a_20_mb_message_gets_an_outcome_and_is_kept_capped(sent: Config) -> None:
    """A bounce quoting a 20 MB attachment is read at its top and kept to 256 KB."""
    raw = dsn(return_path(sent, "ann@example.org"), "ann@example.org").replace(
        b"--B--", b"--B\r\nContent-Type: application/octet-stream\r\n\r\n" + b"A" * 20_000_000 + b"\r\n--B--")
    intake = take_message(sent, db(sent), raw, now=NOW, source="imap")
    assert intake.outcome == "suppressed"
    (kept,) = bounce_review.for_subscriber(db(sent), 1, "ann@example.org")
    full = bounce_review.get(db(sent), kept.id, raw=True)
    assert full is not None and kept.size == len(raw) and len(full.raw) == bounce_review.RAW_LIMIT


def test_a_malformed_mime_tree_is_kept_for_review(sent: Config) -> None:
    """Broken boundaries and headers give an outcome, not a traceback."""
    raw = (b"From: MAILER-DAEMON@mx.example.net\r\nSubject: Undelivered Mail\r\n"
           b"Content-Type: multipart/report; boundary=\"never-closed\r\n\r\n--never\r\n\x00\xff\xfe garbage"
           b"\r\nContent-Type: message/delivery-status\r\n\r\nAction failed\r\n")
    intake = take_message(sent, db(sent), raw, now=NOW, source="imap")
    assert intake.outcome == "review"
    assert [m.id for m in bounce_review.pending(db(sent))] != []


def test_a_bounce_in_german_is_read(plain: Config) -> None:
    """A non-standard bounce in German, from a mail server without DSNs, is a hard bounce."""
    raw = textwrap.dedent("""\
        From: MAILER-DAEMON@mx.example.de
        To: letters@example.org
        Subject: Unzustellbar: Rest
        Message-ID: <de-1@mx.example.de>
        Content-Type: text/plain; charset=utf-8

        Ihre Nachricht konnte nicht zugestellt werden.

        <cy@example.org>: Benutzer unbekannt
        """).encode()
    intake = take_message(plain, db(plain), raw, now=NOW, source="imap")
    assert (intake.outcome, intake.address) == ("suppressed", "cy@example.org")


def test_review_queue_apply_and_only_once(sent: Config) -> None:
    """A message kept for review, applied as a hard bounce, cannot be applied again."""
    raw = textwrap.dedent("""\
        From: postmaster@mx.example.net
        To: letters@example.org
        Subject: Undeliverable
        Message-ID: <odd@mx.example.net>

        Something went wrong.
        """).encode()
    assert take_message(sent, db(sent), raw, now=NOW, source="imap").outcome == "review"
    (waiting,) = bounce_review.pending(db(sent))
    with db(sent).begin() as conn:  # a person can only apply when the message names someone
        conn.execute(sa.text("UPDATE bounce_messages SET address = 'bo@example.org' WHERE id = :i"), {"i": waiting.id})
    done = apply_decision(sent, db(sent), waiting.id, "hard", who="owner@example.org", now=NOW)
    assert done.outcome == "suppressed"
    assert status(sent, "bo@example.org") is SubscriberStatus.BOUNCED
    with pytest.raises(Conflict):
        apply_decision(sent, db(sent), waiting.id, "ignore", who="editor@example.org", now=NOW)
    assert bounce_review.pending(db(sent)) == []


def test_unreachable_store_raises_so_the_caller_can_retry(tmp_path: Path, sent: Config) -> None:
    """With the database gone, the intake raises PublisherError and records nothing."""
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.toml").write_text((sent.root / "config.toml").read_text(encoding="utf-8"), encoding="utf-8")
    config = load_config(broken / "config.toml", env={"PUBLISHER_SECRET": SECRET})
    engine = sa.create_engine(f"sqlite:///{broken / 'missing' / 'none.db'}")
    with pytest.raises(PublisherError, match="safe to hand the same message in again"):
        take_message(config, engine, dsn("letters@example.org", "ann@example.org"), now=NOW, source="pipe")


def test_corpus_of_real_bounces_is_classified_well_enough() -> None:
    """Sisimai's 557 public bounce messages: complaints are never mistaken, and most are right
    (benchmarks/bounce_classes.py prints precision and recall per class)."""
    with (CORPUS / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) >= 200
    confusion: Counter[tuple[str, str]] = Counter()
    for row in rows:
        kind = classify((CORPUS / row["file"]).read_bytes()).kind
        confusion[(row["class"], "not_a_bounce" if kind == "auto_reply" else kind)] += 1
    right = sum(n for (truth, got), n in confusion.items() if truth == got)
    said_complaint = sum(n for (_, got), n in confusion.items() if got == "complaint")
    assert confusion[("complaint", "complaint")] == said_complaint
    assert right / len(rows) >= 0.75


def ingest(config_dir: Path, data: bytes, *extra: str) -> subprocess.CompletedProcess[bytes]:
    """`publisher bounces ingest` as an MTA runs it: the message on standard input."""
    return subprocess.run(
        [sys.executable, "-m", "publisher", "bounces", "ingest", *extra], input=data, capture_output=True,
        timeout=120, check=False,
        env={**os.environ, "PUBLISHER_CONFIG": str(config_dir / "config.toml"), "PUBLISHER_SECRET": SECRET},
    )


def test_pipe_takes_a_bounce_and_exits_0(sent: Config) -> None:
    """A DSN piped in suppresses its reader; exit 0 tells the MTA it was delivered."""
    done = ingest(sent.root, dsn(return_path(sent, "ann@example.org"), "ann@example.org"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith("suppressed: ann@example.org")
    assert status(sent, "ann@example.org") is SubscriberStatus.BOUNCED


def test_pipe_names_the_reader_from_the_envelope_recipient(sent: Config) -> None:
    """With --recipient (Postfix's ${recipient}), a bounce whose headers lost the return path still names Bo."""
    raw = dsn("letters@example.org", "bo.forwarded@elsewhere.example")
    done = ingest(sent.root, raw, "--recipient", return_path(sent, "bo@example.org"))
    assert done.returncode == 0, done.stderr
    assert status(sent, "bo@example.org") is SubscriberStatus.BOUNCED


def test_pipe_exits_75_when_the_store_cannot_be_used(tmp_path: Path, sent: Config) -> None:
    """With the database out of reach the MTA is told to try again later (EX_TEMPFAIL)."""
    text = (sent.root / "config.toml").read_text(encoding="utf-8")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.toml").write_text(
        text.replace('url = "sqlite:///publisher.db"', 'url = "sqlite:///no/such/folder/publisher.db"'),
        encoding="utf-8")
    done = ingest(broken, dsn("letters@example.org", "ann@example.org"))
    assert done.returncode == 75, (done.stdout, done.stderr)
    assert b"hand the message in again" in done.stderr


def test_pipe_discards_a_message_over_25_mb_and_exits_0(sent: Config) -> None:
    """An oversized message is read to its end, dropped with a line on stderr, and not bounced back."""
    done = ingest(sent.root, dsn("letters@example.org", "ann@example.org") + b"x" * 27_000_000)
    assert done.returncode == 0
    assert b"discarded" in done.stderr
    assert status(sent, "ann@example.org") is SubscriberStatus.ACTIVE


def test_pipe_takes_noise_without_a_traceback(sent: Config) -> None:
    """Bytes that are no mail at all get an outcome and exit 0 (65 is never used)."""
    done = ingest(sent.root, bytes(range(256)) * 40)
    assert done.returncode == 0, done.stderr
    assert b"Traceback" not in done.stderr


@pytest.mark.skipif(bool(postfix_server.available()), reason=postfix_server.available() or "ready")
def test_a_real_postfix_bounce_suppresses_its_reader(tmp_path: Path) -> None:
    """Postfix on loopback refuses a reader whose mailbox is gone and writes its own DSN to the
    copy's return path; piped into `publisher bounces ingest`, it suppresses that reader."""
    config = publication(tmp_path, ("gone@mx.example.net", "here@example.org"))
    with postfix_server.PostfixServer(bounce_domain=DOMAIN) as mx:
        mx.submit(sender=return_path(config, "gone@mx.example.net"), recipient="gone@mx.example.net")
        report = mx.wait_for_bounce()
    assert b"Reporting-MTA: dns; mx.example.net" in report
    done = ingest(config.root, report)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith("suppressed: gone@mx.example.net (issue ")
    assert status(config, "gone@mx.example.net") is SubscriberStatus.BOUNCED
    assert status(config, "here@example.org") is SubscriberStatus.ACTIVE


UNCLEAR = textwrap.dedent("""\
    From: postmaster@mx.example.net
    To: letters@example.org
    Subject: Undeliverable
    Message-ID: <odd-desk@mx.example.net>

    Something went wrong with <bo@example.org> <script>alert(1)</script>.
    """).encode()


@pytest.fixture
def desk(sent: Config, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The app on loopback, with an owner, an editor and a viewer."""
    quick_hashes(monkeypatch)
    add_users(sent)
    with live_server(create_app(sent)) as base:
        yield base


def test_desk_review_queue_applies_a_decision(sent: Config, desk: str) -> None:
    """An editor opens a message kept for review, applies it as a hard bounce, and the
    reader's page shows the message and what was done."""
    intake = take_message(sent, db(sent), UNCLEAR, now=NOW, source="imap")
    assert (intake.outcome, intake.address) == ("review", "bo@example.org")
    with httpx.Client(base_url=desk) as http:
        sign_in(http, "editor@example.org")
        queue = http.get("/desk/subscribers/bounces")
        assert queue.status_code == 200 and "bo@example.org" in queue.text
        (waiting,) = bounce_review.pending(db(sent))
        page = http.get(f"/desk/subscribers/bounces/{waiting.id}")
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text and "<script>alert(1)" not in page.text
        done = http.post(f"/desk/subscribers/bounces/{waiting.id}",
                         data={"csrf": csrf_of(page.text), "decision": "hard"}, follow_redirects=True)
        assert done.status_code == 200 and "Nothing waits for review." in done.text
        subscriber = subscribers.find(db(sent), "bo@example.org")
        assert subscriber is not None and subscriber.status is SubscriberStatus.BOUNCED
        mine = http.get(f"/desk/subscribers/{subscriber.id}").text
    assert "Mail that came back" in mine
    assert "decided hard by editor@example.org" in mine.split("Mail that came back")[1]


def test_desk_decision_without_the_form_token_changes_nothing(sent: Config, desk: str) -> None:
    """A POST without the CSRF token is refused and the message still waits."""
    take_message(sent, db(sent), UNCLEAR, now=NOW, source="imap")
    (waiting,) = bounce_review.pending(db(sent))
    with httpx.Client(base_url=desk) as http:
        sign_in(http, "editor@example.org")
        refused = http.post(f"/desk/subscribers/bounces/{waiting.id}", data={"decision": "hard"})
    assert refused.status_code == 403
    assert [m.id for m in bounce_review.pending(db(sent))] == [waiting.id]


def test_desk_review_queue_is_not_for_viewers(sent: Config, desk: str) -> None:
    """A viewer cannot read the messages (they hold readers' addresses) nor decide."""
    with httpx.Client(base_url=desk) as http:
        sign_in(http, "viewer@example.org")
        assert http.get("/desk/subscribers/bounces").status_code == 403


def test_older_bounce_shapes_name_their_failed_address() -> None:
    """flufl.bounce's 110 non-standard and DSN bounces: each is read as a failure, nearly
    always naming the address that failed, and every temporary one is soft."""
    corpus = CORPUS.parent / "flufl"
    with (corpus / "labels.csv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["addresses"]]
    verdicts = [(r, classify((corpus / r["file"]).read_bytes())) for r in rows]
    assert all(v.kind in ("hard", "soft", "unknown") for _, v in verdicts)
    found = sum(bool(set(r["addresses"].lower().split()) & set(v.addresses)) for r, v in verdicts)
    assert found / len(rows) >= 0.95
    assert all(v.kind == "soft" for r, v in verdicts if r["expected"] == "soft")


def test_issue_page_says_what_came_back_by_mail(sent: Config, desk: str) -> None:
    """The issue's report counts the hard bounce, the soft one and the auto-reply its
    return paths received, soft ones included (no event records those)."""
    take_message(sent, db(sent), dsn(return_path(sent, "ann@example.org"), "ann@example.org"), now=NOW, source="pipe")
    soft = dsn(return_path(sent, "bo@example.org"), "bo@example.org", status="4.2.2",
               diagnostic="452 4.2.2 Mailbox full", message_id="<soft-issue@mx>")
    take_message(sent, db(sent), soft, now=NOW, source="pipe")
    holiday = (f"From: cy@example.org\r\nTo: {return_path(sent, 'cy@example.org')}\r\nSubject: Away\r\n"
               "Auto-Submitted: auto-replied\r\nMessage-ID: <away@example.org>\r\n\r\nBack on Monday.\r\n").encode()
    take_message(sent, db(sent), holiday, now=NOW, source="imap")
    with httpx.Client(base_url=desk) as http:
        sign_in(http, "viewer@example.org")
        page = http.get(f"/desk/issues/{issue_of(sent, 'ann@example.org')}").text
    line = page.split('id="issue-mail-back">')[1].split("</p>")[0]
    assert line.startswith("Mail that came back about this issue: 1 stopped mail to the reader, "
                           "1 soft bounce counted, 1 auto-reply or other mail")


def test_forged_soft_bounces_never_add_up(sent: Config) -> None:
    """Three soft bounces to forged return paths, naming Bo, leave Bo on the list."""
    with db(sent).connect() as conn:
        key = conn.execute(sa.text("SELECT message_key FROM deliveries WHERE email = 'bo@example.org'")).scalar()
    forged = verp.return_path("not-the-publication-secret-0000000000000", str(key), DOMAIN)
    for step in range(3):
        raw = dsn(forged, "bo@example.org", status="4.2.2", diagnostic="452 4.2.2 Mailbox full",
                  message_id=f"<forged-soft-{step}@mx>")
        assert take_message(sent, db(sent), raw, now=NOW + timedelta(hours=step), source="imap").outcome == "forged"
    genuine = dsn(return_path(sent, "bo@example.org"), "bo@example.org", status="4.2.2",
                  diagnostic="452 4.2.2 Mailbox full", message_id="<genuine-soft@mx>")
    assert take_message(sent, db(sent), genuine, now=NOW + timedelta(hours=4), source="imap").outcome == "counted"
    assert status(sent, "bo@example.org") is SubscriberStatus.ACTIVE


def test_erasing_a_reader_empties_the_bounces_about_them(sent: Config) -> None:
    """After an erasure no bounce message keeps the address or the bytes that quote it;
    the same message taken again is still one decision."""
    raw = dsn(return_path(sent, "ann@example.org"), "ann@example.org")
    take_message(sent, db(sent), raw, now=NOW, source="pipe")
    subscribers.remove(db(sent), "ann@example.org", now=NOW, purge=True)
    with db(sent).connect() as conn:
        rows = conn.execute(sa.text("SELECT address, raw, subscriber_id FROM bounce_messages")).all()
    assert [(r.address, bytes(r.raw), r.subscriber_id) for r in rows] == [(None, b"", None)]
    assert take_message(sent, db(sent), raw, now=NOW, source="imap").detail.startswith("taken before")


def test_a_no_reply_auto_answer_is_not_a_bounce() -> None:
    """A help desk's automatic "we got your message" from a no-reply address is an auto-reply."""
    raw = (b"From: Help Desk <no-reply@tickets.example.com>\r\nTo: letters@example.org\r\n"
           b"Subject: We got your message\r\nAuto-Submitted: auto-replied\r\n\r\nThanks, we will answer soon.\r\n")
    assert classify(raw).kind == "auto_reply"


def test_a_japanese_bounce_notice_in_raw_utf8_is_a_bounce() -> None:
    """KDDI's mail-error notice, its subject in raw UTF-8: a soft bounce (a full mailbox) for its reader."""
    verdict = classify((CORPUS / "lhost-kddi-01.eml").read_bytes())
    assert (verdict.kind, verdict.addresses) == ("soft", ("kijitora@x0000000000000.dion.ne.jp",))
