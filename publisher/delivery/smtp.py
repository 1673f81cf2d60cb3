"""SMTP: a pool of persistent connections to the author's mail server.

A send call checks one connection out of the pool, runs one transaction per message on
it (MAIL, RCPT, DATA: smtp_session.py, which pipelines them and holds each final dot
while `unrecorded` answers of the session are still on their way to the ledger, see
`SmtpProvider.answers_each`) and checks it back in, so a batch costs no connection setup
and several engine threads use up to `connections` sessions side by side. With DKIM,
copies are signed a few messages ahead by the provider's signing threads (OpenSSL signs
without the GIL), so signing overlaps the network waits instead of adding to them.

A connection that drops before DATA was sent is reopened and the message tried again at
once (a server closing an idle session is routine); one that drops after DATA may
already have delivered the message, so that message is left to the engine's retry
rather than sent twice in a row. A server that cannot be reached refuses the call as a
whole (`TemporaryFailure`, see base.py).

An address that is not ASCII needs the server's SMTPUTF8; without it a non-ASCII domain
goes out in its IDNA (xn--) form, and a non-ASCII mailbox name fails that recipient
alone rather than stopping the send.
"""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any

from publisher.delivery.base import (
    UNUSABLE_RECIPIENT,
    AccountRefused,
    R,
    RecipientLike,
    SendInterrupted,
    Template,
    every,
    failed,
    refused_for_now,
    retry,
    settle,
)
from publisher.delivery.smtp_session import (
    Lost,
    MaybeSent,
    Stream,
    Unsent,
    dot_stuffed,
    quit_session,
    transaction,
)
from publisher.errors import ConfigError
from publisher.mail.mime import MessageTemplate
from publisher.models import Outcome, SendResult

if TYPE_CHECKING:
    from publisher.config import Config

__all__ = ["SmtpProvider"]

log = logging.getLogger(__name__)

PASSWORD_ENV = "PUBLISHER_SMTP_PASSWORD"  # noqa: S105 - names the variable, holds no secret
SECURITY = ("none", "starttls", "tls")


class _Unreachable(Exception):
    """No connection could be opened; every message of the call waits for a retry."""


class _Broken(Exception):
    """Something unexpected went wrong mid-transaction: the message may have left."""


SIGNERS = 2
"""Threads per provider that make signed copies ahead of the sessions (see `_Copies`)."""

AHEAD = 4
"""Copies a session has made in advance while it sends one: enough to keep signing ahead
of the wire, few enough that each session gets its share of the signing threads."""

UNRECORDED = 1
"""Messages a session may have had accepted while their answers are not yet committed to
the ledger: what a `kill -9` can send twice, per connection (`delivery.smtp.in_flight`).
One by default, the ledger's crash bound; up to eight let the ledger commit answers in
groups and send faster, at that many possible repeats per connection."""


