"""Subscriber actions: add, import, unsubscribe, erase, export one person, list, tags.

Every function takes the config, the store and `now` where it needs them and returns
dataclasses or raises from `publisher.errors`: SubscriberError for an unusable address,
name, tag or zone; NotFound for an address or id the list does not hold; InvalidRequest
for a page size out of range. Nothing here prints, parses arguments or knows HTTP.
"""

from __future__ import annotations

import html
import logging
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import IO, Any

from sqlalchemy import Engine

from publisher.config import Config
from publisher.delivery.base import Provider, make_provider
from publisher.errors import InvalidRequest, NotFound, TokenError
from publisher.mail import newsletter, tokens
from publisher.mail.mime import MessageTemplate, Recipient
from publisher.models import Outcome, RenderedIssue, Subscriber, SubscriberStatus
from publisher.services import paging
from publisher.store import stats as store_stats
from publisher.store import subscribers as store
from publisher.store.stats import DeliveryRecord, EventRecord
from publisher.store.subscriber_csv import ImportReport, open_export
from publisher.store.subscribers import Listed

__all__ = [
    "CONFIRMABLE",
    "CONFIRM_PLACEHOLDER",
    "MAX_PAGE",
    "MAX_TAG",
    "MAX_TAGS",
    "ConfirmationMailer",
    "ImportReport",
    "LinkHolder",
    "Listed",
    "ListingPage",
    "Receipt",
    "Subscribed",
    "SubscriberData",
    "SubscriberPage",
    "TagCount",
    "counts",
    "erase",
    "export_csv",
    "export_subscriber",
    "get_subscriber",
    "import_subscribers",
    "iter_subscribers",
    "link_holder",
    "list_page",
    "list_subscribers",
    "open_export",
    "read_back",
    "send_confirmation",
    "subscribe",
    "tags",
    "tags_and_counts",
    "unsubscribe",
    "update_subscriber",
]

log = logging.getLogger(__name__)

CONFIRMABLE = frozenset({SubscriberStatus.PENDING, SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED})
"""Who a confirmation mail may go to: not the active, and never an address that complained."""
MAX_PAGE = 1000
"""The most subscribers one page of a listing holds."""
MAX_TAGS = store.MAX_TAGS
"""The most tags one subscriber carries, through every door (API, CLI, desk, imports)."""
MAX_TAG = store.MAX_TAG
"""The most characters one tag has."""


