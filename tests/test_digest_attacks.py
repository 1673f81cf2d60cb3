"""A digest's "had them all" rule, attacked: copies that never left, and readers erased."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from store_support import BACKENDS, open_test_store
from test_ledger import NOW, add_subscribers, new_issue

from publisher.store import ledger
from publisher.store.schema import deliveries, subscribers


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    engine = open_test_store(request.param, tmp_path)
    yield engine
    engine.dispose()


def _reached(db: sa.Engine, issue: int) -> set[int]:
    with db.connect() as conn:
        return set(conn.execute(sa.select(deliveries.c.subscriber_id).where(deliveries.c.issue_id == issue)).scalars())


def _two_articles_for(db: sa.Engine, readers: list[int]) -> tuple[int, int]:
    first, second = new_issue(db, key="a:1"), new_issue(db, key="a:2")
    for issue in (first, second):
        ledger.enqueue(db, issue, now=NOW, where=[subscribers.c.id.in_(readers)])
    return first, second


@pytest.mark.parametrize("state", ["skipped", "failed"])
def test_a_copy_that_never_left_is_not_had(db: sa.Engine, state: str) -> None:
    """A reader whose copy of one article was skipped (cancelled) or failed still gets the digest."""
    had, missed = add_subscribers(db, 2)
    first, second = _two_articles_for(db, [had, missed])
    with db.begin() as conn:
        conn.execute(sa.update(deliveries).values(state="sent"))
        conn.execute(
            sa.update(deliveries)
            .where(deliveries.c.issue_id == second, deliveries.c.subscriber_id == missed)
            .values(state=state)
        )
    digest = new_issue(db, key="d:1", kind="digest", slug="digest")
    assert ledger.enqueue(db, digest, now=NOW, skip_had=[first, second]) == 1
    assert _reached(db, digest) == {missed}


def test_an_erased_readers_copies_neither_break_the_digest_nor_count_for_anyone(db: sa.Engine) -> None:
    """Rows left without a reader (erased) are ignored; the readers still here are judged by their own."""
    gone, had, newcomer = add_subscribers(db, 3)
    first, second = _two_articles_for(db, [gone, had])
    with db.begin() as conn:
        conn.execute(sa.update(deliveries).values(state="sent"))
        conn.execute(sa.update(deliveries).where(deliveries.c.subscriber_id == gone).values(subscriber_id=None))
        conn.execute(sa.delete(subscribers).where(subscribers.c.id == gone))
    digest = new_issue(db, key="d:1", kind="digest", slug="digest")
    assert ledger.enqueue(db, digest, now=NOW, skip_had=[first, second]) == 1
    assert _reached(db, digest) == {newcomer}
