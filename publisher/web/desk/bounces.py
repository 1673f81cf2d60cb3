"""Bounces read from mail (owners and editors): the review queue, and each message kept.

    GET  /desk/subscribers/bounces              messages no rule could read, oldest first
    GET  /desk/subscribers/bounces/{id:int}     one message: what it was read as, what was
                                                done, and its text as it arrived
    POST /desk/subscribers/bounces/{id:int}     decide on one: apply it as a hard bounce, a
                                                soft one or a complaint, or ignore it

The decisions are `services.bounce_intake.apply_decision`'s: one per message, so two
people pressing at once see the second told it was done. A message's text is shown as
text (escaped), never as HTML: a bounce is written by strangers.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from publisher.accounts import Role
from publisher.errors import Conflict, InvalidRequest, NotFound, PublisherError
from publisher.services import bounce_intake
from publisher.web.desk.auth import Asked, refuse
from publisher.web.desk.section import Section

__all__ = ["BounceDesk"]

SHOWN_BYTES = 64 * 1024
"""Of a message's kept bytes, how many the page shows (a report is at the top)."""


class BounceDesk(Section):
    def routes(self) -> list[BaseRoute]:
        guard = self.auth.guarded
        return [
            Route("/subscribers/bounces", guard(self.index, Role.EDITOR), methods=["GET", "HEAD"]),
            Route("/subscribers/bounces/{id:int}", guard(self.one, Role.EDITOR), methods=["GET", "HEAD"]),
            Route("/subscribers/bounces/{id:int}", guard(self.decide, Role.EDITOR), methods=["POST"]),
        ]

    async def index(self, asked: Asked) -> Response:
        waiting = await run_in_threadpool(bounce_intake.review_queue, self.engine)
        return self.pages.render("bounces", asked.desk, section="subscribers", waiting=waiting)

    async def one(self, asked: Asked, *, error: str = "", status_code: int = 200) -> Response:
        message_id = int(asked.request.path_params["id"])
        try:
            found = await run_in_threadpool(bounce_intake.message, self.engine, message_id)
        except NotFound as exc:
            return refuse(404, str(exc))
        text = found.raw[:SHOWN_BYTES].decode("utf-8", "replace")
        cut = len(found.raw) > SHOWN_BYTES or found.size > len(found.raw)
        return self.pages.render(
            "bounce", asked.desk, section="subscribers", status=status_code, m=found, text=text, cut=cut,
            error=error, open_for_decision=found.outcome == "review" and found.decided_at is None,
        )

    async def decide(self, asked: Asked) -> Response:
        message_id = int(asked.request.path_params["id"])
        decision = asked.field("decision")
        try:
            await run_in_threadpool(
                lambda: bounce_intake.apply_decision(
                    self.config, self.engine, message_id, decision, who=asked.desk.account, now=asked.now,
                )
            )
        except NotFound as exc:
            return refuse(404, str(exc))
        except (Conflict, InvalidRequest) as exc:
            return await self.one(asked, error=str(exc), status_code=409 if isinstance(exc, Conflict) else 400)
        except PublisherError as exc:
            return await self.one(asked, error=str(exc), status_code=503)
        return RedirectResponse("/desk/subscribers/bounces?m=bounce-decided", status_code=303)
