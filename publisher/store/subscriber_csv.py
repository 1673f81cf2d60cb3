"""Subscriber CSV files: the exports of nine newsletter platforms, and our own.

Reading maps each platform's columns and statuses onto ours and yields one `SourceRow`
(or `Rejected`) per record, lazily, with the line it started on. Validation of the
address, name, tags and zone is left to the store, which owns those rules. Pure: lines
in, rows out; `open_export` is the edge that finds a file's encoding (UTF-8, UTF-16,
Latin-1, Windows-1252, ... as people's spreadsheets save them, found by
charset-normalizer) and refuses a file that is not text.

A quote opened in a cell and never closed would make the csv module swallow every
following line into that cell: a record whose open quote runs into a line that is a
record of its own (an address in the address column) is rejected with its line instead,
and reading goes on from that line.

Each subscriber's consent (when and through what they signed up) is kept: the date goes
to `confirmed_at`, the platform and file to `source`.

What each platform calls things (header names compared case- and punctuation-blind):

| platform   | name                   | tags   | who may be mailed                                  |
|------------|------------------------|--------|----------------------------------------------------|
| Mailchimp  | First Name + Last Name | TAGS   | no UNSUB_TIME, no CLEAN_TIME (bounced); file name  |
| Substack   | name / Name            |        | email_disabled false (the dashboard's list: all)   |
| Buttondown | name (rare)            | tags   | subscriber_type / type (`BUTTONDOWN_TYPES`)        |
| Ghost      | name                   | labels | subscribed_to_emails true, no deleted_at           |
| listmonk   | name                   |        | status enabled, and not every list left            |
| Wix        | First Name + Last Name | Labels | Email subscriber status Subscribed                 |
| Kit        | first_name             | tags   | state active (`KIT_STATES`)                        |
| beehiiv    | First Name + Last Name |        | status active (`BEEHIIV_STATUSES`), no unsubscribed_at |
| MailerLite | name                   |        | status active (`MAILERLITE_STATUSES`), no unsubscribed_at |
| publisher  | name                   | tags   | status (empty is active); Kit's words in a state   |

Each export is told by columns only it writes (`_detect`): Wix's Email subscriber status,
Ghost's subscribed_to_emails, Mailchimp's MEMBER_RATING, OPTIN_TIME, LEID, UNSUB_TIME, ...,
Buttondown's subscriber_type (or type beside creation_date), Substack's email_disabled,
active_subscription or Subscription type, listmonk's attributes beside uuid or status,
beehiiv's status beside tier, MailerLite's status beside optin_ip, unsubscribed_at or its
counts, Kit's state beside first_name or email_address. Which export the columns and
values come from: Ghost's members-csv `unparse.js`, listmonk's `cmd/subscribers.go`,
Buttondown's OpenAPI `SubscriberType`, Kit's v4 API subscriber states, MailerLite's API
statuses, beehiiv's members CSV as Ghost's migrator reads it, Substack's email_list CSV
(Kit's and MailerLite's column names are their APIs' fields: no export of theirs was at hand).

One rule for every platform: a record its platform marks as not mailed (unsubscribed,
bounced, complained, not yet confirmed) is imported with that status, so that it stays
off the list; a record the platform never had as a subscriber (Wix's "Never subscribed",
a Mailchimp file of non-subscribed contacts) is refused; and a record whose status cell
is empty or holds a word the platform does not document is refused with the file's line,
the column, the word and what to do. A file named for the readers who left (Mailchimp's
unsubscribed_ and cleaned_ files, Buttondown's unsubscribers.csv) makes everyone in it
at least unsubscribed or bounced.

Wix's contacts are everyone who ever wrote through the site, not only subscribers: a
contact whose "Email subscriber status" is "Never subscribed" (or empty) never agreed to
the newsletter, and is refused with that reason rather than added. A column that seems to
say who may be mailed ("Accepts Email Marketing", "Subscription status", "unsubscribed",
...) refuses the whole file unless the rule the file is read by reads it, or it is one of
that platform's own columns that says something else (Substack's active_subscription is a
paid plan): in a file of none of these platforms, anything but our own `status`; in a file
that looks like a platform's ("Email, Subscription type, Unsubscribed" has Substack's
column), anything that platform's export does not have. Read as it is, the readers that
column keeps off the list would be mailed.

When they consented: Mailchimp's CONFIRM_TIME (else OPTIN_TIME), Substack's, Ghost's,
Kit's and beehiiv's created_at, Buttondown's creation_date, listmonk's created_at, Wix's
Created At, MailerLite's opted_in_at (else subscribed_at), our own confirmed_at (and
source, opted_in_at, consent_text). Each row also carries its cells by header, for a reader
that needs the columns this module leaves aside (`publisher.content.exports.readers`).
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from publisher.errors import SubscriberError
from publisher.models import SubscriberStatus

__all__ = [
    "EXPORT_COLUMNS",
    "FORMULA_STARTS",
    "ImportReport",
    "Rejected",
    "SourceRow",
    "neutralize",
    "open_export",
    "read_export",
    "sniff_encoding",
    "split_tags",
]

S = SubscriberStatus
EXPORT_COLUMNS = (
    "email",
    "name",
    "status",
    "tags",
    "timezone",
    "created_at",
    "confirmed_at",
    "source",
    "opted_in_at",
    "consent_text",
)
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

EMAIL_KEYS = ("email", "email_address", "e_mail", "e_mail_address", "mail", "email_1")
NAME_KEYS = ("name", "full_name")
FIRST_KEYS = ("first_name", "fname", "firstname")
LAST_KEYS = ("last_name", "lname", "lastname", "surname")
TAG_KEYS = ("tags", "labels", "tag", "label")

# Buttondown's subscriber types (its API's SubscriberType): who still gets the newsletter
# and who does not. Churned and paused readers still get the free letters; blocked ones
# were stopped at sign-up by its filters, removed ones banned by the author.
BUTTONDOWN_TYPES: Mapping[str, SubscriberStatus] = {
    "regular": S.ACTIVE,
    "premium": S.ACTIVE,
    "trialed": S.ACTIVE,
    "unpaid": S.ACTIVE,
    "gifted": S.ACTIVE,
    "churning": S.ACTIVE,
    "churned": S.ACTIVE,
    "paused": S.ACTIVE,
    "past_due": S.ACTIVE,
    "upcoming": S.ACTIVE,
    "complimentary": S.ACTIVE,
    "unactivated": S.PENDING,
    "unsubscribed": S.UNSUBSCRIBED,
    "removed": S.UNSUBSCRIBED,
    "blocked": S.UNSUBSCRIBED,
    "spammy": S.UNSUBSCRIBED,
    "undeliverable": S.BOUNCED,
    "complained": S.COMPLAINED,
}

# Our own statuses, plus the words other tools use for them in a plain "status" column.
STATUS_WORDS: Mapping[str, SubscriberStatus] = {
    **{status.value: status for status in SubscriberStatus},
    "subscribed": S.ACTIVE,
    "confirmed": S.ACTIVE,
    "unconfirmed": S.PENDING,
    "cleaned": S.BOUNCED,
    "bounce": S.BOUNCED,
    "complaint": S.COMPLAINED,
}

TRUE_WORDS = frozenset({"true", "yes", "1", "y", "t"})
FALSE_WORDS = frozenset({"false", "no", "0", "n", "f"})


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One record of an export, mapped to our fields but not yet validated."""

    line: int
    email: str
    name: str = ""
    tags: tuple[str, ...] = ()
    timezone: str | None = None
    status: SubscriberStatus = S.ACTIVE
    consented_at: datetime | None = None
    """When they signed up or confirmed on the other platform (UTC), if the file says."""
    source: str = ""
    """Where they signed up, when the file names it (our own export's `source` column)."""
    opted_in_at: datetime | None = None
    """When they opted in, where that differs from when they confirmed (our own export)."""
    consent_text: str = ""
    """What the other platform recorded about their consent (our own export's column)."""
    added_at: datetime | None = None
    """When they were added to the list the file comes from (our own export's `created_at`)."""
    cells: Mapping[str, str] = field(default_factory=dict)
    """The record's cells by header (lower-case, punctuation as `_`), as read."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that will not be imported, and why (shown to the author as is)."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did. Rejected rows carry their line number and the reason."""

    platform: str
    """Whose export the file looked like: Mailchimp, Substack, Buttondown, Ghost, listmonk, Wix, Kit,
    beehiiv, MailerLite, publisher."""
    imported: int = 0
    """New subscribers, of any status: an unsubscribed row is kept so it stays off the list."""
    updated: int = 0
    """Addresses already here whose name, tags, zone or status the file changed."""
    unchanged: int = 0
    """Addresses already here that the file matched with nothing new (a repeated import)."""
    kept: int = 0
    """Addresses already unsubscribed, bounced or complained here: left as they were."""
    rejected: tuple[Rejected, ...] = ()
    new_by_status: Mapping[str, int] = field(default_factory=dict)
    """How many of the new subscribers came in with each status."""
    rows_read: int = 0
    """Records read (blank lines are not records): imported + updated + unchanged + kept +
    rejected, each record counted once."""


