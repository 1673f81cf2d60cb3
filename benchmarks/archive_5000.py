"""The archive's pagination and search index at 5,000 articles, against a build without them.

    .venv/bin/python benchmarks/archive_5000.py [--articles 5000]

One run of each, on the same parsed articles:
- without: `build.per_page = 0` and `build.search = false` (one index page listing
  everything, no search.json, no script), the archive as it was before paging;
- with: `build.per_page = 20` and `build.search = true` (the defaults).
For each: a cold build into an empty folder, a rebuild with nothing changed, the number
of files, the front page's size and the search index's size (plain and gzip, as
`publisher serve` sends it).
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from build_1000 import make_publication

from publisher import content
from publisher.config import load_config
from publisher.site import build


def configure(root: Path, per_page: int, search: bool) -> None:
    path = root / "config.toml"
    text = path.read_text(encoding="utf-8")
    head, _, rest = text.partition("[build]\n")
    rest = "\n".join(line for line in rest.split("\n") if not line.startswith(("per_page", "search")))
    path.write_text(f"{head}[build]\nper_page = {per_page}\nsearch = {str(search).lower()}\n{rest}", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="publisher-bench-") as tmp:
        root = Path(tmp)
        make_publication(root, args.articles, 20)
        config = load_config(root / "config.toml", env={})
        started = time.perf_counter()
        articles = content.load_articles(config)
        parse = time.perf_counter() - started
        # The generated articles are 36 hours apart from 2020 on: all of them published.
        now = max(a.date for a in articles) + timedelta(days=1)
        assert all(a.is_public(now) for a in articles)
        print(f"{len(articles)} generated articles; parse {parse:.2f} s (shared by both builds); one run each")
        print(f"{'':<34}{'cold build':>12}{'rebuild':>10}{'files':>8}{'index.html':>13}{'search.json':>14}{'gzip':>10}")
        runs = (("without paging and search", 0, False), ("with paging (20) and search", 20, True))
        for label, per_page, search in runs:
            folder = root / label.split()[0]
            folder.mkdir()
            (folder / "config.toml").write_bytes((root / "config.toml").read_bytes())
            (folder / "content").symlink_to(root / "content")
            configure(folder, per_page, search)
            settings = load_config(folder / "config.toml", env={})
            started = time.perf_counter()
            report = build.build_site(settings, articles, now)
            cold = time.perf_counter() - started
            started = time.perf_counter()
            again = build.build_site(settings, articles, now)
            warm = time.perf_counter() - started
            assert not again.written, "a rebuild with no change wrote files"
            public = settings.path_of("build.output")
            index = (public / "index.html").stat().st_size
            data = public / "search.json"
            size = data.stat().st_size if data.exists() else 0
            packed = len(gzip.compress(data.read_bytes(), 6)) if size else 0
            print(
                f"{label:<34}{cold:>10.2f} s{warm:>8.2f} s{len(report.written):>8}"
                f"{index / 1024:>10.0f} KB{size / 1024:>11.0f} KB{packed / 1024:>7.0f} KB"
            )


if __name__ == "__main__":
    main()
