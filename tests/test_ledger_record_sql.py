"""Recording sent answers as the driver's own SQL: the same rows as the Core statement, less work."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from store_support import BACKENDS, open_test_store

from publisher.delivery.retry import RetryPolicy
from publisher.models import Outcome, SendResult
from publisher.store import ledger
from publisher.store.ledger import claiming
from publisher.store.schema import deliveries, subscribers

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """SQLite in tmp_path; PostgreSQL too when $PUBLISHER_TEST_POSTGRES_URL is set."""
    engine = open_test_store(request.param, tmp_path)
    yield engine
    engine.dispose()


def claimed(db: sa.Engine, count: int) -> list[ledger.ClaimedRow]:
    with db.begin() as conn:
        conn.execute(
            sa.insert(subscribers),
            [
                {
                    "email": f"reader{n}@example.org",
                    "name": f"Reader {n}",
                    "status": "active",
                    "source": "test",
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for n in range(count)
            ],
        )
    issue = ledger.create_issue(
        db,
        key="tag:example.org,2026-03-01:/first",
        kind="article",
        slug="first",
        subject="First",
        html="<p>one</p>",
        text="one",
        tag=None,
        status="sending",
        now=NOW,
    )
    ledger.enqueue(db, issue, now=NOW)
    return ledger.claim(db, worker="w1", limit=count, now=NOW, issue_id=issue)


def row(db: sa.Engine, delivery_id: int) -> tuple[Any, ...]:
    columns = ("state", "attempts", "sent_at", "provider_id", "detail", "claimed_by", "claimed_at")
    with db.connect() as conn:
        found = conn.execute(
            sa.select(*(deliveries.c[name] for name in columns)).where(deliveries.c.id == delivery_id)
        ).one()
    return tuple(found)


@pytest.mark.parametrize("mine", [True, False])
def test_the_drivers_sql_writes_what_the_core_statement_writes(db: sa.Engine, mine: bool) -> None:
    """The same row, date included (an offset other than UTC too), whether the worker is named or not."""
    first, second = claimed(db, 2)
    when = datetime(2026, 3, 2, 14, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    values = {"b_provider_id": "250 2.0.0 Ok: queued as ABC", "b_detail": "sent", "b_now": when}
    if mine:
        values["b_worker"] = "w1"
    with db.begin() as conn:
        conn.execute(claiming._record_sent(mine=mine), [{"b_id": first.id, **values}])
        statement = claiming._record_sent_sql(conn.dialect, mine=mine)
        conn.exec_driver_sql(statement.sql, [statement.parameters({"b_id": second.id, **values})])
    assert row(db, first.id) == row(db, second.id)
    assert row(db, second.id)[:2] == ("sent", 1)


def test_sent_answers_are_recorded_without_compiling_a_statement(db: sa.Engine) -> None:
    """A group of sent answers runs as SQL compiled once for the database, not a Core statement."""
    rows = claimed(db, 3)
    compiled: list[bool] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("UPDATE DELIVERIES"):
            compiled.append(context.compiled is not None)

    sa.event.listen(db, "before_cursor_execute", seen)
    try:
        counts = ledger.record(
            db,
            [SendResult(r.id, r.email, Outcome.SENT, "", provider_id="250 Ok") for r in rows],
            now=NOW,
            policy=RetryPolicy(),
            worker="w1",
            provider="smtp",
        )
    finally:
        sa.event.remove(db, "before_cursor_execute", seen)
    assert counts["sent"] == 3
    assert compiled == [False]
