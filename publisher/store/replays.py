"""One-time tokens of signed webhook calls, remembered across processes.

Mailgun signs a timestamp and a token, not the body: a captured call re-sent within the
replay window with other `event-data` would pass the signature. Mailgun's documentation
asks receivers to remember the tokens they have seen and refuse a second use; the
database is where every `publisher serve` process sees the same memory. A token is kept
until its call could no longer pass the timestamp check, then forgotten.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, delete, insert
from sqlalchemy.exc import IntegrityError

from publisher.store.schema import webhook_tokens

__all__ = ["first_use"]


def first_use(engine: Engine, provider: str, token: str, *, now: datetime, keep_until: datetime) -> bool:
    """Record `token` as used; False when it was already used (the call is a replay)."""
    try:
        with engine.begin() as conn:
            conn.execute(delete(webhook_tokens).where(webhook_tokens.c.expires_at < now))
            conn.execute(
                insert(webhook_tokens).values(provider=provider[:32], token=token[:255], expires_at=keep_until)
            )
    except IntegrityError:
        return False
    return True
