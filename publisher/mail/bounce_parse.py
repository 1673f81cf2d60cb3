"""What a message that came back says: a hard or soft bounce, a complaint, an auto-reply.

Pure: bytes in, a `Verdict` out; no store, no clock. The order of the questions is the
point, because the shapes overlap:

1. A feedback report (ARF, RFC 5965: `multipart/report; report-type=feedback-report`,
   or a `message/feedback-report` part anywhere) is a complaint, whatever else it says;
   so is Outlook.com's older report ("complaint about message from ...", the message
   attached, its reader in X-HmXmrOriginalRecipient).
2. A delivery status notification (RFC 3464) is read field by field: each recipient's
   Action, Status and Diagnostic-Code. "delivered", "relayed" and "expanded" are not
   failures. A DSN carries `Auto-Submitted: auto-replied` (RFC 3834) too, so it is asked
   about before the auto-reply headers are.
3. An auto-reply (Auto-Submitted other than "no", X-Autoreply, X-Autorespond,
   Precedence: auto_reply, a holiday subject in a few languages) is not a bounce.
4. Everything else that looks like a bounce (from MAILER-DAEMON or postmaster, or a
   bounce's subject) goes to flufl.bounce, which knows the older non-standard shapes
   (Exim, qmail, Microsoft, Yahoo, ...) and names the failed addresses.

Hard or soft: a bounce is hard only when it says the address itself is dead (status
5.1.x, or words to that effect: "user unknown", "no such user", "does not exist", in
English and a few other languages); anything else that failed (a full mailbox, a
timeout, a block or a spam filter, which say nothing about the address) is soft, and
only repeated soft bounces suppress. A report that fails but names no address, or that
names one and gives no reason at all, is "unknown": a person decides.

A message that cannot be parsed as MIME is read as far as Python's parser goes (it never
raises on bad structure); anything still unexpected is an "unknown" verdict, never an
exception.
"""

from __future__ import annotations

import contextlib
import email
import email.message
import email.utils
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.header import decode_header, make_header
from typing import Literal

from flufl.bounce import all_failures

__all__ = ["KINDS", "Kind", "Verdict", "classify"]

Kind = Literal["hard", "soft", "complaint", "auto_reply", "not_a_bounce", "unknown"]
KINDS: tuple[Kind, ...] = ("hard", "soft", "complaint", "auto_reply", "not_a_bounce", "unknown")

_STATUS_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_ADDRESS_RE = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_DEAD = re.compile(
    r"user(?:name)? unknown|unknown (?:user|recipient|mailbox|address|local)|no such (?:user|mailbox|recipient|"
    r"address|person|account|domain)|does(?: not|n't) exist|not exist|invalid (?:recipient|mailbox|address|user)|"
    r"recipient (?:unknown|not found|invalid)|mailbox (?:not found|unavailable|does not exist|is unavailable)|"
    r"user not found|address not found|no mailbox|unrouteable|host or domain name not found|"
    r"domain not found|host not found|name service error|address rejected: user|addressee unknown|"
    r"not a valid (?:user|mailbox|recipient)|account (?:does not exist|has been (?:deleted|closed|removed))|"
    r"mailbox has been (?:removed|deleted)|unknown or illegal alias|doesn't have an? \S+ account|"
    r"does not accept mail|recipient address rejected: access denied|couldn't find a mail exchanger|"
    r"benutzer unbekannt|unbekannte[rn]? (?:empf|benutzer|adresse)|existiert nicht|"
    r"n'existe pas|inexistant|destinataire inconnu|utilisateur inconnu|adresse introuvable|"
    r"no existe|desconocid[oa]|usuario desconocido|non esiste|utente sconosciuto|"
    r"n(?:ã|a)o existe|onbekende gebruiker|bestaat niet",
    re.IGNORECASE,
)
_SOFT_WORDS = re.compile(
    r"mailbox (?:is )?full|over ?quota|quota exceeded|exceeded (?:the )?(?:storage|quota)|insufficient storage|"
    r"try again later|temporar(?:il)?y|deferred|timed? ?out|connection refused|greylist|postfach (?:ist )?voll|"
    r"boîte (?:aux lettres )?pleine|buz[oó]n lleno",
    re.IGNORECASE,
)
_BLOCKED = re.compile(
    r"blacklist|blocklist|block ?list|spamhaus|spamcop|\bRBL\b|listed (?:at|in|on)|reputation|"
    r"too many (?:recipients|messages|connections)|rate limit|message (?:was )?(?:considered|identified as) spam",
    re.IGNORECASE,
)
"""A refusal of the sending server or the message, not of the address."""
_BOUNCE_SENDER = re.compile(
    r"mailer-daemon|post[_-]?master|mail delivery (?:subsystem|system)|mdaemon|bounce", re.I
)
_NO_REPLY = re.compile(r"no-?reply", re.I)
"""A sender some mail systems write their bounce notices from; an auto-reply may come from one too."""
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (?:status notification|failure|has failed|failed|notification)|"
    r"returned mail|failure notice|mail delivery failed|could not be delivered|non[- ]?delivery|"
    r"nicht zustellbar|unzustellbar|non remis|no entregado|non recapitabile|niet afgeleverd|"
    r"メールエラー|不達|配信エラー|送信エラー",
    re.IGNORECASE,
)
_JMRP_SUBJECT = re.compile(r"\s*complaint about message from ", re.IGNORECASE)
_HOLIDAY_SUBJECT = re.compile(
    r"out of (?:the )?office|auto(?:matic)?[- ]?(?:reply|response|answer)|autoreply|vacation|on holiday|"
    r"away from|abwesend|abwesenheit|automatische antwort|absence|absent|r[ée]ponse automatique|"
    r"fuera de la oficina|respuesta autom[aá]tica|risposta automatica|fuori ufficio",
    re.IGNORECASE,
)
# flufl.bounce logs a whole traceback each time one of its detectors trips over odd mail
# (noise, a broken tree) and carries on; our verdict says what became of the message.
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)

