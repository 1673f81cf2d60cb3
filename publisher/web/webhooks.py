"""Bounce and complaint webhooks: POST /webhooks/{provider}.

Each provider's handler first proves the call is the provider's own (see `signatures`),
then reads its events into `Suppression`s: a hard bounce marks the address bounced, a
complaint marks it complained, soft bounces and everything else are ignored. Nothing is
changed unless the proof holds.

A provider retries an event it is not sure we got, so each `Suppression` carries the
provider's id of its event (`event_key`): the store records an event once. Mailgun signs
only a timestamp and a token, so its token goes in `WebhookContext.tokens` and the app
refuses a call whose token was seen before (see `publisher.store.replays`).

Secrets come from the environment (never config.toml):

    PUBLISHER_POSTMARK_WEBHOOK_SECRET      (or PUBLISHER_WEBHOOK_SECRET)
    PUBLISHER_SENDGRID_WEBHOOK_PUBLIC_KEY  verification key of the Signed Event Webhook
    PUBLISHER_MAILGUN_WEBHOOK_KEY          HTTP webhook signing key
    PUBLISHER_RESEND_WEBHOOK_SECRET        whsec_... signing secret
    (ses)                                  config `webhooks.ses_topic_arns`; SNS signs
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parseaddr
from typing import Any, Literal
from urllib.parse import parse_qs

from publisher.config import Config
from publisher.errors import WebhookError
from publisher.web import signatures

__all__ = [
    "HANDLERS",
    "SECRET_ENV",
    "Incoming",
    "Malformed",
    "NotConfigured",
    "Suppression",
    "Unavailable",
    "WebhookContext",
]

log = logging.getLogger(__name__)

Kind = Literal["bounce", "complaint"]
"""What `subscribers.suppress` records: bounce -> bounced, complaint -> complained."""

BOUNCED: Kind = "bounce"
COMPLAINED: Kind = "complaint"

SECRET_ENV = {
    "postmark": "PUBLISHER_POSTMARK_WEBHOOK_SECRET",
    "sendgrid": "PUBLISHER_SENDGRID_WEBHOOK_PUBLIC_KEY",
    "mailgun": "PUBLISHER_MAILGUN_WEBHOOK_KEY",
    "resend": "PUBLISHER_RESEND_WEBHOOK_SECRET",
}
SHARED_SECRET_ENV = "PUBLISHER_WEBHOOK_SECRET"  # noqa: S105  (a variable name, not a secret)
"""Fallback shared secret for providers that do not sign (Postmark)."""

MAX_RAW_ADDRESS = 1000
"""Longer address fields are no address (a mailbox has at most 320 characters)."""

POSTMARK_HARD = frozenset({"HardBounce", "BadEmailAddress", "ManuallyDeactivated"})


class NotConfigured(WebhookError):
    """The provider's secret is not set, so no call from it can be trusted."""


class Malformed(WebhookError):
    """The body is not what the provider documents (answered 400): not JSON, JSON nested
    past the parser's depth, or objects where the provider sends lists and the like."""


class Unavailable(WebhookError):
    """Something the check needs (an SNS certificate) cannot be had right now: answered
    503, so the provider retries later instead of dropping the notification."""


@dataclass(frozen=True, slots=True)
class Suppression:
    email: str
    kind: Kind
    detail: str = ""
    event_key: str = ""
    """The provider's id of the event ("" when it sends none): a second delivery is a no-op."""


@dataclass(frozen=True, slots=True)
class Incoming:
    """One webhook call: header names lower-case, the raw body as the provider signed it."""

    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes


@dataclass(slots=True)
class WebhookContext:
    config: Config
    now: datetime
    fetch: Callable[[str], bytes]
    """GET a URL and return its body: SNS certificates and subscription confirmations."""
    certificates: dict[str, bytes] = field(default_factory=dict)
    tokens: list[str] = field(default_factory=list)
    """One-time tokens the call was signed with: the app refuses the call if one was seen."""

    def secret(self, provider: str) -> str:
        name = SECRET_ENV[provider]
        value = self.config.secret(name)
        if not value and provider == "postmark":
            value = self.config.secret(SHARED_SECRET_ENV)
        if not value:
            raise NotConfigured(
                f"{provider} webhook refused: {name} is not set. Set it in the environment "
                f"of `publisher serve` (see README.md, \"Bounce and complaint webhooks\")"
            )
        return value


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Malformed(f"body is not JSON: {exc}") from exc
    except RecursionError as exc:  # "[[[[...": read before any signature is checked
        raise Malformed("body is JSON nested too deeply") from exc


