"""`publisher send` and `publisher status` through the real command line, into a Maildir."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from fakes import SMTPServer

from publisher.cli import cli
from publisher.config import load_config
from publisher.services import issues as issues_service
from publisher.store import ledger, open_store
from publisher.store.schema import deliveries, subscriber_tags, subscribers

ARTICLE = """---
title: {title}
date: {date}
tags: [sleep]
---

Some words about {title}.
"""


class Pub:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "content").mkdir()
        self.write("2026-01-05-notes-on-rest.md", "Notes on Rest", "2026-01-05 08:00")
        self.write("2026-02-01-walking-daily.md", "Walking Daily", "2026-02-01 08:00")
        self.write("2099-01-01-far-future.md", "Far Future", "2099-01-01 08:00")
        (root / "config.toml").write_text(
            """
[publication]
title = "CLI Test"
url = "https://example.org/"
postal_address = "1 Test Street, Testville"

[newsletter]
from = "Tester <news@example.org>"

[delivery]
provider = "maildir"
concurrency = 2
batch_size = 4

[delivery.maildir]
path = "outbox"
"""
        )
        self.db = open_store(f"sqlite:///{root / 'publisher.db'}")
        self.env = {"PUBLISHER_CONFIG": str(root / "config.toml"), "PUBLISHER_SECRET": "k" * 40}

    def write(self, name: str, title: str, date: str) -> None:
        (self.root / "content" / name).write_text(ARTICLE.format(title=title, date=date))

    def add(self, count: int, *, tag: str | None = None, start: int = 0) -> None:
        now = datetime.now(UTC)
        emails = [f"reader{n}@example.org" for n in range(start, start + count)]
        with self.db.begin() as conn:
            conn.execute(
                sa.insert(subscribers),
                [{"email": e, "name": "", "status": "active", "source": "test", "created_at": now,
                  "updated_at": now} for e in emails],
            )
            if tag:
                ids = conn.execute(sa.select(subscribers.c.id).where(subscribers.c.email.in_(emails))).scalars()
                conn.execute(sa.insert(subscriber_tags), [{"subscriber_id": i, "tag": tag} for i in ids])

    def invoke(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), env={**self.env, **(env or {})}, catch_exceptions=False)

    def outbox(self) -> list[bytes]:
        folder = self.root / "outbox" / "new"
        return [p.read_bytes() for p in sorted(folder.iterdir())] if folder.is_dir() else []

    def rows(self) -> int:
        with self.db.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar_one())


@pytest.fixture
def pub(tmp_path: Path) -> Iterator[Pub]:
    publication = Pub(tmp_path)
    yield publication
    publication.db.dispose()


def test_send_delivers_to_every_active_subscriber(pub: Pub) -> None:
    """One message per reader lands in the Maildir and the summary says so."""
    pub.add(9)
    result = pub.invoke("send", "notes-on-rest", "--yes")
    assert result.exit_code == 0, result.output
    assert "9 new recipient(s) queued" in result.output
    assert "sent 9," in result.output
    assert f"{pub.root / 'outbox' / 'new'}" in result.output
    recipients = {message_from_bytes(raw)["To"] for raw in pub.outbox()}
    assert len(recipients) == 9


def test_send_again_sends_nothing_new(pub: Pub) -> None:
    """A second send of the same article writes no row and no message."""
    pub.add(3)
    pub.invoke("send", "notes-on-rest", "--yes")
    result = pub.invoke("send", "notes-on-rest", "--yes")
    assert "0 new recipient(s) queued" in result.output
    assert "nothing to send" in result.output
    assert len(pub.outbox()) == 3


def test_send_with_tag_reaches_the_segment_only(pub: Pub) -> None:
    """--tag limits the send to subscribers carrying the tag."""
    pub.add(2, tag="sleep")
    pub.add(5, start=10)
    result = pub.invoke("send", "notes-on-rest", "--tag", "sleep", "--yes")
    assert "sent 2," in result.output
    assert len(pub.outbox()) == 2


def test_unknown_slug_lists_close_matches(pub: Pub) -> None:
    """A typo is an error (exit 1) that names the nearest slug."""
    result = pub.invoke("send", "notes-on-rst", "--yes")
    assert result.exit_code == 1
    assert "notes-on-rest" in result.output


def test_unknown_slug_far_from_any_lists_the_newest(pub: Pub) -> None:
    """A slug like no other still gets slugs to try, never only a pointer to another command."""
    result = pub.invoke("send", "zzzzzz", "--yes")
    assert result.exit_code == 1
    assert "far-future, walking-daily, notes-on-rest" in result.output


def test_a_future_article_sent_now_goes_on_the_site_dated_now(pub: Pub) -> None:
    """Sending an article dated later is the author's explicit choice: it comes out now."""
    result = pub.invoke("send", "far-future", "--yes")
    assert result.exit_code == 0, result.output
    (path,) = (pub.root / "content").glob("*far-future.md")
    assert "date: 2099" not in path.read_text()
    assert "is on the site" in result.output
    assert list((pub.root / "public").rglob("far-future/index.html"))


