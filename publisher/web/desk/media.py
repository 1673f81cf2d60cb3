"""Pictures in the desk: upload, the Media page, delete, and the files for previews.

    GET  /desk/media                 the Media page (viewers): 60 pictures a page, newest
                                     first, each with its size, the articles using it and
                                     its Markdown; an upload form (editors)
    POST /desk/media                 upload one picture (editors)
    POST /desk/media/delete          delete one, after a confirmation page (editors);
                                     refused while an article uses it, naming them (the
                                     confirmation page names them already)
    GET  /desk/media/files/{name}    a stored picture, for the Media page and previews of
                                     drafts (viewers); only a picture's own name is looked
                                     up, never a path, and a symbolic link is refused

The upload contract, for the editor's toolbar button, drag and drop and paste:

    POST /desk/media, multipart/form-data with the picture in the field `file` and the
    page's CSRF token in the field `csrf` (the one every desk form carries), by a signed-in
    editor or owner.

    201 {"name": "<main file name>", "url": "/media/<name>", "markdown": "![](/media/<name>)",
         "width": W, "height": H}
    4xx {"error": "<what happened and what to do>"}: 400 a refused picture (not a picture,
         SVG, damaged, too many pixels, too long an animation) or a bad form, 401 no
         session, 403 a viewer or a wrong CSRF token, 413 more than 20 MB.

    A request whose Accept header names text/html (a plain form, without script) gets
    the Media page instead: a redirect to it on success, the page with the error on a
    refusal.

The 20 MB limit is held while the body arrives: a Content-Length over it is answered at
once, and a body that grows past it is cut off there. Nothing is stored unless the whole
picture arrived and passed (`services.media.store_image`).
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncGenerator, AsyncIterator
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from publisher import accounts
from publisher.accounts import DeskSession, Role
from publisher.errors import Conflict, NotFound, PublisherError
from publisher.numbers import plain_int
from publisher.services import media as media_service
from publisher.web.desk.auth import Asked, refuse
from publisher.web.desk.context import DeskContext, sentence
from publisher.web.desk.section import Section

__all__ = ["MAX_BODY", "MediaDesk"]

MAX_BODY = media_service.MAX_BYTES + 64 * 1024
"""A request body's limit: the picture and the form around it (boundaries, the token)."""
FILE_HEADERS = {
    "cache-control": "private, max-age=3600",
    "content-security-policy": "default-src 'none'; sandbox",
    "x-content-type-options": "nosniff",
}


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
    return f"The file is larger than {media_service.MAX_BYTES // 1048576} MB: make it smaller and upload it again."


