"""The bounce mailbox read over IMAP, against a real Dovecot on loopback with TLS.

Each test starts its own Dovecot (Debian's dovecot-imapd) on 127.0.0.1 with a throwaway
config: one passwd-file user, a Maildir in a temporary folder, a self-signed certificate
made here. Messages go in by APPEND, as a mail server would deliver them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import grp
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from imapclient import IMAPClient

from publisher.cli import cli
from publisher.config import Config, load_config
from publisher.delivery.imap_bounces import Mailbox, MailboxSettings
from publisher.errors import ConfigError, MailboxError, StoreError
from publisher.models import SubscriberStatus
from publisher.schedule import jobs
from publisher.services import bounce_mailbox
from publisher.services.bounce_intake import Intake, take_message
from publisher.services.doctor import bounce_mailbox_finding
from publisher.store import bounce_review, open_store, subscribers

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
needs_dovecot = pytest.mark.skipif(
    not Path(DOVECOT).exists(),
    reason="Dovecot is not installed (Debian: apt-get install dovecot-imapd); the IMAP tests need a real server",
)
USER, PASSWORD = "bounces", "mailbox-secret"
NOW = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)
CORPUS = Path(__file__).parent / "data" / "bounces" / "sisimai"
"""Real bounce messages from public sources (sisimai's test set; its LICENSE lies beside them)."""
HARD = {
    "lhost-activehunter-01.eml": "kijitora@example.org",
    "lhost-courier-01.eml": "kijitora@example.co.jp",
    "lhost-exim-05.eml": "kijitora@neko.example.co.jp",
    "lhost-gmail-01.eml": "userunknown@example.jp",
    "lhost-office365-02.eml": "kijitora@example.onmicrosoft.com",
    "lhost-opensmtpd-03.eml": "kijitora@neko.example.jp",
}
"""Hard bounces written by six different mail servers, and the reader each names."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return cert_file, key_file


class Dovecot:
    """A Dovecot IMAP server on 127.0.0.1 (TLS only), stopped and started again at will."""

    def __init__(self) -> None:
        # Outside pytest's private tmp folder: Dovecot's login and mail processes never run
        # as root, so when the tests do, the server's folder belongs to `nobody`.
        self.root = Path(tempfile.mkdtemp(prefix="publisher-dovecot-"))
        self.root.chmod(0o755)
        self.port = _free_port()
        self.starttls_port = _free_port()
        self.ca_file, key_file = _certificate(self.root)
        if os.getuid() == 0:
            mail_user = pwd.getpwnam("nobody")
            run_as, login_as = "root", "nobody"
        else:
            mail_user = pwd.getpwuid(os.getuid())
            run_as = login_as = mail_user.pw_name
        home = self.root / "home"
        home.mkdir()
        os.chown(home, mail_user.pw_uid, mail_user.pw_gid)
        (self.root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        self.log = self.root / "dovecot.log"
        self.config = self.root / "dovecot.conf"
        self.config.write_text(f"""
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.log}
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{self.ca_file}
ssl_key = <{key_file}
default_internal_user = {run_as}
default_internal_group = {grp.getgrgid(pwd.getpwnam(run_as).pw_gid).gr_name}
default_login_user = {login_as}
first_valid_uid = 0
auth_mechanisms = plain
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.root}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_user.pw_uid} gid={mail_user.pw_gid} home={home}/%u
}}
mail_location = maildir:{home}/%u/Maildir
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.starttls_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  inet_listener http {{
    port = 0
  }}
}}
""")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([DOVECOT, "-F", "-c", str(self.config)], start_new_session=True,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        log = self.log.read_text(errors="replace") if self.log.exists() else "(no log)"
        raise RuntimeError(f"Dovecot did not start on port {self.port}:\n{log}")

    def stop(self) -> None:
        """Gone at once, with every connection it held (its children are in its own group)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    @contextlib.contextmanager
    def client(self) -> Iterator[IMAPClient]:
        """The test's own look into the mailbox."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        client = IMAPClient("127.0.0.1", port=self.port, ssl=True, ssl_context=context, timeout=10)
        client.login(USER, PASSWORD)
        try:
            yield client
        finally:
            client.logout()

    def append(self, *messages: bytes, folder: str = "INBOX") -> None:
        with self.client() as client:
            for raw in messages:
                client.append(folder, raw)

    def subjects(self, name: str) -> list[str]:
        """The Subject of each message in `name`, oldest first."""
        return [email.message_from_bytes(raw)["Subject"] for raw in self.folder(name)]

    def folder(self, name: str) -> list[bytes]:
        """The messages in `name`, oldest first ([] when there is no such folder)."""
        with self.client() as client:
            if not client.folder_exists(name):
                return []
            client.select_folder(name, readonly=True)
            uids = sorted(client.search(["NOT", "DELETED"]))
            found = client.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
            return [bytes(found[uid][b"BODY[]"]) for uid in uids]


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot()
    try:
        server.start()
        yield server
    finally:
        server.close()


def publication(
    root: Path, server: Dovecot | None, extra: str = "", *, password: str = PASSWORD, port: int | None = None,
    poll: float = 1,
) -> Config:
    port = port or (server.port if server else 993)
    ca = f'ca_file = "{server.ca_file}"' if server else ""
    (root / "config.toml").write_text(f"""
