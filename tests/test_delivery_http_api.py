"""What every HTTP API provider does the same way, against the loopback fake of each vendor."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from fakes import FakeAPI, Reply, vendors
from fakes.http_api import Handler
from fakes.messages import publication_config, recipients, sample_template

from publisher.delivery.base import CallMaybeTaken
from publisher.delivery.http_api import HttpApiProvider
from publisher.delivery.mailgun import MailgunProvider
from publisher.delivery.postmark import PostmarkProvider
from publisher.delivery.resend import ResendProvider
from publisher.delivery.sendgrid import SendGridProvider
from publisher.delivery.ses import SesProvider
from publisher.errors import ConfigError, TemporaryFailure
from publisher.mail.mime import MessageTemplate
from publisher.models import Outcome

NOW = datetime.now(UTC)


@dataclass(frozen=True)
class Vendor:
    name: str
    make: Callable[[str, httpx.Client], HttpApiProvider]
    handler: Callable[[], Handler]
    variable: str
    """The secret a refused account points at."""
    refusal: Reply
    """How the vendor refuses a request it will never take."""
    refusal_text: str


VENDORS = [
    Vendor(
        "postmark",
        lambda url, client: PostmarkProvider(api_key="pm-token", base_url=url, client=client),
        lambda: vendors.postmark("pm-token"),
        "PUBLISHER_POSTMARK_TOKEN",
        Reply.error(422, {"ErrorCode": 300, "Message": "Invalid 'From' address"}),
        "Invalid 'From' address",
    ),
    Vendor(
        "sendgrid",
        lambda url, client: SendGridProvider(api_key="sg-key", base_url=url, client=client),
        lambda: vendors.sendgrid("sg-key"),
        "PUBLISHER_SENDGRID_API_KEY",
        Reply.error(400, {"errors": [{"field": "from", "message": "The from address does not "
                                      "match a verified Sender Identity"}]}),
        "verified Sender Identity",
    ),
    Vendor(
        "mailgun",
        lambda url, client: MailgunProvider(api_key="mg-key", domain="mg.example.org",
                                            base_url=url, client=client),
        lambda: vendors.mailgun("mg.example.org", "mg-key"),
        "PUBLISHER_MAILGUN_API_KEY",
        Reply.error(400, {"message": "from parameter is not a valid address"}),
        "not a valid address",
    ),
    Vendor(
        "ses",
        lambda url, client: SesProvider(access_key="AKIDEXAMPLE", secret_key="ses-secret",
                                        region="eu-west-1", endpoint=url, client=client),
        lambda: vendors.ses("AKIDEXAMPLE", "ses-secret", "eu-west-1"),
        "AWS_ACCESS_KEY_ID",
        Reply(status=400, json={"message": "Email address is not verified."},
              headers={"x-amzn-ErrorType": "MessageRejected:http://internal.amazon.com/"}),
        "Email address is not verified",
    ),
    Vendor(
        "resend",
        lambda url, client: ResendProvider(api_key="re-key", base_url=url, client=client),
        lambda: vendors.resend("re-key"),
        "PUBLISHER_RESEND_API_KEY",
        Reply.error(422, {"statusCode": 422, "name": "validation_error",
                          "message": "The `from` field is invalid."}),
        "`from` field is invalid",
    ),
]


@pytest.fixture(params=VENDORS, ids=[v.name for v in VENDORS])
def vendor(request: pytest.FixtureRequest) -> Vendor:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    """The caller's client, as a daemon sharing one across providers would pass it."""
    with httpx.Client(timeout=10.0) as shared:
        yield shared


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> MessageTemplate:
    return sample_template(publication_config(tmp_path_factory.mktemp("publication")))


@pytest.fixture
def provider(vendor: Vendor, fake_api: FakeAPI, client: httpx.Client) -> HttpApiProvider:
    fake_api.handler = vendor.handler()
    return vendor.make(fake_api.url, client)


