"""SendGrid's v3 mail/send: one body with tokens, one personalization per reader."""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import httpx
import pytest
from fakes import FakeAPI, vendors
from fakes.messages import publication_config, recipients, sample_template

from publisher.delivery.sendgrid import SendGridProvider
from publisher.mail.mime import MessageTemplate
from publisher.models import Outcome

NOW = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> MessageTemplate:
    return sample_template(publication_config(tmp_path_factory.mktemp("publication")))


@pytest.fixture
def provider(fake_api: FakeAPI) -> Iterator[SendGridProvider]:
    fake_api.handler = vendors.sendgrid("sg-key")
    with httpx.Client(timeout=10) as client:
        yield SendGridProvider(api_key="sg-key", base_url=fake_api.url, client=client)


def _apply(text: str, substitutions: dict[str, str]) -> str:
    for token, value in substitutions.items():
        text = text.replace(token, value)
    return text


def test_substitutions_rebuild_each_readers_copy(provider: SendGridProvider, fake_api: FakeAPI,
                                                 template: MessageTemplate) -> None:
    """Applying a personalization's substitutions to the content gives that reader's parts."""
    readers = recipients(2)
    readers[1] = replace(readers[1], name="Zoë <&> O'Hara")
    provider.send(template, readers, now=NOW)
    body = fake_api.requests[0].json()
    text, html_part = (part["value"] for part in body["content"])
    for reader, personalization in zip(readers, body["personalizations"], strict=True):
        subs = personalization["substitutions"]
        assert _apply(html_part, subs) == template.parts(reader)[0]
        assert _apply(text, subs) == template.parts(reader)[1]
    assert html.escape("Zoë <&> O'Hara") in _apply(html_part, body["personalizations"][1]
                                                    ["substitutions"])


def test_each_personalization_has_its_own_headers(provider: SendGridProvider, fake_api: FakeAPI,
                                                  template: MessageTemplate) -> None:
    """List-Unsubscribe and Message-ID differ per reader and ride in the personalization."""
    readers = recipients(2)
    provider.send(template, readers, now=NOW)
    body = fake_api.requests[0].json()
    for index, (reader, item) in enumerate(zip(readers, body["personalizations"], strict=True)):
        assert item["to"] == [{"email": reader.email, "name": reader.name}]
        assert f"token{index}>" in item["headers"]["List-Unsubscribe"]
        assert item["headers"]["Message-ID"] == reader.message_id
        assert item["custom_args"] == {"delivery_id": str(reader.delivery_id)}


def test_sender_subject_and_privacy(provider: SendGridProvider, fake_api: FakeAPI,
                                    template: MessageTemplate) -> None:
    """From, Reply-To and subject are set once; click and open tracking are off."""
    provider.send(template, recipients(1), now=NOW)
    body = fake_api.requests[0].json()
    assert body["from"] == {"email": "dana@example.org", "name": "Dana Reyes"}
    assert body["reply_to"] == {"email": "desk@example.org", "name": "Desk"}
    assert body["subject"] == "Sleep, stress and the body"
    tracking = body["tracking_settings"]
    assert not tracking["click_tracking"]["enable"] and not tracking["open_tracking"]["enable"]


def test_repeated_address_goes_in_a_second_call(provider: SendGridProvider, fake_api: FakeAPI,
                                                template: MessageTemplate) -> None:
    """SendGrid refuses an address twice in one request, so a repeat starts a new one."""
    one, two = recipients(2)
    again = replace(one, delivery_id=999, message_id="<i7.d999@example.org>")
    results = provider.send(template, [one, two, again], now=NOW)
    assert fake_api.problems == []
    assert [len(r.json()["personalizations"]) for r in fake_api.requests] == [2, 1]
    assert [r.delivery_id for r in results] == [100, 101, 999]
    assert all(r.outcome is Outcome.SENT for r in results)


def test_message_id_header_names_the_call(provider: SendGridProvider,
                                          template: MessageTemplate) -> None:
    """SendGrid's X-Message-Id becomes every recipient's provider id."""
    results = provider.send(template, recipients(2), now=NOW)
    assert results[0].provider_id and results[0].provider_id == results[1].provider_id