def _object(value: object) -> Mapping[str, Any]:
    """`value` when it is a JSON object, else an empty one: fields of the wrong type are
    treated as absent rather than failing with a 500."""
    return value if isinstance(value, dict) else {}


def _objects(value: object) -> list[Mapping[str, Any]]:
    """The objects in a JSON array (anything else in it, or a non-array, is skipped)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _fetch(ctx: WebhookContext, url: str) -> bytes:
    try:
        return ctx.fetch(url)
    except WebhookError:
        raise
    except Exception as exc:  # whatever the fetcher raises: we could not check, not "no"
        raise Unavailable(f"could not fetch {url}: {exc}") from exc


def _address(raw: object) -> str | None:
    if not isinstance(raw, str) or len(raw) > MAX_RAW_ADDRESS:
        return None
    _, address = parseaddr(raw)
    return address.strip() or None


def _key(*parts: object) -> str:
    """An event key from the provider's ids; "" when the provider gave none."""
    if not parts[0] or not isinstance(parts[0], str | int):
        return ""
    return ":".join(str(part) for part in parts)[:255]


def postmark(incoming: Incoming, ctx: WebhookContext) -> list[Suppression]:
    signatures.check_basic_secret(
        incoming.headers.get("authorization"), incoming.query.get("token"), ctx.secret("postmark")
    )
    event = _json(incoming.body)
    if not isinstance(event, dict):
        raise Malformed("Postmark sends one JSON object per call")
    email = _address(event.get("Email"))
    if email is None:
        return []
    record = event.get("RecordType")
    kind = str(event.get("Type", ""))
    key = _key(event.get("ID"), record)
    if record == "SpamComplaint" or kind == "SpamComplaint":
        return [Suppression(email, COMPLAINED, kind or "SpamComplaint", key)]
    if record == "Bounce" and (kind in POSTMARK_HARD or event.get("Inactive") is True):
        return [Suppression(email, BOUNCED, f"{kind}: {event.get('Description', '')}".strip(), key)]
    return []


def sendgrid(incoming: Incoming, ctx: WebhookContext) -> list[Suppression]:
    signatures.verify_sendgrid(
        ctx.secret("sendgrid"),
        incoming.body,
        incoming.headers.get("x-twilio-email-event-webhook-signature"),
        incoming.headers.get("x-twilio-email-event-webhook-timestamp"),
        now=ctx.now,
    )
    events = _json(incoming.body)
    if not isinstance(events, list):
        raise Malformed("SendGrid sends a JSON array of events")
    out = []
    for event in events:
        if not isinstance(event, dict) or (email := _address(event.get("email"))) is None:
            continue
        name = event.get("event")
        reason = str(event.get("reason", ""))
        key = _key(event.get("sg_event_id"))
        if name == "spamreport":
            out.append(Suppression(email, COMPLAINED, "spamreport", key))
        elif name == "bounce" and event.get("type", "bounce") == "bounce":
            out.append(Suppression(email, BOUNCED, reason, key))
        elif name == "dropped" and reason in ("Bounced Address", "Invalid"):
            out.append(Suppression(email, BOUNCED, f"dropped: {reason}", key))
        elif name == "dropped" and reason == "Spam Reporting Address":
            out.append(Suppression(email, COMPLAINED, f"dropped: {reason}", key))
    return out


def mailgun(incoming: Incoming, ctx: WebhookContext) -> list[Suppression]:
    """Mailgun's current webhooks post JSON; its legacy ones post a form. Both are signed."""
    key = ctx.secret("mailgun")
    if incoming.headers.get("content-type", "").startswith("application/json"):
        payload = _json(incoming.body)
        proof = payload.get("signature") if isinstance(payload, dict) else None
        if not isinstance(proof, dict):
            raise WebhookError("Mailgun signature is missing: the request is refused")
        token = str(proof.get("token", ""))
        signatures.verify_mailgun(
            key,
            str(proof.get("timestamp", "")),
            token,
            str(proof.get("signature", "")),
            now=ctx.now,
        )
        ctx.tokens.append(token)
        data = payload.get("event-data")
        if not isinstance(data, dict):
            raise Malformed("Mailgun call has no event-data")
        event = data.get("event")
        hard = event == "failed" and data.get("severity") == "permanent"
        reason = str(data.get("reason", ""))
        event_key = _key(data.get("id"))
    else:
        body = incoming.body.decode("utf-8", "replace")
        data = {name: values[0] for name, values in parse_qs(body).items()}
        signatures.verify_mailgun(
            key, data.get("timestamp", ""), data.get("token", ""), data.get("signature", ""),
            now=ctx.now,
        )
        ctx.tokens.append(data.get("token", ""))
        event = data.get("event")
        reason = data.get("reason", "") or data.get("error", "")
        hard = event == "bounced" or (event == "dropped" and reason == "hardfail")
        event_key = ""  # legacy calls carry no event id; the token check refuses their replays
    email = _address(data.get("recipient"))
    if email is None:
        return []
    if event == "complained":
        return [Suppression(email, COMPLAINED, "complained", event_key)]
    if hard:
        return [Suppression(email, BOUNCED, reason, event_key)]
    return []


