"""Readers from another service's export, with their status and consent kept. Pure.

`read_readers(source, files)` reads the subscriber files of one export (Substack,
Ghost, Buttondown, Mailchimp, listmonk) into `ImportedReader` values, one per address,
and refuses a record it cannot use with the file and record it came from
("members.csv:17"). The CSV itself is read by `publisher.store.subscriber_csv`, which
already knows each platform's columns and statuses; this module picks the export's
files, reads the columns that module leaves aside (opt-in and confirmation times, the
paid flag, newsletters, lists, the address they signed up from) and merges the records
of one address.

| service    | files read                                             | paid when                        |
|------------|--------------------------------------------------------|----------------------------------|
| substack   | email_list*.csv (in the export zip)                    | an active subscription, not free |
| ghost      | *member*.csv, and the JSON export's members tables     | status paid or comped            |
| buttondown | *subscriber*.csv (subscribers.csv, unsubscribers.csv)  | type premium, gifted, ...        |
| mailchimp  | subscribed_*, unsubscribed_*, cleaned_*, *members*.csv | never                            |
| listmonk   | *subscriber*.csv, and a database dump's subscribers    | never                            |

A paid reader gets the tag "paid", so that `publisher send --tag paid` reaches them.
What the service recorded about their consent (sign-up and confirmation times, the
address they signed up from, the plan, an unsubscribe's reason, the file and line) is
kept as one sentence, `consent_text`, beside the opt-in time; a listmonk subscriber
unsubscribed from every list has left, whatever their own status says.

One address, one reader: when an export names an address twice (in one file, or in
its subscribed and unsubscribed files) the most protective status wins, complained over
bounced over unsubscribed over active over pending, so a reader who left is never mailed
again; the later record counts as merged. A file named for the readers who left
(Mailchimp's unsubscribed_ and cleaned_ files, Buttondown's unsubscribers.csv) makes its
readers at least unsubscribed or bounced whatever a row says.

Ghost's JSON export (`*.json`, `db[0].data`) may carry its members too: `members`
(email, name, status free/paid/comped, email_disabled, created_at), `labels` and
`members_labels` (their labels), `newsletters` and `members_newsletters` (the newsletters
they get). They are read like the members CSV: labels and newsletters become tags, a
member subscribed to no newsletter has unsubscribed (before newsletters, the member's own
`subscribed` flag says), one whose email Ghost disabled (a bounce or a spam complaint)
has bounced. Records are named "ghost-export.json: members[3]"; an address in both the
JSON and a members CSV is one reader.

A listmonk database dump (`*.sql`, see `listmonk.py`) holds its subscribers too: the rows
of `subscribers`, `subscriber_lists` and `lists` are read like the subscribers CSV with
its lists column ("listmonk.sql: subscribers row 3").

Dates: ISO 8601 (zone or not; none means UTC), "MM/DD/YYYY HH:MM[:SS]" (the US order
these services write) and RFC 2822 ("Tue, 05 Mar 2024 10:00:00 +0000"). A slash date
that only reads day-first (13/02/2024) is refused rather than guessed. A record with a
date that reads as none of them is refused with the column and value, unless it says
the reader left: that one is imported without the date, so they stay off the list.
"""

from __future__ import annotations

import email.utils
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Protocol

from publisher.content.exports import ghost, listmonk
from publisher.errors import PublisherError, SubscriberError
from publisher.models import SubscriberStatus
from publisher.store.subscriber_csv import Rejected, SourceRow, read_export, sniff_encoding, split_tags
from publisher.store.subscribers import clean_tags, normalize_email

__all__ = [
    "READER_SOURCES",
    "ExportFilesLike",
    "ImportedReader",
    "ReaderBatch",
    "parse_when",
    "protective",
    "read_readers",
]

S = SubscriberStatus
MAX_SOURCE = 64
MAX_CONSENT = 2000

# How strongly a status keeps an address off the list: the higher wins a conflict.
_PROTECTION = {S.PENDING: 0, S.ACTIVE: 1, S.UNSUBSCRIBED: 2, S.BOUNCED: 3, S.COMPLAINED: 4}
_LEFT = frozenset({S.UNSUBSCRIBED, S.BOUNCED, S.COMPLAINED})


