"""Every segment condition counted on a million readers, on PostgreSQL and on SQLite.

    .venv/bin/python benchmarks/segments.py [--readers 1000000] [--backend both|postgresql|sqlite]
        [--runs 3] [--plans]

The same readers go into a throwaway PostgreSQL server (tests/pg_server.py: initdb on
loopback, fsync off) and a SQLite file, each with the publication's schema (every
revision, so every index a migration builds): 90% active; a third tagged "clinicians", a
tenth "press"; sign-up dates spread over three years; sources web, cli, import:*.csv and
api:*; one in five with a time zone; topics chosen by two in five; 2% with a soft bounce
and 0.5% a hard one; the latest of two issues delivered to every active reader, a quarter
of whom opened it and a twentieth clicked. The list is loaded with its secondary indexes
dropped and built again afterwards (as quick as COPY gets), then VACUUM ANALYZE (what
autovacuum does to a list that has been live a while) or ANALYZE.

Each segment below, one per condition and a few trees, is counted by
`store.segments.count` (one COUNT query): the median of --runs after a warm-up, timed
twice in the same run, interleaved: "now" as `segments.count` runs it, and "before" as
it ran before revision 0030 (engagement read by joining each open to its copy in the
ledger; an "any" group an OR of EXISTS, one per condition). Then the plans of the
slowest and of the engagement conditions, now and before: EXPLAIN (ANALYZE, BUFFERS) on
PostgreSQL, EXPLAIN QUERY PLAN on SQLite; --plans prints every plan. Print `uptime`
beside the figures: the machine is shared.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from publisher.store import open_store, segment_rules, segments
from publisher.store.schema import deliveries, engagement, issues, subscribers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from pg_server import fresh_database, postgres_server

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _one(field: str, op: str, value: Any = None) -> dict[str, Any]:
    condition: dict[str, Any] = {"field": field, "op": op}
    if value is not None:
        condition["value"] = value
    return {"conditions": [condition]}


SEGMENTS: dict[str, dict[str, Any]] = {
    "everyone active": {"conditions": []},
    "tag has clinicians": _one("tag", "has", "clinicians"),
    "tag lacks press": _one("tag", "lacks", "press"),
    "topic chose sleep": _one("topic", "chose", "sleep"),
    "topic not_chose sleep": _one("topic", "not_chose", "sleep"),
    "topic gets diet": _one("topic", "gets", "diet"),
    "signed up before 2025-01-01": _one("signed_up", "before", "2025-01-01"),
    "signed up after 2026-11-01": _one("signed_up", "after", "2026-11-01"),
    "signed up within 30 days": _one("signed_up", "within_days", 30),
    "signed up over 365 days ago": _one("signed_up", "over_days", 365),
    "source is cli": _one("source", "is", "cli"),
    "source is_not web": _one("source", "is_not", "web"),
    "source starts_with import:": _one("source", "starts_with", "import:"),
    "zone is Europe/Berlin": _one("timezone", "is", "Europe/Berlin"),
    "zone is_not Europe/Berlin": _one("timezone", "is_not", "Europe/Berlin"),
    "zone unknown": _one("timezone", "unknown"),
    "soft-bounced": _one("bounces", "soft_bounced"),
    "never bounced": _one("bounces", "never_bounced"),
    "opened one of the last 3": _one("engagement", "opened", 3),
    "clicked in one of the last 3": _one("engagement", "clicked", 3),
    "opened or clicked one of the last 3": _one("engagement", "opened_or_clicked", 3),
    "opened none of the last 3": _one("engagement", "not_opened", 3),
    "source import:* and tag press": {"conditions": [
        {"field": "source", "op": "starts_with", "value": "import:"},
        {"field": "tag", "op": "has", "value": "press"},
    ]},
    "tag press or soft-bounced": {"match": "any", "conditions": [
        {"field": "tag", "op": "has", "value": "press"},
        {"field": "bounces", "op": "soft_bounced"},
    ]},
    "tag press or clinicians or opened": {"match": "any", "conditions": [
        {"field": "tag", "op": "has", "value": "press"},
        {"field": "tag", "op": "has", "value": "clinicians"},
        {"field": "engagement", "op": "opened", "value": 3},
    ]},
    "never bounced, zone Europe/Berlin, lacks press": {"conditions": [
        {"field": "bounces", "op": "never_bounced"},
        {"field": "timezone", "op": "is", "value": "Europe/Berlin"},
        {"field": "tag", "op": "lacks", "value": "press"},
    ]},
}


ENGAGED = ("opened one of the last 3", "opened none of the last 3", "tag press or clinicians or opened")
"""Whose plans, now and before 0030, are printed without --plans."""


def readers(count: int) -> Iterator[tuple[Any, ...]]:
    """The subscribers rows, the same on both databases."""
    pick = random.Random(23)
    zones = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney"]
    sources = ["web"] * 6 + ["cli", "import:old.csv", "import:list-2024.csv", "api:website"]
    topics = [None] * 6 + ["sleep", "sleep", "sleep,diet", "diet"]
    for n in range(1, count + 1):
        joined = NOW - timedelta(minutes=pick.randrange(3 * 365 * 24 * 60))
        yield (
            n, f"reader{n}@example.org", f"Reader {n}", "active" if pick.random() < 0.9 else "unsubscribed",
            pick.choice(zones) if pick.random() < 0.2 else None, pick.choice(sources), joined, joined,
            f"{n:032x}", False, "every", pick.choice(topics),
        )


def bounces(count: int) -> Iterator[tuple[Any, ...]]:
    pick = random.Random(29)
    for n in range(1, count + 1):
        roll = pick.random()
        if roll < 0.025:
            kind = "soft" if roll < 0.02 else "hard"
            yield (f"b{n}", NOW, "pipe", kind, "counted", f"reader{n}@example.org", n, "", "", 0, b"")


SUBSCRIBER_COLUMNS = (
    "id, email, name, status, timezone, source, created_at, updated_at, token_key, legacy_links, frequency, topics"
)
BOUNCE_COLUMNS = "key, received_at, source, kind, outcome, address, subscriber_id, status, detail, size, raw"
# What is derived from the readers, in SQL both databases speak.
DERIVED = (
    "INSERT INTO subscriber_tags (subscriber_id, tag) SELECT id, 'clinicians' FROM subscribers WHERE id % 3 = 0",
    "INSERT INTO subscriber_tags (subscriber_id, tag) SELECT id, 'press' FROM subscribers WHERE id % 10 = 0",
    "INSERT INTO issues (id, key, kind, slug, subject, html, text, status, created_at, enqueued_at) VALUES "
    "(1, 'a', 'article', 'first', 'First', '', '', 'sent', :early, :early), "
    "(2, 'b', 'article', 'second', 'Second', '', '', 'sent', :late, :late)",
    "INSERT INTO deliveries (issue_id, subscriber_id, email, name, state, attempts, not_before, provider_id, "
    "detail, message_key, uncertain) SELECT 2, id, email, '', 'sent', 1, :late, '', '', 'k' || id, :no "
    "FROM subscribers WHERE status = 'active'",
    "INSERT INTO engagement (delivery_id, subscriber_id, issue_id, kind, at, machine, reason) "
    "SELECT id, subscriber_id, 2, 'open', :late, :no, '' FROM deliveries WHERE subscriber_id % 4 = 0",
    "INSERT INTO engagement (delivery_id, subscriber_id, issue_id, kind, at, machine, reason) "
    "SELECT id, subscriber_id, 2, 'click', :late, :no, '' FROM deliveries WHERE subscriber_id % 20 = 0",
)
TABLES = ("subscribers", "subscriber_tags", "bounce_messages", "deliveries", "engagement")


def _sqlite_time(moment: datetime) -> str:
    """A time as SQLAlchemy keeps it in SQLite (UTC, no offset)."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _derive(conn: sa.Connection) -> None:
    early, late = NOW - timedelta(days=14), NOW - timedelta(days=7)
    values: dict[str, Any] = {"early": early, "late": late, "no": False}
    if conn.dialect.name == "sqlite":
        values.update(early=_sqlite_time(early), late=_sqlite_time(late))
    for statement in DERIVED:
        conn.execute(sa.text(statement), values)