[publication]
title = "Bounce Test"
url = "https://example.org/"
postal_address = "1 Test Street"

[newsletter]
from = "Tester <news@example.org>"

[bounces.imap]
host = "127.0.0.1"
port = {port}
username = "{USER}"
poll_seconds = {poll}
{ca}
{extra}
""")
    return load_config(root / "config.toml", env={"PUBLISHER_BOUNCES_IMAP_PASSWORD": password} if password else {})


def message(tag: str, *, size: int = 0) -> bytes:
    """A message whose Subject tells the stand-in intake what to decide."""
    mail = EmailMessage()
    mail["From"] = "MAILER-DAEMON@mx.example.net"
    mail["To"] = "bounces@example.org"
    mail["Subject"] = tag
    mail["Message-ID"] = f"<{tag}@mx.example.net>"
    mail.set_content("Delivery failed.\n" + ("x" * 76 + "\n") * (size // 77))
    return mail.as_bytes().replace(b"\n", b"\r\n")


@dataclass
class StandIn:
    """An idempotent intake: one decision per Message-ID, however often a message is taken."""

    decisions: dict[str, str] = field(default_factory=dict)
    taken: list[str] = field(default_factory=list)
    then: object = None
    """Called after each take with the message's tag (a test's way to break things mid-pass)."""

    def __call__(self, config: Config, db: object, raw: bytes, *, now: dt.datetime, source: str) -> Intake:
        assert source == "imap"
        tag = next(line for line in raw.split(b"\r\n") if line.startswith(b"Subject: "))[9:].decode()
        outcome = tag.split("-")[0]
        if outcome == "explode":
            raise ValueError("the parser fell over")
        if outcome == "storedown":
            raise StoreError("the database cannot be reached")
        self.taken.append(tag)
        self.decisions.setdefault(tag, outcome)
        if callable(self.then):
            self.then(tag)
        return Intake(outcome=outcome, address=None, issue_id=None, detail="")  # type: ignore[arg-type]


def one_pass(config: Config, take: StandIn) -> bounce_mailbox.PassReport:
    return bounce_mailbox.check_mailbox(config, open_store(config.store_url), clock=lambda: NOW, take=take)


@needs_dovecot
def test_a_pass_moves_each_message_to_the_folder_its_decision_names(dovecot: Dovecot, tmp_path: Path) -> None:
    """Decided messages go to Processed, a "review" decision to Needs review; the inbox ends empty."""
    config = publication(tmp_path, dovecot)
    dovecot.append(message("suppressed-1"), message("not_a_bounce-2"), message("review-3"), message("forged-4"))
    report = one_pass(config, StandIn())
    assert (report.done, report.review) == (3, 1)
    assert report.outcomes == {"suppressed": 1, "not_a_bounce": 1, "review": 1, "forged": 1}
    assert dovecot.folder("INBOX") == []
    assert dovecot.subjects("Processed") == ["suppressed-1", "not_a_bounce-2", "forged-4"]
    assert dovecot.subjects("Needs review") == ["review-3"]


@needs_dovecot
def test_a_message_the_intake_cannot_take_goes_to_review_whole(dovecot: Dovecot, tmp_path: Path) -> None:
    """A message that makes the intake fail is moved, byte for byte, to Needs review: never deleted."""
    config = publication(tmp_path, dovecot)
    raw = message("explode-1")
    dovecot.append(raw)
    report = one_pass(config, StandIn())
    assert (report.done, report.review) == (0, 1)
    assert dovecot.folder("Needs review") == [raw]
    assert dovecot.folder("INBOX") == []


@needs_dovecot
def test_an_unreachable_store_leaves_the_message_in_the_inbox(dovecot: Dovecot, tmp_path: Path) -> None:
    """When the store cannot take a decision, the message stays where it is for the next pass."""
    config = publication(tmp_path, dovecot)
    dovecot.append(message("storedown-1"))
    with pytest.raises(StoreError):
        one_pass(config, StandIn())
    assert len(dovecot.folder("INBOX")) == 1
    assert dovecot.folder("Processed") == dovecot.folder("Needs review") == []


@needs_dovecot
def test_the_server_going_away_mid_pass_skips_nothing_and_decides_nothing_twice(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    """Dovecot stopped after a message is taken and before it is moved: the next pass takes it
    again (one decision), then the rest; every message ends in Processed exactly once."""
    config = publication(tmp_path, dovecot)
    tags = [f"suppressed-{n}" for n in range(1, 7)]
    dovecot.append(*(message(tag) for tag in tags))
    take = StandIn(then=lambda tag: dovecot.stop() if tag == "suppressed-3" else None)
    with pytest.raises(MailboxError, match=r"127\.0\.0\.1:\d+.*connection failed"):
        one_pass(config, take)
    assert take.taken == tags[:3]
    dovecot.start()
    take.then = None
    report = one_pass(config, take)
    assert report.done == 4
    assert take.taken == [*tags[:3], *tags[2:]]  # the third taken twice, nothing skipped
    assert sorted(take.decisions) == tags  # one decision each
    assert sorted(dovecot.subjects("Processed")) == tags
    assert dovecot.folder("INBOX") == []


@needs_dovecot
def test_the_server_going_away_during_a_fetch_loses_nothing(dovecot: Dovecot, tmp_path: Path) -> None:
    """Dovecot killed as the second message is fetched: the first stays handled, the second and
    third are taken once each after it is back."""
    config = publication(tmp_path, dovecot)
    dovecot.append(message("suppressed-1"), message("suppressed-2"), message("suppressed-3"))
    settings = bounce_mailbox.settings_of(config)

    class Dying(Mailbox):
        def fetch(self, uid: int) -> bytes | None:
            if uid == 2:
                dovecot.stop()
            return super().fetch(uid)

    take = StandIn()
    with Dying(settings) as mailbox, pytest.raises(MailboxError, match="while fetching message 2"):
        bounce_mailbox.run_pass(config, open_store(config.store_url), mailbox, settings, clock=lambda: NOW,
                                take=take)
    dovecot.start()
    assert one_pass(config, take).done == 2
    assert take.taken == ["suppressed-1", "suppressed-2", "suppressed-3"]
    assert dovecot.subjects("Processed") == ["suppressed-1", "suppressed-2", "suppressed-3"]


@needs_dovecot
def test_a_message_over_max_bytes_goes_to_review_unread(dovecot: Dovecot, tmp_path: Path) -> None:
    """A 20 MB message over a 10 MB cap is moved to Needs review without being downloaded."""
    config = publication(tmp_path, dovecot, "max_bytes = 10_000_000")
    dovecot.append(message("suppressed-big", size=20_000_000), message("suppressed-small"))
    take = StandIn()
    report = one_pass(config, take)
    assert take.taken == ["suppressed-small"]
    assert (report.done, report.review, report.too_big) == (1, 1, 1)
    (big,) = dovecot.folder("Needs review")
    assert len(big) > 20_000_000


@needs_dovecot
def test_a_20_mb_message_under_the_default_cap_is_taken(dovecot: Dovecot, tmp_path: Path) -> None:
    """The default cap (25 MB) reads a 20 MB message and takes it like any other."""
    config = publication(tmp_path, dovecot)
    dovecot.append(message("not_a_bounce-big", size=20_000_000))
    take = StandIn()
    report = one_pass(config, take)
    assert take.taken == ["not_a_bounce-big"]
    assert report.done == 1
    assert dovecot.folder("INBOX") == []


@needs_dovecot
def test_without_move_a_message_is_copied_then_only_its_uid_expunged(dovecot: Dovecot, tmp_path: Path) -> None:
    """On a server without MOVE: COPY, \\Deleted and UID EXPUNGE of that message alone; another
    message someone else flagged \\Deleted stays."""
    config = publication(tmp_path, dovecot)
    dovecot.append(message("suppressed-1"))
    with dovecot.client() as client:
        client.append("INBOX", message("theirs-1"), flags=[b"\\Deleted"])
    settings = bounce_mailbox.settings_of(config)
    with Mailbox(settings) as mailbox:
        mailbox.can_move = False
        report = bounce_mailbox.run_pass(config, open_store(config.store_url), mailbox, settings,
                                         clock=lambda: NOW, take=StandIn())
    assert report.done == 1
    assert len(dovecot.folder("Processed")) == 1
    with dovecot.client() as client:
        client.select_folder("INBOX", readonly=True)
        assert len(client.search(["DELETED"])) == 1  # theirs, still there


@needs_dovecot
def test_starttls_on_the_plain_port_works_the_same(dovecot: Dovecot, tmp_path: Path) -> None:
    """security = "starttls" on port 143's kind of listener: verified TLS, then the same pass."""
    config = publication(tmp_path, dovecot, 'security = "starttls"', port=dovecot.starttls_port)
    dovecot.append(message("suppressed-1"))
    assert one_pass(config, StandIn()).done == 1
    assert dovecot.subjects("Processed") == ["suppressed-1"]