class MediaDesk(Section):
    def routes(self) -> list[BaseRoute]:
        guard = self.auth.guarded
        return [
            Route("/media", guard(self.index, Role.VIEWER), methods=["GET", "HEAD"]),
            Route("/media", self.upload, methods=["POST"]),
            Route("/media/delete", guard(self.delete, Role.EDITOR), methods=["POST"]),
            Route("/media/files/{name}", guard(self.file, Role.VIEWER), methods=["GET", "HEAD"]),
        ]

    # The page

    async def index(self, asked: Asked) -> Response:
        return await self._page(asked.desk)

    async def _page(self, desk: DeskContext, *, status: int = 200, error: str = "", confirm: str = "") -> Response:
        request = desk.request
        number = request.query_params.get("page", "1")
        wanted = plain_int(number)
        page = wanted if wanted is not None and 0 < wanted < 1_000_000 else 1
        found = await run_in_threadpool(media_service.list_media, self.config, page=page)
        uploaded = media_service.parse_name(request.query_params.get("uploaded", ""))
        pending: media_service.StoredImage | None = None
        users: tuple[media_service.ArticleRef, ...] = ()
        name = media_service.parse_name(confirm) if confirm else None
        if name is not None:
            pending = media_service.StoredImage.of(name)
            found_users = await run_in_threadpool(media_service.usage, self.config, [name.hash])
            users = found_users.get(name.hash, ())
        deleted = media_service.parse_name(request.query_params.get("deleted", ""))
        context = {"message": f"Deleted {deleted.name}, every width of it."} if deleted else {}
        return self.pages.render(
            "media", desk, section="media", status=status, found=found, error=error,
            can_write=desk.can(Role.EDITOR), max_mb=media_service.MAX_BYTES // 1048576,
            uploaded=media_service.StoredImage.of(uploaded) if uploaded else None, pending=pending,
            pending_users=users,
            **context,
        )

    # Upload

    async def upload(self, request: Request) -> Response:
        html = "text/html" in request.headers.get("accept", "")
        session = await self.auth.session_of(request)
        if session is None:
            return self._refused(request, 401, "Your session has ended. Sign in again at /desk/login.")
        if not accounts.allows(session.user.role, Role.EDITOR):
            return self._refused(
                request, 403, f"Your role ({session.user.role}) cannot upload pictures; an owner can change it."
            )
        length = request.headers.get("content-length", "")
        if (plain_int(length) or 0) > MAX_BODY:
            return await self._answer(request, session, html, 413, _too_large())
        kind = request.headers.get("content-type", "")
        if not kind.lower().startswith("multipart/form-data"):
            return await self._answer(
                request, session, html, 400,
                "Send the picture as multipart/form-data, in the field “file”, with the page's “csrf” token.",
            )
        parser = MultiPartParser(
            request.headers, _limited(request.stream(), MAX_BODY), max_files=1, max_fields=5, max_part_size=4096
        )
        try:
            form = await parser.parse()
        except _TooLarge:
            return await self._answer(request, session, html, 413, _too_large())
        except ClientDisconnect:
            return Response(status_code=400)
        except MultiPartException as exc:
            return await self._answer(request, session, html, 400, f"The upload could not be read ({exc}). Try again.")
        try:
            return await self._store(request, session, html, form)
        finally:
            await form.close()

    async def _store(self, request: Request, session: DeskSession, html: bool, form: FormData) -> Response:
        token = form.get("csrf")
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), session.csrf.encode()):
            return await self._answer(
                request, session, html, 403,
                "This form is out of date or did not come from the desk. Reload the page and try again.",
            )
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return await self._answer(request, session, html, 400, "No file was sent: choose a picture first.")
        await upload.seek(0)
        data = await upload.read(media_service.MAX_BYTES + 1)
        if len(data) > media_service.MAX_BYTES:
            return await self._answer(request, session, html, 413, _too_large())
        try:
            stored = await run_in_threadpool(media_service.store_image, self.config, data)
        except PublisherError as exc:
            return await self._answer(request, session, html, 400, sentence(exc))
        if html:
            return RedirectResponse(f"/desk/media?uploaded={quote(stored.name)}", status_code=303)
        return JSONResponse(
            {"name": stored.name, "url": stored.url, "markdown": stored.markdown,
             "width": stored.width, "height": stored.height},
            status_code=201, headers={"cache-control": "no-store"},
        )

    async def _answer(self, request: Request, session: DeskSession, html: bool, status: int, error: str) -> Response:
        if html:
            return await self._page(self.auth.context_for(request, session), status=status, error=error)
        return JSONResponse({"error": error}, status_code=status, headers={"cache-control": "no-store"})

    @staticmethod
    def _refused(request: Request, status: int, error: str) -> Response:
        if "text/html" in request.headers.get("accept", ""):
            return refuse(status, error)
        return JSONResponse({"error": error}, status_code=status, headers={"cache-control": "no-store"})

    # Delete

    async def delete(self, asked: Asked) -> Response:
        name = asked.field("name")
        if asked.field("confirm") != "yes":
            return await self._page(asked.desk, confirm=name)
        try:
            await run_in_threadpool(media_service.delete_image, self.config, name)
        except Conflict as exc:
            return await self._page(asked.desk, status=409, error=sentence(exc))
        except NotFound as exc:
            return await self._page(asked.desk, status=404, error=sentence(exc))
        except PublisherError as exc:
            return await self._page(asked.desk, status=400, error=sentence(exc))
        return RedirectResponse(f"/desk/media?deleted={quote(name)}", status_code=303)

    # Files

    async def file(self, asked: Asked) -> Response:
        try:
            data, kind = await run_in_threadpool(
                media_service.read_media_file, self.config, asked.request.path_params["name"]
            )
        except NotFound as exc:
            return refuse(404, str(exc))
        return Response(data, media_type=kind, headers=FILE_HEADERS)
