"""A subject test on a simulated list: the sample drawn, clicks at known rates, the decision.

    .venv/bin/python benchmarks/subject_tests.py [--readers 10000] [--rates 0.03,0.06] [--sample 20] [--seed 7]

Writes --readers active subscribers into a SQLite store in a temporary folder, an issue
with one subject per rate, its rows held and its sample queued (`store.subject_tests`),
marks the sample sent, lets each copy of subject v be clicked with probability rates[v]
(a seeded draw; counted in aggregate, once per copy, as the app counts them without
per-person analytics), then decides as the daemon does (`services.subject_tests.settle`).
Prints each subject's rate with its 95% interval, the winner, its margin and p-value,
and how long the draw, the decision and the release took.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from publisher.config import parse_config
from publisher.services import subject_tests as service
from publisher.store import ledger, open_store
from publisher.store import subject_tests as store
from publisher.store.engagement import digest
from publisher.store.engine import begin_write
from publisher.store.schema import deliveries, engagement, engagement_seen, subscribers

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=10_000)
    parser.add_argument("--rates", default="0.03,0.06", help="click rate of each subject, the first kept on a tie")
    parser.add_argument("--sample", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    config = parse_config(
        '[publication]\ntitle = "B"\nurl = "https://example.org/"\n[newsletter]\nfrom = "a@example.org"\n',
        root=Path("."), env={},
    )
    with tempfile.TemporaryDirectory() as folder:
        db = open_store(f"sqlite:///{Path(folder) / 'bench.db'}")
        with db.begin() as conn:
            for start in range(0, args.readers, 50_000):
                conn.execute(sa.insert(subscribers), [
                    {"email": f"r{n}@example.org", "name": "", "status": "active", "source": "bench",
                     "created_at": NOW, "updated_at": NOW}
                    for n in range(start, min(args.readers, start + 50_000))
                ])
        issue = ledger.create_issue(db, key="bench", kind="article", slug="bench", subject="S0", html="<p>x</p>",
                                    text="x", tag=None, status="draft", now=NOW)
        with begin_write(db) as conn:
            store.write(conn, issue, subjects=tuple(f"Subject {chr(65 + i)}" for i in range(len(rates))),
                        sample_percent=args.sample, metric="clicks", seed=12345,
                        decide_at=NOW + timedelta(hours=4), now=NOW)
        ledger.enqueue(db, issue, now=NOW, held=True)
        started = time.perf_counter()
        sample = store.assign_sample(db, issue, now=NOW)
        drawn = time.perf_counter() - started
        with db.begin() as conn:
            conn.execute(sa.update(deliveries).where(deliveries.c.issue_id == issue, deliveries.c.state == "queued")
                         .values(state="sent", sent_at=NOW))
        draw = random.Random(args.seed)
        with db.connect() as conn:
            keys = dict(conn.execute(sa.select(deliveries.c.id, deliveries.c.message_key)
                                     .where(deliveries.c.issue_id == issue)).all())
        clicked = [(d, v) for d, v in sorted(store.sent_copies(db, issue).items()) if draw.random() < rates[v]]
        # As the app counts them with per-person analytics off: each request a row naming no
        # one, each copy once (by the digest of its key) under the subject it carried.
        clicks = [{"delivery_id": None, "issue_id": issue, "kind": "click", "link_id": 1, "at": NOW,
                   "machine": False, "reason": ""} for _ in clicked]
        seen = [{"issue_id": issue, "kind": "click", "link_id": link, "digest": digest(issue, keys[d]),
                 "variant": v} for d, v in clicked for link in (0, 1)]
        if clicks:
            with db.begin() as conn:
                conn.execute(sa.insert(engagement), clicks)
                conn.execute(sa.insert(engagement_seen), seen)
        started = time.perf_counter()
        steps = service.settle(config, db, now=NOW + timedelta(hours=4))
        settled = time.perf_counter() - started
        found = service.report(db, issue)
        assert found is not None
        print(f"{args.readers:,} readers, sample {args.sample}% ({sum(sample.values()):,}), true click rates {rates}")
        for line in service.report_lines(found)[1:]:
            print(line)
        first = found.figures[0]
        if found.winner:
            best = found.figures[found.winner]
            print(f"winner {chr(65 + best.variant)} by {(best.rate - first.rate) * 100:.2f} points")
        released = next((s.copies for s in steps if s.step == "released"), 0)
        print(f"sample drawn in {drawn * 1000:.0f} ms; decided and {released:,} released in {settled * 1000:.0f} ms")
        db.dispose()


if __name__ == "__main__":
    main()
