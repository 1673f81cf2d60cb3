"""The desk's article list (and any action that looks an article up) at thousands of articles:
read through the build cache against parsing every file, in the same run.

    .venv/bin/python benchmarks/article_list.py [--articles 5000] [--rounds 5]

build_1000.py's articles (front matter, four sections, a table, footnotes) are written into
a temporary publication with a store, and built once (which fills the cache, as the
author's first build or the daemon's first look does). Each round then times, in turn
(interleaved, so both see the same load on the machine):

- parsing every file, as `content.load_articles` does: how the list was read before;
- `services.articles.list_articles`, what the desk's Articles page and the API's list call;
- `services.articles.get_article` of the article in the middle, what the editor opens with;
- `services.issues.plan_send` of it, what the send panel shows (the article whole, rendered).

And, after one article file is edited, the list again (one file read and parsed).
Prints medians in milliseconds and the ratio of parsing every file to the list.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from build_incremental import write_sites

from publisher import content
from publisher.config import load_config
from publisher.services import articles, issues
from publisher.store import open_store


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="publisher-list-") as tmp:
        config_path, _hugo, name = write_sites(Path(tmp), args.articles)
        env = {"PUBLISHER_SECRET": "b" * 40}
        subprocess.run(
            [sys.executable, "-m", "publisher", "--config", str(config_path), "build"],
            check=True, capture_output=True, env={**env, "PATH": "/usr/bin:/bin"},
        )
        config = load_config(config_path, env=env)
        db = open_store(config.store_url)
        now = datetime.now(UTC)
        listed = articles.list_articles(config, db, now=now)
        middle = listed[len(listed) // 2].article.slug
        edited = config_path.parent / "content" / name.name
        rows: dict[str, list[float]] = {"parse": [], "list": [], "get": [], "plan": [], "edit": []}
        for round_number in range(args.rounds):
            rows["parse"].append(timed(lambda: content.load_articles(config)))
            rows["list"].append(timed(lambda: articles.list_articles(config, db, now=now)))
            rows["get"].append(timed(lambda: articles.get_article(config, db, middle, now=now)))
            rows["plan"].append(timed(lambda: issues.plan_send(config, db, middle, now=now)))
            with edited.open("a", encoding="utf-8") as handle:
                handle.write(f"\n\nA paragraph added in round {round_number}.\n")
            rows["edit"].append(timed(lambda: articles.list_articles(config, db, now=now)))
            print(
                f"round {round_number + 1}: parse every file {rows['parse'][-1]:.0f} ms, "
                f"list {rows['list'][-1]:.1f} ms, after an edit {rows['edit'][-1]:.1f} ms, "
                f"get {rows['get'][-1]:.1f} ms, plan a send {rows['plan'][-1]:.1f} ms",
                flush=True,
            )
        db.dispose()
    median = {key: statistics.median(values) for key, values in rows.items()}
    print(f"\n{args.articles:,} articles, median of {args.rounds} interleaved rounds (ms)")
    print(f"parse every file (before)        {median['parse']:9.1f}")
    print(f"the article list                  {median['list']:9.1f}   {median['parse'] / median['list']:.0f}x faster")
    print(f"the list after one edit           {median['edit']:9.1f}")
    print(f"one article, whole (the editor)   {median['get']:9.1f}")
    print(f"plan a send of it                 {median['plan']:9.1f}")


if __name__ == "__main__":
    main()
