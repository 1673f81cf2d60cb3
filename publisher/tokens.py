"""Signed tokens in unsubscribe and confirmation links, and the secret that signs them.

A token carries only a subscriber id and an HMAC over it, salted per purpose, so a
confirmation token can never unsubscribe anyone and neither can be forged or edited.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from itsdangerous import BadData, URLSafeSerializer

from publisher.config import Config
from publisher.errors import ConfigError, TokenError

__all__ = [
    "PURPOSES",
    "SECRET_ENV",
    "SECRET_FILE_NAME",
    "confirm_url",
    "resolve_secret",
    "sign",
    "unsubscribe_url",
    "verify",
]

SECRET_ENV = "PUBLISHER_SECRET"  # noqa: S105  (the variable's name, not a secret)
SECRET_FILE_NAME = ".publisher-secret"  # noqa: S105  (a file name, not a secret)
PURPOSES = ("unsubscribe", "confirm")


def _serializer(secret: str, purpose: str) -> URLSafeSerializer:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}; expected one of {PURPOSES}")
    if not secret:
        raise ValueError("an empty secret cannot sign tokens")
    return URLSafeSerializer(secret, salt=f"publisher.{purpose}")


def sign(secret: str, purpose: str, subscriber_id: int) -> str:
    """A URL-safe token naming `subscriber_id`, valid only for `purpose`."""
    return str(_serializer(secret, purpose).dumps(int(subscriber_id)))


def verify(secret: str, purpose: str, token: str) -> int:
    """The subscriber id inside `token`.

    Raises TokenError for anything else (tampered, signed for another purpose or with
    another secret, malformed), always with the same message, so that callers answer
    every bad token the same way.
    """
    try:
        value = _serializer(secret, purpose).loads(token)
    except BadData as exc:
        raise TokenError("this link is not valid") from exc
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TokenError("this link is not valid")
    return value


def unsubscribe_url(config: Config, secret: str, subscriber_id: int) -> str:
    """The one-click unsubscribe address carried in List-Unsubscribe and the footer."""
    return f"{config.public_url}/unsubscribe/{sign(secret, 'unsubscribe', subscriber_id)}"


def confirm_url(config: Config, secret: str, subscriber_id: int) -> str:
    """The double opt-in link sent to a new subscriber."""
    return f"{config.public_url}/confirm/{sign(secret, 'confirm', subscriber_id)}"


def _missing_secret(where: str) -> ConfigError:
    return ConfigError(
        f"{SECRET_ENV} is not set{where}. It signs unsubscribe and confirmation links and "
        "must stay the same between runs. Set it to a long random string, for example:\n"
        f"    export {SECRET_ENV}=$(openssl rand -hex 32)\n"
        f"(or put it in a file and set {SECRET_ENV}_FILE to that file's path)."
    )


def resolve_secret(config: Config, *, real_provider: bool) -> str:
    """The signing secret: $PUBLISHER_SECRET, else, for the local demo only, a generated one.

    The demo secret lives in `.publisher-secret` beside config.toml with mode 0600, so
    links in the demo outbox keep working across runs. A real provider never falls back:
    links sent to real readers must not depend on a file that a fresh checkout lacks.
    """
    value = config.secret(SECRET_ENV)
    if value:
        return value
    if real_provider:
        raise _missing_secret(f" (delivery.provider = {config['delivery.provider']!r} sends real mail)")
    return _demo_secret(config.root / SECRET_FILE_NAME)


def _demo_secret(path: Path) -> str:
    try:
        existing = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        existing = ""
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the demo secret: {exc}") from exc
    if existing:
        return existing
    # Written to a private temporary file, then linked into place: two processes that
    # start together both end up with whichever secret was linked first.
    temp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
        linked = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot write the demo secret ({exc}). Set {SECRET_ENV} instead: "
            f"export {SECRET_ENV}=$(openssl rand -hex 32)"
        ) from exc
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()
    if not linked:
        raise ConfigError(f"{path} is empty. Delete it (a new one is generated) or set {SECRET_ENV}.")
    return linked
