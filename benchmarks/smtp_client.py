"""The SMTP client against Postfix's own: `publisher` sends vs `smtp-source`, into smtp-sink.

    .venv/bin/python benchmarks/smtp_client.py [--readers 3000] [--runs 3] [--profile]

Both clients send the same number of messages of the same size into one smtp-sink, in
interleaved rounds:

- publisher: the real path (ledger claims, per-reader splice, the smtp provider with its
  pool of 4 connections, pipelined envelopes, answers recorded as they come);
- smtp-source -d -s 8: Postfix's C test client, 8 sessions, each kept open for several
  messages, pre-built message of the same length.

Prints messages/s of each and publisher / smtp-source. The goal stated for the client is
>= 0.5x into smtp-sink. With `--processes N` a third contender runs in the same rounds:
the same send with `delivery.processes = N` (helper processes claiming from the ledger).

`--profile` first sends the same messages through the provider alone (one connection, no
ledger) under cProfile and prints microseconds per message: total, and each function's
own time, so what the client spends apart from waiting on the socket is in view; then
the whole send (ledger and threads included) under cProfile in every thread, per stage:
claiming, reader values, splice, socket writes and waits, waits for the ledger, commits.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sink import enqueue_issue, profiled_send, publication, send_issue, smtp_sink

from publisher.delivery.engine import snapshot_templates
from publisher.mail.mime import Recipient, message_id_for
from publisher.store import open_store


def message_size(config: object, issue: int) -> int:
    db = open_store(config.store_url)  # type: ignore[attr-defined]
    template = snapshot_templates(config, db)(issue)  # type: ignore[arg-type]
    sample = Recipient(1, "reader1@example.org", "Reader 1", "https://example.org/unsubscribe/x",
                       message_id_for("i1.d1", "example.org"))
    db.dispose()
    return len(template.message_bytes(sample, datetime.now(UTC)))


def run_smtp_source(port: int, count: int, size: int) -> float:
    binary = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    started = time.perf_counter()
    subprocess.run(
        [binary, "-d", "-s", "8", "-m", str(count), "-l", str(size), "-f", "news@example.org",
         "-t", "reader@example.org", f"127.0.0.1:{port}"],
        check=True, stdout=subprocess.DEVNULL,
    )
    return count / (time.perf_counter() - started)


def profile(port: int, config: object, count: int) -> None:
    """The provider alone under cProfile: where each microsecond of a message goes."""
    import cProfile
    import pstats

    from sink import newest_article

    from publisher.delivery.smtp import SmtpProvider
    from publisher.mail import newsletter
    from publisher.mail.mime import MessageTemplate

    now = datetime.now(UTC)
    article = newest_article(config)  # type: ignore[arg-type]
    rendered = newsletter.render_issue(config, newsletter.issue_for_article(config, article), now)  # type: ignore[arg-type]
    template = MessageTemplate.from_rendered(config, rendered)  # type: ignore[arg-type]
    readers = [Recipient(n, f"reader{n}@example.org", f"Reader {n}", f"https://example.org/unsubscribe/{n}",
                         message_id_for(f"p.d{n}", "example.org")) for n in range(count)]
    provider = SmtpProvider(host="127.0.0.1", port=port, security="none", connections=1)
    try:
        provider.send(template, readers[:20], now=now)
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        provider.send(template, readers, now=now, answered=lambda _result: lambda: None)
        profiler.disable()
        elapsed = time.perf_counter() - started
    finally:
        provider.close()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = sorted(((own, calls, f"{path.rpartition('/')[2]}:{name}") for (path, _line, name), (_c, calls, own, _cum, _)
                   in stats.items()), reverse=True)[:12]
    print(f"provider alone, 1 connection, no ledger, under cProfile: {elapsed / count * 1e6:.0f} us a message")
    for own, calls, where in rows:
        print(f"  {own / count * 1e6:7.1f} us/message  {calls / count:5.1f} calls  {where}")
    print(flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readers", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="first profile the provider alone")
    parser.add_argument("--in-flight", type=int, default=1,
                        help="delivery.smtp.in_flight: accepted messages per connection awaiting their record")
    args = parser.parse_args()

    ours, theirs, many = [], [], []
    with smtp_sink() as port, tempfile.TemporaryDirectory() as folder, tempfile.TemporaryDirectory() as other:
        window = f"in_flight = {args.in_flight}\n"
        config = publication(Path(folder), port, args.readers, extra=window)
        several = publication(Path(other), port, args.readers, processes=args.processes, extra=window)
        if args.profile:
            profile(port, config, args.readers)
            issue, queued = enqueue_issue(config, "profile")
            profiled_send(config, issue, queued)
        size = 0
        for run in range(args.runs):
            issue, queued = enqueue_issue(config, f"run{run}")
            size = size or message_size(config, issue)
            ours.append(send_issue(config, issue, queued))
            theirs.append(run_smtp_source(port, args.readers, size))
            line = f"run {run + 1}: publisher {ours[-1]:7.0f}/s   smtp-source {theirs[-1]:7.0f}/s"
            if args.processes > 1:
                issue, queued = enqueue_issue(several, f"run{run}")
                many.append(send_issue(several, issue, queued))
                line += f"   publisher x{args.processes} processes {many[-1]:7.0f}/s"
            print(line, flush=True)
    ratio = statistics.median(o / t for o, t in zip(ours, theirs, strict=True))
    print(f"\n{args.readers} messages of {size:,} bytes into smtp-sink, median of {args.runs} interleaved runs")
    print(f"publisher (4 connections, in_flight {args.in_flight}): {statistics.median(ours):7.0f} messages/s")
    print(f"smtp-source -d -s 8 (Postfix, C): {statistics.median(theirs):7.0f} messages/s")
    print(f"publisher / smtp-source: {ratio:.2f}x (median of per-run ratios; goal >= 0.5x: "
          f"{'met' if ratio >= 0.5 else 'MISSED'})")
    if many:
        best = statistics.median(m / t for m, t in zip(many, theirs, strict=True))
        gain = statistics.median(m / o for m, o in zip(many, ours, strict=True))
        print(f"publisher, delivery.processes = {args.processes}: {statistics.median(many):7.0f} messages/s, "
              f"{best:.2f}x smtp-source, {gain:.2f}x one process")


if __name__ == "__main__":
    main()
