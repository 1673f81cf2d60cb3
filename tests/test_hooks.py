"""Outbound webhooks: events queued with the change, signed per Standard Webhooks, retried."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from hostile_servers import hang
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from publisher.cli import cli
from publisher.config import Config, load_config
from publisher.delivery import hooks
from publisher.errors import InvalidRequest
from publisher.services import access, issues, subscribers
from publisher.store import ledger, open_store, outbox
from publisher.store.schema import deliveries, webhook_messages

CONFIG = """
[publication]
title = "Hook Test"
url = "https://example.org/"
postal_address = "1 Test Street"

[newsletter]
from = "Tester <news@example.org>"

[fetch]
allow_private = {private}
timeout = 5
"""


class Receiver:
    """A webhook receiver on 127.0.0.1 that checks each signature with the standardwebhooks library."""

    def __init__(self, secret: str, port: int = 0) -> None:
        self.verifier = Webhook(secret)
        self.received: list[dict[str, Any]] = []
        self.refused = 0
        self.stamps: list[str] = []
        self.ids: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.stamps.append(self.headers["webhook-timestamp"])
                receiver.ids.append(self.headers["webhook-id"])
                try:
                    payload = receiver.verifier.verify(body, dict(self.headers.items()))
                except WebhookVerificationError:
                    receiver.refused += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                receiver.received.append({"id": self.headers["webhook-id"], **payload})
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _config(tmp_path: Path, *, private: bool = True) -> Config:
    (tmp_path / "content").mkdir(exist_ok=True)
    (tmp_path / "config.toml").write_text(CONFIG.format(private=str(private).lower()))
    return load_config(tmp_path / "config.toml", env={"PUBLISHER_SECRET": "k" * 40})


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return _config(tmp_path)


@pytest.fixture
def db(config: Config) -> Iterator[sa.Engine]:
    engine = open_store(config.store_url)
    yield engine
    engine.dispose()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _events(db: sa.Engine) -> list[str]:
    with db.connect() as conn:
        return list(conn.execute(sa.select(webhook_messages.c.event).order_by(webhook_messages.c.id)).scalars())


def test_a_receiver_verifies_each_event_with_the_library(config: Config, db: sa.Engine) -> None:
    """A subscribe and an unsubscribe reach the receiver, signed so that standardwebhooks accepts them."""
    port = _free_port()
    made = access.add_endpoint(db, f"http://127.0.0.1:{port}/hook",
                               ["subscriber.created", "subscriber.unsubscribed"], now=datetime.now(UTC),
                               allow_private=True)
    receiver = Receiver(made.secret, port)
    try:
        now = datetime.now(UTC)
        subscribers.subscribe(db, "ada@example.org", now=now)
        subscribers.unsubscribe(db, "ada@example.org", now=now)
        report = hooks.deliver_due(config, db, now=now)
    finally:
        receiver.close()
    assert (report.delivered, receiver.refused) == (2, 0)
    assert [m["type"] for m in receiver.received] == ["subscriber.created", "subscriber.unsubscribed"]
    assert receiver.received[0]["data"]["email"] == "ada@example.org"
    assert len({m["id"] for m in receiver.received}) == 2


def test_a_receiver_that_was_down_gets_the_event_once_it_is_up(config: Config, db: sa.Engine) -> None:
    """Refused connection: the message waits; after the retry delay it is delivered with the same id."""
    port = _free_port()
    made = access.add_endpoint(db, f"http://127.0.0.1:{port}/hook", ["subscriber.created"], now=datetime.now(UTC),
                               allow_private=True)
    now = datetime.now(UTC)
    subscribers.subscribe(db, "ada@example.org", now=now)
    down = hooks.deliver_due(config, db, now=now)
    assert (down.delivered, down.retried) == (0, 1)
    assert hooks.deliver_due(config, db, now=now + timedelta(seconds=1)).retried == 0  # not due yet
    receiver = Receiver(made.secret, port)
    try:
        later = now + timedelta(seconds=hooks.RETRY_DELAYS[0] + 1)
        up = hooks.deliver_due(config, db, now=later)
    finally:
        receiver.close()
    assert up.delivered == 1 and [m["type"] for m in receiver.received] == ["subscriber.created"]
    with db.connect() as conn:
        row = conn.execute(sa.select(webhook_messages)).one()
    assert (row.state, row.attempts, row.msg_id) == ("delivered", 2, receiver.received[0]["id"])


def test_a_message_expires_after_the_last_retry(config: Config, db: sa.Engine) -> None:
    """After every delay has passed without success, the message is given up, not retried forever."""
    access.add_endpoint(db, f"http://127.0.0.1:{_free_port()}/hook", ["subscriber.created"], now=datetime.now(UTC),
                        allow_private=True)
    now = datetime.now(UTC)
    subscribers.subscribe(db, "ada@example.org", now=now)
    for delay in (0, *hooks.RETRY_DELAYS):
        now += timedelta(seconds=delay)
        hooks.deliver_due(config, db, now=now)
    assert outbox.counts(db) == {"expired": 1}


def test_loopback_receivers_are_refused_at_delivery_without_the_override(tmp_path: Path) -> None:
    """An endpoint stored without the override is never contacted on 127.0.0.1 (a name that
    resolved elsewhere when it was added, say), even when a receiver listens there."""
    config = _config(tmp_path, private=False)
    db = open_store(config.store_url)
    receiver = Receiver("whsec_" + "A" * 32)
    try:
        outbox.add_endpoint(db, f"http://127.0.0.1:{receiver.port}/hook", ["subscriber.created"], now=datetime.now(UTC))
        subscribers.subscribe(db, "ada@example.org", now=datetime.now(UTC))
        report = hooks.deliver_due(config, db, now=datetime.now(UTC))
        with db.connect() as conn:
            error = conn.execute(sa.select(webhook_messages.c.last_error)).scalar_one()
    finally:
        receiver.close()
        db.dispose()
    assert report.retried == 1 and receiver.received == []
    assert "loopback" in error


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:8000/hook", "loopback"),
        ("http://10.0.0.8/hook", "private"),
        ("http://[::1]/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("https://no-such-host.invalid/hook", "does not resolve"),
    ],
)
def test_the_service_refuses_receivers_that_cannot_be_reached(db: sa.Engine, url: str, why: str) -> None:
    """Loopback, private and unresolvable receivers are refused when added, naming the override."""
    with pytest.raises(InvalidRequest, match=why) as caught:
        access.add_endpoint(db, url, ["subscriber.created"], now=datetime.now(UTC))
    assert "--allow-private" in str(caught.value) and access.list_endpoints(db) == []


def test_a_receiver_added_with_the_override_is_delivered_to(tmp_path: Path) -> None:
    """With allow_private on the endpoint, a receiver on this host gets its events, whatever [fetch] says."""
    config = _config(tmp_path, private=False)
    db = open_store(config.store_url)
    port = _free_port()
    made = access.add_endpoint(db, f"http://127.0.0.1:{port}/hook", ["subscriber.created"], now=datetime.now(UTC),
                               allow_private=True)
    receiver = Receiver(made.secret, port)
    try:
        subscribers.subscribe(db, "ada@example.org", now=datetime.now(UTC))
        report = hooks.deliver_due(config, db, now=datetime.now(UTC))
    finally:
        receiver.close()
        db.dispose()
    assert report.delivered == 1 and made.endpoint.allow_private
    assert [m["type"] for m in receiver.received] == ["subscriber.created"]


def test_hooks_cli_refuses_loopback_unless_allowed(config: Config) -> None:
    """`hooks add http://127.0.0.1/...` exits 1 naming --allow-private; with it, list says so."""
    env = {"PUBLISHER_CONFIG": str(config.path), "PUBLISHER_SECRET": "k" * 40}
    runner = CliRunner()
    refused = runner.invoke(cli, ["hooks", "add", "http://127.0.0.1:8000/h", "--event", "issue.sent"], env=env)
    assert refused.exit_code == 1 and "loopback" in refused.output and "--allow-private" in refused.output
    added = runner.invoke(cli, ["hooks", "add", "http://127.0.0.1:8000/h", "--event", "issue.sent",
                                "--allow-private"], env=env)
    assert added.exit_code == 0, added.output
    listed = runner.invoke(cli, ["hooks", "list"], env=env)
    assert "http://127.0.0.1:8000/h\tissue.sent\t(private address allowed)" in listed.output


def test_a_finished_issue_announces_sent_and_failed(config: Config, db: sa.Engine) -> None:
    """issue.sent when the last copy is done, and issue.failed too when some failed."""
    access.add_endpoint(db, "https://hooks.example.net/x", ["issue.sent", "issue.failed", "issue.scheduled"],
                        now=datetime.now(UTC), allow_private=True)
    content = config.path_of("build.content")
    (content / "2026-01-05-rest.md").write_text("---\ntitle: Rest\ndate: 2026-01-05 08:00\n---\n\nRest.\n")
    now = datetime.now(UTC)
    for n in range(2):
        subscribers.subscribe(db, f"r{n}@example.org", now=now)
    queued = issues.send_now(config, db, "rest", now=now)
    with db.begin() as conn:
        conn.execute(sa.update(deliveries).where(deliveries.c.email == "r0@example.org").values(state="sent"))
        conn.execute(sa.update(deliveries).where(deliveries.c.email == "r1@example.org").values(state="failed"))
    assert ledger.finish_issues(db, now=now) == [queued.issue_id]
    assert _events(db) == ["issue.sent", "issue.failed"]
    with db.connect() as conn:
        payload = json.loads(conn.execute(sa.select(webhook_messages.c.payload)).scalars().first())
    assert payload["data"] == {"issue_id": queued.issue_id, "slug": "rest", "key": payload["data"]["key"],
                               "sent": 1, "failed": 1}


def test_only_endpoints_that_asked_get_an_event(config: Config, db: sa.Engine) -> None:
    """An endpoint for unsubscribes gets no message about a new subscriber."""
    access.add_endpoint(db, "https://hooks.example.net/x", ["subscriber.unsubscribed"], now=datetime.now(UTC),
                        allow_private=True)
    subscribers.subscribe(db, "ada@example.org", now=datetime.now(UTC))
    assert _events(db) == []


def test_hooks_cli_adds_lists_and_removes(config: Config) -> None:
    """`publisher hooks add` prints the secret once; list shows the endpoint; remove forgets it."""
    env = {"PUBLISHER_CONFIG": str(config.path), "PUBLISHER_SECRET": "k" * 40}
    runner = CliRunner()
    added = runner.invoke(cli, ["hooks", "add", "https://93.184.215.14/x", "--event", "issue.sent"], env=env)
    assert added.exit_code == 0, added.output
    assert added.stdout.startswith("whsec_")
    listed = runner.invoke(cli, ["hooks", "list"], env=env)
    assert "https://93.184.215.14/x\tissue.sent" in listed.output and "whsec_" not in listed.output
    assert runner.invoke(cli, ["hooks", "remove", "1"], env=env).exit_code == 0
    bad = runner.invoke(cli, ["hooks", "add", "ftp://x", "--event", "issue.sent"], env=env)
    assert bad.exit_code == 1 and "https://" in bad.output


def test_erasure_drops_messages_naming_the_person(config: Config, db: sa.Engine) -> None:
    """An erased subscriber's address leaves the webhook table too, sent or not."""
    access.add_endpoint(db, "https://hooks.example.net/x", ["subscriber.created"], now=datetime.now(UTC),
                        allow_private=True)
    subscribers.subscribe(db, "ada@example.org", now=datetime.now(UTC))
    subscribers.subscribe(db, "bo@example.org", now=datetime.now(UTC))
    subscribers.erase(db, "ada@example.org", now=datetime.now(UTC))
    with db.connect() as conn:
        payloads = list(conn.execute(sa.select(webhook_messages.c.payload)).scalars())
    assert len(payloads) == 1 and "bo@example.org" in payloads[0]


