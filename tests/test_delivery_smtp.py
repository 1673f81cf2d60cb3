"""The SMTP provider against a real aiosmtpd server on loopback."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fakes import SMTPServer
from fakes.messages import publication_config, recipients, sample_template

from publisher.delivery.base import SendInterrupted
from publisher.delivery.retry import is_hard_bounce
from publisher.delivery.smtp import SmtpProvider
from publisher.errors import ConfigError, TemporaryFailure
from publisher.mail.mime import MessageTemplate
from publisher.mail.newsletter import Recipient
from publisher.models import Outcome

NOW = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.UTC)


@pytest.fixture(params=[False, True], ids=["one-by-one", "pipelined"])
def smtp_server(request: pytest.FixtureRequest) -> Iterator[SMTPServer]:
    """The loopback server, with and without PIPELINING: both envelope paths face each case."""
    server = SMTPServer(pipelining=request.param).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def template(tmp_path: Path) -> MessageTemplate:
    return sample_template(publication_config(tmp_path))


@pytest.fixture
def providers() -> Iterator[list[SmtpProvider]]:
    """Providers made by a test, closed after it (no socket outlives a test)."""
    made: list[SmtpProvider] = []
    yield made
    for provider in made:
        provider.close()


def plain(server: SMTPServer, providers: list[SmtpProvider], **options: object) -> SmtpProvider:
    settings: dict[str, object] = {"host": server.host, "port": server.port, "security": "none",
                                   "timeout": 5.0}
    settings.update(options)
    provider = SmtpProvider(**settings)  # type: ignore[arg-type]
    providers.append(provider)
    return provider


def test_every_message_arrives_once(smtp_server: SMTPServer, template: MessageTemplate,
                                    providers: list[SmtpProvider]) -> None:
    """Each recipient gets one copy, from the newsletter's address, as a whole message."""
    readers = recipients(4)
    results = plain(smtp_server, providers).send(template, readers, now=NOW)
    assert [r.outcome for r in results] == [Outcome.SENT] * 4
    assert [r.delivery_id for r in results] == [r.delivery_id for r in readers]
    assert all(smtp_server.count(r.email) == 1 for r in readers)
    first = smtp_server.messages_to(readers[0].email)[0]
    assert first.mail_from == "dana@example.org"
    parsed = first.parsed()
    assert parsed["Message-ID"] == readers[0].message_id
    body = parsed.get_body(("plain",))
    assert body is not None and "Hello Reader 0" in body.get_content()


def test_batches_reuse_one_connection(smtp_server: SMTPServer, template: MessageTemplate,
                                      providers: list[SmtpProvider]) -> None:
    """Several calls in a row ride one persistent session."""
    provider = plain(smtp_server, providers)
    for chunk in range(3):
        provider.send(template, recipients(5, domain=f"d{chunk}.example.net"), now=NOW)
    assert len(smtp_server.messages) == 15
    assert smtp_server.connections == 1


def test_concurrent_calls_stay_within_the_pool(smtp_server: SMTPServer, template: MessageTemplate,
                                               providers: list[SmtpProvider]) -> None:
    """Eight threads sending at once open no more than `connections` sessions."""
    provider = plain(smtp_server, providers, connections=2)
    smtp_server.delay = 0.02
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            results = provider.send(template, recipients(3, domain=f"t{index}.example.net"),
                                    now=NOW)
            assert all(r.outcome is Outcome.SENT for r in results)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(smtp_server.messages) == 24
    assert 1 <= smtp_server.connections <= 2


def test_temporary_refusal_is_retried(smtp_server: SMTPServer, template: MessageTemplate,
                                      providers: list[SmtpProvider]) -> None:
    """A 4xx at RCPT makes that recipient RETRY; the others still go out."""
    first, busy, last = recipients(3)
    smtp_server.answer(busy.email, "450 4.2.1 Mailbox busy, try later")
    results = plain(smtp_server, providers).send(template, [first, busy, last], now=NOW)
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.RETRY, Outcome.SENT]
    assert "450 4.2.1" in results[1].detail
    assert smtp_server.count(busy.email) == 0
    assert smtp_server.connections == 1


