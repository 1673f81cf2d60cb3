"""When to try a temporarily refused message again, and which refusals mean "never".

Exponential backoff with full jitter (a random delay between zero and the doubled
ceiling), so that many rows refused together do not come back together; a provider's
Retry-After is a floor, up to a day (one asking for years is broken, and its wait would
not even fit a date). Pure: the random source is passed in.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from publisher.config import Config
from publisher.models import Outcome, SendResult

__all__ = ["RETRY_AFTER_LIMIT", "RetryPolicy", "backoff", "is_hard_bounce"]

RETRY_AFTER_LIMIT = 86_400.0
"""The longest Retry-After honoured, in seconds."""


def backoff(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based)."""
    delay = (rng or random).uniform(0.0, _ceiling(attempt, base, cap))
    return _at_least(delay, retry_after)


def _at_least(delay: float, retry_after: float | None) -> float:
    if retry_after is None:
        return delay
    return max(delay, min(retry_after, RETRY_AFTER_LIMIT))


def _ceiling(attempt: int, base: float, cap: float) -> float:
    # The exponent is bounded so that a long run of failures cannot overflow the float.
    return min(cap, base * 2.0 ** min(max(0, attempt - 1), 64))


# RFC 3463 enhanced codes 5.1.x (bad mailbox or domain) and 5.2.1 (mailbox disabled) are
# about the address; other permanent codes (size, content, policy) are about the message
# and must not remove a reader from the list.
_ADDRESS_CODE = re.compile(r"\b5\.(?:1\.\d{1,3}|2\.1)\b")
_ANY_ENHANCED = re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b")
_ADDRESS_WORDS = re.compile(
    r"user unknown|unknown user|no such user|does not exist|doesn't exist|invalid recipient|"
    r"unknown recipient|recipient address rejected|mailbox unavailable|mailbox not found|"
    r"invalid (?:email )?address|address rejected|hard ?bounce|inactive recipient",
    re.IGNORECASE,
)


def is_hard_bounce(result: SendResult) -> bool:
    """Whether a permanent failure says the address itself is dead (suppress it)."""
    if result.outcome is not Outcome.FAILED:
        return False
    detail = result.detail
    if _ADDRESS_CODE.search(detail):
        return True
    if _ANY_ENHANCED.search(detail):
        return False
    # Without an enhanced code a bare 550 may as well mean "relaying denied": only words
    # that name the mailbox count, so a misconfigured relay never empties the list.
    return bool(_ADDRESS_WORDS.search(detail))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`[delivery] max_attempts`, `retry_base` and `retry_max` as one value for the ledger."""

    max_attempts: int = 5
    base: float = 30.0
    cap: float = 3600.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    @classmethod
    def from_config(cls, config: Config) -> RetryPolicy:
        return cls(
            max_attempts=max(1, int(config["delivery.max_attempts"])),
            base=float(config["delivery.retry_base"]),
            cap=float(config["delivery.retry_max"]),
        )

    def delay(self, attempt: int, retry_after: float | None) -> float:
        return backoff(attempt, base=self.base, cap=self.cap, retry_after=retry_after, rng=self.rng)

    def hold(self, refusals: int, retry_after: float | None) -> float:
        """Seconds to make no new call after `refusals` whole calls refused in a row.

        Equal jitter (between half the ceiling and the ceiling) rather than full: a hold
        near zero would let every thread go straight back to a provider that is down.
        """
        ceiling = _ceiling(refusals, self.base, self.cap)
        return _at_least(self.rng.uniform(ceiling / 2, ceiling), retry_after)

    def is_hard_bounce(self, result: SendResult) -> bool:
        return is_hard_bounce(result)