def test_a_hung_endpoint_does_not_delay_a_healthy_one(config: Config, db: sa.Engine) -> None:
    """19 events to a receiver that never answers and to a healthy one: the healthy one has
    all 19 at once, each verified by standardwebhooks; the hung one costs one deadline."""
    now = datetime.now(UTC)
    with hang(lifetime=20) as hung:
        access.add_endpoint(db, f"{hung.url}/hook", ["subscriber.created"], now=now, allow_private=True)
        port = _free_port()
        made = access.add_endpoint(db, f"http://127.0.0.1:{port}/hook", ["subscriber.created"], now=now,
                                   allow_private=True)
        receiver = Receiver(made.secret, port)
        try:
            for n in range(19):
                subscribers.subscribe(db, f"r{n}@example.org", now=now)
            started = time.monotonic()
            done: list[hooks.HookReport] = []
            round_ = threading.Thread(target=lambda: done.append(hooks.deliver_due(config, db, now=now)))
            round_.start()
            while len(receiver.received) < 19 and time.monotonic() - started < 10:
                time.sleep(0.01)
            healthy = time.monotonic() - started
            round_.join(15)
            whole = time.monotonic() - started
        finally:
            receiver.close()
    print(f"healthy endpoint: 19 messages in {healthy:.2f} s; the round with the hung one: {whole:.2f} s")
    assert len(receiver.received) == 19 and receiver.refused == 0
    assert healthy < 2.0
    assert whole < 5 + 3  # fetch.timeout is 5: one attempt on the hung receiver, not 19
    assert len(hung.connections) == 1
    assert (done[0].delivered, done[0].retried) == (19, 1)


