"""Several providers as one: `[delivery] provider = "pool"` and its `[[delivery.pool]]` entries.

The pool is itself a `Provider` (see base.py): the engine claims, sends and records
through it as through any other, and never learns which member took a message (the
ledger's detail of a sent row names it: "sent through Postmark").

Order: members by `priority` (the entry's place in the list unless written), and among
members of one priority by `weight` (smooth weighted round robin: weights 3 and 1 send
three batches through the first for each through the second). A call goes to the first
member whose circuit breaker lets it through (store/provider_state.py).

Failover, without duplicates:

- the member refused the whole call before taking any message (`TemporaryFailure`: no
  connection, a 5xx, a 429 with or without Retry-After; or `ConfigError`: a refused or
  expired key): nothing left, so the same recipients go at once to the next member, and
  the failure counts against this member's breaker;
- the call left and no answer came back (`CallMaybeTaken`: a timeout, a dropped
  connection): the member may have taken it. Those recipients must NOT go through
  another provider now: they come back as uncertain retries (`maybe_sent`), exactly as
  the engine makes them for one provider, and the ledger reports any second copy. The
  failure counts against the breaker, so the next batches start elsewhere;
- answers came back (even some refusals of single recipients): they are the call's
  results; rows the member left untried retry through the engine's backoff, through
  whichever member is in use then.

When no member can take a call (every breaker open, or each one refused it), the pool
raises `TemporaryFailure` with `nothing_tried` set, saying "all providers failing": the
engine holds off until the first breaker lets a probe through and leaves the rows queued
without spending an attempt, so a long outage ends in a paused send that resumes by
itself, never in readers marked failed. Every member refusing the account (only
`ConfigError`s) stops the send as a single provider's refused key does.

Per-member limits (`rate`, `burst`) are shared buckets (`pool:<provider>`) in the
database, like `delivery.rate`, so every worker agrees; the call waits for its tokens.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING

from publisher.config import PROVIDER_WORDS
from publisher.delivery.base import CallMaybeTaken, R, Template, every, make_provider
from publisher.delivery.ratelimit import SharedBucket
from publisher.errors import ConfigError, TemporaryFailure
from publisher.models import Outcome, SendResult
from publisher.numbers import plain_int
from publisher.store import provider_state
from publisher.store.provider_state import CLOSED, MemberState

if TYPE_CHECKING:
    import httpx
    from sqlalchemy import Engine

    from publisher.config import Config, PoolMember
    from publisher.delivery.base import Provider

__all__ = ["LABELS", "AllFailing", "PoolProvider", "describe", "short_reason"]

log = logging.getLogger(__name__)

LABELS = {name: words.said for name, words in PROVIDER_WORDS.items()}
"""Each provider's name as people write it, for Home, `publisher status` and the log (config's table)."""

ALL_FAILING = "all providers failing: the send waits and resumes by itself"


class AllFailing(TemporaryFailure):
    """No member of the pool could take the call; nothing of it left.

    `nothing_tried` tells the engine to put the rows back untouched (no attempt spent)
    while it holds off for `retry_after` seconds.
    """

    nothing_tried = True


@dataclass(slots=True)
class _Member:
    provider: Provider
    settings: PoolMember
    bucket: SharedBucket | None = None
    current: int = 0
    """Smooth weighted round robin's running weight."""

    @property
    def name(self) -> str:
        return self.settings.provider

    @property
    def label(self) -> str:
        return LABELS.get(self.name, self.name)


@dataclass(slots=True)
class _Outcome:
    errors: list[str] = field(default_factory=list)
    account_refused: int = 0
    temporary: int = 0
    retry_after: float | None = None


