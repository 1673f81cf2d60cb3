"""The reader's own page: "manage your subscription".

    GET  /manage/{token}   the reader's choices (name, time zone, every article or the
                           digest only while there is a digest, topics among
                           `subscribe.public_tags`), and a way out
    POST /manage/{token}   save them

The token is the one in the "manage your subscription" link of every newsletter's
footer, or the one in the reader's unsubscribe link (the unsubscribe page links here):
that one already lets its holder take the reader off the list, so it may also change
what they get, and the reader needs no account or password. The page's way out posts
to the reader's unsubscribe link, whichever of the two brought them here. A bad token and a token
naming nobody get the same page. GET changes nothing (mail scanners follow links);
saving takes the page's POST. Like the unsubscribe form, no CSRF token: the signed token
in the URL is what another site does not have.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from publisher.config import Config
from publisher.errors import PublisherError
from publisher.services.analytics import reader_summary
from publisher.services.preferences import (
    has_digest,
    may_manage,
    offered_frequencies,
    preferences_of,
    public_topics,
    save_preferences,
)
from publisher.services.subscribers import LinkHolder, link_holder
from publisher.web.pages import Pages

__all__ = ["MANAGE_PAGE", "ManageFlow"]

MANAGE_PAGE = "manage"
MAX_FIELDS = 100
PURPOSES: Final = ("manage", "unsubscribe")
"""The links that open this page."""


class ManageFlow:
    def __init__(
        self, config: Config, engine: Engine, pages: Pages, secret: str, clock: Callable[[], datetime],
    ) -> None:
        self.config = config
        self.engine = engine
        self.pages = pages
        self.secret = secret
        self.clock = clock

    def _holder(self, token: str) -> LinkHolder | None:
        """Who the link names, while they are on the list (active, or yet to confirm)."""
        found = link_holder(self.engine, self.secret, token, purposes=PURPOSES)
        return found if may_manage(found) else None

    def _page(self, token: str, *, status: int = 200, saved: bool = False, error: str = "") -> Response:
        found = self._holder(token)
        prefs = preferences_of(self.engine, found.subscriber.id) if found is not None else None
        if found is None or prefs is None:
            return self.pages.render(MANAGE_PAGE, status=400, state="invalid", prefs=None, topics=(),
                                     frequencies=(), digest=False, saved=False, error="", leave_token="", known=None)
        return self.pages.render(
            MANAGE_PAGE, status=status, state="ask", prefs=prefs, topics=public_topics(self.config),
            frequencies=offered_frequencies(self.config), digest=has_digest(self.config),
            saved=saved, error=error, leave_token=found.unsubscribe_token,
            # What per-person analytics keep about this reader, shown to them: (opened, of last).
            known=reader_summary(self.config, self.engine, found.subscriber.id),
        )

    async def page(self, request: Request) -> Response:
        return await run_in_threadpool(self._page, request.path_params["token"])

    async def save(self, request: Request) -> Response:
        token = request.path_params["token"]
        try:
            async with request.form(max_files=0, max_fields=MAX_FIELDS) as form:
                name = str(form.get("name") or "")
                zone = str(form.get("timezone") or "")
                frequency = str(form.get("frequency") or "")
                chosen = [str(v) for v in form.getlist("topic")]
        except Exception:
            return await run_in_threadpool(self._page, token, status=400, error="The form could not be read.")
        return await run_in_threadpool(self._save, token, name, zone, frequency, chosen)

    def _save(self, token: str, name: str, zone: str, frequency: str, chosen: list[str]) -> Response:
        found = self._holder(token)
        if found is None:
            return self._page(token)
        try:
            save_preferences(
                self.config, self.engine, found.subscriber.id, name=name, zone=zone, frequency=frequency,
                chosen=chosen, now=self.clock(),
            )
        except PublisherError as exc:
            return self._page(token, status=400, error=str(exc))
        return self._page(token, saved=True)
