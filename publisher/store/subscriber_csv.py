"""Subscriber CSV files: the exports of Mailchimp, Substack, Buttondown and Ghost, and our own.

Reading maps each platform's columns and statuses onto ours and yields one `SourceRow`
(or `Rejected`) per record, lazily, with the line it started on. Validation of the
address, name, tags and zone is left to the store, which owns those rules. Pure: lines
in, rows out.

What each platform calls things (header names compared case- and punctuation-blind):

| platform   | address           | name                    | tags   | not to be mailed                    |
|------------|-------------------|-------------------------|--------|-------------------------------------|
| Mailchimp  | Email Address     | First Name + Last Name  | TAGS   | UNSUB_TIME set; CLEAN_TIME (bounced) |
| Substack   | email / Email     | name / Name             |        | email_disabled = true               |
| Buttondown | email / email_address | name (rare)         | tags   | subscriber_type / type              |
| Ghost      | email             | name                    | labels | subscribed_to_emails = false        |
| publisher  | email             | name                    | tags   | status                              |
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol
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
    "read_export",
    "split_tags",
]

S = SubscriberStatus
EXPORT_COLUMNS = ("email", "name", "status", "tags", "timezone", "created_at")
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

EMAIL_KEYS = ("email", "email_address", "e_mail", "e_mail_address", "mail")
NAME_KEYS = ("name", "full_name")
FIRST_KEYS = ("first_name", "fname", "firstname")
LAST_KEYS = ("last_name", "lname", "lastname", "surname")
TAG_KEYS = ("tags", "labels", "tag", "label")

# Buttondown's subscriber types: who still gets the newsletter and who does not.
BUTTONDOWN_TYPES: Mapping[str, SubscriberStatus] = {
    "regular": S.ACTIVE,
    "premium": S.ACTIVE,
    "trialed": S.ACTIVE,
    "unpaid": S.ACTIVE,
    "gifted": S.ACTIVE,
    "churning": S.ACTIVE,
    "paused": S.ACTIVE,
    "past_due": S.ACTIVE,
    "complimentary": S.ACTIVE,
    "unactivated": S.PENDING,
    "unsubscribed": S.UNSUBSCRIBED,
    "removed": S.UNSUBSCRIBED,
    "spammy": S.UNSUBSCRIBED,
    "undeliverable": S.BOUNCED,
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
    """Whose export the file looked like: Mailchimp, Substack, Buttondown, Ghost, publisher."""
    imported: int = 0
    """New subscribers, of any status: an unsubscribed row is kept so it stays off the list."""
    updated: int = 0
    """Addresses already here that the file matched (name, tags, zone or status refreshed)."""
    kept: int = 0
    """Addresses already unsubscribed, bounced or complained here: left as they were."""
    rejected: tuple[Rejected, ...] = ()
    new_by_status: Mapping[str, int] = field(default_factory=dict)
    """How many of the new subscribers came in with each status."""


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


def split_tags(cell: str) -> tuple[str, ...]:
    """Tags from one cell: `a, b`, Mailchimp's `"a","b"` or a list like `['a', 'b']`."""
    cell = cell.strip().strip("[]")
    parts = (part.strip().strip("\"'").strip() for part in cell.split(","))
    return tuple(part for part in parts if part)