def test_a_hung_endpoints_later_messages_wait_behind_it(config: Config, db: sa.Engine) -> None:
    """After its first message fails, the rest of a failing endpoint's queue waits for the retry."""
    now = datetime.now(UTC)
    access.add_endpoint(db, f"http://127.0.0.1:{_free_port()}/hook", ["subscriber.created"], now=now,
                        allow_private=True)
    for n in range(3):
        subscribers.subscribe(db, f"r{n}@example.org", now=now)
    assert hooks.deliver_due(config, db, now=now).retried == 1
    with db.connect() as conn:
        rows = conn.execute(sa.select(webhook_messages).order_by(webhook_messages.c.id)).all()
    retry_at = now + timedelta(seconds=hooks.RETRY_DELAYS[0])
    assert [r.attempts for r in rows] == [1, 0, 0]
    assert all(r.not_before.replace(tzinfo=UTC) >= retry_at.replace(tzinfo=UTC) for r in rows)
    assert hooks.deliver_due(config, db, now=now + timedelta(seconds=1)) == hooks.HookReport()


def test_each_attempt_is_signed_when_it_is_sent(config: Config, db: sa.Engine) -> None:
    """A round whose `now` is ten minutes old still signs with the time of sending: the
    library's five-minute tolerance accepts it."""
    port = _free_port()
    made = access.add_endpoint(db, f"http://127.0.0.1:{port}/hook", ["subscriber.created"], now=datetime.now(UTC),
                               allow_private=True)
    stale = datetime.now(UTC) - timedelta(minutes=10)
    subscribers.subscribe(db, "ada@example.org", now=stale)
    receiver = Receiver(made.secret, port)
    try:
        report = hooks.deliver_due(config, db, now=stale)
    finally:
        receiver.close()
    assert (report.delivered, receiver.refused) == (1, 0)