@dataclass(frozen=True, slots=True)
class Subscribed:
    """What `subscribe` did: the subscriber as stored, and whether the address was new."""

    subscriber: Subscriber
    created: bool


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a write answers a caller who may change the list but not read it: the id and
    the values the caller sent, as sent, and nothing the store held before."""

    id: int
    sent: Mapping[str, Any]


def read_back(subscriber: Subscriber, *, may_read: bool, sent: Mapping[str, Any]) -> Subscriber | Receipt:
    """The answer to a write (add, change, unsubscribe): the whole record for a caller who
    may read the list, else only a Receipt, so that writing one address after another
    cannot dump the list (its names, tags, zones, statuses and dates)."""
    return subscriber if may_read else Receipt(id=subscriber.id, sent=dict(sent))


@dataclass(frozen=True, slots=True)
class SubscriberPage:
    """One page of a listing. Pass `next_after` back as `after` for the next page."""

    items: tuple[Subscriber, ...]
    has_more: bool
    looked_to: int | None = None
    """A search that stopped for time (`search_subscribers`): the last id it read."""

    @property
    def next_after(self) -> int | None:
        return paging.next_after(self.items[-1].id if self.items else None, has_more=self.has_more,
                                 looked_to=self.looked_to)


@dataclass(frozen=True, slots=True)
class ListingPage:
    """One page of the list as the desk shows it (`list_page`): `SubscriberPage` with
    `Listed` rows (address, name, status and tags) instead of whole subscribers."""

    items: tuple[Listed, ...]
    has_more: bool
    looked_to: int | None = None
    """A search that stopped for time: the last id it read."""

    @property
    def next_after(self) -> int | None:
        return paging.next_after(self.items[-1].id if self.items else None, has_more=self.has_more,
                                 looked_to=self.looked_to)


@dataclass(frozen=True, slots=True)
class TagCount:
    """A tag (a segment) and how many subscribers carry it: active ones, and all."""

    tag: str
    active: int
    total: int


@dataclass(frozen=True, slots=True)
class SubscriberData:
    """Everything the store holds about one person (a GDPR access request)."""

    subscriber: Subscriber
    events: tuple[EventRecord, ...]
    deliveries: tuple[DeliveryRecord, ...]


def subscribe(
    db: Engine,
    email: str,
    *,
    now: datetime,
    name: str = "",
    tags: Iterable[str] = (),
    timezone: str | None = None,
    pending: bool = False,
    resubscribe: bool = False,
    source: str = "cli",
    note: str = "",
    consent_text: str = "",
) -> Subscribed:
    """Add `email` as active (or `pending`, to confirm), or update the name, tags and zone
    of the subscriber who has it.

    An address that unsubscribed, bounced or complained stays off the list (SubscriberError)
    unless `resubscribe` says they asked to come back. `note` is kept with the event (how
    they consented, say). Mailing a pending subscriber is `send_confirmation`'s job.
    """
    status = SubscriberStatus.PENDING if pending else SubscriberStatus.ACTIVE
    subscriber = store.add(
        db, email, name=name, tags=tags, timezone=timezone, status=status, now=now,
        resubscribe=resubscribe, source=source, detail=note, consent_text=consent_text,
    )
    return Subscribed(subscriber=subscriber, created=subscriber.created_at == now)


CONFIRM_PLACEHOLDER = "https://confirm.invalid/pubconfirmlink"
"""Stands for the per-address confirm link in the cached rendering; letters only, so
escaping and CSS inlining leave it as it is."""


class ConfirmationMailer:
    """Confirmation mails: who may get one, how often, and the mail itself.

    The one place for these rules, whoever asks (the subscribe form, the API, the CLI):
    pending, unsubscribed and bounced addresses may be mailed a link that confirms them,
    at most once per `subscribe.confirm_interval`; a complained address never is.

    The mail is rendered once a day with a placeholder for the link and spliced per
    address: rendering inlines CSS (about 0.1 s), and a burst of sign-ups after a popular
    article should not cost that per address. A template that hides the link (the
    placeholder does not come out verbatim) is rendered per address instead.
    """

    def __init__(
        self, config: Config, db: Engine, *, secret: str,
        provider_factory: Callable[[Config], Provider] = make_provider,
    ) -> None:
        self.config = config
        self.db = db
        self.secret = secret
        self.provider_factory = provider_factory
        self.interval = timedelta(seconds=float(config["subscribe.confirm_interval"]))
        self._cache: tuple[date, RenderedIssue] | None = None

    def send(self, subscriber: Subscriber, *, now: datetime) -> bool:
        """Mail `subscriber` their confirmation link if they may have one now.

        True when a mail went out; a provider's refusal is logged, not raised, since the
        subscriber is recorded either way and may ask again.
        """
        if subscriber.status not in CONFIRMABLE:
            return False
        if not store.mark_confirm_sent(self.db, subscriber.id, now=now, interval=self.interval):
            return False
        url = tokens.confirm_url(self.config, self.secret, store.link_key(self.db, subscriber.id), now)
        template = MessageTemplate.from_rendered(self.config, self._rendered(url, now))
        domain = template.sender_address.rpartition("@")[2] or "localhost"
        recipient = Recipient(
            delivery_id=None, email=subscriber.email, name="", unsubscribe_url="",
            message_id=f"<confirm.{secrets.token_hex(12)}@{domain}>",
        )
        provider = self.provider_factory(self.config)
        try:
            [result] = provider.send(template, [recipient], now=now)
        finally:
            provider.close()
        if result.outcome is not Outcome.SENT:
            log.error("confirmation mail to subscriber %s was not sent (%s): %s", subscriber.id, result.outcome,
                      result.detail)
            return False
        return True

    def _rendered(self, url: str, now: datetime) -> RenderedIssue:
        cached = self._cache
        if cached is None or cached[0] != now.date():
            cached = (now.date(), newsletter.render_confirmation(self.config, CONFIRM_PLACEHOLDER, now))
            self._cache = cached
        rendered = cached[1]
        if CONFIRM_PLACEHOLDER not in rendered.html or CONFIRM_PLACEHOLDER not in rendered.text:
            return newsletter.render_confirmation(self.config, url, now)
        return replace(
            rendered,
            html=rendered.html.replace(CONFIRM_PLACEHOLDER, html.escape(url)),
            text=rendered.text.replace(CONFIRM_PLACEHOLDER, url),
        )


def send_confirmation(
    config: Config,
    db: Engine,
    subscriber: Subscriber,
    *,
    now: datetime,
    provider_factory: Callable[[Config], Provider] = make_provider,
) -> bool:
    """Mail a pending (or unsubscribed, or bounced) subscriber the link that confirms them:
    `ConfirmationMailer.send`, for one mail."""
    secret = tokens.resolve_secret(config, real_provider=config["delivery.provider"] != "maildir")
    return ConfirmationMailer(config, db, secret=secret, provider_factory=provider_factory).send(subscriber, now=now)


def get_subscriber(db: Engine, key: int | str) -> Subscriber:
    """The subscriber with this id or address; NotFound otherwise."""
    found = store.get(db, key) if isinstance(key, int) else store.find(db, key)
    if found is None:
        what = f"id {key}" if isinstance(key, int) else f"address {store.normalize_email(key)}"
        raise NotFound(f"no subscriber with {what}")
    return found


def update_subscriber(
    db: Engine,
    key: int | str,
    *,
    now: datetime,
    name: str | None = None,
    tags: Iterable[str] | None = None,
    timezone: str | None = None,
    check: Callable[[Subscriber], None] | None = None,
) -> Subscriber:
    """Change a subscriber's name, zone or tags (`tags` replaces the set); None leaves a field.

    Nothing is written when nothing changes. `check` sees the subscriber as stored, in the
    transaction that writes, and raises to refuse the change (a stale If-Match, say).
    The status never changes here: use `unsubscribe`, or `subscribe` with resubscribe.
    """
    current = get_subscriber(db, key)
    return store.edit(db, current.id, name=name, tags=tags, timezone=timezone, now=now, check=check)


def unsubscribe(db: Engine, key: int | str, *, now: datetime, source: str = "cli") -> Subscriber:
    """Take a subscriber off the list, keeping the address so no import brings it back.

    Like a one-click unsubscribe, it takes effect for every batch not yet claimed by a
    sender. A bounced or complained status stays as it is.
    """
    current = get_subscriber(db, key)
    store.remove(db, current.email, now=now, provider=source)
    return get_subscriber(db, current.id)


def erase(db: Engine, key: int | str, *, now: datetime) -> str:
    """Delete a subscriber's personal data (an erasure request); returns the address erased.

    Their copies stay in the ledger without address or name, so every issue's counts stay
    true; webhook messages and kept API answers that name them are dropped, and webhook
    receivers are told `subscriber.erased` with the id alone.

    A later import may add the address again, under a new id, since nothing remembers it.
    """
    current = get_subscriber(db, key)
    store.remove(db, current.email, now=now, purge=True)
    return current.email


def export_subscriber(db: Engine, key: int | str) -> SubscriberData:
    """What the store holds about one subscriber: the row, its events and its deliveries."""
    subscriber = get_subscriber(db, key)
    found, copies = store_stats.history(db, subscriber.id, subscriber.email)
    return SubscriberData(subscriber=subscriber, events=tuple(found), deliveries=tuple(copies))


def import_subscribers(
    db: Engine,
    lines: Iterable[str],
    *,
    now: datetime,
    origin: str,
    pending: bool = False,
    tags: Iterable[str] = (),
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a CSV export (Mailchimp, Substack, Buttondown, Ghost or publisher) in one transaction.

    Unusable rows are reported with their line and reason and nothing else of them is
    kept; a file that is not CSV raises SubscriberError and imports nothing. Bytes from
    a file or an upload become `lines` through `publisher.store.subscriber_csv.open_export`,
    which finds their encoding. `progress` hears the count of records read, chunk by chunk.
    """
    return store.import_csv(db, lines, now=now, origin=origin, pending=pending, tags=tags, progress=progress)


