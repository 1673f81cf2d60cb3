"""The public subscribe flow's rules: a request to subscribe, its confirmation, an unsubscribe link.

Every door a visitor can subscribe by (the hosted page `/subscribe` and its topic pages
`/subscribe/<topic>`, a form copied onto another site, the JSON endpoint a script calls)
comes through here with the same rules: the limits, the honeypot, one answer whatever
the list holds, double opt-in. A `Door` names where a request came in; it becomes the
subscriber's `source` ("web", "web:<topic>", "embed", "json:<topic>", "api:key-<id>"),
and the consent text shown at that door is kept with a new subscriber.

`register` records a request: a new address is added as pending; an existing row is not
changed, because whoever types an address into a form has not proved they own it. A
confirmation link works while the subscriber's status is as it was when the link was
sent (`confirm_state`); someone who confirmed and later left comes back only through a
new one. An unsubscribe by link is committed before its answer, so a batch claimed after
it leaves the address out, and it only ever strengthens a status (a bounce stays one).

`count_attempt` holds two limits, kept in the database so that they hold across
restarts and processes: per client (`subscribe.per_ip_per_hour`) and per network
(`subscribe.per_network_per_hour`, an IPv4 /24 or IPv6 /64), so that a flood from many
addresses of one network is refused while people elsewhere still get through. A refusal
says when to try again, never drops a request silently, and a network refused is
recorded for the desk's Home.
"""

from __future__ import annotations

import html
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from publisher.config import Config
from publisher.errors import PublisherError, SubscriberError, TokenError
from publisher.mail import tokens
from publisher.mail.mime import clean_header_text
from publisher.models import Subscriber, SubscriberStatus
from publisher.services.subscribers import MAX_TAGS, link_holder
from publisher.store import client_hits, signup_throttles, subscribers
from publisher.store.signup_throttles import Throttled

__all__ = [
    "DOOR_KINDS",
    "MAX_NAME",
    "UNSUBSCRIBABLE",
    "Door",
    "Limits",
    "Throttled",
    "address",
    "check_request",
    "clean_name",
    "confirm_state",
    "consent_text",
    "count_attempt",
    "embed_form",
    "network_of",
    "register",
    "throttled_networks",
    "topic",
    "topics",
    "unsubscribe_by_link",
]

DOOR_KINDS = ("web", "embed", "json")
"""The public doors: the hosted page, a form copied onto another site, the JSON endpoint."""

MAX_NAME = 200
UNSUBSCRIBABLE = frozenset({SubscriberStatus.ACTIVE, SubscriberStatus.PENDING})


@dataclass(frozen=True, slots=True)
class Door:
    """Where a signup came in: its kind (`DOOR_KINDS`, or "api:key-<id>") and the topic it offers."""

    kind: str = "web"
    topic: str = ""

    @property
    def source(self) -> str:
        """The subscriber's `source`: the door, and its topic after a colon."""
        return f"{self.kind}:{self.topic}" if self.topic else self.kind


@dataclass(frozen=True, slots=True)
class Limits:
    """Subscribe requests accepted an hour per client and per network."""

    per_client: int
    per_network: int

    @classmethod
    def of(cls, config: Config) -> Limits:
        return cls(int(config["subscribe.per_ip_per_hour"]), int(config["subscribe.per_network_per_hour"]))


def network_of(client: str) -> str:
    """The network a client key belongs to: an IPv4 /24, or the IPv6 /64 the key already is."""
    try:
        return str(ipaddress.ip_network(client if "/" in client else f"{client}/24", strict=False))
    except ValueError:
        return client


def count_attempt(db: Engine, client: str, *, now: datetime, limits: Limits) -> float:
    """Count one subscribe request from `client`; seconds to wait when over a limit, else 0.

    The client's own limit is asked first, so that one address that keeps trying uses up
    its own hour and not its neighbours'. Every refusal, by either limit, is recorded
    under the client's network, so that Home counts all of a flood.
    """
    network = network_of(client)
    wait = client_hits.hit(db, client, now=now, limit=limits.per_client, window=3600.0)
    if not wait:
        wait = client_hits.hit(db, f"net {network}", now=now, limit=limits.per_network, window=3600.0)
    if wait:
        signup_throttles.record(db, network, now=now)
    return wait


def throttled_networks(db: Engine, *, now: datetime) -> list[Throttled]:
    """Networks whose signups were refused in the last day, the most refused first (for Home)."""
    return signup_throttles.recent(db, now=now)


def topics(config: Config) -> tuple[str, ...]:
    """The topics a signup door may offer: the public tags not retired."""
    retired = set(config["subscribe.retired_tags"])
    return tuple(t for t in config["subscribe.public_tags"] if t not in retired)


def topic(config: Config, raw: str) -> str:
    """`raw` when it is a topic readers may choose, else "" (an old form naming a retired
    topic still subscribes its reader, to the publication)."""
    wanted = raw.strip()
    return wanted if wanted and wanted in topics(config) else ""


