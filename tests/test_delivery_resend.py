"""Resend's batch endpoint: permissive validation and idempotent retries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from fakes import FakeAPI, vendors
from fakes.messages import publication_config, recipients, sample_template

from publisher.delivery.resend import ResendProvider
from publisher.mail.mime import MessageTemplate
from publisher.models import Outcome

NOW = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> MessageTemplate:
    return sample_template(publication_config(tmp_path_factory.mktemp("publication")))


@pytest.fixture
def provider(fake_api: FakeAPI) -> Iterator[ResendProvider]:
    fake_api.handler = vendors.resend("re-key", refuse={"reader1@example.net"})
    with httpx.Client(timeout=10) as client:
        yield ResendProvider(api_key="re-key", base_url=fake_api.url, client=client)


def test_email_fields(provider: ResendProvider, fake_api: FakeAPI,
                      template: MessageTemplate) -> None:
    """Each email has the reader's bodies, headers, reply_to and a delivery tag."""
    (reader,) = recipients(1)
    provider.send(template, [reader], now=NOW)
    (item,) = fake_api.requests[0].json()
    html, text = template.parts(reader)
    assert item["from"] == "Dana Reyes <dana@example.org>"
    assert item["to"] == ["Reader 0 <reader0@example.net>"]
    assert (item["html"], item["text"]) == (html, text)
    assert item["headers"] == template.headers(reader)
    assert item["reply_to"] == "Desk <desk@example.org>"
    assert item["tags"] == [{"name": "delivery_id", "value": "100"}]


def test_refused_email_fails_alone(provider: ResendProvider, fake_api: FakeAPI,
                                   template: MessageTemplate) -> None:
    """In permissive mode one refused email fails; the others are sent with their ids."""
    results = provider.send(template, recipients(3), now=NOW)
    assert fake_api.requests[0].headers["x-batch-validation"] == "permissive"
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.FAILED, Outcome.SENT]
    assert "Invalid `to` field" in results[1].detail
    assert results[0].provider_id and results[2].provider_id
    assert results[0].provider_id != results[2].provider_id


def test_idempotency_key_follows_the_batch(provider: ResendProvider, fake_api: FakeAPI,
                                           template: MessageTemplate) -> None:
    """The same rows get the same Idempotency-Key on a retry; other rows get another."""
    batch = recipients(2)
    provider.send(template, batch, now=NOW)
    provider.send(template, batch, now=NOW)
    provider.send(template, recipients(2, issue_id=8), now=NOW)
    keys = [r.headers["idempotency-key"] for r in fake_api.requests]
    assert keys[0] == keys[1] != keys[2]
    assert 0 < len(keys[0]) <= 256
