"""Welcome and drip sequences: their steps, each step's preview and checks, who is at which step.

    GET  /desk/sequences                         every sequence: what starts it, its steps, its readers
    POST /desk/sequences                         a new step (of a new sequence or one there is)
    GET  /desk/sequences/{name}                  one sequence: its steps with their delays, how
                                                 many readers stand at each; the readers (owners)
    GET  /desk/sequences/{name}/{step}           one step: the email as readers get it, the
                                                 checks before sending, and its text to edit
    POST /desk/sequences/{name}/{step}           save the step's text (editors)
    GET  /desk/sequences/{name}/{step}/email     the step's email for the page's sandboxed frame

The rules (and what an edit does to readers already in a sequence) are
`services.sequences`'; a text that is not a step is refused with its line and nothing is
written. Saving never sends: the daemon's minute job hands due steps to the ledger.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from publisher.accounts import Role
from publisher.errors import InvalidRequest, NotFound, PublisherError
from publisher.services import sequences as service
from publisher.web.desk.auth import Asked, refuse
from publisher.web.desk.render import PREVIEW_HEADERS
from publisher.web.desk.section import Section

__all__ = ["SequenceDesk"]

NEW_STEP = "---\ntitle: \ndelay: 3d\nsummary: \n---\n\n"
"""What the new-step form starts with."""


class SequenceDesk(Section):
    def routes(self) -> list[BaseRoute]:
        guard = self.auth.guarded
        return [
            Route("/sequences", guard(self.index, Role.VIEWER), methods=["GET", "HEAD"]),
            Route("/sequences", guard(self.create, Role.EDITOR), methods=["POST"]),
            Route("/sequences/{name}", guard(self.one, Role.VIEWER), methods=["GET", "HEAD"]),
            Route("/sequences/{name}/{step}", guard(self.step, Role.VIEWER), methods=["GET", "HEAD"]),
            Route("/sequences/{name}/{step}", guard(self.save, Role.EDITOR), methods=["POST"]),
            Route("/sequences/{name}/{step}/email", guard(self.email, Role.VIEWER), methods=["GET", "HEAD"]),
        ]

    async def index(self, asked: Asked, *, error: str = "", form: dict[str, str] | None = None,
                    status_code: int = 200) -> Response:
        try:
            found = await run_in_threadpool(service.overview, self.config, self.engine)
        except PublisherError as exc:
            found, error = [], error or str(exc)
        return self.pages.render(
            "sequences", asked.desk, section="sequences", status=status_code, sequences=found, error=error,
            folder=str(self.config["sequences.folder"]), send_hour=int(self.config["sequences.send_hour"]),
            form=form or {"name": "", "step": "", "text": NEW_STEP},
        )

    async def create(self, asked: Asked) -> Response:
        name, step, text = asked.field("name").strip(), asked.field("step").strip(), asked.field("text")
        try:
            await run_in_threadpool(service.save_step, self.config, name, step, text)
        except (InvalidRequest, PublisherError) as exc:
            return await self.index(asked, error=str(exc), form={"name": name, "step": step, "text": text},
                                    status_code=400)
        return RedirectResponse(f"/desk/sequences/{name}/{step}?m=step-saved", status_code=303)

    async def one(self, asked: Asked) -> Response:
        name = asked.request.path_params["name"]
        owner = asked.desk.can(Role.OWNER)
        try:
            (view,) = await run_in_threadpool(service.overview, self.config, self.engine, name)
            readers = await run_in_threadpool(service.readers, self.config, self.engine, name) if owner else []
        except NotFound as exc:
            return refuse(404, str(exc))
        except PublisherError as exc:
            return refuse(400, str(exc))
        return self.pages.render(
            "sequence", asked.desk, section="sequences", view=view, readers=readers, owner=owner,
            send_hour=int(self.config["sequences.send_hour"]),
        )

    async def step(self, asked: Asked, *, error: str = "", text: str | None = None,
                   status_code: int = 200) -> Response:
        name, step = asked.request.path_params["name"], asked.request.path_params["step"]
        checked = None
        try:
            if text is None:
                text = await run_in_threadpool(service.step_text, self.config, name, step)
            checked = await run_in_threadpool(lambda: service.check_step(self.config, name, step, now=asked.now))
        except NotFound as exc:
            if text is None:
                return refuse(404, str(exc))
            error = error or str(exc)
        except PublisherError as exc:
            error = error or str(exc)
        return self.pages.render(
            "sequence_step", asked.desk, section="sequences", status=status_code, name=name, step=step,
            checked=checked, text=text or "", error=error,
        )

    async def save(self, asked: Asked) -> Response:
        name, step = asked.request.path_params["name"], asked.request.path_params["step"]
        text = asked.field("text")
        try:
            await run_in_threadpool(service.save_step, self.config, name, step, text)
        except PublisherError as exc:
            return await self.step(asked, error=str(exc), text=text, status_code=400)
        return RedirectResponse(f"/desk/sequences/{name}/{step}?m=step-saved", status_code=303)

    async def email(self, asked: Asked) -> Response:
        name, step = asked.request.path_params["name"], asked.request.path_params["step"]
        try:
            checked = await run_in_threadpool(lambda: service.check_step(self.config, name, step, now=asked.now))
        except PublisherError as exc:
            return HTMLResponse(f"<p>{type(exc).__name__}</p>", status_code=404, headers=PREVIEW_HEADERS)
        return HTMLResponse(checked.html, headers=PREVIEW_HEADERS)
