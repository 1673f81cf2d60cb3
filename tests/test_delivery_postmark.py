"""Postmark's batch endpoint: the request shape and the per-message answers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fakes import FakeAPI, Reply, vendors
from fakes.messages import publication_config, recipients, sample_template

from publisher.delivery.postmark import PostmarkProvider
from publisher.errors import ConfigError
from publisher.mail.mime import MessageTemplate
from publisher.models import Outcome

NOW = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> MessageTemplate:
    return sample_template(publication_config(tmp_path_factory.mktemp("publication")))


@pytest.fixture
def provider(fake_api: FakeAPI) -> Iterator[PostmarkProvider]:
    fake_api.handler = vendors.postmark("pm-token", inactive={"reader1@example.net"})
    with httpx.Client(timeout=10) as client:
        yield PostmarkProvider(api_key="pm-token", base_url=fake_api.url, client=client)


def test_message_fields(provider: PostmarkProvider, fake_api: FakeAPI,
                        template: MessageTemplate) -> None:
    """Each message carries the personalised bodies, its own headers and no tracking."""
    reader = recipients(1)[0]
    provider.send(template, [reader], now=NOW)
    (message,) = fake_api.requests[0].json()
    assert message["From"] == "Dana Reyes <dana@example.org>"
    assert message["To"] == "Reader 0 <reader0@example.net>"
    assert message["ReplyTo"] == "Desk <desk@example.org>"
    assert message["Subject"] == "Sleep, stress and the body"
    assert message["MessageStream"] == "broadcast"
    assert "Hello Reader 0" in message["HtmlBody"] and "__pub_" not in message["HtmlBody"]
    assert "token0" in message["TextBody"]
    headers = {h["Name"]: h["Value"] for h in message["Headers"]}
    assert headers["List-Unsubscribe"].startswith("<https://example.org/unsubscribe/token0>")
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["Message-ID"] == reader.message_id
    assert (message["TrackOpens"], message["TrackLinks"]) == (False, "None")
    assert message["Metadata"] == {"delivery_id": "100"}


def test_inactive_recipient_fails_alone(provider: PostmarkProvider,
                                        template: MessageTemplate) -> None:
    """ErrorCode 406 in the answer fails that recipient as a hard bounce; the rest are sent."""
    results = provider.send(template, recipients(3), now=NOW)
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.FAILED, Outcome.SENT]
    assert "inactive recipient" in results[1].detail


def test_rate_limit_code_inside_the_answer_retries(provider: PostmarkProvider,
                                                   fake_api: FakeAPI,
                                                   template: MessageTemplate) -> None:
    """A per-message ErrorCode 429 is temporary for that message."""
    fake_api.script(Reply.ok([
        {"ErrorCode": 0, "Message": "OK", "MessageID": "m1"},
        {"ErrorCode": 429, "Message": "Rate limit exceeded"},
    ]))
    results = provider.send(template, recipients(2), now=NOW)
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.RETRY]
    assert results[0].provider_id == "m1"


def test_account_refusal_is_a_config_error(provider: PostmarkProvider, fake_api: FakeAPI,
                                           template: MessageTemplate) -> None:
    """422 with ErrorCode 412 (account pending) refuses the account, not the readers."""
    fake_api.script(Reply.error(422, {"ErrorCode": 412, "Message": "Account is pending"}))
    with pytest.raises(ConfigError, match="Account is pending"):
        provider.send(template, recipients(2), now=NOW)


def test_unreadable_success_counts_as_sent(provider: PostmarkProvider, fake_api: FakeAPI,
                                           template: MessageTemplate) -> None:
    """A 200 whose body cannot be read still means Postmark took the batch."""
    fake_api.script(Reply(status=200, body=b"<html>ok</html>"))
    results = provider.send(template, recipients(2), now=NOW)
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    assert "could not be read" in results[0].detail


def test_configured_stream_and_base_url(tmp_path: Path, fake_api: FakeAPI) -> None:
    """[delivery.postmark] sets the base URL and the message stream."""
    extra = f'[delivery.postmark]\nbase_url = "{fake_api.url}"\nmessage_stream = "news"\n'
    env = {"PUBLISHER_POSTMARK_TOKEN": "t"}
    provider = PostmarkProvider.from_config(publication_config(tmp_path, env=env, extra=extra))
    try:
        assert (provider.base_url, provider.message_stream) == (fake_api.url, "news")
    finally:
        provider.close()
