"""Subscribe (double opt-in) at every door, confirm and unsubscribe (RFC 8058 one-click).

The doors: the hosted page `/subscribe` and one per topic, `/subscribe/<topic>` (the
topic chosen already); a form copied onto another site, which is a plain POST to
`/subscribe` that answers with a page and a link back; and `POST /subscribe.json`, which
the optional script `/subscribe.js` calls to show the answer inline. Browsers let a page
of another site read that answer only when its origin is in `subscribe.allowed_origins`
(or is the publication's own): a preflight from any other origin gets no CORS headers,
and its POST is refused (403) before anything is counted or stored. A request without
an `Origin` (not a browser's script) is answered as the form is. Every door goes through
`services.signup`: the same limits, honeypot, one answer and double opt-in.

What a visitor can learn is the rule here: the subscribe form answers every valid
address with the same page, whatever the list holds, and looks the address up only
after the answer has gone (then records it and sends any confirmation mail), so not
even the timing differs. A bad token and a token naming nobody get the same page. GET
never changes anything, because mail scanners fetch every link in a message; changes
take a POST (the page's button, or a mail client's one-click POST).

Whether a confirmation mail goes out, and the mail itself, are the service layer's
(`services.subscribers.ConfirmationMailer`, shared with the API and the command line);
what a request, a confirm link and an unsubscribe link do is `services.signup`'s.
It goes to the bare address: whoever filled in the form has not
shown they own the address, so the name they typed is not put in front of its owner.
A confirmation link works while the subscriber's status is as it was when the link
was sent; someone who confirmed and later left comes back only through a new one.

The per-client limit counts the client `limits.Proxies.client` names (the connection's
address, or behind a proxy listed in `[server] trusted_proxies`, the address that proxy
saw in `X-Forwarded-For` or `Forwarded`) and is kept in the database, so that it holds
across restarts and processes.

No cookies and no CSRF tokens: a forged subscribe POST can only cause one confirmation
mail (rate-limited per address and per client), and confirm and unsubscribe POSTs are
authorised by the signed token in their URL, which a third party does not have.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Engine
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from publisher.config import Config
from publisher.errors import SubscriberError
from publisher.models import Subscriber
from publisher.services import pages as page_service
from publisher.services import signup
from publisher.services import subscribers as subscriber_service
from publisher.services.providers import Provider
from publisher.services.subscribers import ConfirmationMailer
from publisher.web.limits import Proxies
from publisher.web.pages import Pages

__all__ = ["HONEYPOT_FIELD", "PAGES", "SCRIPT", "SubscribeFlow", "origin_of"]

log = logging.getLogger(__name__)

HONEYPOT_FIELD = "website"
"""Hidden from people by the form's markup; bots that fill every field fill it too."""
PAGES = ("subscribe", "subscribe_done", "confirm", "unsubscribe", "unsubscribed", "manage")
MAX_FIELDS = 20
SCRIPT = resources.files("publisher.web").joinpath("subscribe.js").read_bytes()
"""The optional script a copied form loads for inline answers: vendored, no third-party fetch."""
CORS_HEADERS = {
    "access-control-allow-methods": "POST",
    "access-control-allow-headers": "content-type",
    "access-control-max-age": "600",
}


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL, lower-case, as browsers send it in `Origin`; "" for none."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    default = {"http": 80, "https": 443}[parts.scheme]
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


@dataclass(frozen=True, slots=True)
class FlowSettings:
    config: Config
    engine: Engine
    secret: str
    provider_factory: Callable[[Config], Provider]
    clock: Callable[[], datetime]


