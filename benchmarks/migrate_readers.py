"""Readers moved in from a 100,000-subscriber Mailchimp audience export.

    .venv/bin/python benchmarks/migrate_readers.py [--subscribers 100000]
    /usr/bin/time -v .venv/bin/python benchmarks/migrate_readers.py   (peak memory: "Maximum resident set size")

Writes a Mailchimp export zip in a temp dir (subscribed, unsubscribed and cleaned files,
every column Mailchimp writes, 10% unsubscribed, 3% cleaned, 1% of the unsubscribed
also in the subscribed file), then times reading it (`read_readers`), the dry run
(`plan_readers`) and the migration (`apply_readers`) into an empty SQLite store, and a
second run (every reader unchanged). Prints seconds per stage and Python's own peak
allocation while reading with --tracemalloc (which slows reading several times over).
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
import tracemalloc
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from publisher.content.exports.readers import read_readers
from publisher.services.reader_migration import apply_readers, plan_readers
from publisher.store import open_store

HEADER = (
    '"Email Address","First Name","Last Name","Address","Phone Number",MEMBER_RATING,OPTIN_TIME,OPTIN_IP,'
    "CONFIRM_TIME,CONFIRM_IP,LATITUDE,LONGITUDE,GMTOFF,DSTOFF,TIMEZONE,CC,REGION,LAST_CHANGED,LEID,EUID,NOTES,TAGS"
)


def _row(i: int) -> str:
    return (
        f'reader{i}@example.org,Reader,"Number {i}","{i} Main St  Springfield  IL  62701  US",,2,'
        f'"2020-01-02 10:{i % 60:02d}:00",203.0.113.{i % 250},"2020-01-02 10:{i % 60:02d}:30",203.0.113.{i % 250},'
        f',,-5,-4,America/New_York,US,IL,"2023-01-01 00:00:00",{i},e{i},,"""Weekly"",""Clinicians"""'
    )


def mailchimp_export(count: int) -> bytes:
    """A Mailchimp audience export zip with `count` records over its three files."""
    subscribed, unsubscribed, cleaned = [HEADER], [HEADER + ",UNSUB_TIME,UNSUB_CAMPAIGN_TITLE,UNSUB_CAMPAIGN_ID,"
                                         "UNSUB_REASON,UNSUB_REASON_OTHER"], [HEADER + ",CLEAN_TIME,"
                                         "CLEAN_CAMPAIGN_TITLE,CLEAN_CAMPAIGN_ID"]
    for i in range(count):
        if i % 100 < 3:
            cleaned.append(_row(i) + ',"2022-01-01 00:00:00","January",c1')
        elif i % 100 < 13:
            unsubscribed.append(_row(i) + ',"2022-02-01 00:00:00","February",c2,NORMAL,')
        elif i % 100 == 13 and len(unsubscribed) > 1:
            subscribed.append(unsubscribed[-1].rsplit(',"2022-02-01', 1)[0])  # also in the subscribed file
        else:
            subscribed.append(_row(i))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, rows in (
            ("subscribed_members_export_bench.csv", subscribed),
            ("unsubscribed_members_export_bench.csv", unsubscribed),
            ("cleaned_members_export_bench.csv", cleaned),
        ):
            archive.writestr(name, "\r\n".join(rows) + "\r\n")
    return out.getvalue()


class ZipFiles:
    def __init__(self, data: bytes) -> None:
        self.archive = zipfile.ZipFile(io.BytesIO(data))

    def names(self) -> list[str]:
        return sorted(self.archive.namelist())

    def read(self, name: str) -> bytes:
        return self.archive.read(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--tracemalloc", action="store_true", help="also Python's peak allocation (slow)")
    args = parser.parse_args()
    data = mailchimp_export(args.subscribers)
    print(f"export: {args.subscribers:,} records, {len(data) / 1e6:.1f} MB zipped")
    with tempfile.TemporaryDirectory() as tmp:
        engine = open_store(f"sqlite:///{Path(tmp) / 'publisher.db'}")
        if args.tracemalloc:
            tracemalloc.start()
        start = time.perf_counter()
        batch = read_readers("mailchimp", ZipFiles(data))
        read = time.perf_counter() - start
        peak = f"; Python peak {tracemalloc.get_traced_memory()[1] / 1e6:.0f} MB" if args.tracemalloc else ""
        tracemalloc.stop()
        print(f"read_readers: {read:.2f} s, {len(batch.readers):,} readers, {len(batch.merged)} merged, "
              f"{len(batch.refused)} refused{peak}")
        start = time.perf_counter()
        plan = plan_readers(engine, batch)
        print(f"plan_readers: {time.perf_counter() - start:.2f} s, would create {plan.created:,}")
        start = time.perf_counter()
        counts = apply_readers(engine, batch, now=datetime.now(UTC))
        print(f"apply_readers: {time.perf_counter() - start:.2f} s, created {counts.created:,}, "
              f"skipped {counts.skipped}, total {counts.total:,}")
        start = time.perf_counter()
        again = apply_readers(engine, batch, now=datetime.now(UTC))
        print(f"again: {time.perf_counter() - start:.2f} s, unchanged {again.unchanged:,}, created {again.created}")


if __name__ == "__main__":
    main()
