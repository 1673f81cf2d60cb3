"""Subscribe (double opt-in), confirm and unsubscribe (RFC 8058 one-click).

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

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from publisher.config import Config
from publisher.errors import SubscriberError
from publisher.models import Subscriber
from publisher.services import signup
from publisher.services import subscribers as subscriber_service
from publisher.services.providers import Provider
from publisher.services.subscribers import ConfirmationMailer
from publisher.web.limits import Proxies
from publisher.web.pages import Pages

__all__ = ["HONEYPOT_FIELD", "PAGES", "SubscribeFlow"]

log = logging.getLogger(__name__)

HONEYPOT_FIELD = "website"
"""Hidden from people by the form's markup; bots that fill every field fill it too."""
PAGES = ("subscribe", "subscribe_done", "confirm", "unsubscribe", "unsubscribed", "manage")
MAX_FIELDS = 20


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
        self.per_ip_per_hour = int(config["subscribe.per_ip_per_hour"])
        self.proxies = Proxies.from_list(config["server.trusted_proxies"])
        self.confirmations = ConfirmationMailer(
            config, settings.engine, secret=settings.secret, provider_factory=settings.provider_factory
        )

    async def form(self, request: Request) -> Response:
        return self.pages.render("subscribe", email="", name="", error="")

    async def subscribe(self, request: Request) -> Response:
        """Answer at once; `_register_and_mail` does the rest after the answer is sent."""
        now = self.s.clock()
        client = self.proxies.client(request)
        wait = await run_in_threadpool(
            lambda: signup.count_attempt(self.s.engine, client, now=now, limit=self.per_ip_per_hour)
        )
        if wait:
            response = self.pages.render(
                "subscribe", status=429, email="", name="",
                error=self.pages.gettext("Too many attempts from your network. Please try again later."),
            )
            response.headers["retry-after"] = str(int(wait))
            return response
        form = await _fields(request)
        raw_email = form.get("email", "").strip()
        name = signup.clean_name(form.get("name", ""))
        if form.get(HONEYPOT_FIELD):
            return self._done()
        try:
            email = signup.address(raw_email)
        except SubscriberError:
            return self.pages.render(
                "subscribe", status=400, email=raw_email[:320], name=name,
                error=self.pages.gettext("That does not look like an email address. Please check it and try again."),
            )
        return self._done(BackgroundTask(self._register_and_mail, email, name, now))

    def _done(self, task: BackgroundTask | None = None) -> Response:
        response = self.pages.render("subscribe_done")
        response.background = task
        return response

    def _register_and_mail(self, email: str, name: str, now: datetime) -> None:
        """Runs after the answer has been sent (a BackgroundTask in the thread pool)."""
        try:
            found = self._register(email, name, now)
            self.confirmations.send(found, now=now)
        except Exception:
            log.exception("subscribe request for a new or known address could not be completed")

    def _register(self, email: str, name: str, now: datetime) -> Subscriber:
        return signup.register(self.s.engine, email, name, now=now)

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
