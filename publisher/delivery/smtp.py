"""SMTP: a pool of persistent connections to the author's mail server.

A send call checks one connection out of the pool, runs one transaction per message on
it (MAIL, RCPT, DATA) and checks it back in, so a batch costs no connection setup and
several engine threads use up to `connections` sessions side by side. Where the server
offers PIPELINING (RFC 2920), MAIL, RCPT and DATA go out in one write and their answers
are read after; the message is written to the socket dot-stuffed, and its final dot is
held while `unrecorded` answers of the session are still on their way to the ledger
(see `SmtpProvider.answers_each`). The next message's envelope follows a final dot
before that dot's answer is read, so a message costs one round trip, not two; a session
that breaks with an answer still unread leaves that message as maybe sent. With DKIM,
copies are signed a few messages ahead by the provider's signing threads (OpenSSL signs
without the GIL), so signing overlaps the network waits instead of adding to them.

Answers map to outcomes by their class: 4xx is temporary (RETRY), 5xx permanent
(FAILED), both for the one message they answer. A connection that drops before DATA was
sent is reopened and the message tried again at once (a server closing an idle session
is routine); one that drops after DATA may already have delivered the message, so that
message is left to the engine's retry rather than sent twice in a row. A server that
cannot be reached refuses the call as a whole (`TemporaryFailure`, see base.py).

An address that is not ASCII needs the server's SMTPUTF8; without it a non-ASCII domain
goes out in its IDNA (xn--) form, and a non-ASCII mailbox name fails that recipient
alone rather than stopping the send.
"""

from __future__ import annotations

import logging
import re
import smtplib
import socket
import ssl
import threading
from collections import deque
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
    sent,
    settle,
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


class _Unsent(Exception):
    """The connection failed before the message data left: nothing was delivered."""


class _MaybeSent(Exception):
    """The connection failed while or after the data was sent: it may have arrived."""


class _Unreachable(Exception):
    """No connection could be opened; every message of the call waits for a retry."""


class _Broken(Exception):
    """Something unexpected went wrong mid-transaction: the message may have left."""


