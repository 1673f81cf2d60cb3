"""Who an issue went to, and what a reader received: the ledger's copies, a page at a time.

Each copy is told in plain words (`Copy.words`): the ledger's state ("accepted by the
provider", "waiting", "retrying", "failed: <the provider's reason>"), then what its reader
did about this issue (bounced, complained, unsubscribed from this message), as Home's
counts and the issue's report count them. "Accepted" is never called "delivered": the
providers here do not report delivery back.

Pages are keyset pages on the ledger row's id (`after` for an issue's readers, in id
order; `before` for a reader's issues, newest first), never counted: see
`publisher.store.ledger.reading` for what a page reads. An erased reader's copy stays,
without their address (`Copy.erased`).

Errors: NotFound for an unknown issue; InvalidRequest for an unknown state filter or a
page length out of range.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from publisher.errors import InvalidRequest
from publisher.numbers import plain_int
from publisher.services import paging
from publisher.store import ledger
from publisher.store.ledger import reading
from publisher.store.ledger.reading import Copy, CopyReaction
from publisher.store.ledger.rows import FAILED, HELD, QUEUED, RETRY, SENDING, SENT, SKIPPED

__all__ = [
    "FILTERS",
    "MAX_PAGE",
    "Copy",
    "CopyReaction",
    "IssueReaders",
    "ReaderIssues",
    "issue_readers",
    "parse_cursor",
    "reader_issues",
    "words",
]

MAX_PAGE = 200
_ADDRESS_LONGEST = 320

FILTERS: dict[str, str] = {
    "sent": "Accepted by the provider",
    "waiting": "Waiting",
    "retrying": "Retrying",
    "failed": "Failed",
    "skipped": "Not sent",
    "bounced": "Bounced",
    "complained": "Complained",
    "unsubscribed": "Unsubscribed from this message",
}
"""The states a list of an issue's readers can be filtered by, as the filter names them."""

_STATES = {
    "sent": (SENT,),
    "waiting": (QUEUED, HELD, SENDING),
    "retrying": (RETRY,),
    "failed": (FAILED,),
    "skipped": (SKIPPED,),
}
_REACTIONS = {"bounced": "bounce", "complained": "complaint", "unsubscribed": "unsubscribe"}


@dataclass(frozen=True, slots=True)
class IssueReaders:
    """A page of the readers an issue went (or goes) to, in the order they were queued."""

    copies: tuple[Copy, ...]
    has_more: bool
    looked_to: int | None = None
    """A search stopped after this ledger row without filling the page: look further from it."""

    @property
    def next_after(self) -> int | None:
        return paging.next_after(self.copies[-1].id if self.copies else None, has_more=self.has_more,
                                 looked_to=self.looked_to)


@dataclass(frozen=True, slots=True)
class ReaderIssues:
    """A page of the copies one reader was sent, newest first."""

    copies: tuple[Copy, ...]
    has_more: bool

    @property
    def next_before(self) -> int | None:
        return self.copies[-1].id if self.has_more and self.copies else None


def _limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit must be between 1 and {MAX_PAGE}, got {limit}")


def parse_cursor(text: str, *, of: str = "a ledger row") -> int | None:
    """A page's cursor as a link carries it: "" for the first page, else the number of `of`
    (InvalidRequest for anything else: another script's digits such as "²", which
    str.isdigit takes and int refuses, or more digits than a row's number can have)."""
    if not text:
        return None
    number = plain_int(text)
    if number is None:
        raise InvalidRequest(f"a page starts after {of}'s number, got {text[:40]!r}")
    return number


def issue_readers(
    db: Engine, issue_id: int, *, state: str = "", search: str = "", after: int | None = None, limit: int = 50
) -> IssueReaders:
    """A page of the issue's copies after the ledger row `after`: all of them, or those in
    `state` (a key of FILTERS), whose address holds `search`. NotFound for an unknown issue."""
    _limit(limit)
    if state and state not in FILTERS:
        raise InvalidRequest(f"unknown state {state!r}: choose one of {', '.join(FILTERS)}")
    ledger.get_issue(db, issue_id)  # NotFound for an unknown issue
    search = search.strip()
    if len(search) > _ADDRESS_LONGEST or "\x00" in search:
        # No address is that long or holds a NUL (which PostgreSQL's text cannot even compare).
        return IssueReaders(copies=(), has_more=False)
    copies, more, looked_to = reading.copies_of_issue(
        db,
        issue_id,
        states=_STATES.get(state, reading.STATES),
        reaction=_REACTIONS.get(state),
        search=search,
        after=after or 0,
        limit=limit,
    )
    return IssueReaders(copies=tuple(copies), has_more=more, looked_to=looked_to)


def reader_issues(db: Engine, subscriber_id: int, *, before: int | None = None, limit: int = 50) -> ReaderIssues:
    """A page of the reader's copies before the ledger row `before`, newest first."""
    _limit(limit)
    copies, more = reading.copies_for_reader(db, subscriber_id, before=before, limit=limit)
    return ReaderIssues(copies=tuple(copies), has_more=more)


_SAID = {
    "bounce": "bounced",
    "complaint": "complained",
    "unsubscribe": "unsubscribed from this message",
}


def words(copy: Copy) -> str:
    """The copy's state in plain words, with the provider's reason where there is one, then
    its reader's reactions to the issue: "accepted by the provider; bounced (550 no such user)"."""
    reason = copy.detail.strip()
    if copy.state == SENT:
        said = "accepted by the provider"
    elif copy.state == QUEUED:
        said = "waiting"
    elif copy.state == HELD:
        said = "waiting for the subject test's winner"
    elif copy.state == SENDING:
        said = "being handed to the provider"
    elif copy.state == RETRY:
        said = f"retrying after {copy.attempts} attempt{'' if copy.attempts == 1 else 's'}"
        said += f" ({reason})" if reason else ""
    elif copy.state == FAILED:
        said = f"failed: {reason}" if reason else "failed"
    elif copy.state == SKIPPED:
        said = f"not sent: {reason}" if reason else "not sent: the reader left before it went"
    else:
        said = copy.state
    if copy.uncertain:
        said += "; may have reached them twice (a sender stopped while it was in flight)"
    for reaction in copy.reactions:
        said += f"; {_SAID.get(reaction.kind, reaction.kind)}"
        if reaction.kind == "bounce" and reaction.detail.strip():
            said += f" ({reaction.detail.strip()})"
    return said
