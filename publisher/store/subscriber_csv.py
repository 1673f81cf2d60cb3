"""Subscriber CSV files: the exports of Mailchimp, Substack, Buttondown, Ghost, listmonk, Wix and our own.

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

| platform   | address           | name                    | tags   | not to be mailed                    |
|------------|-------------------|-------------------------|--------|-------------------------------------|
| Mailchimp  | Email Address     | First Name + Last Name  | TAGS   | UNSUB_TIME set; CLEAN_TIME (bounced) |
| Substack   | email / Email     | name / Name             |        | email_disabled = true               |
| Buttondown | email / email_address | name (rare)         | tags   | subscriber_type / type              |
| Ghost      | email             | name                    | labels | subscribed_to_emails = false        |
| listmonk   | email             | name                    |        | status disabled or blocklisted      |
| Wix        | Email / Email 1   | First Name + Last Name  | Labels | Email subscriber status             |
| publisher  | email             | name                    | tags   | status                              |

Wix's contacts are everyone who ever wrote through the site, not only subscribers: a
contact whose "Email subscriber status" is "Never subscribed" (or empty) never agreed to
the newsletter, and is refused with that reason rather than added. A file that is none
of these platforms' and has a column that seems to say who may be mailed ("Accepts Email
Marketing", "Subscription status", "unsubscribed", ...) but is not our own `status` is
refused as a whole: read as ours, everyone in it would be mailed.

When they consented: Mailchimp's CONFIRM_TIME (else OPTIN_TIME), Substack's and Ghost's
created_at, Buttondown's creation_date, listmonk's created_at, Wix's Created At, our own confirmed_at (and
source, opted_in_at, consent_text). Each row also carries its cells by header, for a reader
that needs the columns this module leaves aside (`publisher.content.exports.readers`).
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
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
    "email", "name", "status", "tags", "timezone", "created_at", "confirmed_at", "source",
    "opted_in_at", "consent_text",
)
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

EMAIL_KEYS = ("email", "email_address", "e_mail", "e_mail_address", "mail", "email_1")
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
    """Whose export the file looked like: Mailchimp, Substack, Buttondown, Ghost, listmonk, Wix, publisher."""
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


# listmonk's subscriber statuses: blocklisted means never mail again, whatever the lists say.
LISTMONK_STATUSES: Mapping[str, SubscriberStatus] = {
    "enabled": S.ACTIVE,
    "disabled": S.UNSUBSCRIBED,
    "blocklisted": S.UNSUBSCRIBED,
}


def _status_listmonk(cells: Cells) -> SubscriberStatus | str:
    word = cells.get("status", "").strip().lower()
    status = LISTMONK_STATUSES.get(word or "enabled")
    if status is None:
        return f"unknown listmonk status {word!r} (expected one of {', '.join(LISTMONK_STATUSES)})"
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
        return f"unknown Wix subscriber status {word!r} (expected Subscribed, Unsubscribed or Never subscribed)"
    return status


def _moment(value: str) -> datetime | None:
    """An export's timestamp as UTC: ISO 8601 with or without zone or "Z" (naive means UTC).

    Something else is taken as no date rather than a reason to refuse the subscriber.
    """
    text = value.strip()
    if not text:
        return None
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


PUBLISHER = _Platform("publisher", _status_publisher, _consent_columns("confirmed_at"))
MAILCHIMP = _Platform(
    "Mailchimp", _status_mailchimp, _consent_columns("confirm_time", "optin_time"), zone_column=False
)
SUBSTACK = _Platform("Substack", _status_substack, _consent_columns("created_at"))
BUTTONDOWN = _Platform("Buttondown", _status_buttondown, _consent_columns("creation_date", "created_at"))
GHOST = _Platform("Ghost", _status_ghost, _consent_columns("created_at"))
LISTMONK = _Platform("listmonk", _status_listmonk, _consent_columns("created_at"))
WIX = _Platform("Wix", _status_wix, _consent_columns("created_at_utc_0", "created_at"))

_MAILCHIMP_MARKERS = frozenset(
    {"member_rating", "optin_time", "confirm_time", "leid", "euid", "unsub_time", "clean_time"}
)
_SUBSTACK_MARKERS = frozenset({"email_disabled", "active_subscription", "subscription_type"})


def _detect(keys: Sequence[str]) -> _Platform:
    present = set(keys)
    if "email_subscriber_status" in present:
        return WIX
    if "subscribed_to_emails" in present:
        return GHOST
    if present & _MAILCHIMP_MARKERS or {"email_address", "first_name"} <= present:
        return MAILCHIMP
    if "subscriber_type" in present or {"type", "creation_date"} <= present:
        return BUTTONDOWN
    if present & _SUBSTACK_MARKERS:
        return SUBSTACK
    if "uuid" in present and present & {"attributes", "attribs"}:
        return LISTMONK
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
        raise SubscriberError(
            f"{origin}: not a text file (it looks binary); export the list as CSV and import that"
        )
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
    # Two common column names alone make a file Mailchimp's: with none of Mailchimp's own
    # columns, its rule reads only `status`, as ours does, and must be checked the same way.
    generic = platform is PUBLISHER or (platform is MAILCHIMP and not set(keys) & _MAILCHIMP_MARKERS)
    if generic:
        for cell, key in zip(header, keys, strict=True):
            if key not in EXPORT_COLUMNS and _PERMISSION.search(key):
                raise SubscriberError(
                    f"{origin}: the column {cell.strip()!r} seems to say who may be mailed, and this file "
                    "is not an export publisher knows (Mailchimp, Substack, Buttondown, Ghost, listmonk, "
                    "Wix). Nothing was imported: read as it is, everyone in it would be mailed. Keep "
                    "only the readers who agreed to the newsletter and remove that column, or name it "
                    "status with the words active or unsubscribed."
                )
    source = _platform_source(platform, origin)
    rows = _rows(_logical(iterator, blank + 2, delimiter, email_at), keys, email_at, platform, source)
    return platform.name, rows


# Column names (as `_key` makes them) that say whether someone may be mailed.
_PERMISSION = re.compile(
    r"status|unsub|opt_?out|opt_?in$|accepts|consent|marketing|permission|^subscribed$|is_subscribed"
    r"|do_not|dnc|blocklist|blacklist|suppress|bounced"
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
    return Rejected(line, "a quote opened on this line is never closed; close it (\"...\") or remove it")


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
