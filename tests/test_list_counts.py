"""The counts the desk reads kept ready (`list_counts`, `event_days`, `sent_minutes`, migration
0027) equal a real COUNT(*) after every path that moves one, on SQLite and (when
configured) PostgreSQL."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_support import BACKENDS, open_test_store

from publisher.errors import SubscriberError
from publisher.models import SubscriberStatus
from publisher.services import stats
from publisher.store import counts_kept, open_store, subscriber_import, subscribers
from publisher.store import stats as store_stats
from publisher.store.backup import dump_database
from publisher.store.schema import deliveries, issues

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
KINDS = ("subscribe", "confirm", "unsubscribe", "bounce", "complaint")
S = SubscriberStatus


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """SQLite in tmp_path; PostgreSQL too when $PUBLISHER_TEST_POSTGRES_URL is set."""
    engine = open_test_store(request.param, tmp_path)
    yield engine
    engine.dispose()


def kept(db: sa.Engine) -> dict[tuple[str, str], int]:
    counts_kept.fold(db)
    with db.connect() as conn:
        rows = conn.execute(sa.text("SELECT status, tag, number FROM list_counts")).all()
    assert all(number >= 0 for _, _, number in rows), rows
    return {(status, tag): number for status, tag, number in rows if number}


def counted(db: sa.Engine) -> dict[tuple[str, str], int]:
    with db.connect() as conn:
        found = {(status, ""): number for status, number in conn.execute(
            sa.text("SELECT status, COUNT(*) FROM subscribers GROUP BY status"))}
        found.update({(status, tag): number for status, tag, number in conn.execute(sa.text(
            "SELECT s.status, t.tag, COUNT(*) FROM subscriber_tags AS t "
            "JOIN subscribers AS s ON s.id = t.subscriber_id GROUP BY s.status, t.tag"))})
    return found


def days_kept(db: sa.Engine) -> dict[tuple[str, str], int]:
    counts_kept.fold(db)
    with db.connect() as conn:
        rows = conn.execute(sa.text("SELECT day, kind, number FROM event_days")).all()
    assert all(number >= 0 for _, _, number in rows), rows
    return {(day, kind): number for day, kind, number in rows if number}


def days_counted(db: sa.Engine) -> dict[tuple[str, str], int]:
    with db.connect() as conn:
        rows = conn.execute(sa.text("SELECT created_at, kind FROM events")).all()
    found: dict[tuple[str, str], int] = {}
    for created, kind in rows:
        if kind not in KINDS:
            continue
        moment = created if isinstance(created, datetime) else datetime.fromisoformat(created)
        day = (moment.astimezone(UTC) if moment.tzinfo else moment).strftime("%Y-%m-%d")
        found[(day, kind)] = found.get((day, kind), 0) + 1
    return found


def assert_true(db: sa.Engine) -> None:
    assert kept(db) == counted(db)
    assert days_kept(db) == days_counted(db)


def test_a_signup_with_tags_is_counted_at_once(db: sa.Engine) -> None:
    """A new reader moves their status's count and each tag's in the same transaction."""
    subscribers.add(db, "ann@example.org", tags=["weekly", "clinic"], now=NOW)
    assert subscribers.counts(db)["active"] == 1
    assert subscribers.tag_counts(db) == {"clinic": 1, "weekly": 1}
    assert_true(db)


def test_a_confirmation_moves_a_reader_from_pending_to_active(db: sa.Engine) -> None:
    """Double opt-in: pending until the link is followed, then active, tags along."""
    reader = subscribers.add(db, "bo@example.org", tags=["weekly"], status=S.PENDING, now=NOW)
    assert subscribers.tag_counts(db) == {}
    assert subscribers.confirm(db, reader.id, sent_at=NOW, now=NOW + timedelta(minutes=5))
    assert subscribers.counts(db)["pending"] == 0
    assert subscribers.tag_counts(db) == {"weekly": 1}
    assert_true(db)


@pytest.mark.parametrize(("kind", "status"), [
    ("unsubscribe", "unsubscribed"), ("bounce", "bounced"), ("complaint", "complained"),
])
def test_an_unsubscribe_bounce_or_complaint_takes_the_reader_off_the_active_count(
    db: sa.Engine, kind: str, status: str
) -> None:
    """The reader leaves the active count and their tags' active counts; the day counts the event."""
    subscribers.add(db, "cy@example.org", tags=["weekly"], now=NOW)
    subscribers.suppress(db, "cy@example.org", kind, provider="test", now=NOW + timedelta(days=1))
    assert subscribers.counts(db)["active"] == 0
    assert subscribers.counts(db)[status] == 1
    assert subscribers.tag_counts(db) == {}
    assert subscribers.tag_counts(db, status=None) == {"weekly": 1}
    assert_true(db)


