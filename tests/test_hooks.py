"""Outbound webhooks: events queued with the change, signed per Standard Webhooks, retried."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from publisher import hooks
from publisher.cli import cli
from publisher.config import Config, load_config
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
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
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
                               ["subscriber.created", "subscriber.unsubscribed"], now=datetime.now(UTC))
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
    made = access.add_endpoint(db, f"http://127.0.0.1:{port}/hook", ["subscriber.created"], now=datetime.now(UTC))
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
    access.add_endpoint(db, f"http://127.0.0.1:{_free_port()}/hook", ["subscriber.created"], now=datetime.now(UTC))
    now = datetime.now(UTC)
    subscribers.subscribe(db, "ada@example.org", now=now)
    for delay in (0, *hooks.RETRY_DELAYS):
        now += timedelta(seconds=delay)
        hooks.deliver_due(config, db, now=now)
    assert outbox.counts(db) == {"expired": 1}


def test_loopback_receivers_are_refused_unless_allowed(tmp_path: Path) -> None:
    """Without fetch.allow_private, a hook to 127.0.0.1 is never contacted (SSRF)."""
    config = _config(tmp_path, private=False)
    db = open_store(config.store_url)
    made = access.add_endpoint(db, "http://127.0.0.1:9/hook", ["subscriber.created"], now=datetime.now(UTC))
    receiver = Receiver(made.secret)
    try:
        access.remove_endpoint(db, made.endpoint.id)
        access.add_endpoint(db, f"http://127.0.0.1:{receiver.port}/hook", ["subscriber.created"], now=datetime.now(UTC))
        subscribers.subscribe(db, "ada@example.org", now=datetime.now(UTC))
        report = hooks.deliver_due(config, db, now=datetime.now(UTC))
        with db.connect() as conn:
            error = conn.execute(sa.select(webhook_messages.c.last_error)).scalar_one()
    finally:
        receiver.close()
        db.dispose()
    assert report.retried == 1 and receiver.received == []
    assert "loopback" in error


def test_a_finished_issue_announces_sent_and_failed(config: Config, db: sa.Engine) -> None:
    """issue.sent when the last copy is done, and issue.failed too when some failed."""
    access.add_endpoint(db, "https://hooks.example.net/x", ["issue.sent", "issue.failed", "issue.scheduled"],
                        now=datetime.now(UTC))
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
    access.add_endpoint(db, "https://hooks.example.net/x", ["subscriber.unsubscribed"], now=datetime.now(UTC))
    subscribers.subscribe(db, "ada@example.org", now=datetime.now(UTC))
    assert _events(db) == []


def test_hooks_cli_adds_lists_and_removes(config: Config) -> None:
    """`publisher hooks add` prints the secret once; list shows the endpoint; remove forgets it."""
    env = {"PUBLISHER_CONFIG": str(config.path), "PUBLISHER_SECRET": "k" * 40}
    runner = CliRunner()
    added = runner.invoke(cli, ["hooks", "add", "https://hooks.example.net/x", "--event", "issue.sent"], env=env)
    assert added.exit_code == 0, added.output
    assert added.stdout.startswith("whsec_")
    listed = runner.invoke(cli, ["hooks", "list"], env=env)
    assert "https://hooks.example.net/x\tissue.sent" in listed.output and "whsec_" not in listed.output
    assert runner.invoke(cli, ["hooks", "remove", "1"], env=env).exit_code == 0
    bad = runner.invoke(cli, ["hooks", "add", "ftp://x", "--event", "issue.sent"], env=env)
    assert bad.exit_code == 1 and "https://" in bad.output


def test_erasure_drops_messages_naming_the_person(config: Config, db: sa.Engine) -> None:
    """An erased subscriber's address leaves the webhook table too, sent or not."""
    access.add_endpoint(db, "https://hooks.example.net/x", ["subscriber.created"], now=datetime.now(UTC))
    subscribers.subscribe(db, "ada@example.org", now=datetime.now(UTC))
    subscribers.subscribe(db, "bo@example.org", now=datetime.now(UTC))
    subscribers.erase(db, "ada@example.org", now=datetime.now(UTC))
    with db.connect() as conn:
        payloads = list(conn.execute(sa.select(webhook_messages.c.payload)).scalars())
    assert len(payloads) == 1 and "bo@example.org" in payloads[0]