def list_subscribers(
    db: Engine,
    *,
    status: SubscriberStatus | None = None,
    tag: str | None = None,
    since: datetime | None = None,
    search: str | None = None,
    after: int | None = None,
    limit: int = 100,
) -> SubscriberPage:
    """One page of subscribers in id order, after the subscriber with id `after`.

    Filters: `status`, `tag`, created at or after `since`, and `search` (part of the
    address or name). `limit` is 1 to MAX_PAGE (InvalidRequest otherwise).
    """
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
    items, more = store.page(
        db, status=status, tag=tag, since=since, search=search, after=after or 0, limit=limit
    )
    return SubscriberPage(items=tuple(items), has_more=more)


def search_subscribers(
    db: Engine,
    search: str,
    *,
    status: SubscriberStatus | None = None,
    tag: str | None = None,
    after: int | None = None,
    limit: int = 100,
) -> SubscriberPage:
    """`list_subscribers` with a `search`, for a person waiting on the answer (the desk):
    on SQLite a long list is read for a bounded time, and a page that stopped before the
    end says how far it looked (`looked_to`, also its `next_after`)."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
    items, more, looked_to = store.search_page(db, search, status=status, tag=tag, after=after or 0, limit=limit)
    return SubscriberPage(items=tuple(items), has_more=more, looked_to=looked_to)


def list_page(
    db: Engine,
    *,
    search: str = "",
    status: SubscriberStatus | None = None,
    tag: str | None = None,
    after: int | None = None,
    limit: int = 100,
) -> ListingPage:
    """A page for a person reading the list (the desk): `search_subscribers` with a
    `search`, else `list_subscribers`, its readers read as the four columns a list shows."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
    items, more, looked_to = store.listing(db, search=search, status=status, tag=tag, after=after or 0, limit=limit)
    return ListingPage(items=tuple(items), has_more=more, looked_to=looked_to)