_SCAN_CHARS = 200_000
"""Characters of text searched for words and codes: a bounce says why near the top."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one message is, and whom it is about."""

    kind: Kind
    addresses: tuple[str, ...] = ()
    """The failed (or complaining) recipients the report names, lower-case."""
    status: str = ""
    """The enhanced status code (RFC 3463) that decided, when there was one."""
    reason: str = ""
    """One line for a person: the diagnostic, the feedback type, the auto-reply's mark."""
    rcpt_to: tuple[str, ...] = ()
    """Where the message itself was addressed (To, Delivered-To, X-Original-To,
    Envelope-To): a VERP return path is among them."""
    message_id: str = ""


def classify(raw: bytes) -> Verdict:
    """Read one message; never raises."""
    try:
        msg = email.message_from_bytes(raw)
    except Exception as exc:  # the parser is lenient; anything left is a verdict
        return Verdict("unknown", reason=f"not readable as mail: {type(exc).__name__}")
    try:
        return _classify(msg)
    except Exception as exc:  # a message this odd is for a person, not a traceback
        try:
            rcpt, mid = _rcpt_to(msg), _message_id(msg)
        except Exception:
            rcpt, mid = (), ""
        return Verdict("unknown", rcpt_to=rcpt, message_id=mid,
                       reason=f"could not be read to the end ({type(exc).__name__})")


def _classify(msg: email.message.Message) -> Verdict:
    rcpt = _rcpt_to(msg)
    mid = _message_id(msg)
    feedback = _find_part(msg, "message/feedback-report")
    if feedback is not None or _report_type(msg) == "feedback-report":
        return _complaint(msg, feedback, rcpt, mid)
    if _JMRP_SUBJECT.match(_header_text(msg.get("Subject", ""))):
        return _jmrp(msg, rcpt, mid)
    status_part = _find_part(msg, "message/delivery-status") or _find_part(msg, "message/global-delivery-status")
    if status_part is not None:
        verdict = _dsn(msg, status_part, rcpt, mid)
        if verdict is not None:
            return verdict
    sender = str(msg.get("From", ""))
    subject = _header_text(msg.get("Subject", ""))
    looks = bool(_BOUNCE_SENDER.search(sender) or _BOUNCE_SUBJECT.search(subject) or status_part is not None)
    if not looks:
        mark = _auto_reply_mark(msg)
        if mark:
            return Verdict("auto_reply", reason=mark, rcpt_to=rcpt, message_id=mid)
    return _nonstandard(msg, looks or bool(_NO_REPLY.search(sender)), rcpt, mid)


def _complaint(
    msg: email.message.Message, feedback: email.message.Message | None, rcpt: tuple[str, ...], mid: str
) -> Verdict:
    fields = _fields(_part_text(feedback)) if feedback is not None else {}
    kind = fields.get("feedback-type", ["abuse"])[0].lower()
    addresses = [_bare(v) for v in fields.get("original-rcpt-to", [])]
    if not any(addresses):
        original = _find_part(msg, "message/rfc822") or _find_part(msg, "text/rfc822-headers")
        if original is not None:
            headers = _original_headers(original)
            addresses = [a for _, a in email.utils.getaddresses(headers.get_all("To", []))]
    found = tuple(a.lower() for a in addresses if a and "@" in a)
    return Verdict("complaint", found, reason=f"feedback report: {kind}", rcpt_to=rcpt, message_id=mid)


