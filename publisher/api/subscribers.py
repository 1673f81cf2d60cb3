"""Routes: /subscribers, /tags and /imports.

A key without `subscribers:read` learns nothing about who is on the list, from any
answer: its POST /subscribers is checked for what can be told without the list (the
address, name, tags and zone), answered 202 with what it sent (no id, which would tell a
new address from an old one by its age), and carried out after the answer has gone, as
the public subscribe form is. A key that may read the list gets 201 for a new address
and 200 for one that was there.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from publisher.api import models
from publisher.api.auth import ApiRefusal
from publisher.api.context import ApiContext, IfMatch, etag, matches, responses, stale
from publisher.api.problems import FORBIDDEN
from publisher.config import Config
from publisher.errors import InvalidRequest, SubscriberError
from publisher.models import Subscriber, SubscriberStatus
from publisher.services import imports, signup
from publisher.services import subscribers as service
from publisher.services.access import ApiKey
from publisher.services.imports import JobRow

__all__ = ["router"]

log = logging.getLogger(__name__)

Id = Annotated[int, Path(ge=1, le=2**53, description="The subscriber's id.")]
_INSTANT = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?$"


def _instant(text: str | None) -> datetime | None:
    """An ISO 8601 date or instant; naive ones are UTC. InvalidRequest for a date that does not exist."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidRequest(f"created_since {text!r} is not a date and time: {exc}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _subscriber(s: Subscriber) -> models.Subscriber:
    return models.Subscriber(
        id=s.id, email=s.email, name=s.name, status=s.status, tags=list(s.tags), timezone=s.timezone,
        created_at=s.created_at,
    )


def _etag(s: Subscriber) -> str:
    """The subscriber's version: a digest of everything the API shows of them."""
    shown = _subscriber(s).model_dump(mode="json")
    return etag(hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()[:32])


def _answer(
    request: Request, response: Response, s: Subscriber, sent: Mapping[str, Any]
) -> models.Subscriber | models.SubscriberReceipt:
    """The record and its ETag for a key that may read the list; otherwise the receipt the
    service allows a write-only key (the id and what it sent)."""
    key: ApiKey = request.state.api_key
    shown = service.read_back(s, may_read=key.allows("subscribers:read"), sent=sent)
    if isinstance(shown, service.Receipt):
        return models.SubscriberReceipt(id=shown.id, **shown.sent)
    response.headers["etag"] = _etag(shown)
    return _subscriber(shown)


_WRITTEN = models.Subscriber | models.SubscriberReceipt
_WRITTEN_DESCRIPTION = (
    "The subscriber; a key without subscribers:read gets only the id and the fields it sent."
)
_BLIND_DESCRIPTION = (
    "A key without subscribers:read: the request is accepted and carried out after this answer, "
    "which is the same whether or not the address was on the list (the fields it sent, no id)."
)


def _job(job: JobRow) -> models.ImportJob:
    return models.ImportJob(
        id=job.id, state=job.state, format=job.format, rows_read=job.rows_read,  # type: ignore[arg-type]
        imported=job.imported, updated=job.updated, unchanged=job.unchanged, kept=job.kept,
        rejected_count=job.rejected_count,
        rejected=[models.Rejection(row=r.line, reason=r.reason) for r in job.rejected], detail=job.detail,
        created_at=job.created_at, finished_at=job.finished_at,
    )