def test_accepted_batch_is_sent(provider: HttpApiProvider, fake_api: FakeAPI,
                                template: MessageTemplate) -> None:
    """A request shaped as the vendor documents it is accepted: every recipient SENT."""
    readers = recipients(3)
    results = provider.send(template, readers, now=NOW)
    assert fake_api.problems == []
    assert [r.outcome for r in results] == [Outcome.SENT] * 3
    assert [r.delivery_id for r in results] == [r.delivery_id for r in readers]
    assert all(r.provider_id for r in results)


def test_requests_split_at_the_vendor_limit(provider: HttpApiProvider, fake_api: FakeAPI,
                                            template: MessageTemplate) -> None:
    """More recipients than one call may carry become several calls, none too big."""
    limit = provider.call_size or provider.max_batch
    readers = recipients(provider.max_batch + 1)
    results = provider.send(template, readers, now=NOW)
    assert fake_api.problems == []
    assert all(r.outcome is Outcome.SENT for r in results) and len(results) == len(readers)
    expected_calls = -(-len(readers) // limit)
    assert len(fake_api.requests) == expected_calls


def test_refused_request_fails_with_the_vendor_words(vendor: Vendor, provider: HttpApiProvider,
                                                     fake_api: FakeAPI,
                                                     template: MessageTemplate) -> None:
    """A 4xx that is not about the account fails the call's recipients, saying why."""
    fake_api.script(vendor.refusal)
    (result, *_) = provider.send(template, recipients(1), now=NOW)
    assert result.outcome is Outcome.FAILED
    assert vendor.refusal_text in result.detail
    assert f"HTTP {vendor.refusal.status}" in result.detail


def refused_for_now(provider: HttpApiProvider, template: MessageTemplate, count: int,
                    now: datetime = NOW) -> TemporaryFailure:
    """The TemporaryFailure a call refused as a whole raises (the engine retries the batch)."""
    with pytest.raises(TemporaryFailure) as caught:
        provider.send(template, recipients(count), now=now)
    return caught.value


def test_rate_limit_retries_after_the_given_seconds(provider: HttpApiProvider, fake_api: FakeAPI,
                                                    template: MessageTemplate) -> None:
    """429 with Retry-After: the call is refused for that long, and no further calls are made."""
    provider.max_batch = 2
    fake_api.script(Reply.rate_limited(7))
    assert refused_for_now(provider, template, 5).retry_after == 7.0
    assert len(fake_api.requests) == 1


def test_rate_limit_after_an_accepted_call_keeps_its_results(
    provider: HttpApiProvider, fake_api: FakeAPI, template: MessageTemplate
) -> None:
    """A 429 on a later call: the earlier answers stay, the rest RETRY with the delay."""
    provider.max_batch = 1
    handler = fake_api.handler
    assert handler is not None
    answered: list[object] = []

    def first_then_throttle(request: object) -> Reply:
        answered.append(request)
        if len(answered) == 1:
            return handler(request)  # type: ignore[arg-type]
        return Reply.rate_limited(7)

    fake_api.handler = first_then_throttle
    results = provider.send(template, recipients(3), now=NOW)
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.RETRY, Outcome.RETRY]
    assert [r.retry_after for r in results[1:]] == [7.0, 7.0]
    assert len(fake_api.requests) == 2


def test_retry_after_as_a_date(provider: HttpApiProvider, fake_api: FakeAPI,
                               template: MessageTemplate) -> None:
    """Retry-After given as an HTTP date becomes the seconds until then."""
    now = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    fake_api.script(Reply.rate_limited(format_datetime(now + timedelta(minutes=2), usegmt=True)))
    assert refused_for_now(provider, template, 1, now).retry_after == 120.0


def test_server_error_retries(provider: HttpApiProvider, fake_api: FakeAPI,
                              template: MessageTemplate) -> None:
    """A 5xx is temporary for the whole call, without a delay hint."""
    fake_api.script(Reply.server_error(503))
    refusal = refused_for_now(provider, template, 2)
    assert refusal.retry_after is None
    assert "HTTP 503" in str(refusal)