def _jmrp(msg: email.message.Message, rcpt: tuple[str, ...], mid: str) -> Verdict:
    """Outlook.com's complaint (JMRP): not ARF, the reported message attached whole."""
    addresses: list[str] = []
    original = _find_part(msg, "message/rfc822")
    if original is not None:
        headers = _original_headers(original)
        addresses = [str(v) for v in headers.get_all("X-HmXmrOriginalRecipient", [])]
        if not addresses:
            addresses = [a for _, a in email.utils.getaddresses(headers.get_all("To", []))]
    found = tuple(a.strip().lower() for a in addresses if "@" in a)
    return Verdict("complaint", found, reason="complaint report (Outlook.com JMRP)", rcpt_to=rcpt, message_id=mid)


def _dsn(
    msg: email.message.Message, part: email.message.Message, rcpt: tuple[str, ...], mid: str
) -> Verdict | None:
    groups = _dsn_groups(_part_text(part))
    failed: list[tuple[str, str, str]] = []
    delivered = False
    for fields in groups[1:] or groups:
        action = fields.get("action", [""])[0].lower().strip()
        address = _bare(fields.get("final-recipient", fields.get("original-recipient", [""]))[0])
        if not address:
            address = _bare(fields.get("original-recipient", [""])[0])
        status = fields.get("status", [""])[0].strip()
        diagnostic = " ".join(fields.get("diagnostic-code", []))
        if action in ("delivered", "relayed", "expanded") or status.startswith("2."):
            delivered = True
            continue
        if not action and not status and not diagnostic:
            continue
        failed.append((address.lower(), status, diagnostic))
    if not failed:
        if delivered:
            return Verdict("not_a_bounce", reason="a delivery report that says the mail arrived",
                           rcpt_to=rcpt, message_id=mid)
        return None
    address, status, diagnostic = failed[0]
    text = f"{diagnostic} {status}"
    if not diagnostic:
        text += " " + _body_text(msg)[:_SCAN_CHARS]
    kind = _hard_or_soft(status, text)
    addresses = tuple(dict.fromkeys(a for a, _, _ in failed if a))
    reason = (diagnostic or status or "delivery failed").strip()
    return Verdict(kind, addresses, status=_status_code(status) or _status_code(text),
                   reason=_one_line(reason), rcpt_to=rcpt, message_id=mid)


def _nonstandard(msg: email.message.Message, looks: bool, rcpt: tuple[str, ...], mid: str) -> Verdict:
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # a detector tripping over odd mail is no verdict
        temporary, permanent = frozenset(), frozenset()
    addresses = tuple(dict.fromkeys(_decode(a) for a in (*permanent, *temporary)))
    if not addresses and not looks:
        return Verdict("not_a_bounce", reason="no sign of a delivery report", rcpt_to=rcpt, message_id=mid)
    text = _body_text(msg)[:_SCAN_CHARS]
    status = _status_code(text)
    kind: Kind = _hard_or_soft(status, text)
    if kind == "hard":
        pass
    elif addresses or status or _SOFT_WORDS.search(text):
        kind = "soft"
    else:
        # An address it mentions is only a guess, for the person who decides.
        guess = tuple(a for a in _addresses_in(text) if a not in rcpt)
        return Verdict("unknown", guess, reason="looks like a bounce, but says neither whom nor why",
                       rcpt_to=rcpt, message_id=mid)
    if not addresses:
        addresses = _addresses_in(text)
    return Verdict(kind, addresses, status=status, reason=_reason_line(text, status),
                   rcpt_to=rcpt, message_id=mid)


_DEAD_CODES = frozenset({"5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.4.4"})
"""Enhanced status codes (RFC 3463) that say the address itself is bad; 5.1.8 and 5.1.7
are about the sender, 5.1.0 is "other", and 4.x.x is only ever a "not now"."""


def _hard_or_soft(status: str, text: str) -> Kind:
    # The receiving server's own code, quoted in the diagnostic, is more precise than the
    # reporting MTA's Status field (which often says 5.1.1 for any refusal).
    code = _status_code(text) or _status_code(status)
    if _BLOCKED.search(text):
        return "soft"
    if code in _DEAD_CODES:
        return "hard"
    if code.startswith(("4.", "5.2.", "5.3.", "5.7.")) or code in ("5.1.7", "5.1.8") or _SOFT_WORDS.search(text):
        return "soft"
    if _DEAD.search(text):
        return "hard"
    return "soft"


def _auto_reply_mark(msg: email.message.Message) -> str:
    auto = str(msg.get("Auto-Submitted", "")).strip().lower()
    if auto.startswith("auto-replied"):
        return f"Auto-Submitted: {auto[:40]}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress", "X-Autoresponder"):
        if name in msg and name != "X-Auto-Response-Suppress":
            return f"{name} header"
    precedence = str(msg.get("Precedence", "")).strip().lower()
    if precedence in ("auto_reply", "auto-reply"):
        return f"Precedence: {precedence}"
    subject = _header_text(msg.get("Subject", ""))
    if _HOLIDAY_SUBJECT.search(subject) and not _BOUNCE_SUBJECT.search(subject):
        return f"subject: {_one_line(subject)[:80]}"
    return ""


