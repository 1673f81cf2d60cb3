"""Routes: /stats."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from publisher.api import models
from publisher.api.context import ApiContext, responses
from publisher.services import analytics, stats, subject_tests

__all__ = ["router"]

IssueId = Annotated[int, Path(ge=1, le=2**53)]


class LinkClicks(BaseModel):
    link_id: int
    url: str
    clicks: int
    unique_clicks: int | None = Field(description="Copies that clicked it; null when per-person analytics were off.")
    machine_clicks: int


class SubjectFigures(BaseModel):
    variant: int = Field(description="0 is the first subject, the one kept on a tie.")
    subject: str
    sent: int = Field(description="Copies of the sample accepted by the provider under this subject.")
    opens: int
    clicks: int
    rate: float = Field(description="Opens or clicks (the test's metric) per copy sent, 0 to 1.")
    low: float = Field(description="The rate's 95% Wilson interval, lower end.")
    high: float


class SubjectTestReport(BaseModel):
    subjects: list[str]
    sample_percent: int
    metric: str = Field(description="clicks or opens: what the winner is chosen by.")
    decide_at: str
    variants: list[SubjectFigures]
    decided_at: str | None
    winner: int | None = Field(description="The variant the rest got; null until decided.")
    reason: str = Field(description="Why that subject: the margin and p-value, or why the first was kept.")
    held: int = Field(description="Readers still waiting for the winner.")


class IssueEngagement(BaseModel):
    issue_id: int
    opens: int = Field(description="Readers' picture requests; machines (Apple's proxy, scanners) are apart.")
    unique_opens: int | None = Field(
        description="Copies opened (by the picture or a click), each once however often; null for mail sent "
        "before copies were counted once."
    )
    clicks: int
    unique_clicks: int | None = Field(description="Copies that clicked, each once however often.")
    machine_opens: int
    machine_clicks: int
    machine_share: float = Field(description="Part of all requests that machines made, 0 to 1.")
    machine_reasons: dict[str, int]
    noted_opens: dict[str, int] = Field(description="Readers' opens through a proxy, such as Gmail's, by proxy.")
    links: list[LinkClicks] = Field(description="The issue's links, most clicked first.")
    subject_test: SubjectTestReport | None = Field(default=None, description="The issue's subject test, if any.")


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

    @api.get("/stats/issues/{issue_id}/engagement", response_model=IssueEngagement, responses=responses(404))
    def engagement(issue_id: IssueId) -> IssueEngagement:
        """Opens and clicks (analytics.enabled), per link, with machine traffic counted apart."""
        t = analytics.issue_totals(db, issue_id)
        tested = subject_tests.report(db, issue_id)
        return IssueEngagement(
            issue_id=issue_id, opens=t.opens, unique_opens=t.unique_opens, clicks=t.clicks,
            unique_clicks=t.unique_clicks, machine_opens=t.machine_opens, machine_clicks=t.machine_clicks,
            machine_share=round(t.machine_share, 4), machine_reasons=dict(t.machine_reasons),
            noted_opens=dict(t.noted_opens),
            links=[LinkClicks(link_id=c.link_id, url=c.url, clicks=c.clicks, unique_clicks=c.unique_clicks,
                              machine_clicks=c.machine_clicks) for c in t.links],
            subject_test=None if tested is None else SubjectTestReport(
                subjects=list(tested.subjects), sample_percent=tested.sample_percent, metric=tested.metric,
                decide_at=tested.decide_at.isoformat(),
                variants=[SubjectFigures(variant=f.variant, subject=f.subject, sent=f.sent, opens=f.opens,
                                         clicks=f.clicks, rate=round(f.rate, 4), low=round(f.interval[0], 4),
                                         high=round(f.interval[1], 4)) for f in tested.figures],
                decided_at=tested.decided_at.isoformat() if tested.decided_at else None,
                winner=tested.winner, reason=tested.reason, held=tested.held,
            ),
        )

    return api
