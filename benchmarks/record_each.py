"""What recording each SMTP answer before the next message costs, against recording per batch.

    .venv/bin/python benchmarks/record_each.py [--readers 3000] [--runs 3]

Same publication, same smtp-sink, interleaved rounds: the shipped path (`answers_each`:
one message per provider call, each answer group-committed before that connection's
next message, so a kill -9 repeats at most one message per connection) against the
batch path (a call per batch of 20, recorded once per batch: a kill -9 can repeat up to
concurrency x batch messages). tests/test_exactly_once.py proves the bound; this prints
its price as a ratio of messages per second.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from sink import enqueue_issue, publication, send_issue, smtp_sink

from publisher.delivery.smtp import SmtpProvider


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readers", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    each, batch = [], []
    with smtp_sink() as port, tempfile.TemporaryDirectory() as folder:
        config = publication(Path(folder), port, args.readers)
        for run in range(args.runs):
            SmtpProvider.answers_each = True
            issue, queued = enqueue_issue(config, f"each{run}")
            each.append(send_issue(config, issue, queued))
            SmtpProvider.answers_each = False
            issue, queued = enqueue_issue(config, f"batch{run}")
            batch.append(send_issue(config, issue, queued))
            SmtpProvider.answers_each = True
            print(f"run {run + 1}: record each {each[-1]:7.0f}/s   record per batch {batch[-1]:7.0f}/s", flush=True)
    ratio = statistics.median(e / b for e, b in zip(each, batch, strict=True))
    print(f"\n{args.readers} readers, 4 connections into smtp-sink, median of {args.runs} interleaved runs")
    print(f"record each answer (<= 4 repeats per kill):   {statistics.median(each):7.0f} messages/s")
    print(f"record per batch   (<= 80 repeats per kill):  {statistics.median(batch):7.0f} messages/s")
    print(f"each / batch: {ratio:.2f}x (median of per-run ratios)")


if __name__ == "__main__":
    main()
