"""DKIM signatures (RFC 6376, relaxed/relaxed) made with OpenSSL, cheap enough for every copy.

A `DkimSigner` holds parsed keys: an RSA key, and optionally an Ed25519 one (RFC 8463)
for a second signature beside it. Keys are read and parsed once, when the signer is made.

`DkimSigner.plan` does the per-issue half of the work. The body of a spliced message is a
run of pieces that each hold whole lines (see mime.py: every fixed piece before a value
ends in CRLF, every value is its own lines closed by a soft break), so relaxed
canonicalisation, which works line by line, can be applied to each piece on its own.
The plan canonicalises the fixed pieces once and keeps a SHA-256 state for the longest
fixed prefix of the body. SHA-256 cannot be resumed after a different middle, so per
reader the state is copied and fed the reader's values and the already-canonical fixed
pieces that follow them: no per-reader canonicalising beyond the few spliced lines, and
hashing that OpenSSL does at memory speed. Headers work the same way: the fixed ones
are canonicalised once, the four that change (To, Date, Message-ID, List-Unsubscribe)
per reader.

`h=` names every signed header present in the message, List-Unsubscribe and
List-Unsubscribe-Post included (RFC 8058 wants both covered). `t=` is the message's Date,
so signing stays a function of its inputs.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from publisher.errors import ConfigError

if TYPE_CHECKING:
    from publisher.config import Config

__all__ = ["DKIM_HEADERS", "DkimKey", "DkimSigner", "SigningPlan", "load_key"]

DKIM_HEADERS: Final = (
    b"from", b"to", b"subject", b"date", b"message-id", b"reply-to", b"list-id",
    b"list-unsubscribe", b"list-unsubscribe-post", b"mime-version", b"content-type",
)
"""Signed header fields. dkimpy's default omits List-Unsubscribe-Post, which RFC 8058
requires to be covered for one-click unsubscribe to be honoured."""

_WSP_RUN = re.compile(rb"[ \t]+")
_FIELD_START = re.compile(rb"\r\n(?![ \t])")
_RSA_MIN_BITS = 1024  # RFC 8301: verifiers must refuse shorter keys


def relaxed_header(field: bytes) -> tuple[bytes, bytes]:
    """(lowercased name, canonical field with CRLF) of one header field, folded or not."""
    name, _, value = field.partition(b":")
    value = _WSP_RUN.sub(b" ", value.replace(b"\r\n", b"")).strip(b" ")
    lowered = name.strip(b" \t").lower()
    return lowered, lowered + b":" + value + b"\r\n"


def relaxed_headers(block: bytes) -> dict[bytes, bytes]:
    """Name -> canonical field for each field of a header block (CRLF-ended fields)."""
    found: dict[bytes, bytes] = {}
    if (
        block.endswith(b"\r\n")
        and b"\t" not in block
        and b"  " not in block
        and b"\r\n " not in block
        and b" \r\n" not in block
    ):
        # Unfolded fields with single spaces (every per-reader field mime.py makes): each
        # line is a field, and only the spaces around its colon go.
        for field in block.split(b"\r\n")[:-1]:
            name, _, value = field.partition(b":")
            lowered = name.rstrip(b" ").lower()
            found[lowered] = lowered + b":" + value.lstrip(b" ") + b"\r\n"
        return found
    for field in _FIELD_START.split(block):
        if field:
            name, canonical = relaxed_header(field)
            found[name] = canonical
    return found


def relaxed_lines(chunk: bytes) -> bytes:
    """Relaxed body canonicalisation of whole lines (the chunk ends in CRLF)."""
    if b"\t" not in chunk and b"  " not in chunk and b" \r\n" not in chunk:
        return chunk
    return b"\r\n".join(_WSP_RUN.sub(b" ", line).rstrip(b" ") for line in chunk.split(b"\r\n"))


@dataclass(frozen=True, slots=True)
class DkimKey:
    """One parsed private key and the selector its public half is published under."""

    selector: str
    key: RSAPrivateKey | Ed25519PrivateKey

    @property
    def algorithm(self) -> str:
        return "ed25519-sha256" if isinstance(self.key, Ed25519PrivateKey) else "rsa-sha256"

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.key, Ed25519PrivateKey):
            # RFC 8463: PureEdDSA over the SHA-256 hash of the signed data.
            return self.key.sign(hashlib.sha256(data).digest())
        return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def load_key(data: bytes, where: str) -> RSAPrivateKey | Ed25519PrivateKey:
    """An RSA or Ed25519 private key from PEM (or Ed25519 as dkimpy's base64 seed).

    `where` names the setting in the error a bad key gets.
    """
    how = (
        "make one with `openssl genrsa -out dkim.pem 2048`, or for Ed25519 "
        "`openssl genpkey -algorithm ed25519 -out dkim-ed25519.pem`"
    )
    if b"-----BEGIN" not in data:
        try:
            seed = base64.b64decode(data.strip(), validate=True)
        except ValueError:
            seed = b""
        if len(seed) == 32:
            return Ed25519PrivateKey.from_private_bytes(seed)
        raise ConfigError(f"{where} is not a PEM RSA or Ed25519 private key ({how})")
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{where} is not a PEM RSA or Ed25519 private key without a passphrase ({how})"
        ) from exc
    if isinstance(key, RSAPrivateKey):
        if key.key_size < _RSA_MIN_BITS:
            raise ConfigError(
                f"{where} is a {key.key_size}-bit RSA key, which receivers refuse: use 2048 bits ({how})"
            )
        return key
    if isinstance(key, Ed25519PrivateKey):
        return key
    raise ConfigError(f"{where} holds a {type(key).__name__}; DKIM signs with RSA or Ed25519 ({how})")


def _read_key(config: Config, key: str) -> RSAPrivateKey | Ed25519PrivateKey:
    path: Path = config.path_of(key)
    where = f"config.toml: [delivery.dkim] {key.rpartition('.')[2]} {str(path)!r}"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where} cannot be read: {exc}") from exc
    return load_key(data, where)


@dataclass(frozen=True, slots=True)
class DkimSigner:
    """The signing domain (d=) and one or two keys: each message gets one signature per key."""

    domain: str
    keys: tuple[DkimKey, ...]

    @classmethod
    def from_config(cls, config: Config) -> DkimSigner | None:
        """The signer `[delivery.dkim]` describes, or None when DKIM is not configured.

        Reads and parses the key files: called once per issue, at the edge of the
        otherwise pure work.
        """
        domain = str(config["delivery.dkim.domain"]).strip()
        if not domain:
            return None
        if not domain.isascii():
            domain = domain.encode("idna").decode("ascii")
        selector = str(config["delivery.dkim.selector"]).strip()
        if not selector:
            raise ConfigError(
                "config.toml: [delivery.dkim] selector is required when domain is set "
                "(the name in selector._domainkey.domain)"
            )
        if not str(config["delivery.dkim.private_key_file"]):
            raise ConfigError(
                "config.toml: [delivery.dkim] private_key_file is required when domain is set"
            )
        keys = [DkimKey(selector, _read_key(config, "delivery.dkim.private_key_file"))]
        second = str(config["delivery.dkim.ed25519_selector"]).strip()
        if second or str(config["delivery.dkim.ed25519_key_file"]):
            if not (second and str(config["delivery.dkim.ed25519_key_file"])):
                raise ConfigError(
                    "config.toml: [delivery.dkim] ed25519_selector and ed25519_key_file go "
                    "together: set both for a second (Ed25519) signature, or neither"
                )
            extra = DkimKey(second, _read_key(config, "delivery.dkim.ed25519_key_file"))
            if extra.algorithm != "ed25519-sha256":
                raise ConfigError(
                    "config.toml: [delivery.dkim] ed25519_key_file holds an RSA key; make an "
                    "Ed25519 one with `openssl genpkey -algorithm ed25519 -out dkim-ed25519.pem`"
                )
            if second == selector:
                raise ConfigError(
                    "config.toml: [delivery.dkim] ed25519_selector must differ from selector: "
                    "each key is published under its own name"
                )
            keys.append(extra)
        return cls(domain=domain, keys=tuple(keys))

    def plan(self, head: Sequence[bytes | str], body: Sequence[bytes | str]) -> SigningPlan:
        """Canonicalise and hash what every copy of one message shares.

        `head` and `body` are a template's pieces: bytes are fixed, a str is the key of a
        per-reader value. Every body piece must hold whole lines.
        """
        return SigningPlan(self, head, body)


class SigningPlan:
    """One issue's fixed parts, canonicalised and hashed; `signatures` finishes a copy."""

    __slots__ = ("_body_prefix", "_body_rest", "_head_fixed", "_head_keys", "_signer", "_spaced", "_static_bh")

    def __init__(
        self, signer: DkimSigner, head: Sequence[bytes | str], body: Sequence[bytes | str]
    ) -> None:
        self._signer = signer
        # A domain or selector holding whitespace (a typing slip) takes the general relaxed
        # canonicalisation of the DKIM-Signature field; the others are written canonical.
        self._spaced = any(re.search(r"\s", name) for name in (signer.domain, *(k.selector for k in signer.keys)))
        self._head_fixed: dict[bytes, bytes] = {}
        for piece in head:
            if isinstance(piece, bytes):
                self._head_fixed.update(relaxed_headers(piece))
        self._head_keys = tuple(piece for piece in head if isinstance(piece, str))
        pieces = list(body)
        if pieces and isinstance(pieces[-1], bytes):
            # Relaxed: empty lines at the end of the body are not signed.
            pieces[-1] = pieces[-1].rstrip(b"\r\n") + b"\r\n"
        if pieces and isinstance(pieces[-1], str):
            raise ValueError("the body must end in a fixed piece")
        prefix = hashlib.sha256()
        rest: list[bytes | str] = []
        for index, piece in enumerate(pieces):
            if isinstance(piece, bytes) and not piece.endswith(b"\r\n") and index + 1 < len(pieces):
                raise ValueError("every body piece must end a line")
            if isinstance(piece, str) or rest:
                rest.append(relaxed_lines(piece) if isinstance(piece, bytes) else piece)
            else:
                prefix.update(relaxed_lines(piece))
        self._body_prefix = prefix
        self._body_rest = tuple(rest)
        self._static_bh = b"" if rest else base64.b64encode(prefix.digest())

    def signatures(self, values: Mapping[str, bytes], date: datetime) -> bytes:
        """The DKIM-Signature fields for the copy made of these values, to put in front."""
        bh = self._static_bh
        if not bh:
            state = self._body_prefix.copy()
            # One update: hashlib lets the GIL go for each large one, and taking it back
            # can wait behind the sessions' threads.
            rest = [piece if isinstance(piece, bytes) else relaxed_lines(values[piece]) for piece in self._body_rest]
            state.update(b"".join(rest))
            bh = base64.b64encode(state.digest())
        canonical = dict(self._head_fixed)
        for name in self._head_keys:
            block = values[name]
            if block:
                canonical.update(relaxed_headers(block))
        signed = [field for field in DKIM_HEADERS if field in canonical]
        data = b"".join(canonical[field] for field in signed)
        tags = f"t={int(date.timestamp())};", f"h={b':'.join(signed).decode('ascii')};", f"bh={bh.decode('ascii')};"
        out: list[bytes] = []
        for key in self._signer.keys:
            head = f"v=1; a={key.algorithm}; c=relaxed/relaxed;", f"d={self._signer.domain}; s={key.selector};"
            header = f"DKIM-Signature: {head[0]}\r\n {head[1]} {tags[0]}\r\n {tags[1]}\r\n {tags[2]}\r\n b="
            if self._spaced:
                unsigned = relaxed_header(header.encode("ascii"))[1][:-2]
            else:
                # Its relaxed form: the field unfolded, single spaces kept.
                unsigned = f"dkim-signature:{head[0]} {head[1]} {tags[0]} {tags[1]} {tags[2]} b=".encode("ascii")
            signature = key.sign(data + unsigned)
            out.append(header.encode("ascii") + base64.b64encode(signature) + b"\r\n")
        return b"".join(out)
