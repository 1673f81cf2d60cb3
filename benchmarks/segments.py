"""A segment's count on a million readers, on PostgreSQL: times and query plans.

    .venv/bin/python benchmarks/segments.py [--readers 1000000] [--plans]

A throwaway PostgreSQL server (tests/pg_server.py: initdb on loopback, fsync off) gets
the publication's schema (every revision, 0022's indexes included), then --readers
readers by COPY: 90% active; a third tagged "clinicians", a tenth "press"; sign-up dates
spread over three years; sources web, cli, import:old.csv and api:*; one in five with a
time zone; 2% with a soft bounce, 0.5% with a hard one. After VACUUM ANALYZE, each segment
below is counted by `store.segments.count` (one COUNT query), the median of five runs
after a warm-up, first with 0022's indexes and then without them (dropped, timed, and
built again CONCURRENTLY, as a live list would have them built; 0025's index on
(status, id) stays). --plans prints
EXPLAIN (ANALYZE, BUFFERS) of each count with the indexes.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from publisher.store import open_store, segment_rules, segments
from publisher.store.schema import subscribers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from pg_server import fresh_database, postgres_server

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
SEGMENTS: dict[str, dict[str, Any]] = {
    "everyone active": {"conditions": []},
    "tag has clinicians": {"conditions": [{"field": "tag", "op": "has", "value": "clinicians"}]},
    "signed up within 30 days": {"conditions": [{"field": "signed_up", "op": "within_days", "value": 30}]},
    "source import:* and tag press": {"conditions": [
        {"field": "source", "op": "starts_with", "value": "import:"},
        {"field": "tag", "op": "has", "value": "press"},
    ]},
    "tag press or soft-bounced": {"match": "any", "conditions": [
        {"field": "tag", "op": "has", "value": "press"},
        {"field": "bounces", "op": "soft_bounced"},
    ]},
    "never bounced, zone Europe/Berlin, tag lacks press": {"conditions": [
        {"field": "bounces", "op": "never_bounced"},
        {"field": "timezone", "op": "is", "value": "Europe/Berlin"},
        {"field": "tag", "op": "lacks", "value": "press"},
    ]},
}
INDEXES = (
    ("ix_subscriber_tags_tag_subscriber", "subscriber_tags", "(tag, subscriber_id)"),
    ("ix_subscribers_status_created_at", "subscribers", "(status, created_at)"),
    ("ix_subscribers_status_source", "subscribers", "(status, source)"),
)


def load(url: str, readers: int) -> None:
    """COPY the readers, their tags and bounce mail in; ANALYZE."""
    pick = random.Random(23)
    engine = sa.create_engine(url)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        started = time.perf_counter()
        zones = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney"]
        sources = ["web"] * 6 + ["cli", "import:old.csv", "import:list-2024.csv", "api:website"]
        with cursor.copy(
            "COPY subscribers (id, email, name, status, timezone, source, created_at, updated_at, token_key, "
            "legacy_links, frequency) FROM STDIN"
        ) as copy:
            for n in range(1, readers + 1):
                joined = NOW - timedelta(minutes=pick.randrange(3 * 365 * 24 * 60))
                copy.write_row((
                    n, f"reader{n}@example.org", f"Reader {n}", "active" if pick.random() < 0.9 else "unsubscribed",
                    pick.choice(zones) if pick.random() < 0.2 else None, pick.choice(sources), joined, joined,
                    f"{n:032x}", False, "every",
                ))
        with cursor.copy("COPY subscriber_tags (subscriber_id, tag) FROM STDIN") as copy:
            for n in range(1, readers + 1):
                if n % 3 == 0:
                    copy.write_row((n, "clinicians"))
                if n % 10 == 0:
                    copy.write_row((n, "press"))
        with cursor.copy(
            "COPY bounce_messages (key, received_at, source, kind, outcome, address, subscriber_id, status, detail, "
            "size, raw) FROM STDIN"
        ) as copy:
            for n in range(1, readers + 1):
                roll = pick.random()
                if roll < 0.025:
                    kind = "soft" if roll < 0.02 else "hard"
                    copy.write_row((f"b{n}", NOW, "pipe", kind, "counted", f"reader{n}@example.org", n, "", "", 0, b""))
        cursor.execute("SELECT setval(pg_get_serial_sequence('subscribers', 'id'), %s)", (readers,))
        raw.commit()
        print(f"loaded {readers:,} readers by COPY in {time.perf_counter() - started:.1f} s")
        raw.commit()
        raw.driver_connection.autocommit = True  # type: ignore[union-attr]  # VACUUM: outside a transaction
        # What autovacuum does to a list that has been live a while: the visibility map
        # lets counts read the indexes alone.
        cursor.execute("VACUUM ANALYZE")
    finally:
        raw.close()
        engine.dispose()


def timed(engine: sa.Engine, rules: segment_rules.Group) -> tuple[float, int]:
    segments.count(engine, rules, now=NOW)
    runs, found = [], 0
    for _ in range(5):
        started = time.perf_counter()
        found = segments.count(engine, rules, now=NOW)
        runs.append(time.perf_counter() - started)
    return statistics.median(runs), found


def plan(engine: sa.Engine, rules: segment_rules.Group) -> str:
    query = sa.select(sa.func.count()).select_from(subscribers).where(segment_rules.compile_rules(rules, now=NOW))
    compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        conn.exec_driver_sql("SET LOCAL jit = off")  # as segments.count runs it
        return "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=1_000_000)
    parser.add_argument("--plans", action="store_true")
    args = parser.parse_args()
    trees = {name: segment_rules.parse(raw) for name, raw in SEGMENTS.items()}
    with postgres_server() as server:
        url = fresh_database(server, "segments_bench")
        engine = open_store(url)
        load(url, args.readers)
        with_indexes = {name: timed(engine, tree) for name, tree in trees.items()}
        plans = {name: plan(engine, tree) for name, tree in trees.items()} if args.plans else {}
        autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        with autocommit.connect() as conn:
            for name, _, _ in INDEXES:
                conn.exec_driver_sql(f"DROP INDEX {name}")
        without = {name: timed(engine, tree) for name, tree in trees.items()}
        started = time.perf_counter()
        with autocommit.connect() as conn:
            for name, table, columns in INDEXES:
                conn.exec_driver_sql(f"CREATE INDEX CONCURRENTLY {name} ON {table} {columns}")
            conn.exec_driver_sql("VACUUM ANALYZE")
        built = time.perf_counter() - started
        print(f"\n0022's three indexes built CONCURRENTLY in {built:.1f} s\n")
        print(f"{'segment':<52} {'readers':>9} {'with':>9} {'without':>9}")
        for name in trees:
            (fast, count), (slow, _) = with_indexes[name], without[name]
            print(f"{name:<52} {count:>9,} {fast * 1000:>7.0f}ms {slow * 1000:>7.0f}ms")
        for name, text in plans.items():
            print(f"\n-- {name}\n{text}")
        engine.dispose()


if __name__ == "__main__":
    main()
