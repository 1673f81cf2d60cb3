"""The bounce mailbox over IMAP: one verified TLS connection, the folder's messages by UID.

This is the I/O half of reading bounces from a mailbox; what to do with each message is
`publisher.services.bounce_mailbox`. A `Mailbox` is one logged-in connection with the
bounce folder selected. It only ever reads and moves: `move` uses MOVE (RFC 6851) where
the server offers it, else COPY, flag \\Deleted and UID EXPUNGE of that one UID (RFC 4315);
a server with neither leaves the copy flagged \\Deleted, which `waiting` skips, and never
expunges (a plain EXPUNGE would also remove what someone else flagged). Nothing here
deletes a message that was not first copied.

The certificate is always verified, against `bounces.imap.ca_file` where one is named
(a server with a self-signed certificate) or the system's trust store. Every command has
a deadline (NETWORK_SECONDS), and every failure of the server, the network or TLS comes
out as one `MailboxError` naming the server and what to check.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imapclient import DELETED, IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from publisher.config import Config
from publisher.errors import ConfigError, MailboxError

__all__ = ["IDLE_RENEW", "NETWORK_SECONDS", "PASSWORD_SECRET", "Mailbox", "MailboxSettings", "Waiting"]

log = logging.getLogger(__name__)

NETWORK_SECONDS = 30.0
"""Deadline of the connection, the TLS handshake and each command (IDLE waits longer, in steps)."""
IDLE_STEP = 0.5
"""How often an IDLE wait looks at its stop signal."""
IDLE_RENEW = 10.0
"""Seconds after which IDLE is ended and begun again. A message that lands in the instant
between a pass's last look and the start of IDLE may not be announced (Dovecot looks again
only every 30 s by itself); ending IDLE makes the server catch up and say so."""
PASSWORD_SECRET = "PUBLISHER_BOUNCES_IMAP_PASSWORD"  # noqa: S105  (a variable's name, not a secret)


@dataclass(frozen=True, slots=True)
class MailboxSettings:
    """`[bounces.imap]` with its password, checked once."""

    host: str
    port: int
    security: str
    username: str
    password: str = field(repr=False)
    folder: str
    done_folder: str
    review_folder: str
    ca_file: Path | None
    max_bytes: int
    poll_seconds: float

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def from_config(cls, config: Config) -> MailboxSettings | None:
        """The settings, or None when no mailbox is configured (`bounces.imap.host` empty)."""
        host = str(config["bounces.imap.host"]).strip()
        if not host:
            return None
        username = str(config["bounces.imap.username"])
        if not username:
            raise ConfigError("[bounces.imap] username is empty: set the login of the bounce mailbox, "
                              "or leave host empty to read no mailbox")
        password = config.secret(PASSWORD_SECRET)
        if not password:
            raise ConfigError(f"{PASSWORD_SECRET} is not set: the bounce mailbox's password comes from it "
                              f"(or from the file {PASSWORD_SECRET}_FILE names)")
        folders = {key: str(config[f"bounces.imap.{key}"]).strip()
                   for key in ("folder", "done_folder", "review_folder")}
        for key, name in folders.items():
            if not name:
                raise ConfigError(f"[bounces.imap] {key} is empty: name an IMAP folder")
        if len(set(folders.values())) < 3:
            raise ConfigError("[bounces.imap] folder, done_folder and review_folder must be three different "
                              f"folders, got {folders['folder']!r}, {folders['done_folder']!r} and "
                              f"{folders['review_folder']!r}")
        ca_file = config.path_of("bounces.imap.ca_file") if config["bounces.imap.ca_file"] else None
        if ca_file is not None and not ca_file.is_file():
            raise ConfigError(f"[bounces.imap] ca_file {str(ca_file)!r} is not a file: name the PEM file of the "
                              "certificate authority that signed the IMAP server's certificate, or leave it empty")
        return cls(
            host=host, port=int(config["bounces.imap.port"]), security=str(config["bounces.imap.security"]),
            username=username, password=password, folder=folders["folder"], done_folder=folders["done_folder"],
            review_folder=folders["review_folder"], ca_file=ca_file, max_bytes=int(config["bounces.imap.max_bytes"]),
            poll_seconds=float(config["bounces.imap.poll_seconds"]),
        )


@dataclass(frozen=True, slots=True)
class Waiting:
    """A message in the bounce folder: its UID and its size (RFC822.SIZE) in bytes."""

    uid: int
    size: int


class Mailbox:
    """One logged-in connection with the bounce folder selected; the other two folders exist.

    Use as a context manager, or call `close`. Every method raises `MailboxError` when the
    server or the network fails; the connection is then no longer usable.
    """

    def __init__(self, settings: MailboxSettings) -> None:
        self.settings = settings
        self._client: IMAPClient | None = None
        with self._talking("connecting"):
            self._client = _connect(settings)
        try:
            with self._talking("logging in"):
                self._client.login(settings.username, settings.password)
            with self._talking("preparing the folders"):
                for name in (settings.done_folder, settings.review_folder):
                    if not self._client.folder_exists(name):
                        self._client.create_folder(name)
                if not self._client.folder_exists(settings.folder):
                    raise MailboxError(f"bounce mailbox {settings.where}: there is no folder {settings.folder!r}; "
                                       "check [bounces.imap] folder (usually \"INBOX\")")
                self._client.select_folder(settings.folder)
                capabilities = {bytes(c).upper() for c in self._client.capabilities()}
        except BaseException:
            self.close()
            raise
        self.can_idle = b"IDLE" in capabilities
        self.can_move = b"MOVE" in capabilities
        self.can_expunge_one = b"UIDPLUS" in capabilities

    def __enter__(self) -> Mailbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def client(self) -> IMAPClient:
        if self._client is None:
            raise MailboxError(f"bounce mailbox {self.settings.where}: the connection is closed")
        return self._client

    def waiting(self) -> list[Waiting]:
        """The folder's messages, oldest first (those flagged \\Deleted are already handled)."""
        with self._talking("listing the folder"):
            uids = sorted(self.client.search(["NOT", "DELETED"]))
            if not uids:
                return []
            sizes = self.client.fetch(uids, ["RFC822.SIZE"])
        return [Waiting(uid, int(sizes[uid][b"RFC822.SIZE"])) for uid in uids if uid in sizes]

    def fetch(self, uid: int) -> bytes | None:
        """The message's bytes as stored (without setting \\Seen), or None when it is gone."""
        with self._talking(f"fetching message {uid}"):
            found: dict[int, dict[bytes, Any]] = self.client.fetch([uid], ["BODY.PEEK[]"])
        body = found.get(uid, {}).get(b"BODY[]")
        return bytes(body) if body is not None else None

    def move(self, uid: int, folder: str) -> None:
        """Move one message to `folder`: it leaves the bounce folder only once it is there."""
        with self._talking(f"moving message {uid} to {folder!r}"):
            if self.can_move:
                self.client.move([uid], folder)
                return
            self.client.copy([uid], folder)
            self.client.add_flags([uid], [DELETED], silent=True)
            if self.can_expunge_one:
                self.client.uid_expunge([uid])

    def idle(self, seconds: float, stop: threading.Event) -> bool:
        """Wait in IDLE up to `seconds` (or until `stop`) for a new message; whether one came.
        IDLE is ended and begun again every IDLE_RENEW seconds."""
        deadline = time.monotonic() + seconds
        arrived = False
        with self._talking("waiting for new messages (IDLE)"):
            while not arrived and not stop.is_set() and time.monotonic() < deadline:
                until = min(deadline, time.monotonic() + IDLE_RENEW)
                self.client.idle()
                try:
                    while not arrived and not stop.is_set():
                        left = until - time.monotonic()
                        if left <= 0:
                            break
                        arrived = _any_new(self.client.idle_check(timeout=min(IDLE_STEP, left)))
                finally:
                    _text, late = self.client.idle_done()
                arrived = arrived or _any_new(late)
        return arrived

    def announced(self) -> bool:
        """Whether the server announced a message (EXISTS) in answer to a command since the last
        call. IDLE tells only of what the connection has not heard of yet: a message that
        arrived during a pass was announced then, after the pass had listed the folder."""
        # imaplib keeps the untagged answers no command claimed; `response` hands them over.
        _code, data = self.client._imap.response("EXISTS")
        return bool(data and data != [None])

    def close(self) -> None:
        """Log out, or drop the connection when the server is gone already."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()
        except (IMAPClientError, OSError):
            with contextlib.suppress(OSError, IMAPClientError):
                client.shutdown()

    @contextlib.contextmanager
    def _talking(self, what: str) -> Iterator[None]:
        where = self.settings.where
        try:
            yield
        except MailboxError:
            raise
        except LoginError as exc:
            raise MailboxError(f"bounce mailbox {where} refused the login for {self.settings.username!r} ({exc}); "
                               f"check [bounces.imap] username and {PASSWORD_SECRET}") from exc
        except ssl.SSLCertVerificationError as exc:
            raise MailboxError(f"bounce mailbox {where}: its certificate cannot be trusted ({exc.verify_message}); "
                               "name the authority that signed it in [bounces.imap] ca_file") from exc
        except (ssl.SSLError, imaplib.IMAP4.abort, OSError) as exc:
            raise MailboxError(f"bounce mailbox {where}: the connection failed while {what} ({exc}); check "
                               "[bounces.imap] host, port and security, and that this machine may connect "
                               "to it; it is tried again later") from exc
        except IMAPClientError as exc:
            raise MailboxError(f"bounce mailbox {where} refused {what}: {exc}") from exc


def _any_new(responses: list[Any]) -> bool:
    return any(isinstance(item, tuple) and len(item) >= 2 and item[1] in (b"EXISTS", b"RECENT") for item in responses)


def _connect(settings: MailboxSettings) -> IMAPClient:
    context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    if settings.security == "tls":
        return IMAPClient(settings.host, port=settings.port, ssl=True, ssl_context=context, timeout=NETWORK_SECONDS)
    client = IMAPClient(settings.host, port=settings.port, ssl=False, timeout=NETWORK_SECONDS)
    try:
        client.starttls(context)
    except BaseException:
        with contextlib.suppress(OSError, IMAPClientError):
            client.shutdown()
        raise
    return client
