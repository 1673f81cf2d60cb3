"""A rendered issue as pre-encoded MIME bytes, so that each recipient costs a splice.

`MessageTemplate.from_rendered` encodes the headers and both body parts once, split
around the placeholder tokens that `render_issue` left for per-recipient values.
`message_bytes` then encodes only those few values and joins the pieces.

Why quoted-printable: base64 cannot be spliced (a value shifts every following
quantum), while in quoted-printable a soft line break (`=` CRLF) decodes to nothing.
Every static piece ends in a soft break before a placeholder, and every value is
encoded on lines of its own followed by a soft break, so no line ever passes 76
characters however long a value is, and the decoded text is exactly the template
with the values in place. The boundary starts with `=_`, which quoted-printable
output can never contain.
"""

from __future__ import annotations

import binascii
import email.policy
import email.utils
import hashlib
import html as html_lib
import re
from base64 import b64encode
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from urllib.parse import urlsplit

from publisher.config import Config
from publisher.errors import ConfigError, SubscriberError
from publisher.mail.dkim_signing import DKIM_HEADERS, DkimSigner, SigningPlan
from publisher.models import RenderedIssue

__all__ = [
    "DKIM_HEADERS",
    "HTML_PLACEHOLDERS",
    "PLACEHOLDERS",
    "TEXT_PLACEHOLDERS",
    "DkimSigner",
    "MessageTemplate",
    "Placeholders",
    "Recipient",
    "clean_header_text",
    "message_id_for",
    "split_mailbox",
]


@dataclass(frozen=True, slots=True)
class Recipient:
    """One addressee of one issue, with the values spliced into its copy."""

    delivery_id: int | None
    email: str
    name: str
    unsubscribe_url: str
    """Empty for mail that is not a newsletter (the confirmation mail): no List-Unsubscribe."""
    message_id: str
    manage_url: str = ""
    """The reader's own page ("manage your subscription"). Empty: the unsubscribe link
    stands in, whose page offers the choices too (previews, test copies)."""
    return_path: str = ""
    """The envelope sender of this copy (`publisher.mail.verp`); empty: the From address.
    Not in the message's bytes: the receiving server writes Return-Path from it."""
    copy_token: str = ""
    """The copy's analytics token (`publisher.mail.tracking`), spliced into the HTML part's
    pixel and click links only; empty while analytics are off (the part then has none)."""


@dataclass(frozen=True, slots=True)
class Placeholders:
    """Tokens standing for per-recipient values in rendered output.

    Only letters and underscores: premailer, lxml's serialiser (which percent-escapes
    URL attributes), HTML escaping and quoted-printable all leave them untouched.
    """

    name: str
    email: str
    unsubscribe_url: str
    manage_url: str

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "email": self.email,
            "unsubscribe_url": self.unsubscribe_url,
            "manage_url": self.manage_url,
        }


# The HTML and the text part carry different tokens, so that API providers doing their
# own substitution (SendGrid, Mailgun) can be given HTML-escaped values for one and raw
# values for the other.
HTML_PLACEHOLDERS: Final = Placeholders(
    "__pub_html_name__", "__pub_html_email__", "__pub_html_unsubscribe_url__", "__pub_html_manage_url__"
)
TEXT_PLACEHOLDERS: Final = Placeholders(
    "__pub_text_name__", "__pub_text_email__", "__pub_text_unsubscribe_url__", "__pub_text_manage_url__"
)
COPY_PLACEHOLDER: Final = "__pub_html_copy__"
"""The analytics copy token's place: in the HTML part only, and only once tracking added it."""
PLACEHOLDERS: Final = (*HTML_PLACEHOLDERS.as_dict().values(), *TEXT_PLACEHOLDERS.as_dict().values(), COPY_PLACEHOLDER)