@needs_dovecot
def test_a_wrong_password_names_the_login_and_the_secret(dovecot: Dovecot, tmp_path: Path) -> None:
    """A refused login says which login and which secret to check."""
    config = publication(tmp_path, dovecot, password="not-it")
    with pytest.raises(MailboxError, match=r"refused the login for 'bounces'.*PUBLISHER_BOUNCES_IMAP_PASSWORD"):
        one_pass(config, StandIn())
    assert dovecot.folder("INBOX") == []


@needs_dovecot
def test_a_certificate_nobody_vouches_for_is_refused(dovecot: Dovecot, tmp_path: Path) -> None:
    """Without ca_file the self-signed server is not trusted: the error says to name its authority."""
    config = publication(tmp_path, dovecot)
    (tmp_path / "config.toml").write_text((tmp_path / "config.toml").read_text().replace(
        f'ca_file = "{dovecot.ca_file}"', ""))
    untrusting = load_config(tmp_path / "config.toml", env={"PUBLISHER_BOUNCES_IMAP_PASSWORD": PASSWORD})
    assert config["bounces.imap.ca_file"] and not untrusting["bounces.imap.ca_file"]
    with pytest.raises(MailboxError, match=r"certificate cannot be trusted.*ca_file"):
        one_pass(untrusting, StandIn())