def load_postgresql(url: str, count: int) -> None:
    engine = sa.create_engine(url)
    started = time.perf_counter()
    with engine.connect() as conn:
        kept = conn.exec_driver_sql(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i JOIN pg_class c ON c.relname = i.indexname "
            "JOIN pg_index x ON x.indexrelid = c.oid WHERE i.tablename = ANY(%(tables)s) "
            "AND NOT x.indisprimary AND NOT x.indisunique",
            {"tables": list(TABLES)},
        ).all()
        for name, _ in kept:
            conn.exec_driver_sql(f"DROP INDEX {name}")
        # The desk's counts are kept by triggers (revision 0027): not what is measured here.
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        raw: Any = conn.connection.driver_connection
        with raw.cursor() as cursor:
            with cursor.copy(f"COPY subscribers ({SUBSCRIBER_COLUMNS}) FROM STDIN") as copy:
                for row in readers(count):
                    copy.write_row(row)
            with cursor.copy(f"COPY bounce_messages ({BOUNCE_COLUMNS}) FROM STDIN") as copy:
                for row in bounces(count):
                    copy.write_row(row)
        _derive(conn)
        conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('subscribers', 'id'), %(n)s)", {"n": count})
        for _, definition in kept:
            conn.exec_driver_sql(definition)
        conn.commit()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()
    print(f"postgresql: {count:,} readers loaded in {time.perf_counter() - started:.1f} s", flush=True)


