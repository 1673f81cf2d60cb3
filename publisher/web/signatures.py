"""How each mail provider proves that a webhook call is its own. Pure: bytes and keys in,
a WebhookError out when the proof fails.

    postmark   HTTP Basic credentials (or ?token=) equal to a shared secret: no signatures
    sendgrid   ECDSA P-256 / SHA-256 over timestamp + body, public key from the dashboard
    mailgun    HMAC-SHA256 of timestamp + token with the webhook signing key, hex
    ses (SNS)  RSA over the canonical "Key\\nValue\\n" string, certificate from an AWS URL
    resend     Svix: HMAC-SHA256 of "id.timestamp.body" with the whsec_ secret, base64

Every scheme that signs a time is held to it, so a captured call cannot be replayed
later: Svix within 5 minutes either way (what Svix's own libraries accept); SendGrid,
Mailgun and SNS up to an hour old (SNS retries an HTTP endpoint for at most 3,600
seconds) and 5 minutes ahead. Postmark signs nothing, so it has nothing to check.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from publisher.errors import WebhookError

__all__ = [
    "MAX_AGE",
    "MAX_AHEAD",
    "SVIX_TOLERANCE",
    "check_basic_secret",
    "check_fresh",
    "check_sns_certificate_url",
    "check_sns_timestamp",
    "check_sns_url",
    "sns_string_to_sign",
    "verify_mailgun",
    "verify_sendgrid",
    "verify_sns",
    "verify_svix",
]

SVIX_TOLERANCE = 5 * 60
"""Seconds a Svix timestamp may be off: older calls are replays, as Svix's own libraries say."""
MAX_AGE = 60 * 60
"""Seconds a SendGrid, Mailgun or SNS call may be old: SNS's longest retry schedule."""
MAX_AHEAD = 5 * 60
"""Seconds a signed time may lie ahead of our clock (skew) before the call is refused."""

_SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")


def _bad(what: str) -> WebhookError:
    return WebhookError(f"{what}: the request is refused and nothing was changed")


def check_fresh(
    sent: float, now: datetime, *, what: str, max_age: float = MAX_AGE,
    max_ahead: float = MAX_AHEAD,
) -> None:
    """Refuse a call whose signed time `sent` (seconds since the epoch) is too old or too
    far ahead: a replay of a call captured earlier."""
    age = now.timestamp() - sent
    if age > max_age or age < -max_ahead:
        raise _bad(f"{what} timestamp is too old or in the future (a replay?)")


def _seconds(text: str | None, what: str) -> int:
    try:
        return int(text or "")
    except ValueError as exc:
        raise _bad(f"{what} timestamp is not a number") from exc


def check_basic_secret(
    authorization: str | None, query_token: str | None, secret: str
) -> None:
    """Postmark has no signatures; its webhook URL carries credentials instead.

    Accepted: `https://any-user:SECRET@host/webhooks/postmark` (Basic auth, or
    `user:password` when the secret itself holds a colon) or `...?token=SECRET`.
    """
    expected = secret.encode()
    if query_token is not None and hmac.compare_digest(query_token.encode(), expected):
        return
    if authorization and authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        offered = decoded if b":" in expected else decoded.partition(b":")[2]
        if hmac.compare_digest(offered, expected):
            return
    raise _bad("missing or wrong webhook credentials")