def _ses_events(notification: Mapping[str, Any], message_id: object) -> Iterable[Suppression]:
    """SES notifications (notificationType) and configuration-set events (eventType); the
    SNS MessageId and the address key each, since one notification names several."""
    kind = notification.get("notificationType") or notification.get("eventType")
    if kind == "Bounce":
        bounce = _object(notification.get("bounce"))
        if bounce.get("bounceType") != "Permanent":
            return
        detail = f"Permanent/{bounce.get('bounceSubType', '')}"
        for recipient in _objects(bounce.get("bouncedRecipients")):
            if (email := _address(recipient.get("emailAddress"))) is not None:
                yield Suppression(email, BOUNCED, detail, _key(message_id, email))
    elif kind == "Complaint":
        complaint = _object(notification.get("complaint"))
        feedback = str(complaint.get("complaintFeedbackType") or "")
        if feedback == "not-spam":
            return
        for recipient in _objects(complaint.get("complainedRecipients")):
            if (email := _address(recipient.get("emailAddress"))) is not None:
                yield Suppression(email, COMPLAINED, feedback or "complaint", _key(message_id, email))


def ses(incoming: Incoming, ctx: WebhookContext) -> list[Suppression]:
    """Amazon SES through an SNS topic: SNS signs every message with a certificate of AWS.

    Any AWS account can point a topic at this URL, so only the topics listed in
    `webhooks.ses_topic_arns` are accepted, and only their subscription is confirmed.
    """
    message = _json(incoming.body)
    if not isinstance(message, dict):
        raise Malformed("SNS sends one JSON object per call")
    topic = message.get("TopicArn")
    if topic not in tuple(ctx.config["webhooks.ses_topic_arns"]):
        raise NotConfigured(
            f"ses webhook refused: SNS topic {topic!r} is not listed in "
            "config.toml [webhooks] ses_topic_arns; add it to accept its notifications"
        )
    signatures.check_sns_timestamp(message, ctx.now)
    cert_url = signatures.check_sns_certificate_url(message.get("SigningCertURL"))
    certificate = ctx.certificates.get(cert_url)
    if certificate is None:
        certificate = _fetch(ctx, cert_url)
    signatures.verify_sns(message, certificate)
    ctx.certificates[cert_url] = certificate
    kind = message.get("Type")
    if kind == "SubscriptionConfirmation":
        _fetch(ctx, signatures.check_sns_url(message.get("SubscribeURL")))
        log.info("confirmed the SNS subscription to %s", topic)
        return []
    if kind != "Notification":
        return []
    notification = _json(str(message.get("Message", "")).encode())
    if not isinstance(notification, dict):
        raise Malformed("SNS Message is not a JSON object")
    return list(_ses_events(notification, message.get("MessageId")))


def resend(incoming: Incoming, ctx: WebhookContext) -> list[Suppression]:
    headers = incoming.headers
    signatures.verify_svix(
        ctx.secret("resend"),
        msg_id=headers.get("svix-id"),
        timestamp=headers.get("svix-timestamp"),
        signatures=headers.get("svix-signature"),
        body=incoming.body,
        now=ctx.now,
    )
    event = _json(incoming.body)
    if not isinstance(event, dict):
        raise Malformed("Resend sends one JSON object per call")
    data = _object(event.get("data"))
    recipients = data.get("to")
    if not isinstance(recipients, list):
        recipients = [recipients]
    kind = event.get("type")
    status: Kind
    if kind == "email.complained":
        status, detail = COMPLAINED, "complained"
    elif kind == "email.bounced":
        bounce = _object(data.get("bounce"))
        if bounce.get("type") == "Transient":
            return []
        status, detail = BOUNCED, f"{bounce.get('type', '')} {bounce.get('message', '')}".strip()
    else:
        return []
    return [
        Suppression(email, status, detail, _key(headers.get("svix-id"), email))
        for raw in recipients
        if (email := _address(raw)) is not None
    ]


Handler = Callable[[Incoming, WebhookContext], list[Suppression]]

HANDLERS: Mapping[str, Handler] = {
    "postmark": postmark,
    "sendgrid": sendgrid,
    "mailgun": mailgun,
    "ses": ses,
    "resend": resend,
}