def test_permanent_refusal_fails_that_recipient(smtp_server: SMTPServer,
                                                template: MessageTemplate,
                                                providers: list[SmtpProvider]) -> None:
    """A 5xx at RCPT fails that recipient for good, with the server's words."""
    gone, fine = recipients(2)
    smtp_server.answer(gone.email, "550 5.1.1 No such user here")
    results = plain(smtp_server, providers).send(template, [gone, fine], now=NOW)
    assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.SENT]
    assert "550 5.1.1 No such user" in results[0].detail


@pytest.mark.parametrize(("reply", "outcome"), [
    ("552 5.3.4 Message too big for system", Outcome.FAILED),
    ("451 4.3.0 Temporary content scan failure", Outcome.RETRY),
])
def test_answer_to_data_decides_that_message(smtp_server: SMTPServer, template: MessageTemplate,
                                             providers: list[SmtpProvider], reply: str,
                                             outcome: Outcome) -> None:
    """A refusal after DATA affects that message only; the session carries on."""
    odd, fine = recipients(2)
    smtp_server.answer_data(odd.email, reply)
    results = plain(smtp_server, providers).send(template, [odd, fine], now=NOW)
    assert [r.outcome for r in results] == [outcome, Outcome.SENT]
    assert reply.split()[0] in results[0].detail
    assert smtp_server.connections == 1


def test_dropped_session_is_reopened(smtp_server: SMTPServer, template: MessageTemplate,
                                     providers: list[SmtpProvider]) -> None:
    """A session the server closed while idle is replaced and nothing is lost or doubled."""
    provider = plain(smtp_server, providers)
    provider.send(template, recipients(2, domain="a.example.net"), now=NOW)
    smtp_server.drop_connections()
    results = provider.send(template, recipients(2, domain="b.example.net"), now=NOW)
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    assert len(smtp_server.messages) == 4
    assert sum(smtp_server.counts().values()) == 4
    assert smtp_server.connections == 2


def test_unreachable_server_retries_everyone(template: MessageTemplate,
                                             providers: list[SmtpProvider]) -> None:
    """No server listening: the call is refused for now, naming the server."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = SmtpProvider(host="127.0.0.1", port=port, security="none", timeout=2.0)
    providers.append(provider)
    with pytest.raises(TemporaryFailure, match=f"127.0.0.1:{port}"):
        provider.send(template, recipients(3), now=NOW)


def test_server_hanging_after_data_is_uncertain_retry(smtp_server: SMTPServer,
                                                      template: MessageTemplate,
                                                      providers: list[SmtpProvider]) -> None:
    """No answer to DATA within the timeout: RETRY, saying it may have arrived."""
    smtp_server.delay = 1.5
    provider = plain(smtp_server, providers, timeout=0.3)
    results = provider.send(template, recipients(3), now=NOW)
    assert [r.outcome for r in results] == [Outcome.RETRY] * 3
    assert "may have accepted" in results[0].detail
    assert "not tried" in results[2].detail
    assert [r.maybe_sent for r in results] == [True, False, False]
    assert smtp_server.connections == 1


def test_unusable_recipient_fails_alone(smtp_server: SMTPServer, template: MessageTemplate,
                                        providers: list[SmtpProvider]) -> None:
    """A recipient whose values cannot make a message fails; the rest are sent."""
    good, bad = recipients(2)
    bad = replace(bad, unsubscribe_url="javascript:alert(1)")
    results = plain(smtp_server, providers).send(template, [bad, good], now=NOW)
    assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.SENT]


class _Users:
    def __init__(self, users: dict[str, str]) -> None:
        self.users = users
        self.logged_in: list[str] = []

    def __call__(self, server: object, session: object, envelope: object, mechanism: str,
                 auth_data: object) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        ok = self.users.get(login) == password
        if ok:
            self.logged_in.append(login)
        return AuthResult(success=ok, handled=False)


def test_login_when_username_is_set(template: MessageTemplate,
                                    providers: list[SmtpProvider]) -> None:
    """With a username the provider logs in before sending."""
    users = _Users({"dana": "s3cret"})
    with SMTPServer(authenticator=users) as server:
        provider = plain(server, providers, username="dana", password="s3cret")
        results = provider.send(template, recipients(1), now=NOW)
        provider.close()
    assert results[0].outcome is Outcome.SENT
    assert users.logged_in == ["dana"]


def test_refused_login_stops_the_call(template: MessageTemplate,
                                      providers: list[SmtpProvider]) -> None:
    """A wrong password is a config error naming the variable, and nothing is marked."""
    with SMTPServer(authenticator=_Users({"dana": "s3cret"})) as server:
        provider = plain(server, providers, username="dana", password="wrong")
        with pytest.raises(ConfigError, match="PUBLISHER_SMTP_PASSWORD"):
            provider.send(template, recipients(2), now=NOW)
        assert server.messages == []


def _self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """Server and client contexts around a fresh certificate for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


