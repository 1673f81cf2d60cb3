"""The SMTP client on the wire: one round trip a message, the ledger's crash bound kept.

A small server on a loopback socket, offering PIPELINING, logs what arrives in order:
each message's end of data, and whether it had to wait for the client before answering.
"""

from __future__ import annotations

import base64
import datetime as dt
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from email import message_from_bytes
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fakes.messages import publication_config, recipients, sample_template
from test_dkim_signing import dkimpy_verifies, needs_perl, perl_verdict

from publisher.delivery.smtp import SmtpProvider
from publisher.delivery.smtp_session import _angled, dot_stuffed
from publisher.mail.mime import HTML_PLACEHOLDERS, TEXT_PLACEHOLDERS, MessageTemplate, Recipient
from publisher.models import Outcome, RenderedIssue, SendResult

NOW = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.UTC)
PATIENCE = 1.5


class WireServer:
    """Answers every message with 250, but holds each final answer until the client sends
    more (its next command) or PATIENCE passes; a hold that ran out is logged as a wait."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []
        self.messages: list[bytes] = []
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def log(self, what: str, n: int) -> None:
        with self.lock:
            self.events.append((what, n))

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        buffer = bytearray()

        def more(wait: float | None = None) -> bool:
            conn.settimeout(wait)
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                return False
            finally:
                conn.settimeout(None)
            if not chunk:
                raise EOFError
            buffer.extend(chunk)
            return True

        def readline() -> bytes:
            while b"\r\n" not in buffer:
                more()
            end = buffer.index(b"\r\n") + 2
            line = bytes(buffer[:end])
            del buffer[:end]
            return line

        with conn:
            conn.sendall(b"220 wire ESMTP\r\n")
            count = 0
            while True:
                try:
                    line = readline()
                except (EOFError, OSError):
                    return
                verb = line[:4].upper()
                if verb == b"EHLO":
                    conn.sendall(b"250-wire\r\n250 PIPELINING\r\n")
                elif verb in (b"MAIL", b"RCPT"):
                    conn.sendall(b"250 ok\r\n")
                elif verb == b"DATA":
                    conn.sendall(b"354 go on\r\n")
                    lines = []
                    while (data := readline()) != b".\r\n":
                        lines.append(data[1:] if data.startswith(b".") else data)
                    self.messages.append(b"".join(lines))
                    count += 1
                    self.log("dot", count)
                    if not buffer and not more(PATIENCE):
                        self.log("waited", count)
                    conn.sendall(f"250 queued as {count}\r\n".encode())
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:
                    conn.sendall(b"250 ok\r\n")

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def server() -> Iterator[WireServer]:
    made = WireServer()
    yield made
    made.close()


@pytest.fixture
def template(tmp_path: Path) -> MessageTemplate:
    return sample_template(publication_config(tmp_path))


def send(server: WireServer, template: MessageTemplate, count: int,
         answered: Callable[[SendResult], Callable[[], None]] | None = None, *,
         unrecorded: int = 1) -> list[SendResult]:
    provider = SmtpProvider(host="127.0.0.1", port=server.port, security="none", timeout=5.0,
                            unrecorded=unrecorded)
    try:
        return provider.send(template, recipients(count), now=NOW, answered=answered)
    finally:
        provider.close()


def test_the_next_envelope_goes_out_before_the_last_answer_is_read(
    server: WireServer, template: MessageTemplate
) -> None:
    """After a final dot the client goes on with the next MAIL, RCPT, DATA at once: a
    message costs one round trip, and the server never waits on the client."""
    results = send(server, template, 4)
    assert [r.outcome for r in results] == [Outcome.SENT] * 4
    assert [r.provider_id for r in results] == [f"queued as {n}" for n in range(1, 5)]
    # The last message has no next one: its answer alone is waited for.
    assert [e for e in server.events if e[0] == "waited"] == [("waited", 4)]


def recorded_before_each_dot(server: WireServer) -> dict[int, int]:
    """Final dot n -> the newest answer known recorded when it arrived (a wait covers the
    answers before it too: the recorder commits in order)."""
    newest, seen = 0, {}
    for what, n in list(server.events):
        if what == "recorded":
            newest = max(newest, n)
        elif what == "dot":
            seen[n] = newest
    return seen


def logging_answers(server: WireServer) -> Callable[[SendResult], Callable[[], None]]:
    def answered(result: SendResult) -> Callable[[], None]:
        number = int(result.provider_id.rpartition(" ")[2])
        return lambda: server.log("recorded", number)

    return answered


def test_each_answer_is_recorded_before_the_next_final_dot(
    server: WireServer, template: MessageTemplate
) -> None:
    """With `unrecorded=1`, message n+1 cannot be accepted before message n's answer is recorded."""
    results = send(server, template, 4, logging_answers(server))
    assert [r.outcome for r in results] == [Outcome.SENT] * 4
    assert recorded_before_each_dot(server) == {1: 0, 2: 1, 3: 2, 4: 3}
    assert ("recorded", 4) in server.events