class PoolProvider:
    """The members of `[[delivery.pool]]`, tried in order, each behind a circuit breaker."""

    name = "pool"

    def __init__(
        self,
        members: Sequence[tuple[PoolMember, Provider]],
        *,
        threshold: int = 3,
        cooldown: float = 60.0,
        db: Engine | None = None,
        store_url: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not members:
            raise ConfigError('[delivery] provider is "pool" but no [[delivery.pool]] entry names a provider')
        self._members = [_Member(provider, settings) for settings, provider in members]
        self._members.sort(key=lambda m: m.settings.priority)
        self.max_batch = max(int(m.provider.max_batch) for m in self._members)
        self.answers_each = any(bool(getattr(m.provider, "answers_each", False)) for m in self._members)
        self.threshold = threshold
        self.cooldown = cooldown
        self._db = db
        self._store_url = store_url
        self._clock = clock
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Config, *, client: httpx.Client | None = None) -> PoolProvider:
        built: list[tuple[PoolMember, Provider]] = []
        try:
            for settings in config.pool:
                built.append((settings, make_provider(config, name=settings.provider, client=client)))
        except BaseException:
            for _, provider in built:
                provider.close()
            raise
        return cls(
            built,
            threshold=int(config["delivery.breaker_failures"]),
            cooldown=float(config["delivery.breaker_cooldown"]),
            store_url=config.store_url,
        )

    @property
    def members(self) -> list[str]:
        """The members' provider names, in priority order."""
        return [m.name for m in self._members]

    def bind_store(self, db: Engine) -> None:
        """Keep the breakers and member budgets in `db` (the engine's own; see engine.deliver)."""
        with self._lock:
            self._db = db
            for member in self._members:
                member.bucket = None

    def close(self) -> None:
        for member in self._members:
            member.provider.close()

    def send(
        self,
        template: Template[R],
        recipients: Sequence[R],
        *,
        now: datetime,
        answered: Callable[[SendResult], Callable[[], None]] | None = None,
    ) -> list[SendResult]:
        db = self._store()
        outcome = _Outcome()
        skipped = 0
        for member in self._order():
            if not provider_state.allow(db, member.name, now=now, cooldown=self.cooldown):
                skipped += 1
                continue
            self._wait_for_tokens(db, member, len(recipients))
            try:
                if answered is not None and getattr(member.provider, "answers_each", False):
                    results = member.provider.send(template, recipients, now=now, answered=answered)  # type: ignore[call-arg]
                else:
                    results = member.provider.send(template, recipients, now=now)
            except CallMaybeTaken as exc:
                # It may have been taken: sending it elsewhere could mail a reader twice. The
                # rows become uncertain retries, as the engine makes them for one provider,
                # without holding off the other members.
                self._failed(db, member, str(exc), now)
                return every(recipients, Outcome.RETRY, str(exc), exc.retry_after, maybe_sent=True)
            except TemporaryFailure as exc:
                self._failed(db, member, str(exc), now)
                outcome.temporary += 1
                outcome.errors.append(f"{member.label}: {exc}")
                if exc.retry_after is not None:
                    outcome.retry_after = min(outcome.retry_after or exc.retry_after, exc.retry_after)
                continue
            except ConfigError as exc:
                self._failed(db, member, str(exc), now)
                outcome.account_refused += 1
                outcome.errors.append(f"{member.label}: {exc}")
                continue
            if provider_state.succeeded(db, member.name, now=now):
                log.warning("%s answers again: back in use", member.label)
            return [_through(result, member.label) for result in results]
        if outcome.account_refused and not outcome.temporary and not skipped:
            raise ConfigError("every provider of the pool refused its account: " + "; ".join(outcome.errors))
        wait = self._until_probe(db, now, outcome.retry_after)
        detail = ALL_FAILING + (f" ({'; '.join(outcome.errors)})" if outcome.errors else "")
        log.warning("%s", detail)
        raise AllFailing(detail, retry_after=wait)

    def _order(self) -> list[_Member]:
        """Members by priority; within one priority, the weighted round robin's pick first."""
        with self._lock:
            ordered: list[_Member] = []
            index = 0
            while index < len(self._members):
                priority = self._members[index].settings.priority
                group = [m for m in self._members[index:] if m.settings.priority == priority]
                index += len(group)
                if len(group) > 1:
                    total = sum(m.settings.weight for m in group)
                    for member in group:
                        member.current += member.settings.weight
                    first = max(group, key=lambda m: m.current)
                    first.current -= total
                    group = [first] + [m for m in group if m is not first]
                ordered.extend(group)
            return ordered

    def _store(self) -> Engine:
        with self._lock:
            if self._db is None:
                from publisher.store import open_store  # only when used without the engine

                self._db = open_store(self._store_url)
            return self._db

    def _wait_for_tokens(self, db: Engine, member: _Member, count: int) -> None:
        if member.settings.rate <= 0:
            return
        with self._lock:
            if member.bucket is None:
                member.bucket = SharedBucket(
                    db, member.settings.rate, member.settings.burst, name=f"pool:{member.name}"
                )
            bucket = member.bucket
        wait = bucket.reserve(count, self._clock())
        if wait > 0:
            time.sleep(wait)

    def _failed(self, db: Engine, member: _Member, error: str, now: datetime) -> None:
        state = provider_state.failed(db, member.name, error, now=now, threshold=self.threshold)
        if state.state != CLOSED and state.failures == self.threshold:
            log.warning("%s failing (%s): batches go to the next provider", member.label, short_reason(error))

    def _until_probe(self, db: Engine, now: datetime, retry_after: float | None) -> float:
        """Seconds until some member can be tried again: its Retry-After or its cool-down."""
        states = provider_state.read(db, self.members)
        waits = []
        for member in self._members:
            state = states.get(member.name)
            reopens = state.reopens_at(self.cooldown) if state is not None else None
            waits.append(0.0 if reopens is None else max(0.0, (reopens - now).total_seconds()))
        soonest = min(waits) if waits else self.cooldown
        if retry_after is not None:
            soonest = max(soonest, min(retry_after, self.cooldown))
        return max(soonest, 1.0)


