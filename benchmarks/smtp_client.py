"""The SMTP client against Postfix's own: `publisher` sends vs `smtp-source`, into smtp-sink.

    .venv/bin/python benchmarks/smtp_client.py [--readers 3000] [--runs 3] [--profile]
        [--in-flight 1] [--compare 8] [--connections 4]

Both clients send the same number of messages of the same size into one smtp-sink, in
interleaved rounds:

- publisher: the real path (ledger claims, per-reader splice, the smtp provider with its
  pool of `--connections` (4, the default), pipelined envelopes, answers recorded as they come);
- smtp-source -d -s 8: Postfix's C test client, 8 sessions, each kept open for several
  messages, pre-built message of the same length.

Prints messages/s of each, the CPU our process spent a message, and publisher /
smtp-source, at the default `delivery.smtp.in_flight = 1` (the ledger's crash bound: one
possible repeat per connection) and, in the same rounds, at `--compare` (8). The goal
stated for the client is >= 0.5x into smtp-sink at the default. With `--processes N`
another contender runs in the same rounds: the same send with `delivery.processes = N`
(helper processes claiming from the ledger).

`--profile` first sends the same messages through the provider alone (one connection, no
ledger) under cProfile and prints microseconds per message: total, and each function's
own time, so what the client spends apart from waiting on the socket is in view; then
the whole send (ledger and threads included) under cProfile in every thread, per stage
(claiming, reader values, splice, socket writes and waits, waits for the ledger, commits),
at each window.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sink import enqueue_issue, print_windows, profiled_send, publication, send_issue, smtp_sink, timed_send

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
    parser.add_argument("--profile", action="store_true", help="first profile the provider alone, then the send")
    parser.add_argument("--in-flight", type=int, default=1,
                        help="delivery.smtp.in_flight of the send measured first (1, the product's default)")
    parser.add_argument("--compare", type=int, default=8,
                        help="in_flight of a second send in the same rounds, for comparison (0: none)")
    parser.add_argument("--connections", type=int, default=4,
                        help="delivery.smtp.connections and delivery.concurrency (4, the product's default)")
    args = parser.parse_args()

    windows = [args.in_flight] + ([args.compare] if args.compare and args.compare != args.in_flight else [])
    ours: dict[int, list[tuple[float, float]]] = {window: [] for window in windows}
    theirs, many = [], []
    with smtp_sink() as port, contextlib.ExitStack() as stack:
        configs = {}
        for window in windows:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            configs[window] = publication(folder, port, args.readers, connections=args.connections,
                                          extra=f"in_flight = {window}\n")
        config = configs[args.in_flight]
        other = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        several = publication(other, port, args.readers, processes=args.processes, connections=args.connections,
                              extra=f"in_flight = {args.in_flight}\n")
        if args.profile:
            profile(port, config, args.readers)
            for window in windows:
                issue, queued = enqueue_issue(configs[window], "profile")
                print(f"in_flight {window}:")
                profiled_send(configs[window], issue, queued)
        size = 0
        for run in range(args.runs):
            line = f"run {run + 1}:"
            for window in windows:
                issue, queued = enqueue_issue(configs[window], f"run{run}")
                size = size or message_size(configs[window], issue)
                ours[window].append(timed_send(configs[window], issue, queued))
                line += f" publisher in_flight {window} {ours[window][-1][0]:6.0f}/s ({ours[window][-1][1]:.0f} us CPU)"
            theirs.append(run_smtp_source(port, args.readers, size))
            line += f"   smtp-source {theirs[-1]:6.0f}/s"
            if args.processes > 1:
                issue, queued = enqueue_issue(several, f"run{run}")
                many.append(send_issue(several, issue, queued))
                line += f"   publisher x{args.processes} processes {many[-1]:6.0f}/s"
            print(line, flush=True)
    print(f"\n{args.readers} messages of {size:,} bytes into smtp-sink, median of {args.runs} interleaved runs, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"smtp-source -d -s 8 (Postfix, C): {statistics.median(theirs):7.0f} messages/s")
    print_windows({window: ours[window] for window in windows}, theirs, connections=args.connections, goal=0.5)
    if many:
        base = [rate for rate, _ in ours[args.in_flight]]
        best = statistics.median(m / t for m, t in zip(many, theirs, strict=True))
        gain = statistics.median(m / o for m, o in zip(many, base, strict=True))
        print(f"publisher, delivery.processes = {args.processes}: {statistics.median(many):7.0f} messages/s, "
              f"{best:.2f}x smtp-source, {gain:.2f}x one process")


if __name__ == "__main__":
    main()
