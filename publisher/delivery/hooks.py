"""Outbound webhooks: deliver queued events to the endpoints that asked for them.

Events are queued in the store (`store.outbox`) by the change they report; this module
sends them, from the daemon's own job and never from a send or a request. Each message
is signed per Standard Webhooks with the `standardwebhooks` library: headers
`webhook-id` (the same on every retry, so receivers can drop repeats), `webhook-timestamp`
and `webhook-signature` (`v1,<base64 HMAC-SHA256>` of id, timestamp and body), made
afresh for each attempt at the moment it is sent, so a receiver's tolerance window (five
minutes in the reference library) holds however long a round takes. A 2xx answer
delivers it; anything else, or no answer, tries again after RETRY_DELAYS, and after the
last delay, or once the message is older than all of them together, it expires (about
27 hours in all).

Endpoints are independent. A round claims the due messages, at most a few dozen per
endpoint, and gives each endpoint a thread of its own (ENDPOINT_WORKERS at once); an
endpoint's messages go in order. Each attempt has a wall-clock deadline of
ATTEMPT_SECONDS (or `fetch.timeout`, if shorter), connect to last byte, so a receiver
that accepts and never answers costs one deadline on its own thread. When an attempt
fails, that endpoint's later messages wait behind it until its retry (no attempts of
their own counted), while every other endpoint's messages flow.

Receivers are reached under `fetch`'s address rules: no loopback or private address
unless `fetch.allow_private` is set, or the owner registered the endpoint with
`allow_private` (a receiver on the same host).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import Engine
from standardwebhooks.webhooks import Webhook

from publisher.config import Config
from publisher.content import fetch
from publisher.errors import SourceError
from publisher.store import outbox
from publisher.store.outbox import Outgoing

__all__ = ["ATTEMPT_SECONDS", "ENDPOINT_WORKERS", "RETRY_DELAYS", "HookReport", "deliver_due", "signed_headers"]

log = logging.getLogger(__name__)

RETRY_DELAYS = (5, 300, 1800, 7200, 18000, 36000, 36000)
"""Seconds before each retry (the Standard Webhooks schedule); then the message expires."""
ATTEMPT_SECONDS = 15.0
"""The most one attempt may take, connect to last byte (at most `fetch.timeout`)."""
ENDPOINT_WORKERS = 8
"""Endpoints delivered to at once; the rest start as these finish."""
PER_ENDPOINT = 20
"""Messages one endpoint is given in one round; the rest go in the next."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


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
    config: Config, db: Engine, *, now: datetime, client: httpx.Client | None = None, limit: int = 100,
    clock: Callable[[], datetime] = _utcnow,
) -> HookReport:
    """Attempt every message whose time has come (by `now`), once each; record each outcome.

    `clock` stamps each attempt's signature when it is sent; `now` decides what is due
    and when retries come.
    """
    timeout = min(float(config["fetch.timeout"]), ATTEMPT_SECONDS)
    claimed = outbox.claim(db, now=now, lease=timeout + 5, limit=limit, per_endpoint=PER_ENDPOINT)
    if not claimed:
        return HookReport()
    queues: dict[int, list[Outgoing]] = {}
    for message in claimed:
        queues.setdefault(message.endpoint_id, []).append(message)
    tally = _Tally()
    workers = min(len(queues), ENDPOINT_WORKERS)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="webhooks") as pool:
        for queue in queues.values():
            pool.submit(_deliver_endpoint, config, db, queue, now=now, clock=clock, timeout=timeout,
                        client=client, tally=tally)
    return HookReport(delivered=tally.delivered, retried=tally.retried, expired=tally.expired)


class _Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.delivered = self.retried = self.expired = 0


def _deliver_endpoint(
    config: Config, db: Engine, queue: list[Outgoing], *, now: datetime, clock: Callable[[], datetime],
    timeout: float, client: httpx.Client | None, tally: _Tally,
) -> None:
    """One endpoint's messages in order, until one fails: the rest then wait behind it."""
    try:
        for position, message in enumerate(queue):
            error = _attempt(config, message, clock=clock, timeout=timeout, client=client)
            if not error:
                outbox.delivered(db, message.id, now=now)
                with tally.lock:
                    tally.delivered += 1
                continue
            later = _record_failure(db, message, error, now=now, tally=tally)
            waiting = [m.id for m in queue[position + 1:]]
            if later is None:
                outbox.release(db, waiting, not_before=now)
            else:
                outbox.release(db, waiting, not_before=later)
                outbox.hold_endpoint(db, message.endpoint_id, until=later)
            return
    except Exception:  # a store error: the claimed messages come back when their lease ends
        log.exception("webhooks to %s: delivery stopped", queue[0].url)


def _attempt(
    config: Config, message: Outgoing, *, clock: Callable[[], datetime], timeout: float,
    client: httpx.Client | None,
) -> str:
    """Send one message, signed now; the problem, or "" when the receiver took it."""
    headers = signed_headers(message.secret, message.msg_id, message.payload, clock())
    try:
        status = fetch.post(message.url, message.payload.encode(), config=config, headers=headers, client=client,
                            timeout=timeout, allow_private=message.allow_private)
    except SourceError as exc:
        return str(exc)
    return "" if 200 <= status < 300 else f"HTTP {status}"


def _record_failure(db: Engine, message: Outgoing, error: str, *, now: datetime, tally: _Tally) -> datetime | None:
    """Retry later, or give up; returns when the retry is due (None: expired)."""
    too_old = now - message.created_at >= timedelta(seconds=sum(RETRY_DELAYS))
    if message.attempts < len(RETRY_DELAYS) and not too_old:
        later = now + timedelta(seconds=RETRY_DELAYS[message.attempts])
        outbox.retry_later(db, message.id, error=error, not_before=later)
        with tally.lock:
            tally.retried += 1
        log.warning("webhook %s to %s: %s; trying again at %s", message.msg_id, message.url, error, later)
        return later
    outbox.retry_later(db, message.id, error=error, not_before=None)
    with tally.lock:
        tally.expired += 1
    log.error("webhook %s to %s: %s; gave up after %d attempts", message.msg_id, message.url, error,
              message.attempts + 1)
    return None
