"""End-to-end sending speed into a local SMTP server, against two baselines in the same run.

    .venv/bin/python benchmarks/send_smtp.py [--readers 2000] [--naive 150] [--runs 3]

The server is aiosmtpd in a separate process with a handler that accepts and drops every
message (a Python server: the ceiling it sets is the same for all three pipelines).

- publisher: the real path. Render the issue once, snapshot it, enqueue every reader
  (INSERT ... SELECT), then `engine.deliver` through the smtp provider (its pool of
  `connections` persistent connections, `delivery.concurrency` threads, ledger claims and
  records per batch) until the ledger says every row is sent.
- naive: per recipient Jinja + premailer (`newsletter.render_issue`), an
  `email.message.EmailMessage` and a new SMTP connection. Only --naive messages are
  sent this way (it is slow); its rate is per message all the same.
- bare replay: the same server taking pre-built message bytes from a bare smtplib client
  over the same number of persistent connections, no database, no personalisation:
  the most this server accepts from this machine.

Prints the median messages/s of --runs runs of each, and the two ratios the project
aims for: publisher >= 10x naive, publisher >= 60% of bare replay.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import smtplib
import socket
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import sqlalchemy as sa

from publisher import content
from publisher.config import Config, load_config
from publisher.delivery.engine import deliver
from publisher.delivery.smtp import SmtpProvider
from publisher.mail import newsletter
from publisher.mail.newsletter import MessageTemplate, Recipient, message_id_for
from publisher.store import ledger, open_store
from publisher.store.schema import subscribers

CONNECTIONS = 4
SECRET = "b" * 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(port: int, ready: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    """The null SMTP server: accept, count nothing, keep nothing."""
    from aiosmtpd.controller import Controller

    class Null:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            return "250 OK"

    controller = Controller(Null(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    threading.Event().wait()


def publication(root: Path, port: int, readers: int) -> Config:
    repo = Path(__file__).resolve().parent.parent
    (root / "content").symlink_to(repo / "content")
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
concurrency = {CONNECTIONS}
batch_size = 50

[delivery.smtp]
host = "127.0.0.1"
port = {port}
security = "none"
connections = {CONNECTIONS}
"""
    )
    os.environ["PUBLISHER_SECRET"] = SECRET
    config = load_config(root / "config.toml")
    db = open_store(config.store_url)
    now = datetime.now(UTC)
    with db.begin() as conn:
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


def run_publisher(config: Config, run: int) -> float:
    """Render once, snapshot, enqueue, deliver: messages per second for the whole send."""
    db = open_store(config.store_url)
    article = newest_article(config)
    started = time.perf_counter()
    now = datetime.now(UTC)
    rendered = newsletter.render_issue(config, newsletter.issue_for_article(config, article), now)
    issue = ledger.create_issue(
        db, key=f"{article.id}#run{run}", kind="article", slug=article.slug, subject=rendered.subject,
        html=rendered.html, text=rendered.text, tag=None, status="sending", now=now,
    )
    queued = ledger.enqueue(db, issue, now=now)
    provider = SmtpProvider.from_config(config)
    try:
        report = deliver(config, db, provider, stop=threading.Event(), issue_id=issue, secret=SECRET)
    finally:
        provider.close()
    elapsed = time.perf_counter() - started
    assert report.sent == queued, (report, queued)
    db.dispose()
    return queued / elapsed


def run_naive(config: Config, count: int, port: int) -> float:
    """Per recipient: Jinja + premailer, EmailMessage, a new SMTP connection."""
    article = newest_article(config)
    issue = newsletter.issue_for_article(config, article)
    started = time.perf_counter()
    for n in range(count):
        rendered = newsletter.render_issue(config, issue, datetime.now(UTC))
        message = EmailMessage()
        message["From"] = str(config["newsletter.from"])
        message["To"] = f"Reader {n} <reader{n}@example.org>"
        message["Subject"] = rendered.subject
        message["List-Unsubscribe"] = f"<https://example.org/unsubscribe/{n}>"
        message.set_content(rendered.text, cte="quoted-printable")
        message.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.send_message(message)
    return count / (time.perf_counter() - started)


def prebuilt(config: Config, readers: int) -> list[tuple[str, bytes]]:
    article = newest_article(config)
    rendered = newsletter.render_issue(config, newsletter.issue_for_article(config, article), datetime.now(UTC))
    template = MessageTemplate.from_rendered(config, rendered)
    now = datetime.now(UTC)
    out = []
    for n in range(readers):
        recipient = Recipient(
            delivery_id=n, email=f"reader{n}@example.org", name=f"Reader {n}",
            unsubscribe_url=f"https://example.org/unsubscribe/{n}",
            message_id=message_id_for(f"i1.d{n}", "example.org"),
        )
        out.append((recipient.email, template.message_bytes(recipient, now)))
    return out


def run_bare(messages: list[tuple[str, bytes]], port: int) -> float:
    """Replay pre-built bytes over CONNECTIONS persistent connections, one thread each."""
    shares = [messages[i::CONNECTIONS] for i in range(CONNECTIONS)]

    def replay(share: list[tuple[str, bytes]]) -> None:
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            for address, raw in share:
                smtp.sendmail("news@example.org", [address], raw)

    threads = [threading.Thread(target=replay, args=(share,)) for share in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(messages) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readers", type=int, default=2000)
    parser.add_argument("--naive", type=int, default=150, help="messages sent the naive way per run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    port = free_port()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=serve, args=(port, ready), daemon=True)
    server.start()
    ready.wait(10)
    try:
        with tempfile.TemporaryDirectory() as folder:
            config = publication(Path(folder), port, args.readers)
            messages = prebuilt(config, args.readers)
            ours, naive, bare = [], [], []
            for run in range(args.runs):
                ours.append(run_publisher(config, run))
                bare.append(run_bare(messages, port))
                naive.append(run_naive(config, args.naive, port))
                print(f"run {run + 1}: publisher {ours[-1]:7.0f}/s   bare replay {bare[-1]:7.0f}/s   "
                      f"naive {naive[-1]:5.1f}/s", flush=True)
    finally:
        server.terminate()
        server.join()
    m_ours, m_naive, m_bare = (statistics.median(x) for x in (ours, naive, bare))
    size = len(messages[0][1])
    print(f"\n{args.readers} readers, {size:,}-byte messages, {CONNECTIONS} connections, "
          f"aiosmtpd null server in its own process, median of {args.runs} runs")
    print(f"publisher (render once, ledger, smtp pool): {m_ours:8.0f} messages/s")
    print(f"naive (premailer + EmailMessage + connect): {m_naive:8.1f} messages/s")
    print(f"bare replay of pre-built bytes:             {m_bare:8.0f} messages/s")
    # The machine is shared: runs drift together, so per-run ratios are steadier than medians.
    vs_naive = statistics.median(o / n for o, n in zip(ours, naive, strict=True))
    vs_bare = statistics.median(o / b for o, b in zip(ours, bare, strict=True))
    print(f"publisher / naive:       {m_ours / m_naive:6.1f}x   median of per-run ratios "
          f"{vs_naive:5.1f}x   (target >= 10x)")
    print(f"publisher / bare replay: {m_ours / m_bare:6.0%}   median of per-run ratios "
          f"{vs_bare:5.0%}   (target >= 60%)")


if __name__ == "__main__":
    main()