class ExportFilesLike(Protocol):
    """The files of an export (a zip's members or a folder's files), read safely."""

    def names(self) -> list[str]: ...

    def read(self, name: str) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ImportedReader:
    """One address from an export, mapped to our fields."""

    email: str
    """Normalised as the store keeps it (lower-case, domain in ASCII)."""
    name: str = ""
    status: SubscriberStatus = S.ACTIVE
    created_at: datetime | None = None
    """When they signed up (opted in) on the other service, UTC."""
    confirmed_at: datetime | None = None
    """When they confirmed (double opt-in), UTC; for single opt-in, when they signed up."""
    consent_text: str = ""
    """What the export says about their consent, as a sentence the author can show."""
    source: str = ""
    """Service and file, e.g. "mailchimp:cleaned_members_export_1.csv" (at most 64 characters)."""
    tags: tuple[str, ...] = ()
    """Their labels, lists, newsletters or tags on the other service (and "paid")."""
    paid: bool = False
    timezone: str | None = None
    """Their IANA zone where the export gives one (Mailchimp's TIMEZONE), for local-time sends."""
    record: str = ""
    """Where the record was read: "members.csv:17"."""


@dataclass(frozen=True, slots=True)
class ReaderBatch:
    """Every reader an export holds, and every record refused, with the reason."""

    readers: list[ImportedReader] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    """(record, reason), e.g. ("members.csv:17", "'bob@' is not a valid address: ...")."""
    merged: list[tuple[str, str]] = field(default_factory=list)
    """(record, note) for a record whose address an earlier one already had: merged into it."""
    files: list[str] = field(default_factory=list)
    """The export's files that were read for readers."""

    @property
    def rows(self) -> int:
        """Records read: readers + merged + refused."""
        return len(self.readers) + len(self.merged) + len(self.refused)


def protective(a: SubscriberStatus, b: SubscriberStatus) -> SubscriberStatus:
    """The status that keeps the address further off the list."""
    return a if _PROTECTION[a] >= _PROTECTION[b] else b


# --- dates -----------------------------------------------------------------------------

_SLASH = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])?)?$")
DATE_FORMATS = 'ISO 8601 (2024-03-05 10:00), MM/DD/YYYY HH:MM or RFC 2822 ("Tue, 05 Mar 2024 10:00:00 +0000")'


def parse_when(text: str) -> datetime | None:
    """A date from an export as UTC; None for an empty cell. Raises SubscriberError for
    a value in none of the three formats, or a slash date that only reads day-first."""
    value = text.strip()
    if not value:
        return None
    iso = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    moment: datetime | None
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        moment = _slash_date(value) or _rfc2822(value)
    if moment is None:
        raise SubscriberError(f"{value!r} is not a date in {DATE_FORMATS}")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _slash_date(value: str) -> datetime | None:
    match = _SLASH.match(value)
    if match is None:
        return None
    month, day, year = int(match[1]), int(match[2]), int(match[3])
    hour, minute, second = int(match[4] or 0), int(match[5] or 0), int(match[6] or 0)
    if match[7]:
        hour = hour % 12 + (12 if match[7].lower() == "pm" else 0)
    if month > 12 and day <= 12:
        raise SubscriberError(
            f"{value!r} reads day-first (DD/MM/YYYY); these exports write MM/DD/YYYY: "
            "write it as YYYY-MM-DD"
        )
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:
        raise SubscriberError(f"{value!r} is not a date: {exc}") from exc


def _rfc2822(value: str) -> datetime | None:
    try:
        return email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None


# --- what each service's files say beyond subscriber_csv ----------------------------


@dataclass(frozen=True, slots=True)
class _Extra:
    """What a record says beyond its address, name, status and tags."""

    opted_in: datetime | None
    confirmed: datetime | None
    paid: bool = False
    tags: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    """Consent details for the sentence: where they signed up, from which address, ..."""
    floor: SubscriberStatus = S.PENDING
    """At least this status (a listmonk reader unsubscribed from every list has left)."""


Cells = Mapping[str, str]
_DateCells = Callable[[str], datetime | None]


def _cell(cells: Cells, *keys: str) -> str:
    for key in keys:
        value = cells.get(key, "").strip()
        if value:
            return value.removeprefix("'") if value[1:2] in ("=", "+", "-", "@") else value
    return ""


