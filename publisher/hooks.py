"""Outbound webhooks: deliver queued events to the endpoints that asked for them.

Events are queued in the store (`store.outbox`) by the change they report; this module
sends them, from the daemon's own job and never from a send or a request. Each message
is signed per Standard Webhooks with the `standardwebhooks` library: headers
`webhook-id` (the same on every retry, so receivers can drop repeats), `webhook-timestamp`
(this attempt) and `webhook-signature` (`v1,<base64 HMAC-SHA256>` of id, timestamp and
body). A 2xx answer delivers it; anything else, or no answer, tries again after
RETRY_DELAYS, and after the last delay the message expires (about 27 hours in all).
Receivers are reached under `fetch`'s address rules: no loopback or private address
unless `fetch.allow_private` is set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import Engine
from standardwebhooks.webhooks import Webhook

from publisher import fetch
from publisher.config import Config
from publisher.errors import SourceError
from publisher.store import outbox

__all__ = ["RETRY_DELAYS", "HookReport", "deliver_due", "signed_headers"]

log = logging.getLogger(__name__)

RETRY_DELAYS = (5, 300, 1800, 7200, 18000, 36000, 36000)
"""Seconds before each retry (the Standard Webhooks schedule); then the message expires."""


@dataclass(frozen=True, slots=True)
class HookReport:
    delivered: int = 0
    retried: int = 0
    expired: int = 0


def signed_headers(secret: str, msg_id: str, payload: str, now: datetime) -> dict[str, str]:
    """The three Standard Webhooks headers (and the content type) for one attempt."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id=msg_id, timestamp=now, data=payload),
    }


def deliver_due(
    config: Config, db: Engine, *, now: datetime, client: httpx.Client | None = None, limit: int = 100
) -> HookReport:
    """Attempt every message whose time has come, once each; record each outcome."""
    due = outbox.due(db, now=now, limit=limit)
    if not due:
        return HookReport()
    delivered = retried = expired = 0
    for message in due:
        headers = signed_headers(message.secret, message.msg_id, message.payload, now)
        try:
            status = fetch.post(message.url, message.payload.encode(), config=config, headers=headers, client=client)
            error = "" if 200 <= status < 300 else f"HTTP {status}"
        except SourceError as exc:
            error = str(exc)
        if not error:
            outbox.delivered(db, message.id, now=now)
            delivered += 1
            continue
        if message.attempts < len(RETRY_DELAYS):
            later = now + timedelta(seconds=RETRY_DELAYS[message.attempts])
            outbox.retry_later(db, message.id, error=error, not_before=later)
            retried += 1
            log.warning("webhook %s to %s: %s; trying again at %s", message.msg_id, message.url, error, later)
        else:
            outbox.retry_later(db, message.id, error=error, not_before=None)
            expired += 1
            log.error("webhook %s to %s: %s; gave up after %d attempts", message.msg_id, message.url, error,
                      message.attempts + 1)
    return HookReport(delivered=delivered, retried=retried, expired=expired)