def test_no_password_is_a_config_error_naming_the_secret(tmp_path: Path) -> None:
    """A mailbox without its password is refused before any connection."""
    config = publication(tmp_path, None, password="")
    with pytest.raises(ConfigError, match="PUBLISHER_BOUNCES_IMAP_PASSWORD is not set"):
        bounce_mailbox.settings_of(config)


def test_the_three_folders_must_differ(tmp_path: Path) -> None:
    """done_folder equal to folder would take a message round and round: refused."""
    config = publication(tmp_path, None, 'done_folder = "INBOX"')
    with pytest.raises(ConfigError, match="three different folders"):
        MailboxSettings.from_config(config)


def test_no_host_means_no_mailbox(tmp_path: Path) -> None:
    """With bounces.imap.host empty there is nothing to read, and the command says what to set."""
    (tmp_path / "config.toml").write_text(
        '[publication]\ntitle = "T"\nurl = "https://example.org/"\n[newsletter]\nfrom = "a@example.org"\n')
    config = load_config(tmp_path / "config.toml", env={})
    assert MailboxSettings.from_config(config) is None
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "config.toml"), "bounces", "check-mailbox",
                                      "--once"])
    assert result.exit_code == 1
    assert "no bounce mailbox is configured: set [bounces.imap] host" in result.output


