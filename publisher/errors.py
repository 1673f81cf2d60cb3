"""Every error publisher raises on purpose.

    PublisherError                 catch this to report any problem to the author
    ├── ConfigError                config.toml or the environment is wrong
    ├── ContentError               an article file cannot be read (front matter, Markdown)
    ├── TemplateError              a template is missing or fails to render
    ├── BuildError                 output cannot be written
    ├── StoreError                 the database refused or is at the wrong schema
    │   └── NotFound               an issue, subscriber or schedule does not exist
    ├── SubscriberError            an address or an import row is unusable
    ├── InvalidRequest             an action was asked for with values it cannot take
    │   └── AmbiguousTime          a wall-clock time that comes twice (the clocks go back)
    ├── Conflict                   an action clashes with what exists already
    ├── TokenError                 an unsubscribe or confirm token is bad or unknown
    ├── AccountError               a desk account is unusable or a sign-in is refused
    │   └── SignInThrottled        too many failed sign-ins for an account or an address
    ├── DeliveryError              a provider could not take a message
    │   ├── TemporaryFailure       try again later (4xx SMTP, 429, 5xx, timeouts)
    │   └── PermanentFailure       never retry this recipient (5xx SMTP, 4xx API)
    ├── WebhookError               a provider webhook failed its signature check
    ├── MailboxError               the bounce mailbox (IMAP) cannot be reached, logged into or read
    └── SourceError                a watched feed or imported page could not be used
        └── FetchRefused           the target is private, loopback, too big or too slow

Every message says what happened and what to do, naming the file, line or key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

__all__ = [
    "AccountError",
    "AmbiguousTime",
    "BuildError",
    "ConfigError",
    "Conflict",
    "ContentError",
    "DeliveryError",
    "FetchRefused",
    "InvalidRequest",
    "MailboxError",
    "NotFound",
    "PermanentFailure",
    "PublisherError",
    "SignInThrottled",
    "SourceError",
    "StoreError",
    "SubscriberError",
    "TemplateError",
    "TemporaryFailure",
    "TokenError",
    "WebhookError",
]


class PublisherError(Exception):
    """Base of every error publisher raises on purpose; the CLI prints it and exits 1."""


class ConfigError(PublisherError):
    """config.toml, a file it names, or an environment variable is wrong or missing.

    `problems` lists each problem found (config.toml's are all collected before raising);
    the message is them joined, one a line.
    """

    def __init__(self, message: str, *, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems) or (message,)


class ContentError(PublisherError):
    """An article cannot be parsed; the message names the file and, where known, the line."""


class TemplateError(PublisherError):
    """A template is missing or raised while rendering."""


class BuildError(PublisherError):
    """The output folder cannot be written."""


class StoreError(PublisherError):
    """The database refused an operation or its schema is from a newer publisher."""


class NotFound(StoreError):
    """An issue, subscriber or schedule named by the user does not exist."""


class SubscriberError(PublisherError):
    """An address is invalid or an import row cannot be used."""


class InvalidRequest(PublisherError):
    """An action was asked for with values it cannot take: a send time in the past, a page
    size out of range. Catch it to tell the caller what to change; nothing was done."""


class MailedAlready(InvalidRequest):
    """A send of an article another service mailed already (it was moved in from there),
    asked for without the author's explicit word that it should go again."""


class AmbiguousTime(InvalidRequest):
    """A wall-clock time that occurs twice in its zone (the hour the clocks go back).

    Catch it to ask the author which one is meant: `choices` holds each occurrence as
    (how to write it, with its UTC offset; the instant in UTC). Either text, given back as
    the time, names exactly one instant.
    """

    def __init__(self, message: str, choices: Sequence[tuple[str, datetime]]) -> None:
        super().__init__(message)
        self.choices = tuple(choices)


class Conflict(PublisherError):
    """An action clashes with what exists: an article file with that slug, a schedule that
    already ran. Nothing was changed; the message says what is in the way."""


class TokenError(PublisherError):
    """A signed token is malformed, forged or names nobody.

    The web layer answers every TokenError the same way, so that a probe learns nothing.
    """


class AccountError(PublisherError):
    """A desk account cannot be added or changed as asked, or a sign-in is refused.

    A refused sign-in says the same thing whether the address or the password was wrong.
    """


class SignInThrottled(AccountError):
    """Too many failed sign-ins lately for this account or from this address.

    `retry_after` is the number of seconds until the next attempt is counted again.
    """

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeliveryError(PublisherError):
    """A provider did not accept a message. Catch the two subclasses, not this one."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TemporaryFailure(DeliveryError):
    """Worth retrying later: SMTP 4xx, HTTP 429 or 5xx, a timeout or a dropped connection.

    `retry_after` carries the provider's Retry-After in seconds when it sent one.
    """


class PermanentFailure(DeliveryError):
    """Never retry this recipient: SMTP 5xx, a rejected address, a request the API refuses."""


class WebhookError(PublisherError):
    """A provider webhook failed its signature or shared-secret check, or is malformed."""


class MailboxError(PublisherError):
    """The bounce mailbox cannot be reached, refuses the login or fails a command. Nothing
    in it was lost: a message not yet moved out of its folder is read again next time."""


class SourceError(PublisherError):
    """A watched feed or an imported page could not be fetched or understood."""


class FetchRefused(SourceError):
    """A fetch was refused before or during transfer: private target, too large, too slow."""
