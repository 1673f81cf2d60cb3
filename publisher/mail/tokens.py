"""Signed tokens in unsubscribe, manage and confirmation links, and the secret that signs them.

A token names its subscriber by their link key (`subscribers.token_key`): 128 random
bits drawn when the row is made, never a row id. A database rebuilt under the same
secret numbers its subscribers afresh, but draws new keys, so a link from a mail sent
before can never reach anyone but the person it went to; and a token tells nothing about
the list (its size, anyone's place in it). An HMAC, salted per purpose, covers the key,
so a token can be neither forged nor edited, and a confirmation or manage token can
never unsubscribe anyone. Unsubscribe and manage links ("manage your subscription" in
every newsletter's footer) must work for as long as the mail that carries them exists,
so they do not expire. A confirmation token also carries the moment its
mail was sent: it may only activate a subscriber whose status has not changed since (see
`publisher.store.subscribers.confirm`), so an old link cannot bring back someone who
left later.

Older unsubscribe links carried the bare subscriber id. One is honoured only for a row
that the upgrade to link keys found had been mailed under that id and address
(`subscribers.legacy_links`): the same person, in the same database. In a database made
since, no row has that mark, so such a link reaches nobody. Older confirmation links
are refused outright: confirming is a minute's matter, and subscribing again sends a new
link.

An unsubscribe or manage link in a newsletter also carries the message it came in (its
ledger row's `message_key`, random like the Message-ID it is part of), so that a reader
who leaves is counted against the issue whose message they left from. Links without
one (the confirmation page's, older mail) still work and are counted against no issue.

Only a string `sign` made is accepted. Base64 lets several strings decode to the same
bytes (padding, spare bits of the last character); refusing all but the canonical
spelling gives every other string the one "not valid" answer. A token is the
itsdangerous URL-safe serializer's, signed alike, but its payload is never compressed:
the serializer's own `dumps` zlib-compresses each payload where that saves two bytes
(about one link in 1,500 with a message key), which cost half of signing a link, twice a
newsletter copy, to find out. Links signed before are the serializer's very string and
still verify: a payload led by "." (compressed) is accepted only as the serializer spells
it, any other only uncompressed. So a payload that compresses has two spellings, the one
older mail carries and the one newer mail does, both signed; every other has one.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from itsdangerous import BadData, Serializer, URLSafeSerializer
from itsdangerous.encoding import base64_encode

from publisher.config import Config
from publisher.errors import ConfigError, TokenError

__all__ = [
    "MIN_SECRET_BYTES",
    "PURPOSES",
    "SECRET_ENV",
    "SECRET_FILE_NAME",
    "LinkTarget",
    "confirm_url",
    "manage_url",
    "reader_urls",
    "resolve_secret",
    "sign",
    "sign_confirm",
    "unsubscribe_url",
    "verify",
    "verify_confirm",
]

SECRET_ENV = "PUBLISHER_SECRET"  # noqa: S105  (the variable's name, not a secret)
SECRET_FILE_NAME = ".publisher-secret"  # noqa: S105  (a file name, not a secret)
PURPOSES = ("unsubscribe", "confirm", "manage")
MIN_SECRET_BYTES = 32
"""A shorter secret is refused: `openssl rand -hex 32` makes 64 characters."""
MAX_TOKEN = 512
"""Longer strings are refused before any decoding: real tokens are under 100 characters."""
MAX_ID = 2**63 - 1
"""The largest id a database integer column holds."""
_KEY_RE = re.compile(r"[0-9a-f]{32}")
_MESSAGE_RE = re.compile(r"[0-9a-z.]{1,64}")
"""A ledger row's message key: 24 random hex digits, or `i<issue>.d<row>` from before keys."""
_WITH_MESSAGE = ("unsubscribe", "manage")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_INVALID = "this link is not valid"