class SubscribeFlow:
    """The endpoints; blocking work (database, provider) runs in the thread pool."""

    def __init__(self, settings: FlowSettings, pages: Pages) -> None:
        self.s = settings
        self.pages = pages
        config = settings.config
        self.limits = signup.Limits.of(config)
        self.proxies = Proxies.from_list(config["server.trusted_proxies"])
        self.confirmations = ConfirmationMailer(
            config, settings.engine, secret=settings.secret, provider_factory=settings.provider_factory
        )
        self.consent = signup.consent_text(config)
        self.translations = page_service.translations(str(config["publication.language"]))
        own = {origin_of(config.public_url), origin_of(config.site_url)} - {""}
        self.origins = frozenset(config["subscribe.allowed_origins"]) | own

    def _page(self, *, status: int = 200, topic: str = "", email: str = "", name: str = "",
              error: str = "") -> Response:
        return self.pages.render(
            "subscribe", status=status, email=email, name=name, error=error, topic=topic, consent=self.consent,
        )

    async def form(self, request: Request) -> Response:
        wanted = request.path_params.get("topic", "")
        topic = signup.topic(self.s.config, wanted)
        if wanted and not topic:
            return self._page(status=404, error=self.pages.gettext(
                "There is no such topic here. You can subscribe to the whole publication below."
            ))
        return self._page(topic=topic)

    async def subscribe(self, request: Request) -> Response:
        """Answer at once; `_register_and_mail` does the rest after the answer is sent."""
        now = self.s.clock()
        wait = await self._count(request, now)
        form = await _fields(request)
        door = self._door(form.get("door", ""), request.path_params.get("topic") or form.get("topic", ""))
        if wait:
            response = self._page(status=429, topic=door.topic, error=self._wait_text(wait))
            response.headers["retry-after"] = str(int(wait))
            return response
        raw_email = form.get("email", "").strip()
        name = signup.clean_name(form.get("name", ""))
        back = self._back(request)
        if form.get(HONEYPOT_FIELD):
            return self._done(back)
        try:
            email = signup.address(raw_email)
        except SubscriberError:
            return self._page(
                status=400, topic=door.topic, email=raw_email[:320], name=name,
                error=self.pages.gettext("That does not look like an email address. Please check it and try again."),
            )
        return self._done(back, BackgroundTask(self._register_and_mail, email, name, now, door))

    async def _count(self, request: Request, now: datetime) -> float:
        client = self.proxies.client(request)
        return await run_in_threadpool(
            lambda: signup.count_attempt(self.s.engine, client, now=now, limits=self.limits)
        )

    def _door(self, kind: str, topic: str) -> signup.Door:
        """The door a form names (a copied form says "embed"); its topic only when readers may choose it."""
        return signup.Door("embed" if kind == "embed" else "web", signup.topic(self.s.config, topic))

    def _back(self, request: Request) -> str:
        """Where "back" leads: the page the form was on when its site is allowed, else the publication."""
        referer = request.headers.get("referer", "")
        origin = origin_of(referer)
        if origin and origin in self.origins:
            return referer if len(referer) <= 2000 else origin + "/"
        return ""

    def _done(self, back: str = "", task: BackgroundTask | None = None) -> Response:
        response = self.pages.render("subscribe_done", back_url=back)
        response.background = task
        return response

    async def preflight(self, request: Request) -> Response:
        """CORS preflight of /subscribe.json: the allowed headers for an allowed origin, none for any other."""
        origin = request.headers.get("origin", "")
        if origin not in self.origins or request.headers.get("access-control-request-method") != "POST":
            return Response(status_code=403, headers={"vary": "Origin"})
        return Response(
            status_code=204, headers={"access-control-allow-origin": origin, "vary": "Origin", **CORS_HEADERS}
        )

    async def subscribe_json(self, request: Request) -> Response:
        """The JSON door: the form's rules and answers, as JSON, for a script on an allowed site."""
        origin = request.headers.get("origin")
        if origin is not None and origin not in self.origins:
            return _json(403, {
                "title": "Origin not allowed",
                "detail": "This site may not send signups here. The publication's owner can add it to "
                          "subscribe.allowed_origins.",
            })
        cors = {"access-control-allow-origin": origin} if origin is not None else {}
        now = self.s.clock()
        wait = await self._count(request, now)
        if wait:
            return _json(429, {
                "title": "Too many signups",
                "detail": self._wait_text(wait),
                "retry_after": int(wait),
            }, {"retry-after": str(int(wait)), **cors})
        body = await _json_fields(request)
        if body is None:
            return _json(400, {
                "title": "Not JSON",
                "detail": 'The body must be a JSON object such as {"email": "ada@example.org"}.',
            }, cors)
        door = signup.Door("json", signup.topic(self.s.config, body.get("topic", "")))
        raw_email = body.get("email", "").strip()
        name = signup.clean_name(body.get("name", ""))
        answer = {"status": "check_inbox", "detail": self._check_inbox()}
        if body.get(HONEYPOT_FIELD):
            return _json(202, answer, cors)
        try:
            email = signup.address(raw_email)
        except SubscriberError:
            return _json(400, {
                "title": "Not an email address", "field": "email",
                "detail": self.pages.gettext(
                    "That does not look like an email address. Please check it and try again."
                ),
            }, cors)
        response = _json(202, answer, cors)
        response.background = BackgroundTask(self._register_and_mail, email, name, now, door)
        return response

    def _wait_text(self, seconds: float) -> str:
        """A refusal for coming too fast, with the whole minutes to wait, in the publication's language."""
        count = max(1, math.ceil(seconds / 60))
        return self.translations.ngettext(
            "Too many signups from your network. Please try again in %(count)d minute.",
            "Too many signups from your network. Please try again in %(count)d minutes.",
            count,
        ) % {"count": count}

    def _check_inbox(self) -> str:
        title = str(self.s.config["publication.title"])
        return self.pages.gettext(
            "If that address can receive %(title)s, a message is on its way to it. "
            "Open it and press the confirmation button to start your subscription."
        ) % {"title": title}

    async def script(self, request: Request) -> Response:
        return Response(SCRIPT, media_type="text/javascript; charset=utf-8", headers={
            "cache-control": "public, max-age=3600", "x-content-type-options": "nosniff",
            "access-control-allow-origin": "*",
        })

    def _register_and_mail(self, email: str, name: str, now: datetime, door: signup.Door) -> None:
        """Runs after the answer has been sent (a BackgroundTask in the thread pool)."""
        try:
            found = signup.register(self.s.engine, email, name, now=now, door=door, consent=self.consent)
            self.confirmations.send(found, now=now)
        except Exception:
            log.exception("subscribe request for a new or known address could not be completed")

    def _subscriber(self, token: str) -> Subscriber | None:
        """Who an unsubscribe token names, or None for a bad token and for nobody alike."""
        found = subscriber_service.link_holder(self.s.engine, self.s.secret, token, purposes=("unsubscribe",))
        return found.subscriber if found is not None else None

    async def confirm_page(self, request: Request) -> Response:
        state = await run_in_threadpool(self._confirm_state, request.path_params["token"], None)
        return self._confirm_answer(state)

    async def confirm(self, request: Request) -> Response:
        now = self.s.clock()
        state = await run_in_threadpool(self._confirm_state, request.path_params["token"], now)
        return self._confirm_answer(state)

    def _confirm_state(self, token: str, now: datetime | None) -> str:
        return signup.confirm_state(self.s.engine, self.s.secret, token, now)

    def _confirm_answer(self, state: str) -> Response:
        return self.pages.render("confirm", status=400 if state == "invalid" else 200, state=state)

    async def unsubscribe_page(self, request: Request) -> Response:
        found = await run_in_threadpool(self._subscriber, request.path_params["token"])
        if found is None:
            return self._invalid_unsubscribe()
        token = request.path_params["token"]
        return self.pages.render(
            "unsubscribe", state="ask", manage_url=f"{self.s.config.public_url}/manage/{token}"
        )

    async def unsubscribe(self, request: Request) -> Response:
        """RFC 8058: a POST with `List-Unsubscribe=One-Click` (or the page's button) is
        the whole request; the answer is 200 with no redirect and no cookie."""
        now = self.s.clock()
        form = await _fields(request)
        how = "one-click" if form.get("List-Unsubscribe") == "One-Click" else "web page"
        done = await run_in_threadpool(
            self._unsubscribe, request.path_params["token"], now, how
        )
        if not done:
            return self._invalid_unsubscribe()
        return self.pages.render("unsubscribed")

    def _unsubscribe(self, token: str, now: datetime, how: str) -> bool:
        return signup.unsubscribe_by_link(self.s.engine, self.s.secret, token, now=now, how=how)

    def _invalid_unsubscribe(self) -> Response:
        return self.pages.render("unsubscribe", status=400, state="invalid")


async def _fields(request: Request) -> dict[str, str]:
    """The text fields of a form body (the first of each name), or none when the body is
    not a form: one-click POSTs vary, and a malformed one still means "unsubscribe".
    File parts are refused, so nothing is spooled and no upload stands in for a field."""
    try:
        async with request.form(max_files=0, max_fields=MAX_FIELDS) as form:
            fields: dict[str, str] = {}
            for key, value in form.multi_items():
                if isinstance(value, str):
                    fields.setdefault(key, value)
            return fields
    except Exception:  # malformed multipart, a file part, too many fields: an empty form
        return {}


def _json(status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    media = "application/problem+json" if status >= 400 else "application/json"
    if status >= 400:
        body = {"status": status, **body}
    return JSONResponse(dict(body), status_code=status, media_type=media,
                        headers={"cache-control": "no-store", "vary": "Origin", **(headers or {})})


async def _json_fields(request: Request) -> dict[str, str] | None:
    """The text values of a JSON object body (a form body is read as the form's), or None."""
    if "json" not in request.headers.get("content-type", ""):
        return await _fields(request)
    try:
        data = json.loads(await request.body())
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    return {str(k): v for k, v in list(data.items())[:MAX_FIELDS] if isinstance(v, str)}
