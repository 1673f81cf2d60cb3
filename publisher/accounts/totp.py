"""Time-based one-time codes (RFC 6238) for the desk's second factor: pure, `now` passed in.

A code is the authenticator app's six digits for one 30-second time step. A code is
taken for the step it matches within one step either side of `now` (a phone's clock a
little off, a code typed as it turned over), and only for a step later than the last
one taken for the account: the same code, or an older one, is refused for as long as it
would otherwise be good (`matching_step`'s `after`).

Recovery codes are ten random groups a person can type, each good once; only their
SHA-256 is kept (each holds 80 random bits, so a hash needs no salt or stretching to
stay out of reach of guessing).

The TOTP secret is kept sealed (Fernet) with a key drawn from `PUBLISHER_SECRET` by
HKDF: a copy of the database, or a backup of it, cannot make codes on its own. A secret
sealed under another `PUBLISHER_SECRET` cannot be opened (`AccountError` says so: an
owner resets that account's second factor).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

import pyotp
import segno
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from publisher.errors import AccountError

__all__ = [
    "RECOVERY_CODES",
    "STEP",
    "Enrolment",
    "enrolment",
    "matching_step",
    "new_recovery_codes",
    "new_secret",
    "recovery_hash",
    "seal",
    "step_of",
    "unseal",
]

STEP = 30
"""Seconds per code."""
RECOVERY_CODES = 10
_DIGITS = 6


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What an account needs to add the desk to an authenticator app: the secret as text
    (for typing in), the otpauth:// URI and that URI as a QR code (inline SVG)."""

    secret: str
    uri: str
    qr_svg: str


def new_secret() -> str:
    """A new 160-bit secret, base32 (what authenticator apps expect)."""
    return pyotp.random_base32(32)


def enrolment(secret: str, *, account: str, issuer: str) -> Enrolment:
    """The secret, its otpauth:// URI and a QR code of it, labelled "issuer: account"."""
    uri = pyotp.TOTP(secret, digits=_DIGITS, interval=STEP).provisioning_uri(name=account, issuer_name=issuer)
    svg = segno.make(uri, error="m").svg_inline(scale=4, dark="#000", light="#fff", title="QR code to scan")
    return Enrolment(secret=secret, uri=uri, qr_svg=svg)


def step_of(now: datetime) -> int:
    """The time step `now` falls in."""
    return int(now.timestamp()) // STEP


def matching_step(secret: str, code: str, *, now: datetime, after: int) -> int | None:
    """The time step (from one before `now`'s to one after) whose code `code` is, when that
    step is later than `after`; else None."""
    digits = "".join(code.split())
    if len(digits) != _DIGITS or not digits.isascii() or not digits.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=_DIGITS, interval=STEP)
    current = step_of(now)
    for step in (current - 1, current, current + 1):
        if step > after and hmac.compare_digest(totp.generate_otp(step), digits):
            return step
    return None


def new_recovery_codes() -> list[str]:
    """Ten codes such as `k3vq-7m2x-p9ta-4hcw`: 80 random bits each, easy to copy by hand."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(alphabet) for _ in range(16))
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    return codes


def recovery_hash(code: str) -> str:
    """What is kept of a recovery code: the SHA-256 of its letters, without dashes, spaces or case."""
    letters = "".join(ch for ch in code.lower() if ch.isalnum())[:64]
    return hashlib.sha256(letters.encode("utf-8", "surrogateescape")).hexdigest()


def _fernet(key: str) -> Fernet:
    if not key:
        raise AccountError(
            "two-factor sign-in needs PUBLISHER_SECRET, which seals each account's code secret; "
            "set it (see README, Secrets) and restart"
        )
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"publisher desk totp").derive(
        key.encode("utf-8", "surrogateescape")
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def seal(key: str, secret: str) -> str:
    """`secret` encrypted and authenticated under a key drawn from `key` (PUBLISHER_SECRET)."""
    return _fernet(key).encrypt(secret.encode("ascii")).decode("ascii")


def unseal(key: str, sealed: str) -> str:
    """The secret `seal` sealed; AccountError when `key` is not the one it was sealed with."""
    try:
        return _fernet(key).decrypt(sealed.encode("ascii")).decode("ascii")
    except (InvalidToken, ValueError) as exc:
        raise AccountError(
            "this account's authenticator secret cannot be read with the current PUBLISHER_SECRET "
            "(was it changed?); an owner can reset the second factor with `publisher users reset-2fa EMAIL`"
        ) from exc
