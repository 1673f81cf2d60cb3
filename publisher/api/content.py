"""Routes: /articles, /issues and /schedules."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Request, Response
from starlette.concurrency import run_in_threadpool

from publisher.api import models, problems
from publisher.api.auth import ApiRefusal, field_refusal
from publisher.api.context import ApiContext, IfMatch, etag, matches, responses, stale
from publisher.config import Config
from publisher.errors import Conflict
from publisher.services import articles, issues, scheduling, segments, subject_tests
from publisher.services.issues import LOCAL, IssueStatus, Schedule
from publisher.services.segments import IssueSegment

__all__ = ["router"]

Slug = Annotated[str, Path(max_length=200, description="The article's slug.")]
IssueId = Annotated[int, Path(ge=1, le=2**53, description="The issue's id.")]


def _issue(line: IssueStatus, segment: IssueSegment | None = None) -> models.Issue:
    return models.Issue(
        id=line.issue_id, key=line.key, slug=line.slug, subject=line.subject, status=line.status,
        created_at=line.created_at,
        counts=models.IssueCounts(
            queued=line.queued, sending=line.sending, sent=line.sent, retrying=line.retrying, failed=line.failed,
            skipped=line.skipped, uncertain=line.uncertain,
        ),
        segment=None if segment is None else models.IssueSegment(
            id=segment.segment_id, name=segment.name, count=segment.count
        ),
    )


def _schedule(item: Schedule) -> models.Schedule:
    return models.Schedule(
        id=item.id, issue_id=item.issue_id, slug=item.slug, subject=item.subject, run_at=item.run_at,
        timezone=item.timezone, wall_clock=item.local_time, local_time=item.timezone == LOCAL, state=item.state,
        detail=item.detail,
    )


def _check_when(default: ZoneInfo, at: str, zone: str | None, *, local_time: bool, now: datetime) -> None:
    """A 422 naming the field the service says cannot be read; whether the time suits the
    send is the service's to say, when it is asked to schedule."""
    unreadable = scheduling.unreadable_when(default, at, zone, local_time=local_time, now=now)
    if unreadable is not None:
        raise field_refusal(*unreadable)


def _subject_test(
    config: Config, body: models.SubjectTestFields, zone: str | None, *, now: datetime
) -> subject_tests.TestPlan | None:
    """The subject test a schedule's body asks for (None: `subjects` left out), checked by
    the rules the desk and the command line use; a 422 names a companion field given
    without `subjects`, or a wait and a decision time given both."""
    if body.subjects is None:
        alone = sorted(body.model_fields_set & {"subject_sample", "subject_wait", "subject_decide_at", "subject_by"})
        if alone:
            raise field_refusal(alone[0], "goes with subjects (two to four of them)")
        return None
    if body.subject_wait is not None and body.subject_decide_at is not None:
        raise field_refusal("subject_decide_at", "give subject_wait or subject_decide_at, not both")
    at = subject_tests.decision_time(config, body.subject_decide_at, zone) if body.subject_decide_at else None
    return subject_tests.parse_plan(
        body.subjects, sample_percent=body.subject_sample, metric=body.subject_by,
        wait=body.subject_wait or subject_tests.DEFAULT_WAIT, at=at, now=now,
    )


