"""Segment actions: save, preview (a count and a sample), list, page, export, and the
audience a send to a segment reaches.

The rules arrive as JSON (text or decoded) from every face and are read here, once, by
`segment_rules.parse`: an unknown field, operator or a malformed tree is InvalidRequest
naming its place. A segment chooses among active readers; a send to it further keeps
each reader's own choices (digest only, topics), as every send does.

Errors: InvalidRequest for bad rules or a bad name, Conflict for a name taken, NotFound
for an unknown segment (by name: the message lists those there are).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from sqlalchemy import Engine

from publisher.errors import InvalidRequest, NotFound
from publisher.models import Subscriber
from publisher.numbers import plain_int
from publisher.store import segment_rules
from publisher.store import segments as store
from publisher.store.segment_rules import FIELDS, Condition, Field, Group, describe, dumps
from publisher.store.segments import IssueSegment, Segment
from publisher.store.subscribers import reading

__all__ = [
    "FIELDS",
    "SAMPLE",
    "Condition",
    "Field",
    "Group",
    "IssueSegment",
    "Preview",
    "Segment",
    "audience",
    "delete_segment",
    "describe",
    "dumps",
    "export_csv",
    "find_segment",
    "get_segment",
    "issue_audience",
    "issue_segment",
    "list_segments",
    "preview",
    "read_rules",
    "save_segment",
    "segment_page",
]

SAMPLE = 10
"""Readers a preview shows."""


@dataclass(frozen=True, slots=True)
class Preview:
    """What a segment holds now: its count, a few of its readers, and its rules in words."""

    count: int
    sample: tuple[Subscriber, ...]
    words: str


def read_rules(raw: object) -> Group:
    """Rules as the faces hand them in: a parsed tree, its JSON text, or decoded JSON."""
    if isinstance(raw, Group):
        return raw
    if isinstance(raw, str | bytes):
        return segment_rules.parse_text(raw.decode() if isinstance(raw, bytes) else raw)
    return segment_rules.parse(raw)


def save_segment(
    db: Engine, *, name: str, rules: object, now: datetime, who: str = "", segment_id: int | None = None
) -> Segment:
    """Save a new segment, or change the one with `segment_id`. Sends made before keep their record."""
    tree = read_rules(rules)
    if segment_id is None:
        return store.create(db, name, tree, now=now, who=who)
    return store.update_segment(db, segment_id, name=name, rules=tree, now=now, who=who)


def delete_segment(db: Engine, segment_id: int) -> Segment:
    """Delete a segment. A schedule that names it is held at its time, with the reason."""
    return store.remove(db, segment_id)


def list_segments(db: Engine) -> list[Segment]:
    return store.all_segments(db)


def get_segment(db: Engine, segment_id: int) -> Segment:
    return store.get(db, segment_id)


def find_segment(db: Engine, name: str) -> Segment:
    """The segment called `name`, or the one with that id when `name` is a number."""
    if plain_int(name.strip()) is not None:
        try:
            return store.get(db, int(name.strip()))
        except NotFound:
            pass
    return store.by_name(db, name)


def preview(db: Engine, rules: object, *, now: datetime, sample: int = SAMPLE) -> Preview:
    """The live count and the first `sample` readers of unsaved (or saved) rules."""
    tree = read_rules(rules)
    shown, _ = store.page(db, tree, now=now, limit=sample)
    return Preview(count=store.count(db, tree, now=now), sample=tuple(shown), words=segment_rules.describe(tree))


def segment_page(
    db: Engine, segment_id: int, *, now: datetime, after: int = 0, limit: int = 100
) -> tuple[list[Subscriber], bool]:
    """One page of the segment's readers in id order after id `after`, and whether more follow."""
    if not 1 <= limit <= 1000:
        raise InvalidRequest(f"limit: give 1 to 1000, got {limit}")
    return store.page(db, store.get(db, segment_id).rules, now=now, after=after, limit=limit)


def export_csv(db: Engine, out: IO[str], name: str, *, now: datetime) -> int:
    """Write the segment's readers as the subscriber CSV export does; returns rows."""
    found = find_segment(db, name)
    return reading.export_csv(db, out, where=[segment_rules.compile_rules(found.rules, now=now)])


def audience(db: Engine, name: str, *, now: datetime) -> tuple[Segment, Sequence[Any]]:
    """The segment a send names, and its conditions for the ledger's enqueue."""
    found = find_segment(db, name)
    return found, [segment_rules.compile_rules(found.rules, now=now)]


def issue_segment(db: Engine, issue_id: int) -> IssueSegment | None:
    """The segment recorded on an issue (its name then, and the count its send queued), or None."""
    return store.issue_segment(db, issue_id)


def issue_audience(db: Engine, issue_id: int, *, now: datetime) -> tuple[IssueSegment | None, Sequence[Any]]:
    """The segment recorded on an issue and its conditions now (none: everyone).

    InvalidRequest when that segment was deleted since: a send must not silently widen
    to everyone.
    """
    recorded = store.issue_segment(db, issue_id)
    if recorded is None:
        return None, ()
    try:
        found = store.get(db, recorded.segment_id)
    except NotFound as exc:
        raise InvalidRequest(
            f"the segment “{recorded.name}” this issue was to go to has been deleted, so nothing "
            "was sent. Choose a segment (or everyone) and send or schedule it again."
        ) from exc
    return recorded, [segment_rules.compile_rules(found.rules, now=now)]
