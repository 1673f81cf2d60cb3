"""Hostile HTTP servers on 127.0.0.1 for the tests that prove nothing outside can stall us.

Each server accepts any number of connections, treats each on a thread of its own, and
stops by itself after `lifetime` seconds or when its block ends, whichever comes first:
a test that fails never leaves one behind.

    drip    answers "HTTP/1.1 200 OK" and then one header byte every `interval` seconds,
            never finishing: each read is quick, the whole never ends
    hang    reads the request and answers nothing until it stops
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = ["Hostile", "drip", "hang"]


@dataclass
class Hostile:
    url: str
    stopping: threading.Event
    connections: list[float] = field(default_factory=list)
    """When each connection was accepted (time.monotonic())."""


def _serve(handle: Callable[[socket.socket, threading.Event], None], lifetime: float) -> Iterator[Hostile]:
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    listener.settimeout(0.05)
    stopping = threading.Event()
    hostile = Hostile(url=f"http://127.0.0.1:{listener.getsockname()[1]}", stopping=stopping)
    threads: list[threading.Thread] = []
    end = time.monotonic() + lifetime

    def accept() -> None:
        while not stopping.is_set() and time.monotonic() < end:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            hostile.connections.append(time.monotonic())
            worker = threading.Thread(target=_guarded, args=(handle, conn, stopping), daemon=True)
            threads.append(worker)
            worker.start()
        stopping.set()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    timer = threading.Timer(lifetime, stopping.set)
    timer.daemon = True
    timer.start()
    try:
        yield hostile
    finally:
        stopping.set()
        timer.cancel()
        acceptor.join(5)
        listener.close()
        for worker in threads:
            worker.join(5)


def _guarded(handle: Callable[[socket.socket, threading.Event], None], conn: socket.socket,
             stopping: threading.Event) -> None:
    with conn:
        try:
            conn.settimeout(1.0)
            handle(conn, stopping)
        except OSError:
            pass  # the client gave up: that is the point


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            wanted = int(line.split(b":", 1)[1]) - len(rest)
            while wanted > 0:
                chunk = conn.recv(min(wanted, 65536))
                if not chunk:
                    return
                wanted -= len(chunk)


@contextmanager
def drip(interval: float = 1.0, lifetime: float = 30.0) -> Iterator[Hostile]:
    """A server that sends its answer's headers one byte every `interval` seconds, forever."""

    def handle(conn: socket.socket, stopping: threading.Event) -> None:
        _read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
        while not stopping.wait(interval):
            conn.sendall(b"a")

    yield from _serve(handle, lifetime)


@contextmanager
def hang(lifetime: float = 30.0) -> Iterator[Hostile]:
    """A server that accepts, reads the request, and never answers."""

    def handle(conn: socket.socket, stopping: threading.Event) -> None:
        _read_request(conn)
        stopping.wait()

    yield from _serve(handle, lifetime)