def test_an_edit_of_tags_moves_the_tag_counts(db: sa.Engine) -> None:
    """Replacing a reader's tags takes them off the old tags and onto the new."""
    reader = subscribers.add(db, "di@example.org", tags=["weekly"], now=NOW)
    subscribers.edit(db, reader.id, tags=["monthly", "clinic"], now=NOW)
    assert subscribers.tag_counts(db) == {"clinic": 1, "monthly": 1}
    assert_true(db)


def test_an_import_counts_every_row_it_writes(db: sa.Engine) -> None:
    """A CSV import (the path a migration from another service takes too) counts its rows,
    the unsubscribed ones as such."""
    both = '"weekly,clinic"'
    text = "email,name,tags,status\n" + "".join(
        f"r{n}@example.org,R {n},{'weekly' if n % 2 else both},{'unsubscribed' if n % 5 == 0 else ''}\n"
        for n in range(40)
    )
    subscribers.import_csv(db, io.StringIO(text), now=NOW, origin="readers.csv", tags=["imported"])
    assert sum(subscribers.counts(db).values()) == 40
    assert_true(db)


def test_an_erasure_takes_the_reader_and_their_events_off_every_count(db: sa.Engine) -> None:
    """Erasing a person removes their status, tags and events from the counts, never below zero."""
    subscribers.add(db, "ed@example.org", tags=["weekly", "clinic"], now=NOW)
    subscribers.add(db, "flo@example.org", tags=["weekly"], now=NOW)
    subscribers.remove(db, "ed@example.org", purge=True, now=NOW + timedelta(days=1))
    assert subscribers.counts(db)["active"] == 1
    assert subscribers.tag_counts(db) == {"weekly": 1}
    assert_true(db)


def test_a_restored_backup_carries_its_counts(tmp_path: Path) -> None:
    """A SQLite backup, opened as the restored store, reads the same counts as a COUNT(*)."""
    engine = open_store(f"sqlite:///{tmp_path / 'live.db'}")
    subscribers.add(engine, "gil@example.org", tags=["weekly"], now=NOW)
    subscribers.suppress(engine, "gil@example.org", "bounce", provider="test", now=NOW)
    subscribers.add(engine, "hal@example.org", tags=["weekly"], now=NOW)
    dump_database(f"sqlite:///{tmp_path / 'live.db'}", tmp_path / "backup.db")
    engine.dispose()
    restored = open_store(f"sqlite:///{tmp_path / 'backup.db'}")
    assert subscribers.counts(restored)["bounced"] == 1
    assert_true(restored)
    restored.dispose()


