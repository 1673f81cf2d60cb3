"""Mailgun's messages API in batch mode: recipient variables stand in for every per-reader value."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import httpx
import pytest
from fakes import FakeAPI, vendors
from fakes.messages import publication_config, recipients, sample_template

from publisher.delivery.mailgun import MailgunProvider
from publisher.mail.mime import MessageTemplate
from publisher.models import Outcome

NOW = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> MessageTemplate:
    return sample_template(publication_config(tmp_path_factory.mktemp("publication")))


@pytest.fixture
def provider(fake_api: FakeAPI) -> Iterator[MailgunProvider]:
    fake_api.handler = vendors.mailgun("mg.example.org", "mg-key")
    with httpx.Client(timeout=10) as client:
        yield MailgunProvider(api_key="mg-key", domain="mg.example.org", base_url=fake_api.url,
                              client=client)


def _as_mailgun_would(text: str, variables: dict[str, str]) -> str:
    """Replace %recipient.KEY% the way Mailgun does for one recipient."""
    return re.sub(r"%recipient\.([\w:.-]+)%", lambda m: variables[m.group(1)], text)


def test_variables_rebuild_each_readers_copy(provider: MailgunProvider, fake_api: FakeAPI,
                                             template: MessageTemplate) -> None:
    """Substituting a reader's variables gives exactly that reader's bodies."""
    readers = recipients(3)
    readers[2] = replace(readers[2], name="Zoë <&> O'Hara")
    provider.send(template, readers, now=NOW)
    form = fake_api.requests[0].form()
    variables = json.loads(form["recipient-variables"][0])
    for reader in readers:
        html, text = template.parts(reader)
        assert _as_mailgun_would(form["html"][0], variables[reader.email]) == html
        assert _as_mailgun_would(form["text"][0], variables[reader.email]) == text


def test_per_reader_headers_go_through_variables(provider: MailgunProvider, fake_api: FakeAPI,
                                                 template: MessageTemplate) -> None:
    """h: fields that differ per reader use %recipient.x%; shared ones are sent as they are."""
    readers = recipients(2)
    provider.send(template, readers, now=NOW)
    form = fake_api.requests[0].form()
    variables = json.loads(form["recipient-variables"][0])
    assert form["h:List-Unsubscribe-Post"] == ["List-Unsubscribe=One-Click"]
    assert form["h:List-Id"] == ["Field Notes <example.org>"]
    for reader in readers:
        sent_headers = {
            name[2:]: _as_mailgun_would(values[0], variables[reader.email])
            for name, values in form.items()
            if name.startswith("h:") and name != "h:Reply-To"
        }
        assert sent_headers == template.headers(reader)
    assert form["h:Reply-To"] == ["Desk <desk@example.org>"]


def test_form_fields_and_privacy(provider: MailgunProvider, fake_api: FakeAPI,
                                 template: MessageTemplate) -> None:
    """from, to per reader, subject, delivery ids for webhooks, and no tracking."""
    readers = recipients(2)
    provider.send(template, readers, now=NOW)
    form = fake_api.requests[0].form()
    assert form["from"] == ["Dana Reyes <dana@example.org>"]
    assert form["to"] == ["Reader 0 <reader0@example.net>", "Reader 1 <reader1@example.net>"]
    assert form["subject"] == ["Sleep, stress and the body"]
    assert form["v:delivery_id"] == ["%recipient.delivery_id%"]
    assert form["o:tracking"] == form["o:tracking-clicks"] == form["o:tracking-opens"] == ["no"]


def test_queued_id_is_every_readers_provider_id(provider: MailgunProvider,
                                                template: MessageTemplate) -> None:
    """Mailgun answers one id for the batch; each result carries it."""
    results = provider.send(template, recipients(2), now=NOW)
    assert [r.outcome for r in results] == [Outcome.SENT] * 2
    assert results[0].provider_id.endswith("@mg.example.org>")
    assert results[0].provider_id == results[1].provider_id


def test_repeated_address_goes_in_a_second_call(provider: MailgunProvider, fake_api: FakeAPI,
                                                template: MessageTemplate) -> None:
    """recipient-variables are keyed by address, so a repeat starts a new request."""
    one, two = recipients(2)
    again = replace(one, delivery_id=999, message_id="<i7.d999@example.org>")
    provider.send(template, [one, two, again], now=NOW)
    assert fake_api.problems == []
    assert [len(r.form()["to"]) for r in fake_api.requests] == [2, 1]