# Reading parts.

def _walk(msg: email.message.Message, depth: int = 0) -> Iterator[email.message.Message]:
    """Every part, a bounded depth down (a hostile tree cannot recurse without end)."""
    yield msg
    if depth > 20:
        return
    payload = msg.get_payload()
    if isinstance(payload, list):
        for part in payload[:200]:
            if isinstance(part, email.message.Message):
                yield from _walk(part, depth + 1)


def _find_part(msg: email.message.Message, content_type: str) -> email.message.Message | None:
    for part in _walk(msg):
        if part.get_content_type() == content_type:
            return part
    return None


def _report_type(msg: email.message.Message) -> str:
    if msg.get_content_type() != "multipart/report":
        return ""
    return str(msg.get_param("report-type", "") or "").lower()


def _part_text(part: email.message.Message) -> str:
    """A status or feedback part's fields as text, however it was encoded or nested."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return "\n\n".join(p.as_string() if isinstance(p, email.message.Message) else str(p) for p in payload)
    data = part.get_payload(decode=True)
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return str(payload)


def _dsn_groups(text: str) -> list[dict[str, list[str]]]:
    blocks = re.split(r"\r?\n[ \t]*\r?\n", text.strip())
    return [f for f in (_fields(b) for b in blocks) if f]


def _fields(text: str) -> dict[str, list[str]]:
    """RFC 822-style fields, folded lines joined, names lower-case."""
    fields: dict[str, list[str]] = {}
    name = ""
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and name:
            fields[name][-1] += " " + line.strip()
            continue
        head, sep, value = line.partition(":")
        if not sep or not head.strip() or " " in head.strip():
            name = ""
            continue
        name = head.strip().lower()
        fields.setdefault(name, []).append(value.strip())
    return fields


def _bare(value: str) -> str:
    """`rfc822; a@b` -> `a@b`."""
    value = value.split(";", 1)[1] if ";" in value else value
    value = value.strip().strip("<>").strip()
    return value if "@" in value else ""


def _original_headers(part: email.message.Message) -> email.message.Message:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], email.message.Message):
        return payload[0]
    return email.message_from_string(_part_text(part))


def _body_text(msg: email.message.Message) -> str:
    out: list[str] = []
    size = 0
    for part in _walk(msg):
        if part.get_content_maintype() == "multipart" or part.get_content_type() == "message/rfc822":
            continue
        if part.get_content_maintype() not in ("text", "message"):
            continue
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            continue
        charset = part.get_content_charset() or "utf-8"
        try:
            text = data.decode(charset, "replace")
        except LookupError:
            text = data.decode("utf-8", "replace")
        out.append(text)
        size += len(text)
        if size > _SCAN_CHARS:
            break
    return "\n".join(out)


def _status_code(text: str) -> str:
    found = _STATUS_RE.search(text)
    return ".".join(found.groups()) if found else ""


def _addresses_in(text: str) -> tuple[str, ...]:
    found = [a.lower().rstrip(".") for a in _ADDRESS_RE.findall(text)]
    skip = ("mailer-daemon@", "postmaster@")
    return tuple(dict.fromkeys(a for a in found if not a.startswith(skip)))[:1]


def _reason_line(text: str, status: str) -> str:
    for line in text.splitlines():
        if _DEAD.search(line) or _SOFT_WORDS.search(line) or (status and status in line):
            return _one_line(line)
    return status or "delivery failed"


def _rcpt_to(msg: email.message.Message) -> tuple[str, ...]:
    values: list[str] = []
    for name in ("X-Original-To", "Delivered-To", "Envelope-To", "To", "X-Envelope-To"):
        values.extend(str(v) for v in msg.get_all(name, []))
    return tuple(dict.fromkeys(a.lower() for _, a in email.utils.getaddresses(values) if "@" in a))


def _message_id(msg: email.message.Message) -> str:
    return _one_line(str(msg.get("Message-ID", "")))[:250]


def _header_text(value: object) -> str:
    text = str(value)
    with contextlib.suppress(UnicodeError):
        # Raw 8-bit bytes in a header (no RFC 2047) come from the parser as surrogates.
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    try:
        return str(make_header(decode_header(text)))
    except Exception:  # a badly encoded header is read as it stands
        return text


def _decode(value: bytes | str) -> str:
    return (value.decode("utf-8", "replace") if isinstance(value, bytes) else value).lower()


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]