def _key(header: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", header.strip().lstrip("\ufeff").lower()).strip("_")


def _truthy(value: str, *, default: bool) -> bool | None:
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


def _status_publisher(cells: Cells) -> SubscriberStatus | str:
    word = cells.get("status", "").strip().lower()
    if not word:
        return S.ACTIVE
    status = STATUS_WORDS.get(word)
    if status is None:
        known = ", ".join(s.value for s in SubscriberStatus)
        return f"unknown status {word!r} (expected one of {known})"
    return status


def _status_mailchimp(cells: Cells) -> SubscriberStatus | str:
    if cells.get("clean_time", "").strip():
        return S.BOUNCED
    if cells.get("unsub_time", "").strip():
        return S.UNSUBSCRIBED
    return _status_publisher(cells)


def _status_substack(cells: Cells) -> SubscriberStatus | str:
    disabled = _truthy(cells.get("email_disabled", ""), default=False)
    if disabled is None:
        return f"email_disabled is {cells['email_disabled']!r}, expected true or false"
    return S.UNSUBSCRIBED if disabled else S.ACTIVE


def _status_buttondown(cells: Cells) -> SubscriberStatus | str:
    word = (cells.get("subscriber_type") or cells.get("type") or "").strip().lower()
    if not word:
        return S.ACTIVE
    status = BUTTONDOWN_TYPES.get(word)
    if status is None:
        known = ", ".join(sorted(BUTTONDOWN_TYPES))
        return f"unknown Buttondown subscriber type {word!r} (expected one of {known})"
    return status


def _status_ghost(cells: Cells) -> SubscriberStatus | str:
    subscribed = _truthy(cells.get("subscribed_to_emails", ""), default=True)
    if subscribed is None:
        return (
            f"subscribed_to_emails is {cells['subscribed_to_emails']!r}, expected true or false"
        )
    return S.ACTIVE if subscribed else S.UNSUBSCRIBED


@dataclass(frozen=True, slots=True)
class _Platform:
    name: str
    status: StatusRule
    zone_column: bool = True
    """Whether a `timezone` column holds zones we validate strictly (ours) or best-effort."""


PUBLISHER = _Platform("publisher", _status_publisher)
MAILCHIMP = _Platform("Mailchimp", _status_mailchimp, zone_column=False)
SUBSTACK = _Platform("Substack", _status_substack)
BUTTONDOWN = _Platform("Buttondown", _status_buttondown)
GHOST = _Platform("Ghost", _status_ghost)

_MAILCHIMP_MARKERS = frozenset(
    {"member_rating", "optin_time", "confirm_time", "leid", "euid", "unsub_time", "clean_time"}
)
_SUBSTACK_MARKERS = frozenset({"email_disabled", "active_subscription", "subscription_type"})


def _detect(keys: Sequence[str]) -> _Platform:
    present = set(keys)
    if "subscribed_to_emails" in present:
        return GHOST
    if present & _MAILCHIMP_MARKERS or {"email_address", "first_name"} <= present:
        return MAILCHIMP
    if "subscriber_type" in present or {"type", "creation_date"} <= present:
        return BUTTONDOWN
    if present & _SUBSTACK_MARKERS:
        return SUBSTACK
    return PUBLISHER


def _first(keys: Sequence[str], wanted: Sequence[str]) -> int | None:
    for name in wanted:
        if name in keys:
            return keys.index(name)
    return None


def _delimiter(header: str) -> str:
    counts = {sep: header.count(sep) for sep in (",", ";", "\t")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


class _Reader(Protocol):
    line_num: int

    def __next__(self) -> list[str]: ...


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
    reader: _Reader = csv.reader(itertools.chain([first], iterator), delimiter=_delimiter(first))
    try:
        header = next(reader)
    except csv.Error as exc:
        raise SubscriberError(f"{origin}:{blank + 1}: the header is not valid CSV: {exc}") from exc
    keys = [_key(cell) for cell in header]
    email_at = _first(keys, EMAIL_KEYS)
    if email_at is None:
        raise SubscriberError(
            f"{origin}: no address column in the header ({', '.join(header)}). Expected one of "
            "email, Email Address (Mailchimp), email_address; export the list again or rename "
            "the column."
        )
    platform = _detect(keys)
    return platform.name, _records(reader, keys, email_at, platform, origin, blank)


def _cell(record: Sequence[str], at: int | None) -> str:
    return _unneutralize(record[at]).strip() if at is not None and at < len(record) else ""


def _records(
    reader: _Reader,
    keys: list[str],
    email_at: int,
    platform: _Platform,
    origin: str,
    blank: int,
) -> Iterator[SourceRow | Rejected]:
    name_at = _first(keys, NAME_KEYS)
    first_at = _first(keys, FIRST_KEYS)
    last_at = _first(keys, LAST_KEYS)
    tags_at = _first(keys, TAG_KEYS)
    zone_at = _first(keys, ("timezone", "time_zone", "tz"))
    while True:
        # A quoted cell may span lines: a record starts on the line after the last one read.
        line = blank + reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise SubscriberError(f"{origin}:{line}: not valid CSV: {exc}") from exc
        if not any(cell.strip() for cell in record):
            continue
        email = _cell(record, email_at)
        if not email:
            yield Rejected(line, "no address in the email column")
            continue
        if platform is SUBSTACK and email.lower().endswith("@deletion-request.substack.com"):
            yield Rejected(line, f"{email!r} is a Substack deletion request, not an address")
            continue
        cells = {key: record[i] for i, key in enumerate(keys) if i < len(record)}
        status = platform.status(cells)
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
        )
