"""The complaint rate over 30 days on a large ledger, as a send, Home and `publisher status` read it.

    .venv/bin/python benchmarks/complaint_rate.py [--copies 1000000] [--issues 20]

Writes --copies accepted copies spread over --issues issues, one every three days back
from now (so about half fall in the 30-day window), and 2,000 complaints over 60 days, into
a SQLite store in a temporary folder; then times `services.complaints.complaint_rate`
(SQLAlchemy) and `store.glance.complaint_figures` (the standard library, `publisher status`),
each the mean of five runs after one warm-up.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from publisher.services import complaints
from publisher.store import open_store
from publisher.store.glance import complaint_figures
from publisher.store.schema import deliveries, events, issues


def _timed(call: Callable[[], object]) -> tuple[float, object]:
    call()
    started = time.perf_counter()
    for _ in range(5):
        result = call()
    return (time.perf_counter() - started) / 5, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=1_000_000)
    parser.add_argument("--issues", type=int, default=20)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="complaint-rate-"))
    url = f"sqlite:///{folder / 'publisher.db'}"
    db = open_store(url)
    now = datetime.now(UTC)
    each = args.copies // args.issues
    with db.begin() as conn:
        for number in range(args.issues):
            sent = now - timedelta(days=number * 3)
            issue_id = conn.execute(sa.insert(issues).values(
                key=f"issue-{number}", kind="article", slug=f"issue-{number}", subject="x", html="", text="",
                status="done", created_at=sent,
            )).inserted_primary_key[0]
            conn.execute(sa.insert(deliveries), [
                {"issue_id": issue_id, "email": f"r{n}@example.org", "state": "sent", "attempts": 1,
                 "not_before": sent, "sent_at": sent}
                for n in range(each)
            ])
        conn.execute(sa.insert(events), [
            {"email": f"r{n}@example.org", "kind": "complaint", "provider": "postmark", "detail": "",
             "created_at": now - timedelta(days=n % 60)}
            for n in range(2000)
        ])
    seconds, rate = _timed(lambda: complaints.complaint_rate(db, now=now))
    assert isinstance(rate, complaints.ComplaintRate)
    print(f"{args.copies:,} copies: services.complaints.complaint_rate {seconds * 1000:.0f} ms "
          f"({rate.accepted:,} accepted in the window, {rate.complaints:,} complaints)")
    seconds, figures = _timed(lambda: complaint_figures(url, since=now - complaints.WINDOW, until=now))
    print(f"{args.copies:,} copies: store.glance.complaint_figures {seconds * 1000:.0f} ms {figures}")


if __name__ == "__main__":
    main()
