"""A reader's own page: what a subscriber may change about themselves, by their signed link.

The topics offered are the publication's public tags (`subscribe.public_tags`) that can
be topics (a tag with a comma cannot: topics are stored comma-separated). Ticking every
topic is the same as "every topic", so that a public tag added later reaches the reader
too. Only someone on the list (active, or yet to confirm) has a page; the link's holder
is found by `services.subscribers.link_holder`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine

from publisher.config import Config
from publisher.models import SubscriberStatus
from publisher.services.subscribers import LinkHolder
from publisher.store.preferences import FREQUENCIES, Preferences, get_preferences, set_preferences
from publisher.store.subscribers import clean_tags

__all__ = ["FREQUENCIES", "Preferences", "may_manage", "preferences_of", "public_topics", "save_preferences"]

_ON_THE_LIST = (SubscriberStatus.ACTIVE, SubscriberStatus.PENDING)


def public_topics(config: Config) -> tuple[str, ...]:
    """The topics a reader may choose from: the public tags that can be topics."""
    return tuple(t for t in clean_tags(config["subscribe.public_tags"]) if "," not in t)


def may_manage(holder: LinkHolder | None) -> bool:
    """Whether the link's holder has a page: they are on the list (active, or yet to confirm)."""
    return holder is not None and holder.subscriber.status in _ON_THE_LIST


def preferences_of(db: Engine, subscriber_id: int) -> Preferences | None:
    return get_preferences(db, subscriber_id)


def save_preferences(
    config: Config, db: Engine, subscriber_id: int, *, name: str, zone: str, frequency: str,
    chosen: Sequence[str], now: datetime,
) -> Preferences:
    """Store what the reader chose; SubscriberError for a value they could not have chosen."""
    offered = public_topics(config)
    topics = None if set(clean_tags(chosen)) >= set(offered) else chosen
    return set_preferences(
        db, subscriber_id, name=name, timezone=zone or None, frequency=frequency,
        topics=topics, allowed_topics=offered, now=now,
    )
