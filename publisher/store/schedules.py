"""Scheduled sends: the durable truth of what should go out when.

APScheduler only wakes the daemon up; whether a send happens is decided here, by a
conditional UPDATE that exactly one process can win (`claim_due`), so a schedule runs
once even with two daemons on one database, or a daemon that was down at the time.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from publisher.errors import NotFound
from publisher.schedule import timing
from publisher.store.engine import reader
from publisher.store.schema import issues, schedules

__all__ = [
    "LOCAL",
    "Claimed",
    "Schedule",
    "add",
    "cancel",
    "claim_due",
    "due_times",
    "finish",
    "get",
    "list_schedules",
    "listen",
    "pending",
    "unfinished",
]


log = logging.getLogger(__name__)

_LISTENERS: list[Callable[[Schedule], None]] = []

LOCAL = "local"
"""`timezone` of a local-time send: `local_time` is read on each reader's own clock."""


@dataclass(frozen=True, slots=True)
class Schedule:
    id: int
    issue_id: int
    issue_key: str
    slug: str
    subject: str
    run_at: datetime
    timezone: str
    local_time: str
    state: str
    detail: str
    publishes: bool = False
    """The article was not on the site when this was scheduled: running it puts it there."""

    @property
    def local_at(self) -> datetime | None:
        """For a local-time send, the wall-clock date and time each reader gets it at."""
        if self.timezone != LOCAL:
            return None
        return timing.parse_wall_clock(self.local_time)


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _select() -> sa.Select[tuple[object, ...]]:
    return sa.select(
        schedules.c.id,
        schedules.c.issue_id,
        issues.c.key,
        issues.c.slug,
        issues.c.subject,
        schedules.c.run_at,
        schedules.c.timezone,
        schedules.c.local_time,
        schedules.c.state,
        schedules.c.detail,
        schedules.c.publishes,
    ).join(issues, issues.c.id == schedules.c.issue_id)


def _row(row: sa.Row[tuple[object, ...]]) -> Schedule:
    values = row._mapping
    run_at = _utc(values["run_at"])
    assert run_at is not None
    return Schedule(
        id=int(values["id"]),
        issue_id=int(values["issue_id"]),
        issue_key=str(values["key"]),
        slug=str(values["slug"]),
        subject=str(values["subject"]),
        run_at=run_at,
        timezone=str(values["timezone"]),
        local_time=str(values["local_time"]),
        state=str(values["state"]),
        detail=str(values["detail"]),
        publishes=bool(values["publishes"]),
    )


def add(
    db: sa.Engine, *, issue_id: int, run_at: datetime, timezone: str, local_time: str, now: datetime,
    publishes: bool = False,
) -> Schedule:
    """Schedule an issue. One pending schedule per issue: a new time replaces the old one.

    With `publishes`, running it also puts the article on the site (it was a draft, or dated
    later, when it was scheduled)."""
    with db.begin() as conn:
        conn.execute(
            schedules.update()
            .where(schedules.c.issue_id == issue_id, schedules.c.state == "pending")
            .values(state="cancelled", detail="replaced by a new schedule")
        )
        new_id = conn.execute(
            schedules.insert().values(
                issue_id=issue_id,
                run_at=run_at.astimezone(UTC),
                timezone=timezone,
                local_time=local_time,
                state="pending",
                detail="",
                publishes=publishes,
                created_at=now,
            )
        ).inserted_primary_key
        assert new_id is not None
        conn.execute(issues.update().where(issues.c.id == issue_id).values(status="scheduled"))
    item = get(db, int(new_id[0]))
    for listener in list(_LISTENERS):
        try:
            listener(item)
        except Exception:  # a wake-up that fails is caught up by the daemon's sweep
            log.exception("could not arm the wake-up for schedule %s", item.id)
    return item


