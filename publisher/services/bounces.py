"""What a provider's webhook tells us: bounces and complaints, each suppressing an address.

The faces check the call's signature (`web/signatures.py`, `web/webhooks.py`); what a
verified call does is here. A signed call is used once: its tokens are remembered until
its signature would have expired anyway (`first_use`), so a replayed call is refused.
Each event suppresses its address (a bounce or complaint only ever strengthens a status);
one bad event (an address no mailbox can have) is skipped, not the batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from sqlalchemy import Engine

from publisher.errors import SubscriberError
from publisher.store import replays, subscribers

__all__ = ["Event", "first_use", "suppress_all"]

log = logging.getLogger(__name__)


class Event(Protocol):
    """One bounce or complaint from a provider's webhook."""

    @property
    def email(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def detail(self) -> str: ...

    @property
    def event_key(self) -> str: ...


def first_use(db: Engine, provider: str, tokens: Iterable[str], *, now: datetime, keep_until: datetime) -> bool:
    """Whether none of a signed call's tokens was seen before (each is remembered now)."""
    return all(replays.first_use(db, provider, token, now=now, keep_until=keep_until) for token in tokens)


def suppress_all(db: Engine, provider: str, events: Iterable[Event], *, now: datetime) -> int:
    """Suppress each event's address; returns how many were applied (bad ones are skipped, logged)."""
    applied = 0
    for item in events:
        try:
            subscribers.suppress(
                db, item.email, item.kind, provider=provider, detail=item.detail,
                now=now, event_key=item.event_key or None,
            )
        except SubscriberError as exc:
            log.warning("%s webhook: event for %r skipped: %s", provider, item.email[:100], exc)
            continue
        applied += 1
    return applied
