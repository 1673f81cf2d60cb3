"""Shared pieces of the sending benchmarks: Postfix's smtp-sink on loopback, a publication
with N readers, and one timed send through the real path (render, ledger, engine).

smtp-sink (Debian: `apt-get install postfix`) accepts and drops every message in C, so
the ceiling it sets is far above what any Python client reaches: what is measured is the
client.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from publisher import content
from publisher.config import Config, load_config
from publisher.delivery.engine import deliver
from publisher.delivery.hands import extra_hands
from publisher.delivery.smtp import SmtpProvider
from publisher.mail import newsletter
from publisher.store import ledger, open_store
from publisher.store.schema import subscribers

SECRET = "b" * 40
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def smtp_sink(backlog: int = 256) -> Iterator[int]:
    """smtp-sink on a free loopback port (with PIPELINING, as Postfix offers it)."""
    binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not Path(binary).exists():
        raise SystemExit("smtp-sink not found: apt-get install postfix (it ships smtp-sink and smtp-source)")
    port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    process = subprocess.Popen([binary, *user, f"127.0.0.1:{port}", str(backlog)])
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise SystemExit("smtp-sink did not start")
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait()


def publication(root: Path, port: int, readers: int, *, extra: str = "", connections: int = 4,
                store_url: str = "", processes: int = 1) -> Config:
    """A publication in `root` sending to 127.0.0.1:`port`, with `readers` active readers."""
    if not (root / "content").exists():
        (root / "content").symlink_to(ROOT / "content")
    store = f'\n[store]\nurl = "{store_url}"\n' if store_url else ""
    (root / "config.toml").write_text(
        f"""
[publication]
title = "Benchmark"
url = "https://example.org/"
postal_address = "1 Test Street, Testville"

[newsletter]
from = "Bench <news@example.org>"

[delivery]
provider = "smtp"
concurrency = {connections}
batch_size = 50
processes = {processes}