def neutralize(cell: str) -> str:
    """A cell a spreadsheet will show as text, never run as a formula.

    OWASP's advice: a cell starting with = + - @ tab or CR gets a leading apostrophe.
    `read_export` takes it off again, so an export imports back unchanged.
    """
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def _unneutralize(cell: str) -> str:
    if len(cell) > 1 and cell[0] == "'" and cell[1:].startswith(FORMULA_STARTS):
        return cell[1:]
    return cell


@functools.lru_cache(maxsize=1024)
def split_tags(cell: str) -> tuple[str, ...]:
    """Tags from one cell: `a, b`, Mailchimp's `"a","b"` or a list like `['a', 'b']`.

    Remembered: a list's rows share a few cells of tags, read once each."""
    cell = cell.strip().strip("[]")
    parts = (part.strip().strip("\"'").strip() for part in cell.split(","))
    return tuple(part for part in parts if part)


def _key(header: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", header.strip().lstrip("\ufeff").lower()).strip("_")


def _truthy(value: str, *, default: bool | None) -> bool | None:
    """True or False for yes/no words, `default` for an empty cell, None for anything else."""
    word = value.strip().lower()
    if not word:
        return default
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def _zone_or_none(value: str) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return value


Cells = Mapping[str, str]
StatusRule = Callable[[Cells], "SubscriberStatus | str"]


def _unknown(platform: str, what: str, column: str, value: str, known: Iterable[str]) -> str:
    """Why a record whose status cell holds a word we do not know is not imported, and what to do."""
    said = f"unknown {platform} {what} {value!r} in the {column} column" if value else f"{platform}'s {column} is empty"
    return (
        f"{said} (expected {', '.join(known)}); not imported. Check this reader on {platform}, and "
        "add them by hand only if they get the newsletter there"
    )


def _status_publisher(cells: Cells) -> SubscriberStatus | str:
    word = cells.get("status", "").strip().lower()
    status = STATUS_WORDS.get(word or "active")
    if status is None:
        known = ", ".join(s.value for s in SubscriberStatus)
        return f"unknown status {word!r} (expected one of {known})"
    # A `state` column is most often an address's (CA, Bavaria), but a Kit export cut down
    # to fewer columns than `_detect` knows it by still says there who left.
    left = KIT_STATES.get(cells.get("state", "").strip().lower(), S.ACTIVE)
    if left is S.ACTIVE:
        return status
    return left if status is S.ACTIVE else max(status, left, key=_PROTECTION.__getitem__)


def _status_mailchimp(cells: Cells) -> SubscriberStatus | str:
    if cells.get("clean_time", "").strip():
        return S.BOUNCED
    if cells.get("unsub_time", "").strip():
        return S.UNSUBSCRIBED
    return _status_publisher(cells)


def _status_substack(cells: Cells) -> SubscriberStatus | str:
    if "email_disabled" not in cells:
        return S.ACTIVE  # the dashboard's list of subscribers, which has no such column
    disabled = _truthy(cells["email_disabled"], default=None)
    if disabled is None:
        return _unknown("Substack", "value", "email_disabled", cells["email_disabled"].strip(), ("true", "false"))
    return S.UNSUBSCRIBED if disabled else S.ACTIVE


def _words(
    platform: str, what: str, column: str, words: Mapping[str, SubscriberStatus], value: str
) -> SubscriberStatus | str:
    word = re.sub(r"\s+", " ", value.strip().lower())
    status = words.get(word)
    if status is None:
        return _unknown(platform, what, column, word, words)
    return status


def _status_buttondown(cells: Cells) -> SubscriberStatus | str:
    column = "subscriber_type" if "subscriber_type" in cells else "type"
    return _words("Buttondown", "subscriber type", column, BUTTONDOWN_TYPES, cells.get(column, ""))


def _status_ghost(cells: Cells) -> SubscriberStatus | str:
    if cells.get("deleted_at", "").strip():
        return S.UNSUBSCRIBED  # a member deleted on Ghost left, whatever the other cells say
    subscribed = _truthy(cells.get("subscribed_to_emails", ""), default=None)
    if subscribed is None:
        said = cells.get("subscribed_to_emails", "").strip()
        return _unknown("Ghost", "value", "subscribed_to_emails", said, ("true", "false"))
    return S.ACTIVE if subscribed else S.UNSUBSCRIBED


# listmonk's subscriber statuses: blocklisted means never mail again, whatever the lists say.
LISTMONK_STATUSES: Mapping[str, SubscriberStatus] = {
    "enabled": S.ACTIVE,
    "disabled": S.UNSUBSCRIBED,
    "blocklisted": S.UNSUBSCRIBED,
}


def _status_listmonk(cells: Cells) -> SubscriberStatus | str:
    status = _words("listmonk", "status", "status", LISTMONK_STATUSES, cells.get("status", ""))
    if status is not S.ACTIVE:
        return status
    # Enabled, but unsubscribed from every list it names (the `lists` column of the API's
    # answer): listmonk sends such a subscriber nothing.
    lists = cells.get("lists", "").strip()
    if lists.startswith("["):
        try:
            entries = json.loads(lists)
        except ValueError:
            return "the lists column is not the JSON listmonk writes; export the subscribers again"
        states = (
            {
                str(item.get("subscription_status", "")).strip().lower() if isinstance(item, dict) else ""
                for item in entries
            }
            if isinstance(entries, list)
            else {""}
        )
        if states == {"unsubscribed"}:
            return S.UNSUBSCRIBED
    return status


# Wix's "Email subscriber status": only "Subscribed" agreed to the newsletter.
WIX_STATUSES: Mapping[str, SubscriberStatus] = {
    "subscribed": S.ACTIVE,
    "unsubscribed": S.UNSUBSCRIBED,
    "pending": S.PENDING,
}
WIX_NEVER = frozenset({"", "never subscribed", "not set", "never_subscribed"})


def _status_wix(cells: Cells) -> SubscriberStatus | str:
    word = re.sub(r"\s+", " ", cells.get("email_subscriber_status", "").strip().lower())
    if word in WIX_NEVER:
        return (
            "never subscribed on Wix: a contact who did not agree to get the newsletter is not "
            "added (they can subscribe on the site)"
        )
    status = WIX_STATUSES.get(word)
    if status is None:
        known = ("Subscribed", "Unsubscribed", "Pending", "Never subscribed")
        return _unknown("Wix", "subscriber status", "Email subscriber status", word, known)
    return status


# Kit's (ConvertKit's) subscriber states, as its API documents them: inactive is a
# subscriber who has not confirmed yet, cancelled one who unsubscribed; and the words its
# subscriber page shows (Confirmed, Unconfirmed, Cold: confirmed but not opening lately).
KIT_STATES: Mapping[str, SubscriberStatus] = {
    "active": S.ACTIVE,
    "confirmed": S.ACTIVE,
    "cold": S.ACTIVE,
    "inactive": S.PENDING,
    "unconfirmed": S.PENDING,
    "cancelled": S.UNSUBSCRIBED,
    "canceled": S.UNSUBSCRIBED,
    "bounced": S.BOUNCED,
    "complained": S.COMPLAINED,
}


def _status_kit(cells: Cells) -> SubscriberStatus | str:
    column = "state" if "state" in cells else "subscriber_state"
    value = cells.get(column, "").strip()
    if value != value.lower() and value.lower() not in KIT_STATES:
        # A list of names and postal addresses has a state column too (CA, New York,
        # Bavaria): Kit writes its states in lower case, a place is written with capitals.
        return _status_publisher({k: v for k, v in cells.items() if k != column})
    status = _words("Kit", "state", column, KIT_STATES, value)
    if isinstance(status, SubscriberStatus):
        return status
    return f"{status} (if the file is not Kit's and {column} is a postal state, rename that column)"


# beehiiv's subscription statuses: inactive is a reader who unsubscribed (or was
# unsubscribed); validating and pending have not confirmed; invalid failed the address check.
BEEHIIV_STATUSES: Mapping[str, SubscriberStatus] = {
    "active": S.ACTIVE,
    "inactive": S.UNSUBSCRIBED,
    "pending": S.PENDING,
    "validating": S.PENDING,
    "invalid": S.BOUNCED,
}


def _status_beehiiv(cells: Cells) -> SubscriberStatus | str:
    if cells.get("unsubscribed_at", "").strip():
        return S.UNSUBSCRIBED  # beehiiv's export can say active beside a date of leaving
    return _words("beehiiv", "status", "status", BEEHIIV_STATUSES, cells.get("status", ""))


# MailerLite's subscriber statuses: junk is an address its checks refused.
MAILERLITE_STATUSES: Mapping[str, SubscriberStatus] = {
    "active": S.ACTIVE,
    "unconfirmed": S.PENDING,
    "unsubscribed": S.UNSUBSCRIBED,
    "bounced": S.BOUNCED,
    "junk": S.UNSUBSCRIBED,
}


def _status_mailerlite(cells: Cells) -> SubscriberStatus | str:
    if cells.get("unsubscribed_at", "").strip():
        return S.UNSUBSCRIBED
    return _words("MailerLite", "status", "status", MAILERLITE_STATUSES, cells.get("status", ""))


def _moment(value: str) -> datetime | None:
    """An export's timestamp as UTC: ISO 8601 with or without zone or "Z" (naive means UTC).

    Something else is taken as no date rather than a reason to refuse the subscriber.
    """
    text = value.strip()
    if not text:
        return None
    if text.endswith(" UTC"):  # beehiiv's "2023-03-24 10:23:10 UTC"
        text = text[:-4] + "+00:00"
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _consent_columns(*names: str) -> Callable[[Cells], datetime | None]:
    def first(cells: Cells) -> datetime | None:
        for name in names:
            found = _moment(cells.get(name, ""))
            if found is not None:
                return found
        return None

    return first


@dataclass(frozen=True, slots=True)
class _Platform:
    name: str
    status: StatusRule
    consented: Callable[[Cells], datetime | None]
    zone_column: bool = True
    """Whether a `timezone` column holds zones we validate strictly (ours) or best-effort."""
    own: frozenset[str] = frozenset()
    """Its export's columns that look like permission (`_PERMISSION`): the ones its rule
    reads, and the ones that say something else (a paid plan, an unsubscribe's reason).
    Any other such column refuses the file: its rule would not read it."""


PUBLISHER = _Platform("publisher", _status_publisher, _consent_columns("confirmed_at"), own=frozenset(EXPORT_COLUMNS))
MAILCHIMP = _Platform(
    "Mailchimp",
    _status_mailchimp,
    _consent_columns("confirm_time", "optin_time"),
    zone_column=False,
    own=frozenset(
        {
            "status",
            "optin_ip",
            "unsub_time",
            "unsub_campaign_title",
            "unsub_campaign_id",
            "unsub_reason",
            "unsub_reason_other",
        }
    ),
)
SUBSTACK = _Platform(
    "Substack",
    _status_substack,
    _consent_columns("created_at"),
    own=frozenset({"email_disabled", "active_subscription", "subscription_type"}),
)
BUTTONDOWN = _Platform(
    "Buttondown",
    _status_buttondown,
    _consent_columns("creation_date", "created_at"),
    own=frozenset({"subscriber_type", "type"}),
)
GHOST = _Platform(
    "Ghost",
    _status_ghost,
    _consent_columns("created_at"),
    # status is free, paid or comped; newsletters lists the newsletters they get.
    own=frozenset({"subscribed_to_emails", "deleted_at", "status", "newsletters"}),
)
LISTMONK = _Platform("listmonk", _status_listmonk, _consent_columns("created_at"), own=frozenset({"status"}))
WIX = _Platform(
    "Wix",
    _status_wix,
    _consent_columns("created_at_utc_0", "created_at"),
    # Wix keeps a contact's consent to text messages apart from the newsletter's.
    own=frozenset({"email_subscriber_status", "sms_subscriber_status", "phone_subscriber_status"}),
)
KIT = _Platform("Kit", _status_kit, _consent_columns("created_at"), own=frozenset({"state", "subscriber_state"}))
BEEHIIV = _Platform(
    "beehiiv",
    _status_beehiiv,
    _consent_columns("created_at"),
    own=frozenset({"status", "unsubscribed_at", "subscription_date_substack"}),
)
MAILERLITE = _Platform(
    "MailerLite",
    _status_mailerlite,
    _consent_columns("opted_in_at", "subscribed_at", "created_at"),
    own=frozenset({"status", "unsubscribed_at", "optin_ip"}),
)

_MAILCHIMP_MARKERS = frozenset(
    {"member_rating", "optin_time", "confirm_time", "leid", "euid", "unsub_time", "clean_time"}
)
_SUBSTACK_MARKERS = frozenset({"email_disabled", "active_subscription", "subscription_type"})
_BEEHIIV_MARKERS = frozenset({"tier", "free_tier", "premium_tier"})
_MAILERLITE_MARKERS = frozenset(
    {"optin_ip", "unsubscribed_at", "opens_count", "clicks_count", "open_rate", "click_rate"}
)


def _detect(keys: Sequence[str]) -> _Platform:
    """Whose export a header is, by the columns only that platform writes; ours otherwise.

    A platform recognised here reads who may be mailed from its own status column. The
    order matters where exports share a name: beehiiv's and MailerLite's `status` beside
    their own columns, Kit's `state` beside the names Mailchimp's export also has."""
    present = set(keys)
    if "email_subscriber_status" in present:
        return WIX
    if "subscribed_to_emails" in present:
        return GHOST
    if present & _MAILCHIMP_MARKERS:
        return MAILCHIMP
    if "subscriber_type" in present or {"type", "creation_date"} <= present:
        return BUTTONDOWN
    if present & _SUBSTACK_MARKERS:
        return SUBSTACK
    if present & {"attributes", "attribs"} and present & {"uuid", "status"}:
        return LISTMONK
    if "status" in present and present & _BEEHIIV_MARKERS:
        return BEEHIIV
    if "status" in present and present & _MAILERLITE_MARKERS:
        return MAILERLITE
    if present & {"state", "subscriber_state"} and present & {"first_name", "email_address"}:
        return KIT
    if {"email_address", "first_name"} <= present:
        return MAILCHIMP
    return PUBLISHER


# Files of an export named for who is in them: whatever a record says, nobody in them is
# mailed (Mailchimp's and Buttondown's exports split their list this way).
_NAMED_FILES: Sequence[tuple[_Platform, str, SubscriberStatus | str]] = (
    (MAILCHIMP, "cleaned", S.BOUNCED),
    (MAILCHIMP, "unsubscribed", S.UNSUBSCRIBED),
    (
        MAILCHIMP,
        "nonsubscribed",
        "in Mailchimp's non-subscribed contacts, who never agreed to the newsletter: "
        "not added (they can subscribe on the site)",
    ),
    (
        MAILCHIMP,
        "non_subscribed",
        "in Mailchimp's non-subscribed contacts, who never agreed to the newsletter: "
        "not added (they can subscribe on the site)",
    ),
    (BUTTONDOWN, "unsubscribers", S.UNSUBSCRIBED),
)
_PROTECTION = {S.PENDING: 0, S.ACTIVE: 1, S.UNSUBSCRIBED: 2, S.BOUNCED: 3, S.COMPLAINED: 4}


def _named(platform: _Platform, origin: str) -> SubscriberStatus | str | None:
    """What the file's name says of everyone in it, for an export split into files by status."""
    name = _key(origin.replace("\\", "/").rsplit("/", 1)[-1])
    for owner, start, said in _NAMED_FILES:
        if owner is platform and name.startswith(start):
            return said
    return None


def _first(keys: Sequence[str], wanted: Sequence[str]) -> int | None:
    for name in wanted:
        if name in keys:
            return keys.index(name)
    return None


def _delimiter(header: str) -> str:
    counts = {sep: header.count(sep) for sep in (",", ";", "\t")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


_SAMPLE = 1 << 16
"""Bytes read to tell a file's encoding: enough for a few hundred rows."""
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_BINARY_KINDS = (
    (b"PK\x03\x04", "a zip archive or an Excel workbook (.xlsx): save the sheet as CSV"),
    (b"\xd0\xcf\x11\xe0", "an old Excel workbook (.xls): save the sheet as CSV"),
    (b"%PDF", "a PDF: export the list as CSV"),
)


def sniff_encoding(sample: bytes, *, origin: str) -> str:
    """The codec to read a CSV export with, from its first bytes.

    A byte-order mark decides; then strict UTF-8 (the common case, and the one a guess
    most often gets wrong on a short file); then charset-normalizer, which tells
    Windows-1252, Latin-1 and UTF-16 without a BOM apart. A file that is no text in any
    encoding raises SubscriberError with one line saying what it looks like.
    """
    for bom, codec in _BOMS:
        if sample.startswith(bom):
            return codec
    for magic, what in _BINARY_KINDS:
        if sample.startswith(magic):
            raise SubscriberError(f"{origin}: not a CSV file but {what}, then import that")
    try:
        # A sample may end inside a character: an incremental decoder leaves that for later.
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        pass
    else:
        if b"\x00" not in sample:
            return "utf-8"
    from charset_normalizer import from_bytes  # loaded only for files that are not UTF-8

    matches = from_bytes(sample)
    best = matches.best()
    codec = best.encoding if best is not None else ""
    # Names are short and not prose: several single-byte codecs read them without any
    # oddity (cp1250 reads "Ø" as "Ř") and the language guess is noise. Exports saved by
    # Excel in Western locales are Windows-1252, so it wins whenever it reads as cleanly.
    if best is not None and any(m.encoding == "cp1252" and m.chaos <= best.chaos for m in matches):
        codec = "cp1252"
    if not codec or (b"\x00" in sample and not codec.startswith(("utf_16", "utf_32"))):
        raise SubscriberError(f"{origin}: not a text file (it looks binary); export the list as CSV and import that")
    return codec


def open_export(stream: BinaryIO, *, origin: str) -> TextIO:
    """`stream` (a file opened "rb", at its start) as text in the encoding it was saved in."""
    sample = stream.read(_SAMPLE)
    stream.seek(0)
    codec = sniff_encoding(sample, origin=origin)
    return io.TextIOWrapper(stream, encoding=codec, errors="strict", newline="")


def read_export(lines: Iterable[str], *, origin: str) -> tuple[str, Iterator[SourceRow | Rejected]]:
    """The platform a CSV export came from, and its records one by one.

    `lines` is read lazily (an open file, opened with newline=""); `origin` names it in
    errors. Raises SubscriberError when there is no header or no address column.
    """
    iterator = iter(lines)
    blank = 0
    first = next(iterator, None)
    while first is not None and not first.strip():
        blank += 1
        first = next(iterator, None)
    if first is None:
        raise SubscriberError(f"{origin}: the file is empty; expected a CSV export with a header row")
    delimiter = _delimiter(first)
    if _ends_in_quotes(first, False, delimiter):
        raise SubscriberError(f"{origin}:{blank + 1}: the header has a quote that is never closed")
    header = _parse(first, delimiter)
    keys = [_key(cell) for cell in header]
    email_at = _first(keys, EMAIL_KEYS)
    if email_at is None:
        raise SubscriberError(
            f"{origin}: no address column in the header ({', '.join(header)}). Expected one of "
            "email, Email Address (Mailchimp), email_address; export the list again or rename "
            "the column."
        )
    platform = _detect(keys)
    _refuse_unread_permission(platform, header, keys, origin=origin)
    source = _platform_source(platform, origin)
    records = _logical(iterator, blank + 2, delimiter, email_at)
    rows = _rows(records, keys, email_at, platform, source, _named(platform, origin))
    return platform.name, rows


_KNOWN = "Mailchimp, Substack, Buttondown, Ghost, listmonk, Wix, Kit, beehiiv, MailerLite"


def _refuse_unread_permission(platform: _Platform, header: Sequence[str], keys: Sequence[str], *, origin: str) -> None:
    """Refuse a file with a column that seems to say who may be mailed but that the rule
    it is read by does not read: everyone that column keeps off the list would be mailed.

    A platform's export is told by some of its columns, and a file may have those beside
    a column of permission of its own ("Email, Subscription type, Unsubscribed" looks like
    Substack's dashboard list). Only the columns each platform's export has pass."""
    # Two common column names alone make a file Mailchimp's: with none of Mailchimp's own
    # columns, its rule reads only `status`, as ours does, and must be checked the same way.
    generic = platform is PUBLISHER or (platform is MAILCHIMP and not set(keys) & _MAILCHIMP_MARKERS)
    allowed = frozenset(EXPORT_COLUMNS) if generic else platform.own
    for cell, key in zip(header, keys, strict=True):
        # A record's cells are read by name, and the last of two columns of one name wins:
        # "status, status" with "unsubscribed, active" would make the reader active.
        says = _PERMISSION.search(key) or (key in platform.own and platform is not PUBLISHER)
        if says and keys.count(key) > 1:
            raise SubscriberError(
                f"{origin}: the header has the column {cell.strip()!r} {keys.count(key)} times, and it seems "
                "to say who may be mailed: publisher cannot tell which one counts. Nothing was imported; "
                "keep the one the platform wrote, remove the others and import again."
            )
        if key in allowed or not _PERMISSION.search(key):
            continue
        if generic:
            raise SubscriberError(
                f"{origin}: the column {cell.strip()!r} seems to say who may be mailed, and this file "
                f"is not an export publisher knows ({_KNOWN}). Nothing was imported: read as it is, "
                "everyone in it would be mailed. Keep only the readers who agreed to the newsletter "
                "and remove that column, or name it status with the words active or unsubscribed."
            )
        raise SubscriberError(
            f"{origin}: the column {cell.strip()!r} seems to say who may be mailed, and {platform.name}'s "
            f"export, which this file looks like, has no such column: publisher reads who may be mailed "
            f"from {platform.name}'s own columns only. Nothing was imported: read as it is, the readers "
            "that column keeps off the list would be mailed. Keep only the readers who agreed to the "
            "newsletter and remove that column, or import the file exactly as the platform exported it."
        )


# Column names (as `_key` makes them) that say whether someone may be mailed.
_PERMISSION = re.compile(
    r"status|unsub|opt(?:ed)?_?out|opt_?in$|accepts|consent|marketing|permission|^subscribed$|is_subscribed"
    r"|do_not|dnc|blocklist|blacklist|suppress|bounced|complain|blocked|banned|cancel|(?:^|_)deleted(?:_|$)"
    r"|subscri(?!.*_(?:at|on|date|time)$)|opt(?:ed)?_?in(?!.*_(?:at|on|date|time)$)|(?:^|_)(?:in)?active(?:_|$)|newsletter"
    r"|(?:can|allow|receive)s?_(?:e_?)?mails?$|^mailable$|gdpr"
)


def _platform_source(platform: _Platform, origin: str) -> str:
    name = origin.replace("\\", "/").rsplit("/", 1)[-1]
    return f"{platform.name.lower()}:{name}"


def _parse(text: str, delimiter: str) -> list[str]:
    return next(csv.reader([text], delimiter=delimiter), [])


def _ends_in_quotes(line: str, in_quotes: bool, delimiter: str) -> bool:
    """Whether a quoted cell is still open at the end of `line` (csv's rules, not strict).

    A quote opens a cell only at the cell's start; inside, a doubled quote is a quote.
    """
    pos = 0
    while (found := line.find('"', pos)) >= 0:
        if in_quotes:
            if line.startswith('""', found):
                pos = found + 2
                continue
            in_quotes = False
        elif found == 0 or line[found - 1] == delimiter:
            in_quotes = True
        pos = found + 1
    return in_quotes


_ADDRESS_CELL_RE = re.compile(r"^[^@\s\"',;]+@[^@\s\"',;]+\.[^@\s\"',;]+$")


def _starts_a_record(line: str, delimiter: str, email_at: int) -> bool:
    """A line that reads as a record of its own: an address in the address column."""
    cells = _parse(line, delimiter)
    return email_at < len(cells) and bool(_ADDRESS_CELL_RE.match(_unneutralize(cells[email_at]).strip()))


def _unclosed(line: int) -> Rejected:
    return Rejected(line, 'a quote opened on this line is never closed; close it ("...") or remove it')


def _logical(
    lines: Iterator[str], first_line: int, delimiter: str, email_at: int
) -> Iterator[tuple[int, list[str]] | Rejected]:
    """Records as (first line, cells); a record whose quote never closes is Rejected."""
    held: list[str] = []
    start = first_line
    in_quotes = False
    limit = csv.field_size_limit()
    for number, line in enumerate(lines, start=first_line):
        if not held and '"' not in line and len(line) <= limit:
            # No quote: the record is this line, and its cells are what lies between
            # delimiters, as the csv module would read them (its `_split` below).
            cells = _split(line, delimiter)
            if cells is not None:
                yield number, cells
                continue
        if held and _starts_a_record(line, delimiter, email_at):
            yield _unclosed(start)
            held, in_quotes = [], False
        if not held:
            start = number
        held.append(line)
        in_quotes = _ends_in_quotes(line, in_quotes, delimiter)
        if in_quotes:
            continue
        text = "".join(held)
        held = []
        try:
            yield start, _parse(text, delimiter)
        except csv.Error as exc:
            yield Rejected(start, f"not valid CSV: {exc}")
    if held:
        yield _unclosed(start)


def _split(line: str, delimiter: str) -> list[str] | None:
    """The cells of a line without quotes, as csv.reader reads it; None for a line break
    before the end (csv refuses one outside quotes), left to csv to refuse.

    The csv module reads such a line as the text between delimiters, less one line ending
    (\r\n, \n or \r); an empty line is no cells. A reader made for each line cost more
    than the rest of reading the record."""
    if line.endswith("\n"):
        body = line[:-2] if line.endswith("\r\n") else line[:-1]
    else:
        body = line[:-1] if line.endswith("\r") else line
    if "\r" in body or "\n" in body:
        return None
    return body.split(delimiter) if body else []


def _cell(record: Sequence[str], at: int | None) -> str:
    return _unneutralize(record[at]).strip() if at is not None and at < len(record) else ""


def _rows(
    records: Iterator[tuple[int, list[str]] | Rejected],
    keys: list[str],
    email_at: int,
    platform: _Platform,
    default_source: str,
    named: SubscriberStatus | str | None = None,
) -> Iterator[SourceRow | Rejected]:
    name_at = _first(keys, NAME_KEYS)
    first_at = _first(keys, FIRST_KEYS)
    last_at = _first(keys, LAST_KEYS)
    tags_at = _first(keys, TAG_KEYS)
    zone_at = _first(keys, ("timezone", "time_zone", "tz"))
    source_at = _first(keys, ("source",)) if platform is PUBLISHER else None
    for item in records:
        if isinstance(item, Rejected):
            yield item
            continue
        line, record = item
        if not "".join(record).strip():  # a blank record (whitespace is one character at a time)
            continue
        email = _cell(record, email_at)
        if not email:
            yield Rejected(line, "no address in the email column")
            continue
        if platform is SUBSTACK and email.lower().endswith("@deletion-request.substack.com"):
            yield Rejected(line, f"{email!r} is a Substack deletion request, not an address")
            continue
        cells = dict(zip(keys, record, strict=False))  # a short record has only its own cells
        status = platform.status(cells)
        if isinstance(named, SubscriberStatus) and isinstance(status, SubscriberStatus):
            status = max(status, named, key=_PROTECTION.__getitem__)
        elif named is not None and not isinstance(named, SubscriberStatus):
            status = named
        if not isinstance(status, SubscriberStatus):  # a StrEnum is a str too: test this way
            yield Rejected(line, f"{email!r}: {status}")
            continue
        name = _cell(record, name_at) or " ".join(
            part for part in (_cell(record, first_at), _cell(record, last_at)) if part
        )
        zone = _cell(record, zone_at) or None
        if zone is not None and not platform.zone_column:
            zone = _zone_or_none(zone)
        yield SourceRow(
            line=line,
            email=email,
            name=name,
            tags=split_tags(_cell(record, tags_at)),
            timezone=zone,
            status=status,
            consented_at=platform.consented(cells),
            source=_cell(record, source_at) or default_source,
            opted_in_at=_moment(cells.get("opted_in_at", "")) if platform is PUBLISHER else None,
            added_at=_moment(cells.get("created_at", "")) if platform is PUBLISHER else None,
            consent_text=_unneutralize(cells.get("consent_text", "")).strip() if platform is PUBLISHER else "",
            cells=cells,
        )