def load_sqlite(engine: sa.Engine, count: int) -> None:
    started = time.perf_counter()
    with engine.begin() as conn:
        # Indexes, and the triggers that keep the desk's counts (revision 0027), come back after.
        kept = conn.exec_driver_sql(
            "SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND sql IS NOT NULL "
            f"AND tbl_name IN ({', '.join(repr(t) for t in TABLES)})"
        ).all()
        for kind, name, _ in kept:
            conn.exec_driver_sql(f"DROP {kind.upper()} {name}")
        raw: Any = conn.connection.driver_connection
        marks = ", ".join("?" * 12)
        rows = ((*row[:6], _sqlite_time(row[6]), _sqlite_time(row[7]), *row[8:]) for row in readers(count))
        raw.executemany(f"INSERT INTO subscribers ({SUBSCRIBER_COLUMNS}) VALUES ({marks})", rows)
        raw.executemany(
            f"INSERT INTO bounce_messages ({BOUNCE_COLUMNS}) VALUES ({', '.join('?' * 11)})",
            ((*row[:1], _sqlite_time(row[1]), *row[2:]) for row in bounces(count)),
        )
        _derive(conn)
        for _, _, definition in kept:
            conn.exec_driver_sql(definition)
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
    print(f"sqlite: {count:,} readers loaded in {time.perf_counter() - started:.1f} s", flush=True)


def _ledger_engaged(op: str, value: str | int | None) -> sa.ColumnElement[bool]:
    """Before 0030: the opens of the last issues' copies, each joined to its ledger row."""
    recent = (
        sa.select(issues.c.id).where(issues.c.enqueued_at.is_not(None))
        .order_by(issues.c.enqueued_at.desc(), issues.c.id.desc()).limit(int(value or 1))
    )
    kinds = {"opened": ("open",), "not_opened": ("open",), "clicked": ("click",),
             "opened_or_clicked": ("open", "click")}[op]
    return sa.and_(
        deliveries.c.issue_id.in_(recent), engagement.c.delivery_id == deliveries.c.id,
        engagement.c.kind.in_(kinds), engagement.c.machine == sa.false(),
    )


def _compiled_before(item: segment_rules.Condition | segment_rules.Group, now: datetime, *, joined: bool) -> Any:
    """The compiler before 0030: the same, but engagement through the ledger and no UNION."""
    if isinstance(item, segment_rules.Group):
        inner = joined and item.match == "all"
        parts = [_compiled_before(child, now, joined=inner) for child in item.conditions]
        if not parts:
            return sa.true() if item.match == "all" else sa.false()
        return sa.and_(*parts) if item.match == "all" else sa.or_(*parts)
    if item.field == "engagement":
        if joined and item.op != "not_opened":
            return subscribers.c.id.in_(sa.select(deliveries.c.subscriber_id).where(
                deliveries.c.subscriber_id.is_not(None), _ledger_engaged(item.op, item.value)))
        did = sa.exists().where(deliveries.c.subscriber_id == subscribers.c.id, _ledger_engaged(item.op, item.value))
        return sa.not_(did) if item.op == "not_opened" else did
    members = segment_rules._members(item, now) if joined else None
    if members is not None:
        return subscribers.c.id.in_(members)
    return segment_rules._COMPILERS[item.field](item.op, item.value, now)