class _Plain(URLSafeSerializer):
    """The URL-safe serializer with its payload never compressed (see the module's note)."""

    def dump_payload(self, obj: Any) -> bytes:
        # The JSON of the serializer without the URL-safe mixin's zlib step.
        return base64_encode(Serializer.dump_payload(self, obj))


def _serializer(secret: str, purpose: str) -> _Plain:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}; expected one of {PURPOSES}")
    if not secret:
        raise ValueError("an empty secret cannot sign tokens")
    return _Plain(secret, salt=f"publisher.{purpose}")


def _key(key: str) -> str:
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        raise ValueError("a link key is 32 lower-case hex digits (subscribers.token_key)")
    return key


@functools.lru_cache(maxsize=16)
def _keyed(secret: str, purpose: str) -> tuple[bytes, Any]:
    """The key and digest of `_serializer(secret, purpose)`'s signer, the key derived
    (by itsdangerous itself) once rather than per token."""
    signer = _serializer(secret, purpose).make_signer()
    return signer.derive_key(), signer.digest_method


def _payload(value: str | list[str]) -> bytes:
    """The base64 of the compact JSON of `value` (keys checked to need no escaping are
    written as they are), as the serializer writes it uncompressed."""
    if isinstance(value, str):
        payload = f'"{value}"'.encode("ascii")
    else:
        payload = ('["' + '","'.join(value) + '"]').encode("ascii")
    return base64.urlsafe_b64encode(payload).rstrip(b"=")


def _signed(secret: str, purpose: str, body: bytes) -> str:
    # One call into OpenSSL's HMAC rather than copying a keyed one and finishing it in Python.
    key, digest = _keyed(secret, purpose)
    return (body + b"." + base64.urlsafe_b64encode(hmac.digest(key, body, digest)).rstrip(b"=")).decode("ascii")


def _dumps(secret: str, purpose: str, value: str | list[str]) -> str:
    """`_serializer(secret, purpose).dumps(value)`, byte for byte, without building a
    serializer and deriving its key for every link (two links a newsletter copy)."""
    return _signed(secret, purpose, _payload(value))


def _message(message_key: str, purposes: tuple[str, ...]) -> str:
    if not all(purpose in _WITH_MESSAGE for purpose in purposes) or not _MESSAGE_RE.fullmatch(message_key):
        raise ValueError("a message key is 1-64 of 0-9 a-z and '.', on unsubscribe and manage links only")
    return message_key


def sign(secret: str, purpose: str, key: str, message_key: str | None = None) -> str:
    """A URL-safe token naming the subscriber whose link key is `key`, valid only for `purpose`;
    with `message_key` (unsubscribe and manage links), also the message it was sent in."""
    if not message_key:
        return _dumps(secret, purpose, _key(key))
    return _dumps(secret, purpose, [_key(key), _message(message_key, (purpose,))])


def _loads(secret: str, purpose: str, token: str) -> Any:
    """The signed payload of `token`; TokenError unless `token` is exactly what was signed."""
    serializer = _serializer(secret, purpose)
    if len(token) > MAX_TOKEN:
        raise TokenError(_INVALID)
    try:
        value = serializer.loads(token)
    except BadData as exc:
        raise TokenError(_INVALID) from exc
    if token.startswith("."):
        # A compressed payload: only from a link signed before, as itsdangerous spelled it.
        spelled = URLSafeSerializer(secret, salt=f"publisher.{purpose}").dumps(value)
    else:
        spelled = serializer.dumps(value)
    if spelled != token:
        raise TokenError(_INVALID)
    return value


@dataclass(frozen=True, slots=True)
class LinkTarget:
    """Whom a valid token names: a link key, or (older unsubscribe links) a bare id."""

    key: str | None = None
    legacy_id: int | None = None
    message_key: str | None = None
    """The ledger row whose message carried the link, when it says."""


def _link_key(value: object) -> str:
    if not isinstance(value, str) or not _KEY_RE.fullmatch(value):
        raise TokenError(_INVALID)
    return value


