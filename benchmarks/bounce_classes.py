"""How well bounces are told apart: precision and recall per class on a labelled corpus.

    .venv/bin/python benchmarks/bounce_classes.py [--corpus tests/data/bounces/sisimai] [--wrong]

The corpus is Sisimai's public set of real bounce messages (tests/data/bounces/sisimai,
BSD 2-Clause, its LICENSE beside them), labelled in labels.csv from Sisimai's own test
expectations: "feedback" is a complaint, "vacation" and "delivered" are not bounces, a
reason Sisimai marks as a hard bounce (user unknown, host unknown, moved, not accepted)
is hard, and every other failure (a full mailbox, a block, a filter, a timeout) is soft.
A message publisher keeps for review counts as wrong for its class. `--wrong` lists the
misses.

A second corpus, flufl.bounce's own test messages (tests/data/bounces/flufl, Apache 2.0,
its LICENSE beside them; 115 bounces in the older non-standard shapes: Exim, qmail,
Microsoft, Yahoo, AOL, ...), is labelled only with the failed addresses and whether the
failure was temporary: for it the script prints how often the failed address is found,
and how often a temporary failure is read as soft.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import Counter
from pathlib import Path

from publisher.mail.bounce_parse import classify

CLASSES = ("hard", "soft", "complaint", "not_a_bounce")
_AS_CLASS = {"auto_reply": "not_a_bounce"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("tests/data/bounces/sisimai"))
    parser.add_argument("--flufl", type=Path, default=Path("tests/data/bounces/flufl"))
    parser.add_argument("--wrong", action="store_true", help="list each message classified wrong")
    args = parser.parse_args()
    with (args.corpus / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    confusion: Counter[tuple[str, str]] = Counter()
    started = time.perf_counter()
    for row in rows:
        verdict = classify((args.corpus / row["file"]).read_bytes())
        got = _AS_CLASS.get(verdict.kind, verdict.kind)
        confusion[(row["class"], got)] += 1
        if args.wrong and got != row["class"]:
            why = verdict.reason[:90]
            print(f"  {row['file']}: expected {row['class']} ({row['sisimai_reason']}), got {got}: {why}")
    elapsed = time.perf_counter() - started
    print(f"{len(rows)} messages, {elapsed * 1000 / len(rows):.2f} ms each")
    print(f"{'class':14} {'messages':>8} {'precision':>9} {'recall':>7}")
    for cls in CLASSES:
        truth = sum(n for (t, _), n in confusion.items() if t == cls)
        said = sum(n for (_, g), n in confusion.items() if g == cls)
        right = confusion[(cls, cls)]
        precision = right / said if said else float("nan")
        recall = right / truth if truth else float("nan")
        print(f"{cls:14} {truth:8} {precision:9.3f} {recall:7.3f}")
    review = sum(n for (_, g), n in confusion.items() if g == "unknown")
    correct = sum(n for (t, g), n in confusion.items() if t == g)
    print(f"kept for review: {review}; right overall: {correct}/{len(rows)} ({correct / len(rows):.1%})")
    if args.flufl.is_dir():
        _addresses(args.flufl, wrong=args.wrong)
    return 0


def _addresses(corpus: Path, *, wrong: bool) -> None:
    with (corpus / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    named = [r for r in rows if r["addresses"]]
    found = failures = temporary = soft = 0
    for row in named:
        verdict = classify((corpus / row["file"]).read_bytes())
        expected = set(row["addresses"].lower().split())
        hit = bool(expected & set(verdict.addresses))
        found += hit
        failures += verdict.kind in ("hard", "soft", "unknown")
        if row["expected"] == "soft":
            temporary += 1
            soft += verdict.kind == "soft"
        if wrong and not hit:
            print(f"  {row['file']}: expected {sorted(expected)}, got {verdict.kind} {list(verdict.addresses)}")
    print(f"flufl.bounce's corpus: {len(named)} failures naming an address; read as a failure: {failures} "
          f"({failures / len(named):.1%}); failed address found: {found} ({found / len(named):.1%}); "
          f"temporary read as soft: {soft}/{temporary}")


if __name__ == "__main__":
    sys.exit(main())
