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
from sqlalchemy import Engine
from web_support import AppClient, live_server, make_publication

from publisher.config import Config
from publisher.models import SubscriberStatus
from publisher.store import open_store, subscribers
from publisher.web import create_app
from publisher.web.signatures import sns_string_to_sign

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

    def __call__(self, url: str) -> bytes:
        self.urls.append(url)
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


def mailgun_event(event: dict[str, object], *, key: str = MAILGUN_KEY) -> dict[str, object]:
    return {"signature": mailgun_signature(str(int(time.time())), "a" * 50, key), "event-data": event}


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
    form = {**mailgun_signature("1700000000", "b" * 50), "event": "complained",
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
                topic: str = TOPIC) -> dict[str, str]:
    message: dict[str, str] = {
        "Type": kind,
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": topic,
        "Message": json.dumps(notification or {}),
        "Timestamp": "2026-03-02T09:00:00.000Z",
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
