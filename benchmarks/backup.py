"""`publisher backup` and `publisher restore` of the sample publication, and of one with a
large list, beside a plain `tar czf` of the same folder in the same run.

    .venv/bin/python benchmarks/backup.py [--subscribers 10000] [--rounds 3]

Two temporary publications are made from the sample in this repository (config.toml and
content/): the first as shipped with its five demo readers, the second with
--subscribers readers, each of whom was sent the newest article through the Maildir
provider (one ledger row per reader). For each, `publisher backup` and `publisher
restore` run as processes, --rounds times (the median is printed), and `tar czf` of the
same config.toml, content/ and database file gives the floor: compressing those bytes
with nothing checked and no consistent copy taken.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert

from publisher.store import open_store
from publisher.store.schema import subscribers

ROOT = Path(__file__).resolve().parent.parent
SLUG = "talking-to-teens-about-stress"


def publisher(folder: Path, *args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "publisher", "--config", str(folder / "config.toml"), *args],
                          capture_output=True, text=True, cwd=folder)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"publisher {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return elapsed


def make(folder: Path, readers: int) -> None:
    folder.mkdir()
    shutil.copy(ROOT / "config.toml", folder / "config.toml")
    shutil.copytree(ROOT / "content", folder / "content")
    db = open_store(f"sqlite:///{folder / 'publisher.db'}")
    now = datetime.now(UTC)
    with db.begin() as conn:
        conn.execute(insert(subscribers), [
            {"email": f"reader{n:06d}@example.org", "name": f"Reader {n}", "status": "active", "source": "bench",
             "created_at": now, "updated_at": now}
            for n in range(readers)
        ])
    db.dispose()
    publisher(folder, "send", SLUG, "--yes")
    shutil.rmtree(folder / "outbox")  # the sent mail is not the publication's


def measure(label: str, folder: Path, rounds: int) -> None:
    backups, restores, sizes = [], [], []
    for n in range(rounds):
        out = folder.parent / f"{folder.name}-archives-{n}"
        backups.append(publisher(folder, "backup", "--to", str(out)))
        (archive,) = out.iterdir()
        sizes.append(archive.stat().st_size)
        target = folder.parent / f"{folder.name}-restored-{n}"
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "publisher", "restore", str(archive), "--into", str(target)],
                              capture_output=True, text=True)
        restores.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(done.stderr)
    tar_times = []
    for n in range(rounds):
        started = time.perf_counter()
        subprocess.run(["tar", "czf", str(folder.parent / f"plain-{n}.tar.gz"), "-C", str(folder),
                        "config.toml", "content", "publisher.db"], check=True)
        tar_times.append(time.perf_counter() - started)
    plain = (folder.parent / "plain-0.tar.gz").stat().st_size
    database = (folder / "publisher.db").stat().st_size
    print(f"{label}: database {database / 1e6:.1f} MB; publisher backup {statistics.median(backups):.2f} s, "
          f"archive {statistics.median(sizes) / 1e6:.2f} MB; publisher restore {statistics.median(restores):.2f} s; "
          f"tar czf of the same files {statistics.median(tar_times):.2f} s, {plain / 1e6:.2f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="publisher-backup-bench-") as tmp:
        small, large = Path(tmp) / "sample", Path(tmp) / "large"
        make(small, 5)
        make(large, args.subscribers)
        measure("sample publication, 5 readers", small, args.rounds)
        measure(f"sample publication, {args.subscribers:,} readers sent one issue", large, args.rounds)


if __name__ == "__main__":
    main()