def test_only_a_known_decision_goes_to_done() -> None:
    """Review, nothing, or a decision this reader does not know: a person looks."""
    assert bounce_mailbox.destination("suppressed") == "done"
    assert bounce_mailbox.destination("unknown_subscriber") == "done"
    assert bounce_mailbox.destination("review") == "review"
    assert bounce_mailbox.destination(None) == "review"
    assert bounce_mailbox.destination("something-new") == "review"


@needs_dovecot
def test_check_mailbox_once_prints_the_counts(
    dovecot: Dovecot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`publisher bounces check-mailbox --once` runs one pass and says what it did."""
    publication(tmp_path, dovecot)
    monkeypatch.setattr("publisher.services.bounce_intake.take_message", StandIn())
    monkeypatch.setenv("PUBLISHER_BOUNCES_IMAP_PASSWORD", PASSWORD)
    dovecot.append(message("suppressed-1"), message("review-2"))
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "config.toml"), "bounces", "check-mailbox",
                                      "--once"])
    assert result.exit_code == 0, result.output
    assert result.output == "2 messages: 1 review, 1 suppressed; 1 to done, 1 to review\n"


@needs_dovecot
def test_doctor_logs_in_and_counts_the_waiting_messages(dovecot: Dovecot, tmp_path: Path) -> None:
    """The doctor's check logs in, selects the folder and says how many messages wait; it moves none."""
    config = publication(tmp_path, dovecot)
    dovecot.append(message("suppressed-1"))
    finding = bounce_mailbox_finding(config)
    assert finding is not None and finding.status == "ok", finding
    assert "folder 'INBOX' holds 1 message(s)" in finding.detail and "IDLE" in finding.detail
    assert len(dovecot.folder("INBOX")) == 1


@needs_dovecot
def test_doctor_fails_a_refused_login(dovecot: Dovecot, tmp_path: Path) -> None:
    """A wrong password is a failed check with what to fix."""
    finding = bounce_mailbox_finding(publication(tmp_path, dovecot, password="wrong"))
    assert finding is not None and finding.status == "fail"
    assert "refused the login" in finding.detail and "PUBLISHER_BOUNCES_IMAP_PASSWORD" in finding.fix


def test_a_mailbox_that_cannot_be_reached_backs_off_and_says_so(tmp_path: Path) -> None:
    """Nothing listening: the watch does not raise, says why once, and waits before the next try."""
    config = publication(tmp_path, None, port=_free_port())
    failures: list[str] = []
    watch = bounce_mailbox.MailboxWatch(config, open_store(config.store_url), clock=lambda: NOW, take=StandIn(),
                                        on_failure=lambda exc, wait: failures.append(str(exc)))
    stop = threading.Event()
    watch.run(stop)
    assert watch.retry_at == NOW + bounce_mailbox.BACKOFF_FIRST
    watch.run(stop)  # within the backoff: not tried again
    assert len(failures) == 1 and "connection failed while connecting" in failures[0]


@needs_dovecot
def test_idle_takes_a_new_message_at_once(dovecot: Dovecot, tmp_path: Path) -> None:
    """The daemon's job waits in IDLE: a message APPENDed while it waits is taken within a second.

    Prints the median of ten, from APPEND to the decision (`pytest -s -k idle`)."""
    config_path = str(tmp_path / "config.toml")
    publication(tmp_path, dovecot, poll=60)
    config = load_config(config_path, env={"PUBLISHER_BOUNCES_IMAP_PASSWORD": PASSWORD})
    rt = jobs.Runtime(config=config, db=open_store(config.store_url), clock=lambda: NOW)
    jobs.register(config_path, rt)
    taken = threading.Event()
    take = StandIn(then=lambda tag: taken.set())
    watch = bounce_mailbox.MailboxWatch(config, rt.db, clock=rt.clock, take=take)
    jobs._MAILBOX_WATCHES[config_path] = watch
    runner = threading.Thread(target=jobs.check_bounce_mailbox, args=[config_path])
    runner.start()
    times = []
    try:
        with dovecot.client() as client:
            time.sleep(0.5)  # the job's first pass is done and it waits in IDLE
            for n in range(10):
                taken.clear()
                started = time.monotonic()
                client.append("INBOX", message(f"suppressed-{n}"))
                assert taken.wait(15), f"the job did not notice message {n} ({times})"
                times.append(time.monotonic() - started)
    finally:
        rt.stop.set()
        runner.join(10)
    assert not runner.is_alive()
    median = statistics.median(times)
    print(f"\nIMAP IDLE: APPEND to decision, median of 10: {median * 1000:.0f} ms "
          f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f})")
    assert median < 2.0
    assert len(dovecot.folder("Processed")) == 10


