"""`publisher build` against Hugo on the same 5,000 articles: cold, and after editing one.

    .venv/bin/python benchmarks/build_incremental.py [--articles 5000] [--rounds 3] [--small 1000]

The articles are build_1000.py's (front matter, four sections, a table, footnotes), all
dated in the past, written once into a publisher publication and into a Hugo site
(Debian's `hugo`; small templates of our own: an article page with its tags and
neighbours, paged lists of 20, tag pages, Hugo's own RSS and sitemap). Each round, for
each tool in turn (interleaved, so both see the same load on the machine):

- cold: the output and every cache removed, then one build;
- edit: one article in the middle gets a new paragraph, then `publisher check` (timed:
  it renders what the build would; being the first check after the cold build, it also
  parses every feed with feedparser), then another paragraph and a second check (the
  feeds are known well formed by then: what a check after an edit usually costs), then
  one build;
- template (publisher only): the tag page template (an override of web/tag.html)
  changes, then one build: only the tag pages render;
- setting (publisher only): a [desk] setting no page reads changes, then one build;
- daemon (publisher only): the same edit as the author's save in the desk meets it, in the
  running daemon: one child process starts, takes a first look (the daemon's
  `publish_new`, which files the back catalogue and builds), then times `publish_new`
  after each of three edits a second apart, in the process (imports and start-up done, as
  in a daemon that has run a while). Its hub pings are not sent (the hub is not reachable
  here). The store it makes stays beside config.toml for the rounds after, as an author's
  does.

Beside them, the interpreter and CLI start-up alone (`python -m publisher --help`), which
every publisher figure here includes.

Every build is a child process (`python -m publisher build`, `hugo`), timed on the wall
clock, interpreter start-up included; its peak RSS comes from wait4's rusage (the largest
single process), and for publisher also as the sum over the build and its render workers
(proportional set size, so that pages shared after fork count once), sampled every 20 ms. The publisher
children run a copy of the package taken when the run starts (an edit of the checkout
during the run would otherwise count as a new version of the code, which the cache
rightly answers with a whole rebuild), and write their bytecode as an installed package
has it (PYTHONDONTWRITEBYTECODE is not passed on). publisher's
own figure ("N articles, X s", the build without start-up) is shown beside it. Last, a
cold build of --small articles, to show whether peak memory grows with the number of
articles. Prints medians and the ratios to Hugo.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from build_1000 import CONFIG, article_text

HUGO_CONFIG = """\
baseURL = "https://bench.example.org/"
title = "Benchmark Notes"
languageCode = "en"
disableKinds = ["categories"]
[pagination]
pagerSize = 20
paginate = 20
[taxonomies]
tag = "tags"
[outputs]
home = ["HTML", "RSS"]
term = ["HTML", "RSS"]
"""

HUGO_LAYOUTS = {
    "_default/baseof.html": (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{{ .Title }} · {{ .Site.Title }}</title>'
        '{{ with .OutputFormats.Get "rss" }}<link rel="alternate" type="application/rss+xml" href="{{ .Permalink }}">'
        '{{ end }}</head><body><header><a href="{{ .Site.BaseURL }}">{{ .Site.Title }}</a></header>'
        '{{ block "main" . }}{{ end }}</body></html>'
    ),
    "_default/single.html": (
        '{{ define "main" }}<article><h1>{{ .Title }}</h1>'
        '<time datetime="{{ .Date.Format "2006-01-02T15:04:05Z07:00" }}">'
        '{{ .Date.Format "January 2, 2006" }}</time>{{ .Content }}'
        '<ul>{{ range .Params.tags }}<li><a href="{{ "tags/" | absURL }}{{ . | urlize }}/">{{ . }}</a></li>'
        "{{ end }}</ul>"
        '{{ with .PrevInSection }}<a rel="next" href="{{ .Permalink }}">{{ .Title }}</a>{{ end }}'
        '{{ with .NextInSection }}<a rel="prev" href="{{ .Permalink }}">{{ .Title }}</a>{{ end }}'
        "</article>{{ end }}"
    ),
    "_default/list.html": (
        '{{ define "main" }}<h1>{{ .Title }}</h1>{{ range .Paginator.Pages }}<h3><a href="{{ .Permalink }}">'
        "{{ .Title }}</a></h3><p>{{ .Summary | plainify | truncate 200 }}</p>{{ end }}"
        '{{ with .Paginator.Prev }}<a rel="prev" href="{{ .URL }}">newer</a>{{ end }}'
        '{{ with .Paginator.Next }}<a rel="next" href="{{ .URL }}">older</a>{{ end }}{{ end }}'
    ),
    "_default/terms.html": (
        '{{ define "main" }}<ul>{{ range .Data.Terms.Alphabetical }}<li><a href="{{ .Page.Permalink }}">'
        "{{ .Page.Title }}</a> ({{ .Count }})</li>{{ end }}</ul>{{ end }}"
    ),
}

MIDDLE_EDIT = "\n\nAn added paragraph: the one edit of this round.\n"


def write_sites(root: Path, count: int) -> tuple[Path, Path, Path]:
    """The same articles for both tools; returns (publisher config, hugo site, edited file)."""
    rng = random.Random(1000)
    pub = root / "publisher"
    hugo = root / "hugo"
    (pub / "content").mkdir(parents=True)
    (hugo / "content" / "posts").mkdir(parents=True)
    (pub / "config.toml").write_text(CONFIG.format(previews=20), encoding="utf-8")
    (hugo / "config.toml").write_text(HUGO_CONFIG, encoding="utf-8")
    for name, text in HUGO_LAYOUTS.items():
        (hugo / "layouts" / name).parent.mkdir(parents=True, exist_ok=True)
        (hugo / "layouts" / name).write_text(text, encoding="utf-8")
    start = datetime(2010, 1, 1, 8, 0, tzinfo=UTC)
    names = []
    for number in range(count):
        date = start + timedelta(hours=12 * number)
        text = article_text(rng, number, date)
        # No lead images: neither site has the files, and a warning per article would be noise.
        text = re.sub(r"^image(_alt)?: .*\n", "", text, flags=re.MULTILINE)
        name = f"{date:%Y-%m-%d}-article-{number:05d}.md"
        (pub / "content" / name).write_text(text, encoding="utf-8")
        (hugo / "content" / "posts" / name).write_text(text, encoding="utf-8")
        names.append(name)
    return pub / "config.toml", hugo, Path(names[count // 2])


CHILD_ENV: dict[str, str] = dict(os.environ)
"""The environment of the publisher children: `snapshot_code` points it at the copy."""


def snapshot_code(folder: Path) -> None:
    """Copy the package and its default templates into `folder` and run the children from there."""
    repository = Path(__file__).resolve().parent.parent
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(repository / "publisher", folder / "publisher", ignore=ignore)
    shutil.copytree(repository / "templates", folder / "templates", ignore=ignore)
    CHILD_ENV["PYTHONPATH"] = str(folder)
    CHILD_ENV.pop("PYTHONDONTWRITEBYTECODE", None)


LAST_CPU = [0.0]
"""CPU seconds (user and system) of the last child `run_measured` ran: on a busy machine the
wall clock says more about the other processes than about the build, its CPU time less."""
LAST_TREE = [0.0]
"""Peak of the summed proportional set size (PSS, MB) of the last child and its own children
at once (the render workers count), sampled every 20 ms: a page the workers share with the
build after fork counts once, split between them (VmRSS where PSS cannot be read)."""


def _tree_rss(pid: int) -> int:
    """KB of memory of `pid` and its descendants (PSS), as /proc tells them now."""
    total, pending = 0, [pid]
    while pending:
        here = pending.pop()
        try:
            try:
                with open(f"/proc/{here}/smaps_rollup", encoding="ascii", errors="replace") as rollup:
                    total += next((int(line.split()[1]) for line in rollup if line.startswith("Pss:")), 0)
            except OSError:
                with open(f"/proc/{here}/status", encoding="ascii", errors="replace") as status:
                    total += next((int(line.split()[1]) for line in status if line.startswith("VmRSS:")), 0)
            for task in os.listdir(f"/proc/{here}/task"):
                with open(f"/proc/{here}/task/{task}/children", encoding="ascii") as children:
                    pending.extend(int(child) for child in children.read().split())
        except (OSError, ValueError):
            continue
    return total


def _sample_tree(pid: int, stop: threading.Event) -> None:
    peak = 0
    while not stop.wait(0.02):
        peak = max(peak, _tree_rss(pid))
    LAST_TREE[0] = peak / 1024


def run_measured(command: list[str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB (wait4's rusage: Linux reports KB) and stdout of one
    child; its CPU seconds go to LAST_CPU."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=err, text=True, env=CHILD_ENV)
        stop = threading.Event()
        sampler = threading.Thread(target=_sample_tree, args=(child.pid, stop), daemon=True)
        sampler.start()
        _pid, status, usage = os.wait4(child.pid, 0)
        stop.set()
        sampler.join()
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read()
        if child.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed ({child.returncode}):\n{stdout}\n{err.read()}")
        LAST_CPU[0] = usage.ru_utime + usage.ru_stime
        return wall, usage.ru_maxrss / 1024, stdout


def publisher_build(config: Path) -> tuple[float, float, float, float, float]:
    """(wall seconds, peak MB, the build's own seconds as `publisher build` prints them, CPU
    seconds, peak MB of the process and its workers together)."""
    wall, peak, out = run_measured([sys.executable, "-m", "publisher", "--config", str(config), "build"], config.parent)
    found = re.search(r"articles, ([0-9.]+) s\)", out)
    return wall, peak, float(found.group(1)) if found else float("nan"), LAST_CPU[0], LAST_TREE[0]


def hugo_build(site: Path) -> tuple[float, float, float, float]:
    """(wall seconds, peak MB, nan, CPU seconds: Hugo's threads add theirs up)."""
    wall, peak, _out = run_measured(["hugo", "--quiet"], site)
    return wall, peak, float("nan"), LAST_CPU[0]


def clean_publisher(config: Path) -> None:
    root = config.parent
    (root / "public").unlink(missing_ok=True)
    for name in (".public.builds", ".publisher-cache", "public"):
        shutil.rmtree(root / name, ignore_errors=True)


def clean_hugo(site: Path) -> None:
    for name in ("public", "resources", ".hugo_build.lock"):
        path = site / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def publisher_check(config: Path) -> tuple[float, float, float, float]:
    command = [sys.executable, "-m", "publisher", "--config", str(config), "check"]
    wall, _peak, out = run_measured(command, config.parent)
    if "ok" not in out:
        raise SystemExit(f"publisher check did not pass:\n{out}")
    return wall, float("nan"), float("nan"), LAST_CPU[0]


def publisher_startup(config: Path) -> tuple[float, float, float, float]:
    wall = run_measured([sys.executable, "-m", "publisher", "--help"], config.parent)[0]
    return wall, float("nan"), float("nan"), LAST_CPU[0]


def edit_template(config: Path, round_number: int) -> None:
    """The tag pages' template, as an override of the default with a changed heading."""
    from publisher.content.templates import default_templates_dir

    text = (default_templates_dir() / "web" / "tag.html").read_text(encoding="utf-8")
    target = config.parent / "templates" / "web" / "tag.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text.replace("</h1>", f"</h1><!-- round {round_number} -->", 1), encoding="utf-8")


def edit_setting(config: Path, round_number: int) -> None:
    text = config.read_text(encoding="utf-8").split("\n[desk]\n")[0]
    config.write_text(f"{text}\n[desk]\nsession_hours = {100 + round_number}\n", encoding="utf-8")


def edit(path: Path, round_number: int) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(MIDDLE_EDIT.replace("this round", f"round {round_number}"))


DAEMON_CHILD = """
import statistics, sys, time
from publisher.schedule import jobs

jobs.send_pings = lambda config_path: None
config_path, edited, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
jobs.publish_new(config_path)
times, cpu = [], []
for n in range(count):
    time.sleep(1.0)  # saves seconds apart, as an author makes them (a build within half a
    # second of the last one's switch waits out the rest: the old tree may still be read)
    with open(edited, "a", encoding="utf-8") as handle:
        handle.write(f"\\n\\nA paragraph saved from the desk, number {n}.\\n")
    started, used = time.perf_counter(), time.process_time()
    jobs.publish_new(config_path)
    times.append(time.perf_counter() - started)
    cpu.append(time.process_time() - used)
print(statistics.median(times), statistics.median(cpu))
"""


def daemon_edits(config: Path, edited: Path, count: int = 3) -> tuple[float, float, float, float]:
    """(wall seconds, nan, nan, CPU seconds): medians of the daemon's `publish_new` after
    one edit, in a warm process."""
    command = [sys.executable, "-c", DAEMON_CHILD, str(config), str(edited), str(count)]
    _wall, _peak, out = run_measured(command, config.parent)
    wall, cpu = (float(word) for word in out.split()[-2:])
    return wall, float("nan"), float("nan"), cpu


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--small", type=int, default=1000, help="articles of the memory comparison (0: skip)")
    args = parser.parse_args()
    if shutil.which("hugo") is None:
        raise SystemExit("hugo is not installed (Debian: apt-get install hugo)")
    version = subprocess.run(["hugo", "version"], capture_output=True, text=True).stdout.split()[1]
    base = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="publisher-incr-", dir=base) as tmp:
        snapshot_code(Path(tmp) / "code")
        config, hugo, name = write_sites(Path(tmp), args.articles)
        pub_file = config.parent / "content" / name
        hugo_file = hugo / "content" / "posts" / name
        keys = ("pc", "pe", "hc", "he", "pk", "pk2", "pt", "ps", "up", "pd")
        rows: dict[str, list[tuple[float, ...]]] = {k: [] for k in keys}
        for round_number in range(1, args.rounds + 1):
            clean_publisher(config)
            rows["pc"].append(publisher_build(config))
            clean_hugo(hugo)
            rows["hc"].append(hugo_build(hugo))
            edit(pub_file, round_number)
            rows["pk"].append(publisher_check(config))
            edit(pub_file, round_number)
            rows["pk2"].append(publisher_check(config))
            rows["pe"].append(publisher_build(config))
            edit(hugo_file, round_number)
            rows["he"].append(hugo_build(hugo))
            edit_template(config, round_number)
            rows["pt"].append(publisher_build(config))
            edit_setting(config, round_number)
            rows["ps"].append(publisher_build(config))
            rows["up"].append(publisher_startup(config))
            rows["pd"].append(daemon_edits(config, pub_file))
            print(
                f"round {round_number}: publisher cold {rows['pc'][-1][0]:.2f} s, edit {rows['pe'][-1][0]:.2f} s, "
                f"check after the edit {rows['pk'][-1][0]:.2f} s (again {rows['pk2'][-1][0]:.2f} s), "
                f"template {rows['pt'][-1][0]:.2f} s, "
                f"setting {rows['ps'][-1][0]:.2f} s, start-up {rows['up'][-1][0]:.2f} s, "
                f"in the daemon {rows['pd'][-1][0]:.2f} s; "
                f"hugo cold {rows['hc'][-1][0]:.2f} s, edit {rows['he'][-1][0]:.2f} s",
                flush=True,
            )
        small_peak = float("nan")
        if args.small:
            small_config, _hugo, _name = write_sites(Path(tmp) / "small", args.small)
            small_peak = publisher_build(small_config)[1]

    def col(key: str, index: int) -> float:
        return median([r[index] for r in rows[key]])

    print(f"\n{args.articles:,} articles, median of {args.rounds} interleaved rounds; hugo {version}")
    print(f"{'':<32}{'wall':>9}{'build':>9}{'CPU':>9}{'peak RSS':>11}{'wall/hugo':>10}{'CPU/hugo':>9}")

    def line(label: str, key: str, hugo_key: str = "") -> None:
        build_s = f"{col(key, 2):>7.2f} s" if col(key, 2) == col(key, 2) else f"{'':>9}"
        peak = f"{col(key, 1):>8.0f} MB" if col(key, 1) == col(key, 1) else f"{'':>11}"
        ratios = f"{col(key, 0) / col(hugo_key, 0):>9.2f}x{col(key, 3) / col(hugo_key, 3):>8.2f}x" if hugo_key else ""
        print(f"{label:<32}{col(key, 0):>7.2f} s{build_s}{col(key, 3):>7.2f} s{peak}{ratios}")

    line("publisher build, cold", "pc", "hc")
    line("publisher build, one edited", "pe", "he")
    line("publisher check, one edited", "pk")
    line("  again, feeds checked before", "pk2")
    line("publisher build, tag template", "pt")
    line("publisher build, desk setting", "ps")
    line("publisher --help (start-up)", "up")
    line("one edited, in the daemon", "pd", "he")
    line("hugo, cold", "hc")
    line("hugo, one edited", "he")
    if args.small:
        print(
            f"peak RSS of a cold publisher build: {small_peak:.0f} MB at {args.small:,} articles, "
            f"{col('pc', 1):.0f} MB at {args.articles:,} ({col('pc', 1) - small_peak:+.0f} MB); "
            f"with its render workers, PSS summed: {col('pc', 4):.0f} MB at {args.articles:,}"
        )


if __name__ == "__main__":
    main()
