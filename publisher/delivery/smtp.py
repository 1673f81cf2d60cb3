"""SMTP: a pool of persistent connections to the author's mail server.

A send call checks one connection out of the pool, runs one transaction per message on
it (MAIL, RCPT, DATA) and checks it back in, so a batch costs no connection setup and
several engine threads use up to `connections` sessions side by side. Where the server
offers PIPELINING (RFC 2920), MAIL, RCPT and DATA go out in one write and their answers
are read after; the message is written to the socket dot-stuffed, and its final dot is
held until the previous answer is recorded (see `SmtpProvider.answers_each`).

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
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

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


class SmtpProvider:
    name = "smtp"
    max_batch = 20
    answers_each = True
    """The server answers message by message: `send` hands each answer to `answered` as
    it comes and holds the final dot of the next message until that answer is recorded
    (see engine.py, "In-flight window")."""

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
        self._slots = threading.BoundedSemaphore(self.connections)
        self._idle: list[smtplib.SMTP] = []
        self._lock = threading.Lock()
        self._closed = False

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
        wait that blocks until that answer is recorded; the next message's final dot,
        and the return of this call, wait for it.
        """
        results: list[SendResult] = []
        recorded: Callable[[], None] | None = None
        with self._slots:
            conn = self._checkout()
            try:
                for recipient in recipients:
                    try:
                        raw = template.message_bytes(recipient, now)
                    except UNUSABLE_RECIPIENT as exc:
                        results.append(failed(recipient, f"cannot build this message: {exc}"))
                        continue
                    except Exception as exc:
                        # Nothing of this message left; the session is still good.
                        raise SendInterrupted(results, 0) from exc
                    sender = getattr(recipient, "return_path", "") or template.sender_address
                    result, conn = self._deliver(conn, sender, recipient, raw, recorded)
                    results.append(result)
                    if answered is not None:
                        recorded = answered(result)
                if recorded is not None:
                    recorded()
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
                raise SendInterrupted(results, 1) from exc.__cause__
            except Exception as exc:
                if conn is not None:
                    conn.close()
                conn = None
                raise SendInterrupted(results, 0) from exc
            finally:
                self._checkin(conn)
        return results

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
        for conn in idle:
            _quit(conn)

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
        recorded: Callable[[], None] | None,
    ) -> tuple[SendResult, smtplib.SMTP | None]:
        """Send one message, reopening a dropped connection once; the connection to keep."""
        for attempt in (1, 2):
            if conn is None:
                conn = self._connect()
            try:
                result, keep = _transaction(conn, sender, recipient, raw, recorded)
            except _Unsent as exc:
                _quit(conn)
                conn = None
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
            except AccountRefused:
                _quit(conn)
                raise
            except Exception as exc:
                conn.close()  # in an unknown state: never reused
                raise _Broken(str(exc)) from exc
            if not keep:
                _quit(conn)
                conn = None
            return result, conn
        raise AssertionError("unreachable")


def _transaction(
    conn: smtplib.SMTP,
    sender: str,
    recipient: RecipientLike,
    raw: bytes,
    recorded: Callable[[], None] | None = None,
) -> tuple[SendResult, bool]:
    """One MAIL/RCPT/DATA exchange; the result and whether the session is still usable.

    The message is written up to its final dot; `recorded` (the previous answer's wait)
    runs before the dot, so the server cannot accept this message while the last one's
    answer is still unrecorded.
    """
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
            converted = _ascii_domain(address)
            if converted is None:
                detail = (
                    "this address has a non-ASCII mailbox name, which needs SMTPUTF8, and the "
                    "SMTP server does not offer it"
                )
                return failed(recipient, detail), True
            address = converted
    try:
        if conn.has_extn("pipelining") and "SMTPUTF8" not in options:
            refusal = _envelope_pipelined(conn, sender, address, options, recipient)
        else:
            refusal = _envelope(conn, sender, address, options, recipient)
        if refusal is not None:
            return refusal
        if recorded is not None:
            conn.send(_dot_stuffed(raw))
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        # Without its final dot the server cannot have taken the message.
        raise _Unsent(str(exc) or type(exc).__name__) from exc
    try:
        if recorded is not None:
            recorded()
            conn.send(b".\r\n")
        else:
            conn.send(_dot_stuffed(raw) + b".\r\n")
        code, answer = conn.getreply()
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        raise _MaybeSent(str(exc) or type(exc).__name__) from exc
    if code != 250:
        return _refused(conn, recipient, code, answer, "message")
    return sent(recipient, provider_id=_text(answer)), True


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
    conn: smtplib.SMTP, sender: str, address: str, options: list[str], recipient: RecipientLike
) -> tuple[SendResult, bool] | None:
    """MAIL, RCPT and DATA in one write, their three answers read after (RFC 2920).

    A server that refused MAIL or RCPT refuses the DATA that followed (no valid
    recipient); should it take it all the same, an empty message ends it, addressed to
    nobody, before the session is reset.
    """
    extra = (" " + " ".join(options)) if options else ""
    conn.send(
        f"MAIL FROM:{_angled(sender)}{extra}\r\nRCPT TO:{_angled(address)}\r\nDATA\r\n".encode("ascii")
    )
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
