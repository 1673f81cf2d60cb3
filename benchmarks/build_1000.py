"""Build a publication of 1,000 generated articles and print how long each stage takes.

    .venv/bin/python benchmarks/build_1000.py [--articles 1000] [--runs 3] [--full-baseline]

Stages, each the median of --runs runs:
- parse: `content.load_articles` (front matter, Markdown, sanitising) for every file;
- cold build: `build_site` into an empty output folder (feeds, tag feeds, archive,
  1,000 pages, newsletter previews for the newest `build.previews`);
- rebuild, nothing changed: every file compared, none written;
- rebuild after editing one article.
The baseline is the naive choice of a newsletter preview for every article (Jinja and
premailer once per article), which is why previews are limited to the newest
`build.previews` articles. It is estimated from --sample previews, so the run takes
seconds; --full-baseline builds it for real (minutes for 1,000 articles).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from publisher import content
from publisher.config import load_config
from publisher.site import build

CONFIG = """\
[publication]
title = "Benchmark Notes"
url = "https://bench.example.org/"
description = "Generated articles for timing the build."
author = "Dana Reyes, LCSW"
timezone = "America/New_York"
postal_address = "120 Wharf Street, Portland, ME 04101, USA"

[build]
previews = {previews}

[feeds]
entries = 20
hubs = ["https://hub.example.com/"]

[newsletter]
from = "Dana Reyes <notes@bench.example.org>"
"""

TAGS = ["sleep", "anxiety", "grief", "habits", "family", "work", "exercise", "mood", "teens", "winter"]
WORDS = [
    *("sleep", "worry", "breath", "morning", "routine", "evidence", "therapy", "patient"),
    *("family", "walking", "light", "season", "habit", "stress", "recovery", "support"),
    *("practice", "research", "study", "attention", "rest", "body", "mind", "week"),
]


def paragraph(rng: random.Random, sentences: int) -> str:
    out = []
    for _ in range(sentences):
        words = rng.choices(WORDS, k=rng.randint(8, 18))
        out.append(" ".join(words).capitalize() + ".")
    return " ".join(out)


def article_text(rng: random.Random, number: int, date: datetime) -> str:
    """A long-form article in the sample's shape: sections, a table, numbered references."""
    sections = []
    for heading in range(4):
        body = "\n\n".join(paragraph(rng, rng.randint(3, 6)) for _ in range(3))
        sections.append(f"## Section {heading + 1}\n\n{body} [^{heading + 1}]")
    refs = "\n".join(
        f"[^{i + 1}]: Author, A. ({2000 + i}). A study of {rng.choice(WORDS)}. *Journal*." for i in range(4)
    )
    tags = ", ".join(rng.sample(TAGS, 2))
    return (
        "---\n"
        f'title: "Generated article {number}: {rng.choice(WORDS)} and {rng.choice(WORDS)}"\n'
        f"date: {date:%Y-%m-%d %H:%M}\n"
        f"tags: [{tags}]\n"
        f"image: /images/{number}.jpg\n"
        f"image_alt: Illustration {number}\n"
        "---\n\n"
        f"{paragraph(rng, 4)}\n\n" + "\n\n".join(sections) + "\n\n"
        "| week | minutes |\n| --- | --- |\n| 1 | 10 |\n| 2 | 20 |\n\n"
        f"{refs}\n"
    )


def make_publication(root: Path, count: int, previews: int) -> None:
    rng = random.Random(1000)
    (root / "config.toml").write_text(CONFIG.format(previews=previews), encoding="utf-8")
    folder = root / "content"
    folder.mkdir()
    start = datetime(2020, 1, 1, 8, 0, tzinfo=UTC)
    for number in range(count):
        date = start + timedelta(hours=36 * number)
        path = folder / f"{date:%Y-%m-%d}-article-{number:04d}.md"
        path.write_text(article_text(rng, number, date), encoding="utf-8")


def timed(func: Callable[[], object]) -> float:
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


def median_of(runs: int, func: Callable[[], object], before: Callable[[], object] = lambda: None) -> float:
    samples = []
    for _ in range(runs):
        before()
        samples.append(timed(func))
    return statistics.median(samples)


def row(label: str, seconds: float, note: str = "") -> None:
    print(f"{label:<40} {seconds:8.3f} s" + (f"  ({note})" if note else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--previews", type=int, default=20, help="build.previews for the timed builds")
    parser.add_argument("--no-baseline", action="store_true", help="skip the preview-every-article estimate")
    parser.add_argument("--sample", type=int, default=40, help="previews timed for the baseline estimate")
    parser.add_argument("--full-baseline", action="store_true", help="build a preview for every article (minutes)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="publisher-bench-") as tmp:
        root = Path(tmp)
        make_publication(root, args.articles, args.previews)
        config = load_config(root / "config.toml", env={})
        output = build.output_folder(config)
        now = datetime.now(UTC)

        parse = median_of(args.runs, lambda: content.load_articles(config))
        articles = content.load_articles(config)

        def clean() -> None:
            output.unlink(missing_ok=True)  # the link to the build in place
            shutil.rmtree(build.builds_folder(output), ignore_errors=True)

        reports = []
        cold = median_of(args.runs, lambda: reports.append(build.build_site(config, articles, now)), clean)
        files = len(reports[-1].written)
        warm = median_of(args.runs, lambda: reports.append(build.build_site(config, articles, now)))
        assert not reports[-1].written, "a rebuild with no change wrote files"

        edited_articles = list(articles)

        def edit() -> None:
            first = edited_articles[len(edited_articles) // 2]
            edited_articles[len(edited_articles) // 2] = replace(first, html=first.html + "<p>edit</p>")

        edited = median_of(args.runs, lambda: reports.append(build.build_site(config, edited_articles, now)), edit)
        edit_written = len(reports[-1].written)

        size = sum(len(a.html) for a in articles) // len(articles)
        print(f"{len(articles)} generated articles, {size} bytes of HTML each, median of {args.runs} runs")
        row("parse (content.load_articles)", parse)
        row("cold build into an empty folder", cold, f"{files} files, {args.previews} previews")
        row("rebuild, nothing changed", warm, "0 files written")
        row("rebuild after editing one article", edited, f"{edit_written} files written")
        row("parse + cold build", parse + cold)

        if args.no_baseline:
            return
        extra = len(articles) - min(args.previews, len(articles))
        if args.full_baseline:
            (root / "config.toml").write_text(CONFIG.format(previews=len(articles)), encoding="utf-8")
            every = load_config(root / "config.toml", env={})
            clean()
            naive = timed(lambda: build.build_site(every, articles, now))
            row("baseline: a preview for every article", naive, "measured, one run")
            return
        sample = articles[: args.sample]
        per = timed(lambda: [build.newsletter_preview(config, a) for a in sample]) / len(sample)
        row("one newsletter preview", per, f"mean of {len(sample)}")
        row("baseline: a preview for every article", cold + extra * per, f"estimated: cold build + {extra} previews")


if __name__ == "__main__":
    main()