def readers(config: Config, *addresses: str) -> None:
    db = open_store(config.store_url)
    for address in addresses:
        subscribers.add(db, address, now=NOW - dt.timedelta(days=30))


def status_of(config: Config, address: str) -> SubscriberStatus:
    found = subscribers.find(open_store(config.store_url), address)
    assert found is not None
    return found.status


def decisions_about(config: Config, address: str) -> list[str]:
    db = open_store(config.store_url)
    found = subscribers.find(db, address)
    assert found is not None
    return [m.outcome for m in bounce_review.for_subscriber(db, found.id, address)]


@needs_dovecot
def test_real_bounces_in_the_mailbox_suppress_and_unsubscribe_their_readers(dovecot: Dovecot, tmp_path: Path) -> None:
    """A real DSN suppresses its reader, a real feedback report (ARF) unsubscribes its reader,
    a real vacation notice changes nothing, and a broken MIME tree waits in Needs review."""
    config = publication(tmp_path, dovecot)
    readers(config, "userunknown@bouncehammer.jp", "redacted@example.net")
    broken = (b"From: MAILER-DAEMON@mx.example.net\r\nSubject: Undelivered Mail\r\nMessage-ID: <broken@x>\r\n"
              b"Content-Type: multipart/report; boundary=\"never-closed\r\n\r\n--never\r\n\xff\xfe garbage"
              b"\r\nContent-Type: message/delivery-status\r\n\r\nAction failed\r\n")
    dovecot.append(*[(CORPUS / name).read_bytes() for name in ("rfc3464-01.eml", "arf-01.eml", "rfc3834-01.eml")])
    dovecot.append(broken)
    report = bounce_mailbox.check_mailbox(config, open_store(config.store_url), clock=lambda: NOW)
    assert report.outcomes == {"suppressed": 1, "complaint": 1, "not_a_bounce": 1, "review": 1}
    assert status_of(config, "userunknown@bouncehammer.jp") is SubscriberStatus.BOUNCED
    assert status_of(config, "redacted@example.net") is SubscriberStatus.COMPLAINED
    assert len(dovecot.folder("Processed")) == 3
    assert dovecot.folder("Needs review") == [broken]
    assert dovecot.folder("INBOX") == []


