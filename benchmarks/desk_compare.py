"""Before against after: the desk's pages under `wrk` from two source trees, interleaved.

    .venv/bin/python benchmarks/desk_compare.py setup FOLDER [--readers 1000000] [--store-url URL]
    .venv/bin/python benchmarks/desk_compare.py compare BEFORE_TREE BEFORE_FOLDER AFTER_TREE AFTER_FOLDER
        [--rounds 3] [--seconds 8] [--clients 32] [--pages home,first,k1000,search,issue]

`setup` writes a publication into FOLDER (config.toml, and SQLite's file unless
--store-url names a PostgreSQL database) with --readers readers written by plain
INSERTs, an issue sent to each of them, and one owner, as `million.py` does; it keeps
it, so that runs can be repeated on the same list. A tree checked out before a schema
change cannot open a database migrated after it: copy the folder (or the PostgreSQL
database, CREATE DATABASE ... TEMPLATE ...) for each side before either side opens it,
and VACUUM ANALYZE a copied PostgreSQL database first (a copy starts without the
statistics and with the dead rows of its template).

`compare` starts the app of `publisher serve` under uvicorn once from each tree (the
tree's folder first on PYTHONPATH, with this virtualenv), signs in to each, and asks
each page of each side with `wrk -c CLIENTS` for --seconds, before and after in turn,
the order swapped every round: on a machine others load too, the two sides see the
same load. Printed for each run: median and p99 latency, requests a second, the
server's own CPU per request (from /proc: what the load moves least) and the load
average; then the median of each over the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import million
from served import wait_up
from sqlalchemy import select

from publisher.store import counts_kept, open_store
from publisher.store.issues import fold_issue_counts
from publisher.store.schema import subscribers

PAGES = {
    "home": "/desk/",
    "first": "/desk/subscribers",
    "k1000": "/desk/subscribers?after={after}",
    "search": "/desk/subscribers?q=der4242",
    "issue": "/desk/issues/{issue}",
    "healthz": "/healthz",
}


def setup(folder: Path, readers: int, url: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "content").mkdir(exist_ok=True)
    url = url or f"sqlite:///{folder / 'publisher.db'}"
    (folder / "config.toml").write_text(million.CONFIG + f'\n[store]\nurl = "{url}"\n', encoding="utf-8")
    open_store(url).dispose()
    print(f"{readers:,} readers written in {million.write_direct(url, readers):.1f} s", flush=True)
    issue = million.add_sent_issue(url)
    engine = open_store(url)
    counts_kept.fold(engine)
    fold_issue_counts(engine)
    with engine.connect() as conn:
        after = conn.execute(
            select(subscribers.c.id).order_by(subscribers.c.id).offset(999 * million.DESK_PAGE - 1).limit(1)
        ).scalar()
    engine.dispose()
    (folder / "pages.json").write_text(json.dumps({"issue": issue, "after": after or 0}), encoding="utf-8")


def start(tree: Path, folder: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    port = million._port()
    server = subprocess.Popen(
        [sys.executable, "-c", million.APP_SERVER, str(folder / "config.toml"), str(port), million.SECRET],
        env={**os.environ, "PYTHONPATH": str(tree)},
        cwd=tree,
    )
    base = f"http://127.0.0.1:{port}"
    wait_up(base, seconds=180)
    cookies = million.sign_in(base)
    return server, base, "; ".join(f"{name}={value}" for name, value in cookies.items())


def compare(args: argparse.Namespace) -> None:
    known = json.loads((Path(args.before_folder) / "pages.json").read_text(encoding="utf-8"))
    names = args.pages.split(",")
    sides = {}
    try:
        for side, tree, folder in (
            ("before", args.before_tree, args.before_folder),
            ("after", args.after_tree, args.after_folder),
        ):
            sides[side] = start(Path(tree), Path(folder))
        runs: dict[tuple[str, str], list[tuple[float, float, float, float, float]]] = {}
        for round_ in range(args.rounds):
            order = ("before", "after") if round_ % 2 == 0 else ("after", "before")
            for name in names:
                for side in order:
                    server, base, cookie = sides[side]
                    load = os.getloadavg()[0]
                    cpu = million.cpu_seconds(server.pid)
                    median, p99, rate, note = million.wrk(
                        base + PAGES[name].format(**known), cookie, args.clients, args.seconds
                    )
                    per = (million.cpu_seconds(server.pid) - cpu) / max(rate * args.seconds, 1) * 1000
                    runs.setdefault((side, name), []).append((median, p99, rate, per, load))
                    print(
                        f"round {round_} {side:6} {name:7} median {median:7.1f} ms  p99 {p99:7.1f} ms  "
                        f"{rate:6.1f} req/s  CPU {per:5.2f} ms/req  (load {load:.1f}){note}",
                        flush=True,
                    )
        print("\nmedians over the rounds: p99 ms, CPU ms a request, requests/s, load")
        for name in names:
            line = f"{name:7}"
            for side in ("before", "after"):
                got = runs[(side, name)]
                line += (
                    f"  {side}: p99 {statistics.median(r[1] for r in got):6.1f}  "
                    f"CPU {statistics.median(r[3] for r in got):5.2f}  "
                    f"{statistics.median(r[2] for r in got):6.1f}/s  "
                    f"load {statistics.median(r[4] for r in got):4.1f}"
                )
            print(line)
    finally:
        for server, _, _ in sides.values():
            server.terminate()
            server.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    made = verbs.add_parser("setup")
    made.add_argument("folder", type=Path)
    made.add_argument("--readers", type=int, default=1_000_000)
    made.add_argument("--store-url", default="", help="a PostgreSQL database (empty); SQLite in FOLDER otherwise")
    both = verbs.add_parser("compare")
    for name in ("before_tree", "before_folder", "after_tree", "after_folder"):
        both.add_argument(name)
    both.add_argument("--rounds", type=int, default=3)
    both.add_argument("--seconds", type=int, default=8)
    both.add_argument("--clients", type=int, default=32)
    both.add_argument("--pages", default="home,first,k1000,search,issue")
    args = parser.parse_args()
    if args.verb == "setup":
        setup(args.folder, args.readers, args.store_url)
    else:
        compare(args)


if __name__ == "__main__":
    main()
