"""The seam between the sending engine and a mail provider, and the registry of providers.

The engine depends on `Provider` only: it hands over one rendered template and a batch of
recipients and gets one `SendResult` per recipient back, in order. A recipient's failure is
a result (`Outcome.RETRY` with `retry_after`, or `Outcome.FAILED`), never an exception.

`send` raises in three cases, none of them about one recipient:

- `ConfigError`: the provider refused the account itself (a wrong token or password, a
  suspended account) before it accepted any message of the call. Failing every recipient
  would burn the list, so the engine stops and leaves the batch queued.
- `TemporaryFailure`: the provider refused the whole call for now (a 429, a 5xx, no
  connection) before any recipient of it had an answer. The engine retries the batch and
  makes no new call for a while (Retry-After, or a growing backoff), so a throttled or
  failing provider is not hammered with the rest of the list. `CallMaybeTaken`, its
  subclass, says the request left and no answer came back (a timeout): the retry may
  deliver a second copy, so the rows are flagged uncertain, never doubled silently.
- `SendInterrupted`: something unexpected (a bug) stopped the call part-way. It carries
  the answers already given, so that messages already out are recorded as sent rather
  than sent again; the engine stops with the original error.

Providers read a template through the small `Template` protocol below; the newsletter's
`MessageTemplate` and `Recipient` satisfy it, and tests may hand in anything that does.
"""

from __future__ import annotations

import email.utils
import importlib
import math
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from email.headerregistry import Address
from email.policy import default as default_policy
from typing import TYPE_CHECKING, Protocol, TypeVar

from publisher.errors import ConfigError, SubscriberError, TemporaryFailure
from publisher.models import Outcome, SendResult

if TYPE_CHECKING:
    import httpx

    from publisher.config import Config

__all__ = [
    "PROVIDERS",
    "UNUSABLE_RECIPIENT",
    "AccountRefused",
    "CallMaybeTaken",
    "Provider",
    "ProviderFactory",
    "RecipientLike",
    "SendInterrupted",
    "Template",
    "batches",
    "clean_text",
    "every",
    "failed",
    "mailbox",
    "make_provider",
    "parse_retry_after",
    "refused_for_now",
    "require_secret",
    "retry",
    "sent",
    "split_address",
]


