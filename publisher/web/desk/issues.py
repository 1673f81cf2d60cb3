"""Issues: each send's status with live counts, its pace, its failures, the email as sent.

    GET /desk/issues                       every issue, newest first
    GET /desk/issues/{id:int}              counts, each with its reasons (owners also see the
                                           readers' addresses), deliveries per minute, failures, the email
    GET /desk/issues/{id:int}/readers      who it went (or goes) to, a page at a time: each copy's
                                           state in words, filtered by state, searched by address
    GET /desk/issues/{id:int}/counts       the counts as JSON (the page's script polls it while sending)
    GET /desk/issues/{id:int}/email        the email as sent, for a sandboxed frame
    POST /desk/issues/{id:int}/retry       send the failed copies again (editors)
"""

from __future__ import annotations

import functools
from dataclasses import asdict
from typing import Any
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from publisher.accounts import Role
from publisher.errors import NotFound, PublisherError
from publisher.services import analytics, bounce_intake, complaints, previews, recipients, stats, subject_tests
from publisher.services import issues as issue_service
from publisher.web.desk.auth import Asked, refuse
from publisher.web.desk.charts import Series, bar_chart
from publisher.web.desk.render import PREVIEW_HEADERS
from publisher.web.desk.section import Section

__all__ = ["IssueDesk"]

FAILURES_SHOWN = 200
READERS_PAGE = 50
TOP_LINKS = 10
"""Links listed on an issue's page, most clicked first; the API lists them all."""


class IssueDesk(Section):
    def routes(self) -> list[BaseRoute]:
        guard = self.auth.guarded
        return [
            Route("/issues", guard(self.index, Role.VIEWER), methods=["GET", "HEAD"]),
            Route("/issues/{id:int}", self.auth.reading(self.detail, Role.VIEWER), methods=["GET", "HEAD"]),
            Route("/issues/{id:int}/readers", self.auth.reading(self.readers, Role.VIEWER), methods=["GET", "HEAD"]),
            Route("/issues/{id:int}/counts", guard(self.counts, Role.VIEWER), methods=["GET", "HEAD"]),
            Route("/issues/{id:int}/email", guard(self.email, Role.VIEWER), methods=["GET", "HEAD"]),
            Route("/issues/{id:int}/retry", guard(self.retry, Role.EDITOR), methods=["POST"]),
        ]

    async def retry(self, asked: Asked) -> Response:
        issue_id = asked.request.path_params["id"]
        try:
            await run_in_threadpool(lambda: issue_service.retry_failed(self.engine, issue_id, now=asked.now))
        except PublisherError as exc:
            return refuse(404, str(exc))
        return RedirectResponse(f"/desk/issues/{issue_id}?m=retrying", status_code=303)

    async def index(self, asked: Asked) -> Response:
        found = await run_in_threadpool(issue_service.issue_status, self.engine)
        return self.pages.render("issues", asked.desk, section="issues", issues=found)

    def _detail(self, issue_id: int, addresses: bool) -> dict[str, Any]:
        report = stats.issue_report(self.engine, issue_id, addresses=addresses, shown=FAILURES_SHOWN)
        line, after, pace = report.status, report.counts, report.pace
        chart, pace_local = _pace(pace, self.config.tz)
        return {
            "line": line, "after": after, "reasons": report.reasons, "pace": list(pace), "chart": chart,
            # The table under the chart reads the minutes on the same clock as its labels.
            "pace_local": pace_local,
            "zone": self.config.tz.key, "failures": report.failures,
            "complaint_rate": complaints.ComplaintRate(
                complaints=after.complained, accepted=line.sent, over="this issue"
            ),
            "overrides": complaints.issue_overrides(self.engine, issue_id),
            "came_back": bounce_intake.issue_mail(self.engine, issue_id),
            "subject_test": subject_tests.report(self.engine, issue_id),
        }

    def _engagement(self, issue_id: int) -> dict[str, Any]:
        """Opens and clicks for the report: shown when analytics are on, or were when it went."""
        totals = analytics.issue_totals(self.engine, issue_id)
        counted = totals.opens + totals.clicks + totals.machine_opens + totals.machine_clicks
        if not (self.config["analytics.enabled"] or counted):
            return {"engagement": None, "engagement_chart": "", "top_links": ()}
        chart = bar_chart(
            "Opens and clicks: readers and machines", ["Opens", "Clicks"],
            [Series("readers", (totals.opens, totals.clicks)),
             Series("machines", (totals.machine_opens, totals.machine_clicks))],
        )
        return {"engagement": totals, "engagement_chart": chart, "top_links": totals.links[:TOP_LINKS]}

    def detail(self, asked: Asked) -> Response:
        issue_id = asked.request.path_params["id"]
        try:
            view = {**self._detail(issue_id, asked.desk.can(Role.OWNER)), **self._engagement(issue_id)}
        except PublisherError as exc:
            return refuse(404, str(exc))
        return self.pages.render(
            "issue", asked.desk, section="issues",
            can_write=asked.desk.can(Role.EDITOR), **view,
        )

    def readers(self, asked: Asked) -> Response:
        """Its own page, not the report's: the report reads a few kept counts however many
        readers there are, and this reads one page of the ledger, only when asked."""
        issue_id = asked.request.path_params["id"]
        query = asked.request.query_params
        state = query.get("state", "")
        search = query.get("q", "").strip()
        after = query.get("after", "")
        try:
            line = issue_service.get_issue(self.engine, issue_id)
            page = recipients.issue_readers(
                self.engine, issue_id, state=state, search=search,
                after=recipients.parse_cursor(after), limit=READERS_PAGE,
            )
        except NotFound as exc:
            return refuse(404, str(exc))
        except PublisherError as exc:
            return refuse(400, str(exc))
        return self.pages.render(
            "issue_readers", asked.desk, section="issues", line=line, page=page, state=state, q=search,
            filters=recipients.FILTERS, words=recipients.words,
        )

    async def counts(self, asked: Asked) -> Response:
        try:
            (line,) = await run_in_threadpool(issue_service.issue_status, self.engine, asked.request.path_params["id"])
        except PublisherError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        data = asdict(line)
        data["created_at"] = line.created_at.isoformat()
        data["remaining"] = line.remaining
        return JSONResponse(data, headers={"cache-control": "no-store"})

    def _email(self, issue_id: int) -> str:
        return previews.issue_email(self.config, self.engine, issue_id)

    async def email(self, asked: Asked) -> Response:
        try:
            html = await run_in_threadpool(self._email, asked.request.path_params["id"])
        except PublisherError as exc:
            return refuse(404, str(exc))
        return HTMLResponse(html, headers=PREVIEW_HEADERS)


@functools.lru_cache(maxsize=32)
def _pace(pace: tuple[stats.MinuteCount, ...], zone: ZoneInfo) -> tuple[str, tuple[tuple[str, int], ...]]:
    """The pace's chart, and its table's lines (the minute in `zone`, written out, and the
    copies sent): kept for the next look, as a send's past minutes do not change."""
    local = [m.minute.astimezone(zone) for m in pace]
    chart = bar_chart(
        "Messages sent per minute", [f"{t:%H:%M}" for t in local], [Series("sent", tuple(m.sent for m in pace))]
    ) if pace else ""
    return chart, tuple((f"{t:%Y-%m-%d %H:%M}", m.sent) for t, m in zip(local, pace, strict=True))