def test_the_migration_counts_a_list_that_was_already_there(tmp_path: Path) -> None:
    """A store at revision 0026 with readers gets its counts from the rows it holds."""
    from alembic import command

    from publisher.store.engine import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(connection=conn), "0026")
        conn.execute(sa.text(
            "INSERT INTO subscribers (email, name, status, source, created_at, updated_at, token_key, legacy_links, "
            "frequency) VALUES ('ida@example.org', '', 'active', 'x', '2026-03-01 10:00:00.000000', "
            "'2026-03-01 10:00:00.000000', 'k1', 0, 'every')"
        ))
        conn.execute(sa.text("INSERT INTO subscriber_tags (subscriber_id, tag) VALUES (1, 'weekly')"))
        conn.execute(sa.text(
            "INSERT INTO events (subscriber_id, email, kind, provider, detail, created_at) "
            "VALUES (1, 'ida@example.org', 'subscribe', '', '', '2026-03-01 10:00:00.000000')"
        ))
    engine.dispose()
    migrated = open_store(url)
    assert kept(migrated) == {("active", ""): 1, ("active", "weekly"): 1}
    assert days_kept(migrated) == {("2026-03-01", "subscribe"): 1}
    migrated.dispose()


def test_home_reads_the_days_from_the_kept_counts(db: sa.Engine) -> None:
    """The chart's days come from `event_days`: a join yesterday shows on yesterday's line."""
    subscribers.add(db, "jo@example.org", now=NOW - timedelta(days=1))
    lines = stats.subscriber_days(db, now=NOW, days=3)
    assert [line.joined for line in lines] == [0, 1, 0]


def _issue(db: sa.Engine) -> int:
    with db.begin() as conn:
        return int(conn.execute(sa.insert(issues).values(
            key="i1", kind="article", slug="i1", subject="One", html="<p>x</p>", text="x", status="done",
            created_at=NOW,
        ).returning(issues.c.id)).scalar_one())


def test_copies_marked_sent_are_counted_in_their_minute(db: sa.Engine) -> None:
    """Queued copies count nothing; marked sent, each counts in the minute of its sent_at,
    for the complaint rate and for the issue's pace."""
    issue_id = _issue(db)
    with db.begin() as conn:
        conn.execute(sa.insert(deliveries), [
            {"issue_id": issue_id, "subscriber_id": None, "email": f"x{n}@example.org", "name": "",
             "state": "queued", "attempts": 0, "not_before": NOW, "provider_id": "", "detail": "",
             "uncertain": False, "message_key": f"k{n}"} for n in range(6)
        ])
    assert store_stats.accepted_and_complaints(db, since=NOW - timedelta(days=30), until=NOW + timedelta(hours=2)) \
        == (0, 0)
    with db.begin() as conn:
        conn.execute(sa.update(deliveries).where(deliveries.c.message_key.in_(["k0", "k1", "k2"]))
                     .values(state="sent", sent_at=NOW + timedelta(minutes=30)))
        conn.execute(sa.update(deliveries).where(deliveries.c.message_key == "k3")
                     .values(state="failed", sent_at=None))
    window = {"since": NOW - timedelta(days=30), "until": NOW + timedelta(hours=2)}
    assert store_stats.accepted_and_complaints(db, **window) == (3, 0)
    with db.begin() as conn:
        conn.execute(sa.update(deliveries).where(deliveries.c.message_key == "k0").values(state="retry"))
    assert store_stats.accepted_and_complaints(db, **window) == (2, 0)
    assert store_stats.sent_per_minute(db, issue_id) == {NOW + timedelta(minutes=30): 2}
    assert store_stats.accepted_and_complaints(db, since=NOW - timedelta(days=30), until=NOW - timedelta(hours=1)) \
        == (0, 0)


