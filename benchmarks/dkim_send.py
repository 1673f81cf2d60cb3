"""DKIM's cost on a real send: signed against unsigned into smtp-sink, in the same run.

    .venv/bin/python benchmarks/dkim_send.py [--readers 3000] [--runs 3] [--ed25519] [--processes N]

Two publications share one smtp-sink: one with `[delivery.dkim]` (a fresh RSA-2048 key,
plus an Ed25519 one with --ed25519), one without. Rounds alternate unsigned, signed, so
drift on a shared machine hits both alike. Each round queues the newest sample article to
every reader and times `engine.deliver` until the ledger says all are sent.

Also prints the per-message cost of the splice alone, the splice with our signing, and
the splice with dkimpy's `dkim.sign` on the finished message (the path before).

The signed send makes its copies a few messages ahead in the SMTP provider's signing
threads (OpenSSL signs without the GIL), so signing overlaps the network waits. With
`--processes N` both publications send with `delivery.processes = N` (helper processes
claiming from the ledger) as well.

Goal: signed >= 0.9x unsigned.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import dkim
from sink import enqueue_issue, newest_article, publication, send_issue, smtp_sink

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
    args = parser.parse_args()

    with smtp_sink() as port, tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "plain").mkdir()
        (root / "signed").mkdir()
        subprocess.run(["openssl", "genrsa", "-out", str(root / "signed" / "dkim.pem"), "2048"],
                       check=True, capture_output=True)
        extra = '[delivery.dkim]\ndomain = "example.org"\nselector = "news"\nprivate_key_file = "dkim.pem"\n'
        if args.ed25519:
            subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(root / "signed" / "ed.pem")],
                           check=True, capture_output=True)
            extra += 'ed25519_selector = "ed"\ned25519_key_file = "ed.pem"\n'
        plain = publication(root / "plain", port, args.readers, processes=args.processes)
        signed = publication(root / "signed", port, args.readers, extra=extra, processes=args.processes)

        splice, ours, dkimpy = per_message_ms(plain, signed)
        unsigned_rates, signed_rates = [], []
        for run in range(args.runs):
            issue, queued = enqueue_issue(plain, f"plain{run}")
            unsigned_rates.append(send_issue(plain, issue, queued))
            issue, queued = enqueue_issue(signed, f"signed{run}")
            signed_rates.append(send_issue(signed, issue, queued))
            print(f"run {run + 1}: unsigned {unsigned_rates[-1]:7.0f}/s   signed {signed_rates[-1]:7.0f}/s",
                  flush=True)

    kind = "RSA-2048 + Ed25519" if args.ed25519 else "RSA-2048"
    m_plain, m_signed = statistics.median(unsigned_rates), statistics.median(signed_rates)
    ratios = statistics.median(s / u for s, u in zip(signed_rates, unsigned_rates, strict=True))
    print(f"\n{args.readers} readers, 4 connections into smtp-sink, delivery.processes = {args.processes}, "
          f"median of {args.runs} interleaved runs")
    print(f"per message: splice {splice:.3f} ms; splice + our {kind} signing {ours:.3f} ms; "
          f"splice + dkimpy.sign {dkimpy:.2f} ms")
    print(f"unsigned send: {m_plain:7.0f} messages/s")
    print(f"signed send:   {m_signed:7.0f} messages/s  ({kind})")
    print(f"signed / unsigned: {m_signed / m_plain:.2f}x  median of per-run ratios {ratios:.2f}x  "
          f"(goal >= 0.9x: {'met' if ratios >= 0.9 else 'MISSED'})")


if __name__ == "__main__":
    main()
