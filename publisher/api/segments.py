"""Routes: /segments, saved queries over the list, and the readers each holds now.

A segment's readers are computed at each request (one query), never stored: a page
after a cursor is of the segment as it is then. Reading takes `subscribers:read` (the
same as listing subscribers), saving `subscribers:write`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from publisher.api.context import ApiContext, responses
from publisher.api.models import Request, Subscriber
from publisher.services import segments as service

__all__ = ["router"]

Id = Annotated[int, Path(ge=1, le=2**53, description="The segment's id.")]

RULES = (
    'A group {"match": "all" | "any", "conditions": [...]} of conditions {"field", "op", "value"} '
    "and groups. Fields: tag (has, lacks), topic (chose, not_chose, gets), signed_up (before, after: "
    "YYYY-MM-DD; within_days, over_days: a number), source (is, is_not, starts_with), timezone (is, "
    "is_not, unknown), bounces (soft_bounced, never_bounced), engagement (opened, clicked, "
    "opened_or_clicked, not_opened: in the last N issues)."
)


class Segment(BaseModel):
    id: int
    name: str
    rules: dict[str, Any] = Field(description=RULES)
    description: str = Field(description="The rules in words.")
    count: int = Field(description="Active readers it holds now.")


class SegmentList(BaseModel):
    data: list[Segment]


class SegmentCreate(Request):
    name: str = Field(min_length=1, max_length=100)
    rules: dict[str, Any] = Field(description=RULES)


class SegmentSubscribers(BaseModel):
    data: list[Subscriber]
    has_more: bool
    next_cursor: int | None = Field(description="Pass as `starting_after` for the next page; null on the last.")


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter(tags=["segments"])
    read = Depends(ctx.auth.scope("subscribers:read"))
    write = Depends(ctx.auth.scope("subscribers:write"))
    db = ctx.db

    def shown(found: service.Segment) -> Segment:
        preview = service.preview(db, found.rules, now=ctx.clock(), sample=0)
        return Segment(
            id=found.id, name=found.name, rules=json.loads(service.dumps(found.rules)), description=preview.words,
            count=preview.count,
        )

    @api.get("/segments", response_model=SegmentList, responses=responses(), dependencies=[read])
    def list_segments() -> SegmentList:
        """Every saved segment, by name, with the count of readers it holds now."""
        return SegmentList(data=[shown(found) for found in service.list_segments(db)])

    @api.post("/segments", status_code=201, response_model=Segment, responses=responses(post=True),
              dependencies=[write])
    def create_segment(body: SegmentCreate) -> Segment:
        """Save a segment (400 naming the place of a bad rule; 409 for a name taken)."""
        return shown(service.save_segment(db, name=body.name, rules=body.rules, now=ctx.clock()))

    @api.get("/segments/{segment_id}", response_model=Segment, responses=responses(404), dependencies=[read])
    def get_segment(segment_id: Id) -> Segment:
        return shown(service.get_segment(db, segment_id))

    @api.get("/segments/{segment_id}/subscribers", response_model=SegmentSubscribers, responses=responses(404),
             dependencies=[read])
    def segment_subscribers(
        segment_id: Id,
        starting_after: Annotated[
            int | None, Query(ge=0, le=2**53, description="`next_cursor` of the previous page.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> SegmentSubscribers:
        """The active readers the segment holds now, in the order they joined, a page at a time."""
        found, more = service.segment_page(db, segment_id, now=ctx.clock(), after=starting_after or 0, limit=limit)
        return SegmentSubscribers(
            data=[
                Subscriber(id=s.id, email=s.email, name=s.name, status=s.status, tags=list(s.tags),
                           timezone=s.timezone, created_at=s.created_at)
                for s in found
            ],
            has_more=more,
            next_cursor=found[-1].id if more and found else None,
        )

    return api
