"""Opens and clicks at scale: an issue's report over many requests, on SQLite and PostgreSQL, and the per-copy cost.

    .venv/bin/python benchmarks/analytics.py [--requests 1000000] [--per-person] [--copies 20000]
        [--store sqlite|postgresql|both] [--records 2000]

Writes --requests pixel and click rows (a fifth clicks over 20 links, 30% machine) for one
issue of 100,000 copies, and each copy's once-only rows (`engagement_seen`: the copies that
opened, clicked, and clicked each link), into a SQLite store in a temporary folder and into
a throwaway PostgreSQL server (tests/pg_server.py: initdb on loopback, fsync off), then
times `store.engagement.totals` (the desk's report and the API read it): the median of
five runs after one warm-up, and apart the part that counts copies once. With --per-person
each request row names its copy too.
Then times --records single requests kept through `store.engagement.record` with the
copy counted once (as the app does now) against without (the totals only), interleaved
in blocks of 100, medians per request. Last, --copies copies of a 20-link newsletter made
with and without the analytics token (the token's HMAC and the splice).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from publisher.config import parse_config
from publisher.mail import tracking
from publisher.mail.mime import MessageTemplate, Recipient
from publisher.models import RenderedIssue
from publisher.store import engagement, ledger, open_store
from publisher.store.schema import deliveries, engagement_seen
from publisher.store.schema import engagement as table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from pg_server import fresh_database, postgres_server

NOW = datetime(2026, 12, 1, tzinfo=UTC)
SECRET = "s" * 40
COPIES = 100_000


def fill(db: sa.Engine, requests: int, per_person: bool) -> int:
    issue = ledger.create_issue(db, key="k", kind="article", slug="k", subject="s", html="", text="", tag=None,
                                status="done", now=NOW)
    engagement.record_links(db, issue, [f"https://example.org/{n}" for n in range(20)])
    for start in range(0, COPIES, 50_000):
        with db.begin() as conn:
            conn.execute(sa.insert(deliveries), [
                {"issue_id": issue, "subscriber_id": None, "email": "", "name": "", "state": "sent", "attempts": 1,
                 "not_before": NOW, "sent_at": NOW, "message_key": f"m{n}"}
                for n in range(start, min(COPIES, start + 50_000))
            ])
    with db.connect() as conn:
        first = int(conn.execute(sa.select(sa.func.min(deliveries.c.id)).where(deliveries.c.issue_id == issue))
                    .scalar_one())
    rng = random.Random(1)
    batch: list[dict[str, object]] = []
    seen: set[tuple[str, int, int]] = set()
    for n in range(requests):
        click = rng.random() < 0.2
        machine = rng.random() < 0.3
        copy = rng.randrange(COPIES)
        link = rng.randint(1, 20) if click else None
        batch.append({
            "issue_id": issue, "kind": "click" if click else "open", "link_id": link,
            "delivery_id": first + copy if per_person else None, "at": NOW + timedelta(seconds=n),
            "machine": machine, "reason": "apple_privacy_protection" if machine else "",
        })
        if not machine:
            seen.update({("click", 0, copy), ("click", link, copy)} if link is not None else {("open", 0, copy)})
        if len(batch) == 100_000:
            with db.begin() as conn:
                conn.execute(sa.insert(table), batch)
            batch = []
    if batch:
        with db.begin() as conn:
            conn.execute(sa.insert(table), batch)
    rows = [{"issue_id": issue, "kind": kind, "link_id": link, "digest": engagement.digest(issue, f"m{copy}"),
             "variant": None} for kind, link, copy in sorted(seen)]
    for start in range(0, len(rows), 100_000):
        with db.begin() as conn:
            conn.execute(sa.insert(engagement_seen), rows[start:start + 100_000])
    if db.dialect.name == "postgresql":
        with db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    return issue


def report(db: sa.Engine, label: str, requests: int, per_person: bool) -> None:
    issue = fill(db, requests, per_person)
    engagement.totals(db, issue)
    took = []
    for _ in range(5):
        start = time.perf_counter()
        totals = engagement.totals(db, issue)
        took.append(time.perf_counter() - start)
    unique = []
    for _ in range(5):
        start = time.perf_counter()
        with db.connect() as conn:
            conn.execute(
                sa.select(engagement_seen.c.kind, engagement_seen.c.link_id, sa.func.count())
                .where(engagement_seen.c.issue_id == issue)
                .group_by(engagement_seen.c.kind, engagement_seen.c.link_id)
            ).all()
        unique.append(time.perf_counter() - start)
    print(f"{label}: totals over {requests:,} requests ({'per person' if per_person else 'aggregate'}): "
          f"median {statistics.median(took) * 1000:.0f} ms (runs {', '.join(f'{t * 1000:.0f}' for t in took)}), "
          f"of which the once-per-copy counts {statistics.median(unique) * 1000:.0f} ms; "
          f"opens {totals.opens:,} by {totals.unique_opens:,} copies, clicks {totals.clicks:,} by "
          f"{totals.unique_clicks:,}, machine share {totals.machine_share:.1%}")
    records(db, label, issue, 2000)


def records(db: sa.Engine, label: str, issue: int, count: int) -> None:
    """Single requests kept: counted once per copy, against the totals only, interleaved."""
    rng = random.Random(2)
    times: dict[bool, list[float]] = {True: [], False: []}
    for block in range(count // 100):
        once = block % 2 == 0
        start = time.perf_counter()
        for _ in range(100):
            copy = rng.randrange(COPIES)
            click = rng.random() < 0.2
            engagement.record(
                db, issue_id=issue, kind="click" if click else "open", at=NOW, link_id=rng.randint(1, 20) if click
                else None, copy=engagement.digest(issue, f"m{copy}") if once else "",
            )
        times[once].append((time.perf_counter() - start) / 100)
    with_once, without = statistics.median(times[True]), statistics.median(times[False])
    print(f"{label}: one request kept, counted once per copy {with_once * 1000:.2f} ms, totals only "
          f"{without * 1000:.2f} ms (ratio {with_once / without:.2f}; medians of {count // 200} blocks of 100 each)")


@contextmanager
def stores(which: str, folder: Path) -> Iterator[tuple[str, sa.Engine]]:
    if which in ("sqlite", "both"):
        db = open_store(f"sqlite:///{folder / 'bench.db'}")
        try:
            yield "SQLite", db
        finally:
            db.dispose()
    if which in ("postgresql", "both"):
        with postgres_server() as server:
            db = open_store(fresh_database(server, "analytics_bench"))
            try:
                yield "PostgreSQL", db
            finally:
                db.dispose()


def splice(folder: Path, copies: int) -> None:
    links = "".join(f'<p><a href="https://example.org/a{n}">link {n}</a></p>' for n in range(20))
    html = f"<html><body>{links}<p>{'text ' * 2000}</p></body></html>"
    for on in (False, True):
        config = parse_config(
            f'[publication]\ntitle = "B"\nurl = "https://example.org/"\npostal_address = "1 St"\n'
            f'[newsletter]\nfrom = "Ed <ed@example.org>"\n'
            f"[analytics]\nenabled = {str(on).lower()}\nper_person = true\n",
            root=folder, env={"PUBLISHER_SECRET": SECRET},
        )
        numbers = {f"https://example.org/a{n}": n + 1 for n in range(20)}
        body = html
        if on:
            body = tracking.rewrite(html, site_url=config.site_url, secret=SECRET, issue_id=1, numbers=numbers)
        template = MessageTemplate.from_rendered(config, RenderedIssue("k", "S", body, "text"))
        start = time.perf_counter()
        for n in range(copies):
            token = tracking.copy_token(config, SECRET, 1, f"m{n}", NOW)
            reader = Recipient(n, f"r{n}@example.org", "R", "https://example.org/unsubscribe/x", f"<m{n}@example.org>",
                               copy_token=token)
            template.message_bytes(reader, NOW)
        each = (time.perf_counter() - start) / copies * 1000
        print(f"one copy, analytics {'on' if on else 'off'}: {each:.4f} ms (20 links)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--per-person", action="store_true")
    parser.add_argument("--copies", type=int, default=20_000)
    parser.add_argument("--store", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for which in (["sqlite", "postgresql"] if args.store == "both" else [args.store]):
            with stores(which, Path(folder)) as (label, db):
                report(db, label, args.requests, args.per_person)
        splice(Path(folder), args.copies)


if __name__ == "__main__":
    main()
