"""Opens and clicks as the author may count them: record a request, read an issue's numbers.

The faces call these: the public app for `/o/...gif` and `/c/...`, the desk's issue page
and `GET /api/v1/stats/issues/{id}/engagement`. A token that does not verify counts
nothing and leads nowhere (`click` returns None). Requests are read by
`machine_traffic` and kept apart with their reason. A reader's request is also counted
once per copy, with the subject the copy carried (read from its ledger row), whether or
not per-person analytics are on: that is what unique opens and a subject test's decision
read. Only while per-person analytics are on do the rows name the copy (see
`publisher.store.engagement`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, Select, bindparam, select

from publisher.config import Config
from publisher.errors import NotFound, TokenError
from publisher.mail import tracking
from publisher.services import machine_traffic
from publisher.store import engagement
from publisher.store.engine import reader
from publisher.store.schema import deliveries, issues, links

__all__ = ["PIXEL", "Request", "click", "issue_totals", "open_", "reader_summary"]

PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
"""A transparent 1x1 GIF, the same bytes for everyone."""


@dataclass(frozen=True, slots=True)
class Request:
    """What the app saw of one request."""

    method: str
    user_agent: str
    ip: str


@dataclass(frozen=True, slots=True)
class _Copy:
    delivery_id: int | None
    variant: int | None
    digest: str


def _copy(db: Engine, copy: tracking.Copy) -> _Copy:
    """The ledger row and subject of the copy a token names; nothing for a token naming none."""
    if not copy.message_key:
        return _Copy(None, None, "")
    with db.connect() as conn:
        found = conn.execute(
            select(deliveries.c.id, deliveries.c.variant).where(
                deliveries.c.message_key == copy.message_key, deliveries.c.issue_id == copy.issue_id
            )
        ).first()
    seen = engagement.digest(copy.issue_id, copy.message_key)
    if found is None:
        return _Copy(None, None, seen)
    return _Copy(int(found.id), None if found.variant is None else int(found.variant), seen)


def _issue_exists(db: Engine, issue_id: int) -> bool:
    with reader(db) as conn:
        return conn.execute(_issue_query(), {"issue_id": issue_id}).first() is not None


@functools.cache
def _issue_query() -> Select[tuple[int]]:
    """Built once: an issue's report asks on every request."""
    return select(issues.c.id).where(issues.c.id == bindparam("issue_id"))


def open_(config: Config, db: Engine, secret: str, token: str, request: Request, *, now: datetime) -> bool:
    """Count one pixel request; False (nothing counted) for a token that does not verify."""
    if not config["analytics.enabled"]:
        return False
    try:
        copy = tracking.verify_open(secret, token)
    except TokenError:
        return False
    if not _issue_exists(db, copy.issue_id):
        return False
    verdict = machine_traffic.classify_open(method=request.method, user_agent=request.user_agent, ip=request.ip)
    found = _copy(db, copy)
    delivery = found.delivery_id if config["analytics.per_person"] else None
    engagement.record(
        db, issue_id=copy.issue_id, kind=engagement.OPEN, at=now, delivery_id=delivery,
        machine=verdict.machine, reason=verdict.reason, copy=found.digest, variant=found.variant,
    )
    return True


def click(config: Config, db: Engine, secret: str, token: str, request: Request, *, now: datetime) -> str | None:
    """The URL a click link leads to, counted; None when the token does not verify or
    names no link of its issue (the app then shows a plain page, never a redirect).

    While analytics are off a valid link still leads on (mail sent while they were on
    keeps working) but nothing is counted.
    """
    try:
        target = tracking.verify_click(secret, token)
    except TokenError:
        return None
    url = engagement.link_url(db, target.copy.issue_id, target.link_id)
    if url is None or not config["analytics.enabled"]:
        return url
    found = _copy(db, target.copy)
    delivery = found.delivery_id if config["analytics.per_person"] else None
    recent: set[int] = set()
    if delivery is not None:
        recent = engagement.copy_clicks_since(db, delivery, now - timedelta(seconds=1))
    verdict = machine_traffic.classify_click(
        method=request.method, user_agent=request.user_agent, at=now, made_at=target.copy.made_at,
        scanner_seconds=int(config["analytics.scanner_seconds"]), link_id=target.link_id,
        clicked_last_second=recent, issue_links=_link_count(db, target.copy.issue_id),
    )
    engagement.record(
        db, issue_id=target.copy.issue_id, kind=engagement.CLICK, at=now, link_id=target.link_id,
        delivery_id=delivery, machine=verdict.machine, reason=verdict.reason,
        also_machine=recent if verdict.reason == "every_link_at_once" else (),
        copy=found.digest, variant=found.variant,
    )
    return url


def _link_count(db: Engine, issue_id: int) -> int:
    with db.connect() as conn:
        return len(conn.execute(select(links.c.link_id).where(links.c.issue_id == issue_id)).all())


def issue_totals(db: Engine, issue_id: int) -> engagement.Totals:
    """An issue's opens and clicks; NotFound for an unknown issue."""
    if not _issue_exists(db, issue_id):
        raise NotFound(f"no issue {issue_id}")
    return engagement.totals(db, issue_id)


def reader_summary(config: Config, db: Engine, subscriber_id: int, *, last: int = 5) -> tuple[int, int] | None:
    """(opened, sent) of a reader's last copies, or None when nothing is kept per person."""
    if not (config["analytics.enabled"] and config["analytics.per_person"]):
        return None
    return engagement.reader_history(db, subscriber_id, last=last)
