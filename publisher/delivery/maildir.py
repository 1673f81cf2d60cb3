"""The embedded default provider: every message becomes a `.eml` file in a Maildir.

The demo's outbox, and a safe target while writing: any mail client or `python -m
mailbox` reads it. Delivery follows the Maildir rule (write into tmp/, fsync, rename
into new/), so a reader never sees half a message.

No file is ever overwritten. Each message gets a name of its own by Maildir's recipe
(`mailbox.Maildir` uses it: seconds, microseconds, process, a counter, host), and is
moved into new/ by a hard link, which fails rather than replace a file of the same
name. A second copy of a ledger row (a retry after a timeout, a resume after a crash)
is a second file, as it would be a second mail in a real inbox; two databases writing
to one outbox never clobber each other's readers. `mailbox.Maildir.add` itself is not
used: it writes files any local user may read, and these hold subscribers' addresses.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from publisher.delivery.base import (
    UNUSABLE_RECIPIENT,
    R,
    SendInterrupted,
    Template,
    failed,
    retry,
    sent,
)
from publisher.errors import ConfigError
from publisher.models import SendResult

if TYPE_CHECKING:
    from publisher.config import Config

__all__ = ["MaildirProvider"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]")
_counter = itertools.count()  # next() on a count is atomic under the GIL
_NAME_TRIES = 5


class MaildirProvider:
    name = "maildir"
    max_batch = 100

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            # 0700 whatever the umask: every message names a subscriber.
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            for sub in ("tmp", "new", "cur"):
                (path / sub).mkdir(exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(
                f"[delivery.maildir] path {str(path)!r} cannot be used as a Maildir: {exc}. "
                "Point it at a folder you can write to."
            ) from exc

    @classmethod
    def from_config(cls, config: Config, *, client: object = None) -> MaildirProvider:
        """`client` is for the HTTP API providers' sake; this provider speaks no HTTP."""
        return cls(config.path_of("delivery.maildir.path"))

    def send(
        self, template: Template[R], recipients: Sequence[R], *, now: datetime
    ) -> list[SendResult]:
        results: list[SendResult] = []
        for recipient in recipients:
            try:
                raw = template.message_bytes(recipient, now)
            except UNUSABLE_RECIPIENT as exc:
                results.append(failed(recipient, f"cannot build this message: {exc}"))
                continue
            except Exception as exc:
                raise SendInterrupted(results, 0) from exc
            return_path = str(getattr(recipient, "return_path", "") or "")
            if return_path:
                # What a delivering MTA writes from the envelope: the demo outbox shows it too.
                raw = b"Return-Path: <" + return_path.encode("ascii") + b">\r\n" + raw
            try:
                name = self._deliver(raw)
            except OSError as exc:
                results.append(retry(recipient, f"cannot write to the Maildir {self.path}: {exc}"))
            else:
                results.append(sent(recipient, provider_id=name))
        return results

    def close(self) -> None:
        """Nothing is held open between calls."""

    @staticmethod
    def _unique_name() -> str:
        """Maildir's unique-name recipe, with `.eml` so that a double-click opens the file."""
        moment = time.time_ns()
        host = _UNSAFE.sub("_", socket.gethostname())
        seconds, micros = divmod(moment // 1000, 1_000_000)
        return f"{seconds}.M{micros}P{os.getpid()}Q{next(_counter)}.{host}.eml"

    def _deliver(self, raw: bytes) -> str:
        """Write `raw` into new/ under a fresh name; returns the name."""
        for _ in range(_NAME_TRIES):
            name = self._unique_name()
            tmp = self.path / "tmp" / name
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(raw)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.link(tmp, self.path / "new" / name)
            except FileExistsError:
                continue
            finally:
                tmp.unlink(missing_ok=True)
            return name
        raise FileExistsError(f"no free file name in {self.path} after {_NAME_TRIES} tries")