def test_a_retry_is_signed_afresh_with_the_same_id(config: Config, db: sa.Engine) -> None:
    """Two attempts of one message: the same webhook-id, each with its own timestamp and signature."""
    port = _free_port()
    made = access.add_endpoint(db, f"http://127.0.0.1:{port}/hook", ["subscriber.created"], now=datetime.now(UTC),
                               allow_private=True)
    now = datetime.now(UTC)
    subscribers.subscribe(db, "ada@example.org", now=now)
    receiver = Receiver(made.secret, port)
    stamps = iter([datetime.now(UTC) - timedelta(seconds=30), datetime.now(UTC)])
    try:
        receiver.verifier = Webhook("whsec_" + "B" * 32)  # the first attempt is refused: a wrong key
        hooks.deliver_due(config, db, now=now, clock=lambda: next(stamps))
        receiver.verifier = Webhook(made.secret)
        hooks.deliver_due(config, db, now=now + timedelta(seconds=hooks.RETRY_DELAYS[0]), clock=lambda: next(stamps))
    finally:
        receiver.close()
    assert receiver.refused == 1 and len(receiver.received) == 1
    assert len(set(receiver.stamps)) == 2 and len(set(receiver.ids)) == 1


def test_a_failing_endpoint_is_reported_with_its_error_and_since_when(config: Config, db: sa.Engine) -> None:
    """Failures in a row, the last error and the first failing message's time; gone once it takes one."""
    port = _free_port()
    made = access.add_endpoint(db, f"http://127.0.0.1:{port}/hook", ["subscriber.created"], now=datetime.now(UTC),
                               allow_private=True)
    now = datetime.now(UTC)
    subscribers.subscribe(db, "ada@example.org", now=now)
    hooks.deliver_due(config, db, now=now)
    hooks.deliver_due(config, db, now=now + timedelta(seconds=hooks.RETRY_DELAYS[0]))
    [trouble] = access.failing_endpoints(db)
    assert (trouble.url, trouble.failures) == (made.endpoint.url, 2)
    assert "cannot connect" in trouble.last_error and trouble.next_try is not None
    assert abs((trouble.since.replace(tzinfo=UTC) - now).total_seconds()) < 1
    receiver = Receiver(made.secret, port)
    try:
        hooks.deliver_due(config, db, now=now + timedelta(seconds=hooks.RETRY_DELAYS[0] + hooks.RETRY_DELAYS[1]))
    finally:
        receiver.close()
    assert access.failing_endpoints(db) == []