def listen(listener: Callable[[Schedule], None]) -> Callable[[], None]:
    """Call `listener` with each schedule added in this process (the daemon arms a wake-up
    at its exact time); returns the call that stops listening. Schedules added by other
    processes are found by the daemon's sweep, every few seconds."""
    _LISTENERS.append(listener)
    return lambda: _LISTENERS.remove(listener) if listener in _LISTENERS else None


def get(db: sa.Engine, schedule_id: int) -> Schedule:
    with db.connect() as conn:
        row = conn.execute(_select().where(schedules.c.id == schedule_id)).first()
    if row is None:
        raise NotFound(f"no schedule with id {schedule_id}; `publisher schedules` lists them")
    return _row(row)


def list_schedules(db: sa.Engine, *, include_finished: bool = True) -> list[Schedule]:
    with reader(db) as conn:
        return [_row(row) for row in conn.execute(_list_query(include_finished))]


@functools.cache
def _list_query(include_finished: bool) -> sa.Select[tuple[object, ...]]:
    """Built once: Home lists the schedules on every request."""
    query = _select().order_by(schedules.c.run_at, schedules.c.id)
    return query if include_finished else query.where(schedules.c.state == "pending")


def pending(db: sa.Engine) -> list[Schedule]:
    return list_schedules(db, include_finished=False)


def cancel(db: sa.Engine, schedule_id: int) -> Schedule:
    """Cancel a pending schedule; one that already ran or was claimed cannot be taken back."""
    current = get(db, schedule_id)
    with db.begin() as conn:
        changed = conn.execute(
            schedules.update()
            .where(schedules.c.id == schedule_id, schedules.c.state == "pending")
            .values(state="cancelled", detail="cancelled by the author")
        ).rowcount
    if not changed:
        raise NotFound(f"schedule {schedule_id} is {current.state}, not pending: it cannot be cancelled")
    return get(db, schedule_id)


@dataclass(frozen=True, slots=True)
class Claimed:
    schedule: Schedule
    run: bool
    """False when the time was missed by more than the grace: skipped and reported."""


def claim_due(db: sa.Engine, *, worker: str, now: datetime, grace: timedelta) -> list[Claimed]:
    """Take every pending schedule whose time has come. Each is won by one caller only."""
    due = [s for s in pending(db) if s.run_at <= now]
    won: list[Claimed] = []
    for schedule in due:
        late = now - schedule.run_at
        run = late <= grace
        state = "claimed" if run else "skipped"
        detail = (
            "" if run else f"missed by {late} (more than the grace of {grace}); not sent. "
            f"Send it by hand with `publisher send {schedule.slug}` if it should still go out."
        )
        with db.begin() as conn:
            changed = conn.execute(
                schedules.update()
                .where(schedules.c.id == schedule.id, schedules.c.state == "pending")
                .values(state=state, claimed_by=worker, claimed_at=now, detail=detail)
            ).rowcount
        if changed:
            won.append(Claimed(get(db, schedule.id), run))
    return won


def finish(db: sa.Engine, schedule_id: int, *, detail: str = "", state: str = "done") -> None:
    """Mark a claimed schedule `done` (its issue is queued), `skipped` (it must not go out)
    or `held` (a check before sending failed: nothing went, the author is told)."""
    with db.begin() as conn:
        conn.execute(
            schedules.update().where(schedules.c.id == schedule_id).values(state=state, detail=detail)
        )


def due_times(db: sa.Engine) -> Sequence[tuple[int, datetime]]:
    """(id, run_at) of pending schedules: what the daemon arms APScheduler with."""
    return [(s.id, s.run_at) for s in pending(db)]


def unfinished(db: sa.Engine) -> list[Schedule]:
    """Schedules claimed but not marked done: a daemon died between the claim and the enqueue.

    Enqueueing is idempotent (one ledger row per issue and subscriber), so finishing them
    again is safe, even from two daemons at once.
    """
    query = _select().where(schedules.c.state == "claimed").order_by(schedules.c.run_at, schedules.c.id)
    with db.connect() as conn:
        return [_row(row) for row in conn.execute(query)]
