"""A real SMTP server (aiosmtpd) on 127.0.0.1 that counts what it receives.

    server = SMTPServer().start()        # or the `smtp_server` fixture
    server.answer("busy@example.org", "451 4.3.0 Try again later")     # at RCPT
    server.answer_data("big@example.org", "552 5.3.4 Message too big") # after DATA
    ... send to server.host, server.port ...
    server.count("ann@example.org")      # copies received for one address
    server.messages[0].data              # raw bytes as received
    server.connections                   # sessions opened so far
    server.drop_connections()            # close every open session (server side)
    server.stop()

Scripted answers stay until `forget(address)`; pass `times=n` to answer n times only.
`delay` makes the server wait that long before answering DATA (a hanging server).
`SMTPServer(pipelining=True)` offers PIPELINING (RFC 2920) in its EHLO answer.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import threading
import time
from collections import Counter
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

__all__ = ["Received", "SMTPServer"]


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes

    def parsed(self) -> EmailMessage:
        message = email.parser.BytesParser(policy=email.policy.default).parsebytes(self.data)
        assert isinstance(message, EmailMessage)
        return message


class _Scripted:
    def __init__(self, reply: str, times: int | None) -> None:
        self.reply = reply
        self.times = times


class _Handler:
    def __init__(self, server: SMTPServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self.server._take(self.server._rcpt_replies, address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.server.delay:
            await asyncio.sleep(self.server.delay)
        for address in envelope.rcpt_tos:
            reply = self.server._take(self.server._data_replies, address)
            if reply is not None:
                return reply
        content = envelope.content
        data = content if isinstance(content, bytes) else str(content).encode()
        received = Received(str(envelope.mail_from), tuple(envelope.rcpt_tos), data)
        with self.server._lock:
            self.server.messages.append(received)
            self.server._counts.update(address.lower() for address in envelope.rcpt_tos)
        return "250 2.0.0 Ok: queued"


class _PipeliningHandler(_Handler):
    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]


class SMTPServer:
    def __init__(self, *, tls_context: Any = None, require_starttls: bool = False,
                 authenticator: Any = None, pipelining: bool = False, **smtp_options: Any) -> None:
        self.messages: list[Received] = []
        self.delay = 0.0
        self._counts: Counter[str] = Counter()
        self._rcpt_replies: dict[str, _Scripted] = {}
        self._data_replies: dict[str, _Scripted] = {}
        self._lock = threading.Lock()
        self._sessions: list[SMTP] = []
        self._opened = 0
        self._running = False
        options = dict(smtp_options)
        if tls_context is not None:
            options.update(tls_context=tls_context, require_starttls=require_starttls)
        if authenticator is not None:
            options.update(authenticator=authenticator, auth_require_tls=tls_context is not None)
        handler = _PipeliningHandler(self) if pipelining else _Handler(self)
        self._controller = _Controller(self, handler, **options)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self._controller.port)

    @property
    def connections(self) -> int:
        """SMTP sessions opened since start()."""
        with self._lock:
            return self._opened

    def start(self) -> SMTPServer:
        self._controller.start()
        self._running = True
        with self._lock:
            self._opened = 0  # the controller's own start-up probe does not count
            self._sessions.clear()
        return self

    def stop(self) -> None:
        """Stop listening (again is fine: a test may stop the server mid-send)."""
        with self._lock:
            running, self._running = self._running, False
        if running:
            self._controller.stop()

    def __enter__(self) -> SMTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def answer(self, address: str, reply: str, *, times: int | None = None) -> None:
        """Answer RCPT TO for `address` with `reply` (e.g. "450 4.2.1 Mailbox busy")."""
        with self._lock:
            self._rcpt_replies[address.lower()] = _Scripted(reply, times)

    def answer_data(self, address: str, reply: str, *, times: int | None = None) -> None:
        """Answer the end of DATA with `reply` for messages addressed to `address`."""
        with self._lock:
            self._data_replies[address.lower()] = _Scripted(reply, times)

    def forget(self, address: str) -> None:
        with self._lock:
            self._rcpt_replies.pop(address.lower(), None)
            self._data_replies.pop(address.lower(), None)

    def count(self, address: str) -> int:
        with self._lock:
            return self._counts[address.lower()]

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(self._counts)

    def messages_to(self, address: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if address.lower() in map(str.lower, m.rcpt_tos)]

    def drop_connections(self) -> None:
        """Close every open session from the server side, as an idle timeout would."""
        with self._lock:
            sessions, self._sessions = list(self._sessions), []
        done = threading.Event()

        def close_all() -> None:
            for session in sessions:
                if session.transport is not None:
                    session.transport.close()
            done.set()

        self._controller.loop.call_soon_threadsafe(close_all)
        done.wait(5)
        time.sleep(0.05)  # let the event loop finish tearing the sessions down

    def _take(self, replies: dict[str, _Scripted], address: str) -> str | None:
        with self._lock:
            scripted = replies.get(address.lower())
            if scripted is None:
                return None
            if scripted.times is not None:
                scripted.times -= 1
                if scripted.times <= 0:
                    del replies[address.lower()]
            return scripted.reply

    def _opened_session(self, session: SMTP) -> None:
        with self._lock:
            self._opened += 1
            self._sessions.append(session)


class _Controller(Controller):
    """aiosmtpd's Controller on an ephemeral port, telling its server of each session."""

    def __init__(self, owner: SMTPServer, handler: _Handler, **options: Any) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=0, decode_data=False, **options)
        self._owner = owner

    def factory(self) -> SMTP:
        session: SMTP = super().factory()  # type: ignore[no-untyped-call]
        self._owner._opened_session(session)
        return session

    def _trigger_server(self) -> None:
        # Controller connects to self.port to finish starting; learn the real port first.
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        super()._trigger_server()  # type: ignore[no-untyped-call]