@needs_dovecot
def test_the_server_going_away_mid_pass_with_real_bounces_records_each_once(dovecot: Dovecot, tmp_path: Path) -> None:
    """Six real hard bounces; Dovecot is killed after the third is taken, before it is moved.
    After it is back, every reader is suppressed by exactly one recorded decision, and
    every message sits once in Processed."""
    config = publication(tmp_path, dovecot)
    readers(config, *HARD.values())
    dovecot.append(*[(CORPUS / name).read_bytes() for name in HARD])
    taken: list[str | None] = []

    def take_then_fail(config: Config, db: object, raw: bytes, *, now: dt.datetime, source: str) -> Intake:
        intake = take_message(config, db, raw, now=now, source=source)  # type: ignore[arg-type]
        taken.append(intake.address)
        if len(taken) == 3:
            dovecot.stop()
        return intake

    with pytest.raises(MailboxError):
        bounce_mailbox.check_mailbox(config, open_store(config.store_url), clock=lambda: NOW, take=take_then_fail)
    dovecot.start()
    report = bounce_mailbox.check_mailbox(config, open_store(config.store_url), clock=lambda: NOW)
    assert report.done == 4  # the third again, and the three not yet read
    for address in HARD.values():
        assert status_of(config, address) is SubscriberStatus.BOUNCED, address
        assert decisions_about(config, address) == ["suppressed"], address
    assert len(dovecot.folder("Processed")) == 6
    assert dovecot.folder("INBOX") == []


def hard_dsn(recipient: str, n: int) -> bytes:
    """A delivery status notification as Postfix writes one for an unknown user."""
    return (
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n"
        "To: bounces@example.org\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <dsn-{n}@mx.example.net>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n--B--\r\n"
    ).encode()


@needs_dovecot
def test_time_from_a_bounce_arriving_to_the_address_suppressed(dovecot: Dovecot, tmp_path: Path) -> None:
    """The daemon's job in IDLE with the real intake: ten bounces APPENDed one at a time, each
    reader BOUNCED in the store within two seconds. Prints the median (`pytest -s -k time_from`)."""
    config_path = str(tmp_path / "config.toml")
    publication(tmp_path, dovecot, poll=60)
    config = load_config(config_path, env={"PUBLISHER_BOUNCES_IMAP_PASSWORD": PASSWORD})
    addresses = [f"reader{n}@example.net" for n in range(10)]
    readers(config, *addresses)
    rt = jobs.Runtime(config=config, db=open_store(config.store_url))
    jobs.register(config_path, rt)
    runner = threading.Thread(target=jobs.check_bounce_mailbox, args=[config_path])
    runner.start()
    times = []
    try:
        with dovecot.client() as client:
            time.sleep(0.5)
            for n, address in enumerate(addresses):
                started = time.monotonic()
                client.append("INBOX", hard_dsn(address, n))
                while status_of(config, address) is not SubscriberStatus.BOUNCED:
                    assert time.monotonic() - started < 15, f"{address} not suppressed"
                    time.sleep(0.005)
                times.append(time.monotonic() - started)
    finally:
        rt.stop.set()
        runner.join(15)
    assert not runner.is_alive()
    median = statistics.median(times)
    print(f"\nbounce APPEND to address suppressed, median of 10: {median * 1000:.0f} ms "
          f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f})")
    assert median < 2.0


