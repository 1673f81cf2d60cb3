"""The pixel (`/o/<token>.gif`) and click links (`/c/<token>`) of newsletters sent with analytics on.

The pixel always answers the same transparent GIF, counted or not, with no cookie and
`no-store`. A click link whose token verifies and names a link of its issue answers a 302
to that link, and only to it; anything else (a tampered token, an unknown link) answers
a plain page with a link to the publication's home, never a redirect, so the address can
not be used to send anyone elsewhere.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from publisher.config import Config
from publisher.services import analytics
from publisher.web.limits import Proxies

__all__ = ["Tracking"]

_HEADERS = {"cache-control": "no-store, private", "referrer-policy": "no-referrer"}


class Tracking:
    """The two public routes; `now` is the app's clock."""

    def __init__(self, config: Config, db: Engine, secret: str, now: Callable[[], datetime]) -> None:
        self.config = config
        self.db = db
        self.secret = secret
        self.now = now
        self.proxies = Proxies.from_list(config["server.trusted_proxies"])

    def _seen(self, request: Request) -> analytics.Request:
        return analytics.Request(
            method=request.method,
            user_agent=request.headers.get("user-agent", ""),
            ip=self.proxies.address(request) or "",
        )

    async def pixel(self, request: Request) -> Response:
        token = str(request.path_params["token"])
        await run_in_threadpool(
            analytics.open_, self.config, self.db, self.secret, token, self._seen(request), now=self.now()
        )
        return Response(analytics.PIXEL, media_type="image/gif", headers=_HEADERS)

    async def click(self, request: Request) -> Response:
        token = str(request.path_params["token"])
        url = await run_in_threadpool(
            analytics.click, self.config, self.db, self.secret, token, self._seen(request), now=self.now()
        )
        if url is None:
            home = html.escape(self.config.site_url)
            title = html.escape(str(self.config["publication.title"]))
            body = (
                "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Link not valid</title>"
                "<meta name=\"robots\" content=\"noindex\"></head><body>"
                f"<h1>This link is not valid</h1><p>It may have been cut or changed on its way. "
                f"You can find every issue on <a href=\"{home}\">{title}</a>.</p></body></html>"
            )
            return HTMLResponse(body, status_code=404, headers=_HEADERS)
        return RedirectResponse(url, status_code=302, headers=_HEADERS)