def test_without_yes_and_no_terminal_nothing_is_sent(pub: Pub) -> None:
    """No --yes and nobody to answer: refused (a usage error) with the count and the provider."""
    result = pub.invoke("send", "notes-on-rest")
    assert result.exit_code == 2
    assert "add --yes" in result.output and "reader(s) through" in result.output
    assert pub.outbox() == []


def test_to_sends_a_test_copy_of_a_draft_or_future_article(pub: Pub) -> None:
    """A test copy is for articles not yet out: drafts and future ones go, marked as a test."""
    (pub.root / "content" / "2026-03-01-a-draft.md").write_text(
        ARTICLE.format(title="A Draft", date="2026-03-01 08:00").replace("tags:", "draft: true\ntags:")
    )
    for slug in ("a-draft", "far-future"):
        result = pub.invoke("send", slug, "--to", "me@example.net")
        assert result.exit_code == 0, result.output
    subjects = sorted(str(message_from_bytes(raw)["Subject"]) for raw in pub.outbox())
    assert subjects == ["[Test] A Draft", "[Test] Far Future"]
    assert pub.rows() == 0


def test_dry_run_shows_what_a_send_now_delivers(pub: Pub) -> None:
    """After the first copies left, an edited article is not what later readers get: the
    dry run shows the frozen version the send delivers, and says why."""
    pub.add(2)
    assert pub.invoke("send", "notes-on-rest", "--yes").exit_code == 0
    pub.write("2026-01-05-notes-on-rest.md", "Notes on Rest, Revised", "2026-01-05 08:00")
    pub.add(1, start=2)
    result = pub.invoke("send", "notes-on-rest", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "subject: Notes on Rest\n" in result.output
    assert "is frozen" in result.output and "would send to 1 " in result.output
    assert pub.invoke("send", "notes-on-rest", "--yes").exit_code == 0
    subjects = {message_from_bytes(raw)["Subject"] for raw in pub.outbox()}
    assert subjects == {"Notes on Rest"}


def test_dry_run_counts_and_writes_nothing(pub: Pub) -> None:
    """--dry-run renders and counts; no ledger row, no message."""
    pub.add(4)
    result = pub.invoke("send", "notes-on-rest", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would send to 4 active subscribers" in result.output
    assert "subject: Notes on Rest" in result.output
    assert pub.rows() == 0 and pub.outbox() == []
    assert ledger.status(pub.db) == []


def test_to_sends_one_copy_outside_the_ledger(pub: Pub) -> None:
    """--to sends a single test copy and writes no row."""
    pub.add(4)
    result = pub.invoke("send", "notes-on-rest", "--to", "me@example.net")
    assert result.exit_code == 0, result.output
    (raw,) = pub.outbox()
    assert message_from_bytes(raw)["To"].endswith("me@example.net")
    assert pub.rows() == 0


def test_real_provider_needs_the_secret(pub: Pub) -> None:
    """Without PUBLISHER_SECRET a real provider refuses, naming the variable."""
    pub.add(1)
    config = pub.root / "config.toml"
    config.write_text(config.read_text().replace('provider = "maildir"', 'provider = "smtp"'))
    result = pub.invoke("send", "notes-on-rest", "--yes", env={"PUBLISHER_SECRET": ""})
    assert result.exit_code == 1
    assert "PUBLISHER_SECRET" in result.output
    assert pub.rows() == 0


def test_real_provider_needs_the_postal_address(pub: Pub, smtp_server: SMTPServer) -> None:
    """An empty postal_address refuses a send through a real provider, before any row is written."""
    pub.add(2)
    config = pub.root / "config.toml"
    config.write_text(
        config.read_text().replace('postal_address = "1 Test Street, Testville"', "")
        .replace('provider = "maildir"', 'provider = "smtp"')
        + f'\n[delivery.smtp]\nhost = "127.0.0.1"\nport = {smtp_server.port}\nsecurity = "none"\n'
    )
    result = pub.invoke("send", "notes-on-rest", "--yes")
    assert result.exit_code == 1
    assert "[publication] postal_address is empty" in result.output
    assert pub.rows() == 0 and smtp_server.messages == []
    assert pub.invoke("send", "--resume").exit_code == 1


def test_send_repeats_the_clipping_warning(pub: Pub) -> None:
    """An issue over the clipping size is warned about when it is sent, not only by check."""
    pub.add(1)
    config = pub.root / "config.toml"
    config.write_text(config.read_text().replace("[newsletter]", "[newsletter]\nclip_warning_bytes = 1000"))
    result = pub.invoke("send", "notes-on-rest", "--yes")
    assert result.exit_code == 0, result.output
    assert "Gmail clips" in result.output


def test_usage_errors_exit_2(pub: Pub) -> None:
    """No slug, or a slug with --resume, is a usage error."""
    assert pub.invoke("send").exit_code == 2
    assert pub.invoke("send", "notes-on-rest", "--resume").exit_code == 2


def dead_worker() -> str:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return f"{socket.gethostname()}:{process.pid}:gone"


def test_resume_reports_uncertain_rows_and_finishes(pub: Pub) -> None:
    """--resume requeues a dead sender's rows as uncertain, says so, and sends everything."""
    pub.add(10)
    now = datetime.now(UTC)
    issue = ledger.create_issue(
        pub.db, key="k", kind="article", slug="notes-on-rest", subject="S", html="<p>x</p>", text="x",
        tag=None, status="sending", now=now,
    )
    ledger.enqueue(pub.db, issue, now=now)
    ledger.claim(pub.db, worker=dead_worker(), limit=3, now=now)
    result = pub.invoke("send", "--resume")
    assert result.exit_code == 0, result.output
    assert "3 message(s) were in flight" in result.output
    assert "sent 10," in result.output
    status = pub.invoke("status")
    assert "3 message(s) were in flight" in status.output
    assert "notes-on-rest" in status.output


def test_send_again_after_a_crash_recovers_the_dead_senders_rows(pub: Pub) -> None:
    """Re-running `send SLUG` after its sender died does what --resume does for that
    sender's rows: they are sent, reported uncertain, and none is left "sending"."""
    pub.add(10)
    config = load_config(pub.root / "config.toml", env=pub.env)
    issue_id = issues_service.send_now(config, pub.db, "notes-on-rest", now=datetime.now(UTC)).issue_id
    ledger.claim(pub.db, worker=dead_worker(), limit=3, now=datetime.now(UTC))
    result = pub.invoke("send", "notes-on-rest", "--yes")
    assert result.exit_code == 0, result.output
    assert "3 message(s) were in flight" in result.output
    assert "sent 10," in result.output
    [line] = ledger.status(pub.db, issue_id)
    assert (line.sending, line.sent, line.uncertain) == (0, 10, 3)
    assert len(pub.outbox()) == 10


def test_status_of_one_issue_and_of_an_unknown_one(pub: Pub) -> None:
    """status ISSUE narrows the table; an unknown issue is exit 1."""
    pub.add(2)
    pub.invoke("send", "notes-on-rest", "--yes")
    pub.invoke("send", "walking-daily", "--yes")
    result = pub.invoke("status", "walking-daily")
    assert "walking-daily" in result.output and "notes-on-rest" not in result.output
    assert pub.invoke("status", "nope").exit_code == 1


def test_status_with_nothing_sent(pub: Pub) -> None:
    """An empty ledger says how to start."""
    assert "nothing sent yet" in pub.invoke("status").output


def test_a_provider_refusing_every_call_is_told(pub: Pub) -> None:
    """SMTP server down: the send says the provider refused the call and how long it waits."""
    pub.add(6)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = pub.root / "config.toml"
    config.write_text(
        config.read_text().replace('provider = "maildir"', 'provider = "smtp"\nmax_attempts = 2\n'
                                   'retry_base = 0.02\nretry_max = 0.1')
        + f'\n[delivery.smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'
    )
    result = pub.invoke("send", "notes-on-rest", "--yes")
    assert result.exit_code == 0, result.output
    assert "the provider refused the call for now: cannot connect to the SMTP server" in result.output
    assert f"127.0.0.1:{port}" in result.output
    assert "failed 6" in result.output


def use_smtp(pub: Pub, server: SMTPServer) -> None:
    config = pub.root / "config.toml"
    config.write_text(
        config.read_text().replace('provider = "maildir"', 'provider = "smtp"\nmax_attempts = 1')
        + f'\n[delivery.smtp]\nhost = "{server.host}"\nport = {server.port}\nsecurity = "none"\n'
    )


def test_status_failed_lists_each_recipient_with_the_reason(pub: Pub) -> None:
    """`status ISSUE --failed` gives each failed or retrying recipient with the server's
    answer; `status ISSUE` counts them and names the commonest reasons."""
    pub.add(5)
    with SMTPServer() as server:
        use_smtp(pub, server)
        for n in (1, 2):
            server.answer(f"reader{n}@example.org", f"550 5.1.1 <reader{n}@example.org>: no such user")
        assert pub.invoke("send", "notes-on-rest", "--yes").exit_code == 0
    with pub.db.begin() as conn:  # a temporary refusal waiting for its next try
        conn.execute(
            sa.update(deliveries)
            .where(deliveries.c.email == "reader3@example.org")
            .values(state="retry", attempts=1, detail="SMTP 451 4.3.0 Try again later",
                    not_before=datetime(2030, 1, 1, 9, 0, tzinfo=UTC))
        )
    listing = pub.invoke("status", "notes-on-rest", "--failed")
    assert listing.exit_code == 0, listing.output
    lines = listing.output.splitlines()
    failed = [line for line in lines if line.startswith("reader")]
    assert [line.split("\t")[0] for line in failed] == [
        "reader1@example.org", "reader2@example.org", "reader3@example.org",
    ]
    assert "failed (1 attempt)" in failed[0]
    assert "<reader1@example.org>: no such user" in failed[0]
    assert failed[2] == (
        "reader3@example.org\tretry (1 attempt, next try 2030-01-01 09:00 UTC)\tSMTP 451 4.3.0 Try again later"
    )
    summary = pub.invoke("status", "notes-on-rest").output
    assert "2 failed, 1 retrying; the most common reasons:" in summary
    assert "  2 x SMTP 550 5.1.1 <…>: no such user (refused at recipient)" in summary
    assert "--failed` lists each recipient" in summary


def test_status_failed_needs_an_issue(pub: Pub) -> None:
    """--failed without ISSUE is a usage error that says what to give."""
    result = pub.invoke("status", "--failed")
    assert result.exit_code == 2
    assert "--failed needs an ISSUE" in result.output


def test_an_address_the_server_cannot_take_is_told_once_up_front(pub: Pub) -> None:
    """Non-ASCII mailbox names and a server without SMTPUTF8: the send says so once,
    before sending, marks them failed with that reason, and sends the others."""
    pub.add(2)
    now = datetime.now(UTC)
    with pub.db.begin() as conn:
        conn.execute(
            sa.insert(subscribers),
            [{"email": e, "name": "", "status": "active", "source": "test", "created_at": now,
              "updated_at": now} for e in ("josé@example.org", "zoë@example.org")],
        )
    with SMTPServer(enable_SMTPUTF8=False) as server:
        use_smtp(pub, server)
        result = pub.invoke("send", "notes-on-rest", "--yes")
        assert result.exit_code == 0, result.output
        assert sorted(server.counts()) == ["reader0@example.org", "reader1@example.org"]
    told = [line for line in result.output.splitlines() if "SMTPUTF8" in line]
    assert told == [
        f"2 address(es) cannot be sent to (non-ASCII mailbox name, which needs SMTPUTF8, and "
        f"the SMTP server 127.0.0.1:{server.port} does not offer it): josé@example.org, "
        "zoë@example.org; marked failed"
    ]
    listing = pub.invoke("status", "notes-on-rest", "--failed").output
    assert "josé@example.org\tfailed (0 attempts)\tnon-ASCII mailbox name" in listing


GHOST = Path(__file__).parent / "data" / "exports" / "ghost"


def test_an_article_mailed_where_it_was_moved_in_from_is_not_sent_again(pub: Pub) -> None:
    """A post Ghost mailed is refused, naming the service, the day and the readers (3 here, 3 moved in)."""
    pub.add(3)
    assert pub.invoke("migrate", "ghost", str(GHOST)).exit_code == 0
    result = pub.invoke("send", "an-older-post", "--yes")
    assert result.exit_code == 1
    assert (
        "This article was moved in from Ghost, where it was mailed on 2 February 2024; "
        "sending it mails it again to 6 reader(s). To send it anyway: publisher send an-older-post --again"
    ) in result.output
    assert pub.rows() == 0 and pub.outbox() == []


def test_again_sends_an_article_mailed_where_it_was_moved_in_from(pub: Pub) -> None:
    """--again is the author's explicit word: the moved-in post goes out."""
    pub.add(3)
    pub.invoke("migrate", "ghost", str(GHOST))
    result = pub.invoke("send", "an-older-post", "--yes", "--again")
    assert result.exit_code == 0, result.output
    assert "sent 6," in result.output


def test_a_moved_in_post_never_mailed_there_sends_normally(pub: Pub) -> None:
    """A draft moved in (never mailed by Ghost) is put on the site and sent without --again."""
    pub.add(3)
    pub.invoke("migrate", "ghost", str(GHOST))
    result = pub.invoke("send", "draft-idea", "--yes")
    assert result.exit_code == 0, result.output
    assert "sent 6," in result.output


def test_dry_run_says_a_moved_in_post_was_mailed_there(pub: Pub) -> None:
    """--dry-run names the earlier mailing and that a send would be refused."""
    pub.add(3)
    pub.invoke("migrate", "ghost", str(GHOST))
    result = pub.invoke("send", "an-older-post", "--dry-run")
    assert "warning: This article was moved in from Ghost, where it was mailed on 2 February 2024" in result.output
    assert "a send would be refused: `publisher send an-older-post --again` sends it anyway" in result.output


def test_schedule_refuses_a_moved_in_post_mailed_there_without_again(pub: Pub) -> None:
    """publisher schedule goes through the same rule: refused, then scheduled with --again."""
    pub.add(3)
    pub.invoke("migrate", "ghost", str(GHOST))
    refused = pub.invoke("schedule", "an-older-post", "--at", "2090-01-01 10:00")
    assert refused.exit_code == 1 and "where it was mailed on 2 February 2024" in refused.output
    done = pub.invoke("schedule", "an-older-post", "--at", "2090-01-01 10:00", "--again")
    assert done.exit_code == 0, done.output


def test_a_post_moved_in_before_the_mailing_was_recorded_counts_as_probably_mailed(pub: Pub) -> None:
    """An older file's marker says nothing of mailing: a published one from Ghost asks first."""
    pub.add(2)
    (pub.root / "content" / "2024-03-12-old.md").write_text(
        "---\ntitle: Old\ndate: 2024-03-12 08:00\n---\n\nOld words.\n\n<!-- moved in: ghost:abc -->\n"
    )
    result = pub.invoke("send", "old", "--yes")
    assert result.exit_code == 1
    assert "moved in from Ghost, where it was published on 12 March 2024 and probably mailed" in result.output
    assert pub.rows() == 0