def test_starttls_encrypts_before_sending(tmp_path: Path, template: MessageTemplate,
                                          providers: list[SmtpProvider]) -> None:
    """security = starttls upgrades the session (the server insists) and verifies the cert."""
    server_context, client_context = _self_signed(tmp_path)
    with SMTPServer(tls_context=server_context, require_starttls=True) as server:
        provider = plain(server, providers, security="starttls", ssl_context=client_context)
        results = provider.send(template, recipients(2), now=NOW)
        provider.close()
        assert len(server.messages) == 2
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]


def test_implicit_tls_from_the_first_byte(tmp_path: Path, template: MessageTemplate,
                                          providers: list[SmtpProvider]) -> None:
    """security = tls speaks TLS from connect (port 465 style)."""
    server_context, client_context = _self_signed(tmp_path)
    with SMTPServer(ssl_context=server_context) as server:
        provider = plain(server, providers, security="tls", ssl_context=client_context)
        results = provider.send(template, recipients(1), now=NOW)
        provider.close()
        assert len(server.messages) == 1
    assert results[0].outcome is Outcome.SENT


def test_starttls_refuses_an_untrusted_certificate(tmp_path: Path, template: MessageTemplate,
                                                   providers: list[SmtpProvider]) -> None:
    """A certificate the client does not trust is not sent to: the message waits."""
    server_context, _ = _self_signed(tmp_path)
    with SMTPServer(tls_context=server_context, require_starttls=True) as server:
        provider = plain(server, providers, security="starttls",
                         ssl_context=ssl.create_default_context())
        with pytest.raises(TemporaryFailure, match="CERTIFICATE_VERIFY_FAILED"):
            provider.send(template, recipients(1), now=NOW)
        assert server.messages == []


def test_close_ends_idle_sessions(smtp_server: SMTPServer, template: MessageTemplate) -> None:
    """close() says QUIT on every pooled session."""
    provider = SmtpProvider(host=smtp_server.host, port=smtp_server.port, security="none")
    provider.send(template, recipients(1), now=NOW)
    provider.close()
    assert provider._idle == []


def test_from_config_reads_the_smtp_table(tmp_path: Path) -> None:
    """[delivery.smtp] and the password variable configure the provider."""
    extra = ('[delivery.smtp]\nhost = "mail.example.org"\nport = 2525\nsecurity = "tls"\n'
             'username = "dana"\nconnections = 3\n')
    config = publication_config(tmp_path, env={"PUBLISHER_SMTP_PASSWORD": "pw"}, extra=extra)
    provider = SmtpProvider.from_config(config)
    assert (provider.host, provider.port, provider.security, provider.connections) == (
        "mail.example.org", 2525, "tls", 3)


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_login_over_tls_with_the_password_from_the_environment(
    tmp_path: Path, template: MessageTemplate, monkeypatch: pytest.MonkeyPatch, security: str
) -> None:
    """From config: TLS verified against a CA named by SSL_CERT_FILE, then AUTH with the env password."""
    server_context, _ = _self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
    users = _Users({"dana": "pw from env"})
    tls = {"tls_context": server_context, "require_starttls": True} if security == "starttls" \
        else {"ssl_context": server_context}
    with SMTPServer(authenticator=users, auth_require_tls=True, **tls) as server:
        extra = (f'[delivery.smtp]\nhost = "127.0.0.1"\nport = {server.port}\n'
                 f'security = "{security}"\nusername = "dana"\n')
        config = publication_config(tmp_path, env={"PUBLISHER_SMTP_PASSWORD": "pw from env"},
                                    extra=extra)
        provider = SmtpProvider.from_config(config)
        try:
            results = provider.send(template, recipients(2), now=NOW)
        finally:
            provider.close()
        assert len(server.messages) == 2
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    assert users.logged_in == ["dana"]


