"""A reader's own page: what a subscriber may change about themselves, by their signed link.

The topics offered are the publication's public tags (`subscribe.public_tags`) that can
be topics (a tag with a comma cannot: topics are stored comma-separated). Ticking every
topic is the same as "every topic", so that a public tag added later reaches the reader
too. Only someone on the list (active, or yet to confirm) has a page; the link's holder
is found by `services.subscribers.link_holder`.

A reader is offered only choices that exist. "The digest only" is offered while the
publication sends a digest (`schedule.digest`); a reader who chose it before the digest
was turned off keeps the choice stored, gets every article meanwhile (the ledger sends
them articles while there is no digest), and is told so on their page. A retired topic
(`subscribe.retired_tags`) is not offered; a reader who chose it keeps it through later
saves, as part of their history.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine

from publisher.config import Config
from publisher.errors import SubscriberError
from publisher.models import SubscriberStatus
from publisher.services.subscribers import LinkHolder
from publisher.store.preferences import FREQUENCIES, Preferences, get_preferences, set_preferences
from publisher.store.subscribers import clean_tags

__all__ = [
    "FREQUENCIES", "Preferences", "has_digest", "may_manage", "offered_frequencies", "preferences_of",
    "public_topics", "save_preferences",
]

_ON_THE_LIST = (SubscriberStatus.ACTIVE, SubscriberStatus.PENDING)


def public_topics(config: Config) -> tuple[str, ...]:
    """The topics a reader may choose from: the public tags that can be topics, retired ones
    (`subscribe.retired_tags`) left out."""
    retired = set(clean_tags(config["subscribe.retired_tags"]))
    return tuple(t for t in clean_tags(config["subscribe.public_tags"]) if "," not in t and t not in retired)


def has_digest(config: Config) -> bool:
    """Whether the publication sends a digest: "the digest only" exists as a choice."""
    return bool(config["schedule.digest"])


def offered_frequencies(config: Config) -> tuple[str, ...]:
    """The frequencies a reader may choose now."""
    return FREQUENCIES if has_digest(config) else tuple(f for f in FREQUENCIES if f != "digest")


def may_manage(holder: LinkHolder | None) -> bool:
    """Whether the link's holder has a page: they are on the list (active, or yet to confirm)."""
    return holder is not None and holder.subscriber.status in _ON_THE_LIST


def preferences_of(db: Engine, subscriber_id: int) -> Preferences | None:
    return get_preferences(db, subscriber_id)


def save_preferences(
    config: Config, db: Engine, subscriber_id: int, *, name: str, zone: str, frequency: str,
    chosen: Sequence[str], now: datetime,
) -> Preferences:
    """Store what the reader chose; SubscriberError for a value they could not have chosen.

    An empty `frequency` keeps the stored one (the page asks nothing about frequency while
    there is no digest); "digest" is refused while there is none.
    """
    current = get_preferences(db, subscriber_id)
    if not frequency:
        frequency = current.frequency if current is not None else "every"
    elif frequency not in offered_frequencies(config) and frequency in FREQUENCIES:
        raise SubscriberError(
            "This publication sends no digest at the moment, so the digest only cannot be chosen; "
            "choose every article."
        )
    offered = public_topics(config)
    # A retired topic is not offered, but a reader who chose it keeps it (their history).
    retired = set(clean_tags(config["subscribe.retired_tags"]))
    had = current.topics or () if current is not None else ()
    kept = [t for t in had if t in retired and t not in offered]
    topics = None if set(clean_tags(chosen)) >= set(offered) else [*chosen, *kept]
    return set_preferences(
        db, subscriber_id, name=name, timezone=zone or None, frequency=frequency,
        topics=topics, allowed_topics=[*offered, *kept], now=now,
    )
