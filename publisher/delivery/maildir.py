"""The embedded default provider: every message becomes a `.eml` file in a Maildir.

The demo's outbox, and a safe target while writing: any mail client or `python -m
mailbox` reads it. Delivery follows the Maildir rule (write into tmp/, fsync, rename
into new/), so a reader never sees half a message. A file is named for its Message-ID,
so sending the same ledger row again replaces the copy instead of adding a second one.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import threading
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

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+=-]")
_counter = itertools.count()


class MaildirProvider:
    name = "maildir"
    max_batch = 100

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            for sub in ("tmp", "new", "cur"):
                (path / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
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
            name = self._file_name(recipient.message_id)
            try:
                raw = template.message_bytes(recipient, now)
            except UNUSABLE_RECIPIENT as exc:
                results.append(failed(recipient, f"cannot build this message: {exc}"))
                continue
            except Exception as exc:
                raise SendInterrupted(results, 0) from exc
            try:
                self._deliver(raw, name)
            except OSError as exc:
                results.append(retry(recipient, f"cannot write to the Maildir {self.path}: {exc}"))
            else:
                results.append(sent(recipient, provider_id=name))
        return results

    def close(self) -> None:
        """Nothing is held open between calls."""

    def _file_name(self, message_id: str) -> str:
        stem = _UNSAFE.sub("_", message_id.strip().strip("<>"))[:200]
        if not stem:
            # Maildir's unique-name recipe: time, process, a counter, host.
            host = _UNSAFE.sub("_", socket.gethostname())
            stem = f"{time.time_ns()}.P{os.getpid()}Q{next(_counter)}.{host}"
        return f"{stem}.eml"

    def _deliver(self, raw: bytes, name: str) -> None:
        tmp = self.path / "tmp" / f"{name}.{os.getpid()}.{threading.get_ident()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(raw)
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(self.path / "new" / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