def _failing_endpoint(db: sa.Engine, config: Config) -> str:
    url = f"http://127.0.0.1:{_free_port()}/hook"
    access.add_endpoint(db, url, ["subscriber.created"], now=datetime.now(UTC), allow_private=True)
    subscribers.subscribe(db, "ada@example.org", now=datetime.now(UTC))
    hooks.deliver_due(config, db, now=datetime.now(UTC))
    return url


def test_status_names_a_failing_endpoint(config: Config, db: sa.Engine) -> None:
    """`publisher status` ends with each failing endpoint, its failures in a row and last error."""
    url = _failing_endpoint(db, config)
    env = {"PUBLISHER_CONFIG": str(config.path), "PUBLISHER_SECRET": "k" * 40}
    result = CliRunner().invoke(cli, ["status"], env=env)
    assert result.exit_code == 0, result.output
    assert f"webhook endpoint 1 ({url}) failing since" in result.output
    assert "1 failed attempt(s) in a row" in result.output and "cannot connect" in result.output


def test_home_shows_a_failing_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The desk's Home opens with a notice naming the failing endpoint and its last error."""
    from desk_support import add_users, quick_hashes, sign_in
    from web_support import live_server, make_publication

    from publisher.web import create_app

    quick_hashes(monkeypatch)
    config = make_publication(tmp_path)
    add_users(config)
    db = open_store(config.store_url)
    url = _failing_endpoint(db, config)
    db.dispose()
    with live_server(create_app(config)) as base, httpx.Client(base_url=base) as http:
        sign_in(http)
        home = http.get("/desk/").text
    assert 'id="failing-hooks"' in home and url in home and "1 failed attempt in a row" in home
