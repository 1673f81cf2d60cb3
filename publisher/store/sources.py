"""What publisher remembers about watched feeds: validators, last result, items seen.

An item is remembered by the id its feed gives it (guid / atom:id) for as long as the
database lives, so an item that is re-published or edited upstream is never new again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from publisher.store.engine import begin_write
from publisher.store.schema import source_items, sources

__all__ = [
    "SourceItem",
    "SourceState",
    "add_items",
    "get_state",
    "items",
    "known_items",
    "record_failure",
    "record_success",
]

# Keeps each IN (...) list well under every database's parameter limit.
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class SourceState:
    """The last poll of one feed. `ok_at` is None until a poll has succeeded."""

    url: str
    etag: str | None
    last_modified: str | None
    polled_at: datetime | None
    ok_at: datetime | None
    error: str


@dataclass(frozen=True, slots=True)
class SourceItem:
    source_url: str
    item_id: str
    slug: str
    """The article's slug in content/; empty for items only marked as seen."""
    first_seen_at: datetime
    imported: bool


def get_state(db: sa.Engine, url: str) -> SourceState | None:
    with db.connect() as conn:
        row = conn.execute(sa.select(sources).where(sources.c.url == url)).first()
    if row is None:
        return None
    return SourceState(
        url=row.url,
        etag=row.etag,
        last_modified=row.last_modified,
        polled_at=row.polled_at,
        ok_at=row.ok_at,
        error=row.error or "",
    )


def _upsert(db: sa.Engine, url: str, values: dict[str, object]) -> None:
    with begin_write(db) as conn:
        updated = conn.execute(sources.update().where(sources.c.url == url).values(**values))
        if updated.rowcount == 0:
            conn.execute(sources.insert().values(url=url, **values))


def record_success(db: sa.Engine, url: str, *, etag: str | None, last_modified: str | None, now: datetime) -> None:
    """A poll got an answer (200 or 304): keep its validators for the next conditional GET."""
    _upsert(db, url, {"etag": etag, "last_modified": last_modified, "polled_at": now, "ok_at": now, "error": ""})


def record_failure(db: sa.Engine, url: str, *, error: str, now: datetime) -> None:
    """A poll failed: remember why (for status), keep the validators of the last success."""
    _upsert(db, url, {"polled_at": now, "error": error})


def known_items(db: sa.Engine, url: str, item_ids: Iterable[str]) -> set[str]:
    """Which of `item_ids` this source has already seen."""
    wanted = list(dict.fromkeys(item_ids))
    found: set[str] = set()
    with db.connect() as conn:
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            query = sa.select(source_items.c.item_id).where(
                source_items.c.source_url == url, source_items.c.item_id.in_(chunk)
            )
            found.update(str(row[0]) for row in conn.execute(query))
    return found


def add_items(db: sa.Engine, url: str, entries: Sequence[tuple[str, str, bool]], *, now: datetime) -> int:
    """Remember (item_id, slug, imported) entries; ones already there are left alone.

    Returns how many were new. Safe when two pollers race: the primary key decides.
    """
    added = 0
    with begin_write(db) as conn:
        ids = [item_id for item_id, _, _ in entries]
        present: set[str] = set()
        for start in range(0, len(ids), _CHUNK):
            query = sa.select(source_items.c.item_id).where(
                source_items.c.source_url == url, source_items.c.item_id.in_(ids[start : start + _CHUNK])
            )
            present.update(str(row[0]) for row in conn.execute(query))
        for item_id, slug, imported in entries:
            if item_id in present:
                continue
            conn.execute(
                source_items.insert().values(
                    source_url=url, item_id=item_id, slug=slug, first_seen_at=now, imported=imported
                )
            )
            present.add(item_id)
            added += 1
    return added


def items(db: sa.Engine, url: str) -> list[SourceItem]:
    """Every item seen from `url`, oldest first."""
    query = (
        sa.select(source_items)
        .where(source_items.c.source_url == url)
        .order_by(source_items.c.first_seen_at, source_items.c.item_id)
    )
    with db.connect() as conn:
        return [
            SourceItem(
                source_url=row.source_url,
                item_id=row.item_id,
                slug=row.slug,
                first_seen_at=row.first_seen_at,
                imported=bool(row.imported),
            )
            for row in conn.execute(query)
        ]