def test_a_wrong_password_from_the_environment_stops_over_tls(
    tmp_path: Path, template: MessageTemplate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """STARTTLS then a refused AUTH: a config error naming PUBLISHER_SMTP_PASSWORD, nothing sent."""
    server_context, _ = _self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
    with SMTPServer(authenticator=_Users({"dana": "right"}), tls_context=server_context,
                    require_starttls=True) as server:
        extra = (f'[delivery.smtp]\nhost = "127.0.0.1"\nport = {server.port}\n'
                 'security = "starttls"\nusername = "dana"\n')
        config = publication_config(tmp_path, env={"PUBLISHER_SMTP_PASSWORD": "wrong"}, extra=extra)
        provider = SmtpProvider.from_config(config)
        try:
            with pytest.raises(ConfigError, match="PUBLISHER_SMTP_PASSWORD"):
                provider.send(template, recipients(2), now=NOW)
        finally:
            provider.close()
        assert server.messages == []


def test_international_mailbox_without_smtputf8_fails_alone(template: MessageTemplate,
                                                            providers: list[SmtpProvider]) -> None:
    """A non-ASCII mailbox name the server cannot take fails that recipient; the rest go out."""
    first, other, last = recipients(3)
    other = replace(other, email="josé@example.net")
    with SMTPServer(enable_SMTPUTF8=False) as server:
        results = plain(server, providers).send(template, [first, other, last], now=NOW)
        assert server.counts() == {first.email: 1, last.email: 1}
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.FAILED, Outcome.SENT]
    assert "SMTPUTF8" in results[1].detail
    assert not is_hard_bounce(results[1])


def test_international_domain_without_smtputf8_goes_out_as_idna(
    template: MessageTemplate, providers: list[SmtpProvider]
) -> None:
    """A non-ASCII domain is sent to in its xn-- form when the server lacks SMTPUTF8."""
    reader = replace(recipients(1)[0], email="ann@bücher.example")
    with SMTPServer(enable_SMTPUTF8=False) as server:
        (result,) = plain(server, providers).send(template, [reader], now=NOW)
        assert server.counts() == {"ann@xn--bcher-kva.example": 1}
    assert result.outcome is Outcome.SENT


def test_international_mailbox_with_smtputf8_is_sent(smtp_server: SMTPServer,
                                                     template: MessageTemplate,
                                                     providers: list[SmtpProvider]) -> None:
    """A server offering SMTPUTF8 takes a non-ASCII mailbox as it is."""
    reader = replace(recipients(1)[0], email="josé@example.net")
    (result,) = plain(smtp_server, providers).send(template, [reader], now=NOW)
    assert result.outcome is Outcome.SENT
    assert smtp_server.count("josé@example.net") == 1


def test_a_server_without_smtputf8_is_told_before_sending(
    smtp_server: SMTPServer, providers: list[SmtpProvider]
) -> None:
    """Asked once before a send, the provider names the server that lacks SMTPUTF8; one
    that offers it, or one that cannot be reached now, gives no reason; the connection
    it opened is kept for the send."""
    with SMTPServer(enable_SMTPUTF8=False) as server:
        provider = plain(server, providers)
        reason = provider.utf8_mailboxes_refused()
        assert "SMTPUTF8" in reason and f"127.0.0.1:{server.port}" in reason
        assert server.connections == 1
    assert plain(smtp_server, providers).utf8_mailboxes_refused() == ""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    nowhere = SmtpProvider(host="127.0.0.1", port=port, security="none", timeout=2)
    providers.append(nowhere)
    assert nowhere.utf8_mailboxes_refused() == ""


