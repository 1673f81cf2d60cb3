"""Amazon SES v2 SendEmail: signed raw messages, one call each."""

from __future__ import annotations

import base64
import email.parser
import email.policy
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fakes import FakeAPI, Reply, vendors
from fakes.messages import publication_config, recipients, sample_template

from publisher.delivery.ses import SesProvider
from publisher.errors import ConfigError, TemporaryFailure
from publisher.mail.mime import MessageTemplate
from publisher.models import Outcome

NOW = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> MessageTemplate:
    return sample_template(publication_config(tmp_path_factory.mktemp("publication")))


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as shared:
        yield shared


@pytest.fixture
def provider(fake_api: FakeAPI, client: httpx.Client) -> SesProvider:
    fake_api.handler = vendors.ses("AKIDEXAMPLE", "ses-secret", "eu-west-1")
    return SesProvider(access_key="AKIDEXAMPLE", secret_key="ses-secret", region="eu-west-1",
                       endpoint=fake_api.url, configuration_set="newsletters", client=client)


def _ses_error(kind: str, message: str, status: int = 400) -> Reply:
    return Reply(status=status, json={"message": message},
                 headers={"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/"})


def test_raw_message_is_the_finished_message(provider: SesProvider, fake_api: FakeAPI,
                                             template: MessageTemplate) -> None:
    """Content.Raw.Data is the reader's whole message, headers and all, base64 encoded."""
    (reader,) = recipients(1)
    (result,) = provider.send(template, [reader], now=NOW)
    assert fake_api.problems == [] and result.outcome is Outcome.SENT
    body = fake_api.requests[0].json()
    raw = base64.b64decode(body["Content"]["Raw"]["Data"])
    assert raw == template.message_bytes(reader, NOW)
    parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert body["FromEmailAddress"] == "dana@example.org"
    assert body["Destination"] == {"ToAddresses": [reader.email]}
    assert body["ConfigurationSetName"] == "newsletters"
    assert body["EmailTags"] == [{"Name": "delivery_id", "Value": "100"}]


def test_requests_are_signed_for_the_region(provider: SesProvider, fake_api: FakeAPI,
                                            template: MessageTemplate) -> None:
    """The fake recomputes the SigV4 signature (service ses, eu-west-1) and it matches."""
    provider.send(template, recipients(2), now=NOW)
    assert fake_api.problems == []
    assert len(fake_api.requests) == 2
    assert all("/eu-west-1/ses/aws4_request" in r.headers["authorization"]
               for r in fake_api.requests)


def test_session_token_is_signed_in(fake_api: FakeAPI, client: httpx.Client,
                                    template: MessageTemplate) -> None:
    """Temporary credentials send X-Amz-Security-Token under the signature."""
    provider = SesProvider(access_key="AKIDEXAMPLE", secret_key="ses-secret", region="eu-west-1",
                           session_token="session", endpoint=fake_api.url, client=client)
    provider.send(template, recipients(1), now=NOW)
    headers = fake_api.requests[0].headers
    assert headers["x-amz-security-token"] == "session"
    assert "x-amz-security-token" in headers["authorization"]


def test_rejected_message_fails_alone(provider: SesProvider, fake_api: FakeAPI,
                                      template: MessageTemplate) -> None:
    """MessageRejected fails that message; the next one is still sent."""
    fake_api.script(_ses_error("MessageRejected", "Email address is not verified."))
    results = provider.send(template, recipients(2), now=NOW)
    assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.SENT]
    assert "not verified" in results[0].detail


def test_paused_sending_retries(provider: SesProvider, fake_api: FakeAPI,
                                template: MessageTemplate) -> None:
    """SendingPausedException is temporary, and the rest of the call waits with it."""
    fake_api.script(_ses_error("SendingPausedException", "Sending is paused"))
    with pytest.raises(TemporaryFailure, match="Sending is paused"):
        provider.send(template, recipients(3), now=NOW)
    assert len(fake_api.requests) == 1


def test_suspended_account_is_a_config_error(provider: SesProvider, fake_api: FakeAPI,
                                             template: MessageTemplate) -> None:
    """AccountSuspendedException refuses the account: nobody's row is failed for it."""
    fake_api.script(_ses_error("AccountSuspendedException", "Account suspended"))
    with pytest.raises(ConfigError, match="AWS_ACCESS_KEY_ID"):
        provider.send(template, recipients(2), now=NOW)


def test_region_from_the_environment(tmp_path: Path) -> None:
    """Without [delivery.ses] region, AWS_REGION picks the endpoint."""
    env = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_REGION": "us-east-2"}
    provider = SesProvider.from_config(publication_config(tmp_path, env=env))
    try:
        assert provider.base_url == "https://email.us-east-2.amazonaws.com"
    finally:
        provider.close()
