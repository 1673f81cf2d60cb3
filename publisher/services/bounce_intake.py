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
verify is a forgery and changes nothing (logged). Without one, the address the report
names (Final-Recipient, Original-Recipient), and the issue is that reader's latest copy.

Every message taken is recorded once, with its decision and (capped) its bytes, keyed by
its Message-ID, or by a hash of its bytes when it has none: the same message taken
twice (an MTA's retry, a mailbox read again after a dropped connection) records one
decision. A bad message (malformed MIME, oversized, in any language) is never an error:
it gets an outcome. Only a store that cannot be reached raises (`PublisherError`), so
that the caller can give the message back to be tried later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Engine

from publisher.config import Config

__all__ = ["OUTCOMES", "Intake", "Outcome", "take_message"]

Outcome = Literal["suppressed", "counted", "complaint", "not_a_bounce", "forged", "unknown_subscriber", "review"]
OUTCOMES: tuple[Outcome, ...] = (
    "suppressed", "counted", "complaint", "not_a_bounce", "forged", "unknown_subscriber", "review",
)


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
    raise NotImplementedError("bounce intake is being built")