def _truthy(value: str) -> bool:
    return value.strip().lower() in {"true", "yes", "1", "y", "t"}


def _noted(cells: Cells, labels: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    return tuple(f"{label} {value}" for key, label in labels if (value := _cell(cells, key)))


def _extra_mailchimp(cells: Cells, when: _DateCells) -> _Extra:
    notes = _noted(
        cells,
        (
            ("optin_ip", "opt-in address"),
            ("confirm_ip", "confirmed from"),
            ("unsub_reason", "unsubscribe reason"),
            ("unsub_reason_other", "unsubscribe note"),
            ("unsub_campaign_title", "unsubscribed from"),
            ("clean_campaign_title", "cleaned after"),
        ),
    )
    unsub, clean = when("unsub_time"), when("clean_time")
    left = tuple(f"{what} {_show(at)}" for what, at in (("unsubscribed", unsub), ("cleaned", clean)) if at)
    opted_in = when("optin_time")
    # A single opt-in list has no confirmation: signing up was the consent.
    return _Extra(opted_in=opted_in, confirmed=when("confirm_time") or opted_in, notes=notes + left)


_SUBSTACK_FREE = frozenset({"", "free", "none"})


def _extra_substack(cells: Cells, when: _DateCells) -> _Extra:
    signed = when("created_at")
    plan = _cell(cells, "plan", "subscription_type").lower()
    active = _cell(cells, "active_subscription")
    paid = plan not in _SUBSTACK_FREE and (_truthy(active) if active else True)
    expiry = when("expiry")
    notes: tuple[str, ...] = (f"plan {plan}",) if plan else ()
    if expiry is not None:
        notes += (f"paid until {_show(expiry)}",)
    return _Extra(opted_in=signed, confirmed=signed, paid=paid, notes=notes)


def _extra_ghost(cells: Cells, when: _DateCells) -> _Extra:
    signed = when("created_at")
    status = _cell(cells, "status").lower()
    paid = status in {"paid", "comped"} or _truthy(_cell(cells, "complimentary_plan"))
    newsletters = split_tags(_cell(cells, "newsletters"))
    notes: tuple[str, ...] = (f"status {status}",) if status else ()
    if tiers := _cell(cells, "tiers"):
        notes += (f"tiers {tiers}",)
    return _Extra(opted_in=signed, confirmed=signed, paid=paid, tags=newsletters, notes=notes)


_BUTTONDOWN_PAID = frozenset({"premium", "gifted", "complimentary", "churning", "past_due", "trialed"})


def _extra_buttondown(cells: Cells, when: _DateCells) -> _Extra:
    signed = when("creation_date") or when("created_at")
    kind = _cell(cells, "subscriber_type", "type").lower()
    notes: tuple[str, ...] = (f"type {kind}",) if kind else ()
    notes += _noted(cells, (("source", "source"), ("referrer_url", "referred by"), ("ip_address", "signed up from")))
    return _Extra(opted_in=signed, confirmed=signed, paid=kind in _BUTTONDOWN_PAID, notes=notes)


def _extra_listmonk(cells: Cells, when: _DateCells) -> _Extra:
    signed = when("created_at")
    lists = _cell(cells, "lists")
    names: tuple[str, ...] = ()
    floor = S.PENDING
    if lists.startswith("["):
        try:
            found = json.loads(lists)
        except ValueError as exc:
            raise SubscriberError(f"lists is not JSON ({exc}); export the subscribers again") from exc
        entries = [item if isinstance(item, dict) else {"name": str(item)} for item in found]
        # Their subscription to each list: the lists they left are no topic of theirs.
        states = {str(item.get("subscription_status", "confirmed")).lower() for item in entries}
        names = tuple(
            str(item.get("name", "")) for item in entries
            if str(item.get("subscription_status", "")).lower() != "unsubscribed"
        )
        if entries and states == {"unsubscribed"}:
            floor = S.UNSUBSCRIBED
    else:
        names = split_tags(lists)
    attributes = _cell(cells, "attributes", "attribs")
    if attributes:
        try:
            json.loads(attributes)
        except ValueError as exc:
            raise SubscriberError(f"attributes is not JSON ({exc}); export the subscribers again") from exc
    status = _cell(cells, "status").lower()
    notes = (f"status {status}",) if status else ()
    return _Extra(opted_in=signed, confirmed=signed, tags=names, notes=notes, floor=floor)


@dataclass(frozen=True, slots=True)
class _Tables:
    """The readers a structured file holds (a JSON export, a database dump) as CSV-like rows."""

    patterns: tuple[str, ...]
    read: Callable[[str, bytes], list[SourceRow | Rejected] | None]
    """The rows of one file; None when it holds no readers."""
    what: str
    """What the file calls them, for the plan: "members"."""
    record: str
    """How a row is named: "{name}: members[{line}]"."""

    def name_of(self, name: str, line: int) -> str:
        return self.record.format(name=name, line=line)


@dataclass(frozen=True, slots=True)
class _Service:
    title: str
    patterns: tuple[str, ...]
    details: Callable[[Cells, _DateCells], _Extra]
    tables: _Tables | None = None


READER_SOURCES: Mapping[str, _Service] = {
    "substack": _Service("Substack", ("email_list*.csv", "*subscribers*.csv"), _extra_substack),
    "ghost": _Service("Ghost", ("*member*.csv",), _extra_ghost,
                      _Tables(("*.json",), ghost.member_rows, "members", "{name}: members[{line}]")),
    "buttondown": _Service("Buttondown", ("*subscriber*.csv",), _extra_buttondown),
    "mailchimp": _Service(
        "Mailchimp", ("subscribed*.csv", "unsubscribed*.csv", "cleaned*.csv", "*members*.csv"), _extra_mailchimp
    ),
    "listmonk": _Service(
        "listmonk", ("*subscriber*.csv",), _extra_listmonk,
        _Tables(("*.sql",), listmonk.subscriber_rows, "subscribers", "{name}: subscribers row {line}"),
    ),
}
"""The services whose exports hold readers (a WordPress export holds none)."""

# Files named for readers who left: at least this status, whatever a row says.
_FILE_FLOORS = (("unsubscribe", S.UNSUBSCRIBED), ("cleaned", S.BOUNCED))


def _show(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _reader_files(service: _Service, files: ExportFilesLike) -> list[str]:
    chosen = []
    for name in files.names():
        base = name.replace("\\", "/").rsplit("/", 1)[-1].lower()
        if name.startswith("__MACOSX/") or base.startswith("._"):
            continue
        if any(fnmatchcase(base, pattern) for pattern in service.patterns):
            chosen.append(name)
    return chosen


def read_readers(source: str, files: ExportFilesLike) -> ReaderBatch:
    """The readers of `source`'s export in `files` (none for an export that holds none).

    Raises SubscriberError for a file that is not a CSV export with an address column
    (naming the file); every other problem refuses only its record.
    """
    service = READER_SOURCES.get(source)
    batch = ReaderBatch()
    if service is None:
        return batch
    at: dict[str, int] = {}
    tables = service.tables
    for name in _table_files(service, files):
        rows = tables.read(name, files.read(name)) if tables is not None else None
        if rows is None or tables is None:
            continue
        batch.files.append(f"{name} (its {tables.what})")
        for item in _read_rows(service, source, name, rows, record=tables.name_of):
            if isinstance(item, tuple):
                batch.refused.append(item)
            else:
                _merge(batch, at, item)
    for name in _reader_files(service, files):
        batch.files.append(name)
        for item in _read_file(service, source, name, files.read(name)):
            if isinstance(item, tuple):
                batch.refused.append(item)
            else:
                _merge(batch, at, item)
    return batch


def _table_files(service: _Service, files: ExportFilesLike) -> list[str]:
    if service.tables is None:
        return []
    patterns = service.tables.patterns
    return [n for n in files.names() if not n.startswith("__MACOSX/")
            and any(fnmatchcase(n.rsplit("/", 1)[-1].lower(), pattern) for pattern in patterns)]


def _merge(batch: ReaderBatch, at: dict[str, int], reader: ImportedReader) -> None:
    index = at.get(reader.email)
    if index is None:
        at[reader.email] = len(batch.readers)
        batch.readers.append(reader)
        return
    first = batch.readers[index]
    status = protective(first.status, reader.status)
    winner = first if status is first.status else reader
    tags = tuple(dict.fromkeys((*first.tags, *reader.tags)))
    batch.readers[index] = replace(
        first,
        name=first.name or reader.name,
        status=status,
        created_at=first.created_at or reader.created_at,
        confirmed_at=first.confirmed_at or reader.confirmed_at,
        consent_text=_clip(
            "; ".join(dict.fromkeys(t for t in (first.consent_text, reader.consent_text) if t))
        ),
        source=winner.source,
        tags=tags,
        paid=first.paid or reader.paid,
        timezone=first.timezone or reader.timezone,
    )
    batch.merged.append((reader.record, f"{reader.email} is also {first.record}: kept as {status.value}"))


def _clip(text: str) -> str:
    return text if len(text) <= MAX_CONSENT else text[: MAX_CONSENT - 1] + "…"


def _decode(name: str, data: bytes) -> Iterator[str]:
    codec = sniff_encoding(data[: 1 << 16], origin=name)
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        raise SubscriberError(
            f"{name}: cannot be read as {codec} text (byte {exc.start + 1}); export it again as CSV UTF-8"
        ) from exc
    return iter(io.StringIO(text.removeprefix("\ufeff"), newline=""))


def _read_file(
    service: _Service, source: str, name: str, data: bytes
) -> Iterator[ImportedReader | tuple[str, str]]:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    floor = next((status for word, status in _FILE_FLOORS if base.lower().startswith(word)), S.PENDING)
    _platform, rows = read_export(_decode(name, data), origin=name)
    yield from _read_rows(service, source, name, rows, floor=floor)


def _read_rows(
    service: _Service, source: str, name: str, rows: Iterable[SourceRow | Rejected], *,
    floor: SubscriberStatus = S.PENDING, record: Callable[[str, int], str] = lambda n, line: f"{n}:{line}",
) -> Iterator[ImportedReader | tuple[str, str]]:
    origin = f"{source}:{name.replace(chr(92), '/').rsplit('/', 1)[-1]}"
    for row in rows:
        if isinstance(row, Rejected):
            yield (record(name, row.line), row.reason)
            continue
        where = record(name, row.line)
        try:
            yield _reader(service, row, where, origin, floor)
        except PublisherError as exc:
            yield (where, f"{row.email!r}: {exc}" if row.email not in str(exc) else str(exc))


# A plain ASCII address is lower-cased here and checked by the store as it is written (a
# refusal there still names the record); the rest go through the full check now, which
# also puts an international domain in the ASCII form that tells two spellings apart.
_PLAIN = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def _address(raw: str) -> str:
    text = raw.strip()
    if _PLAIN.fullmatch(text):
        return text.lower()
    return normalize_email(text)


def _reader(
    service: _Service, row: SourceRow, record: str, origin: str, floor: SubscriberStatus
) -> ImportedReader:
    status = protective(row.status, floor)
    address = _address(row.email)
    bad: list[str] = []

    def when(column: str) -> datetime | None:
        try:
            return parse_when(row.cells.get(column, ""))
        except SubscriberError as exc:
            bad.append(f"{column}: {exc}")
            return None

    extra = service.details(row.cells, when)
    status = protective(status, extra.floor)
    if bad and status not in _LEFT:
        raise SubscriberError("; ".join(bad))
    tags = clean_tags((*row.tags, *extra.tags, *(("paid",) if extra.paid else ())))
    confirmed = extra.confirmed if status is not S.PENDING else None
    parts = [f"{service.title}: {'signed up' if extra.opted_in else 'no sign-up date'}"]
    if extra.opted_in:
        parts[0] += f" {_show(extra.opted_in)}"
    if extra.confirmed and extra.confirmed != extra.opted_in:
        parts.append(f"confirmed {_show(extra.confirmed)}")
    parts.extend(extra.notes)
    parts.append(f"from {record}")
    return ImportedReader(
        email=address,
        name=row.name,
        status=status,
        created_at=extra.opted_in,
        confirmed_at=confirmed,
        consent_text=_clip(", ".join(parts)),
        source=origin[:MAX_SOURCE],
        tags=tags,
        paid=extra.paid,
        timezone=row.timezone,
        record=record,
    )
