"""An issue's report reads its readers' reactions (unsubscribes, bounces, complaints) in
one statement, each kind still cut to the readers it shows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from publisher.store import open_store
from publisher.store import stats as store
from publisher.store.schema import events

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
EVENTS = [
    # (minutes after NOW, kind, email): a reader's later event of a kind counts once.
    (5, "unsubscribe", "c@example.org"),
    (1, "unsubscribe", "a@example.org"),
    (3, "unsubscribe", "b@example.org"),
    (4, "unsubscribe", "a@example.org"),
    (2, "bounce", "d@example.org"),
    (6, "bounce", "e@example.org"),
    (7, "complaint", "f@example.org"),
    (0, "subscribe", "g@example.org"),
]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = open_store(f"sqlite:///{tmp_path / 'test.db'}")
    yield engine
    engine.dispose()


def _reactions_in_one_statement(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.insert(events),
            [
                {
                    "subscriber_id": None,
                    "email": email,
                    "kind": kind,
                    "provider": "postmark",
                    "detail": "",
                    "created_at": NOW + timedelta(minutes=minutes),
                    "issue_id": 7,
                }
                for minutes, kind, email in EVENTS
            ],
        )
    ran: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *rest: object) -> None:
        ran.append(statement)

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        found = store.reactions_to_issue(engine, 7, limit=2)
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    assert [(r.kind, r.email) for r in found] == [
        ("unsubscribe", "a@example.org"),
        ("unsubscribe", "b@example.org"),
        ("bounce", "d@example.org"),
        ("bounce", "e@example.org"),
        ("complaint", "f@example.org"),
    ]
    assert len(ran) == 1


def test_the_reactions_to_an_issue_are_read_in_one_statement(db: sa.Engine) -> None:
    """One statement gives each kind's first readers, oldest first, at most `limit` a kind."""
    _reactions_in_one_statement(db)


def test_the_reactions_to_an_issue_are_read_in_one_statement_on_postgresql(pg: sa.Engine) -> None:
    """The same on PostgreSQL."""
    _reactions_in_one_statement(pg)