class _Exploding:
    """A template that raises an unexpected error (a bug) for one address."""

    def __init__(self, inner: MessageTemplate, address: str) -> None:
        self._inner, self._address = inner, address

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def message_bytes(self, recipient: Recipient, date: dt.datetime) -> bytes:
        if recipient.email == self._address:
            raise RuntimeError("template bug")
        return self._inner.message_bytes(recipient, date)


def test_a_template_bug_hands_back_the_answers_already_given(
    smtp_server: SMTPServer, template: MessageTemplate, providers: list[SmtpProvider]
) -> None:
    """Messages out before an unexpected error are reported sent; the failing one was not sent."""
    readers = recipients(4)
    provider = plain(smtp_server, providers)
    with pytest.raises(SendInterrupted) as caught:
        provider.send(_Exploding(template, readers[2].email), readers, now=NOW)  # type: ignore[arg-type]
    assert [r.outcome for r in caught.value.results] == [Outcome.SENT, Outcome.SENT]
    assert caught.value.in_flight == 0
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert len(smtp_server.messages) == 2
    # The session was not harmed: the next call rides it.
    assert provider.send(template, readers[3:], now=NOW)[0].outcome is Outcome.SENT
    assert smtp_server.connections == 1


def test_an_unexpected_error_in_a_transaction_leaves_that_message_in_flight(
    smtp_server: SMTPServer, template: MessageTemplate, providers: list[SmtpProvider],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error inside DATA: earlier answers kept, that one message unsure, the session dropped."""
    from publisher.delivery import smtp_session as smtp_module

    real_data = smtp_module._data
    calls = {"n": 0}

    def data(raw: bytes) -> bytes:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("smtplib bug")
        return real_data(raw)

    monkeypatch.setattr(smtp_module, "_data", data)
    provider = plain(smtp_server, providers)
    with pytest.raises(SendInterrupted) as caught:
        provider.send(template, recipients(3), now=NOW)
    assert [r.outcome for r in caught.value.results] == [Outcome.SENT]
    assert caught.value.in_flight == 1
    assert provider._idle == []


def test_server_gone_mid_call_keeps_earlier_answers(smtp_server: SMTPServer,
                                                    template: MessageTemplate,
                                                    providers: list[SmtpProvider]) -> None:
    """The server vanishing after some messages: those answered stay sent, the rest RETRY.

    It goes while the third message is made: the first was answered (at the latest with
    the second's envelope); the second's answer may never come.
    """
    provider = plain(smtp_server, providers, timeout=1.0)
    *early, last = recipients(3)

    class StopAtLast:
        def __getattr__(self, name: str) -> object:
            return getattr(template, name)

        def message_bytes(self, recipient: Recipient, date: dt.datetime) -> bytes:
            if recipient is last:
                smtp_server.stop()
            return template.message_bytes(recipient, date)

    results = provider.send(StopAtLast(), [*early, last], now=NOW)  # type: ignore[arg-type]
    assert results[0].outcome is Outcome.SENT
    assert [r.outcome for r in results[2:]] == [Outcome.RETRY]
    assert results[1].outcome is Outcome.SENT or results[1].maybe_sent


def test_pipelining_sends_the_envelope_in_one_write(
    smtp_server: SMTPServer, template: MessageTemplate, providers: list[SmtpProvider],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the server offers PIPELINING, MAIL, RCPT and DATA leave in one write."""
    from publisher.delivery import smtp_session as smtp_module

    used: list[str] = []
    for name in ("_envelope", "_envelope_pipelined"):
        real = getattr(smtp_module, name)
        monkeypatch.setattr(smtp_module, name, lambda *a, _real=real, _name=name: used.append(_name) or _real(*a))
    results = plain(smtp_server, providers).send(template, recipients(3), now=NOW)
    assert [r.outcome for r in results] == [Outcome.SENT] * 3
    offered = smtp_server._controller.handler.__class__.__name__ == "_PipeliningHandler"  # type: ignore[attr-defined]
    assert used == (["_envelope_pipelined"] * 3 if offered else ["_envelope"] * 3)