@contextlib.contextmanager
def shape_before() -> Iterator[None]:
    """`compile_rules` as it compiled before 0030 (`_compiled_before`)."""
    compiled = segment_rules._compile
    segment_rules._compile = _compiled_before
    try:
        yield
    finally:
        segment_rules._compile = compiled


def counted_as_before(engine: sa.Engine, rules: segment_rules.Group) -> int:
    """The count as `segments.count` ran it before 0030 (no parallel workers, no JIT)."""
    with shape_before():
        return segments.count(engine, rules, now=NOW)


def timed(engine: sa.Engine, rules: segment_rules.Group, runs: int) -> dict[str, tuple[float, int]]:
    """Median seconds and the count, for the query now and as it was, runs interleaved."""
    shapes: dict[str, Callable[[], int]] = {
        "now": lambda: segments.count(engine, rules, now=NOW),
        "before": lambda: counted_as_before(engine, rules),
    }
    times: dict[str, list[float]] = {name: [] for name in shapes}
    found: dict[str, int] = {}
    for run in range(runs + 1):
        for name, count in shapes.items():
            started = time.perf_counter()
            found[name] = count()
            if run:  # the first is a warm-up
                times[name].append(time.perf_counter() - started)
    if found["now"] != found["before"]:
        raise SystemExit(f"the two shapes disagree: {found}")
    return {name: (statistics.median(times[name]), found[name]) for name in shapes}


def plan(engine: sa.Engine, rules: segment_rules.Group) -> str:
    query = sa.select(sa.func.count()).select_from(subscribers).where(segment_rules.compile_rules(rules, now=NOW))
    compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL jit = off")  # as segments.count runs it
            conn.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")
            return "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}"))
        return f"{compiled}\n" + "\n".join(
            f"{row[0]:>3} {row[1]:>3} {row[3]}" for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")
        )


def measure(engine: sa.Engine, trees: dict[str, segment_rules.Group], runs: int, plans: bool) -> None:
    name = engine.dialect.name
    print(f"\n{name}, load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    print(f"{'segment':<48} {'readers':>9} {'now':>9} {'before':>9}")
    results = {}
    for label, tree in trees.items():
        results[label] = timed(engine, tree, runs)
        (fast, count), (slow, _) = results[label]["now"], results[label]["before"]
        print(f"{label:<48} {count:>9,} {fast * 1000:>7.0f}ms {slow * 1000:>7.0f}ms", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    slowest = max(results, key=lambda label: results[label]["now"][0])
    engaged = [label for label in trees if label in ENGAGED]
    shown = list(trees) if plans else [slowest, *(label for label in engaged if label != slowest)]
    for label in shown:
        print(f"\n-- {name}: {label}{' (the slowest)' if label == slowest else ''}\n{plan(engine, trees[label])}")
        if label == slowest or label in engaged:
            with shape_before():
                print(f"\n-- {name}: {label}, before 0030\n{plan(engine, trees[label])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--readers", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["both", "postgresql", "sqlite"], default="both")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--plans", action="store_true")
    args = parser.parse_args()
    trees = {label: segment_rules.parse(raw) for label, raw in SEGMENTS.items()}
    if args.backend in ("both", "postgresql"):
        with postgres_server() as server:
            url = fresh_database(server, "segments_bench")
            engine = open_store(url)
            load_postgresql(url, args.readers)
            measure(engine, trees, args.runs, args.plans)
            engine.dispose()
    if args.backend in ("both", "sqlite"):
        with tempfile.TemporaryDirectory(prefix="publisher-segments-") as folder:
            engine = open_store(f"sqlite:///{folder}/bench.db")
            load_sqlite(engine, args.readers)
            measure(engine, trees, args.runs, args.plans)
            engine.dispose()


if __name__ == "__main__":
    main()