ADDRESSES = [f"p{n}@example.org" for n in range(5)]
TAGS = ["weekly", "clinic", "news"]
operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from(ADDRESSES), st.lists(st.sampled_from(TAGS), max_size=3),
                  st.sampled_from([S.ACTIVE, S.PENDING])),
        st.tuples(st.just("suppress"), st.sampled_from(ADDRESSES), st.sampled_from(["unsubscribe", "bounce",
                                                                                   "complaint"])),
        st.tuples(st.just("confirm"), st.sampled_from(ADDRESSES)),
        st.tuples(st.just("tags"), st.sampled_from(ADDRESSES), st.lists(st.sampled_from(TAGS), max_size=3)),
        st.tuples(st.just("erase"), st.sampled_from(ADDRESSES)),
        st.tuples(st.just("import"), st.lists(st.sampled_from(ADDRESSES), min_size=1, max_size=3),
                  st.sampled_from(TAGS)),
    ),
    max_size=12,
)
_round = itertools.count()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    engine = open_store(f"sqlite:///{tmp_path_factory.mktemp('counts') / 'counts.db'}")
    yield engine
    engine.dispose()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=operations)
def test_any_sequence_of_changes_keeps_the_counts_true(shared: sa.Engine, steps: list[tuple]) -> None:  # type: ignore[type-arg]
    """Whatever readers do, in any order, every kept count equals a COUNT(*) after each step."""
    prefix = f"r{next(_round)}"
    for step in steps:
        verb, rest = step[0], step[1:]
        address = f"{prefix}.{rest[0]}" if isinstance(rest[0], str) else ""
        found = subscribers.find(shared, address) if address else None
        if verb == "add" and found is None:
            subscribers.add(shared, address, tags=rest[1], status=rest[2], now=NOW)
        elif verb == "suppress":
            subscribers.suppress(shared, address, rest[1], provider="test", now=NOW)
        elif verb == "confirm" and found is not None:
            subscribers.confirm(shared, found.id, sent_at=NOW, now=NOW)
        elif verb == "tags" and found is not None:
            subscribers.edit(shared, found.id, tags=rest[1], now=NOW)
        elif verb == "erase" and found is not None:
            subscribers.remove(shared, address, purge=True, now=NOW)
        elif verb == "import":
            text = "email,tags\n" + "".join(f"{prefix}.{who},{rest[1]}\n" for who in rest[0])
            subscribers.import_csv(shared, io.StringIO(text), now=NOW, origin="step.csv")
        assert_true(shared)


