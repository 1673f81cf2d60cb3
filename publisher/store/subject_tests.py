"""Subject tests as the store keeps them: the subjects, the sample, the decision, the release.

A test's life, each step one transaction that is safe to run again:

    planned    (a scheduled send) kept with the schedule, no ledger row yet: dropped if
               the schedule is cancelled or replaced, given its decision time when it starts
    written    with the issue, before any ledger row: the rows are then written `held`
    sampled    a share of the held rows (drawn by the issue's seed) is queued, each with
               its subject (`variant`), split evenly; the rest stay held
    decided    the winner and its reason, with each variant's numbers, kept for good
    released   the held rows are queued with the winner's subject

A crash between two steps leaves a test that `due` names again, and the next run finishes
it: a held row is queued once (the UPDATE takes only `held` rows), and a row already
queued or sent is never touched, so each reader gets exactly one copy, under one subject.
An unsubscribe while rows are held wins as always: the claim skips that row.

The sample is drawn in the database, by a key computed from the subscriber and the seed
(a non-linear hash of integers, the same on SQLite and PostgreSQL): the same readers on
every run, and the list is never loaded.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Select,
    bindparam,
    cast,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)

from publisher.store.engine import begin_write, reader
from publisher.store.ledger.rows import HELD, QUEUED, SENT
from publisher.store.schema import deliveries, subject_tests

__all__ = [
    "SubjectTest",
    "VariantCount",
    "assign_sample",
    "counts",
    "drop_planned",
    "due",
    "get",
    "planned",
    "record_decision",
    "release",
    "sent_copies",
    "sent_per_variant",
    "start_planned",
    "subjects_of",
    "write",
]

_PRIME = 2147483647  # 2**31 - 1: every product below stays inside 64 bits
_MULTIPLIER = 48271


@dataclass(frozen=True, slots=True)
class SubjectTest:
    issue_id: int
    subjects: tuple[str, ...]
    sample_percent: int
    metric: str
    seed: int
    decide_at: datetime
    created_at: datetime
    sampled_at: datetime | None = None
    decided_at: datetime | None = None
    winner: int | None = None
    reason: str = ""
    figures: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    released_at: datetime | None = None
    wait_seconds: int | None = None
    """A test planned with a schedule: the wait that starts when the send does (None: a
    time the author named, or a test started at once)."""


@dataclass(frozen=True, slots=True)
class VariantCount:
    """Copies of one variant by state (`variant` None: the rows still held, or queued without one)."""

    variant: int | None
    state: str
    copies: int


def _from_row(row: Any) -> SubjectTest:
    figures = json.loads(row.figures) if row.figures else []
    return SubjectTest(
        issue_id=row.issue_id,
        subjects=tuple(json.loads(row.subjects)),
        sample_percent=row.sample_percent,
        metric=row.metric,
        seed=row.seed,
        decide_at=row.decide_at,
        created_at=row.created_at,
        sampled_at=row.sampled_at,
        decided_at=row.decided_at,
        winner=row.winner,
        reason=row.reason or "",
        figures=tuple(figures),
        released_at=row.released_at,
        wait_seconds=row.wait_seconds,
    )


def write(
    conn: Connection, issue_id: int, *, subjects: tuple[str, ...], sample_percent: int, metric: str,
    seed: int, decide_at: datetime, now: datetime, wait_seconds: int | None = None,
) -> None:
    """Keep a new test for `issue_id`, in the caller's transaction (the one that writes the issue)."""
    conn.execute(
        insert(subject_tests).values(
            issue_id=issue_id, subjects=json.dumps(list(subjects)), sample_percent=sample_percent,
            metric=metric, seed=seed, decide_at=decide_at, created_at=now, reason="", figures="",
            wait_seconds=wait_seconds,
        )
    )


def _no_rows(issue_id: int) -> Any:
    return ~exists().where(deliveries.c.issue_id == issue_id)


def planned(conn: Connection, issue_id: int) -> SubjectTest | None:
    """The issue's test while it is only planned (kept with a schedule, no ledger row written yet)."""
    row = conn.execute(
        select(subject_tests).where(
            subject_tests.c.issue_id == issue_id, subject_tests.c.sampled_at.is_(None), _no_rows(issue_id)
        )
    ).first()
    return None if row is None else _from_row(row)


def drop_planned(conn: Connection, issue_id: int) -> bool:
    """Forget a test that is only planned (its schedule was cancelled or replaced); False
    when there is none, or when its rows are written (a test under way is never dropped)."""
    gone = conn.execute(
        delete(subject_tests).where(
            subject_tests.c.issue_id == issue_id, subject_tests.c.sampled_at.is_(None), _no_rows(issue_id)
        )
    ).rowcount
    return bool(gone)


def start_planned(conn: Connection, issue_id: int, *, decide_at: datetime) -> None:
    """Set the decision time of a planned test as its send starts."""
    conn.execute(
        update(subject_tests)
        .where(subject_tests.c.issue_id == issue_id, subject_tests.c.sampled_at.is_(None))
        .values(decide_at=decide_at)
    )


def get(db: Engine | Connection, issue_id: int) -> SubjectTest | None:
    """The issue's subject test, or None when it has none."""
    values = {"issue_id": issue_id}
    if isinstance(db, Connection):
        row = db.execute(_get_query(), values).first()
    else:
        with reader(db) as conn:
            row = conn.execute(_get_query(), values).first()
    return None if row is None else _from_row(row)


@functools.cache
def _get_query() -> Select[Any]:
    """Built once: an issue's report asks on every request."""
    return select(subject_tests).where(subject_tests.c.issue_id == bindparam("issue_id"))


