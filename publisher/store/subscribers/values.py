"""What a subscriber's fields may hold: addresses normalised, names, tags and zones cleaned, and the limits.

Pure: each cleaner takes what someone typed (a form, a CSV row, an API body) and returns
the stored form, or raises SubscriberError naming the field and what to do.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from publisher.errors import SubscriberError
from publisher.models import SubscriberStatus
from publisher.store.schema import (
    subscriber_tags,
    subscribers,
)

__all__ = [
    "MAX_ADDRESS",
    "MAX_NAME",
    "MAX_SOURCE",
    "MAX_TAG",
    "MAX_TAGS",
    "PAGE",
    "STATUS_KIND",
    "SUPPRESSED",
    "S",
    "check_timezone",
    "clean_name",
    "clean_tags",
    "normalize_email",
]


S = SubscriberStatus
SUPPRESSED = frozenset({S.UNSUBSCRIBED, S.BOUNCED, S.COMPLAINED})
"""Statuses that keep an address off every send until the person asks to come back."""
# How strongly a status keeps someone off the list; suppression only ever moves up.
_RANK = {S.PENDING: 0, S.ACTIVE: 0, S.UNSUBSCRIBED: 1, S.BOUNCED: 2, S.COMPLAINED: 3}
MAX_ADDRESS = 320
"""Characters of the `email` column: 64 for the local part, @, 255 for the domain."""
_KIND_STATUS = {"unsubscribe": S.UNSUBSCRIBED, "bounce": S.BOUNCED, "complaint": S.COMPLAINED}
STATUS_KIND = {
    S.ACTIVE: "subscribe",
    S.PENDING: "subscribe",
    S.UNSUBSCRIBED: "unsubscribe",
    S.BOUNCED: "bounce",
    S.COMPLAINED: "complaint",
}
PAGE = 500
# Outbound webhook event for each kind of event row; written in the same transaction.
_HOOK_EVENTS = {
    "subscribe": "subscriber.created",
    "confirm": "subscriber.confirmed",
    "unsubscribe": "subscriber.unsubscribed",
    "bounce": "subscriber.bounced",
    "complaint": "subscriber.complained",
    "topic_joined": "subscriber.topic_joined",
}
MAX_NAME = subscribers.c.name.type.length or 200  # type: ignore[attr-defined]
MAX_TAG = subscriber_tags.c.tag.type.length or 100  # type: ignore[attr-defined]
MAX_TAGS = 50
"""The most tags one subscriber carries, whichever door they come through (API, CLI,
desk, import): more is refused, never cut."""
MAX_SOURCE = subscribers.c.source.type.length or 64  # type: ignore[attr-defined]


def normalize_email(raw: str) -> str:
    """The address as stored: validated (syntax only, no DNS), domain in ASCII, lower-case.

    International domains become their ASCII (punycode) form, so `bob@münchen.de` and
    `bob@xn--mnchen-3ya.de` are one subscriber and every provider can deliver to it.
    Raises SubscriberError naming the address and what is wrong with it.
    """
    text = raw.strip()
    # A plain ASCII local part needs no more than this pattern; its domain is checked once
    # per import of a list, where thousands of readers share a few domains.
    local, at, domain = text.rpartition("@")
    if at and len(text) <= 254 and len(local) <= 64 and _PLAIN_LOCAL.fullmatch(local):
        try:
            return f"{local.lower()}@{_checked_domain(domain)}"
        except SubscriberError:
            pass  # told below, about the whole address
    return _checked(text).lower()


_PLAIN_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


def _checked(text: str) -> str:
    # Imported here: reading the store (`publisher status`) should not pay for it.
    from email_validator import EmailNotValidError, validate_email

    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise SubscriberError(f"{text!r} is not a valid address: {exc}") from exc
    return checked.ascii_email or checked.normalized


@functools.lru_cache(maxsize=4096)
def _checked_domain(domain: str) -> str:
    """The domain in lower-case ASCII, as email_validator checks it behind a plain local part
    (SubscriberError when it is not valid; only valid domains are remembered)."""
    return _checked(f"a@{domain}").rpartition("@")[2].lower()


def clean_name(raw: str) -> str:
    """A display name safe for headers: control characters (CR, LF, ...) become spaces."""
    name = " ".join((raw if raw.isprintable() else "".join(ch if ch.isprintable() else " " for ch in raw)).split())
    if len(name) > MAX_NAME:
        raise SubscriberError(f"name {name[:40]!r}... is longer than {MAX_NAME} characters")
    return name


def clean_tags(raw: Iterable[str]) -> tuple[str, ...]:
    """Tags lower-cased with single spaces, so that `--tag Clinicians` finds `clinicians`.

    Raises SubscriberError for a tag longer than MAX_TAG or more than MAX_TAGS tags.
    """
    tags: list[str] = []
    for tag in raw:
        printable = tag if tag.isprintable() else "".join(ch if ch.isprintable() else " " for ch in tag)
        clean = " ".join(printable.split()).lower()
        if not clean:
            continue
        if len(clean) > MAX_TAG:
            raise SubscriberError(f"tag {clean[:40]!r}... is longer than {MAX_TAG} characters")
        if clean not in tags:
            tags.append(clean)
            if len(tags) > MAX_TAGS:
                raise SubscriberError(f"more than {MAX_TAGS} tags for one subscriber: keep at most {MAX_TAGS}")
    return tuple(tags)


def check_timezone(raw: str | None) -> str | None:
    """An IANA zone name such as "Europe/Berlin", or None; raises SubscriberError otherwise."""
    if raw is None or not raw.strip():
        return None
    zone = raw.strip()
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SubscriberError(
            f"time zone {zone!r} is not an IANA zone name such as \"America/New_York\""
        ) from exc
    return zone


def _source(text: str) -> str:
    return text[:MAX_SOURCE]
