"""Revisions of an article in the desk: autosaves while typing, the list, and a comparison.

    POST /desk/autosave                     the editor's fields, every few seconds while they
                                            change: a revision, never the article file (JSON)
    GET  /desk/articles/{slug}/revisions    an article's revisions: who, when, kind, words
    GET  /desk/drafts/{key}/revisions       the same for a new article not saved yet
    GET  /desk/revisions/{id:int}           one revision beside the current text, line by line

Restore is a link back into the editor (`?revision=ID`): the revision's text fills the
form as unsaved changes, and Save writes it through the editor's own save, with its check
that the file did not change meanwhile. Nothing here writes content/. A new article
autosaves under its editor's draft key until its first save (see `services.revisions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from publisher.accounts import Role
from publisher.errors import InvalidRequest, PublisherError
from publisher.services import articles as article_service
from publisher.services import revisions as revision_service
from publisher.services.revisions import RevisionInfo
from publisher.web.desk.auth import Asked, refuse
from publisher.web.desk.editing import parse_fields, read_form, to_text
from publisher.web.desk.section import Section

__all__ = ["RevisionDesk", "editor_url"]


def editor_url(article: str, revision_id: int | None = None) -> str:
    """The editor of `article` (a slug or `new:<key>`), with a revision restored into it."""
    restore = f"revision={revision_id}" if revision_id is not None else ""
    if article.startswith("new:"):
        return f"/desk/articles/new?draft={article[4:]}" + (f"&{restore}" if restore else "")
    return f"/desk/articles/{article}" + (f"?{restore}" if restore else "")


@dataclass(frozen=True, slots=True)
class _Row:
    info: RevisionInfo
    when: str
    minutes: int


class RevisionDesk(Section):
    def routes(self) -> list[BaseRoute]:
        guard = self.auth.guarded
        return [
            Route("/autosave", guard(self.autosave, Role.EDITOR), methods=["POST"]),
            Route("/articles/{slug}/revisions", guard(self.article_revisions, Role.VIEWER), methods=["GET", "HEAD"]),
            Route("/drafts/{key}/revisions", guard(self.draft_revisions, Role.VIEWER), methods=["GET", "HEAD"]),
            Route("/revisions/{id:int}", guard(self.compare, Role.VIEWER), methods=["GET", "HEAD"]),
        ]

    def _when(self, moment: datetime) -> str:
        return f"{moment.astimezone(self.config.tz):%Y-%m-%d %H:%M}"

    def _disk_text(self, slug: str, now: datetime) -> str:
        view = article_service.get_article(self.config, self.engine, slug, now=now)
        return article_service.article_text(self.config, view)

    async def autosave(self, asked: Asked) -> Response:
        slug = asked.field("article").strip() or None
        try:
            key = revision_service.article_key(slug, asked.field("draft_key").strip())
            original = await run_in_threadpool(self._disk_text, slug, asked.now) if slug else ""
            text = to_text(read_form(asked.form), original)
            kept = await run_in_threadpool(
                revision_service.record, self.engine, key, kind="autosave",
                author=asked.session.user.email, text=text, now=asked.now,
            )
        except InvalidRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except PublisherError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        if kept is None:
            return JSONResponse({"saved": False, "unchanged": True})
        return JSONResponse(
            {"saved": True, "id": kept.id, "at": self._when(kept.created_at), "words": kept.words},
            status_code=201,
        )

    async def article_revisions(self, asked: Asked) -> Response:
        return await self._listing(asked, asked.request.path_params["slug"])

    async def draft_revisions(self, asked: Asked) -> Response:
        try:
            key = revision_service.article_key(None, asked.request.path_params["key"])
        except InvalidRequest as exc:
            return refuse(404, str(exc))
        return await self._listing(asked, key)

    async def _listing(self, asked: Asked, article: str) -> Response:
        found = await run_in_threadpool(revision_service.list_revisions, self.engine, article)
        if not found and not article.startswith("new:"):
            try:
                await run_in_threadpool(self._disk_text, article, asked.now)
            except PublisherError as exc:
                return refuse(404, str(exc))
        title = ""
        if found:
            newest = await run_in_threadpool(revision_service.get_revision, self.engine, found[0].id)
            title = _title_of(newest.text)
        rows = [_Row(r, self._when(r.created_at), revision_service.reading_minutes(r.words)) for r in found]
        return self.pages.render(
            "revisions", asked.desk, section="articles", rows=rows, title=title,
            article=article, editor=editor_url(article), restore=editor_url,
            can_write=asked.desk.can(Role.EDITOR), new=article.startswith("new:"),
        )

    async def compare(self, asked: Asked) -> Response:
        try:
            found = await run_in_threadpool(revision_service.get_revision, self.engine, asked.request.path_params["id"])
        except PublisherError as exc:
            return refuse(404, str(exc))
        article = found.info.article
        current, current_label = await run_in_threadpool(self._current, article, asked.now)
        rows = revision_service.side_by_side(found.text, current, context=3)
        changed = sum(1 for row in rows if row.change != "same")
        context: dict[str, Any] = {
            "revision": found.info, "when": self._when(found.info.created_at), "rows": rows,
            "changed": changed, "current_label": current_label, "title": _title_of(found.text),
            "article": article, "editor": editor_url(article), "restore": editor_url(article, found.info.id),
            "listing": _listing_url(article), "can_write": asked.desk.can(Role.EDITOR),
        }
        return self.pages.render("revision", asked.desk, section="articles", **context)

    def _current(self, article: str, now: datetime) -> tuple[str, str]:
        """The text a revision is compared with: the article's file, or a new article's newest autosave."""
        if not article.startswith("new:"):
            try:
                return self._disk_text(article, now), "The saved article"
            except PublisherError:
                pass
        newest = revision_service.list_revisions(self.engine, article)
        if not newest:
            return "", "Nothing (the article is gone)"
        text = revision_service.get_revision(self.engine, newest[0].id).text
        return text, f"The newest version ({self._when(newest[0].created_at)})"


def _listing_url(article: str) -> str:
    if article.startswith("new:"):
        return f"/desk/drafts/{article[4:]}/revisions"
    return f"/desk/articles/{article}/revisions"


def _title_of(text: str) -> str:
    try:
        return parse_fields(text).title
    except PublisherError:
        return ""