def _subscribe(
    config: Config, ctx: ApiContext, body: models.SubscriberCreate, key: ApiKey, now: datetime, *,
    quiet: bool = True,
) -> service.Subscribed | None:
    """Add or update the subscriber and mail a pending one its link. `quiet` (after a
    blind answer): a refusal that depends on the list, such as an address that left, is
    logged rather than raised, since nobody is waiting for it."""
    try:
        done = service.subscribe(
            ctx.db, body.email, now=now, name=body.name, tags=body.tags, timezone=body.timezone,
            pending=body.double_opt_in, resubscribe=body.resubscribe, source=f"api:key{key.id}",
            note=body.consent_note.strip() or ("double opt-in" if body.double_opt_in else ""),
            consent_text=body.consent_note.strip(),
        )
    except SubscriberError as exc:
        if not quiet:
            raise
        log.info("API key %s: subscribe request not carried out: %s", key.id, exc)
        return None
    if body.double_opt_in:
        service.send_confirmation(config, ctx.db, done.subscriber, now=now, provider_factory=ctx.provider_factory)
    return done


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter(tags=["subscribers"])
    read = Depends(ctx.auth.scope("subscribers:read"))
    write = ctx.auth.scope("subscribers:write")
    db = ctx.db

    @api.get("/subscribers", response_model=models.SubscriberList, responses=responses(400), dependencies=[read])
    def list_subscribers(
        status: SubscriberStatus | None = None,
        tag: Annotated[str | None, Query(max_length=100)] = None,
        created_since: Annotated[
            str | None,
            Query(pattern=_INSTANT, max_length=40, description="Only subscribers created at or after this "
                  "ISO 8601 instant (UTC unless it carries an offset).", json_schema_extra={"format": "date-time"}),
        ] = None,
        search: Annotated[str | None, Query(max_length=320, description="Part of the address or name.")] = None,
        starting_after: Annotated[
            int | None, Query(ge=0, le=2**53, description="`next_cursor` of the previous page.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 100,
    ) -> models.SubscriberList:
        """Subscribers in the order they joined, a page at a time."""
        page = service.list_subscribers(
            db, status=status, tag=tag, since=_instant(created_since), search=search, after=starting_after,
            limit=limit,
        )
        return models.SubscriberList(
            data=[_subscriber(s) for s in page.items], has_more=page.has_more, next_cursor=page.next_after
        )

    @api.post(
        "/subscribers", status_code=201, response_model=_WRITTEN, response_model_exclude_unset=True,
        responses={201: {"description": _WRITTEN_DESCRIPTION},
                   200: {"model": _WRITTEN, "description": "The address was here: updated. " + _WRITTEN_DESCRIPTION},
                   202: {"model": models.SubscriberReceipt, "description": _BLIND_DESCRIPTION},
                   **responses(post=True)},
        dependencies=[Depends(write)],
    )
    def create_subscriber(
        body: models.SubscriberCreate, request: Request, response: Response, later: BackgroundTasks
    ) -> models.Subscriber | models.SubscriberReceipt:
        """Add a subscriber (pending with a confirmation mail, or active with admin scope and a consent note).

        An address already on the list gets its name, tags and zone updated (200). A key
        without subscribers:read gets one answer for both, 202, with the fields it sent.
        """
        key: ApiKey = request.state.api_key
        if not body.double_opt_in and not key.allows("admin"):
            raise ApiRefusal(FORBIDDEN, "adding a subscriber without double opt-in needs the admin scope")
        now = ctx.clock()
        sent = body.model_dump(include={"email", "name", "tags", "timezone"}, exclude_unset=True)
        if not key.allows("subscribers:read"):
            signup.check_request(body.email, name=body.name, tags=body.tags, timezone=body.timezone)
            later.add_task(_subscribe, ctx.config, ctx, body, key, now)
            response.status_code = 202
            return models.SubscriberReceipt(**sent)
        done = _subscribe(ctx.config, ctx, body, key, now, quiet=False)
        assert done is not None
        if not done.created:
            response.status_code = 200
        return _answer(request, response, done.subscriber, sent)

    @api.get("/subscribers/{subscriber_id}", response_model=models.Subscriber, responses=responses(404),
             dependencies=[read])
    def get_subscriber(subscriber_id: Id, response: Response) -> models.Subscriber:
        """One subscriber; the ETag names this version, for If-Match on PATCH."""
        found = service.get_subscriber(db, subscriber_id)
        response.headers["etag"] = _etag(found)
        return _subscriber(found)

    @api.patch("/subscribers/{subscriber_id}", response_model=_WRITTEN, response_model_exclude_unset=True,
               responses={200: {"description": _WRITTEN_DESCRIPTION}, **responses(404, 412)},
               dependencies=[Depends(write)])
    def update_subscriber(
        subscriber_id: Id, body: models.SubscriberUpdate, request: Request, response: Response,
        if_match: IfMatch = None,
    ) -> models.Subscriber | models.SubscriberReceipt:
        """Change the name, tags (the whole set) or zone; the status never changes here.

        An empty body changes nothing. With If-Match (the ETag of a GET), a subscriber
        changed since is left as it is: 412.
        """

        def unchanged_since(current: Subscriber) -> None:
            if if_match is not None and not matches(if_match, _etag(current)):
                raise stale(if_match)

        done = service.update_subscriber(
            db, subscriber_id, now=ctx.clock(), name=body.name, tags=body.tags, timezone=body.timezone,
            check=unchanged_since,
        )
        sent = body.model_dump(exclude_unset=True)
        return _answer(request, response, done, sent)

    @api.post("/subscribers/{subscriber_id}/unsubscribe", response_model=_WRITTEN, response_model_exclude_unset=True,
              responses={200: {"description": _WRITTEN_DESCRIPTION}, **responses(404, post=True)},
              dependencies=[Depends(write)])
    def unsubscribe(
        subscriber_id: Id, request: Request, response: Response
    ) -> models.Subscriber | models.SubscriberReceipt:
        """Take the subscriber off the list at once: any batch not yet claimed leaves them out."""
        done = service.unsubscribe(db, subscriber_id, now=ctx.clock(), source="api")
        return _answer(request, response, done, {})

    @api.delete("/subscribers/{subscriber_id}", status_code=204, responses=responses(404),
                dependencies=[Depends(write)])
    def erase(subscriber_id: Id) -> Response:
        """Erase the subscriber's personal data (a GDPR erasure request)."""
        service.erase(db, subscriber_id, now=ctx.clock())
        return Response(status_code=204)

    @api.get("/subscribers/{subscriber_id}/export", response_model=models.SubscriberExport,
             responses=responses(404), dependencies=[read])
    def export(subscriber_id: Id) -> models.SubscriberExport:
        """Everything kept about the subscriber (a GDPR access request)."""
        data = service.export_subscriber(db, subscriber_id)
        return models.SubscriberExport(
            subscriber=_subscriber(data.subscriber),
            events=[models.Event(kind=e.kind, source=e.provider, detail=e.detail, created_at=e.created_at)
                    for e in data.events],
            deliveries=[models.Delivery(issue_id=d.issue_id, subject=d.subject, state=d.state, attempts=d.attempts,
                                        sent_at=d.sent_at, detail=d.detail) for d in data.deliveries],
        )

    @api.get("/tags", response_model=models.TagList, responses=responses(), dependencies=[read])
    def list_tags() -> models.TagList:
        """Every tag in use, with its active and total subscribers."""
        return models.TagList(
            data=[models.TagCount(tag=t.tag, active=t.active, total=t.total) for t in service.tags(db)]
        )

    @api.post("/imports", status_code=202, response_model=models.ImportJob, responses=responses(post=True),
              dependencies=[Depends(write)])
    async def start_import(body: models.ImportCreate) -> models.ImportJob:
        """Start a bulk import (CSV text, or records); follow it at /imports/{id}."""
        records = [r.model_dump() for r in body.subscribers] if body.subscribers is not None else None
        job = await run_in_threadpool(
            lambda: imports.start_import(
                db, now=ctx.clock(), csv_text=body.csv, records=records, pending=body.pending, tags=body.tags
            )
        )
        return _job(job)

    @api.get("/imports/{job_id}", response_model=models.ImportJob, responses=responses(404), dependencies=[read])
    def get_import(job_id: Annotated[int, Path(ge=1, le=2**53)]) -> models.ImportJob:
        """An import's progress, then its counts and rejected rows."""
        return _job(imports.get_import(db, job_id))

    return api