def _legacy_id(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise TokenError(_INVALID)
    return value


def verify(secret: str, purpose: str, token: str) -> LinkTarget:
    """Whom `token` names.

    Raises TokenError for anything else (tampered, signed for another purpose or with
    another secret, malformed, spelled differently from how it was signed), always with
    the same message, so that callers answer every bad token the same way. A bare id is
    read from unsubscribe tokens only (see the module's note on older links).
    """
    value = _loads(secret, purpose, token)
    if isinstance(value, str):
        return LinkTarget(key=_link_key(value))
    if purpose in _WITH_MESSAGE and isinstance(value, list) and len(value) == 2:
        message = value[1]
        if not isinstance(message, str) or not _MESSAGE_RE.fullmatch(message):
            raise TokenError(_INVALID)
        return LinkTarget(key=_link_key(value[0]), message_key=message)
    if purpose == "unsubscribe":
        return LinkTarget(legacy_id=_legacy_id(value))
    raise TokenError(_INVALID)


def sign_confirm(secret: str, key: str, sent_at: datetime) -> str:
    """A confirmation token for the subscriber with link key `key`, for the mail sent at `sent_at` (aware)."""
    micros = (sent_at - _EPOCH) // _MICROSECOND
    return str(_serializer(secret, "confirm").dumps([_key(key), micros]))


def verify_confirm(secret: str, token: str) -> tuple[str, datetime]:
    """The link key and the sending time inside a confirmation token.

    Raises TokenError, with the message `verify` uses, for anything else.
    """
    value = _loads(secret, "confirm", token)
    if not isinstance(value, list) or len(value) != 2:
        raise TokenError(_INVALID)
    key, micros = _link_key(value[0]), value[1]
    if isinstance(micros, bool) or not isinstance(micros, int):
        raise TokenError(_INVALID)
    try:
        sent_at = _EPOCH + micros * _MICROSECOND
    except OverflowError as exc:
        raise TokenError(_INVALID) from exc
    return key, sent_at


def unsubscribe_url(config: Config, secret: str, key: str, message_key: str | None = None) -> str:
    """The one-click unsubscribe address carried in List-Unsubscribe and the footer of the
    message whose ledger row has `message_key`."""
    return f"{config.public_url}/unsubscribe/{sign(secret, 'unsubscribe', key, message_key)}"


def manage_url(config: Config, secret: str, key: str, message_key: str | None = None) -> str:
    """The reader's own page ("manage your subscription") linked from every newsletter's footer."""
    return f"{config.public_url}/manage/{sign(secret, 'manage', key, message_key)}"


def reader_urls(public_url: str, secret: str, key: str, message_key: str | None = None) -> tuple[str, str]:
    """`unsubscribe_url` and `manage_url` of one newsletter copy, under `public_url`
    (`config.public_url`, read once for a whole send): the two tokens share their payload,
    encoded once, and differ in their signature."""
    value = [_key(key), _message(message_key, _WITH_MESSAGE)] if message_key else _key(key)
    body = _payload(value)
    return (
        f"{public_url}/unsubscribe/{_signed(secret, 'unsubscribe', body)}",
        f"{public_url}/manage/{_signed(secret, 'manage', body)}",
    )


def confirm_url(config: Config, secret: str, key: str, sent_at: datetime) -> str:
    """The double opt-in link in the confirmation mail sent at `sent_at`."""
    return f"{config.public_url}/confirm/{sign_confirm(secret, key, sent_at)}"


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
        size = len(value.encode("utf-8"))
        if size < MIN_SECRET_BYTES:
            raise ConfigError(
                f"{SECRET_ENV} is {size} bytes long; it must be at least {MIN_SECRET_BYTES}, or "
                "anyone who guesses it can forge unsubscribe and confirmation links. Make one with:\n"
                f"    export {SECRET_ENV}=$(openssl rand -hex 32)"
            )
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
