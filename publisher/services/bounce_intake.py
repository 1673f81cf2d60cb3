"""Bounces and complaints that arrive as mail: one message in, one decision out.

Every way a bounce reaches us over plain SMTP ends here: the pipe a local MTA runs
(`publisher bounces ingest`), and the mailbox reader. `take_message` reads one raw
message, classifies it (`publisher.mail.bounce_parse`), finds whom it is about, and
acts:

    hard bounce       the address is suppressed at once
    soft bounce       counted; suppressed once `bounces.soft_limit` of them fall within
                      `bounces.soft_window_days`
    complaint         the reader is unsubscribed (status complained), counted for the issue
    auto-reply        nothing: a holiday notice is not a bounce
    unclear           kept for a person to decide on the desk's Bounces page

Whom it is about: the VERP return path (`publisher.mail.verp`) when the message came
back to one, checked against its signature; a return path whose signature does not
verify is a forgery and changes nothing (logged). With VERP off, the address the report
names (Final-Recipient, Original-Recipient), and the issue is that reader's latest copy.
With VERP on, a report about a subscriber that carries no signed return path at all (a
copy sent before it was turned on, or a forgery that left the token out) acts on no one
by itself: it waits for review, since anyone can write a bounce naming any address.

Every message taken is recorded once, with its decision and (capped) its bytes, keyed by
its Message-ID, or by a hash of its bytes when it has none: the same message taken
twice (an MTA's retry, a mailbox read again after a dropped connection) records one
decision. A bad message (malformed MIME, oversized, in any language) is never an error:
it gets an outcome. Only a store that cannot be reached raises (`PublisherError`), so
that the caller can give the message back to be tried later.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from typing import Literal

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from publisher.config import Config
from publisher.errors import Conflict, InvalidRequest, NotFound, StoreError, SubscriberError, TokenError
from publisher.mail import tokens, verp
from publisher.mail.bounce_parse import Verdict, classify
from publisher.models import Subscriber
from publisher.store import bounce_review, subscribers
from publisher.store.bounce_review import BounceMessage

__all__ = [
    "DECISIONS",
    "EVENT_PROVIDER",
    "MAX_MESSAGE",
    "OUTCOMES",
    "BounceMessage",
    "Decision",
    "Intake",
    "Outcome",
    "apply_decision",
    "history",
    "issue_mail",
    "message",
    "return_path_records",
    "review_count",
    "review_queue",
    "take_message",
]

log = logging.getLogger(__name__)

Outcome = Literal["suppressed", "counted", "complaint", "not_a_bounce", "forged", "unknown_subscriber", "review"]
OUTCOMES: tuple[Outcome, ...] = (
    "suppressed", "counted", "complaint", "not_a_bounce", "forged", "unknown_subscriber", "review",
)
EVENT_PROVIDER = "bounce-mail"
"""The `provider` of the events these decisions record (a pipe and a mailbox alike, so the
same message through both is one event)."""
MAX_MESSAGE = 25 * 1024 * 1024
"""Bytes of one message a door hands in at most (larger ones are discarded by the door)."""
_READ_LIMIT = 2 * 1024 * 1024
"""Bytes of a message classified: a report says what it is at the top; a 20 MB
attachment quoted under it is not read."""
_AFTER_ISSUE = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Intake:
    """What became of one message."""

    outcome: Outcome
    address: str | None
    issue_id: int | None
    detail: str


def take_message(config: Config, db: Engine, raw: bytes, *, now: datetime, source: str) -> Intake:
    """Classify one raw message and act on it (see the module's table); `source` names the
    door it came by ("pipe", "imap", ...) and is recorded with the decision.

    Never raises for the message itself; raises PublisherError only when the store cannot
    be reached, so the caller may try the same message again later.
    """
    try:
        return _take(config, db, raw, now=now, source=source)
    except SQLAlchemyError as exc:
        raise StoreError(
            f"the store cannot be reached, so the bounce was not taken ({type(exc).__name__}); "
            "it is safe to hand the same message in again later"
        ) from exc


def _key(raw: bytes) -> str:
    try:
        mid = str(BytesHeaderParser().parsebytes(raw[:256 * 1024]).get("Message-ID", "") or "").strip()
    except Exception:  # a header block too broken to read: the bytes are the key
        mid = ""
    if mid:
        return hashlib.sha256(b"mid\0" + mid.encode("utf-8", "replace")).hexdigest()
    return hashlib.sha256(b"raw\0" + raw).hexdigest()


def _take(config: Config, db: Engine, raw: bytes, *, now: datetime, source: str) -> Intake:
    key = _key(raw)
    known = bounce_review.find(db, key)
    if known is not None:
        return Intake(_outcome(known.outcome), known.address, known.issue_id, f"taken before: {known.detail}")
    head = raw[:_READ_LIMIT]
    verdict = classify(head)
    size_note = f" (only the first {_READ_LIMIT // 1024 // 1024} MB of {len(raw):,} bytes read)" if len(raw) > len(
        head) else ""
    row = {"key": key, "received_at": now, "source": source[:32], "kind": verdict.kind,
           "status": verdict.status[:16], "size": len(raw)}

    def done(outcome: Outcome, address: str | None, subscriber_id: int | None, issue_id: int | None,
             detail: str) -> Intake:
        detail = (detail + size_note)[:2000]
        stored, _ = bounce_review.record(
            db, raw=raw, outcome=outcome, address=address, subscriber_id=subscriber_id, issue_id=issue_id,
            detail=detail, **row,
        )
        return Intake(_outcome(stored.outcome), stored.address, stored.issue_id, stored.detail)

    message_key: str | None = None
    issue_id: int | None = None
    subscriber: Subscriber | None = None
    domain = str(config["bounces.return_path_domain"]).strip().lower()
    token = verp.find_token(list(verdict.rcpt_to), domain, text=head[:1024 * 1024].decode("latin-1")) if domain else ""
    if token:
        secret = tokens.resolve_secret(config, real_provider=config["delivery.provider"] != "maildir")
        try:
            message_key = verp.read(secret, token)
        except TokenError as exc:
            log.warning("bounce from %s ignored: return path bounces+%s@%s: %s", source, token, domain, exc)
            return done("forged", _first(verdict), None, None,
                        f"ignored: the return path's signature does not match ({verdict.kind}, {verdict.reason})")
        copy = bounce_review.copy_for_key(db, message_key)
        if copy is not None:
            issue_id = copy.issue_id
            if copy.subscriber_id is None:
                return done("unknown_subscriber", None, None, issue_id,
                            f"{verdict.kind}: the reader this message went to was erased since")
            subscriber = subscribers.get(db, copy.subscriber_id)
    if verdict.kind in ("auto_reply", "not_a_bounce"):
        address = subscriber.email if subscriber else _first(verdict)
        return done("not_a_bounce", address, subscriber.id if subscriber else None, issue_id,
                    f"not a bounce: {verdict.reason}")
    if subscriber is None and verdict.addresses:
        subscriber = _find(db, verdict.addresses[0])
    address = subscriber.email if subscriber else _first(verdict)
    if verdict.kind == "unknown":
        return done("review", address, subscriber.id if subscriber else None, issue_id,
                    f"kept for review: {verdict.reason}")
    if subscriber is None:
        return done("unknown_subscriber", address, None, issue_id,
                    f"{verdict.kind}: {verdict.reason}; no subscriber has this address")
    if issue_id is None:
        issue_id = bounce_review.latest_issue(db, subscriber.id, now=now, within=_AFTER_ISSUE)
    if domain and message_key is None:
        return done("review", address, subscriber.id, issue_id,
                    f"kept for review: a {verdict.kind} report ({verdict.reason}) without a signed return path: "
                    "a copy sent before bounces.return_path_domain was set, or a forgery")
    before = subscriber.status.value
    return _act(config, db, verdict, subscriber, issue_id, message_key, key, before, now, done)


_Done = Callable[[Outcome, "str | None", "int | None", "int | None", str], Intake]


def _act(
    config: Config, db: Engine, verdict: Verdict, subscriber: Subscriber, issue_id: int | None,
    message_key: str | None, key: str, before: str, now: datetime, done: _Done,
) -> Intake:
    """Hard, soft or complaint, for a known reader."""
    why = f"{verdict.status + ' ' if verdict.status and verdict.status not in verdict.reason else ''}{verdict.reason}"
    already = f" (was {before} already)" if before not in ("active", "pending") else ""
    if verdict.kind == "soft":
        intake = done("counted", subscriber.email, subscriber.id, issue_id, f"soft bounce: {why}")
        window = int(config["bounces.soft_window_days"])
        limit = int(config["bounces.soft_limit"])
        count = bounce_review.soft_count(db, subscriber.email, since=now - timedelta(days=window))
        if count < limit:
            return Intake("counted", intake.address, intake.issue_id,
                          f"soft bounce {count} of {limit} within {window} days: {why}")
        detail = f"suppressed after {count} soft bounces within {window} days; the last: {why}{already}"
        _suppress(db, subscriber.email, "bounce", detail, now, key, message_key)
        stored = bounce_review.find(db, key)
        if stored is not None:
            bounce_review.set_outcome(db, stored.id, "suppressed", detail[:2000])
        return Intake("suppressed", subscriber.email, issue_id, detail)
    kind = "complaint" if verdict.kind == "complaint" else "bounce"
    detail = (f"complaint: {why}" if kind == "complaint" else f"hard bounce: {why}") + already
    _suppress(db, subscriber.email, kind, detail, now, key, message_key)
    return done("complaint" if kind == "complaint" else "suppressed", subscriber.email, subscriber.id, issue_id, detail)


Decision = Literal["hard", "soft", "complaint", "ignore"]
DECISIONS: tuple[Decision, ...] = ("hard", "soft", "complaint", "ignore")


def apply_decision(
    config: Config, db: Engine, message_id: int, decision: str, *, who: str, now: datetime
) -> Intake:
    """A person's decision on a message of the review queue: apply it as a hard bounce, a
    soft one or a complaint, or ignore it. Each message is decided once (Conflict after)."""
    if decision not in DECISIONS:
        raise InvalidRequest(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
    message = bounce_review.get(db, message_id)
    if message is None:
        raise NotFound(f"no bounce message {message_id} in the review queue")
    if message.outcome != "review" or message.decided_at is not None:
        raise Conflict(f"bounce message {message_id} was decided already ({message.decision or message.outcome})")
    subscriber = _find(db, message.address) if message.address else None
    if decision != "ignore" and subscriber is None:
        raise InvalidRequest(
            f"bounce message {message_id} names no subscriber's address, so it can only be ignored"
        )
    outcome: Outcome = {"hard": "suppressed", "complaint": "complaint", "soft": "counted"}.get(
        decision, "not_a_bounce")  # type: ignore[assignment]
    if not bounce_review.decide(db, message_id, decision, who=who, now=now, outcome=outcome):
        raise Conflict(f"bounce message {message_id} was decided already")
    if subscriber is None:
        return Intake("not_a_bounce", message.address, message.issue_id, f"ignored by {who}")
    detail = f"{decision} by {who}: {message.detail}"
    if decision in ("hard", "complaint"):
        kind = "complaint" if decision == "complaint" else "bounce"
        _suppress(db, subscriber.email, kind, detail, now, message.key, None)
        return Intake(outcome, subscriber.email, message.issue_id, detail)
    if decision == "soft":
        window = int(config["bounces.soft_window_days"])
        limit = int(config["bounces.soft_limit"])
        count = bounce_review.soft_count(db, subscriber.email, since=now - timedelta(days=window))
        if count >= limit:
            detail = f"suppressed after {count} soft bounces within {window} days (the last decided by {who})"
            _suppress(db, subscriber.email, "bounce", detail, now, message.key, None)
            bounce_review.set_outcome(db, message_id, "suppressed", detail)
            return Intake("suppressed", subscriber.email, message.issue_id, detail)
        return Intake("counted", subscriber.email, message.issue_id, detail)
    return Intake("not_a_bounce", subscriber.email, message.issue_id, f"ignored by {who}")


def _suppress(db: Engine, address: str, kind: str, detail: str, now: datetime, key: str,
              message_key: str | None) -> None:
    subscribers.suppress(db, address, kind, provider=EVENT_PROVIDER, detail=detail[:1000], now=now,
                         event_key=key, message_key=message_key)


def _find(db: Engine, address: str) -> Subscriber | None:
    try:
        return subscribers.find(db, address)
    except SubscriberError:
        return None


def _first(verdict: Verdict) -> str | None:
    return verdict.addresses[0][:320] if verdict.addresses else None


def _outcome(value: str) -> Outcome:
    for outcome in OUTCOMES:
        if outcome == value:
            return outcome
    return "review"


def review_queue(db: Engine, *, limit: int = 100) -> list[BounceMessage]:
    """The messages no rule could read, oldest first, for a person to decide on."""
    return bounce_review.pending(db, limit=limit)


def review_count(db: Engine) -> int:
    """How many messages wait for a person."""
    return bounce_review.pending_count(db)


def message(db: Engine, message_id: int) -> BounceMessage:
    """One message taken, with its kept bytes; NotFound when there is none by that id."""
    found = bounce_review.get(db, message_id, raw=True)
    if found is None:
        raise NotFound(f"no bounce message {message_id}")
    return found


def history(db: Engine, subscriber_id: int, address: str) -> list[BounceMessage]:
    """The messages that came back about one reader, newest first (soft bounces included,
    which no event records)."""
    return bounce_review.for_subscriber(db, subscriber_id, address)


def return_path_records(config: Config) -> tuple[verp.DnsRecord, ...]:
    """The DNS records the return-path domain needs (none while VERP is off): the MX of
    `bounces.mx_host`, and SPF naming the SMTP host where the mail leaves through one."""
    domain = str(config["bounces.return_path_domain"]).strip().lower()
    sending_host = str(config["delivery.smtp.host"]) if config["delivery.provider"] == "smtp" else ""
    return verp.bounce_domain_records(domain, mx_host=str(config["bounces.mx_host"]).strip(),
                                      sending_host=sending_host)


def issue_mail(db: Engine, issue_id: int) -> dict[str, int]:
    """What came back by mail about one issue, by outcome (soft bounces counted, auto-replies
    and messages waiting for review included, which the issue's events do not show)."""
    return bounce_review.outcomes_for_issue(db, issue_id)
