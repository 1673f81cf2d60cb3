"""The settings audit log: each change an owner made to the settings, newest first.

One row per key changed, with who made it, when, and the old and the new value as the
desk shows them. The service masks secrets before they come here (`services.settings`):
this module stores what it is given and never sees a secret's value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, desc, insert, select

from publisher.store.schema import settings_changes

__all__ = ["SettingsChange", "recent", "record"]


@dataclass(frozen=True, slots=True)
class SettingsChange:
    key: str
    old: str
    new: str
    who: str = ""
    changed_at: datetime | None = None


def record(engine: Engine, changes: Iterable[SettingsChange], *, who: str, now: datetime) -> int:
    """Write one row per change, all in one transaction; returns how many."""
    rows = [
        {"changed_at": now, "who": who[:320], "key": c.key[:200], "old": c.old, "new": c.new} for c in changes
    ]
    if not rows:
        return 0
    with engine.begin() as conn:
        conn.execute(insert(settings_changes), rows)
    return len(rows)


def recent(engine: Engine, limit: int = 50) -> list[SettingsChange]:
    """The newest changes first."""
    query = (
        select(settings_changes).order_by(desc(settings_changes.c.changed_at), desc(settings_changes.c.id))
        .limit(limit)
    )
    with engine.connect() as conn:
        return [
            SettingsChange(key=row.key, old=row.old, new=row.new, who=row.who, changed_at=row.changed_at)
            for row in conn.execute(query)
        ]
