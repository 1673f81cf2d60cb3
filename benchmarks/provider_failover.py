"""A provider pool's failover during a send: Postmark failing at message 1,000 of 5,000.

    .venv/bin/python benchmarks/provider_failover.py [--readers 5000] [--fail-at 1000]
        [--mode refused|timeout|500|429|401] [--second smtp|sendgrid]

A Postmark-shaped API and the second provider (a real SMTP server, aiosmtpd, or a
SendGrid-shaped API) run on loopback; `[delivery] provider = "pool"` lists Postmark
first. Once Postmark has accepted --fail-at messages it fails as --mode. Printed: the
send's total time and messages per second, the time lost at the switch (from the last
message Postmark took to the first the second provider took, by the ledger's sent_at,
less the usual gap between two recorded batches), the ledger's counts, and the copies
each address got at the servers (missed, doubled), and the rows marked uncertain.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from fakes import SMTPServer  # noqa: E402
from test_provider_pool import (  # noqa: E402
    POSTMARK_THEN_SENDGRID,
    POSTMARK_THEN_SMTP,
    ProviderServer,
    address,
    pool_config,
    queue,
)

from publisher.delivery.base import make_provider  # noqa: E402
from publisher.delivery.engine import deliver  # noqa: E402
from publisher.store import open_store  # noqa: E402
from publisher.store.schema import deliveries  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=5000)
    parser.add_argument("--fail-at", type=int, default=1000)
    parser.add_argument("--mode", default="refused", choices=["refused", "timeout", "500", "429", "401"])
    parser.add_argument("--second", default="smtp", choices=["smtp", "sendgrid"])
    args = parser.parse_args()
    postmark = ProviderServer("postmark").up()
    sendgrid = ProviderServer("sendgrid").up()
    smtp = SMTPServer().start()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        members = POSTMARK_THEN_SMTP if args.second == "smtp" else POSTMARK_THEN_SENDGRID
        config = pool_config(root, members, smtp_port=smtp.port, postmark=postmark.url, sendgrid=sendgrid.url)
        db = open_store(config.store_url)
        readers = [address(n) for n in range(args.readers)]
        queue(db, readers)
        postmark.fail(args.mode, after=args.fail_at)
        provider = make_provider(config)
        started = time.monotonic()
        report = deliver(config, db, provider, stop=threading.Event(), linger=120)
        elapsed = time.monotonic() - started
        provider.close()
        with db.connect() as conn:
            rows = conn.execute(
                sa.select(deliveries.c.state, deliveries.c.sent_at, deliveries.c.detail, deliveries.c.uncertain)
            ).all()
        db.dispose()
    states = Counter(row.state for row in rows)
    first = [r.sent_at for r in rows if r.detail == "sent through Postmark"]
    second = [r.sent_at for r in rows if r.sent_at is not None and r.detail != "sent through Postmark"]
    stamps = sorted({r.sent_at for r in rows if r.sent_at is not None})
    usual = statistics.median((b - a).total_seconds() for a, b in itertools.pairwise(stamps))
    switch = (min(second) - max(first)).total_seconds() if first and second else float("nan")
    other = Counter({a: smtp.count(a) for a in readers}) if args.second == "smtp" else sendgrid.copies
    copies = postmark.copies + other
    print(f"{args.readers} readers, Postmark failing ({args.mode}) from message {args.fail_at}, then {args.second}")
    print(f"  total {elapsed:.2f} s, {report.sent / elapsed:.0f} messages/s")
    print(f"  switch: {switch:.3f} s from Postmark's last message to {args.second}'s first "
          f"(usual gap between recorded batches {usual:.3f} s): {max(0.0, switch - usual):.3f} s lost")
    print(f"  ledger: {dict(states)}; uncertain rows {sum(1 for r in rows if r.uncertain)}")
    print(f"  copies at the servers: Postmark {postmark.accepted}, {args.second} {sum(other.values())}; "
          f"missed {sum(1 for a in readers if copies[a] == 0)}, doubled {sum(1 for a in readers if copies[a] > 1)}")
    postmark.down()
    sendgrid.down()
    smtp.stop()


if __name__ == "__main__":
    main()
