"""Routes: /stats."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from publisher.api import models
from publisher.api.context import ApiContext, responses
from publisher.services import stats

__all__ = ["router"]

IssueId = Annotated[int, Path(ge=1, le=2**53)]


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter(tags=["stats"], dependencies=[Depends(ctx.auth.scope("stats:read"))])
    db = ctx.db

    @api.get("/stats/subscribers", response_model=models.DayList, responses=responses())
    def per_day(days: Annotated[int, Query(ge=1, le=stats.MAX_DAYS)] = 30) -> models.DayList:
        """Per UTC day, oldest first: joined, confirmed, left, bounced, complained."""
        lines = stats.subscriber_days(db, now=ctx.clock(), days=days)
        return models.DayList(data=[models.DayCounts(day=d.day, joined=d.joined, confirmed=d.confirmed,
                                                     left=d.left, bounced=d.bounced, complained=d.complained)
                                    for d in lines])

    @api.get("/stats/issues/{issue_id}", response_model=models.IssueStats, responses=responses(404))
    def per_issue(issue_id: IssueId) -> models.IssueStats:
        """Copies sent (accepted by the provider) and failed, the bounces and complaints recorded
        for this issue, and the readers who left by a link in its own message."""
        c = stats.issue_counts(db, issue_id)
        return models.IssueStats(issue_id=c.issue_id, sent=c.sent, deferred=c.deferred, failed=c.failed,
                                 bounced=c.bounced, complained=c.complained, unsubscribed=c.unsubscribed)

    @api.get("/stats/issues/{issue_id}/pace", response_model=models.MinuteList, responses=responses(404))
    def pace(issue_id: IssueId) -> models.MinuteList:
        """Copies sent per UTC minute of the send."""
        return models.MinuteList(data=[models.MinuteCount(minute=m.minute, sent=m.sent)
                                       for m in stats.send_pace(db, issue_id)])

    return api