def test_a_final_dot_waits_only_while_the_window_of_unrecorded_answers_is_full(
    server: WireServer, template: MessageTemplate
) -> None:
    """The crash bound with `unrecorded=3`: when message n's dot goes, every answer up to
    n-3 is recorded, so at most three accepted messages are missing from the ledger; the
    call returns with all of them recorded."""
    results = send(server, template, 8, logging_answers(server), unrecorded=3)
    assert [r.outcome for r in results] == [Outcome.SENT] * 8
    before = recorded_before_each_dot(server)
    assert all(before[n] >= n - 3 for n in range(1, 9))
    assert before[4] == 1  # the dot did not wait for more than the bound asks
    assert max(n for what, n in server.events if what == "recorded") == 8


class HurriedWait:
    """A wait that logs when its answer is hurried and when it is waited for."""

    def __init__(self, server: WireServer, number: int) -> None:
        self.server = server
        self.number = number

    def hurry(self) -> None:
        self.server.log("hurried", self.number)

    def __call__(self) -> None:
        self.server.log("recorded", self.number)


@pytest.mark.parametrize(("unrecorded", "hurried"), [(1, [1, 2, 3, 4]), (2, [1, 2, 3])])
def test_an_answer_the_next_final_dot_will_wait_for_is_hurried_as_it_comes(
    server: WireServer, template: MessageTemplate, unrecorded: int, hurried: list[int]
) -> None:
    """The answer a session's next final dot must wait for is asked to be committed as
    soon as it is read, before the next message's body goes out, not when the dot waits
    (the last one too: the call waits for it); answers within the window are left to gather."""
    def answered(result: SendResult) -> Callable[[], None]:
        return HurriedWait(server, int(result.provider_id.rpartition(" ")[2]))

    results = send(server, template, 4, answered, unrecorded=unrecorded)
    assert [r.outcome for r in results] == [Outcome.SENT] * 4
    events = list(server.events)
    assert [n for what, n in events if what == "hurried"] == hurried
    for n in hurried[:-1]:
        assert events.index(("hurried", n)) < events.index(("recorded", n)) < events.index(("dot", n + unrecorded))


def test_a_copy_comes_dot_stuffed_from_the_template(tmp_path: Path) -> None:
    """Lines of the issue and a reader's value that start with a dot leave doubled, the
    rest byte for byte as the message is (what a reader's mail program gets back)."""
    config = publication_config(tmp_path)
    text = f"Hello {TEXT_PLACEHOLDERS.name},\n.hidden line\n..two dots\nend with a dot\n.\n"
    html = f"<p>Hello {HTML_PLACEHOLDERS.name}</p>\n.line\n"
    template = MessageTemplate.from_rendered(
        config, RenderedIssue(key="tag:example.org,2024:/dots", subject="Dots", html=html, text=text)
    )
    reader = replace(recipients(1)[0], name=".Dot at the start")
    message = template.message_bytes(reader, NOW)
    assert b"\r\n.hidden line" in message
    wire = template.wire_bytes(reader, NOW)
    assert wire == dot_stuffed(message)
    assert b"\r\n..hidden line\r\n...two dots\r\n" in wire


