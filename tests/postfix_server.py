"""A throwaway Postfix on 127.0.0.1, for the delivery status notifications a real MTA writes.

    with PostfixServer(bounce_domain="bounces.test") as mx:
        mx.submit(sender="bounces+TOKEN@bounces.test", recipient="nobody-here@mx.example.net")
        dsn = mx.wait_for_bounce()

Mail to `<anyone>@mx.example.net` goes to Postfix's local delivery, which accepts any
address at the door and then finds no such user: a 5.1.1 bounce, written by Postfix
itself and sent to the envelope sender. Mail to the bounce domain is kept in a Maildir
(`mail/bounces/`), where `wait_for_bounce` reads it. Needs Debian's `postfix` package and
root (Postfix's master runs as root and its daemons as the `postfix` user); `available()`
says why not otherwise. The instance has its own configuration, queue and port in its own
folder, never touches /etc/postfix's, and is stopped and its folder removed after.
"""

from __future__ import annotations

import os
import pwd
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

POSTFIX = "/usr/sbin/postfix"
DAEMONS = "/usr/lib/postfix/sbin"

_MASTER = """\
{listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def available() -> str:
    """Why no Postfix can be started here ("" when one can)."""
    if not Path(POSTFIX).exists() or not Path(DAEMONS, "master").exists():
        return "Postfix is not installed (apt-get install postfix)"
    if os.geteuid() != 0:
        return "starting Postfix needs root"
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return "the postfix user is missing (apt-get install postfix)"
    return ""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostfixServer:
    def __init__(self, *, bounce_domain: str) -> None:
        # Its own folder under /tmp: Postfix's daemons run as `postfix`, which cannot enter
        # pytest's private tmp_path.
        self.root = Path(tempfile.mkdtemp(prefix="publisher-postfix-"))
        self.port = _free_port()
        self.bounce_domain = bounce_domain
        self.etc = self.root / "etc"
        self.mail = self.root / "mail"

    def start(self) -> PostfixServer:
        user = pwd.getpwnam("postfix")
        for folder in (self.etc, self.root / "spool", self.root / "data", self.mail):
            folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)  # noqa: S103 - the postfix user must reach its queue and mailbox
        os.chown(self.root / "data", user.pw_uid, user.pw_gid)
        os.chown(self.mail, user.pw_uid, user.pw_gid)
        (self.etc / "master.cf").write_text(_MASTER.format(listen=f"127.0.0.1:{self.port}"), encoding="utf-8")
        (self.etc / "main.cf").write_text(
            "\n".join([
                "compatibility_level = 3.6",
                f"queue_directory = {self.root / 'spool'}",
                f"data_directory = {self.root / 'data'}",
                f"daemon_directory = {DAEMONS}",
                "command_directory = /usr/sbin",
                "shlib_directory = /usr/lib/postfix",
                "meta_directory = /etc/postfix",
                "mail_owner = postfix",
                "setgid_group = postdrop",
                "inet_interfaces = 127.0.0.1",
                "inet_protocols = ipv4",
                "myhostname = mx.example.net",
                "mydomain = example.net",
                "myorigin = mx.example.net",
                "mydestination = mx.example.net",
                "mynetworks = 127.0.0.0/8",
                "local_recipient_maps =",
                "alias_maps =",
                "alias_database =",
                "recipient_delimiter = +",
                f"virtual_mailbox_domains = {self.bounce_domain}",
                f"virtual_mailbox_base = {self.mail}",
                "virtual_mailbox_maps = static:bounces/",
                f"virtual_uid_maps = static:{user.pw_uid}",
                f"virtual_gid_maps = static:{user.pw_gid}",
                "virtual_minimum_uid = 1",
                "smtp_dns_support_level = disabled",
                "smtputf8_enable = no",
                "biff = no",
                "queue_run_delay = 1s",
                "minimal_backoff_time = 1s",
                "",
            ]),
            encoding="utf-8",
        )
        started = subprocess.run([POSTFIX, "-c", str(self.etc), "start"], capture_output=True, text=True,
                                 check=False, timeout=60)
        if started.returncode != 0:
            raise RuntimeError(f"postfix start failed: {started.stdout}{started.stderr}")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Postfix did not listen on 127.0.0.1:{self.port}")

    def stop(self) -> None:
        subprocess.run([POSTFIX, "-c", str(self.etc), "stop"], check=False, capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostfixServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def submit(self, *, sender: str, recipient: str, subject: str = "Rest") -> None:
        """One message over SMTP, envelope sender `sender`."""
        body = (f"From: Quiet Harbor <letters@example.org>\r\nTo: {recipient}\r\nSubject: {subject}\r\n"
                "Message-ID: <issue-1.reader@example.org>\r\n\r\nSome words on rest.\r\n")
        with smtplib.SMTP("127.0.0.1", self.port, timeout=20) as client:
            client.sendmail(sender, [recipient], body.encode())

    def wait_for_bounce(self, *, timeout: float = 60) -> bytes:
        """The first message Postfix delivered to the bounce domain's Maildir."""
        folder = self.mail / "bounces" / "new"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if folder.is_dir():
                found = sorted(folder.iterdir())
                if found:
                    return found[0].read_bytes()
            time.sleep(0.2)
        queue = subprocess.run(["/usr/sbin/postqueue", "-c", str(self.etc), "-p"], capture_output=True, text=True,
                               check=False, timeout=30)
        raise TimeoutError(f"no bounce arrived within {timeout} s; Postfix's queue:\n{queue.stdout[-3000:]}")