_TOKEN_RE = re.compile("(" + "|".join(re.escape(t) for t in PLACEHOLDERS) + ")")
_TOKEN_KEY = {
    **{tok: f"html.{key}" for key, tok in HTML_PLACEHOLDERS.as_dict().items()},
    **{tok: f"text.{key}" for key, tok in TEXT_PLACEHOLDERS.as_dict().items()},
    COPY_PLACEHOLDER: "html.copy_token",
}
# C0 controls, DEL and the Unicode line and paragraph separators: none may reach a header.
_CONTROL_RE = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]+")
_ADDR_RE = re.compile(r"^[^\s<>()\[\]\\,;:\"@]+@[^\s<>()\[\]\\,;:\"@]+$")
_MSGID_RE = re.compile(r"^<[^\s<>@]+@[^\s<>@]+>$")
_MSGKEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.]{0,63}$")
_URL_RE = re.compile(r"^https?://[^\s<>\"]+$")
_SPECIALS_RE = re.compile(r'[][\\()<>@,:;".]')
_MAX_NAME = 200
_ONE_CLICK = b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
_SOFT_BREAK = b"=\r\n"


def clean_header_text(value: str, *, limit: int | None = None) -> str:
    """`value` with every control character and line break turned into a space.

    Applied to everything from authors, readers and articles (names, titles, addresses)
    that ends up in a header, so no such value can ever start a header of its own.
    """
    cleaned = " ".join(_CONTROL_RE.sub(" ", value).split())
    return cleaned[:limit] if limit is not None else cleaned


def message_id_for(key: str, domain: str) -> str:
    """The Message-ID of one ledger row from its stored random `key`: the same on every
    retry and resume of that row, and unique in the world (another database, or this one
    rebuilt, draws other keys)."""
    if not _MSGKEY_RE.match(key):
        raise ValueError(f"Message-ID key {key!r} must be letters, digits and dots")
    host = clean_header_text(domain).replace(" ", "") or "localhost"
    return f"<{key}@{host}>"


def _qp(text: str) -> bytes:
    """Quoted-printable with CRLF line ends, starting at column 0."""
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(data, istext=True).replace(b"\n", b"\r\n")


def _qp_value(text: str) -> bytes:
    """A spliced value: its own lines, closed by a soft break so the template resumes at 0."""
    return _qp(text) + _SOFT_BREAK


def _encoded_words(text: str) -> str:
    """RFC 2047 base64 encoded-words of at most 75 characters, folded, whole characters each."""
    words: list[str] = []
    chunk = bytearray()
    for char in text:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > 45:
            words.append(f"=?utf-8?b?{b64encode(bytes(chunk)).decode('ascii')}?=")
            chunk.clear()
        chunk += encoded
    if chunk:
        words.append(f"=?utf-8?b?{b64encode(bytes(chunk)).decode('ascii')}?=")
    return "\r\n ".join(words)


def _address_spec(address: str) -> str:
    """An addr-spec fit for a header, or SubscriberError (never a silently altered address)."""
    if not _ADDR_RE.match(address):
        raise SubscriberError(
            f"{address!r} cannot be used as a recipient address (spaces, line breaks or "
            "brackets are not allowed); fix or remove this subscriber"
        )
    local, _, domain = address.rpartition("@")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise SubscriberError(f"{address!r}: the domain is not a valid name") from exc
    return f"{local}@{domain}"


def _mailbox(name: str, address: str, *, encode: bool = True) -> str:
    """`Name <address>`: quoted when needed, RFC 2047 (for a header) when not ASCII."""
    if not name:
        return address
    if not name.isascii() and encode:
        return f"{_encoded_words(name)} <{address}>"
    if _SPECIALS_RE.search(name):
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}" <{address}>'
    return f"{name} <{address}>"


def _fold(name: str, value: str) -> bytes:
    """A header folded and encoded by the stdlib (static headers only: it is slow)."""
    header = email.policy.SMTP.header_factory(name, value)
    folded: str = header.fold(policy=email.policy.SMTP)
    return folded.encode("ascii")


_NAMED_RE = re.compile(r"^(?P<name>.*?)\s*<(?P<address>[^<>]*)>$")


def split_mailbox(value: str) -> tuple[str, str]:
    """(display name, address) of one mailbox as an author writes it: `"Dana Reyes, LCSW"
    <d@x.org>`, `Dana Reyes, LCSW <d@x.org>` or a bare `d@x.org` (name "").

    The name is everything before the `<address>`, quotes or not, so that a credential
    after a comma stays part of the name rather than turning the value into two
    addresses (as `email.utils.parseaddr` reads it). The address is not checked here.
    """
    raw = clean_header_text(value)
    named = _NAMED_RE.match(raw)
    if named is None:
        return email.utils.parseaddr(raw)
    name, address = named["name"].strip(), named["address"].strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = re.sub(r"\\(.)", r"\1", name[1:-1])
    return name, address


