"""Provider webhooks: each signature scheme accepted when right and refused when wrong,
hard bounces and complaints suppressing the address, soft bounces ignored."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import Engine, func, select
from web_support import AppClient, live_server, make_publication

from publisher.config import Config
from publisher.models import SubscriberStatus
from publisher.store import ledger, open_store, subscribers
from publisher.store.schema import events
from publisher.web import create_app
from publisher.web.signatures import sns_string_to_sign
from publisher.web.webhooks import Unavailable

NOW = datetime.now(UTC).replace(microsecond=0)
POSTMARK_SECRET = "pm-hook-secret"
MAILGUN_KEY = "key-mailgun-signing"
RESEND_SECRET = "whsec_" + base64.b64encode(b"resend-signing-key-0123456789").decode()
TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-bounces"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc123.pem"
SUBSCRIBE_URL = (
    "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=" + TOPIC
)

EC_KEY = ec.generate_private_key(ec.SECP256R1())
EC_PUBLIC = base64.b64encode(
    EC_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _certificate() -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(RSA_KEY.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .sign(RSA_KEY, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


CERT_PEM = _certificate()


class Fetcher:
    """Stands in for HTTPS GETs to AWS: serves the test certificate, records every URL."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.failure: Exception | None = None

    def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        if self.failure is not None:
            raise self.failure
        return CERT_PEM if url == CERT_URL else b"<ConfirmSubscriptionResponse/>"


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_publication(
        tmp_path,
        extra=f'\n[webhooks]\nses_topic_arns = ["{TOPIC}"]\n',
        env={
            "PUBLISHER_POSTMARK_WEBHOOK_SECRET": POSTMARK_SECRET,
            "PUBLISHER_SENDGRID_WEBHOOK_PUBLIC_KEY": EC_PUBLIC,
            "PUBLISHER_MAILGUN_WEBHOOK_KEY": MAILGUN_KEY,
            "PUBLISHER_RESEND_WEBHOOK_SECRET": RESEND_SECRET,
        },
    )


@pytest.fixture
def engine(config: Config) -> Engine:
    db = open_store(config.store_url)
    for address in ("hard@example.org", "soft@example.org", "spam@example.org"):
        subscribers.add(db, address, now=NOW)
    return db


@pytest.fixture
def fetcher() -> Fetcher:
    return Fetcher()


@pytest.fixture
def client(config: Config, engine: Engine, fetcher: Fetcher) -> AppClient:
    return AppClient(create_app(config, engine=engine, fetch=fetcher))


def status(engine: Engine, email: str) -> SubscriberStatus:
    found = subscribers.find(engine, email)
    assert found is not None
    return found.status


def unchanged(engine: Engine) -> bool:
    return all(
        status(engine, a) is SubscriberStatus.ACTIVE
        for a in ("hard@example.org", "soft@example.org", "spam@example.org")
    )


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


POSTMARK_BOUNCE = {
    "RecordType": "Bounce", "Type": "HardBounce", "TypeCode": 1, "Email": "hard@example.org",
    "Description": "The server was unable to deliver your message", "Inactive": True,
}


def test_postmark_hard_bounce(client: AppClient, engine: Engine) -> None:
    """Postmark with the right Basic credentials: a hard bounce marks the address bounced."""
    answer = client.post(
        "/webhooks/postmark", json=POSTMARK_BOUNCE,
        headers={"authorization": basic("postmark", POSTMARK_SECRET)},
    )
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "suppressed": 1}
    assert status(engine, "hard@example.org") is SubscriberStatus.BOUNCED


def test_postmark_token_in_query(client: AppClient, engine: Engine) -> None:
    """The shared secret may also come as ?token= for setups without Basic auth."""
    complaint = {"RecordType": "SpamComplaint", "Type": "SpamComplaint", "Email": "spam@example.org"}
    answer = client.post(f"/webhooks/postmark?token={POSTMARK_SECRET}", json=complaint)
    assert answer.status_code == 200
    assert status(engine, "spam@example.org") is SubscriberStatus.COMPLAINED


