"""What a large list needs stays exact: the import's quick address check, the list's pages."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from pg_server import fresh_database, postgres_server

from publisher.errors import SubscriberError
from publisher.services import subscribers
from publisher.store import open_store, subscriber_import
from publisher.store.schema import deliveries, issues
from publisher.store.schema import subscribers as schema_subscribers
from publisher.store.stats import sent_per_minute
from publisher.store.subscribers.values import normalize_email

ADDRESSES = [
    "Bob@Example.ORG", " a.b+c@x.io ", "bob@münchen.de", "bob@xn--mnchen-3ya.de", "ü@x.org", "a..b@x.io",
    "a@localhost", "a@b", "a@x.test", "a@x.local", "a@-x.org", "\"q u\"@x.org", "a@x..org", "a@x.org.",
    "a.@x.org", ".a@x.org", "a@[1.2.3.4]", "x" * 64 + "@x.org", "x" * 65 + "@x.org", "a@x_y.org",
    "a@123.456", "a@" + "x" * 250 + ".org", "a@b@c.org", "@x.org", "a@", "o'brien@x.ie", "a{b}@x.org",
]


def _validator(text: str) -> str:
    try:
        checked = validate_email(text.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        return f"refused: {exc}"
    return (checked.ascii_email or checked.normalized).lower()


@pytest.mark.parametrize("address", ADDRESSES)
def test_the_quick_address_check_agrees_with_the_validator(address: str) -> None:
    """A plain address checked by its domain once gives what email_validator gives, or its refusal."""
    try:
        found = normalize_email(address)
    except SubscriberError as exc:
        found = f"refused: {str(exc).split(' is not a valid address: ', 1)[1]}"
    assert found == _validator(address)


def test_a_refused_domain_is_refused_again() -> None:
    """Only valid domains are remembered: a bad one is told about each address that has it."""
    for _ in range(2):
        with pytest.raises(SubscriberError, match=r"'a@x\.test' is not a valid address"):
            normalize_email("a@x.test")


def test_tag_counts_count_every_reader_and_the_active_ones(tmp_path: Path) -> None:
    """The list page's tag figures: all readers per tag from the tag rows, active ones apart."""
    db = open_store(f"sqlite:///{tmp_path / 'publisher.db'}")
    now = datetime.now(UTC)
    subscribers.subscribe(db, "a@example.org", now=now, tags=["weekly", "clinic"])
    subscribers.subscribe(db, "b@example.org", now=now, tags=["weekly"])
    subscribers.subscribe(db, "c@example.org", now=now, tags=["weekly"])
    subscribers.unsubscribe(db, "c@example.org", now=now)
    found = subscribers.tags(db)
    db.dispose()
    assert [(t.tag, t.active, t.total) for t in found] == [("weekly", 2, 3), ("clinic", 1, 1)]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('pace') / 'publisher.db'}"
        return
    with postgres_server() as url:
        yield fresh_database(url, "pace")


def test_copies_sent_per_minute_are_counted_in_utc_minutes(store_url: str) -> None:
    """A send's pace groups its copies by UTC minute, whatever zone the times were written in."""
    db = open_store(store_url)
    start = datetime(2026, 12, 7, 9, 30, 15, tzinfo=UTC)
    eastern = timezone(timedelta(hours=-5))
    later = (start + timedelta(minutes=3)).astimezone(eastern)
    times = [start, start + timedelta(seconds=50), start + timedelta(seconds=55), later, None]
    with db.begin() as conn:
        issue_id = conn.execute(sa.insert(issues).values(
            key="pace", kind="article", slug="pace", subject="Pace", html="<p>x</p>", text="x", status="done",
            created_at=start,
        )).inserted_primary_key[0]
        for n, sent in enumerate(times):
            reader = conn.execute(sa.insert(schema_subscribers).values(
                email=f"r{n}@example.org", name="", status="active", source="t", created_at=start,
                updated_at=start, token_key=f"{n:032x}",
            )).inserted_primary_key[0]
            conn.execute(sa.insert(deliveries).values(
                issue_id=issue_id, subscriber_id=reader, email=f"r{n}@example.org", name="",
                state="sent" if sent else "queued", attempts=1, not_before=start, sent_at=sent, provider_id="",
                detail="", uncertain=False, message_key=f"k{n}",
            ))
    pace = sent_per_minute(db, issue_id)
    db.dispose()
    assert pace == {datetime(2026, 12, 7, 9, 31, tzinfo=UTC): 2, datetime(2026, 12, 7, 9, 30, tzinfo=UTC): 1,
                    datetime(2026, 12, 7, 9, 33, tzinfo=UTC): 1}
    assert list(pace) == sorted(pace)


def test_an_import_plans_each_chunk_for_the_list_as_it_has_grown(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL an import's look-ups are never run on one generic plan made while the list was
    small: that plan scanned the whole growing table for every chunk, so a long import slowed with
    its square. Chunks of five rows here, so that psycopg prepares the look-up and PostgreSQL has
    planned it several times."""
    if not store_url.startswith("postgresql"):
        pytest.skip("SQLite plans each statement as it prepares it")
    monkeypatch.setattr(subscriber_import, "PAGE", 5)
    lines = ["email,name,tags\n", *(f"chunk{n}@example.org,Reader {n},weekly\n" for n in range(120))]
    open_store(store_url).dispose()
    db = sa.create_engine(store_url, pool_size=1, max_overflow=0)  # one session: its prepared statements
    try:
        report = subscriber_import.import_rows(db, lines, now=datetime.now(UTC), origin="list.csv")
        with db.connect() as conn:
            plans = conn.exec_driver_sql(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                "WHERE statement LIKE 'SELECT subscribers.id, subscribers.email, %%'"
            ).all()
    finally:
        db.dispose()
    assert report.imported == 120
    assert plans and all(custom > 0 for _, custom in plans)
    assert [generic for generic, _ in plans] == [0] * len(plans)


def _whole_table_scans(db: sa.Engine) -> dict[str, int]:
    with db.connect() as conn:
        conn.exec_driver_sql("SELECT pg_stat_force_next_flush()")
        conn.commit()
        conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
        found = conn.exec_driver_sql(
            "SELECT relname, seq_scan FROM pg_stat_user_tables WHERE relname IN ('subscribers', 'subscriber_tags')"
        ).all()
    return {name: int(number) for name, number in found}


def test_an_import_looks_addresses_and_tags_up_by_index(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL no chunk of an import reads the whole list to find its addresses or their tags:
    a scan costs more with each chunk added, however small the list looks to the planner."""
    if not store_url.startswith("postgresql"):
        pytest.skip("SQLite's look-ups by address use its unique index")
    monkeypatch.setattr(subscriber_import, "PAGE", 5)
    lines = ["email,name,tags\n", *(f"scan{n}@example.org,Reader {n},weekly\n" for n in range(40))]
    open_store(store_url).dispose()
    db = sa.create_engine(store_url, pool_size=1, max_overflow=0)  # one session: its counters flushed
    try:
        before = _whole_table_scans(db)
        subscriber_import.import_rows(db, lines, now=datetime.now(UTC), origin="list.csv")
        subscriber_import.import_rows(db, lines, now=datetime.now(UTC), origin="again.csv", tags=["clinic"])
        after = _whole_table_scans(db)
    finally:
        db.dispose()
    assert after == before