class RecipientLike(Protocol):
    """What a provider reads of one recipient."""

    @property
    def delivery_id(self) -> int | None: ...

    @property
    def email(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def message_id(self) -> str: ...


R = TypeVar("R", bound=RecipientLike)
R_contra = TypeVar("R_contra", bound=RecipientLike, contravariant=True)


class Template(Protocol[R_contra]):
    """An issue rendered once; per-recipient values are spliced in on demand.

    `html` and `text` carry placeholder tokens; `substitutions` maps each token to the
    recipient's value (for APIs that personalise server-side), `parts` returns both
    bodies already personalised, `message_bytes` the complete RFC 5322 message.
    """

    @property
    def subject(self) -> str: ...

    @property
    def sender(self) -> str: ...

    @property
    def sender_address(self) -> str: ...

    @property
    def reply_to(self) -> str | None: ...

    @property
    def html(self) -> str: ...

    @property
    def text(self) -> str: ...

    def message_bytes(self, recipient: R_contra, date: datetime) -> bytes: ...

    def parts(self, recipient: R_contra) -> tuple[str, str]: ...

    def headers(self, recipient: R_contra) -> Mapping[str, str]: ...

    def substitutions(self, recipient: R_contra) -> Mapping[str, str]: ...


class Provider(Protocol):
    """A way out of the machine for newsletters. Safe to call from several threads."""

    name: str
    max_batch: int
    """Most recipients one `send` call should carry; larger batches are split.

    A provider whose server answers each message on its own (SMTP) also says
    `answers_each = True`: the engine then calls it with one recipient at a time and
    records each answer before the next message, so that a crash can repeat only the
    messages on the wire (see engine.py, "In-flight window")."""

    def send(
        self, template: Template[R], recipients: Sequence[R], *, now: datetime
    ) -> list[SendResult]: ...

    def close(self) -> None: ...


class ProviderFactory(Protocol):
    """A provider class's `from_config`: the one way the registry builds a provider."""

    def __call__(self, config: Config, *, client: httpx.Client | None = None) -> Provider: ...


UNUSABLE_RECIPIENT: tuple[type[Exception], ...] = (SubscriberError, ValueError)
"""What a template raises for a recipient whose values cannot go into a message."""


class AccountRefused(Exception):
    """The provider refused the account (credentials, suspension), not a recipient.

    Internal to the providers: `settle` turns it into `ConfigError` or into retries.
    """


class CallMaybeTaken(TemporaryFailure):
    """A call that left and got no answer: worth retrying, but it may have been taken."""


class SendInterrupted(Exception):
    """A call stopped by an unexpected error after part of it had its answers.

    `results` answers the first `len(results)` recipients of the call, in order. The next
    `in_flight` recipients may have been handed to the provider before the error (their
    rows become uncertain); the ones after were not tried. The error is `__cause__`.
    """

    def __init__(self, results: Sequence[SendResult], in_flight: int) -> None:
        super().__init__(f"send interrupted after {len(results)} answers")
        self.results = list(results)
        self.in_flight = in_flight


def sent(recipient: RecipientLike, provider_id: str = "", detail: str = "") -> SendResult:
    return SendResult(recipient.delivery_id, recipient.email, Outcome.SENT, detail, provider_id)


def retry(
    recipient: RecipientLike,
    detail: str,
    retry_after: float | None = None,
    *,
    maybe_sent: bool = False,
) -> SendResult:
    return SendResult(
        recipient.delivery_id, recipient.email, Outcome.RETRY, detail, retry_after=retry_after,
        maybe_sent=maybe_sent,
    )


def failed(recipient: RecipientLike, detail: str) -> SendResult:
    return SendResult(recipient.delivery_id, recipient.email, Outcome.FAILED, detail)


def every(
    recipients: Sequence[RecipientLike],
    outcome: Outcome,
    detail: str,
    retry_after: float | None = None,
    *,
    maybe_sent: bool = False,
) -> list[SendResult]:
    """The same result for every recipient of a call that failed as a whole."""
    return [
        SendResult(
            r.delivery_id, r.email, outcome, detail, retry_after=retry_after, maybe_sent=maybe_sent
        )
        for r in recipients
    ]


def settle(
    results: list[SendResult], rest: Sequence[RecipientLike], exc: AccountRefused
) -> list[SendResult]:
    """Finish a call the provider stopped by refusing the account.

    Nothing accepted yet: raise, so the engine stops with the batch still queued. Some
    messages already accepted: their results must reach the ledger, so the rest retry.
    """
    if not any(result.outcome is Outcome.SENT for result in results):
        raise ConfigError(str(exc)) from exc
    return results + every(rest, Outcome.RETRY, str(exc))


def refused_for_now(
    results: list[SendResult],
    rest: Sequence[RecipientLike],
    detail: str,
    retry_after: float | None = None,
    *,
    maybe_sent: bool = False,
) -> list[SendResult]:
    """Finish a call the provider refused as a whole, for now (throttled, down, unreachable).

    No recipient answered yet: raise `TemporaryFailure` (`CallMaybeTaken` when the
    request may have been taken), so the engine retries the batch and holds off. Some
    answered already: their results must reach the ledger, so the rest retry.
    """
    if not results:
        kind = CallMaybeTaken if maybe_sent else TemporaryFailure
        raise kind(detail, retry_after=retry_after)
    return results + every(rest, Outcome.RETRY, detail, retry_after, maybe_sent=maybe_sent)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After in seconds, from delay-seconds or an HTTP date (RFC 9110, 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None or now.tzinfo is None:
            return None
        seconds = (when - now).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def require_secret(config: Config, name: str, provider: str) -> str:
    """A provider's secret from the environment; refusing to start without it."""
    value = config.secret(name)
    if not value:
        raise ConfigError(
            f"[delivery] provider {provider!r} needs {name} in the environment (or "
            f"{name}_FILE naming a file that holds it). Set it and run again; it never "
            "goes in config.toml."
        )
    return value


def clean_text(value: str) -> str:
    """Header-safe text: no CR, LF or other control characters from user data."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in value).split())


def mailbox(name: str, address: str) -> str:
    """`Name <address>` for APIs that take the display form, quoted where needed."""
    name = clean_text(name)
    address = clean_text(address)
    if not name:
        return address
    try:
        return str(Address(display_name=name, addr_spec=address))
    except (ValueError, IndexError):
        return address


def split_address(value: str, fallback_address: str = "") -> tuple[str, str]:
    """(display name, address) of a From or Reply-To value, RFC 2047 words decoded."""
    if not value:
        return "", fallback_address
    try:
        header = default_policy.header_factory("from", value)
        addresses = getattr(header, "addresses", ())
        if addresses:
            first = addresses[0]
            return clean_text(first.display_name), first.addr_spec or fallback_address
    except (ValueError, IndexError, TypeError):
        pass
    name, address = email.utils.parseaddr(value)
    return clean_text(name), address or fallback_address


def batches(items: Sequence[R], size: int, *, unique: bool = False) -> Iterator[list[R]]:
    """Consecutive chunks of at most `size`, keeping order.

    With `unique`, an address never appears twice in one chunk: APIs that key
    personalisation by address (SendGrid, Mailgun) reject or merge duplicates.
    """
    chunk: list[R] = []
    seen: set[str] = set()
    for item in items:
        key = item.email.lower()
        if len(chunk) >= size or (unique and key in seen):
            yield chunk
            chunk, seen = [], set()
        chunk.append(item)
        seen.add(key)
    if chunk:
        yield chunk


# Each name maps to "module:Class"; the module is imported only when chosen, so that
# maildir never loads httpx or botocore, and so that provider modules can import this one.
PROVIDERS: dict[str, str] = {
    "maildir": "publisher.delivery.maildir:MaildirProvider",
    "smtp": "publisher.delivery.smtp:SmtpProvider",
    "postmark": "publisher.delivery.postmark:PostmarkProvider",
    "sendgrid": "publisher.delivery.sendgrid:SendGridProvider",
    "mailgun": "publisher.delivery.mailgun:MailgunProvider",
    "ses": "publisher.delivery.ses:SesProvider",
    "resend": "publisher.delivery.resend:ResendProvider",
    # Several of the above, with failover (`[[delivery.pool]]`): see pool.py.
    "pool": "publisher.delivery.pool:PoolProvider",
}


def make_provider(
    config: Config, *, name: str | None = None, client: httpx.Client | None = None
) -> Provider:
    """The provider `[delivery] provider` names (or `name`), ready to send.

    `client` is used by the HTTP API providers instead of a client of their own (tests
    point one at a loopback server); the caller then closes it.
    """
    chosen = name or str(config["delivery.provider"])
    target = PROVIDERS.get(chosen)
    if target is None:
        raise ConfigError(
            f"[delivery] provider {chosen!r} is unknown; choose one of {', '.join(PROVIDERS)}."
        )
    module, _, attribute = target.partition(":")
    factory: ProviderFactory = getattr(importlib.import_module(module), attribute).from_config
    return factory(config, client=client)
