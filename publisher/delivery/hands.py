"""More hands for one send: `delivery.processes` sending processes instead of one.

One Python process keeps one core busy; signing, splicing and talking to the provider
for a large list can use more. `extra_hands` starts up to `delivery.processes - 1` helper
processes beside the caller's own send, one for every `BATCHES_PER_HAND` batches due
(`delivery.batch_size` rows each): a process takes about a second to start, and below
that one sender is done before a helper begins.

Each helper is a `publisher worker --once` on the same config file: it claims rows from
the ledger (leases, `FOR UPDATE SKIP LOCKED` on PostgreSQL), so no row is sent by two of
them, and it stops when nothing is due. The caller's `deliver` does its share meanwhile;
leaving the block waits for the helpers and counts what they sent. `delivery.rate` stays
one budget for all of them (SharedBucket).

Stopping: helpers run in their own process group, so a Ctrl-C on the terminal reaches the
caller alone; the caller's stop event is passed on as one SIGTERM, which a worker takes
as "finish the messages in flight, put the rest back". A caller that dies (even by
SIGKILL) takes its helpers with it the same way (SIGTERM on the parent's death, on
Linux): stopping a send stops all of it. A helper that dies is like any dead sender: its
rows come back through `ledger.recover`, flagged uncertain.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Iterator
from multiprocessing.process import BaseProcess
from multiprocessing.queues import SimpleQueue

from publisher.config import Config

__all__ = ["BATCHES_PER_HAND", "Hands", "extra_hands"]

log = logging.getLogger(__name__)

BATCHES_PER_HAND = 8
_PR_SET_PDEATHSIG = 1


def _stop_with(parent: int) -> None:
    """Have SIGTERM sent to this process when `parent` dies (Linux's PR_SET_PDEATHSIG), so
    that killing a send, even with SIGKILL, stops its helpers too: a helper then finishes
    what it has in flight and puts the rest back, as on any stop."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the request was in place
        os.kill(os.getpid(), signal.SIGTERM)


def _hand(config_path: str, env: dict[str, str], parent: int, results: SimpleQueue[int]) -> None:
    """One helper process: a worker that sends what is due, then stops."""
    from publisher.config import load_config
    from publisher.delivery.worker import run_worker

    os.setpgrp()
    _stop_with(parent)
    sent = 0
    try:
        sent = run_worker(load_config(config_path, env=env), once=True)
    finally:
        results.put(sent)


class Hands:
    """The helper processes of one send, and what they sent once they are done."""

    def __init__(self, processes: list[BaseProcess], results: SimpleQueue[int] | None) -> None:
        self.processes = processes
        self._results = results
        self.sent = 0

    def __len__(self) -> int:
        return len(self.processes)

    def stop(self) -> None:
        """Ask each helper to finish what it has in flight and put the rest back."""
        for process in self.processes:
            if process.pid is not None and process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)

    def join(self) -> None:
        for process in self.processes:
            process.join()
        if self._results is not None:
            while not self._results.empty():
                self.sent += self._results.get()
        failed = [p.exitcode for p in self.processes if p.exitcode not in (0, None)]
        if failed:
            log.warning("%s sending process(es) stopped with an error (exit %s); their rows go back "
                        "to the queue", len(failed), ", ".join(map(str, failed)))


@contextlib.contextmanager
def extra_hands(config: Config, *, due: int, stop: threading.Event | None = None) -> Iterator[Hands]:
    """Helper senders for the duration of the block, when `due` rows make them worth it.

    None when `delivery.processes` is 1 or the config has no file to hand over (a config
    built in memory). `stop`, when it is set, is passed on to the helpers.
    """
    worth = due // (BATCHES_PER_HAND * int(config["delivery.batch_size"]))
    count = min(int(config["delivery.processes"]) - 1, worth)
    if count <= 0 or config.path is None:
        yield Hands([], None)
        return
    context = multiprocessing.get_context("spawn")
    results: SimpleQueue[int] = context.SimpleQueue()
    processes: list[BaseProcess] = [
        context.Process(target=_hand, args=(str(config.path), dict(config.env), os.getpid(), results),
                        name=f"publisher-hand-{n}", daemon=False)
        for n in range(count)
    ]
    for process in processes:
        process.start()
    hands = Hands(processes, results)
    watcher_done = threading.Event()

    def pass_on_stop() -> None:
        while stop is not None and not watcher_done.is_set():
            if stop.wait(0.2):
                hands.stop()
                return

    watcher = threading.Thread(target=pass_on_stop, name="hands-stop", daemon=True)
    watcher.start()
    try:
        yield hands
    except BaseException:
        hands.stop()
        raise
    finally:
        hands.join()
        watcher_done.set()
        watcher.join()
