"""The circuit breaker of each member of a provider pool, kept in the database.

Every worker and process sending for the publication reads and writes the same rows, so
they agree on which provider is failing, and a restart does not forget it:

- `closed`: in use. Each provider-level failure in a row (no connection, a timeout, a
  5xx, a 429, a refused key) counts; `threshold` of them open the breaker. A call that
  gets answers closes the run of failures.
- `open`: left alone until `cooldown` seconds have passed since it opened.
- `half_open`: one caller, the first to ask after the cool-down, won the probe (one batch
  through this member). Its success closes the breaker, its failure opens it again for
  another cool-down. A probe whose caller died is handed out again after a cool-down.

Each change is one short write transaction that reads the row under the write lock, so
two workers asking at once never both win a probe. `now` is passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row, select, update
from sqlalchemy.dialects import postgresql, sqlite

from publisher.store.engine import begin_write
from publisher.store.schema import provider_state

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "MemberState", "allow", "failed", "read", "succeeded"]

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"

_ERROR_LENGTH = 500


@dataclass(frozen=True, slots=True)
class MemberState:
    """One member's breaker as the database holds it."""

    member: str
    state: str = CLOSED
    failures: int = 0
    opened_at: datetime | None = None
    failing_since: datetime | None = None
    last_error: str = ""

    def reopens_at(self, cooldown: float) -> datetime | None:
        """When an open breaker lets a probe through (None when it is closed)."""
        if self.state == CLOSED or self.opened_at is None:
            return None
        return self.opened_at + timedelta(seconds=cooldown)


def read(engine: Engine, members: Sequence[str] | None = None) -> dict[str, MemberState]:
    """Every member's state (of `members` only, when given); a member never seen is absent."""
    query = select(provider_state)
    if members is not None:
        query = query.where(provider_state.c.member.in_(list(members)))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return {row.member: _state(row) for row in rows}


def allow(engine: Engine, member: str, *, now: datetime, cooldown: float) -> bool:
    """Whether a call may go through `member` now: closed, or this caller won the probe."""
    known = read(engine, [member]).get(member)
    if known is None or known.state == CLOSED:
        return True
    reopens = known.reopens_at(cooldown)
    if reopens is not None and now < reopens:
        return False
    with begin_write(engine) as conn:
        current = _locked(conn, member)
        if current is None or current.state == CLOSED:
            return True
        reopens = current.reopens_at(cooldown)
        if reopens is not None and now < reopens:
            return False  # another caller won the probe in between
        conn.execute(
            update(provider_state)
            .where(provider_state.c.member == member)
            .values(state=HALF_OPEN, opened_at=now, updated_at=now)
        )
    return True


def succeeded(engine: Engine, member: str, *, now: datetime) -> bool:
    """A call through `member` got answers: its breaker closes, its run of failures ends.
    True when it was open (the member is back)."""
    known = read(engine, [member]).get(member)
    if known is None or (known.state == CLOSED and known.failures == 0):
        return False  # the common case costs one read and no write
    with begin_write(engine) as conn:
        conn.execute(
            update(provider_state)
            .where(provider_state.c.member == member)
            .values(state=CLOSED, failures=0, opened_at=None, failing_since=None, updated_at=now)
        )
    return known.state != CLOSED


def failed(engine: Engine, member: str, error: str, *, now: datetime, threshold: int) -> MemberState:
    """A provider-level failure of `member`; its breaker opens at `threshold` in a row, or
    at once when it was the probe. Returns the new state."""
    with begin_write(engine) as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(provider_state)
            .values(member=member, state=CLOSED, failures=0, last_error="", updated_at=now)
            .on_conflict_do_nothing(index_elements=["member"])
        )
        current = _locked(conn, member)
        assert current is not None  # inserted above
        failures = current.failures + 1
        opens = current.state == HALF_OPEN or failures >= max(1, threshold)
        state = OPEN if opens else current.state
        opened_at = now if opens else current.opened_at
        if current.state == OPEN:
            state, opened_at = OPEN, current.opened_at  # a late answer from before it opened
        new = MemberState(
            member=member,
            state=state,
            failures=failures,
            opened_at=opened_at,
            failing_since=current.failing_since or now,
            last_error=error[:_ERROR_LENGTH],
        )
        conn.execute(
            update(provider_state)
            .where(provider_state.c.member == member)
            .values(
                state=new.state, failures=new.failures, opened_at=new.opened_at,
                failing_since=new.failing_since, last_error=new.last_error, updated_at=now,
            )
        )
    return new


def _locked(conn: Connection, member: str) -> MemberState | None:
    row = conn.execute(
        select(provider_state).where(provider_state.c.member == member).with_for_update()
    ).one_or_none()
    return None if row is None else _state(row)


def _state(row: Row[Any]) -> MemberState:
    return MemberState(
        member=str(row.member),
        state=str(row.state),
        failures=int(row.failures),
        opened_at=row.opened_at,
        failing_since=row.failing_since,
        last_error=str(row.last_error),
    )
