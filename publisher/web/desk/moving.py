"""Move in / Move out, for owners: the whole publication out as one zip, and an export
from another service (or our own) in, after a preview.

    GET  /desk/moving                  the page: Export, and the Move in form
    POST /desk/moving/export           the export zip, streamed (`services.export`)
    POST /desk/moving/upload           an export uploaded: the preview, nothing written
    POST /desk/moving/apply            do what the preview said
    POST /desk/moving/cancel           forget the upload

Owners only: the export holds every reader's address, and moving in writes articles,
readers and the ledger. Each export and each move-in is logged with who asked.

An upload is held to MAX_UPLOAD while it arrives (a Content-Length over it is answered
at once, a body that grows past it is cut off) and kept in a private folder (0700) made
for it, under a random key bound to the session that sent it; only that session can
apply or cancel it, and it is removed after either, or when newer uploads push it out;
one a killed server left behind is removed when the desk starts again.
The preview is the migration's own plan (`services.migration.plan`, or for our own
export `services.export_import.plan_import`): counts per kind that add up, each refused
record with its reason. Apply plans again from the same file and does it.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import os
import re
import shutil
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from publisher import accounts
from publisher.accounts import DeskSession, Role
from publisher.errors import PublisherError
from publisher.numbers import plain_int
from publisher.services import export as export_service
from publisher.services import export_import, migration
from publisher.web.desk.auth import Asked, refuse
from publisher.web.desk.context import DeskContext, sentence
from publisher.web.desk.section import Section
from publisher.web.desk.waiting import Waiting, remove_stale, upload_folder

__all__ = ["MAX_UPLOAD", "SERVICES", "MovingDesk"]

log = logging.getLogger(__name__)

MAX_UPLOAD = 512 * 1024 * 1024
"""The largest export the desk takes (bigger ones: `publisher migrate` on the server)."""
SERVICES: dict[str, str] = {
    "publisher": "publisher (our own export)",
    "substack": "Substack",
    "ghost": "Ghost",
    "wordpress": "WordPress",
    "buttondown": "Buttondown",
    "mailchimp": "Mailchimp",
    "listmonk": "listmonk",
}
"""What the Move in form offers: the services `publisher migrate` reads, and our own."""
UPLOADS = "publisher-moving-"
EXPORTS = "publisher-export-"


@dataclass(frozen=True, slots=True)
class Row:
    kind: str
    created: int = 0
    updated: int = 0
    skipped: int = 0
    refused: int = 0

    @property
    def read(self) -> int:
        return self.created + self.updated + self.skipped + self.refused


@dataclass(frozen=True, slots=True)
class View:
    """A plan or a result, as the page shows it."""

    rows: tuple[Row, ...]
    reasons: tuple[str, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Upload:
    session_id: str
    folder: Path
    path: Path
    name: str
    service: str


class _TooLarge(Exception):
    pass


async def _limited(stream: AsyncIterator[bytes], limit: int) -> AsyncGenerator[bytes, None]:
    seen = 0
    async for chunk in stream:
        seen += len(chunk)
        if seen > limit:
            raise _TooLarge
        yield chunk


def _too_large() -> str:
    return (f"The file is larger than {MAX_UPLOAD // 1048576} MB. Copy it to the server and run "
            "`publisher migrate SERVICE FILE` there instead.")


def _own_view(result: export_import.MoveIn) -> View:
    rows = tuple(Row(k.kind, k.created, k.updated, k.skipped, k.refused) for k in result.kinds)
    return View(rows=rows, reasons=tuple(r for k in result.kinds for r in k.reasons), notes=result.notes)


def _migration_view(result: migration.Plan) -> View:
    reasons = [f"{record}: {why}" for record, why in result.refused]
    reasons += [f"{step.key}: {step.detail}" for step in result.articles if step.action == "refused"]
    rows = [
        Row("articles", created=result.count("created"), skipped=result.count("unchanged"),
            refused=result.count("refused")),
        Row("redirects", created=result.redirects.created,
            skipped=result.redirects.unchanged + result.redirects.skipped),
    ]
    readers: Any = result.readers
    if readers is not None:
        refused = list(getattr(readers, "refused", ()))
        rows.append(Row("readers", created=int(readers.created), updated=int(readers.updated),
                        skipped=int(readers.unchanged) + int(readers.skipped), refused=len(refused)))
        reasons += [f"{record}: {why}" for record, why in refused]
    notes = [*result.notes, f"pictures: {result.images} {'fetched' if result.applied else 'to fetch'}"]
    return View(rows=tuple(rows), reasons=tuple(reasons), notes=tuple(notes))


class MovingDesk(Section):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.uploads: Waiting[_Upload] = Waiting(4, lambda old: shutil.rmtree(old.folder, ignore_errors=True))
        for prefix in (UPLOADS, EXPORTS):  # what a server killed before Apply or Cancel left behind
            for folder in remove_stale(prefix):
                log.info("removed %s, left by a desk that stopped before Apply or Cancel", folder)

    def routes(self) -> list[BaseRoute]:
        guard = self.auth.guarded
        return [
            Route("/moving", guard(self.index, Role.OWNER), methods=["GET", "HEAD"]),
            Route("/moving/export", guard(self.export, Role.OWNER), methods=["POST"]),
            Route("/moving/upload", self.upload, methods=["POST"]),
            Route("/moving/apply", guard(self.apply, Role.OWNER), methods=["POST"]),
            Route("/moving/cancel", guard(self.cancel, Role.OWNER), methods=["POST"]),
        ]

    def _page(
        self, desk: DeskContext, *, status: int = 200, error: str = "", view: View | None = None, key: str = "",
        upload: _Upload | None = None, applied: bool = False,
    ) -> Response:
        return self.pages.render(
            "moving", desk, section="settings", status=status, error=error, view=view, key=key, upload=upload,
            applied=applied, services=SERVICES, max_mb=MAX_UPLOAD // 1048576,
        )

    async def index(self, asked: Asked) -> Response:
        return self._page(asked.desk)

    # Move out

    async def export(self, asked: Asked) -> Response:
        folder = upload_folder(EXPORTS)
        now = asked.now.astimezone(UTC)
        path = folder / export_service.default_name(now)

        def write() -> export_service.Exported:
            return export_service.create_export(self.config, self.engine, now=now, to=path)

        try:
            made = await run_in_threadpool(write)
        except PublisherError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            return self._page(asked.desk, status=500, error=sentence(exc))
        log.info("export of the publication downloaded by %s: %s subscribers, %s articles, %s bytes",
                 asked.session.user.email, made.subscribers, made.articles, made.size)
        return FileResponse(
            made.path, media_type="application/zip", filename=made.path.name,
            headers={"cache-control": "no-store"},
            background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
        )

    # Move in

    async def upload(self, request: Request) -> Response:
        session = await self.auth.session_of(request)
        if session is None:
            return refuse(401, "Your session has ended. Sign in again at /desk/login.")
        if not accounts.allows(session.user.role, Role.OWNER):
            return refuse(403, f"Your role ({session.user.role}) cannot move a publication in; an owner can.")
        desk = self.auth.context_for(request, session)
        length = request.headers.get("content-length", "")
        if (plain_int(length) or 0) > MAX_UPLOAD + 64 * 1024:
            return self._page(desk, status=413, error=_too_large())
        if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            return self._page(desk, status=400, error="Send the export with the form on this page.")
        parser = MultiPartParser(
            request.headers, _limited(request.stream(), MAX_UPLOAD + 64 * 1024), max_files=1, max_fields=5,
            max_part_size=4096,
        )
        try:
            form = await parser.parse()
        except _TooLarge:
            return self._page(desk, status=413, error=_too_large())
        except ClientDisconnect:
            return Response(status_code=400)
        except MultiPartException as exc:
            return self._page(desk, status=400, error=f"The upload could not be read ({exc}). Try again.")
        try:
            return await self._preview(request, session, desk, form)
        finally:
            await form.close()

    async def _preview(self, request: Request, session: DeskSession, desk: DeskContext, form: FormData) -> Response:
        token = form.get("csrf")
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), session.csrf.encode()):
            return refuse(403, "This form is out of date or did not come from the desk. Reload the page and try again.")
        service = form.get("service")
        if not isinstance(service, str) or service not in SERVICES:
            return self._page(desk, status=400, error="Choose the service the export came from.")
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return self._page(desk, status=400, error="Choose the export file to upload.")
        name = upload.filename.replace("\\", "/").rsplit("/", 1)[-1][:100] or "export"
        folder = upload_folder(UPLOADS)
        path = folder / (re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "export")
        try:
            await upload.seek(0)
            with path.open("xb") as out:
                os.fchmod(out.fileno(), 0o600)
                while chunk := await upload.read(1 << 20):
                    out.write(chunk)
            waiting = _Upload(session.id, folder, path, name, service)
            view = await run_in_threadpool(self._plan, waiting)
        except (PublisherError, OSError) as exc:
            shutil.rmtree(folder, ignore_errors=True)
            return self._page(desk, status=400, error=f"{name}: {sentence(exc)}")
        key = self.uploads.put(waiting)
        return self._page(desk, view=view, key=key, upload=waiting)

    def _plan(self, upload: _Upload, *, write: bool = False, now: datetime | None = None) -> View:
        moment = now or datetime.now(UTC)
        if upload.service == "publisher":
            if write:
                return _own_view(export_import.apply_import(self.config, self.engine, upload.path, now=moment))
            return _own_view(export_import.plan_import(self.config, self.engine, upload.path, now=moment))
        files = migration.open_export(upload.path)
        files = dataclasses.replace(files, label=upload.name)
        planned = migration.plan(self.config, self.engine, upload.service, files)
        if write:
            planned = migration.apply(self.config, self.engine, planned, now=moment)
        return _migration_view(planned)

    async def apply(self, asked: Asked) -> Response:
        key = asked.field("key")
        found = self.uploads.take(key, asked.session.id)
        if found is None:
            return self._page(asked.desk, status=400, error="That upload is no longer waiting: upload the file again.")
        try:
            view = await run_in_threadpool(lambda: self._plan(found, write=True, now=asked.now))
        except PublisherError as exc:
            return self._page(asked.desk, status=400, error=f"{found.name}: {sentence(exc)}")
        finally:
            shutil.rmtree(found.folder, ignore_errors=True)
        log.info("%s moved in %s (%s) from the desk", asked.session.user.email, found.name, found.service)
        return self._page(asked.desk, view=view, upload=found, applied=True)

    async def cancel(self, asked: Asked) -> Response:
        key = asked.field("key")
        if self.uploads.get(key, asked.session.id) is not None:
            self.uploads.drop(key)
        return self._page(asked.desk)
