"""The SMTP client against Postfix's own, into a real Postfix: `publisher` vs `smtp-source -d -s 8`.

    .venv/bin/python benchmarks/postfix_delivery.py [--readers 2000] [--runs 3] [--profile]
        [--in-flight 1] [--compare 8] [--connections 8]

Starts Debian's Postfix (`apt-get install postfix`) with its own configuration and queue
in a temporary folder: smtpd listening on a free port of 127.0.0.1 only, every message
accepted from loopback, queued to disk by cleanup and handed by qmgr to the discard
transport. So both clients meet a real MTA (queue files written and fsynced, one smtpd
per session), not smtp-sink's drop-on-arrival. Postfix is stopped at the end, whatever
happens; the system's own Postfix (if any) is not touched.

In interleaved rounds, the same number of messages of the same size:

- publisher: the real path (ledger claims, per-reader splice, the smtp provider with its
  pool of 8 connections as smtp-source's 8 sessions (--connections), pipelined envelopes,
  answers committed as they come, a final dot waiting while `in_flight` of its session's
  are not), at the default in_flight 1 (one possible repeat per connection after a
  kill -9) and, in the same rounds, at `--compare` (8);
- smtp-source -d -s 8: Postfix's C test client, 8 sessions each kept open.

Prints messages/s of each, the CPU our process spent a message, and publisher /
smtp-source at each window. Goal: >= 0.8x at the default.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from sink import enqueue_issue, free_port, print_windows, profiled_send, publication, timed_send
from smtp_client import message_size, run_smtp_source

SERVICES = """\
{port} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
"""

MAIN = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.localdomain
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
default_transport = discard:benchmark
relay_transport = discard:benchmark
local_transport = discard:benchmark
default_process_limit = 100
smtpd_client_connection_count_limit = 0
smtpd_client_message_rate_limit = 0
message_size_limit = 0
biff = no
syslog_name = postfix-benchmark
"""


@contextlib.contextmanager
def postfix() -> Iterator[int]:
    """A Postfix of its own on a free loopback port; stopped (and its folder removed) after."""
    binary = shutil.which("postfix") or "/usr/sbin/postfix"
    if not Path(binary).exists():
        raise SystemExit("postfix not found: apt-get install postfix")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="postfix-bench-") as folder:
        root = Path(folder)
        root.chmod(0o755)  # Postfix's daemons run as `postfix` and must reach the queue
        conf = root / "conf"
        for name in ("queue", "data", "conf"):
            (root / name).mkdir()
        (conf / "main.cf").write_text(MAIN.format(root=root))
        (conf / "master.cf").write_text(SERVICES.format(port=f"127.0.0.1:{port}"))
        shutil.chown(root / "data", "postfix")
        started = subprocess.run([binary, "-c", str(conf), "start"], capture_output=True, text=True)
        if started.returncode:
            raise SystemExit(f"postfix did not start: {(started.stderr or started.stdout).strip()}")
        try:
            deadline = time.monotonic() + 20
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
                if time.monotonic() > deadline:
                    raise SystemExit("postfix did not listen within 20 s")
                time.sleep(0.1)
            yield port
        finally:
            subprocess.run([binary, "-c", str(conf), "stop"], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readers", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--in-flight", type=int, default=1,
                        help="delivery.smtp.in_flight of the send measured first (1, the product's default)")
    parser.add_argument("--compare", type=int, default=8,
                        help="in_flight of a second send in the same rounds, for comparison (0: none)")
    parser.add_argument("--connections", type=int, default=8,
                        help="publisher's sessions (delivery.concurrency and smtp connections); 8 as smtp-source's")
    parser.add_argument("--profile", action="store_true", help="first send once under cProfile, per stage")
    args = parser.parse_args()

    windows = [args.in_flight] + ([args.compare] if args.compare and args.compare != args.in_flight else [])
    ours: dict[int, list[tuple[float, float]]] = {window: [] for window in windows}
    theirs: list[float] = []
    with postfix() as port, contextlib.ExitStack() as stack:
        configs = {}
        for window in windows:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            configs[window] = publication(folder, port, args.readers, connections=args.connections,
                                          extra=f"in_flight = {window}\n")
        if args.profile:
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
            print(f"{line}   smtp-source {theirs[-1]:6.0f}/s", flush=True)
    print(f"\n{args.readers} messages of {size:,} bytes into Postfix (discard transport), "
          f"median of {args.runs} interleaved runs, load {os.getloadavg()[0]:.1f}")
    print(f"smtp-source -d -s 8 (Postfix, C): {statistics.median(theirs):7.0f} messages/s")
    print_windows({window: ours[window] for window in windows}, theirs, connections=args.connections, goal=0.8)


if __name__ == "__main__":
    main()