def _parse_mailbox(config: Config, key: str) -> tuple[str, str]:
    """`split_mailbox` of a config key, or ConfigError naming the key when it holds no address."""
    raw = clean_header_text(str(config[key]))
    name, address = split_mailbox(raw)
    if not address or "@" not in address or not _ADDR_RE.match(address):
        section, _, field = key.rpartition(".")
        raise ConfigError(
            f'config.toml: [{section}] {field} must be an address such as "Dana Reyes <dana@example.org>", got {raw!r}'
        )
    return clean_header_text(name, limit=_MAX_NAME), address


_Piece = bytes | str
"""Pre-encoded bytes, or the key of a per-recipient value."""


def _body_pieces(text: str, prefix: str) -> list[_Piece]:
    chunks = _TOKEN_RE.split(text)
    pieces: list[_Piece] = []
    for index, chunk in enumerate(chunks):
        if index % 2:
            key = _TOKEN_KEY[chunk]
            if not key.startswith(prefix):
                raise ValueError(f"{chunk} is a placeholder of the other part")
            pieces.append(key)
            continue
        encoded = _qp(chunk)
        if index + 1 < len(chunks) and not chunk.endswith("\n"):
            encoded += _SOFT_BREAK
        pieces.append(encoded)
    return pieces


_SPLICED = (
    "text.name",
    "text.email",
    "text.unsubscribe_url",
    "text.manage_url",
    "html.name",
    "html.email",
    "html.unsubscribe_url",
    "html.manage_url",
    "html.copy_token",
)
"""The per-reader values a body can hold: the part they are escaped for, and the field."""


def _stuffed(piece: bytes) -> bytes:
    """A piece that starts a line, its line-leading dots doubled for SMTP's DATA."""
    if piece.startswith(b".") or b"\n." in piece:
        piece = piece.replace(b"\n.", b"\n..")
        if piece.startswith(b"."):
            piece = b"." + piece
    return piece


def _merge(pieces: list[_Piece]) -> tuple[_Piece, ...]:
    merged: list[_Piece] = []
    for piece in pieces:
        if isinstance(piece, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] = merged[-1] + piece
        elif piece != b"":
            merged.append(piece)
    return tuple(merged)


