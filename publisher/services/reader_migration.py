"""Readers moved in from another service's export: what would change, then the change.

`plan_readers` says what `apply_readers` would do with a `ReaderBatch` without writing
anything (it runs the same import and rolls it back, so the two cannot disagree);
`apply_readers` writes it in one transaction, so a migration killed half-way has
written nothing, and running it again finds every reader already here (unchanged).
The counts add up: created + updated + unchanged + skipped + refused = records read.

An address that left here (unsubscribed, bounced, complained) stays as it is whatever
the export says; an address the export says left is imported as such, so it is never
mailed; an address here that the export says left is taken off the list. Consent kept
here (opt-in time, the text) is never replaced by a later export's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine

from publisher.content.exports.readers import ImportedReader, ReaderBatch
from publisher.store.subscriber_csv import ImportReport, SourceRow
from publisher.store.subscriber_import import import_records

__all__ = ["Counts", "apply_readers", "plan_readers"]


@dataclass(frozen=True, slots=True)
class Counts:
    """What a migration of readers did (or would do)."""

    created: int = 0
    updated: int = 0
    """Already here, and the export changed their status, name, tags or consent."""
    unchanged: int = 0
    skipped: int = 0
    """Already unsubscribed or bounced here (left as they are), or an address the export
    repeats (merged into its first record, the most protective status kept)."""
    refused: list[tuple[str, str]] = field(default_factory=list)
    """(record, reason) for each record not imported."""

    @property
    def total(self) -> int:
        """Records read: every one is counted once."""
        return self.created + self.updated + self.unchanged + self.skipped + len(self.refused)


def plan_readers(db: Engine, batch: ReaderBatch) -> Counts:
    """What `apply_readers` would do with `batch`, without writing anything."""
    return _run(db, batch, now=None)


def apply_readers(db: Engine, batch: ReaderBatch, *, now: datetime) -> Counts:
    """Create or update each reader of `batch`, all in one transaction."""
    return _run(db, batch, now=now)


def _rows(readers: list[ImportedReader]) -> Iterator[SourceRow]:
    # The line is the reader's place in the batch: refusals are named by its record.
    for line, reader in enumerate(readers, start=1):
        yield SourceRow(
            line=line,
            email=reader.email,
            name=reader.name,
            tags=reader.tags,
            timezone=reader.timezone,
            status=reader.status,
            consented_at=reader.confirmed_at,
            source=reader.source,
            opted_in_at=reader.created_at,
            consent_text=reader.consent_text,
        )


def _run(db: Engine, batch: ReaderBatch, *, now: datetime | None) -> Counts:
    # A dry run never commits, so the time it would stamp does not matter.
    stamp = now if now is not None else datetime(1970, 1, 1, tzinfo=UTC)
    report: ImportReport = import_records(
        db, _rows(batch.readers), platform="migration", now=stamp, origin="migration", dry_run=now is None
    )
    refused = list(batch.refused)
    refused += [(batch.readers[r.line - 1].record, r.reason) for r in report.rejected]
    return Counts(
        created=report.imported,
        updated=report.updated,
        unchanged=report.unchanged,
        skipped=report.kept + len(batch.merged),
        refused=refused,
    )