def _load_ec_key(public_key: str) -> ec.EllipticCurvePublicKey:
    text = public_key.strip()
    try:
        if "BEGIN PUBLIC KEY" in text:
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text))
    except (ValueError, binascii.Error) as exc:
        raise WebhookError(
            "PUBLISHER_SENDGRID_WEBHOOK_PUBLIC_KEY is not a public key: paste the "
            "verification key from SendGrid's Mail Settings > Signed Event Webhook"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise WebhookError("PUBLISHER_SENDGRID_WEBHOOK_PUBLIC_KEY is not an elliptic-curve key")
    return key


def verify_sendgrid(
    public_key: str, body: bytes, signature: str | None, timestamp: str | None, *,
    now: datetime,
) -> None:
    """SendGrid's Signed Event Webhook: ECDSA over the timestamp header then the raw body."""
    if not signature or not timestamp:
        raise _bad("SendGrid signature headers are missing")
    check_fresh(_seconds(timestamp, "SendGrid"), now, what="SendGrid")
    key = _load_ec_key(public_key)
    try:
        key.verify(
            base64.b64decode(signature, validate=True),
            timestamp.encode() + body,
            ec.ECDSA(hashes.SHA256()),
        )
    except (InvalidSignature, binascii.Error, ValueError) as exc:
        raise _bad("SendGrid signature does not match") from exc


def verify_mailgun(
    signing_key: str, timestamp: str, token: str, signature: str, *, now: datetime
) -> None:
    """Mailgun signs timestamp + token (not the body) with the webhook signing key."""
    if not (timestamp and token):
        raise _bad("Mailgun signature is incomplete")
    check_fresh(_seconds(timestamp, "Mailgun"), now, what="Mailgun")
    expected = hmac.new(
        signing_key.encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    # Bytes, not str: compare_digest refuses str with non-ASCII characters (a TypeError).
    offered = signature.lower().encode("utf-8", "replace")
    if not hmac.compare_digest(expected.encode(), offered):
        raise _bad("Mailgun signature does not match")


def verify_svix(
    secret: str,
    *,
    msg_id: str | None,
    timestamp: str | None,
    signatures: str | None,
    body: bytes,
    now: datetime,
) -> None:
    """Resend signs with Svix: `v1,<base64>` entries, space-separated, one per active key."""
    if not (msg_id and timestamp and signatures):
        raise _bad("Svix signature headers are missing")
    check_fresh(
        _seconds(timestamp, "Svix"), now, what="Svix", max_age=SVIX_TOLERANCE,
        max_ahead=SVIX_TOLERANCE,
    )
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookError(
            "PUBLISHER_RESEND_WEBHOOK_SECRET must be the whsec_... signing secret from Resend"
        ) from exc
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    for entry in signatures.split():
        version, _, value = entry.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return
    raise _bad("Svix signature does not match")


_SNS_KEYS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
}


def sns_string_to_sign(message: Mapping[str, object]) -> bytes:
    """The canonical text SNS signs: chosen keys in byte order, each as "Key\\nValue\\n".

    A Notification's Subject is included only when the message has one.
    """
    kind = message.get("Type")
    keys = _SNS_KEYS.get(str(kind))
    if keys is None:
        raise _bad(f"unknown SNS message type {kind!r}")
    lines = []
    for key in keys:
        value = message.get(key)
        if value is None:
            if key == "Subject":
                continue
            raise _bad(f"SNS message lacks {key}")
        lines.append(f"{key}\n{value}\n")
    return "".join(lines).encode()


def check_sns_timestamp(message: Mapping[str, object], now: datetime) -> None:
    """An SNS message's signed Timestamp (ISO 8601) is recent: SNS stops retrying after an hour."""
    try:
        sent = datetime.fromisoformat(str(message.get("Timestamp", "")))
    except ValueError as exc:
        raise _bad("SNS Timestamp is missing or malformed") from exc
    if sent.tzinfo is None:
        raise _bad("SNS Timestamp has no time zone")
    check_fresh(sent.timestamp(), now, what="SNS")


def check_sns_certificate_url(url: object) -> str:
    """`check_sns_url`, and a .pem file with no query, as AWS's own validators require."""
    checked = check_sns_url(url)
    parts = urlsplit(checked)
    if not parts.path.endswith(".pem") or parts.query or parts.fragment:
        raise _bad(f"SNS certificate URL {checked!r} does not name a .pem file")
    return checked


def check_sns_url(url: object) -> str:
    """Only https URLs on sns.<region>.amazonaws.com are fetched (certificates, subscribe links).

    Without this, a forged message could name a certificate of its own, or make the
    server fetch an address of the attacker's choosing.
    """
    if not isinstance(url, str):
        raise _bad("SNS URL is missing")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port  # a ValueError past 65535 or when not a number
    except ValueError as exc:  # "https://[x/": an unclosed IPv6 bracket, and the like
        raise _bad(f"SNS URL {url[:200]!r} is malformed") from exc
    if (
        parts.scheme != "https"
        or not _SNS_HOST.match(host)
        or port not in (None, 443)
        or parts.username
        or parts.password
    ):
        raise _bad(f"SNS URL {url[:200]!r} is not on an AWS SNS host")
    return url


def verify_sns(message: Mapping[str, object], certificate_pem: bytes) -> None:
    """The message's Signature checks out against the certificate SNS named.

    SignatureVersion 1 is RSA with SHA-1, version 2 with SHA-256.
    """
    version = str(message.get("SignatureVersion", "1"))
    algorithm: hashes.HashAlgorithm
    if version == "1":
        algorithm = hashes.SHA1()  # noqa: S303  (SNS SignatureVersion 1 is defined with SHA-1)
    elif version == "2":
        algorithm = hashes.SHA256()
    else:
        raise _bad(f"unknown SNS SignatureVersion {version!r}")
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem)
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
    except (ValueError, binascii.Error) as exc:
        raise _bad("SNS signature or certificate is malformed") from exc
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise _bad("SNS certificate does not hold an RSA key")
    try:
        key.verify(signature, sns_string_to_sign(message), padding.PKCS1v15(), algorithm)
    except InvalidSignature as exc:
        raise _bad("SNS signature does not match") from exc