def subjects_of(db: Engine, issue_id: int) -> tuple[str, ...] | None:
    """The subjects an issue's copies may carry, by variant number; None without a test."""
    found = get(db, issue_id)
    return None if found is None else found.subjects


def due(db: Engine, *, now: datetime) -> list[SubjectTest]:
    """Tests with a step to take: not yet sampled, decision time come, or decided and not released."""
    query = select(subject_tests).where(
        or_(
            subject_tests.c.sampled_at.is_(None),
            (subject_tests.c.decided_at.is_(None)) & (subject_tests.c.decide_at <= now),
            (subject_tests.c.decided_at.is_not(None)) & (subject_tests.c.released_at.is_(None)),
        )
    ).order_by(subject_tests.c.decide_at)
    with db.connect() as conn:
        return [_from_row(row) for row in conn.execute(query)]


def _draw_key(seed: int) -> Any:
    """A pseudo-random order of the issue's rows: ((s * M + seed) mod P)^2 mod P of the
    subscriber (the row's own id once the subscriber was erased). Squaring makes it
    non-linear, so neighbouring readers do not land in a pattern of variants."""
    who = cast(func.coalesce(deliveries.c.subscriber_id, deliveries.c.id), BigInteger)
    first = (who * _MULTIPLIER + seed) % _PRIME
    return (first * first) % _PRIME


def assign_sample(db: Engine, issue_id: int, *, now: datetime) -> dict[int, int]:
    """Queue the test's sample, each row with its subject; returns copies per variant.

    The sample is `sample_percent` of the issue's held rows (rounded down to a multiple of
    the number of subjects, so the split is even). Done once: a test already sampled
    returns {} and changes nothing. A test whose rows are not written yet (the send
    stopped between the test and its rows) is left to be sampled when they are.
    """
    with begin_write(db) as conn:
        test = get(conn, issue_id)
        if test is None or test.sampled_at is not None:
            return {}
        held = int(conn.execute(
            select(func.count()).where(deliveries.c.issue_id == issue_id, deliveries.c.state == HELD)
        ).scalar_one())
        if held == 0:
            return {}
        # The guard that makes it once, whoever else is sampling the same test right now.
        marked = conn.execute(
            update(subject_tests)
            .where(subject_tests.c.issue_id == issue_id, subject_tests.c.sampled_at.is_(None))
            .values(sampled_at=now)
        ).rowcount
        if not marked:
            return {}
        variants = len(test.subjects)
        each = held * test.sample_percent // 100 // variants
        if each == 0:
            return {}
        # Each variant takes the next `each` held rows in the drawn order, inside the
        # database: the rows it took are no longer held when the next variant draws.
        for variant in range(variants):
            drawn = (
                select(deliveries.c.id)
                .where(deliveries.c.issue_id == issue_id, deliveries.c.state == HELD)
                .order_by(_draw_key(test.seed), deliveries.c.id)
                .limit(each)
            )
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(drawn.scalar_subquery()))
                .values(state=QUEUED, variant=variant, not_before=now)
            )
    return {v: each for v in range(variants)}


def sent_copies(db: Engine, issue_id: int) -> dict[int, int]:
    """Ledger row id -> variant, for every copy of the sample that went out."""
    with db.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.id, deliveries.c.variant).where(
                deliveries.c.issue_id == issue_id,
                deliveries.c.variant.is_not(None),
                deliveries.c.state == SENT,
            )
        )
        return {int(r.id): int(r.variant) for r in rows}


def sent_per_variant(db: Engine, issue_id: int) -> dict[int, int]:
    """Variant -> copies of it that went out."""
    with db.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.variant, func.count())
            .where(
                deliveries.c.issue_id == issue_id,
                deliveries.c.variant.is_not(None),
                deliveries.c.state == SENT,
            )
            .group_by(deliveries.c.variant)
        )
        return {int(r[0]): int(r[1]) for r in rows}


def counts(db: Engine, issue_id: int) -> list[VariantCount]:
    """The issue's copies by variant and state."""
    with db.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.variant, deliveries.c.state, func.count())
            .where(deliveries.c.issue_id == issue_id)
            .group_by(deliveries.c.variant, deliveries.c.state)
        )
        return [VariantCount(r[0], str(r[1]), int(r[2])) for r in rows]


def record_decision(
    db: Engine, issue_id: int, *, winner: int, reason: str, figures: list[dict[str, Any]], now: datetime
) -> bool:
    """Keep the decision; False when one was kept already (the first one stands)."""
    with begin_write(db) as conn:
        changed = conn.execute(
            update(subject_tests)
            .where(subject_tests.c.issue_id == issue_id, subject_tests.c.decided_at.is_(None))
            .values(
                decided_at=now, winner=winner, reason=reason, figures=json.dumps(figures),
                sampled_at=func.coalesce(subject_tests.c.sampled_at, now),
            )
        ).rowcount
    return bool(changed)


def release(db: Engine, issue_id: int, *, now: datetime) -> int:
    """Queue every held row of a decided test with the winner's subject; how many.

    One transaction: the rows and the test's `released_at` change together.
    """
    with begin_write(db) as conn:
        winner = conn.execute(
            select(subject_tests.c.winner).where(
                subject_tests.c.issue_id == issue_id, subject_tests.c.decided_at.is_not(None)
            )
        ).scalar()
        if winner is None:
            return 0
        released = conn.execute(
            update(deliveries)
            .where(deliveries.c.issue_id == issue_id, deliveries.c.state == HELD)
            .values(state=QUEUED, variant=int(winner), not_before=now)
        ).rowcount
        conn.execute(
            update(subject_tests)
            .where(subject_tests.c.issue_id == issue_id, subject_tests.c.released_at.is_(None))
            .values(released_at=now)
        )
    return int(released or 0)