class _Lost(Exception):
    """The session broke down mid-call; this message's result, and the rest are not tried."""

    def __init__(self, result: SendResult) -> None:
        super().__init__(result.detail)
        self.result = result


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
        stream = _Stream(answered, self.unrecorded)
        results = stream.results
        copies = _Copies(template, recipients, now, self._signing_pool(template))
        with self._slots:
            conn = self._checkout()
            try:
                for index, recipient in enumerate(recipients):
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
            except _Lost as exc:
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
            _quit(conn)
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
        _quit(conn)

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
            # The final dot of DATA goes out on its own (see `_transaction`): never let
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
            _quit(conn)
            raise AccountRefused(
                f"the SMTP server {where} refused the login for {self.username!r} "
                f"({exc.smtp_code}): check [delivery.smtp] username and {PASSWORD_ENV}."
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            _quit(conn)
            raise AccountRefused(
                f"the SMTP server {where} does not offer {exc}: check [delivery.smtp] "
                "security (none, starttls or tls) and username."
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            _quit(conn)
            raise _Unreachable(f"the SMTP server {where} failed the greeting: {exc}") from exc
        return conn

    def _deliver(
        self,
        conn: smtplib.SMTP | None,
        sender: str,
        recipient: RecipientLike,
        raw: bytes,
        stream: _Stream,
    ) -> smtplib.SMTP | None:
        """Send one message, reopening a dropped connection once; the connection to keep.

        Its answer goes to `stream`, now or (its final dot sent, the answer unread) with
        the next message's envelope or at the end of the call.
        """
        for attempt in (1, 2):
            if conn is None:
                conn = self._connect()
            try:
                result, keep = _transaction(conn, sender, recipient, raw, stream)
            except _Unsent as exc:
                _quit(conn)
                conn = None
                if stream.owed is not None:
                    # The previous message's dot went out on this session: it may have arrived.
                    raise _Lost(stream.lost(str(exc))) from exc
                if attempt == 2:
                    detail = f"SMTP connection lost before sending: {exc}"
                    raise _Lost(retry(recipient, detail)) from exc
                log.debug("SMTP connection to %s:%s dropped; reconnecting", self.host, self.port)
                continue
            except _MaybeSent as exc:
                _quit(conn)
                raise _Lost(retry(
                    recipient,
                    f"SMTP connection lost while sending ({exc}); the server may have accepted "
                    "the message",
                    maybe_sent=True,
                )) from exc
            except (AccountRefused, _Lost):
                _quit(conn)
                raise
            except Exception as exc:
                conn.close()  # in an unknown state: never reused
                raise _Broken(str(exc)) from exc
            if result is not None:
                stream.add(result)
            if not keep:
                _quit(conn)
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
            self._make = lambda recipient, now: _dot_stuffed(template.message_bytes(recipient, now))
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
                self._ahead[upcoming] = self._pool.submit(self._make, self._recipients[upcoming], self._now)
        return self._ahead.pop(index).result()

    def cancel(self) -> None:
        """Drop the copies made ahead that will not be sent (the call ended early)."""
        for future in self._ahead.values():
            future.cancel()
        self._ahead.clear()


class _Stream:
    """One call's answers in order, the waits of those not yet recorded, and the message
    whose final dot went out unanswered.

    After a message's final dot the next message's MAIL, RCPT and DATA follow in the same
    burst, before that answer is read (RFC 2920 lets a group go on after the end of data),
    so a message costs one round trip rather than two. The answer is read and handed to
    `answered` before the next final dot; that dot waits only while `window` answers are
    unrecorded (`must_wait`), the oldest first.
    """

    __slots__ = ("answered", "owed", "results", "waits", "window")

    def __init__(self, answered: Callable[[SendResult], Callable[[], None]] | None, window: int = 1) -> None:
        self.answered = answered
        self.window = window
        self.results: list[SendResult] = []
        self.waits: deque[Callable[[], None]] = deque()
        self.owed: RecipientLike | None = None

    def add(self, result: SendResult) -> None:
        self.results.append(result)
        if self.answered is not None:
            self.waits.append(self.answered(result))
            if len(self.waits) >= self.window:
                # The next final dot will wait for the oldest: have it committed now,
                # while the next envelope and body go out (see recording.py, `Answered`).
                hurry = getattr(self.waits[0], "hurry", None)
                if hurry is not None:
                    hurry()

    @property
    def must_wait(self) -> bool:
        """True when the next final dot must first wait for the oldest answers' commit."""
        return len(self.waits) >= self.window

    def make_room(self) -> None:
        """Wait until a final dot may go: fewer than `window` answers unrecorded. Answers
        are committed in the order they came, so the oldest wait is the one to take."""
        while len(self.waits) >= self.window:
            self.waits.popleft()()

    def drain(self) -> None:
        """Wait until every answer of the call is recorded (the last wait covers the rest)."""
        if self.waits:
            last = self.waits[-1]
            self.waits.clear()
            last()

    def lost(self, why: str) -> SendResult:
        """The owed message's result when the session broke before its answer came."""
        owed, self.owed = self.owed, None
        assert owed is not None
        return retry(
            owed,
            f"SMTP connection lost while sending ({why}); the server may have accepted the message",
            maybe_sent=True,
        )

    def read_owed(self, conn: smtplib.SMTP) -> bool:
        """Read and add the owed answer, if any; False when the server is closing the session."""
        owed = self.owed
        if owed is None:
            return True
        try:
            code, answer = conn.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise _Lost(self.lost(str(exc) or type(exc).__name__)) from exc
        self.owed = None
        if code == 250:
            self.add(sent(owed, provider_id=_text(answer)))
            return True
        # The final answer ends the transaction: nothing to reset, and a RSET now would
        # reset the next message's envelope, already sent.
        detail = f"SMTP {code} {_text(answer)} (refused at message)"
        self.add(failed(owed, detail) if 500 <= code < 600 else retry(owed, detail))
        return code != 421

    def settle(self, conn: smtplib.SMTP | None) -> smtplib.SMTP | None:
        """Read the owed answer before anything else is written; the connection to keep."""
        if self.owed is None or conn is None:
            return conn
        try:
            keep = self.read_owed(conn)
        except _Lost:
            _quit(conn)
            raise
        if not keep:
            _quit(conn)
            return None
        return conn


def _transaction(
    conn: smtplib.SMTP,
    sender: str,
    recipient: RecipientLike,
    raw: bytes,
    stream: _Stream,
) -> tuple[SendResult | None, bool]:
    """One MAIL/RCPT/DATA exchange; the result and whether the session is still usable.

    The message is written up to its final dot; while `stream.window` answers are still
    unrecorded the oldest's wait runs before the dot, so the server cannot accept this
    message while that many are unrecorded. Where the envelope is pipelined, the previous answer is read just
    after it is written, and this message's answer is left owed (result None) for the
    next message or the end of the call to read.
    """
    try:
        options, address = _envelope_for(conn, sender, recipient, raw)
    except AccountRefused:
        stream.settle(conn)
        raise
    pipelined = conn.has_extn("pipelining") and "SMTPUTF8" not in options
    if (address is None or not pipelined) and not stream.read_owed(conn):
        raise _Unsent("the server closed the session")
    if address is None:
        detail = (
            "this address has a non-ASCII mailbox name, which needs SMTPUTF8, and the "
            "SMTP server does not offer it"
        )
        return failed(recipient, detail), True
    try:
        if pipelined:
            refusal = _envelope_pipelined(conn, sender, address, options, recipient, stream)
        else:
            refusal = _envelope(conn, sender, address, options, recipient)
        if refusal is not None:
            return refusal
        waits = stream.must_wait
        if waits:
            conn.send(_data(raw))
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        # Without its final dot the server cannot have taken the message.
        raise _Unsent(str(exc) or type(exc).__name__) from exc
    try:
        if waits:
            stream.make_room()
            conn.send(b".\r\n")
        else:
            conn.send(_data(raw) + b".\r\n")
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        raise _MaybeSent(str(exc) or type(exc).__name__) from exc
    if pipelined:
        stream.owed = recipient
        return None, True
    try:
        code, answer = conn.getreply()
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        raise _MaybeSent(str(exc) or type(exc).__name__) from exc
    if code != 250:
        return _refused(conn, recipient, code, answer, "message")
    return sent(recipient, provider_id=_text(answer)), True


def _envelope_for(
    conn: smtplib.SMTP, sender: str, recipient: RecipientLike, raw: bytes
) -> tuple[list[str], str | None]:
    """MAIL's options and the address RCPT names (None: this server cannot take it)."""
    options: list[str] = []
    if conn.has_extn("size"):
        options.append(f"SIZE={len(raw)}")
    if not raw.isascii() and conn.has_extn("8bitmime"):
        options.append("BODY=8BITMIME")
    address = recipient.email
    if not (sender.isascii() and address.isascii()):
        if conn.has_extn("smtputf8"):
            options.append("SMTPUTF8")
        elif not sender.isascii():
            raise AccountRefused(
                f"the sender address {sender} is not ASCII and the SMTP server does not offer "
                "SMTPUTF8: use an ASCII address in [newsletter] from."
            )
        else:
            return options, _ascii_domain(address)
    return options, address


def _envelope(
    conn: smtplib.SMTP, sender: str, address: str, options: list[str], recipient: RecipientLike
) -> tuple[SendResult, bool] | None:
    """MAIL, RCPT and DATA one answer at a time; None once the server waits for the message."""
    code, answer = conn.mail(sender, options)
    if code != 250:
        return _refused(conn, recipient, code, answer, f"sender {sender}")
    code, answer = conn.rcpt(address)
    if code not in (250, 251):
        return _refused(conn, recipient, code, answer, "recipient")
    code, answer = conn.docmd("data")
    if code != 354:
        # DATA itself was refused: the message never left.
        return _refused(conn, recipient, code, answer, "data")
    return None


def _envelope_pipelined(
    conn: smtplib.SMTP, sender: str, address: str, options: list[str], recipient: RecipientLike,
    stream: _Stream,
) -> tuple[SendResult, bool] | None:
    """MAIL, RCPT and DATA in one write, their three answers read after (RFC 2920); the
    previous message's answer, when still owed, is read first, as it comes first.

    A server that refused MAIL or RCPT refuses the DATA that followed (no valid
    recipient); should it take it all the same, an empty message ends it, addressed to
    nobody, before the session is reset.
    """
    extra = (" " + " ".join(options)) if options else ""
    try:
        conn.send(
            f"MAIL FROM:{_angled(sender)}{extra}\r\nRCPT TO:{_angled(address)}\r\nDATA\r\n".encode("ascii")
        )
    except (smtplib.SMTPServerDisconnected, OSError):
        stream.read_owed(conn)  # the server may have answered before it went away
        raise
    stream.read_owed(conn)  # a 421 there: the reads below fail, and this message is unsent
    mail, rcpt, data = conn.getreply(), conn.getreply(), conn.getreply()
    if mail[0] == 250 and rcpt[0] in (250, 251) and data[0] == 354:
        return None
    if data[0] == 354:
        conn.send(".\r\n")
        conn.getreply()
    if mail[0] != 250:
        return _refused(conn, recipient, mail[0], mail[1], f"sender {sender}")
    if rcpt[0] not in (250, 251):
        return _refused(conn, recipient, rcpt[0], rcpt[1], "recipient")
    return _refused(conn, recipient, data[0], data[1], "data")


_PLAIN_ADDRESS = re.compile(r"[^\s<>()\[\]\\,;:\"@]+@[^\s<>()\[\]\\,;:\"@]+")


def _angled(address: str) -> str:
    """`<address>` as MAIL and RCPT carry it; a plain local@domain skips the email
    package's parser (tens of microseconds a message), anything else goes through it."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return f"<{address}>"
    return smtplib.quoteaddr(address)


def _data(stuffed: bytes) -> bytes:
    """A dot-stuffed message as DATA carries it: ending in CRLF, without the final dot."""
    return stuffed if stuffed.endswith(b"\r\n") else stuffed + b"\r\n"


def _dot_stuffed(raw: bytes) -> bytes:
    """The message as DATA carries it (RFC 5321 4.5.2), ending in CRLF, without the final dot.

    Found with C-speed searches: a body with no line starting with a dot (nearly every
    quoted-printable one) is sent as it is, with no pass over it in Python's regex engine.
    """
    if raw.startswith(b".") or b"\n." in raw:
        raw = raw.replace(b"\n.", b"\n..")
        if raw.startswith(b"."):
            raw = b"." + raw
    return raw if raw.endswith(b"\r\n") else raw + b"\r\n"


def _ascii_domain(address: str) -> str | None:
    """`address` with its domain in IDNA (xn--) form; None if the mailbox name is not ASCII."""
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        return None
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return None


def _refused(
    conn: smtplib.SMTP, recipient: RecipientLike, code: int, answer: bytes | str, stage: str
) -> tuple[SendResult, bool]:
    detail = f"SMTP {code} {_text(answer)} (refused at {stage})"
    keep = code != 421  # 421: the server is closing the session
    if keep:
        try:
            conn.rset()
        except (smtplib.SMTPException, OSError):
            keep = False
    if 500 <= code < 600:
        return failed(recipient, detail), keep
    return retry(recipient, detail), keep


def _text(answer: bytes | str) -> str:
    return answer.decode("utf-8", "replace") if isinstance(answer, bytes) else answer


def _quit(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (smtplib.SMTPException, OSError):
        conn.close()