def test_hanging_server_times_out_into_retry(vendor: Vendor, fake_api: FakeAPI,
                                             template: MessageTemplate) -> None:
    """No answer within the client's timeout: a retry, noting it may have been accepted."""
    fake_api.script(Reply.hang(5.0))
    started = datetime.now(UTC)
    with httpx.Client(timeout=0.3) as impatient:
        refusal = refused_for_now(vendor.make(fake_api.url, impatient), template, 2)
    assert (datetime.now(UTC) - started).total_seconds() < 3
    assert "may have accepted" in str(refusal)
    assert isinstance(refusal, CallMaybeTaken)


def test_unreachable_api_retries(vendor: Vendor, client: httpx.Client,
                                 template: MessageTemplate) -> None:
    """Nobody listening at the base URL: a retry, saying the vendor cannot be reached."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = vendor.make(f"http://127.0.0.1:{port}", client)
    refusal = refused_for_now(provider, template, 2)
    assert "cannot reach" in str(refusal)
    assert not isinstance(refusal, CallMaybeTaken)  # nothing left: a retry cannot double


def test_refused_credentials_stop_the_call(vendor: Vendor, provider: HttpApiProvider,
                                           fake_api: FakeAPI, template: MessageTemplate) -> None:
    """401 before anything was accepted: a config error naming the secret, no results."""
    fake_api.script(Reply.error(401, {"message": "Invalid credentials"}))
    with pytest.raises(ConfigError, match=vendor.variable):
        provider.send(template, recipients(2), now=NOW)


def test_refusal_after_an_accepted_call_keeps_its_results(provider: HttpApiProvider,
                                                          fake_api: FakeAPI,
                                                          template: MessageTemplate) -> None:
    """Once a call was accepted, a later 401 turns only the untried recipients into retries."""
    provider.max_batch = 1
    handler = fake_api.handler
    assert handler is not None
    answers = iter([None])

    def first_then_refuse(request: object) -> Reply:
        if next(answers, "refuse") is None:
            return handler(request)  # type: ignore[arg-type]
        return Reply.error(401, {"message": "key revoked"})

    fake_api.handler = first_then_refuse
    results = provider.send(template, recipients(3), now=NOW)
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.RETRY, Outcome.RETRY]
    assert "key revoked" in results[1].detail


def test_unusable_recipient_fails_alone(provider: HttpApiProvider, fake_api: FakeAPI,
                                        template: MessageTemplate) -> None:
    """A recipient whose values cannot be used fails; the call goes out for the others."""
    good, bad, other = recipients(3)
    bad = replace(bad, email="no address")
    results = provider.send(template, [good, bad, other], now=NOW)
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.FAILED, Outcome.SENT]
    assert fake_api.problems == []


def test_injected_client_is_left_open(provider: HttpApiProvider, client: httpx.Client) -> None:
    """close() does not close a client the caller owns."""
    provider.close()
    assert not client.is_closed


def test_secrets_never_appear_in_results(vendor: Vendor, fake_api: FakeAPI,
                                         template: MessageTemplate) -> None:
    """Whatever goes wrong, no key or token reaches the ledger's detail text."""
    fake_api.script(Reply.error(400, {"message": "bad"}), Reply.server_error(), Reply.hang(5))
    details = []
    with httpx.Client(timeout=0.3) as impatient:
        provider = vendor.make(fake_api.url, impatient)
        for _ in range(3):
            try:
                details += [r.detail for r in provider.send(template, recipients(1), now=NOW)]
            except TemporaryFailure as refusal:
                details.append(str(refusal))
    assert len(details) == 3
    text = " ".join(details)
    for secret in ("pm-token", "sg-key", "mg-key", "ses-secret", "re-key"):
        assert secret not in text
