"""`delivery.rate` across processes: three workers together against one worker, same budget.

    .venv/bin/python benchmarks/rate_budget.py [--rate 50] [--readers 600] [--runs 2]

One publication on a throwaway PostgreSQL server (as in workers.py) with `delivery.rate`
set, smtp-sink taking the mail. Rounds
alternate: one `publisher worker --once`, then three at the same moment. Both must come
out at about `rate`: the budget is kept in the database, so three processes share it
rather than each taking a full one (which would triple the rate). Prints the achieved
aggregate rate of each (process start-up included, so a little under `rate`), its ratio
to `rate`, and three / one.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from sink import enqueue_issue, publication, smtp_sink
from workers import fresh_database, postgres_server, run_workers

from publisher.config import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--readers", type=int, default=600)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()

    one, three = [], []
    with postgres_server() as server, smtp_sink() as port, tempfile.TemporaryDirectory() as folder:
        publication(Path(folder), port, args.readers, store_url=fresh_database(server, "budget"))
        text = (Path(folder) / "config.toml").read_text()
        (Path(folder) / "config.toml").write_text(
            text.replace("batch_size = 50\n", f"batch_size = 50\nrate = {args.rate}\nburst = 10\n")
        )
        config = load_config(Path(folder) / "config.toml")
        for run in range(args.runs):
            for count, rates in ((1, one), (3, three)):
                _, queued = enqueue_issue(config, f"run{run}-{count}")
                rates.append(queued / run_workers(Path(folder) / "config.toml", count))
                print(f"run {run + 1}: {count} worker(s) {rates[-1]:7.1f} messages/s", flush=True)
    m_one, m_three = statistics.median(one), statistics.median(three)
    print(f"\ndelivery.rate = {args.rate:g}/s, {args.readers} readers per round, median of {args.runs} runs")
    print(f"1 worker:  {m_one:7.1f} messages/s  ({m_one / args.rate:.2f} of the rate)")
    print(f"3 workers: {m_three:7.1f} messages/s  ({m_three / args.rate:.2f} of the rate; "
          f"{'within' if m_three <= args.rate * 1.05 else 'OVER'} the budget)")
    print(f"3 workers / 1 worker: {m_three / m_one:.2f}x (one budget: about 1x, not 3x)")


if __name__ == "__main__":
    main()