def test_an_import_over_readers_already_here_keeps_every_count_true(
    db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import in chunks over readers already here (one leaves with their tags, a pending one
    is confirmed, one gains a tag, one who bounced is kept out), with a repeated line and new
    readers, active and gone, leaves each kept count equal to a COUNT(*), its events' day too."""
    monkeypatch.setattr(subscriber_import, "PAGE", 3)
    subscribers.add(db, "ann@example.org", tags=["weekly"], now=NOW)
    subscribers.add(db, "bo@example.org", tags=["clinic"], status=S.PENDING, now=NOW)
    subscribers.add(db, "cy@example.org", now=NOW)
    subscribers.add(db, "di@example.org", tags=["weekly"], now=NOW)
    subscribers.suppress(db, "di@example.org", "bounce", provider="test", now=NOW)
    text = (
        "email,tags,status\n"
        "ann@example.org,clinic,unsubscribed\n"
        "new1@example.org,weekly,\n"
        "bo@example.org,weekly,\n"
        "cy@example.org,news,\n"
        "new1@example.org,clinic,\n"
        'new2@example.org,"weekly,clinic",unsubscribed\n'
        "di@example.org,weekly,\n"
        "new3@example.org,,\n"
    )
    evening = datetime(2026, 3, 2, 21, 30, tzinfo=ZoneInfo("America/New_York"))  # 02:30 UTC on the 3rd
    report = subscribers.import_csv(db, io.StringIO(text), now=evening, origin="more.csv", tags=["imported"])
    assert (report.imported, report.updated, report.kept, len(report.rejected)) == (3, 3, 1, 1)
    assert subscribers.counts(db)["unsubscribed"] == 2
    assert subscribers.tag_counts(db) == {"clinic": 1, "imported": 4, "news": 1, "weekly": 2}
    assert ("2026-03-03", "unsubscribe") in days_kept(db)
    assert_true(db)


def test_a_failed_import_leaves_the_readers_and_their_counts_as_they_were(
    db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that cannot be read half-way, after chunks were written, imports nothing and moves
    no count: the chunks' counts roll back with their readers."""
    monkeypatch.setattr(subscriber_import, "PAGE", 50)
    subscribers.add(db, "ann@example.org", tags=["weekly"], now=NOW)
    before = kept(db)
    good = "".join(f"ok{n}@example.org,weekly\n" for n in range(600))  # more than the reader's first block
    data = ("email,tags\nann@example.org,clinic\n" + good).encode() + b"bad\xff@example.org,weekly\n"
    with pytest.raises(SubscriberError, match="nothing was imported"):
        subscribers.import_csv(db, io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline=""),
                               now=NOW, origin="broken.csv")
    assert kept(db) == before
    assert_true(db)


def test_a_change_after_an_import_is_counted_by_the_triggers_again(db: sa.Engine) -> None:
    """The triggers stand aside only inside an import's transaction: a signup, a tag and an
    unsubscribe after it are counted as ever."""
    subscribers.import_csv(db, io.StringIO("email,tags\nann@example.org,weekly\n"), now=NOW, origin="a.csv")
    reader = subscribers.add(db, "bo@example.org", tags=["clinic"], now=NOW)
    subscribers.edit(db, reader.id, tags=["clinic", "weekly"], now=NOW)
    subscribers.suppress(db, "ann@example.org", "unsubscribe", provider="test", now=NOW)
    assert subscribers.counts(db)["active"] == 1
    assert subscribers.tag_counts(db) == {"clinic": 1, "weekly": 1}
    assert_true(db)


def test_an_import_writes_the_counts_once_a_chunk_not_once_a_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite the rows of `list_counts` and `event_days` are written once for each chunk of an
    import (a row per status, tag and day it moved), not once for every reader and tag."""
    monkeypatch.setattr(subscriber_import, "PAGE", 20)
    engine = open_store(f"sqlite:///{tmp_path / 'chunks.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE count_writes (n INTEGER)"))
        for table in ("list_counts", "event_days"):
            for verb in ("INSERT", "UPDATE"):
                conn.execute(sa.text(f"CREATE TRIGGER count_{table}_{verb} AFTER {verb} ON {table} "
                                     "BEGIN INSERT INTO count_writes VALUES (1); END"))
    text = "email,tags\n" + "".join(f"r{n}@example.org,\"weekly,clinic\"\n" for n in range(100))
    subscribers.import_csv(engine, io.StringIO(text), now=NOW, origin="readers.csv")
    with engine.connect() as conn:
        writes = conn.execute(sa.text("SELECT COUNT(*) FROM count_writes")).scalar_one()
    assert writes == 5 * 4  # five chunks: active, active weekly, active clinic, the day's joins
    assert_true(engine)
    engine.dispose()


def test_an_import_on_postgresql_appends_a_few_count_lines_a_chunk(
    db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL each chunk's readers, tags and events go in as one INSERT each, and the
    triggers append one line per status, tag and day a statement added, not one a row."""
    if db.dialect.name != "postgresql":
        pytest.skip("SQLite keeps no change lines")
    monkeypatch.setattr(subscriber_import, "PAGE", 20)
    text = "email,tags\n" + "".join(f"r{n}@example.org,\"weekly,clinic\"\n" for n in range(100))
    subscribers.import_csv(db, io.StringIO(text), now=NOW, origin="readers.csv")
    with db.connect() as conn:
        lines = conn.execute(sa.text("SELECT COUNT(*) FROM list_count_changes")).scalar_one()
        days = conn.execute(sa.text("SELECT COUNT(*) FROM event_day_changes")).scalar_one()
    assert (lines, days) == (5 * 3, 5)  # five chunks: active, active weekly, active clinic; the day's joins
    assert_true(db)