def iter_subscribers(
    db: Engine, *, status: SubscriberStatus | None = None, tag: str | None = None
) -> Iterator[Subscriber]:
    """Every matching subscriber in id order, streamed a page at a time (for listings and exports)."""
    return store.iter_subscribers(db, status=status, tag=tag)


def export_csv(
    db: Engine, out: IO[str], *, status: SubscriberStatus | None = None, tag: str | None = None
) -> int:
    """Write matching subscribers as CSV (email, name, status, tags, timezone, created_at) to
    `out`, streamed; returns the rows written. Formula-like cells are neutralised."""
    return store.export_csv(db, out, status=status, tag=tag)


def counts(db: Engine) -> dict[str, int]:
    """Subscribers per status, every status present, active first."""
    return store.counts(db)


def tags(db: Engine) -> list[TagCount]:
    """Every tag in use with its active and total subscribers, most active first."""
    return _tag_lines(store.tag_counts(db), store.tag_counts(db, status=None))


def tags_and_counts(db: Engine) -> tuple[list[TagCount], dict[str, int]]:
    """`tags` and `counts` together, from one reading of the kept counts (the desk's list
    shows both on every page)."""
    counts, active, total = store.list_figures(db)
    return _tag_lines(active, total), counts


def _tag_lines(active: Mapping[str, int], total: Mapping[str, int]) -> list[TagCount]:
    ordered = sorted(total, key=lambda tag: (-active.get(tag, 0), -total[tag], tag))
    return [TagCount(tag=tag, active=active.get(tag, 0), total=total[tag]) for tag in ordered]


@dataclass(frozen=True, slots=True)
class LinkHolder:
    """The reader a signed link from their mail names."""

    subscriber: Subscriber
    unsubscribe_token: str
    """Their one-click unsubscribe token: the link's own when it was one, else signed
    for the same link key (and message), so a page reached by another of their links can offer it."""
    message_key: str | None = None
    """The ledger row whose message carried the link, when the link says."""


def link_holder(db: Engine, secret: str, token: str, *, purposes: Iterable[str]) -> LinkHolder | None:
    """Whom `token`, signed for one of `purposes` ("unsubscribe", "manage"), names; None
    for a bad token and for a token naming nobody alike, so the two answer the same.

    An older id-only unsubscribe link names only the row it was mailed to (see
    `publisher.mail.tokens`); a manage link always carries a link key.
    """
    for purpose in purposes:
        try:
            target = tokens.verify(secret, purpose, token)
        except TokenError:
            continue
        if target.key is not None:
            found = store.by_link_key(db, target.key)
            mine = token if purpose == "unsubscribe" else tokens.sign(
                secret, "unsubscribe", target.key, target.message_key
            )
        elif target.legacy_id is not None:
            found, mine = store.by_legacy_link(db, target.legacy_id), token
        else:
            found = None
        if found is None:
            return None
        return LinkHolder(subscriber=found, unsubscribe_token=mine, message_key=target.message_key)
    return None