def _despite(request: Request, wanted: bool) -> str:
    """Who chose to send despite the complaint rate, as its record names them (the key), or
    403 for a key without the admin scope: in the desk too the choice is an owner's."""
    key = getattr(request.state, "api_key", None)
    if wanted and (key is None or "admin" not in key.scopes):
        raise ApiRefusal(problems.FORBIDDEN, "despite_complaints is an owner's choice: it needs a key with the "
                                             "admin scope")
    return f"API key {key.name!r}" if key is not None else "API"


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter()
    config, db = ctx.config, ctx.db
    read_issues = Depends(ctx.auth.scope("issues:read"))
    write_issues = Depends(ctx.auth.scope("issues:write"))
    write_articles = Depends(ctx.auth.scope("articles:write"))

    def detail(slug: str, response: Response) -> models.ArticleDetail:
        view = articles.get_article(config, db, slug, now=ctx.clock())
        text = (config.root / view.path).read_text(encoding="utf-8")
        response.headers["etag"] = etag(articles.fingerprint(text))
        return models.ArticleDetail(**models.Article.from_view(view).model_dump(), markdown=text)

    @api.get("/articles", tags=["articles"], response_model=models.ArticleList, responses=responses(),
             dependencies=[read_issues])
    def list_articles() -> models.ArticleList:
        """Every article, newest first, drafts included, with its state: draft, scheduled, published, sent."""
        views = articles.list_articles(config, db, now=ctx.clock())
        return models.ArticleList(data=[models.Article.from_view(v) for v in views])

    @api.get("/articles/{slug}", tags=["articles"], response_model=models.ArticleDetail, responses=responses(404),
             dependencies=[read_issues])
    def get_article(slug: Slug, response: Response) -> models.ArticleDetail:
        """The article with its Markdown file; its ETag is the file's fingerprint."""
        return detail(slug, response)

    @api.post("/articles", tags=["articles"], status_code=201, response_model=models.ArticleDetail,
              responses=responses(post=True), dependencies=[write_articles])
    def create_article(body: models.ArticleWrite, response: Response) -> models.ArticleDetail:
        """Write a new Markdown article into content/ (YYYY-MM-DD-slug.md); the file is the source of truth."""
        written = articles.write_article(config, body.markdown, now=ctx.clock(), db=db)
        return detail(written.article.slug, response)

    @api.put("/articles/{slug}", tags=["articles"], response_model=models.ArticleDetail,
             responses=responses(400, 404, 412), dependencies=[write_articles])
    def update_article(
        slug: Slug, body: models.ArticleWrite, response: Response, if_match: IfMatch = None
    ) -> models.ArticleDetail:
        """Replace the article's file, atomically; the text must keep its slug.

        With If-Match (the ETag of a GET), a file changed since is left as it is: 412.
        """
        expected = None
        if if_match is not None:
            view = articles.get_article(config, db, slug, now=ctx.clock())
            current = articles.fingerprint((config.root / view.path).read_text(encoding="utf-8"))
            if not matches(if_match, etag(current)):
                raise stale(if_match)
            expected = current
        try:
            articles.write_article(config, body.markdown, now=ctx.clock(), slug=slug, db=db, expected=expected)
        except Conflict as exc:
            if expected is None:
                raise
            raise stale(if_match or "", str(exc)) from exc
        return detail(slug, response)

    @api.get("/articles/{slug}/preview", tags=["articles"], response_model=models.Preview, responses=responses(404),
             dependencies=[read_issues])
    def preview(slug: Slug) -> models.Preview:
        """The article's newsletter, HTML and text, as a reader would get it."""
        shown = articles.preview(config, slug, now=ctx.clock())
        return models.Preview(slug=shown.slug, subject=shown.subject, html=shown.html, text=shown.text,
                              warnings=list(shown.warnings))

    @api.post("/articles/{slug}/schedule", tags=["articles"], status_code=201, response_model=models.Schedule,
              responses=responses(404, post=True), dependencies=[write_issues])
    def schedule_article(slug: Slug, body: models.ArticleScheduleCreate, request: Request) -> models.Schedule:
        """Send the article's newsletter at a time, as `publisher schedule SLUG --at ... --tz ...` does;
        `run_at` is the instant it goes, in UTC. A new time replaces the article's pending one.
        With `subjects`, the send starts as a subject test (refused with the reasons, 400, when it
        could not run: analytics off, a sample under 100 readers, a segment)."""
        now = ctx.clock()
        _check_when(config.tz, body.at, body.timezone, local_time=False, now=now)
        done = scheduling.schedule_send(
            config, db, slug, at=body.at, now=now, tz_name=body.timezone,
            despite_complaints=body.despite_complaints, who=_despite(request, body.despite_complaints),
            segment=body.segment, again=body.again,
            subject_test=_subject_test(config, body, body.timezone, now=now),
        )
        return _schedule(done.schedule)

    @api.get("/issues", tags=["issues"], response_model=models.IssueList, responses=responses(),
             dependencies=[read_issues])
    def list_issues() -> models.IssueList:
        """Every issue in the ledger, newest first, with its delivery counts."""
        return models.IssueList(
            data=[_issue(line, segments.issue_segment(db, line.issue_id)) for line in issues.issue_status(db)]
        )

    @api.post("/issues", tags=["issues"], status_code=201, response_model=models.Issue,
              responses=responses(404, post=True), dependencies=[write_issues])
    def create_issue(body: models.IssueCreate) -> models.Issue:
        """Render and freeze an issue (an article's, or a digest) without sending it."""
        return _issue(issues.create_issue(config, db, now=ctx.clock(), article=body.article, digest=body.digest or ()))

    @api.get("/issues/{issue_id}", tags=["issues"], response_model=models.Issue, responses=responses(404),
             dependencies=[read_issues])
    def get_issue(issue_id: IssueId) -> models.Issue:
        """The issue's delivery counts, and the segment it went to with the count that was sent."""
        return _issue(issues.get_issue(db, issue_id), segments.issue_segment(db, issue_id))

    @api.get("/issues/{issue_id}/failures", tags=["issues"], response_model=models.FailureList,
             responses=responses(404), dependencies=[read_issues])
    def failures(issue_id: IssueId) -> models.FailureList:
        """Each recipient whose copy failed for good or waits for another try, with the reason."""
        issues.get_issue(db, issue_id)  # NotFound for an unknown id (a number is never read as a slug)
        found = issues.issue_failures(db, issue_id, rows=True)
        return models.FailureList(data=[
            models.Failure(email=f.email, state=f.state, attempts=f.attempts, reason=f.reason, next_try=f.next_try)
            for f in found.rows
        ])

    @api.post("/issues/{issue_id}/test", tags=["issues"], response_model=models.TestSent,
              responses=responses(404, 422, 502, post=True), dependencies=[write_issues])
    async def test_send(issue_id: IssueId, body: models.TestSend) -> models.TestSent:
        """Send one copy to each address (at most 10); the ledger is not touched."""

        def run() -> str:
            slug = issues.article_slug(db, issue_id)
            issues.test_send(config, slug, body.addresses, now=ctx.clock(), provider_factory=ctx.provider_factory)
            return slug

        slug = await run_in_threadpool(run)
        return models.TestSent(slug=slug, addresses=body.addresses)

    @api.post("/issues/{issue_id}/send", tags=["issues"], status_code=202, response_model=models.Queued,
              responses=responses(404, post=True), dependencies=[write_issues])
    def send_now(issue_id: IssueId, request: Request, body: models.SendNow | None = None) -> models.Queued:
        """Queue the issue for every active subscriber who has not had it; `publisher serve` delivers it.

        A complaint rate of 0.3% or more over the last 30 days (from 1,000 messages) stops it
        (400, the rate named) unless `despite_complaints` is true."""
        despite = body is not None and body.despite_complaints
        added = issues.send_issue(
            config, db, issue_id, now=ctx.clock(), despite_complaints=despite, who=_despite(request, despite),
            segment=body.segment if body is not None else None, again=body is not None and body.again,
        )
        return models.Queued(issue_id=issue_id, added=added)

    @api.post("/issues/{issue_id}/schedule", tags=["issues"], status_code=201, response_model=models.Schedule,
              responses=responses(404, post=True), dependencies=[write_issues])
    def schedule(issue_id: IssueId, body: models.ScheduleCreate, request: Request) -> models.Schedule:
        """Send at a wall-clock time, as `publisher schedule` does (local_time: each reader's own hour);
        with `subjects`, as a subject test."""
        slug = issues.article_slug(db, issue_id)
        now = ctx.clock()
        _check_when(config.tz, body.at, body.timezone, local_time=body.local_time, now=now)
        done = scheduling.schedule_send(
            config, db, slug, at=body.at, now=now, tz_name=body.timezone, local_time=body.local_time,
            despite_complaints=body.despite_complaints, who=_despite(request, body.despite_complaints),
            segment=body.segment, again=body.again,
            subject_test=_subject_test(config, body, body.timezone, now=now),
        )
        return _schedule(done.schedule)

    @api.post("/issues/{issue_id}/cancel", tags=["issues"], response_model=models.Cancelled,
              responses=responses(404, post=True), dependencies=[write_issues])
    def cancel(issue_id: IssueId) -> models.Cancelled:
        """Cancel what is still to come: pending schedules and copies not yet handed to the provider."""
        done = issues.cancel_issue(db, issue_id, now=ctx.clock())
        return models.Cancelled(schedules=[_schedule(s) for s in done.schedules], rows=done.rows)

    @api.get("/schedules", tags=["issues"], response_model=models.ScheduleList, responses=responses(),
             dependencies=[read_issues])
    def list_schedules(all: bool = False) -> models.ScheduleList:
        """Pending scheduled sends (all of them with `all=true`)."""
        return models.ScheduleList(data=[_schedule(s) for s in scheduling.list_schedules(db, include_finished=all)])

    @api.post("/schedules/{schedule_id}/cancel", tags=["issues"], response_model=models.Schedule,
              responses=responses(404, post=True), dependencies=[write_issues])
    def cancel_schedule(schedule_id: Annotated[int, Path(ge=1, le=2**53)]) -> models.Schedule:
        return _schedule(scheduling.cancel_schedule(db, schedule_id))

    return api
