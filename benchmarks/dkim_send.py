"""DKIM's cost on a real send: signed against unsigned into smtp-sink, in the same run.

    .venv/bin/python benchmarks/dkim_send.py [--readers 3000] [--runs 3] [--ed25519] [--processes N]
        [--in-flight 1] [--compare 8]

Publications share one smtp-sink, two per window: one with `[delivery.dkim]` (a fresh RSA-2048 key,
plus an Ed25519 one with --ed25519), one without. Rounds alternate unsigned, signed, so
drift on a shared machine hits both alike. Each round queues the newest sample article to
every reader and times `engine.deliver` until the ledger says all are sent.

Also prints the per-message cost of the splice alone, the splice with our signing, and
the splice with dkimpy's `dkim.sign` on the finished message (the path before).

The signed send makes its copies a few messages ahead in the SMTP provider's signing
threads (OpenSSL signs without the GIL), so signing overlaps the network waits. With
`--processes N` both publications send with `delivery.processes = N` (helper processes
claiming from the ledger) as well.

Each pair runs at the default `delivery.smtp.in_flight = 1` and, in the same rounds, at
`--compare` (8); the CPU our process spent a message is printed beside each rate.

Goal: signed >= 0.9x unsigned at the default.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import dkim
from sink import enqueue_issue, newest_article, publication, smtp_sink, timed_send

from publisher.config import Config
from publisher.mail import newsletter
from publisher.mail.mime import DKIM_HEADERS, MessageTemplate, Recipient, message_id_for

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def per_message_ms(config: Config, signed: Config, count: int = 400) -> tuple[float, float, float]:
    article = newest_article(config)
    rendered = newsletter.render_issue(config, newsletter.issue_for_article(config, article), NOW)
    plain = MessageTemplate.from_rendered(config, rendered)
    ours = MessageTemplate.from_rendered(signed, rendered)
    key = Path(str(signed.path_of("delivery.dkim.private_key_file"))).read_bytes()
    readers = [
        Recipient(n, f"reader{n}@example.org", f"Reader {n}", f"https://example.org/unsubscribe/{n}",
                  message_id_for(f"i1.d{n}", "example.org"))
        for n in range(count)
    ]

    def median(make: object, n: int) -> float:
        times = []
        for reader in readers[:n]:
            started = time.perf_counter()
            make(reader)  # type: ignore[operator]
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000

    splice = median(lambda r: plain.message_bytes(r, NOW), count)
    signed_ms = median(lambda r: ours.message_bytes(r, NOW), count)
    dkimpy = median(
        lambda r: dkim.sign(plain.message_bytes(r, NOW), b"news", b"example.org", key,
                            include_headers=list(DKIM_HEADERS), canonicalize=(b"relaxed", b"relaxed")),
        min(count, 60),
    )
    return splice, signed_ms, dkimpy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readers", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ed25519", action="store_true", help="dual signatures: RSA and Ed25519")
    parser.add_argument("--processes", type=int, default=1, help="delivery.processes of both publications")
    parser.add_argument("--in-flight", type=int, default=1,
                        help="delivery.smtp.in_flight of the sends measured first (1, the product's default)")
    parser.add_argument("--compare", type=int, default=8,
                        help="in_flight of a second pair of sends in the same rounds, for comparison (0: none)")
    args = parser.parse_args()

    windows = [args.in_flight] + ([args.compare] if args.compare and args.compare != args.in_flight else [])
    rates: dict[tuple[str, int], list[tuple[float, float]]] = {}
    with smtp_sink() as port, tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "key").mkdir()
        subprocess.run(["openssl", "genrsa", "-out", str(root / "key" / "dkim.pem"), "2048"],
                       check=True, capture_output=True)
        signing = (f'[delivery.dkim]\ndomain = "example.org"\nselector = "news"\n'
                   f'private_key_file = "{root / "key" / "dkim.pem"}"\n')
        if args.ed25519:
            subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(root / "key" / "ed.pem")],
                           check=True, capture_output=True)
            signing += f'ed25519_selector = "ed"\ned25519_key_file = "{root / "key" / "ed.pem"}"\n'
        configs: dict[tuple[str, int], Config] = {}
        for window in windows:
            for kind in ("unsigned", "signed"):
                (root / f"{kind}{window}").mkdir()
                extra = f"in_flight = {window}\n" + (signing if kind == "signed" else "")
                configs[(kind, window)] = publication(root / f"{kind}{window}", port, args.readers, extra=extra,
                                                      processes=args.processes)
                rates[(kind, window)] = []

        splice, ours, dkimpy = per_message_ms(configs[("unsigned", windows[0])], configs[("signed", windows[0])])
        for run in range(args.runs):
            line = f"run {run + 1}:"
            for (kind, window), config in configs.items():
                issue, queued = enqueue_issue(config, f"{kind}{run}")
                rates[(kind, window)].append(timed_send(config, issue, queued))
                rate, cpu = rates[(kind, window)][-1]
                line += f"  {kind} in_flight {window} {rate:6.0f}/s ({cpu:.0f} us CPU)"
            print(line, flush=True)

    kind = "RSA-2048 + Ed25519" if args.ed25519 else "RSA-2048"
    print(f"\n{args.readers} readers, 4 connections into smtp-sink, delivery.processes = {args.processes}, "
          f"median of {args.runs} interleaved runs, load {os.getloadavg()[0]:.1f}")
    print(f"per message: splice {splice:.3f} ms; splice + our {kind} signing {ours:.3f} ms; "
          f"splice + dkimpy.sign {dkimpy:.2f} ms")
    for window in windows:
        plain, signed = rates[("unsigned", window)], rates[("signed", window)]
        ratio = statistics.median(s / u for (s, _), (u, _) in zip(signed, plain, strict=True))
        default = " (the default)" if window == 1 else ""
        verdict = f" (goal >= 0.9x: {'met' if ratio >= 0.9 else 'MISSED'})" if window == 1 else ""
        print(f"in_flight {window}{default}: unsigned {statistics.median(r for r, _ in plain):7.0f} messages/s "
              f"({statistics.median(c for _, c in plain):.0f} us CPU), signed "
              f"{statistics.median(r for r, _ in signed):7.0f} messages/s "
              f"({statistics.median(c for _, c in signed):.0f} us CPU, {kind}); signed / unsigned "
              f"{ratio:.2f}x, median of per-run ratios{verdict}")


if __name__ == "__main__":
    main()
