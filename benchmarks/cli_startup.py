"""How fast the command line answers: `publisher --version` and `publisher status`.

    .venv/bin/python benchmarks/cli_startup.py [--runs 15]

Interleaved rounds of four processes started afresh: `python -c pass` (the interpreter
alone), `python -c "import sqlalchemy"` (what reading the store costs at the least),
`publisher --version` and `publisher status` on a publication whose database holds
twenty sent issues of 200 readers each (so status prints its whole table).
Prints the median wall time of each and the ratios to their neighbours. Goal: both
commands under 0.3 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """[publication]
title = "Startup"
url = "https://example.org/"
postal_address = "1 Test Street"

[newsletter]
from = "Startup <news@example.org>"
"""


SEED = """
from datetime import UTC, datetime
import sqlalchemy as sa
from publisher.store import ledger, open_store
from publisher.store.schema import deliveries, subscribers
db = open_store("sqlite:///publisher.db")
now = datetime.now(UTC)
with db.begin() as conn:
    conn.execute(sa.insert(subscribers), [
        {"email": f"r{n}@example.org", "status": "active", "created_at": now, "updated_at": now}
        for n in range(200)])
for n in range(20):
    issue = ledger.create_issue(db, key=f"issue-{n}", kind="article", slug=f"article-{n}",
        subject=f"Article {n}", html="<p>x</p>", text="x", tag=None, status="sending", now=now)
    ledger.enqueue(db, issue, now=now)
with db.begin() as conn:
    conn.execute(sa.update(deliveries).values(state="sent", sent_at=now))
"""


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    python = sys.executable
    publisher = str(Path(python).with_name("publisher"))
    env = {**os.environ, "PUBLISHER_SECRET": "s" * 32}
    commands = {
        "python -c pass": [python, "-c", "pass"],
        "import sqlalchemy": [python, "-c", "import sqlalchemy"],
        "publisher --version": [publisher, "--version"],
        "publisher status": [publisher, "status"],
    }
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "config.toml").write_text(CONFIG, encoding="utf-8")
        subprocess.run([publisher, "status"], cwd=root, env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run([python, "-c", SEED], cwd=root, env=env, check=True)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, command in commands.items():
                times[name].append(timed(command, root, env))
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"median wall time of {args.runs} interleaved runs")
    for name, value in medians.items():
        print(f"  {name:32s} {value * 1000:7.0f} ms")
    base = medians["python -c pass"]
    print(f"publisher --version / python -c pass:              {medians['publisher --version'] / base:5.1f}x  "
          f"(goal < 0.3 s: {'met' if medians['publisher --version'] < 0.3 else 'MISSED'})")
    print(f"publisher status / python -c 'import sqlalchemy': "
          f"{medians['publisher status'] / medians['import sqlalchemy']:5.1f}x  "
          f"(goal < 0.3 s: {'met' if medians['publisher status'] < 0.3 else 'MISSED'})")


if __name__ == "__main__":
    main()