def test_postmark_soft_bounce_ignored(client: AppClient, engine: Engine) -> None:
    """A soft bounce changes nothing."""
    soft = {**POSTMARK_BOUNCE, "Type": "SoftBounce", "Email": "soft@example.org", "Inactive": False}
    client.post(
        "/webhooks/postmark", json=soft, headers={"authorization": basic("x", POSTMARK_SECRET)}
    )
    assert unchanged(engine)


def test_postmark_wrong_secret(client: AppClient, engine: Engine) -> None:
    """Wrong credentials get 401 with a Basic challenge, and nothing changes."""
    answer = client.post(
        "/webhooks/postmark", json=POSTMARK_BOUNCE, headers={"authorization": basic("u", "nope")}
    )
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Basic")
    assert unchanged(engine)


def test_unconfigured_provider_refused(tmp_path: Path) -> None:
    """Without its secret in the environment a provider's calls are refused (403)."""
    config = make_publication(tmp_path)
    client = AppClient(create_app(config))
    answer = client.post(
        "/webhooks/postmark", json=POSTMARK_BOUNCE,
        headers={"authorization": basic("postmark", POSTMARK_SECRET)},
    )
    assert answer.status_code == 403


def sendgrid_headers(body: bytes, timestamp: str | None = None) -> dict[str, str]:
    stamp = timestamp or str(int(time.time()))
    signature = EC_KEY.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "content-type": "application/json",
        "x-twilio-email-event-webhook-signature": base64.b64encode(signature).decode(),
        "x-twilio-email-event-webhook-timestamp": stamp,
    }


SENDGRID_EVENTS = json.dumps([
    {"email": "hard@example.org", "event": "bounce", "type": "bounce", "reason": "550 5.1.1 unknown user"},
    {"email": "soft@example.org", "event": "bounce", "type": "blocked", "reason": "421 try later"},
    {"email": "spam@example.org", "event": "spamreport"},
    {"email": "soft@example.org", "event": "delivered"},
]).encode()


def test_sendgrid_signed_events(client: AppClient, engine: Engine) -> None:
    """SendGrid's ECDSA-signed batch: bounce -> bounced, spamreport -> complained, blocked ignored."""
    answer = client.post(
        "/webhooks/sendgrid", content=SENDGRID_EVENTS, headers=sendgrid_headers(SENDGRID_EVENTS)
    )
    assert answer.status_code == 200
    assert status(engine, "hard@example.org") is SubscriberStatus.BOUNCED
    assert status(engine, "spam@example.org") is SubscriberStatus.COMPLAINED
    assert status(engine, "soft@example.org") is SubscriberStatus.ACTIVE


def test_sendgrid_tampered_body(client: AppClient, engine: Engine) -> None:
    """A body changed after signing is refused with 403, nothing changed."""
    headers = sendgrid_headers(SENDGRID_EVENTS)
    tampered = SENDGRID_EVENTS.replace(b"hard@", b"soft@")
    assert client.post("/webhooks/sendgrid", content=tampered, headers=headers).status_code == 403
    assert unchanged(engine)