def test_dot_stuffing_doubles_every_leading_dot() -> None:
    assert dot_stuffed(b".a\r\nb\r\n.\r\n..c") == b"..a\r\nb\r\n..\r\n...c\r\n"
    assert dot_stuffed(b"no dots\r\n") == b"no dots\r\n"


def test_addresses_with_quotes_or_brackets_go_through_the_full_quoting() -> None:
    assert _angled("reader+tag@example.org") == "<reader+tag@example.org>"
    assert _angled('"two words"@example.org') == '<"two words"@example.org>'
    assert _angled("") == "<>"


@pytest.fixture
def signing_template(tmp_path: Path) -> tuple[MessageTemplate, dict[str, bytes]]:
    """A template that signs with a fresh RSA key, and the key's DNS record."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "dkim.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ))
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    config = publication_config(
        tmp_path, extra='[delivery.dkim]\ndomain = "example.org"\nselector = "news"\nprivate_key_file = "dkim.pem"\n'
    )
    return sample_template(config), {"news._domainkey.example.org": b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)}


def test_signed_copies_are_made_ahead_in_the_signing_threads(
    server: WireServer, signing_template: tuple[MessageTemplate, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With DKIM, copies are made by the provider's signing threads, not the session's own,
    and every copy the server receives verifies with dkimpy, in its reader's order."""
    template, records = signing_template
    makers: list[str] = []
    made = MessageTemplate.wire_bytes

    def wire_bytes(self: MessageTemplate, recipient: Recipient, date: dt.datetime) -> bytes:
        makers.append(threading.current_thread().name)
        return made(self, recipient, date)

    monkeypatch.setattr(MessageTemplate, "wire_bytes", wire_bytes)
    results = send(server, template, 6, logging_answers(server), unrecorded=3)
    assert [r.outcome for r in results] == [Outcome.SENT] * 6
    assert len(makers) == 6 and all(name.startswith("smtp-sign") for name in makers)
    assert [message_from_bytes(m)["To"].rpartition("<")[2] for m in server.messages] == [
        f"{r.email}>" for r in recipients(6)
    ]
    assert all(dkimpy_verifies(message, records) for message in server.messages)


@needs_perl
def test_signed_copies_on_the_wire_verify_with_mail_dkim(
    server: WireServer, signing_template: tuple[MessageTemplate, dict[str, bytes]]
) -> None:
    """The second verifier passes each signed copy as the server received it (dot-stuffing undone)."""
    template, records = signing_template
    send(server, template, 3, logging_answers(server))
    for message in server.messages:
        verdict = perl_verdict(message, records)
        assert verdict.returncode == 0, verdict.stdout + verdict.stderr


def test_a_signed_copy_that_cannot_be_made_fails_its_reader_alone(
    server: WireServer, signing_template: tuple[MessageTemplate, dict[str, bytes]]
) -> None:
    """A copy made ahead that cannot be made (a bad unsubscribe URL) fails that reader when
    its turn comes; the others go out."""
    template, _ = signing_template
    readers = recipients(4)
    readers[1] = replace(readers[1], unsubscribe_url="javascript:alert(1)")
    provider = SmtpProvider(host="127.0.0.1", port=server.port, security="none", timeout=5.0)
    try:
        results = provider.send(template, readers, now=NOW, answered=logging_answers(server))
    finally:
        provider.close()
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.FAILED, Outcome.SENT, Outcome.SENT]
    assert "cannot build this message" in results[1].detail
    assert len(server.messages) == 3