class MessageTemplate:
    """One issue, encoded once; `message_bytes` makes each recipient's copy."""

    __slots__ = (
        "_date_cache",
        "_head_count",
        "_pieces",
        "_signing",
        "_slots",
        "_spliced",
        "_wire",
        "dkim",
        "html",
        "key",
        "list_id",
        "reply_to",
        "sender",
        "sender_address",
        "subject",
        "text",
    )

    def __init__(
        self,
        *,
        key: str,
        subject: str,
        sender: str,
        sender_address: str,
        reply_to: str,
        list_id: str,
        html: str,
        text: str,
        head: tuple[_Piece, ...],
        body: tuple[_Piece, ...],
        dkim: DkimSigner | None,
    ) -> None:
        self.key = key
        self.subject = subject
        self.sender = sender
        self.sender_address = sender_address
        self.reply_to = reply_to
        self.list_id = list_id
        self.html = html
        self.text = text
        self.dkim = dkim
        self._pieces = head + body
        self._wire = tuple(_stuffed(piece) if isinstance(piece, bytes) else piece for piece in self._pieces)
        self._slots = tuple((index, piece) for index, piece in enumerate(self._pieces) if isinstance(piece, str))
        """Where each copy's values go among the pieces: filled in by place, not found by type."""
        self._head_count = len(head)
        used = {piece for piece in self._pieces if isinstance(piece, str)}
        self._spliced = tuple((key, *key.split(".")) for key in _SPLICED if key in used)
        self._signing: SigningPlan | None = dkim.plan(head, body) if dkim is not None else None
        self._date_cache: tuple[datetime, bytes] | None = None

    @classmethod
    def from_rendered(
        cls, config: Config, rendered: RenderedIssue, *, dkim: DkimSigner | None = None
    ) -> MessageTemplate:
        """Encode `rendered` once. DKIM comes from `[delivery.dkim]` unless passed in."""
        signer = dkim if dkim is not None else DkimSigner.from_config(config)
        title = clean_header_text(str(config["publication.title"]), limit=_MAX_NAME)
        from_name, from_address = _parse_mailbox(config, "newsletter.from")
        # A bare address is shown under the publication's name: readers see who wrote.
        sender = _mailbox(from_name or title, from_address, encode=False)
        reply_to = ""
        if str(config["newsletter.reply_to"]).strip():
            reply_to = _mailbox(*_parse_mailbox(config, "newsletter.reply_to"), encode=False)
        list_id = clean_header_text(str(config["newsletter.list_id"]))
        if not list_id:
            list_id = urlsplit(config.site_url).hostname or "localhost"
        if "<" not in list_id:
            list_id = f"{title} <{list_id}>"
        subject = clean_header_text(rendered.subject) or title
        digest = hashlib.sha256("\0".join((rendered.key, rendered.html, rendered.text)).encode("utf-8")).hexdigest()
        boundary = f"=_pub_{digest[:32]}"

        static_middle = _fold("Subject", subject)
        after_id = b""
        if reply_to:
            after_id += _fold("Reply-To", reply_to)
        after_id += _fold("List-Id", list_id)
        mime = (
            b"MIME-Version: 1.0\r\n"
            + f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n'.encode("ascii")
            + b"\r\n"
        )
        part_head = (
            '--{b}\r\nContent-Type: text/{kind}; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
        )
        head: list[_Piece] = [
            _fold("From", sender),
            "to",
            static_middle,
            "date",
            "message_id",
            after_id,
            "list_unsubscribe",
            mime,
        ]
        body: list[_Piece] = [
            part_head.format(b=boundary, kind="plain").encode("ascii"),
            *_body_pieces(rendered.text, "text."),
            b"\r\n" + part_head.format(b=boundary, kind="html").encode("ascii"),
            *_body_pieces(rendered.html, "html."),
            f"\r\n--{boundary}--\r\n".encode("ascii"),
        ]
        return cls(
            key=rendered.key,
            subject=subject,
            sender=sender,
            sender_address=from_address,
            reply_to=reply_to,
            list_id=list_id,
            html=rendered.html,
            text=rendered.text,
            head=_merge(head),
            body=_merge(body),
            dkim=signer,
        )

    def with_subject(self, subject: str) -> MessageTemplate:
        """The same issue under another subject (a subject test's variant), encoded once too:
        only the Subject header differs, and the DKIM plan is made again for it."""
        subject = clean_header_text(subject) or self.subject
        old = _fold("Subject", self.subject)
        head = tuple(_fold("Subject", subject) if piece == old else piece for piece in self._pieces[: self._head_count])
        return MessageTemplate(
            key=self.key,
            subject=subject,
            sender=self.sender,
            sender_address=self.sender_address,
            reply_to=self.reply_to,
            list_id=self.list_id,
            html=self.html,
            text=self.text,
            head=head,
            body=self._pieces[self._head_count :],
            dkim=self.dkim,
        )

    def _checked(self, recipient: Recipient) -> tuple[str, str, str, str]:
        """Address, name, unsubscribe and manage URLs, refused or cleaned before they near a header."""
        address = _address_spec(recipient.email)
        name = clean_header_text(recipient.name, limit=_MAX_NAME)
        url = recipient.unsubscribe_url
        if url and not _URL_RE.match(url):
            raise ValueError(f"unsubscribe URL {url!r} is not an absolute http(s) URL")
        manage = recipient.manage_url
        if manage and not _URL_RE.match(manage):
            raise ValueError(f"manage URL {manage!r} is not an absolute http(s) URL")
        return address, name, url, manage or url

    def _date_header(self, date: datetime) -> bytes:
        cached = self._date_cache
        if cached is not None and cached[0] == date:
            return cached[1]
        if date.tzinfo is None or date.utcoffset() is None:
            raise ValueError("the Date header needs a timezone-aware datetime")
        header = f"Date: {email.utils.format_datetime(date)}\r\n".encode("ascii")
        self._date_cache = (date, header)
        return header

    @staticmethod
    def _list_unsubscribe(url: str) -> str:
        """Only the https one-click link: a `mailto:` would send requests to a mailbox that
        nothing reads, and an unsubscribe request silently ignored is lost (and unlawful)."""
        return f"<{url}>"

    def message_bytes(self, recipient: Recipient, date: datetime) -> bytes:
        """The complete RFC 5322 message for `recipient`, DKIM-signed when configured."""
        return self._copy(recipient, date, wire=False)

    def wire_bytes(self, recipient: Recipient, date: datetime) -> bytes:
        """`message_bytes` as SMTP's DATA carries it: every line that starts with a dot has
        it doubled (RFC 5321 4.5.2). Each piece starts a line (a value follows a line end or
        a soft break), so the fixed pieces are stuffed once, when the template is made, and
        only the few spliced values per copy: no pass over the whole message per reader."""
        return self._copy(recipient, date, wire=True)

    def _copy(self, recipient: Recipient, date: datetime, *, wire: bool) -> bytes:
        address, name, url, manage = self._checked(recipient)
        if not _MSGID_RE.match(recipient.message_id):
            raise ValueError(f"Message-ID {recipient.message_id!r} must look like <id@domain> (see message_id_for)")
        values: dict[str, bytes] = {
            "to": f"To: {_mailbox(name, address)}\r\n".encode(),
            "date": self._date_header(date),
            "message_id": f"Message-ID: {recipient.message_id}\r\n".encode("ascii"),
            "list_unsubscribe": (
                f"List-Unsubscribe: {self._list_unsubscribe(url)}\r\n".encode() + _ONE_CLICK if url else b""
            ),
        }
        # Only the values this issue's parts hold, each text encoded once (a URL or a
        # name is most often the same escaped for the HTML part as in the text part).
        fields = {
            "name": name,
            "email": address,
            "unsubscribe_url": url,
            "manage_url": manage,
            "copy_token": recipient.copy_token,
        }
        encoded: dict[str, bytes] = {}
        for key, part, field in self._spliced:
            text = fields[field] if part == "text" else html_lib.escape(fields[field])
            value = encoded.get(text)
            if value is None:
                value = encoded[text] = _qp_value(text)
            values[key] = value
        pieces: list[_Piece] = list(self._wire if wire else self._pieces)
        if wire:
            # Each value stuffed once, however many places hold it.
            stuffed: dict[str, bytes] = {}
            for index, key in self._slots:
                value = stuffed.get(key)
                if value is None:
                    value = stuffed[key] = _stuffed(values[key])
                pieces[index] = value
        else:
            for index, key in self._slots:
                pieces[index] = values[key]
        message = b"".join(pieces)  # type: ignore[arg-type]  # every slot now holds bytes
        if self._signing is None:
            return message
        return self._signing.signatures(values, date) + message

    def substitutions(self, recipient: Recipient) -> dict[str, str]:
        """Placeholder token -> value, HTML-escaped for the HTML part's tokens."""
        address, name, url, manage = self._checked(recipient)
        raw = {"name": name, "email": address, "unsubscribe_url": url, "manage_url": manage}
        subs = {TEXT_PLACEHOLDERS.as_dict()[key]: value for key, value in raw.items()}
        subs.update({HTML_PLACEHOLDERS.as_dict()[key]: html_lib.escape(value) for key, value in raw.items()})
        subs[COPY_PLACEHOLDER] = html_lib.escape(recipient.copy_token)
        return subs

    def parts(self, recipient: Recipient) -> tuple[str, str]:
        """The personalised (html, text) bodies, for providers that take them separately."""
        subs = self.substitutions(recipient)
        return _substitute(self.html, subs), _substitute(self.text, subs)

    def headers(self, recipient: Recipient) -> dict[str, str]:
        """List and identity headers for API providers that accept custom headers."""
        _, _, url, _ = self._checked(recipient)
        found: dict[str, str] = {}
        if url:
            found["List-Unsubscribe"] = self._list_unsubscribe(url)
            found["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        found["List-Id"] = self.list_id
        if recipient.message_id:
            if not _MSGID_RE.match(recipient.message_id):
                raise ValueError(f"Message-ID {recipient.message_id!r} must look like <id@domain>")
            found["Message-ID"] = recipient.message_id
        return found


def _substitute(text: str, subs: Mapping[str, str]) -> str:
    return _TOKEN_RE.sub(lambda match: subs[match.group(0)], text)