def test_sendgrid_missing_signature(client: AppClient, engine: Engine) -> None:
    """No signature headers: 403."""
    answer = client.post(
        "/webhooks/sendgrid", content=SENDGRID_EVENTS, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 403
    assert unchanged(engine)


def mailgun_signature(timestamp: str, token: str, key: str = MAILGUN_KEY) -> dict[str, str]:
    digest = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {"timestamp": timestamp, "token": token, "signature": digest}


def mailgun_event(
    event: dict[str, object], *, key: str = MAILGUN_KEY, at: int | None = None
) -> dict[str, object]:
    stamp = str(at if at is not None else int(time.time()))
    return {"signature": mailgun_signature(stamp, "a" * 50, key), "event-data": event}


def test_mailgun_permanent_failure(client: AppClient, engine: Engine) -> None:
    """Mailgun's signed JSON: a permanent failure marks the address bounced."""
    payload = mailgun_event(
        {"event": "failed", "severity": "permanent", "recipient": "hard@example.org",
         "reason": "bounce"}
    )
    assert client.post("/webhooks/mailgun", json=payload).status_code == 200
    assert status(engine, "hard@example.org") is SubscriberStatus.BOUNCED


def test_mailgun_temporary_failure_ignored(client: AppClient, engine: Engine) -> None:
    """A temporary failure changes nothing."""
    payload = mailgun_event(
        {"event": "failed", "severity": "temporary", "recipient": "soft@example.org"}
    )
    assert client.post("/webhooks/mailgun", json=payload).status_code == 200
    assert unchanged(engine)


def test_mailgun_complaint_legacy_form(client: AppClient, engine: Engine) -> None:
    """Mailgun's legacy form-encoded webhooks are signed the same way."""
    form = {**mailgun_signature(str(int(time.time())), "b" * 50), "event": "complained",
            "recipient": "spam@example.org"}
    assert client.post("/webhooks/mailgun", data=form).status_code == 200
    assert status(engine, "spam@example.org") is SubscriberStatus.COMPLAINED


def test_mailgun_wrong_key(client: AppClient, engine: Engine) -> None:
    """Signed with another key: 403, nothing changed."""
    payload = mailgun_event(
        {"event": "failed", "severity": "permanent", "recipient": "hard@example.org"},
        key="key-someone-else",
    )
    assert client.post("/webhooks/mailgun", json=payload).status_code == 403
    assert unchanged(engine)


def sns_message(notification: dict[str, object] | None = None, *, version: str = "1",
                kind: str = "Notification", cert_url: str = CERT_URL,
                topic: str = TOPIC, sent: datetime | None = None) -> dict[str, str]:
    stamp = (sent or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    message: dict[str, str] = {
        "Type": kind,
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": topic,
        "Message": json.dumps(notification or {}),
        "Timestamp": stamp,
        "SignatureVersion": version,
        "SigningCertURL": cert_url,
    }
    if kind == "Notification":
        message["Subject"] = "Amazon SES Email Event Notification"
    else:
        message["Token"] = "2336412f37fb687f5d51e6e2425dacbba"
        message["SubscribeURL"] = SUBSCRIBE_URL
        message["Message"] = "You have chosen to subscribe to the topic."
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303  (SNS v1)
    signature = RSA_KEY.sign(sns_string_to_sign(message), padding.PKCS1v15(), algorithm)
    message["Signature"] = base64.b64encode(signature).decode()
    return message


SES_BOUNCE = {
    "notificationType": "Bounce",
    "bounce": {
        "bounceType": "Permanent", "bounceSubType": "General",
        "bouncedRecipients": [{"emailAddress": "hard@example.org"}],
    },
}


def post_sns(client: AppClient, message: dict[str, str]) -> int:
    return client.post(
        "/webhooks/ses", content=json.dumps(message).encode(),
        headers={"content-type": "text/plain; charset=UTF-8",
                 "x-amz-sns-message-type": message["Type"]},
    ).status_code


@pytest.mark.parametrize("version", ["1", "2"])
def test_ses_permanent_bounce(
    client: AppClient, engine: Engine, fetcher: Fetcher, version: str
) -> None:
    """An SNS-signed SES bounce (signature versions 1 and 2) marks the address bounced."""
    assert post_sns(client, sns_message(SES_BOUNCE, version=version)) == 200
    assert status(engine, "hard@example.org") is SubscriberStatus.BOUNCED
    assert fetcher.urls == [CERT_URL]


def test_ses_complaint_and_transient_bounce(client: AppClient, engine: Engine) -> None:
    """A complaint marks the address complained; a transient bounce changes nothing."""
    complaint = {"notificationType": "Complaint", "complaint": {
        "complainedRecipients": [{"emailAddress": "spam@example.org"}],
        "complaintFeedbackType": "abuse"}}
    transient = {"eventType": "Bounce", "bounce": {
        "bounceType": "Transient", "bouncedRecipients": [{"emailAddress": "soft@example.org"}]}}
    assert post_sns(client, sns_message(complaint)) == 200
    assert post_sns(client, sns_message(transient)) == 200
    assert status(engine, "spam@example.org") is SubscriberStatus.COMPLAINED
    assert status(engine, "soft@example.org") is SubscriberStatus.ACTIVE


def test_ses_bad_signature(client: AppClient, engine: Engine) -> None:
    """A message altered after SNS signed it is refused."""
    message = sns_message(SES_BOUNCE)
    message["Message"] = message["Message"].replace("hard@", "soft@")
    assert post_sns(client, message) == 403
    assert unchanged(engine)


def test_ses_certificate_only_from_aws(
    client: AppClient, engine: Engine, fetcher: Fetcher
) -> None:
    """A SigningCertURL off sns.<region>.amazonaws.com is refused before any fetch."""
    for url in (
        "https://evil.example/cert.pem",
        "http://sns.us-east-1.amazonaws.com/cert.pem",
        "https://sns.us-east-1.amazonaws.com.evil.example/cert.pem",
        "https://user@sns.us-east-1.amazonaws.com/cert.pem",
    ):
        assert post_sns(client, sns_message(SES_BOUNCE, cert_url=url)) == 403
    assert fetcher.urls == []
    assert unchanged(engine)


def test_ses_unlisted_topic(client: AppClient, engine: Engine, fetcher: Fetcher) -> None:
    """A validly signed message from a topic not in webhooks.ses_topic_arns is refused."""
    other = "arn:aws:sns:us-east-1:999999999999:someone-elses"
    assert post_sns(client, sns_message(SES_BOUNCE, topic=other)) == 403
    assert unchanged(engine)
    assert fetcher.urls == []


def test_sns_subscription_confirmed(client: AppClient, fetcher: Fetcher) -> None:
    """A signed SubscriptionConfirmation for a listed topic is confirmed by fetching SubscribeURL."""
    assert post_sns(client, sns_message(kind="SubscriptionConfirmation")) == 200
    assert fetcher.urls == [CERT_URL, SUBSCRIBE_URL]


def svix_headers(body: bytes, *, secret: str = RESEND_SECRET, at: int | None = None) -> dict[str, str]:
    msg_id, stamp = "msg_2bTvK6Xb8Yc", str(at if at is not None else int(time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "content-type": "application/json",
        "svix-id": msg_id,
        "svix-timestamp": stamp,
        "svix-signature": "v1,bm90LXRoaXMtb25l v1," + base64.b64encode(digest).decode(),
    }


RESEND_BOUNCE = json.dumps({
    "type": "email.bounced", "created_at": "2026-03-02T09:00:00.000Z",
    "data": {"to": ["hard@example.org"], "bounce": {"type": "Permanent", "message": "No such user"}},
}).encode()


def test_resend_bounce(client: AppClient, engine: Engine) -> None:
    """A Svix-signed Resend bounce (the right one of two signatures) marks the address bounced."""
    answer = client.post("/webhooks/resend", content=RESEND_BOUNCE, headers=svix_headers(RESEND_BOUNCE))
    assert answer.status_code == 200
    assert status(engine, "hard@example.org") is SubscriberStatus.BOUNCED


def test_resend_complaint(client: AppClient, engine: Engine) -> None:
    """email.complained marks the address complained."""
    body = json.dumps({"type": "email.complained", "data": {"to": ["spam@example.org"]}}).encode()
    assert client.post("/webhooks/resend", content=body, headers=svix_headers(body)).status_code == 200
    assert status(engine, "spam@example.org") is SubscriberStatus.COMPLAINED


def test_resend_wrong_secret(client: AppClient, engine: Engine) -> None:
    """Signed with another secret: 403."""
    other = "whsec_" + base64.b64encode(b"another-key").decode()
    headers = svix_headers(RESEND_BOUNCE, secret=other)
    assert client.post("/webhooks/resend", content=RESEND_BOUNCE, headers=headers).status_code == 403
    assert unchanged(engine)


def test_resend_replay_refused(client: AppClient, engine: Engine) -> None:
    """A correctly signed call from an hour ago is a replay: 403."""
    headers = svix_headers(RESEND_BOUNCE, at=int(time.time()) - 3600)
    assert client.post("/webhooks/resend", content=RESEND_BOUNCE, headers=headers).status_code == 403
    assert unchanged(engine)


def test_unknown_provider(client: AppClient) -> None:
    """A provider publisher does not know is 404."""
    assert client.post("/webhooks/mandrill", json={}).status_code == 404


def test_oversized_body_refused(client: AppClient, engine: Engine) -> None:
    """A body past the webhook limit is refused with 413 before any parsing."""
    answer = client.post("/webhooks/sendgrid", content=b"[" + b" " * (9 * 1024 * 1024) + b"]")
    assert answer.status_code == 413
    assert unchanged(engine)


def test_webhook_over_real_http(config: Config, engine: Engine) -> None:
    """The Postmark hook works through uvicorn on loopback as well."""
    with live_server(create_app(config, engine=engine)) as url:
        answer = httpx.post(
            url + "/webhooks/postmark", json=POSTMARK_BOUNCE, auth=("postmark", POSTMARK_SECRET)
        )
    assert answer.status_code == 200
    assert status(engine, "hard@example.org") is SubscriberStatus.BOUNCED


TWO_HOURS_AGO = int(time.time()) - 2 * 3600
AHEAD = int(time.time()) + 3600


@pytest.mark.parametrize("at", [TWO_HOURS_AGO, AHEAD], ids=["old", "ahead"])
def test_sendgrid_replay_refused(client: AppClient, engine: Engine, at: int) -> None:
    """A correctly signed SendGrid batch two hours old, or an hour ahead: 403."""
    headers = sendgrid_headers(SENDGRID_EVENTS, timestamp=str(at))
    assert client.post("/webhooks/sendgrid", content=SENDGRID_EVENTS, headers=headers).status_code == 403
    assert unchanged(engine)


@pytest.mark.parametrize("at", [TWO_HOURS_AGO, AHEAD], ids=["old", "ahead"])
def test_mailgun_replay_refused(client: AppClient, engine: Engine, at: int) -> None:
    """A correctly signed Mailgun call (JSON or legacy form) too old or ahead: 403."""
    payload = mailgun_event(
        {"event": "failed", "severity": "permanent", "recipient": "hard@example.org"}, at=at
    )
    assert client.post("/webhooks/mailgun", json=payload).status_code == 403
    form = {**mailgun_signature(str(at), "c" * 50), "event": "complained",
            "recipient": "spam@example.org"}
    assert client.post("/webhooks/mailgun", data=form).status_code == 403
    assert unchanged(engine)


@pytest.mark.parametrize("hours", [-2.0, 1.0])
def test_sns_replay_refused_before_any_fetch(
    client: AppClient, engine: Engine, fetcher: Fetcher, hours: float
) -> None:
    """An SNS message signed two hours ago (SNS stops retrying after one), or an hour
    ahead, is refused without fetching a certificate."""
    message = sns_message(SES_BOUNCE, sent=datetime.now(UTC) + timedelta(hours=hours))
    assert post_sns(client, message) == 403
    assert fetcher.urls == []
    assert unchanged(engine)


def test_sns_retry_within_the_hour_accepted(client: AppClient, engine: Engine) -> None:
    """SNS retries the same signed message for up to an hour: 40 minutes old is fine."""
    message = sns_message(SES_BOUNCE, sent=datetime.now(UTC) - timedelta(minutes=40))
    assert post_sns(client, message) == 200
    assert status(engine, "hard@example.org") is SubscriberStatus.BOUNCED


def test_sns_certificate_must_be_a_pem_file(client: AppClient, fetcher: Fetcher) -> None:
    """A SigningCertURL on an AWS host but not naming a .pem file is refused unfetched."""
    for url in (
        "https://sns.us-east-1.amazonaws.com/?Action=Anything",
        "https://sns.us-east-1.amazonaws.com/cert.pem?x=1",
        "https://sns.us-east-1.amazonaws.com/some/other/path",
    ):
        assert post_sns(client, sns_message(SES_BOUNCE, cert_url=url)) == 403
    assert fetcher.urls == []


@pytest.mark.parametrize(
    "failure", [OSError("network unreachable"), Unavailable("AWS answered 503")]
)
def test_sns_certificate_unreachable_is_503(
    client: AppClient, engine: Engine, fetcher: Fetcher, failure: Exception
) -> None:
    """When the certificate cannot be fetched the call is neither accepted nor refused:
    503 with Retry-After, so SNS tries again."""
    fetcher.failure = failure
    answer = client.post(
        "/webhooks/ses", content=json.dumps(sns_message(SES_BOUNCE)).encode(),
        headers={"content-type": "text/plain"},
    )
    assert answer.status_code == 503
    assert "retry-after" in answer.headers
    assert unchanged(engine)


def test_mailgun_non_ascii_signature_refused(client: AppClient, engine: Engine) -> None:
    """A signature with characters outside ASCII is a wrong signature (403), not a crash."""
    payload = mailgun_event({"event": "failed", "severity": "permanent",
                             "recipient": "hard@example.org"})
    payload["signature"] = {**payload["signature"], "signature": "é" * 64}  # type: ignore[dict-item]
    assert client.post("/webhooks/mailgun", json=payload).status_code == 403
    assert unchanged(engine)


NESTED = b"[" * 100_000 + b"]" * 100_000


def test_malformed_json_is_400(client: AppClient, engine: Engine) -> None:
    """Bodies that are not JSON, or nested past any parser, get 400 from every provider
    that parses before or after its check, never a 500."""
    auth = {"authorization": basic("postmark", POSTMARK_SECRET)}
    answers = {
        "postmark": client.post("/webhooks/postmark", content=b"{not json", headers=auth),
        "sendgrid": client.post(
            "/webhooks/sendgrid", content=b"{not json", headers=sendgrid_headers(b"{not json")
        ),
        "mailgun-nested": client.post(
            "/webhooks/mailgun", content=NESTED, headers={"content-type": "application/json"}
        ),
        "ses": client.post("/webhooks/ses", content=b"\xff\xfe not json"),
        "ses-nested": client.post("/webhooks/ses", content=NESTED),
        "resend": client.post(
            "/webhooks/resend", content=b"{not json", headers=svix_headers(b"{not json")
        ),
    }
    assert {name: a.status_code for name, a in answers.items()} == dict.fromkeys(answers, 400)
    assert unchanged(engine)


@pytest.mark.parametrize(
    "body",
    [
        {"type": "email.bounced", "data": ["hard@example.org"]},
        {"type": "email.bounced", "data": {"to": 5, "bounce": "Permanent"}},
        {"type": "email.complained", "data": {"to": [5, None, {"x": 1}]}},
        {"type": "email.bounced", "data": None},
    ],
)
def test_resend_odd_shapes_are_not_a_crash(
    client: AppClient, engine: Engine, body: dict[str, object]
) -> None:
    """Signed Resend events with fields of the wrong type suppress nothing and do not 500."""
    raw = json.dumps(body).encode()
    assert client.post("/webhooks/resend", content=raw, headers=svix_headers(raw)).status_code == 200
    assert unchanged(engine)


@pytest.mark.parametrize(
    "notification",
    [
        {"notificationType": "Bounce", "bounce": "Permanent"},
        {"notificationType": "Bounce",
         "bounce": {"bounceType": "Permanent", "bouncedRecipients": ["hard@example.org"]}},
        {"notificationType": "Bounce",
         "bounce": {"bounceType": "Permanent", "bouncedRecipients": "hard@example.org"}},
        {"notificationType": "Complaint", "complaint": ["spam@example.org"]},
    ],
)
def test_ses_odd_shapes_are_not_a_crash(
    client: AppClient, engine: Engine, notification: dict[str, object]
) -> None:
    """Signed SES notifications with fields of the wrong type suppress nothing and do not 500."""
    assert post_sns(client, sns_message(notification)) == 200
    assert unchanged(engine)


def test_bounce_for_unknown_address_is_accepted(client: AppClient, engine: Engine) -> None:
    """A hard bounce for an address not on the list is answered 200 and adds no one."""
    before = subscribers.counts(engine)
    answer = client.post(
        "/webhooks/postmark", json={**POSTMARK_BOUNCE, "Email": "stranger@example.org"},
        headers={"authorization": basic("postmark", POSTMARK_SECRET)},
    )
    assert answer.status_code == 200
    assert subscribers.find(engine, "stranger@example.org") is None
    assert subscribers.counts(engine) == before
    assert unchanged(engine)


def test_complaint_keeps_the_address_out_of_the_next_claim(
    client: AppClient, engine: Engine
) -> None:
    """Queued before, complained after, claimed later: the ledger skips that address."""
    issue = ledger.create_issue(
        engine, key="tag:example.org,2026:/w", kind="article", slug="w", subject="W",
        html="<p>w</p>", text="w", tag=None, status="draft", now=NOW,
    )
    assert ledger.enqueue(engine, issue, now=NOW) == 3
    body = json.dumps({"type": "email.complained", "data": {"to": ["spam@example.org"]}}).encode()
    assert client.post("/webhooks/resend", content=body, headers=svix_headers(body)).status_code == 200
    claimed = ledger.claim(engine, worker="w1", limit=10, now=NOW + timedelta(seconds=1))
    assert sorted(row.email for row in claimed) == ["hard@example.org", "soft@example.org"]


# Replays with another body, redeliveries, malformed signed fields


def event_rows(engine: Engine, email: str) -> int:
    """Bounce and complaint events recorded for `email`."""
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(events).where(
                events.c.email == email, events.c.kind.in_(("bounce", "complaint"))
            )
        ).scalar_one()


def test_mailgun_token_replayed_with_another_body_refused(
    config: Config, client: AppClient, engine: Engine
) -> None:
    """A captured Mailgun call re-sent with other event-data (its signature covers only
    timestamp and token) is refused, by this process and by any other one."""
    signature = mailgun_signature(str(int(time.time())), "r" * 50)
    first = {"signature": signature, "event-data": {"event": "complained", "recipient": "spam@example.org"}}
    assert client.post("/webhooks/mailgun", json=first).status_code == 200
    for target in ("hard@example.org", "soft@example.org"):
        forged = {"signature": signature, "event-data": {"event": "complained", "recipient": target}}
        assert client.post("/webhooks/mailgun", json=forged).status_code == 403
        other_process = AppClient(create_app(config, engine=open_store(config.store_url)))
        assert other_process.post("/webhooks/mailgun", json=forged).status_code == 403
        form = {**signature, "event": "complained", "recipient": target}
        assert client.post("/webhooks/mailgun", data=form).status_code == 403
    assert status(engine, "hard@example.org") is SubscriberStatus.ACTIVE
    assert status(engine, "soft@example.org") is SubscriberStatus.ACTIVE


def _postmark_twice(client: AppClient) -> None:
    for _ in range(2):
        event = {**POSTMARK_BOUNCE, "ID": 4323372036854775807}
        assert client.post("/webhooks/postmark", json=event,
                           headers={"authorization": basic("u", POSTMARK_SECRET)}).status_code == 200


def _sendgrid_twice(client: AppClient) -> None:
    body = json.dumps([{"email": "hard@example.org", "event": "bounce", "type": "bounce",
                        "sg_event_id": "sg-1", "reason": "550"}]).encode()
    for _ in range(2):
        assert client.post("/webhooks/sendgrid", content=body, headers=sendgrid_headers(body)).status_code == 200


def _mailgun_twice(client: AppClient) -> None:
    for token in ("t" * 50, "u" * 50):  # a new call each time, the same event
        payload = {"signature": mailgun_signature(str(int(time.time())), token),
                   "event-data": {"id": "mg-event-1", "event": "failed", "severity": "permanent",
                                  "recipient": "hard@example.org"}}
        assert client.post("/webhooks/mailgun", json=payload).status_code == 200


def _ses_twice(client: AppClient) -> None:
    message = sns_message(SES_BOUNCE)
    for _ in range(2):
        assert post_sns(client, message) == 200


def _resend_twice(client: AppClient) -> None:
    headers = svix_headers(RESEND_BOUNCE)
    for _ in range(2):
        assert client.post("/webhooks/resend", content=RESEND_BOUNCE, headers=headers).status_code == 200


@pytest.mark.parametrize(
    "deliver_twice", [_postmark_twice, _sendgrid_twice, _mailgun_twice, _ses_twice, _resend_twice],
    ids=["postmark", "sendgrid", "mailgun", "ses", "resend"],
)
def test_redelivered_event_writes_one_row(client: AppClient, engine: Engine, deliver_twice: object) -> None:
    """Providers retry: the same event delivered twice is recorded once, by its event id."""
    deliver_twice(client)  # type: ignore[operator]
    assert status(engine, "hard@example.org") is SubscriberStatus.BOUNCED
    assert event_rows(engine, "hard@example.org") == 1


@pytest.mark.parametrize(
    "cert_url",
    [
        "https://sns.us-east-1.amazonaws.com:99999/cert.pem",
        "https://[x/cert.pem",
        "https://sns.us-east-1.amazonaws.com:port/cert.pem",
        "https://[::1/cert.pem",
    ],
)
def test_malformed_certificate_url_is_refused_not_a_crash(
    client: AppClient, engine: Engine, fetcher: Fetcher, cert_url: str
) -> None:
    """A SigningCertURL that urllib cannot even split is a 403, never a 500; nothing fetched."""
    assert post_sns(client, sns_message(SES_BOUNCE, cert_url=cert_url)) == 403
    assert fetcher.urls == []
    assert unchanged(engine)


def test_overlong_address_in_a_signed_batch_is_skipped(
    client: AppClient, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """An address longer than the database column is skipped and logged; the rest of the
    batch is applied."""
    long_address = "x" * 400 + "@example.org"
    body = json.dumps([
        {"email": long_address, "event": "bounce", "type": "bounce", "sg_event_id": "a"},
        {"email": "hard@example.org", "event": "bounce", "type": "bounce", "sg_event_id": "b"},
        {"email": "spam@example.org", "event": "spamreport", "sg_event_id": "c"},
    ]).encode()
    answer = client.post("/webhooks/sendgrid", content=body, headers=sendgrid_headers(body))
    assert answer.status_code == 200
    assert answer.json()["suppressed"] == 2
    assert status(engine, "hard@example.org") is SubscriberStatus.BOUNCED
    assert status(engine, "spam@example.org") is SubscriberStatus.COMPLAINED
    assert event_rows(engine, long_address) == 0
    assert "skipped" in caplog.text