def _through(result: SendResult, label: str) -> SendResult:
    """A sent message's detail names the provider that took it."""
    if result.outcome is Outcome.SENT and not result.detail:
        return replace(result, detail=f"sent through {label}")
    return result


def short_reason(error: str) -> str:
    """A provider's error in a few words: "connection refused", "timed out", "HTTP 503"."""
    lowered = error.lower()
    if "refused" in lowered and "connect" in lowered:
        return "connection refused"
    if "did not answer in time" in lowered or "timed out" in lowered or "timeout" in lowered:
        return "timed out"
    for code, words in (("401", "key refused, HTTP 401"), ("403", "key refused, HTTP 403"),
                        ("429", "rate limited, HTTP 429")):
        if f"http {code}" in lowered:
            return words
    said = lowered.replace(":", " ").split()
    found = next((w for w in said if len(w) == 3 and w.startswith("5") and plain_int(w) is not None), None)
    if found and "http" in lowered:
        return f"HTTP {found}"
    first = error.split(". ")[0]
    return first if len(first) <= 80 else first[:77] + "..."


def describe(
    states: dict[str, MemberState], members: Sequence[str], *, now: datetime, cooldown: float, zone: tzinfo
) -> list[str]:
    """The pool in plain words for Home and `publisher status`; nothing while all is well.

    "Postmark failing since 10:02 (connection refused); sending through your mail server", or
    "all providers failing: the send waits and resumes by itself".
    """
    failing = [states[name] for name in members if name in states and states[name].state != CLOSED]
    if not failing:
        return []
    working = [name for name in members if name not in states or states[name].state == CLOSED]
    lines = []
    for state in failing:
        since = (state.failing_since or state.opened_at or now).astimezone(zone)
        stamp = since.strftime("%H:%M") if since.date() == now.astimezone(zone).date() else since.strftime(
            "%Y-%m-%d %H:%M"
        )
        reason = short_reason(state.last_error) if state.last_error else "no answer"
        line = f"{LABELS.get(state.member, state.member)} failing since {stamp} ({reason})"
        if working:
            line += f"; sending through {LABELS.get(working[0], working[0])}"
        lines.append(line)
    if not working:
        lines.append(ALL_FAILING)
    return lines
