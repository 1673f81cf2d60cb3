"""Articles, the editor with its previews and preflight, and sending an article.

    GET  /desk/articles                     drafts, scheduled, published, sent; search, filter
    GET  /desk/articles/new   POST          a new article (?draft=KEY: its autosaves' key)
    GET  /desk/articles/{slug} POST         the editor (viewers read it); save
                                            (?revision=ID: that version, restored unsaved)
    POST /desk/articles/preview             previews of the text being edited (JSON for the
                                            editor's script; without it, the Preview button)
    GET  /desk/preview/{key}/{kind}         a preview for a sandboxed frame: email, web
    GET  /desk/preview/{key}/media/{name}   a picture that preview shows (no session: see
                                            `previews`)
    POST /desk/articles/{slug}/test         a test copy to me or to addresses, of the
                                            editor's text when its fields come along
    POST /desk/articles/{slug}/schedule     at a time in the author's zone, or local time
    POST /desk/articles/{slug}/send         asks with the count, then sends (confirm=count)
    POST /desk/schedules/{id:int}/cancel    cancel a scheduled send

Saving goes through `services.articles.write_article` with the fingerprint of the text
the editor opened: a file changed on disk meanwhile is a conflict, shown side by side,
and nothing is written. The editor's "Preview and check" runs the checks before sending
(`preflight`) without waiting on other sites or DNS; "Check links and DNS too" also
fetches each link to another site and looks up the sending domain's records.

Each save is also kept as a version (`services.revisions`, kind "saved"); the first save
of a new article adopts the versions its editor autosaved under its draft key. Restoring
a version only fills the form: Save writes it, through the same conflict check.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from publisher.accounts import Role
from publisher.config import Config
from publisher.errors import AmbiguousTime, Conflict, InvalidRequest, MailedAlready, NotFound, PublisherError
from publisher.numbers import plain_int
from publisher.services import articles as article_service
from publisher.services import issues as issue_service
from publisher.services import media as media_service
from publisher.services import migration, previews, scheduling, starter, subject_tests
from publisher.services import revisions as revision_service
from publisher.services import segments as segment_service
from publisher.services import subscribers as subscriber_service
from publisher.services.articles import fingerprint
from publisher.services.providers import Provider
from publisher.web.desk.auth import Asked, DeskAuth, refuse
from publisher.web.desk.editing import EditorFields, parse_fields, read_form, to_text
from publisher.web.desk.previews import PreviewCache, Rendered, desk_images, media_prefix
from publisher.web.desk.render import PREVIEW_HEADERS, DeskPages
from publisher.web.desk.section import Section
from publisher.web.desk.signin import kept_page

__all__ = ["ArticleDesk"]

STATES = ("draft", "scheduled", "published", "sent")
SEGMENT_CHOICE = "segment:"
"""How the Readers choice names a saved segment ("segment:NAME"); any other value is a tag."""
PICTURE_HEADERS = {
    "cache-control": "no-store",
    "content-security-policy": "default-src 'none'; sandbox",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}


@dataclass(frozen=True, slots=True)
class MovedIn:
    """What the send panel says of an article another service mailed before it was moved in."""

    service: str
    """"Ghost", as the author knows it."""
    day: str
    """"2 February 2024": the day it was published (and mailed) there, in the publication's zone."""
    sure: bool
    """The move recorded that it was mailed (False: moved in before that was kept, so probably)."""


@dataclass(frozen=True, slots=True)
class _Edit:
    slug: str | None
    fields: EditorFields
    base: str
    """Fingerprint of the file's text when the editor opened it ("" for a new article)."""
    original: str
    draft_key: str = ""
    """A new article's autosaves are kept under this key until its first save."""
    restored: revision_service.RevisionInfo | None = None
    """The revision put back into the form, not saved yet."""


