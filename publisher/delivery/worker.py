"""`publisher worker`: sending and nothing else, on any machine that reaches the database.

A worker has no HTTP app and no scheduler: it requeues rows that dead senders left in
flight, delivers every due ledger row (claims with `FOR UPDATE SKIP LOCKED` on
PostgreSQL, so workers split the queue without waiting on each other), then looks again
every `interval` seconds until SIGINT or SIGTERM. `publisher serve` (or `publisher send`)
still decides what is queued; workers only add hands. `delivery.rate` is one budget for
all of them (see delivery/ratelimit.py's SharedBucket).

Stopping (SIGTERM, however often it comes, or one SIGINT; a second SIGINT quits at once)
finishes the messages in flight and records them; claimed rows not yet tried go back to
the queue. A `kill -9` leaves its rows to `ledger.recover`, as for any sender.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType

from publisher.config import Config
from publisher.delivery import engine
from publisher.delivery.sending import deliver_queued
from publisher.store import ledger, open_store

__all__ = ["run_worker"]

log = logging.getLogger(__name__)


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            # A second Ctrl-C is a person who will not wait; a repeated SIGTERM (a supervisor
            # asking again, or the kernel telling a helper twice that its parent died) is
            # still the polite request, already under way.
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        log.info("stopping: finishing the messages in flight")
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_worker(config: Config, *, once: bool = False, interval: float = 1.0,
               stop: threading.Event | None = None) -> int:
    """Deliver due rows until stopped (or, with `once`, until none is due); messages sent."""
    stop = stop or threading.Event()
    db = open_store(config.store_url)
    worker = ledger.new_worker_id()
    sent = 0
    log.info("worker %s sending for %s", worker, config["publication.title"])
    try:
        with _stop_on_signals(stop):
            while not stop.is_set():
                now = datetime.now(UTC)
                recovered = ledger.recover(db, now=now, lease=engine.lease_for(config))
                if recovered.count:
                    log.warning("%s messages were in flight when their sender stopped: queued again, "
                                "marked uncertain", recovered.count)
                sent += deliver_queued(config, db, stop=stop, worker=worker)
                if once:
                    break
                stop.wait(interval)
    finally:
        db.dispose()
    log.info("worker %s stopped after %s messages", worker, sent)
    return sent