class SmtpProvider:
    name = "smtp"
    max_batch = 50
    """As `delivery.batch_size`'s default: each claim, and the wait for a batch's last answer
    and commit, is shared by fifty messages rather than twenty (about 10% less CPU a
    message). The rows a `kill -9` flags uncertain grow with it (concurrency x batch)."""
    answers_each = True
    """The server answers message by message: `send` hands each answer to `answered` as
    it comes, and holds a final dot while `unrecorded` answers of its session are still
    unrecorded (see engine.py, "In-flight window")."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: str = "starttls",
        username: str = "",
        password: str | None = None,
        connections: int = 4,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
        unrecorded: int = UNRECORDED,
    ) -> None:
        if security not in SECURITY:
            raise ConfigError(
                f"[delivery.smtp] security must be one of {', '.join(SECURITY)}, got {security!r}"
            )
        if username and not password:
            raise ConfigError(
                f"[delivery.smtp] username is set, so {PASSWORD_ENV} must hold the password "
                f"(or {PASSWORD_ENV}_FILE name a file holding it). Set it and run again."
            )
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self._password = password or ""
        self.connections = max(1, connections)
        self.timeout = timeout
        if ssl_context is None and security != "none":
            ssl_context = ssl.create_default_context()
        self._ssl_context = ssl_context
        self._local_hostname = local_hostname
        self.unrecorded = max(1, unrecorded)
        self._slots = threading.BoundedSemaphore(self.connections)
        self._idle: list[smtplib.SMTP] = []
        self._lock = threading.Lock()
        self._closed = False
        self._signers: ThreadPoolExecutor | None = None

    @classmethod
    def from_config(cls, config: Config, *, client: object = None) -> SmtpProvider:
        """`client` is for the HTTP API providers' sake; this provider speaks no HTTP."""
        username = str(config["delivery.smtp.username"])
        return cls(
            host=str(config["delivery.smtp.host"]),
            port=int(config["delivery.smtp.port"]),
            security=str(config["delivery.smtp.security"]),
            username=username,
            password=config.secret(PASSWORD_ENV) if username else None,
            connections=int(config["delivery.smtp.connections"]),
            timeout=float(config["delivery.timeout"]),
            unrecorded=int(config["delivery.smtp.in_flight"]),
        )

    def send(
        self,
        template: Template[R],
        recipients: Sequence[R],
        *,
        now: datetime,
        answered: Callable[[SendResult], Callable[[], None]] | None = None,
    ) -> list[SendResult]:
        """Send each message in turn on one pooled connection.

        `answered`, when given, receives each server answer as it arrives and returns a
        wait that blocks until that answer is recorded. A final dot waits until fewer
        than `unrecorded` answers of the call are unrecorded (so at most that many
        accepted messages are not yet `sent` in the ledger, the one just ended included);
        the return of this call waits for them all.
        """
        stream = Stream(answered, self.unrecorded)
        results = stream.results
        copies = _Copies(template, recipients, now, self._signing_pool(template))
        with self._slots:
            conn = self._checkout()
            try:
                for index in range(len(recipients)):
                    try:
                        # Made as it is first asked for (engine.py, `_Readers`), and
                        # the owed answer read before a failure ends the call.
                        recipient = recipients[index]
                    except Exception as exc:
                        conn = stream.settle(conn)
                        raise SendInterrupted(results, 0) from exc
                    try:
                        raw = copies.wire(index)
                    except UNUSABLE_RECIPIENT as exc:
                        conn = stream.settle(conn)
                        results.append(failed(recipient, f"cannot build this message: {exc}"))
                        continue
                    except Exception as exc:
                        # Nothing of this message left; the session is still good.
                        conn = stream.settle(conn)
                        raise SendInterrupted(results, 0) from exc
                    sender = getattr(recipient, "return_path", "") or template.sender_address
                    conn = self._deliver(conn, sender, recipient, raw, stream)
                conn = stream.settle(conn)
                stream.drain()
            except _Unreachable as exc:
                conn = None
                return refused_for_now(results, recipients[len(results):], str(exc))
            except Lost as exc:
                # A server that stops answering would cost a timeout per message.
                results.append(exc.result)
                rest = recipients[len(results):]
                results.extend(every(rest, Outcome.RETRY, "not tried: the SMTP session broke down"))
                conn = None
            except AccountRefused as exc:
                conn = None
                return settle(results, recipients[len(results):], exc)
            except SendInterrupted:
                raise
            except _Broken as exc:
                conn = None
                raise SendInterrupted(results, 1 + (stream.owed is not None)) from exc.__cause__
            except Exception as exc:
                if conn is not None:
                    conn.close()
                conn = None
                raise SendInterrupted(results, 0) from exc
            finally:
                copies.cancel()
                self._checkin(conn)
        return results

    def _signing_pool(self, template: Template[R]) -> ThreadPoolExecutor | None:
        """The threads that make signed copies ahead of the sessions (see `_Copies`); None
        for a template that does not sign, whose copies are cheaper made in place."""
        if not isinstance(template, MessageTemplate) or template.dkim is None:
            return None
        with self._lock:
            if self._signers is None:
                self._signers = ThreadPoolExecutor(max_workers=SIGNERS, thread_name_prefix="smtp-sign")
            return self._signers

    def utf8_mailboxes_refused(self) -> str:
        """Why no non-ASCII mailbox name can go through this server, asked once before a
        send; "" when it can, or when the server cannot be asked now (the send then says
        what is wrong)."""
        with self._slots:
            conn = self._checkout()
            try:
                if conn is None:
                    conn = self._connect()
            except (_Unreachable, AccountRefused):
                return ""
            try:
                if conn.has_extn("smtputf8"):
                    return ""
                return (
                    "non-ASCII mailbox name, which needs SMTPUTF8, and the SMTP server "
                    f"{self.host}:{self.port} does not offer it"
                )
            finally:
                self._checkin(conn)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            signers, self._signers = self._signers, None
        for conn in idle:
            quit_session(conn)
        if signers is not None:
            signers.shutdown(cancel_futures=True)

    def _checkout(self) -> smtplib.SMTP | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def _checkin(self, conn: smtplib.SMTP | None) -> None:
        if conn is None:
            return
        with self._lock:
            if not self._closed:
                self._idle.append(conn)
                return
        quit_session(conn)

    def _connect(self) -> smtplib.SMTP:
        context = self._ssl_context
        where = f"{self.host}:{self.port}"
        try:
            conn: smtplib.SMTP
            if self.security == "tls":
                conn = smtplib.SMTP_SSL(
                    self.host, self.port, self._local_hostname, timeout=self.timeout,
                    context=context,
                )
            else:
                conn = smtplib.SMTP(self.host, self.port, self._local_hostname, timeout=self.timeout)
        except (OSError, smtplib.SMTPException) as exc:
            raise _Unreachable(f"cannot connect to the SMTP server {where}: {exc}") from exc
        try:
            # The final dot of DATA goes out on its own (see `transaction`): never let
            # Nagle's algorithm hold it back for the server's delayed ACK.
            if conn.sock is not None:
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.ehlo()
            if self.security == "starttls":
                conn.starttls(context=context)
                conn.ehlo()
            if self.username:
                conn.login(self.username, self._password)
        except smtplib.SMTPAuthenticationError as exc:
            quit_session(conn)
            raise AccountRefused(
                f"the SMTP server {where} refused the login for {self.username!r} "
                f"({exc.smtp_code}): check [delivery.smtp] username and {PASSWORD_ENV}."
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            quit_session(conn)
            raise AccountRefused(
                f"the SMTP server {where} does not offer {exc}: check [delivery.smtp] "
                "security (none, starttls or tls) and username."
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            quit_session(conn)
            raise _Unreachable(f"the SMTP server {where} failed the greeting: {exc}") from exc
        return conn

    def _deliver(
        self,
        conn: smtplib.SMTP | None,
        sender: str,
        recipient: RecipientLike,
        raw: bytes,
        stream: Stream,
    ) -> smtplib.SMTP | None:
        """Send one message, reopening a dropped connection once; the connection to keep.

        Its answer goes to `stream`, now or (its final dot sent, the answer unread) with
        the next message's envelope or at the end of the call.
        """
        for attempt in (1, 2):
            if conn is None:
                conn = self._connect()
            try:
                result, keep = transaction(conn, sender, recipient, raw, stream)
            except Unsent as exc:
                quit_session(conn)
                conn = None
                if stream.owed is not None:
                    # The previous message's dot went out on this session: it may have arrived.
                    raise Lost(stream.lost(str(exc))) from exc
                if attempt == 2:
                    detail = f"SMTP connection lost before sending: {exc}"
                    raise Lost(retry(recipient, detail)) from exc
                log.debug("SMTP connection to %s:%s dropped; reconnecting", self.host, self.port)
                continue
            except MaybeSent as exc:
                quit_session(conn)
                raise Lost(retry(
                    recipient,
                    f"SMTP connection lost while sending ({exc}); the server may have accepted "
                    "the message",
                    maybe_sent=True,
                )) from exc
            except (AccountRefused, Lost):
                quit_session(conn)
                raise
            except Exception as exc:
                conn.close()  # in an unknown state: never reused
                raise _Broken(str(exc)) from exc
            if result is not None:
                stream.add(result)
            if not keep:
                quit_session(conn)
                conn = None
            return conn
        raise AssertionError("unreachable")


class _Copies:
    """The wire bytes of one call's copies, made `AHEAD` messages in advance by the signing
    threads when the template signs.

    An RSA signature costs a few hundred microseconds of OpenSSL, which runs without the
    GIL; made in the session's own thread it would also wait for the GIL afterwards,
    behind the other sessions' Python work, while the connection sits idle. Made ahead,
    it overlaps the network waits of the messages before it (and the other core). A copy
    that cannot be made raises when its turn comes, as it would in place.
    """

    __slots__ = ("_ahead", "_make", "_now", "_pool", "_recipients")

    def __init__(
        self, template: Template[R], recipients: Sequence[R], now: datetime, pool: ThreadPoolExecutor | None
    ) -> None:
        # A MessageTemplate gives its copies dot-stuffed already (its fixed parts once).
        if isinstance(template, MessageTemplate):
            self._make: Callable[[Any, datetime], bytes] = template.wire_bytes
        else:
            self._make = lambda recipient, now: dot_stuffed(template.message_bytes(recipient, now))
        self._recipients = recipients
        self._now = now
        self._pool = pool
        self._ahead: dict[int, Future[bytes]] = {}

    def wire(self, index: int) -> bytes:
        """Copy `index` as DATA carries it (without the final dot)."""
        if self._pool is None:
            return self._make(self._recipients[index], self._now)
        for upcoming in range(index, min(index + AHEAD, len(self._recipients))):
            if upcoming not in self._ahead:
                self._ahead[upcoming] = self._pool.submit(self._copy, upcoming)
        return self._ahead.pop(index).result()

    def _copy(self, index: int) -> bytes:
        # The recipient too is made here, off the session's thread, when the engine
        # makes each as it is first asked for (its signed links).
        return self._make(self._recipients[index], self._now)

    def cancel(self) -> None:
        """Drop the copies made ahead that will not be sent (the call ended early)."""
        for future in self._ahead.values():
            future.cancel()
        self._ahead.clear()