def consent_text(config: Config) -> str:
    """What a reader agrees to by subscribing: `subscribe.consent_text`, or the default sentence."""
    text = str(config["subscribe.consent_text"]).strip()
    if text:
        return text
    title = str(config["publication.title"])
    return f"I agree to receive {title} by email. I can leave at any time with the link in every message."


def check_request(email: str, *, name: str = "", tags: Iterable[str] = (), timezone: str | None = None) -> None:
    """Raise SubscriberError, naming the field, for a request bad in itself: what can be
    told without looking at the list (so the answer says nothing about who is on it)."""
    subscribers.normalize_email(email)
    subscribers.clean_name(name)
    tag_list = subscribers.clean_tags(tags)
    if len(tag_list) > MAX_TAGS:
        raise SubscriberError(f"tags: at most {MAX_TAGS} tags per subscriber, got {len(tag_list)}")
    subscribers.check_timezone(timezone)


def address(raw: str) -> str:
    """The address as stored; SubscriberError when it is none."""
    return subscribers.normalize_email(raw)


def clean_name(raw: str) -> str:
    """A typed name made safe for a header, at most MAX_NAME characters."""
    return clean_header_text(raw, limit=MAX_NAME)


def embed_form(config: Config, topic: str = "", *, script: bool = False) -> str:
    """The HTML an author copies onto another site: a plain form posting to `/subscribe`
    (it works without JavaScript, and the answer is a page with a link back), and with
    `script` the line that loads `/subscribe.js` for inline answers (the site must then
    be in `subscribe.allowed_origins`; without it the form still works the plain way)."""
    base = config.public_url
    e = html.escape
    hidden = f'\n  <input type="hidden" name="topic" value="{e(topic)}">' if topic else ""
    text = (
        f'<form action="{e(base)}/subscribe" method="post" data-publisher-subscribe>\n'
        f'  <input type="hidden" name="door" value="embed">{hidden}\n'
        '  <label>Email address<br><input type="email" name="email" required maxlength="320" '
        'autocomplete="email"></label>\n'
        '  <label>Name (optional)<br><input type="text" name="name" maxlength="200" autocomplete="name"></label>\n'
        '  <div style="position:absolute;left:-10000px" aria-hidden="true"><label>Leave this field empty '
        '<input type="text" name="website" tabindex="-1" autocomplete="off"></label></div>\n'
        f'  <p><small>{e(consent_text(config))}</small></p>\n'
        '  <button type="submit">Subscribe</button>\n'
        '  <p data-publisher-message role="status" aria-live="polite"></p>\n'
        "</form>\n"
    )
    if script:
        text += f'<script src="{e(base)}/subscribe.js" defer></script>\n'
    return text


def register(
    db: Engine, email: str, name: str, *, now: datetime, door: Door | None = None, consent: str = ""
) -> Subscriber:
    """Record the request; whether a confirmation goes out is the mailer's rule.

    A new address is added as pending with the door's topic, the door as its source and
    `consent`, the text it agreed to. An existing row is never changed here beyond its
    confirmation time: whoever types an address into a form has not proved they own it.
    """
    door = door or Door()
    found = subscribers.find(db, email)
    if found is None:
        try:
            found = subscribers.add(
                db, email, name=name, status=SubscriberStatus.PENDING, source=door.source, now=now,
                tags=(door.topic,) if door.topic else (), consent_text=consent,
            )
        except PublisherError:
            # The same address submitted twice at once: the other request added it.
            found = subscribers.find(db, email)
            if found is None:
                raise
    return found


def confirm_state(db: Engine, secret: str, token: str, now: datetime | None) -> str:
    """What a confirm link's page says: ask (pressing would activate), done (active
    now) or invalid. With `now` (a POST) the link is used."""
    try:
        key, sent_at = tokens.verify_confirm(secret, token)
    except TokenError:
        return "invalid"
    holder = subscribers.by_link_key(db, key)
    if holder is None:
        return "invalid"
    subscriber_id = holder.id
    if now is None:
        if subscribers.can_confirm(db, subscriber_id, sent_at=sent_at):
            return "ask"
    elif subscribers.confirm(db, subscriber_id, sent_at=sent_at, now=now, detail="double opt-in"):
        return "done"
    found = subscribers.get(db, subscriber_id)
    if found is not None and found.status is SubscriberStatus.ACTIVE:
        return "done"  # a second press, or an old link of someone who is subscribed
    return "invalid"


def unsubscribe_by_link(db: Engine, secret: str, token: str, *, now: datetime, how: str) -> bool:
    """Unsubscribe whom an unsubscribe link names; False for a bad token and for nobody alike."""
    holder = link_holder(db, secret, token, purposes=("unsubscribe",))
    if holder is None:
        return False
    found = holder.subscriber
    if found.status in UNSUBSCRIBABLE:
        # Committed before this answer, so a batch claimed after it leaves the address
        # out. `suppress` only ever strengthens a status: a bounce recorded meanwhile
        # stays a bounce.
        subscribers.suppress(
            db, found.email, "unsubscribe", provider="web", detail=how, now=now, message_key=holder.message_key,
        )
    return True