@needs_dovecot
def test_without_idle_each_run_is_one_pass_on_the_kept_connection(dovecot: Dovecot, tmp_path: Path) -> None:
    """A server without IDLE: a run takes what waits and returns at once (the job comes back
    every poll_seconds); the next run uses the same connection."""
    config = publication(tmp_path, dovecot, poll=60)
    connections: list[Mailbox] = []

    def without_idle(settings: MailboxSettings) -> Mailbox:
        mailbox = Mailbox(settings)
        mailbox.can_idle = False
        connections.append(mailbox)
        return mailbox

    take = StandIn()
    watch = bounce_mailbox.MailboxWatch(config, open_store(config.store_url), clock=lambda: NOW, take=take,
                                        connect=without_idle)
    stop = threading.Event()
    try:
        for n in range(2):
            dovecot.append(message(f"suppressed-{n}"))
            started = time.monotonic()
            watch.run(stop)
            assert time.monotonic() - started < 5
        assert take.taken == ["suppressed-0", "suppressed-1"]
        assert len(connections) == 1
    finally:
        watch.close()


def test_the_daemon_reads_the_mailbox_only_when_one_is_set(tmp_path: Path) -> None:
    """`publisher serve` gets a mailbox job every poll_seconds with bounces.imap.host set, none without."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from publisher.schedule.scheduler import start_daemon_jobs

    config = publication(tmp_path, None, poll=45)
    scheduler = BackgroundScheduler()
    rt = jobs.Runtime(config=config, db=open_store(config.store_url))
    start_daemon_jobs(scheduler, str(tmp_path / "config.toml"), rt)
    job = scheduler.get_job("bounce-mailbox")
    assert job is not None and job.trigger.interval.total_seconds() == 45
    (tmp_path / "config.toml").write_text((tmp_path / "config.toml").read_text().replace('host = "127.0.0.1"', ""))
    rt.config = load_config(tmp_path / "config.toml", env={})
    start_daemon_jobs(scheduler, str(tmp_path / "config.toml"), rt)
    assert scheduler.get_job("bounce-mailbox") is None


@needs_dovecot
def test_check_mailbox_keeps_watching_until_interrupted(dovecot: Dovecot, tmp_path: Path) -> None:
    """Without --once the command waits in IDLE, prints each pass that took something, and
    stops cleanly on Ctrl-C."""
    config = publication(tmp_path, dovecot)
    readers(config, "reader@example.net")
    env = {**os.environ, "PUBLISHER_BOUNCES_IMAP_PASSWORD": PASSWORD, "PUBLISHER_CONFIG": str(config.path)}
    command = [sys.executable, "-m", "publisher", "bounces", "check-mailbox"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "watching the bounce mailbox; Ctrl-C stops\n"
        dovecot.append(hard_dsn("reader@example.net", 1))
        assert process.stdout.readline() == "1 messages: 1 suppressed; 1 to done, 0 to review\n"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    assert (process.returncode, out, err) == (0, "stopped\n", "")
    assert status_of(config, "reader@example.net") is SubscriberStatus.BOUNCED


def test_a_server_that_never_answers_is_given_up_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A listener that accepts and then says nothing: a clear error after the deadline, no hang."""
    monkeypatch.setattr("publisher.delivery.imap_bounces.NETWORK_SECONDS", 0.5)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        config = publication(tmp_path, None, port=listener.getsockname()[1])
        started = time.monotonic()
        with pytest.raises(MailboxError, match="connection failed while connecting"):
            one_pass(config, StandIn())
    assert time.monotonic() - started < 5


def test_the_password_never_shows_in_the_settings_repr(tmp_path: Path) -> None:
    """Settings logged or shown in a traceback do not carry the mailbox's password."""
    settings = bounce_mailbox.settings_of(publication(tmp_path, None))
    assert settings.password == PASSWORD
    assert PASSWORD not in repr(settings)