[delivery.smtp]
host = "127.0.0.1"
port = {port}
security = "none"
connections = {connections}
{extra}{store}"""
    )
    os.environ["PUBLISHER_SECRET"] = SECRET
    config = load_config(root / "config.toml")
    db = open_store(config.store_url)
    now = datetime.now(UTC)
    with db.begin() as conn:
        if conn.execute(sa.select(sa.func.count()).select_from(subscribers)).scalar_one() == 0:
            conn.execute(
                sa.insert(subscribers),
                [
                    {"email": f"reader{n}@example.org", "name": f"Reader {n}", "status": "active",
                     "source": "bench", "created_at": now, "updated_at": now}
                    for n in range(readers)
                ],
            )
    db.dispose()
    return config


def newest_article(config: Config) -> content.Article:  # type: ignore[name-defined]
    now = datetime.now(UTC)
    return next(a for a in content.load_articles(config) if a.is_public(now))


def enqueue_issue(config: Config, key: str) -> tuple[int, int]:
    """Render the newest article once and queue it to every reader: (issue id, rows)."""
    db = open_store(config.store_url)
    article = newest_article(config)
    now = datetime.now(UTC)
    rendered = newsletter.render_issue(config, newsletter.issue_for_article(config, article), now)
    issue = ledger.create_issue(
        db, key=f"{article.id}#{key}", kind="article", slug=article.slug, subject=rendered.subject,
        html=rendered.html, text=rendered.text, tag=None, status="sending", now=now,
    )
    queued = ledger.enqueue(db, issue, now=now)
    db.dispose()
    return issue, queued


def send_issue(config: Config, issue: int, queued: int) -> float:
    """Deliver one queued issue through the smtp provider: messages per second."""
    return timed_send(config, issue, queued)[0]


def timed_send(config: Config, issue: int, queued: int) -> tuple[float, float]:
    """`send_issue`: (messages per second, this process's CPU in microseconds a message,
    every thread's, which on a loaded machine says more than the rate)."""
    db = open_store(config.store_url)
    provider = SmtpProvider.from_config(config)
    started = time.perf_counter()
    cpu = time.process_time()
    stop = threading.Event()
    try:
        # `delivery.processes` > 1: helper processes claim from the same ledger (delivery/hands.py).
        with extra_hands(config, due=queued, stop=stop) as hands:
            report = deliver(config, db, provider, stop=stop, issue_id=issue, secret=SECRET)
    finally:
        provider.close()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    assert report.sent + hands.sent == queued, (report, hands.sent, queued)
    db.dispose()
    return queued / elapsed, cpu / queued * 1e6


PHASES = (
    ("claim rows (ledger)", (("engine.py", "_claim_rows"),)),
    ("reader values: tokens, VERP", (("engine.py", "_recipients"), ("engine.py", "_make"))),
    ("splice + DKIM (wire_bytes)", (("mime.py", "wire_bytes"),)),
    ("SMTP: write to the socket", (("~", "<method 'sendall' of '_socket.socket' objects>"),)),
    ("SMTP: wait for answers", (("~", "<method 'recv_into' of '_socket.socket' objects>"),)),
    ("senders waiting for answers' commit",
     (("engine.py", "wait"), ("recording.py", "wait"), ("recording.py", "_wait"))),
    ("record answers (recorder thread)", (("engine.py", "_commit"), ("engine.py", "_commit_group"))),
)
"""Named stages of a send: (label, (file, function)...) whose cumulative time the profile
shows (the functions of this version and of the one before, to compare)."""


def profiled_send(config: Config, issue: int, queued: int, top: int = 12) -> float:
    """`send_issue` under cProfile in every thread: prints microseconds a message per stage
    (cumulative wall time, summed over threads, so stages that overlap add up to more than
    the elapsed time) and the functions with the most time of their own; messages/s."""
    import cProfile
    import pstats

    profiles: list[cProfile.Profile] = []
    original = threading.Thread.run

    def run(self: threading.Thread) -> None:
        profile = cProfile.Profile()
        profiles.append(profile)
        profile.enable()
        try:
            original(self)
        finally:
            profile.disable()

    threading.Thread.run = run  # type: ignore[method-assign]
    main = cProfile.Profile()
    profiles.append(main)
    cpu = time.process_time()
    try:
        main.enable()
        rate = send_issue(config, issue, queued)
        main.disable()
    finally:
        threading.Thread.run = original  # type: ignore[method-assign]
    cpu = time.process_time() - cpu
    stats = pstats.Stats(profiles[0])
    for profile in profiles[1:]:
        if profile.getstats():
            stats.add(profile)
    table = stats.stats  # type: ignore[attr-defined]
    print(f"whole send under cProfile (every thread): {rate:.0f} messages/s, "
          f"process CPU {cpu / queued * 1e6:.0f} us a message")
    for label, places in PHASES:
        found = [(calls, cum) for (file, _line, func), (_c, calls, _own, cum, _) in table.items()
                 if (file.rpartition("/")[2], func) in places]
        if found:
            calls = sum(c for c, _ in found)
            cumulative = sum(t for _, t in found)
            print(f"  {cumulative / queued * 1e6:8.1f} us/message  {calls / queued:5.2f} calls  {label}")
    rows = sorted(((own, calls, f"{file.rpartition('/')[2]}:{func}")
                   for (file, _line, func), (_c, calls, own, _cum, _) in table.items()), reverse=True)
    print("  functions with the most time of their own:")
    for own, calls, where in rows[:top]:
        print(f"  {own / queued * 1e6:8.1f} us/message  {calls / queued:5.2f} calls  {where}")
    print(flush=True)
    return rate


def print_windows(ours: dict[int, list[tuple[float, float]]], theirs: list[float], *, connections: int,
                  goal: float) -> None:
    """One line per `in_flight` window: our median rate and CPU a message (`timed_send`'s
    pairs), and the median of the per-run ratios to smtp-source's `theirs`, with the goal's
    verdict for the default window (1)."""
    for window, runs in ours.items():
        rates = [rate for rate, _ in runs]
        ratio = statistics.median(o / t for o, t in zip(rates, theirs, strict=True))
        default = " (the default)" if window == 1 else ""
        verdict = f"; goal >= {goal}x: {'met' if ratio >= goal else 'MISSED'}" if window == 1 else ""
        print(f"publisher, {connections} connections, in_flight {window}{default}: "
              f"{statistics.median(rates):7.0f} messages/s, "
              f"{statistics.median(cpu for _, cpu in runs):.0f} us CPU a message, "
              f"{ratio:.2f}x smtp-source (median of per-run ratios{verdict})")
