"""Subscribers: search and filter, add, edit tags, unsubscribe, erase, import, export.

    GET  /desk/subscribers                        search (address or name), status, tag; pages
    POST /desk/subscribers                        add one
    GET  /desk/subscribers/{id:int}  POST         one subscriber and the issues they were sent,
                                                  newest first, a page at a time; change name, tags, zone
    POST /desk/subscribers/{id:int}/unsubscribe   take off the list (the address stays on file)
    POST /desk/subscribers/{id:int}/erase         erase (GDPR), after ticking a confirmation
    GET  /desk/subscribers/import                 the upload form
    POST /desk/subscribers/import                 upload: a preview, nothing written
    POST /desk/subscribers/import/confirm         import the previewed file
    GET  /desk/subscribers/export                 CSV of the filtered list

An uploaded file waits for its confirmation in memory, bound to the session that sent
it; the import then reads exactly the text that was previewed.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from publisher.accounts import Role
from publisher.config import Config
from publisher.errors import InvalidRequest, NotFound, PublisherError, SubscriberError
from publisher.models import SubscriberStatus
from publisher.services import bounce_intake, recipients
from publisher.services import sequences as sequence_service
from publisher.services import subscribers as subscriber_service
from publisher.services.imports import decode_upload, preview_import
from publisher.web.desk.auth import Asked, DeskAuth, refuse
from publisher.web.desk.render import DeskPages
from publisher.web.desk.section import Section
from publisher.web.desk.waiting import Waiting

__all__ = ["SubscriberDesk"]

PAGE = 50
ISSUES_PAGE = 50
STATUSES = tuple(s.value for s in SubscriberStatus)


@dataclass(frozen=True, slots=True)
class _Upload:
    session_id: str
    name: str
    text: str
    tags: str
    pending: bool
    sequence: str = ""


def _status(value: str) -> SubscriberStatus | None:
    return SubscriberStatus(value) if value in STATUSES else None


def _tags(raw: str) -> list[str]:
    return [t.strip() for t in raw.split(",") if t.strip()]


class SubscriberDesk(Section):
    def __init__(self, config: Config, engine: Engine, pages: DeskPages, auth: DeskAuth) -> None:
        super().__init__(config, engine, pages, auth)
        self.uploads: Waiting[_Upload] = Waiting(8)

    def routes(self) -> list[BaseRoute]:
        guard = self.auth.guarded
        return [
            Route("/subscribers", self.auth.reading(self.index, Role.VIEWER), methods=["GET", "HEAD"]),
            Route("/subscribers", guard(self.add, Role.EDITOR), methods=["POST"]),
            Route("/subscribers/import", guard(self.import_form, Role.EDITOR), methods=["GET", "HEAD"]),
            Route("/subscribers/import", guard(self.upload, Role.EDITOR), methods=["POST"]),
            Route("/subscribers/import/confirm", guard(self.import_confirm, Role.EDITOR), methods=["POST"]),
            Route("/subscribers/export", guard(self.export, Role.EDITOR), methods=["GET", "HEAD"]),
            Route("/subscribers/{id:int}", guard(self.detail, Role.VIEWER), methods=["GET", "HEAD"]),
            Route("/subscribers/{id:int}", guard(self.update, Role.EDITOR), methods=["POST"]),
            Route("/subscribers/{id:int}/unsubscribe", guard(self.unsubscribe, Role.EDITOR), methods=["POST"]),
            Route("/subscribers/{id:int}/erase", guard(self.erase, Role.EDITOR), methods=["POST"]),
        ]

    def index(self, asked: Asked, *, error: str = "", status_code: int = 200) -> Response:
        query = asked.request.query_params
        search = query.get("q", "").strip()
        status = query.get("status", "")
        tag = query.get("tag", "").strip()
        after = query.get("after", "")
        # Keyset pages (`after`), never counted for a pager: the 1,000th page costs the
        # first's; the counts and tags are kept ready by the store.
        try:
            start = recipients.parse_cursor(after, of="a reader")
            page = subscriber_service.list_page(
                self.engine, search=search, status=_status(status), tag=tag or None, after=start, limit=PAGE,
            )
            tags, counts = subscriber_service.tags_and_counts(self.engine)
        except PublisherError as exc:
            return refuse(400, str(exc))
        return self.pages.render(
            "subscribers", asked.desk, section="subscribers", status=status_code,
            page=page, tags=tags, counts=counts, q=search, status_filter=status, tag=tag,
            statuses=STATUSES, error=error, can_write=asked.desk.can(Role.EDITOR),
        )

    async def add(self, asked: Asked) -> Response:
        try:
            done = await run_in_threadpool(
                lambda: subscriber_service.subscribe(
                    self.engine, asked.field("email"), now=asked.now, name=asked.field("name"),
                    tags=_tags(asked.field("tags")), source="desk",
                )
            )
        except PublisherError as exc:
            refused = str(exc)
            return await run_in_threadpool(lambda: self.index(asked, error=refused, status_code=400))
        return RedirectResponse(f"/desk/subscribers/{done.subscriber.id}?m=added", status_code=303)

    async def detail(self, asked: Asked, *, error: str = "", status_code: int = 200) -> Response:
        key = asked.request.path_params["id"]
        try:
            data = await run_in_threadpool(subscriber_service.export_subscriber, self.engine, key)
            came_back = await run_in_threadpool(
                bounce_intake.history, self.engine, data.subscriber.id, data.subscriber.email
            )
        except PublisherError as exc:
            return refuse(404, str(exc))
        try:
            before = recipients.parse_cursor(asked.request.query_params.get("before", ""))
        except PublisherError as exc:
            return refuse(400, str(exc))
        received = await run_in_threadpool(
            lambda: recipients.reader_issues(self.engine, data.subscriber.id, before=before, limit=ISSUES_PAGE)
        )
        return self.pages.render(
            "subscriber", asked.desk, section="subscribers", status=status_code,
            data=data, s=data.subscriber, error=error, can_write=asked.desk.can(Role.EDITOR),
            came_back=came_back, received=received, words=recipients.words,
        )

    async def update(self, asked: Asked) -> Response:
        key = asked.request.path_params["id"]
        try:
            await run_in_threadpool(
                lambda: subscriber_service.update_subscriber(
                    self.engine, key, now=asked.now, name=asked.field("name"), tags=_tags(asked.field("tags")),
                    timezone=asked.field("timezone").strip() or None,
                )
            )
        except PublisherError as exc:
            return await self.detail(asked, error=str(exc), status_code=400)
        return RedirectResponse(f"/desk/subscribers/{key}?m=saved", status_code=303)

    async def unsubscribe(self, asked: Asked) -> Response:
        key = asked.request.path_params["id"]
        try:
            await run_in_threadpool(
                lambda: subscriber_service.unsubscribe(self.engine, key, now=asked.now, source="desk")
            )
        except PublisherError as exc:
            return refuse(404, str(exc))
        return RedirectResponse(f"/desk/subscribers/{key}?m=unsubscribed", status_code=303)

    async def erase(self, asked: Asked) -> Response:
        key = asked.request.path_params["id"]
        if asked.field("sure") != "on":
            return await self.detail(asked, error="Tick the box to confirm the erasure first.", status_code=400)
        try:
            await run_in_threadpool(lambda: subscriber_service.erase(self.engine, key, now=asked.now))
        except PublisherError as exc:
            return refuse(404, str(exc))
        return RedirectResponse("/desk/subscribers?m=erased", status_code=303)

    # Import and export

    async def import_form(self, asked: Asked, *, error: str = "", status_code: int = 200) -> Response:
        sequences = await run_in_threadpool(sequence_service.importable, self.config)
        return self.pages.render(
            "import", asked.desk, section="subscribers", status=status_code,
            error=error, preview=None, key="", sequences=sequences,
        )

    async def upload(self, asked: Asked) -> Response:
        upload = asked.files.get("file")
        if upload is None or not upload.filename:
            return await self.import_form(asked, error="Choose a CSV file to upload.", status_code=400)
        name = upload.filename.replace("\\", "/").rsplit("/", 1)[-1][:100]
        data = await upload.read()
        sequence = asked.field("sequence").strip()
        try:
            if sequence:
                await run_in_threadpool(sequence_service.import_door, self.config, sequence)
            text, encoding = decode_upload(data, origin=name)
            preview = await run_in_threadpool(
                lambda: preview_import(
                    self.engine, io.StringIO(text, newline=""), origin=name, encoding=encoding,
                    pending=asked.field("pending") == "on", tags=_tags(asked.field("tags")),
                )
            )
        except PublisherError as exc:
            return await self.import_form(asked, error=str(exc), status_code=400)
        key = self.uploads.put(
            _Upload(asked.session.id, name, text, asked.field("tags"), asked.field("pending") == "on", sequence)
        )
        return self.pages.render(
            "import", asked.desk, section="subscribers", error="", preview=preview,
            key=key, name=name, sequence=sequence,
        )

    async def import_confirm(self, asked: Asked) -> Response:
        found = self.uploads.take(asked.field("key"), asked.session.id)
        if found is None:
            return await self.import_form(
                asked, error="That upload is no longer waiting: upload the file again.", status_code=400
            )
        try:
            report = await run_in_threadpool(
                lambda: subscriber_service.import_subscribers(
                    self.engine, io.StringIO(found.text, newline=""), now=asked.now, origin=found.name,
                    pending=found.pending, tags=_tags(found.tags),
                ) if not found.sequence else sequence_service.import_subscribers(
                    self.config, self.engine, io.StringIO(found.text, newline=""), now=asked.now,
                    origin=found.name, sequence=found.sequence, pending=found.pending, tags=_tags(found.tags),
                )
            )
        except (SubscriberError, InvalidRequest, NotFound) as exc:
            return await self.import_form(asked, error=str(exc), status_code=400)
        return self.pages.render(
            "imported", asked.desk, section="subscribers", report=report, name=found.name
        )

    async def export(self, asked: Asked) -> Response:
        query = asked.request.query_params
        status = _status(query.get("status", ""))
        tag = query.get("tag", "").strip() or None

        def rows() -> Iterator[str]:
            buffer = io.StringIO()
            # Written in one piece per call; the store streams subscribers a page at a time.
            subscriber_service.export_csv(self.engine, buffer, status=status, tag=tag)
            yield buffer.getvalue()

        return StreamingResponse(
            rows(), media_type="text/csv; charset=utf-8",
            headers={
                "content-disposition": 'attachment; filename="subscribers.csv"',
                "cache-control": "no-store",
                "x-content-type-options": "nosniff",
            },
        )
