"""The return path of each message: `bounces+<token>@<bounce domain>` (VERP).

A bounce goes to a message's envelope sender (MAIL FROM), not to its From. Giving each
message its own envelope sender makes every bounce name the one message it answers,
whatever shape the bounce takes and whatever it quotes: the token is the message's
ledger key (`deliveries.message_key`, 24 random hex digits, which names the reader and
the issue) followed by an HMAC of it under the link secret, cut to 10 bytes, in base32.
A bounce that carries a token whose HMAC does not match is a forgery: someone trying to
suppress a reader, and it changes nothing.

The local part is `bounces+` and 36 characters (under the 64 an address allows), only
lower-case letters and digits 2-7: base32 survives the MTAs that lower-case addresses,
and `+` is Postfix's and most hosts' default recipient delimiter, so every token reaches
the one `bounces` mailbox or pipe.

Pure: no clock, no store. `bounce_domain_records` says what the bounce domain needs in
DNS (the desk's Settings and `publisher doctor` show it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass

from publisher.errors import TokenError

__all__ = ["LOCAL", "DnsRecord", "bounce_domain_records", "find_token", "read", "return_path"]

LOCAL = "bounces"
_MAC_BYTES = 10
_KEY_BYTES = 12
_TOKEN_CHARS = 36
_KEY_RE = re.compile(r"[0-9a-f]{24}")
_ADDRESS_RE = re.compile(rf"{LOCAL}\+([a-z2-7]{{{_TOKEN_CHARS}}})@([a-z0-9.-]+)", re.IGNORECASE)
_SALT = b"publisher.verp\0"


def _mac(secret: str, key: bytes) -> bytes:
    return hmac.new(secret.encode(), _SALT + key, hashlib.sha256).digest()[:_MAC_BYTES]


def return_path(secret: str, message_key: str, domain: str) -> str:
    """The envelope sender of the message whose ledger key is `message_key`; "" when
    VERP is off (no domain) or the key is an older row's (`i<issue>.d<row>`), which then
    goes out with the From address as before."""
    if not domain or not _KEY_RE.fullmatch(message_key):
        return ""
    if not secret:
        raise ValueError("an empty secret cannot sign a return path")
    key = bytes.fromhex(message_key)
    token = base64.b32encode(key + _mac(secret, key)).decode("ascii").rstrip("=").lower()
    return f"{LOCAL}+{token}@{domain.lower()}"


def read(secret: str, token: str) -> str:
    """The ledger key a token names; TokenError when it was not made with `secret`."""
    text = token.strip().upper()
    if len(text) != _TOKEN_CHARS:
        raise TokenError("this return path is not one publisher made")
    try:
        data = base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError) as exc:
        raise TokenError("this return path is not one publisher made") from exc
    key, mac = data[:_KEY_BYTES], data[_KEY_BYTES:]
    if len(mac) != _MAC_BYTES or not hmac.compare_digest(mac, _mac(secret, key)):
        raise TokenError("this return path's signature does not match: a forged or altered bounce")
    return key.hex()


def find_token(addresses: tuple[str, ...] | list[str], domain: str, *, text: str = "") -> str:
    """The first VERP token addressed to `domain` among `addresses` (where the bounce was
    delivered), else in `text` (a bounce quotes the original's Return-Path); "" for none."""
    domain = domain.lower()
    for source in (*addresses, text):
        for found in _ADDRESS_RE.finditer(source):
            if found.group(2).lower().rstrip(".") == domain:
                return found.group(1).lower()
    return ""


@dataclass(frozen=True, slots=True)
class DnsRecord:
    """One DNS record the bounce domain needs, as a person types it at their DNS host."""

    name: str
    type: str
    value: str
    why: str


def bounce_domain_records(domain: str, *, mx_host: str, sending_host: str) -> tuple[DnsRecord, ...]:
    """The records that make `domain` work as the return path: an MX so that bounces
    reach the host that reads them, and SPF so that receivers accept mail whose envelope
    sender is in it (and, being under the From's domain, DMARC aligns on SPF too)."""
    if not domain:
        return ()
    mx = mx_host or "mail host that receives your bounces"
    spf = f"v=spf1 a:{sending_host} ~all" if sending_host else "v=spf1 include:<your provider's SPF> ~all"
    return (
        DnsRecord(domain, "MX", f"10 {mx}.", f"bounces to {LOCAL}+...@{domain} reach what reads them"),
        DnsRecord(domain, "TXT", spf, "receivers check the envelope sender's domain against this list of senders"),
    )
