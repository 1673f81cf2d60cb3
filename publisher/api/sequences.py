"""Routes: /sequences, welcome and drip sequences, and who is at which step.

Read-only: a sequence is a folder of step files (`publisher.content.sequences`), written
in the desk or any editor, and the daemon's minute job runs it; nothing here writes, and
there is no pause (the desk has none either). Reading takes `issues:read`, as a sequence's
steps are mails like issues; the readers' addresses are given only to a key that may also
read subscribers (`subscribers:read`), others get each reader's id and step alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from publisher.api.context import ApiContext, responses
from publisher.services import sequences as service
from publisher.services.access import ApiKey

__all__ = ["router"]

Name = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$", description="The sequence's folder name.")]


class SequenceStep(BaseModel):
    name: str = Field(description="The step file's name without .md.")
    title: str
    delay: str = Field(description='When it goes after the start, in words: "at once", "day 3", "12 h".')
    source: str = Field(description="The step's file.")
    readers: int = Field(description="Readers whose last step sent is this one (stopped readers apart).")


class Sequence(BaseModel):
    name: str
    trigger: Literal["confirmed", "topic", "imported"]
    topic: str | None = Field(description='For "topic": the topic; for "imported": the tag that also starts it.')
    starts: str = Field(description='What starts it, after "starts when a reader".')
    segment: str | None = Field(description="The saved segment a reader must be in to enter; null for none.")
    held: str | None = Field(description="Why nobody enters and no step goes (its segment is gone); null when it runs.")
    steps: list[SequenceStep] = Field(description="In the order they go.")
    readers: int = Field(description="Everyone who entered it, stopped readers included.")
    waiting: int = Field(description="Readers in it not sent a step yet.")
    at_removed_step: int = Field(description="Readers whose last step sent was removed since.")
    finished: int = Field(description="Active readers with no step left for them (counted at their step too).")
    stopped: int = Field(description="Readers taken out: they unsubscribed, bounced or complained.")


class SequenceList(BaseModel):
    data: list[Sequence]
    problems: list[str] = Field(description="Sequences whose files cannot be read, with the file and line.")


class SequenceReader(BaseModel):
    subscriber_id: int
    email: str | None = Field(description="Given only to a key that may read subscribers; null otherwise.")
    state: Literal["active", "stopped"]
    step: str | None = Field(description="The last step sent to them; null before the first.")
    started_at: datetime = Field(description="When the event that started it happened: delays count from it.")
    next_at: datetime | None = Field(description="When their next step is looked at; null when none is left.")


class SequenceReaders(BaseModel):
    data: list[SequenceReader]
    has_more: bool
    next_cursor: int | None = Field(description="Pass as `starting_after` for the next page; null on the last.")


def _shown(view: service.Overview) -> Sequence:
    return Sequence(
        name=view.name, trigger=view.trigger,  # type: ignore[arg-type]  # one of files.TRIGGERS
        topic=view.topic or None, starts=view.trigger_text, segment=view.segment or None, held=view.held or None,
        steps=[SequenceStep(name=s.name, title=s.title, delay=s.delay, source=s.source, readers=s.at_step)
               for s in view.steps],
        readers=view.readers, waiting=view.waiting, at_removed_step=view.elsewhere, finished=view.finished,
        stopped=view.stopped,
    )


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter(tags=["sequences"])
    read = ctx.auth.scope("issues:read")

    @api.get("/sequences", response_model=SequenceList, responses=responses(), dependencies=[Depends(read)])
    def list_sequences() -> SequenceList:
        """Every sequence, by name: what starts it, its steps and how many readers stand at each."""
        found, problems = service.overview_readable(ctx.config, ctx.db)
        return SequenceList(data=[_shown(view) for view in found], problems=problems)

    @api.get("/sequences/{name}", response_model=Sequence, responses=responses(404),
             dependencies=[Depends(read)])
    def get_sequence(name: Name) -> Sequence:
        """One sequence with the count of readers at each step (422 when its files cannot be read)."""
        (view,) = service.overview(ctx.config, ctx.db, name)
        return _shown(view)

    @api.get("/sequences/{name}/readers", response_model=SequenceReaders, responses=responses(404),
             dependencies=[Depends(read)])
    def sequence_readers(
        request: Request,
        name: Name,
        starting_after: Annotated[
            int | None, Query(ge=0, le=2**53, description="`next_cursor` of the previous page.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> SequenceReaders:
        """Who is at which step: the readers in the order they entered, a page at a time."""
        key: ApiKey = request.state.api_key  # set by the scope's check
        addresses = key.allows("subscribers:read")
        found, more = service.readers_page(ctx.config, ctx.db, name, after=starting_after or 0, limit=limit,
                                           addresses=addresses)
        return SequenceReaders(
            data=[
                SequenceReader(subscriber_id=r.subscriber_id, email=r.email if addresses else None,
                               state=r.state, step=r.last_step or None,  # type: ignore[arg-type]
                               started_at=r.started_at, next_at=r.next_at)
                for r in found
            ],
            has_more=more,
            next_cursor=found[-1].enrolment_id if more and found else None,
        )

    return api