class ArticleDesk(Section):
    def __init__(
        self, config: Config, engine: Engine, pages: DeskPages, auth: DeskAuth,
        provider_factory: Callable[[Config], Provider],
    ) -> None:
        super().__init__(config, engine, pages, auth)
        self.provider_factory = provider_factory
        self.previews = PreviewCache()

    def routes(self) -> list[BaseRoute]:
        guard = self.auth.guarded
        return [
            Route("/articles", guard(self.index, Role.VIEWER), methods=["GET", "HEAD"]),
            Route("/articles/new", guard(self.new_form, Role.EDITOR), methods=["GET", "HEAD"]),
            Route("/articles/new", self._keeping(guard(self.create, Role.EDITOR)), methods=["POST"]),
            Route("/articles/preview", guard(self.preview, Role.EDITOR), methods=["POST"]),
            Route("/articles/{slug}", guard(self.edit, Role.VIEWER), methods=["GET", "HEAD"]),
            Route("/articles/{slug}", self._keeping(guard(self.save, Role.EDITOR)), methods=["POST"]),
            Route("/articles/{slug}/test", self._keeping(guard(self.test, Role.EDITOR)), methods=["POST"]),
            Route("/articles/{slug}/schedule", self._keeping(guard(self.schedule, Role.EDITOR)), methods=["POST"]),
            Route("/articles/{slug}/send", self._keeping(guard(self.send, Role.EDITOR)), methods=["POST"]),
            Route("/schedules/{id:int}/cancel", guard(self.cancel, Role.EDITOR), methods=["POST"]),
            Route("/preview/{key}/{kind}", guard(self.frame, Role.VIEWER), methods=["GET", "HEAD"]),
            # No session: a sandboxed frame's page sends no cookie. The preview's key is the
            # permission, for the pictures that preview shows (see `previews`).
            Route("/preview/{key}/media/{name}", self.frame_picture, methods=["GET", "HEAD"]),
        ]

    def _keeping(self, guarded: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        """`guarded`, but a save, preview, schedule, test copy or send whose session has ended
        gets the sign-in page carrying what was typed (`signin.kept_page`), not a refusal that
        loses it; signing in there never carries out the schedule or the send."""

        async def endpoint(request: Request) -> Response:
            if await self.auth.session_of(request) is None:
                return await kept_page(self.auth, self.pages, request, request.path_params.get("slug", ""))
            return await guarded(request)

        return endpoint

    # The list

    async def index(self, asked: Asked) -> Response:
        query = asked.request.query_params
        search = query.get("q", "").strip()
        state = query.get("state", "")
        try:
            found = await run_in_threadpool(
                article_service.list_articles, self.config, self.engine, now=asked.now
            )
            error = ""
        except PublisherError as exc:
            found, error = [], str(exc)
        words = search.lower().split()
        shown = [
            item for item in found
            if (not state or item.state.value == state)
            and all(w in f"{item.article.title} {' '.join(item.article.tags)}".lower() for w in words)
        ]
        agenda = await run_in_threadpool(scheduling.agenda, self.config, self.engine, now=asked.now)
        return self.pages.render(
            "articles", asked.desk, section="articles", articles=shown,
            total=len(found), q=search, state=state, states=STATES, error=error,
            upcoming={u.schedule.slug: u for u in agenda.scheduled}, held={h.slug: h for h in agenda.held},
        )

    # The editor

    async def new_form(self, asked: Asked) -> Response:
        fields = EditorFields(
            title="", slug="", date=f"{asked.now.astimezone(self.config.tz):%Y-%m-%d %H:%M}",
            tags="", summary="", draft=True, body="",
        )
        draft_key = asked.request.query_params.get("draft", "")
        try:
            revision_service.article_key(None, draft_key)
        except PublisherError:
            draft_key = revision_service.new_draft_key()
        edit = _Edit(None, fields, "", "", draft_key=draft_key)
        try:
            edit = await self._restored(asked, edit, f"new:{draft_key}")
        except PublisherError as exc:
            return await self._editor(asked, edit, error=str(exc), status=404)
        return await self._editor(asked, edit)

    async def _restored(self, asked: Asked, edit: _Edit, article: str) -> _Edit:
        """`edit` with the revision named by `?revision=` in its form, when there is one."""
        wanted = asked.request.query_params.get("revision", "")
        if not wanted:
            return edit
        found = None
        number = plain_int(wanted)
        if number is not None:
            found = await run_in_threadpool(revision_service.get_revision, self.engine, number)
        if found is None or found.info.article != article:
            raise NotFound(f"revision {wanted} is not a version of this article; pick one from its list of versions")
        fields = parse_fields(found.text)
        if edit.slug is not None:
            fields = replace(fields, slug=edit.slug)
        return replace(edit, fields=fields, restored=found.info)

    async def edit(self, asked: Asked) -> Response:
        slug = asked.request.path_params["slug"]
        try:
            view, text = await run_in_threadpool(self._load, slug, asked.now)
        except PublisherError as exc:
            return refuse(404, str(exc))
        edit = _saved_edit(slug, view, text)
        try:
            edit = await self._restored(asked, edit, slug)
        except PublisherError as exc:
            return await self._editor(asked, edit, view=view, error=str(exc), status=404)
        return await self._editor(asked, edit, view=view)

    def _load(self, slug: str, now: datetime) -> tuple[article_service.ArticleView, str]:
        view = article_service.get_article(self.config, self.engine, slug, now=now)
        return view, article_service.article_text(self.config, view)

    def _fields(self, asked: Asked) -> EditorFields:
        return read_form(asked.form)

    async def create(self, asked: Asked) -> Response:
        return await self._write(asked, None)

    async def save(self, asked: Asked) -> Response:
        return await self._write(asked, asked.request.path_params["slug"])

    async def _write(self, asked: Asked, slug: str | None) -> Response:
        fields = self._fields(asked)
        base = asked.field("base")
        original = ""
        view = None
        if slug is not None:
            try:
                view, original = await run_in_threadpool(self._load, slug, asked.now)
            except PublisherError as exc:
                return refuse(404, str(exc))
        edit = _Edit(slug, fields, base, original, draft_key=asked.field("draft_key"))
        if asked.field("action") in ("preview", "check-all"):
            shown = await self._render_preview(asked, fields, original, deep=asked.field("action") == "check-all")
            return await self._editor(asked, edit, view=view, preview=shown)
        text = to_text(fields, original)
        try:
            written = await run_in_threadpool(
                article_service.write_article, self.config, text, now=asked.now, slug=slug,
                expected=base if slug is not None else None, db=self.engine,
            )
        except Conflict as exc:
            if slug is None or fingerprint(original) == base:
                return await self._editor(asked, edit, view=view, error=str(exc), status=409)
            return self.pages.render(
                "conflict", asked.desk, section="articles", status=409,
                slug=slug, disk=original, mine=text, fields=fields, base=fingerprint(original),
            )
        except PublisherError as exc:
            return await self._editor(asked, edit, view=view, error=str(exc), status=400)
        await run_in_threadpool(self._keep_saved, asked, written.article.slug, text, slug is None)
        return RedirectResponse(f"/desk/articles/{written.article.slug}?m=saved", status_code=303)

    def _keep_saved(self, asked: Asked, slug: str, text: str, created: bool) -> None:
        """The saved text as a revision; a new article's autosaves become its own."""
        if created:
            revision_service.adopt(self.engine, asked.field("draft_key"), slug)
        # The file is written: a text too long to keep as a revision is no reason to say otherwise.
        with contextlib.suppress(PublisherError):
            revision_service.record(
                self.engine, slug, kind="saved", author=asked.session.user.email, text=text, now=asked.now
            )

    async def _editor(
        self, asked: Asked, edit: _Edit, *, view: article_service.ArticleView | None = None,
        preview: dict[str, Any] | None = None, error: str = "", status: int = 200, send_error: str = "",
        schedule_form: dict[str, Any] | None = None,
    ) -> Response:
        sending: dict[str, Any] = {}
        if edit.slug is not None:
            sending = await run_in_threadpool(self._sending, edit.slug, asked.now, view, edit.original)
            sending["form"] = schedule_form or {
                "at": "", "timezone": "", "local_time": False, "tag": "", "choices": [], "again": False,
            }
            if sending["moved_in"] is not None:  # mailed where it came from: the box to say "again" from the start
                sending["form"] = {**sending["form"], "again": True}
        key = edit.slug or f"new:{edit.draft_key}"
        versions = await run_in_threadpool(revision_service.list_revisions, self.engine, key)
        drafts = [] if edit.slug else await run_in_threadpool(revision_service.unsaved_drafts, self.engine)
        words = revision_service.count_words(edit.fields.body)
        # Shown again from a post (a refused save, a preview): the text on screen may be
        # nowhere else yet, so the page starts as unsaved changes (autosaved soon, warned on leaving).
        unsaved = edit.restored is not None or (
            asked.request.method == "POST" and to_text(edit.fields, edit.original) != edit.original
        )
        return self.pages.render(
            "editor", asked.desk, section="articles", status=status,
            edit=edit, view=view, preview=preview, error=error, send_error=send_error, sending=sending,
            can_write=asked.desk.can(Role.EDITOR), zone=self.config.tz.key,
            versions=len(versions), drafts=[d for d in drafts if d.article != key],
            revisions_url=(
                f"/desk/articles/{edit.slug}/revisions" if edit.slug else f"/desk/drafts/{edit.draft_key}/revisions"
            ),
            words=words, minutes=revision_service.reading_minutes(words), unsaved=unsaved,
            when=lambda moment: f"{moment.astimezone(self.config.tz):%Y-%m-%d %H:%M}",
        )

    def _sending(
        self, slug: str, now: datetime, view: article_service.ArticleView | None, text: str = ""
    ) -> dict[str, Any]:
        """What the send panel shows: segments with their counts, this article's pending
        schedule (with how far off it is), a held one, its issue's counts while it is being
        sent, how mail leaves, and where it was mailed before it was moved in (`MovedIn`).
        `view` is the article the editor loaded (no second scan), `text` its file."""
        agenda = scheduling.agenda(self.config, self.engine, now=now)
        issue = issue_service.get_issue(self.engine, view.issue_id) if view and view.issue_id else None
        upcoming = [u for u in agenda.scheduled if u.schedule.slug == slug]
        return {
            "issue": issue,
            "moved_in": self._moved_in(view, issue, text),
            "test": self._scheduled_test(upcoming[0].schedule.issue_id, view, now) if upcoming else None,
            "active": subscriber_service.counts(self.engine).get("active", 0),
            "segments": subscriber_service.tags(self.engine),
            "saved": segment_service.list_segments(self.engine),
            "upcoming": upcoming,
            "held": [s for s in agenda.held if s.slug == slug],
            "provider": issue_service.provider_label(self.config),
        }

    def _scheduled_test(
        self, issue_id: int, view: article_service.ArticleView | None, now: datetime
    ) -> tuple[subject_tests.TestPlan, str] | None:
        """The subject test the pending schedule starts with (kept with it, or the one the
        article's file asks for) and when it is decided, in words; None for none, or for a
        file whose test cannot be read (the start holds the send and says why)."""
        try:
            plan = subject_tests.scheduled_plan(self.config, self.engine, issue_id, view.article if view else None,
                                                now=now)
        except PublisherError:
            return None
        if plan is None:
            return None
        if plan.at is not None:
            return plan, f"at {plan.at.astimezone(self.config.tz):%Y-%m-%d %H:%M}"
        minutes = int(plan.wait.total_seconds()) // 60
        span = f"{minutes // 60} hour(s)" if minutes % 60 == 0 else f"{minutes} minutes"
        return plan, f"{span} after the start"

    def _moved_in(
        self, view: article_service.ArticleView | None, issue: issue_service.IssueStatus | None, text: str
    ) -> MovedIn | None:
        """Where the article was mailed before it was moved in, while a send here would be
        refused without "again" (as `issues.refuse_mailed_there` refuses it: no copy sent
        from here yet); None otherwise."""
        if view is None or (issue is not None and issue.total > 0):
            return None
        origin = migration.moved_in(text, draft=view.article.draft)
        if origin is None or origin.mailed is False:
            return None
        local = view.article.date.astimezone(self.config.tz)
        return MovedIn(origin.service, f"{local.day} {local:%B %Y}", sure=origin.mailed is True)

    async def _render_preview(
        self, asked: Asked, fields: EditorFields, original: str, *, checks: bool = True, deep: bool = False
    ) -> dict[str, Any]:
        """Render the previews; with `checks`, also the checks before sending (SpamAssassin
        among them takes seconds, so the editor's live refresh goes without); with `deep`,
        links to other sites are fetched and the DNS records looked up too."""
        text = to_text(fields, original)
        try:
            shown = await run_in_threadpool(article_service.preview_text, self.config, text, now=asked.now)
        except PublisherError as exc:
            return {"error": str(exc)}
        site, key = self.config.site_url, self.previews.new_key()
        email_html, in_email = desk_images(shown.preview.html, site, media_prefix(key))
        web_html, on_page = desk_images(shown.web_html, site, media_prefix(key))
        self.previews.put(Rendered(asked.session.id, email_html, web_html, frozenset(in_email | on_page)), key)
        urls = {"email": f"/desk/preview/{key}/email", "web": f"/desk/preview/{key}/web", "error": ""}
        if not checks:
            return urls
        found, records = await previews.run_checks(
            self.config, shown.article, subject=shown.preview.subject,
            html=shown.preview.html, text=shown.preview.text, external=deep, lookups=deep,
        )
        return {
            **urls, "subject": shown.preview.subject, "checks": found, "dns": records,
            "warnings": shown.preview.warnings,
        }

    async def preview(self, asked: Asked) -> Response:
        shown = await self._render_preview(asked, self._fields(asked), "", checks=False)
        if shown["error"]:
            return JSONResponse({"error": shown["error"]}, status_code=400)
        return JSONResponse({"email": shown["email"], "web": shown["web"]})

    async def frame(self, asked: Asked) -> Response:
        params = asked.request.path_params
        found = self.previews.get(params["key"], asked.session.id)
        if found is None or params["kind"] not in ("email", "web"):
            return HTMLResponse(
                "<!doctype html><title>Preview</title><p>This preview has expired: press Preview again.</p>",
                status_code=404, headers=PREVIEW_HEADERS,
            )
        html = found.email_html if params["kind"] == "email" else found.web_html
        return HTMLResponse(html, headers=PREVIEW_HEADERS)

    async def frame_picture(self, request: Request) -> Response:
        key, name = request.path_params["key"], request.path_params["name"]
        if self.previews.shows(key, name):
            try:
                data, kind = await run_in_threadpool(media_service.read_media_file, self.config, name)
            except PublisherError:
                pass
            else:
                return Response(data, media_type=kind, headers=PICTURE_HEADERS)
        return Response("This preview has expired: press Preview again.", status_code=404,
                        media_type="text/plain", headers=PICTURE_HEADERS)

    # Sending

    def _segment(self, asked: Asked) -> str | None:
        """The tag the Readers choice names (None: everyone, or a saved segment)."""
        chosen = asked.field("tag").strip()
        return None if not chosen or chosen.startswith(SEGMENT_CHOICE) else chosen

    def _saved_segment(self, asked: Asked) -> str | None:
        """The saved segment the Readers choice names ("segment:NAME"), or None."""
        chosen = asked.field("tag").strip()
        return chosen.removeprefix(SEGMENT_CHOICE) or None if chosen.startswith(SEGMENT_CHOICE) else None

    async def test(self, asked: Asked) -> Response:
        slug = asked.request.path_params["slug"]
        raw = asked.field("to").replace(";", ",").replace("\n", ",")
        addresses = [a.strip() for a in raw.split(",") if a.strip()] or [asked.session.user.email]
        try:
            # The editor's script sends its fields along: the copy is the text on screen,
            # saved or not. Without them (no script) it is the saved file.
            text = None
            if "body" in asked.form:
                _view, original = await run_in_threadpool(self._load, slug, asked.now)
                text = to_text(read_form(asked.form), original)
            await run_in_threadpool(
                issue_service.test_send, self.config, slug, addresses, now=asked.now,
                provider_factory=self.provider_factory, text=text,
            )
        except PublisherError as exc:
            return await self._send_error(asked, slug, str(exc))
        return RedirectResponse(f"/desk/articles/{slug}?m=test-sent#send", status_code=303)

    async def schedule(self, asked: Asked) -> Response:
        slug = asked.request.path_params["slug"]
        # The time as typed (a datetime-local field), or one of the two readings of a time
        # that comes twice, which the page offered after the first try.
        at = (asked.field("choice") or asked.field("at")).strip()
        zone = asked.field("timezone").strip()
        local_time = asked.field("local_time") == "on"
        subjects = _subjects(asked)
        form: dict[str, Any] = {
            "at": asked.field("at").strip(), "timezone": zone, "local_time": local_time,
            "tag": asked.field("tag").strip(), "choices": [], "again": False, "subjects": subjects,
            **{name: asked.field(name).strip() for name in ("sample", "wait_hours", "decide_at", "by")},
        }
        try:
            # The zone as an author writes it ("New York", "london"), read as `publisher init`
            # and Settings read it; a name that fits several zones or none is told with them.
            zone = starter.zone_for(zone) if zone else ""
            # A subject test: the fields the send page offers, checked the same way, and the
            # time to decide at as a wall-clock time in the schedule's zone.
            test = self._subject_plan(asked, subjects, zone=zone or None) if any(subjects) else None
            await run_in_threadpool(
                lambda: scheduling.schedule_send(
                    self.config, self.engine, slug, at=at, now=asked.now,
                    tz_name=zone if zone and zone != self.config.tz.key else None,
                    tag=self._segment(asked), local_time=local_time, segment=self._saved_segment(asked),
                    again=asked.field("again") == "on", subject_test=test,
                )
            )
        except MailedAlready as exc:
            form["again"] = True  # the form now offers the box that says so
            return await self._send_error(asked, slug, _tick_again(exc), form)
        except AmbiguousTime as exc:
            form["choices"] = [label for label, _ in exc.choices]
            return await self._send_error(asked, slug, str(exc), form)
        except PublisherError as exc:
            return await self._send_error(asked, slug, str(exc), form)
        return RedirectResponse(f"/desk/articles/{slug}?m=scheduled#send", status_code=303)

    async def send(self, asked: Asked) -> Response:
        slug = asked.request.path_params["slug"]
        tag, segment = self._segment(asked), self._saved_segment(asked)
        try:
            plan = await run_in_threadpool(
                lambda: issue_service.plan_send(self.config, self.engine, slug, now=asked.now, tag=tag, segment=segment)
            )
            saved = await run_in_threadpool(segment_service.list_segments, self.engine)
        except PublisherError as exc:
            return await self._send_error(asked, slug, str(exc))
        # Only an owner may send despite the complaint rate, and only by ticking the box.
        despite = asked.field("despite_complaints") == "on" and asked.desk.can(Role.OWNER)
        stopped = plan.complaints is not None and plan.complaints.level == "stop"
        if asked.field("confirm") and plan.recipients == 0 and plan.issue_id is not None and plan.had_it:
            # A confirmed send that finds everyone served: the second press of a double
            # click, or the back button. It went once; show where it is going, not "nobody".
            return RedirectResponse(f"/desk/issues/{plan.issue_id}?m=already-sent", status_code=303)
        if asked.field("confirm") != str(plan.recipients) or (stopped and not despite):
            # First press, the list changed since the count was shown, or the rate stops it: ask (again).
            agenda = await run_in_threadpool(lambda: scheduling.agenda(self.config, self.engine, now=asked.now))
            return self.pages.render(
                "confirm_send", asked.desk, section="articles", plan=plan, slug=slug,
                tag=tag or "", changed=bool(asked.field("confirm")) and asked.field("confirm") != str(plan.recipients),
                segment=segment or "", audience=asked.field("tag").strip(), saved=saved,
                owner=asked.desk.can(Role.OWNER), unticked=stopped and bool(asked.field("confirm")),
                upcoming=[u for u in agenda.scheduled if u.schedule.slug == slug],
                status=409 if stopped and asked.field("confirm") else 200,
            )
        subjects = _subjects(asked)
        try:
            if any(subjects[1:]) and segment:
                raise InvalidRequest("a subject test goes to everyone or to a tag, not yet to a saved segment")
            if any(subjects[1:]):  # a subject test: the confirm page's "Test subjects first" (A is filled in)
                test = self._subject_plan(asked, subjects)
                started = await run_in_threadpool(
                    lambda: subject_tests.start(
                        self.config, self.engine, slug, test, now=asked.now, tag=tag,
                        despite_complaints=despite, who=asked.desk.account,
                    )
                )
                return RedirectResponse(f"/desk/issues/{started.issue_id}?m=queued#subject-test", status_code=303)
            queued = await run_in_threadpool(
                lambda: issue_service.send_now(
                    self.config, self.engine, slug, now=asked.now, tag=tag, segment=segment,
                    despite_complaints=despite, who=asked.desk.account, again=asked.field("again") == "on",
                )
            )
        except MailedAlready as exc:
            return await self._send_error(asked, slug, _tick_again(exc))
        except PublisherError as exc:
            return await self._send_error(asked, slug, str(exc))
        return RedirectResponse(f"/desk/issues/{queued.issue_id}?m=queued", status_code=303)

    def _subject_plan(self, asked: Asked, subjects: list[str], *, zone: str | None = None) -> subject_tests.TestPlan:
        """The subject test the send or schedule form asks for: the subjects typed, the share
        of readers, the wait in hours or (on the schedule form) a time to decide at, read in
        `zone`; InvalidRequest names the field that is wrong."""
        for letter, subject in zip("ABCD", subjects, strict=False):
            if len(subject) > MAX_SUBJECT:  # the box holds no more; the API refuses it too
                raise InvalidRequest(
                    f"subject test: subject {letter} is {len(subject):,} characters long: keep each subject to "
                    f"{MAX_SUBJECT}"
                )
        decide = asked.field("decide_at").strip().replace("T", " ")
        return subject_tests.parse_plan(
            [s for s in subjects if s], sample_percent=_whole(asked.field("sample"), "sample", 20),
            wait=f"{_whole(asked.field('wait_hours'), 'wait', 4)}h", metric=asked.field("by") or "clicks",
            at=subject_tests.decision_time(self.config, decide, zone) if decide else None, now=asked.now,
        )

    async def cancel(self, asked: Asked) -> Response:
        try:
            await run_in_threadpool(scheduling.cancel_schedule, self.engine, asked.request.path_params["id"])
        except PublisherError as exc:
            return refuse(409, str(exc))
        back = asked.field("back")
        target = back if back.startswith("/desk/") and not back.startswith("//") else "/desk/"
        return RedirectResponse(f"{target}?m=cancelled", status_code=303)

    async def _send_error(
        self, asked: Asked, slug: str, message: str, schedule_form: dict[str, Any] | None = None
    ) -> Response:
        """The editor again, with the refusal at the send panel and what was typed kept."""
        # The services word a refusal for the CLI's "error: ..." line; here it stands alone.
        message = message[:1].upper() + message[1:]
        try:
            view, text = await run_in_threadpool(self._load, slug, asked.now)
        except PublisherError:
            return refuse(400, message)
        return await self._editor(
            asked, _saved_edit(slug, view, text), view=view, send_error=message, status=400,
            schedule_form=schedule_form,
        )


def _saved_edit(slug: str, view: article_service.ArticleView, text: str) -> _Edit:
    """The editor over the saved file; an address the file does not write is the one it is served at."""
    fields = parse_fields(text)
    if not fields.slug:
        fields = replace(fields, slug=view.article.slug)
    return _Edit(slug, fields, fingerprint(text), text)


MAX_SUBJECT = 300
"""The longest subject the send and schedule forms take (their boxes' maxlength, the API's limit)."""


def _tick_again(refused: MailedAlready) -> str:
    """The refusal in the desk's words: the box to tick instead of the command's flag."""
    said = str(refused).split(" To send it anyway:", 1)[0]
    return f"{said} To send it anyway, tick \u201cSend it again anyway\u201d and press again."


def _subjects(asked: Asked) -> list[str]:
    """Subjects A to D as typed (empty ones kept in their places, for the form shown again)."""
    return [asked.field(f"subject_{n}").strip() for n in "abcd"]


def _whole(text: str, name: str, default: int) -> int:
    """A whole number typed in the subject test's form; InvalidRequest names the field."""
    if not text.strip():
        return default
    try:
        return int(text.strip())
    except ValueError as exc:
        raise InvalidRequest(f"subject test: {name} must be a whole number, not {text!r}") from exc
