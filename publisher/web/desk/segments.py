"""Segments (editors and owners): saved queries over the list, built in a form.

    GET  /desk/segments                 the segments, each with its count now
    GET  /desk/segments/new             an empty builder
    GET  /desk/segments/{id}            the builder holding a saved segment
    POST /desk/segments/build           add or remove a condition, preview, or save
    POST /desk/segments/{id}/delete     delete one

The builder works without JavaScript: every button is a POST that re-renders the page
with the conditions typed so far, the live count and a sample of ten readers (their
addresses for owners only; editors see names, dates and sources). The rules are read by
the service, so a bad value is named there (`conditions[1].value: ...`) and shown
beside the form, nothing saved. The form holds one group (all or any of its
conditions); a tree with groups inside groups is edited as JSON in the same form.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from publisher.accounts import Role
from publisher.errors import Conflict, NotFound, PublisherError
from publisher.numbers import plain_int
from publisher.services import segments as service
from publisher.services.segments import FIELDS, Condition, Group, dumps
from publisher.web.desk.auth import Asked
from publisher.web.desk.context import sentence
from publisher.web.desk.section import Section

__all__ = ["CHOICES", "SegmentDesk"]

MAX_ROWS = 20
"""Condition rows the form holds."""

_OPS = {
    "has": "has", "lacks": "does not have", "chose": "chose", "not_chose": "did not choose",
    "gets": "gets articles on (chose it, or every topic)", "before": "before the date",
    "after": "after the date", "within_days": "within the last N days", "over_days": "more than N days ago",
    "is": "is", "is_not": "is not", "starts_with": "starts with", "unknown": "is unknown",
    "soft_bounced": "has soft-bounced", "never_bounced": "never bounced",
    "opened": "opened one of the last N issues", "clicked": "clicked in one of the last N issues",
    "opened_or_clicked": "opened or clicked one of the last N issues", "not_opened": "opened none of the last N issues",
}
CHOICES: tuple[tuple[str, str], ...] = tuple(
    (f"{name}:{op}", f"{field.label} {_OPS.get(op, op)}") for name, field in FIELDS.items() for op in field.ops
)
"""Every (field:op, words) the form offers, one select: no second list to keep in step by script."""


@dataclass(frozen=True, slots=True)
class Row:
    """One condition row of the form, as typed."""

    choice: str = "tag:has"
    value: str = ""


@dataclass(frozen=True, slots=True)
class Form:
    """What the builder holds between posts."""

    name: str = ""
    match: str = "all"
    rows: tuple[Row, ...] = ()
    advanced: str = ""
    segment_id: int | None = None

    def raw(self, *, drafts: bool = False) -> Any:
        """The rules as the service reads them: the JSON box when it is filled, else the rows.
        With `drafts`, rows still waiting for their value are left out (a count while typing)."""
        if self.advanced.strip():
            return self.advanced
        conditions = []
        for row in self.rows:
            name, _, op = row.choice.partition(":")
            field = FIELDS.get(name)
            if drafts and not row.value.strip() and field is not None and field.ops.get(op) not in (None, "none"):
                continue
            condition: dict[str, Any] = {"field": name, "op": op}
            if row.value.strip():
                condition["value"] = row.value.strip()
            conditions.append(condition)
        return {"match": self.match, "conditions": conditions}


def _form_of(segment: service.Segment) -> Form:
    tree = segment.rules
    flat = all(isinstance(item, Condition) for item in tree.conditions)
    if not flat:
        return Form(name=segment.name, match=tree.match, advanced=_rules_text(tree), segment_id=segment.id)
    rows = tuple(
        Row(choice=f"{item.field}:{item.op}", value="" if item.value is None else str(item.value))
        for item in tree.conditions if isinstance(item, Condition)
    )
    return Form(name=segment.name, match=tree.match, rows=rows, segment_id=segment.id)


def _read_form(asked: Asked) -> Form:
    rows = []
    for n in range(MAX_ROWS):
        choice = asked.field(f"c{n}-what")
        if not choice:
            continue
        rows.append(Row(choice=choice, value=asked.field(f"c{n}-value")))
    segment = asked.field("segment_id").strip()
    return Form(
        name=asked.field("name").strip(),
        match="any" if asked.field("match") == "any" else "all",
        rows=tuple(rows),
        advanced=asked.field("advanced"),
        segment_id=plain_int(segment),
    )


class SegmentDesk(Section):
    def routes(self) -> list[BaseRoute]:
        guard = self.auth.guarded
        return [
            Route("/segments", guard(self.index, Role.EDITOR), methods=["GET", "HEAD"]),
            Route("/segments/new", guard(self.new, Role.EDITOR), methods=["GET", "HEAD"]),
            Route("/segments/build", guard(self.build, Role.EDITOR), methods=["POST"]),
            Route("/segments/{segment_id:int}", guard(self.edit, Role.EDITOR), methods=["GET", "HEAD"]),
            Route("/segments/{segment_id:int}/delete", guard(self.delete, Role.EDITOR), methods=["POST"]),
        ]

    async def index(self, asked: Asked) -> Response:
        def load() -> list[tuple[service.Segment, int, str]]:
            found = service.list_segments(self.engine)
            shown = []
            for segment in found:
                preview = service.preview(self.engine, segment.rules, now=asked.now, sample=0)
                shown.append((segment, preview.count, preview.words))
            return shown

        lines = await run_in_threadpool(load)
        deleted = asked.request.query_params.get("m") == "segment-deleted"
        return self.pages.render("segments", asked.desk, section="subscribers", lines=lines, deleted=deleted, error="")

    async def new(self, asked: Asked) -> Response:
        return await self._builder(asked, Form(rows=(Row(),)))

    async def edit(self, asked: Asked) -> Response:
        segment_id = int(asked.request.path_params["segment_id"])
        try:
            found = await run_in_threadpool(service.get_segment, self.engine, segment_id)
        except NotFound as exc:
            return self.pages.render("segments", asked.desk, section="subscribers", lines=[], status=404, deleted=False,
                                     error=sentence(exc))
        return await self._builder(asked, _form_of(found))

    async def build(self, asked: Asked) -> Response:
        form = _read_form(asked)
        action = asked.field("action")
        if action == "add" and len(form.rows) < MAX_ROWS:
            form = Form(form.name, form.match, (*form.rows, Row()), form.advanced, form.segment_id)
        elif action.startswith("remove-") and (gone := plain_int(action[7:])) is not None:
            form = Form(form.name, form.match, tuple(r for n, r in enumerate(form.rows) if n != gone),
                        form.advanced, form.segment_id)
        elif action == "save":
            try:
                saved = await run_in_threadpool(
                    lambda: service.save_segment(
                        self.engine, name=form.name, rules=form.raw(), now=asked.now, who=asked.desk.account,
                        segment_id=form.segment_id,
                    )
                )
            except Conflict as exc:
                return await self._builder(asked, form, error=sentence(exc), status=409)
            except PublisherError as exc:
                return await self._builder(asked, form, error=sentence(exc), status=400)
            return RedirectResponse(f"/desk/segments/{saved.id}?m=segment-saved", status_code=303)
        return await self._builder(asked, form)

    async def delete(self, asked: Asked) -> Response:
        segment_id = int(asked.request.path_params["segment_id"])
        try:
            await run_in_threadpool(service.delete_segment, self.engine, segment_id)
        except NotFound as exc:
            return self.pages.render("segments", asked.desk, section="subscribers", lines=[], status=404, deleted=False,
                                     error=sentence(exc))
        return RedirectResponse("/desk/segments?m=segment-deleted", status_code=303)

    async def _builder(self, asked: Asked, form: Form, *, error: str = "", status: int = 200) -> Response:
        preview: service.Preview | None = None
        problem = ""
        try:
            preview = await run_in_threadpool(
                lambda: service.preview(self.engine, form.raw(drafts=True), now=asked.now)
            )
        except PublisherError as exc:
            problem = sentence(exc)
        return self.pages.render(
            "segment", asked.desk, section="subscribers", status=status, form=form, choices=CHOICES,
            preview=preview, problem=problem, error=error, owner=asked.desk.can(Role.OWNER),
            saved=asked.request.query_params.get("m") == "segment-saved",
        )


def _rules_text(tree: Group) -> str:
    """A tree as indented JSON, for the advanced box."""
    return json.dumps(json.loads(dumps(tree)), indent=2, ensure_ascii=False)
