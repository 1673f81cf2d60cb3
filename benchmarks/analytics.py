"""Opens and clicks at scale: an issue's report over many requests, and the per-copy cost.

    .venv/bin/python benchmarks/analytics.py [--requests 1000000] [--per-person] [--copies 20000]

Writes --requests pixel and click rows (a fifth clicks over 20 links, 30% machine) for one
issue into a SQLite store in a temporary folder and times `store.engagement.totals` (the
desk's report and the API read it), the mean of three runs after one warm-up; with
--per-person each row names a copy of 100,000. Then times `--copies` copies of a 20-link
newsletter made with and without the analytics token (the token's HMAC and the splice).
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
from publisher.mail import tracking
from publisher.mail.mime import MessageTemplate, Recipient
from publisher.models import RenderedIssue
from publisher.store import engagement, ledger, open_store
from publisher.store.schema import deliveries
from publisher.store.schema import engagement as table

NOW = datetime(2026, 12, 1, tzinfo=UTC)
SECRET = "s" * 40


def report(folder: Path, requests: int, per_person: bool) -> None:
    db = open_store(f"sqlite:///{folder / 'bench.db'}")
    issue = ledger.create_issue(db, key="k", kind="article", slug="k", subject="s", html="", text="", tag=None,
                                status="done", now=NOW)
    engagement.record_links(db, issue, [f"https://example.org/{n}" for n in range(20)])
    copies = 100_000 if per_person else 0
    with db.begin() as conn:
        if copies:
            conn.execute(sa.insert(deliveries), [
                {"issue_id": issue, "subscriber_id": None, "email": "", "name": "", "state": "sent", "attempts": 1,
                 "not_before": NOW, "sent_at": NOW, "message_key": f"m{n}"} for n in range(copies)
            ])
    rng = random.Random(1)
    batch: list[dict[str, object]] = []
    for n in range(requests):
        click = rng.random() < 0.2
        machine = rng.random() < 0.3
        batch.append({
            "issue_id": issue, "kind": "click" if click else "open", "link_id": rng.randint(1, 20) if click else None,
            "delivery_id": rng.randint(1, copies) if copies else None, "at": NOW + timedelta(seconds=n),
            "machine": machine, "reason": "apple_privacy_protection" if machine else "",
        })
        if len(batch) == 100_000:
            with db.begin() as conn:
                conn.execute(sa.insert(table), batch)
            batch = []
    if batch:
        with db.begin() as conn:
            conn.execute(sa.insert(table), batch)
    engagement.totals(db, issue)
    start = time.perf_counter()
    for _ in range(3):
        totals = engagement.totals(db, issue)
    took = (time.perf_counter() - start) / 3
    print(f"totals over {requests:,} requests ({'per person' if per_person else 'aggregate'}): {took * 1000:.0f} ms; "
          f"opens {totals.opens:,}, clicks {totals.clicks:,}, machine share {totals.machine_share:.1%}")
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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        report(Path(folder), args.requests, args.per_person)
        splice(Path(folder), args.copies)


if __name__ == "__main__":
    main()
