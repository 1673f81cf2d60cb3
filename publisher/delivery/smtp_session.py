"""One SMTP session on the wire: each message's transaction, its answer, and the final dot
held for the ledger.

Where the server offers PIPELINING (RFC 2920), MAIL, RCPT and DATA go out in one write
and their answers are read after; the message is written dot-stuffed, and its final dot
is held while `window` answers of the session are still on their way to the ledger
(`Stream`, see engine.py, "In-flight window"). The next message's envelope follows a
final dot before that dot's answer is read, so a message costs one round trip, not two;
a session that breaks with an answer still unread leaves that message as maybe sent.
An answer the next final dot will wait for is hurried to the ledger as soon as it is
read, so its commit overlaps the next message's body rather than following it.

Answers map to outcomes by their class: 4xx is temporary (RETRY), 5xx permanent
(FAILED), both for the one message they answer. The pool of sessions, reconnecting and
signing ahead are smtp.py's.
"""

from __future__ import annotations

import re
import smtplib
from collections import deque
from collections.abc import Callable

from publisher.delivery.base import AccountRefused, RecipientLike, failed, retry, sent
from publisher.models import SendResult

__all__ = ["Lost", "MaybeSent", "Stream", "Unsent", "dot_stuffed", "quit_session", "transaction"]


class Unsent(Exception):
    """The connection failed before the message data left: nothing was delivered."""


class MaybeSent(Exception):
    """The connection failed while or after the data was sent: it may have arrived."""


class Lost(Exception):
    """The session broke down mid-call; this message's result, and the rest are not tried."""

    def __init__(self, result: SendResult) -> None:
        super().__init__(result.detail)
        self.result = result


class Stream:
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
            raise Lost(self.lost(str(exc) or type(exc).__name__)) from exc
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
        except Lost:
            quit_session(conn)
            raise
        if not keep:
            quit_session(conn)
            return None
        return conn


def transaction(
    conn: smtplib.SMTP,
    sender: str,
    recipient: RecipientLike,
    raw: bytes,
    stream: Stream,
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
        raise Unsent("the server closed the session")
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
        raise Unsent(str(exc) or type(exc).__name__) from exc
    try:
        if waits:
            stream.make_room()
            conn.send(b".\r\n")
        else:
            conn.send(_data(raw) + b".\r\n")
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        raise MaybeSent(str(exc) or type(exc).__name__) from exc
    if pipelined:
        stream.owed = recipient
        return None, True
    try:
        code, answer = conn.getreply()
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        raise MaybeSent(str(exc) or type(exc).__name__) from exc
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
    stream: Stream,
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


def dot_stuffed(raw: bytes) -> bytes:
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


def quit_session(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (smtplib.SMTPException, OSError):
        conn.close()
