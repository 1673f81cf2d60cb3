"""Subscribe (double opt-in), confirm and unsubscribe (RFC 8058 one-click).

What a visitor can learn is the rule here: the subscribe form answers every valid
address with the same page, whatever the list holds, and looks the address up only
after the answer has gone (then records it and sends any confirmation mail), so not
even the timing differs. A bad token and a token naming nobody get the same page. GET
never changes anything, because mail scanners fetch every link in a message; changes
take a POST (the page's button, or a mail client's one-click POST).

The confirmation mail goes to the bare address: whoever filled in the form has not
shown they own the address, so the name they typed is not put in front of its owner.
A confirmation link works while the subscriber's status is as it was when the link
was sent; someone who confirmed and later left comes back only through a new one.

The per-client limit counts the address `limits.client_address` names (the connection's,
or behind a proxy listed in `[server] trusted_proxies`, the address that proxy saw) and
is kept in the database, so that it holds across restarts and processes.

No cookies and no CSRF tokens: a forged subscribe POST can only cause one confirmation
mail (rate-limited per address and per client), and confirm and unsubscribe POSTs are
authorised by the signed token in their URL, which a third party does not have.
"""

from __future__ import annotations

import html
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import Engine
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from publisher import newsletter, tokens
from publisher.config import Config
from publisher.delivery.base import Provider
from publisher.errors import PublisherError, SubscriberError, TokenError
from publisher.mime import MessageTemplate, Recipient, clean_header_text
from publisher.models import Outcome, RenderedIssue, Subscriber, SubscriberStatus
from publisher.services import subscribers as subscriber_service
from publisher.store import client_hits, subscribers
from publisher.web.limits import client_address, client_key, parse_networks
from publisher.web.pages import Pages

__all__ = ["HONEYPOT_FIELD", "PAGES", "SubscribeFlow"]

log = logging.getLogger(__name__)

HONEYPOT_FIELD = "website"
"""Hidden from people by the form's markup; bots that fill every field fill it too."""
PAGES = ("subscribe", "subscribe_done", "confirm", "unsubscribe", "unsubscribed", "manage")
MAX_NAME = 200
MAX_FIELDS = 20
CONFIRM_PLACEHOLDER = "https://confirm.invalid/pubconfirmlink"
"""Stands for the per-address confirm link in the cached rendering; letters only, so
escaping and CSS inlining leave it as it is."""

# A confirmation goes to addresses that asked and are not on the list. A complaint is
# final: that reader told their mail provider this list is spam.
CONFIRMABLE = frozenset(
    {SubscriberStatus.PENDING, SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED}
)
UNSUBSCRIBABLE = frozenset({SubscriberStatus.ACTIVE, SubscriberStatus.PENDING})


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
        self.confirm_interval = timedelta(seconds=float(config["subscribe.confirm_interval"]))
        self.per_ip_per_hour = int(config["subscribe.per_ip_per_hour"])
        self.proxies = parse_networks(config["server.trusted_proxies"])
        _, _, domain = str(config["newsletter.from"]).rpartition("@")
        self.mail_domain = domain.strip(" >") or urlsplit(config.site_url).hostname or "localhost"
        self._confirm_cache: tuple[date, RenderedIssue] | None = None

    async def form(self, request: Request) -> Response:
        return self.pages.render("subscribe", email="", name="", error="")

    async def subscribe(self, request: Request) -> Response:
        """Answer at once; `_register_and_mail` does the rest after the answer is sent."""
        now = self.s.clock()
        peer = request.client.host if request.client else None
        client = client_key(client_address(peer, request.headers.getlist("x-forwarded-for"), self.proxies))
        wait = await run_in_threadpool(
            client_hits.hit, self.s.engine, client, now=now, limit=self.per_ip_per_hour, window=3600.0
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
        name = clean_header_text(form.get("name", ""), limit=MAX_NAME)
        if form.get(HONEYPOT_FIELD):
            return self._done()
        try:
            email = subscribers.normalize_email(raw_email)
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
            to_mail = self._register(email, name, now)
        except Exception:
            log.exception("subscribe request could not be recorded")
            return
        if to_mail is not None:
            self._send_confirmation(to_mail, now)

    def _register(self, email: str, name: str, now: datetime) -> Subscriber | None:
        """Record the request; the subscriber to send a confirmation to, if one is due.

        An existing row is never changed here beyond its confirmation time: whoever
        types an address into the form has not proved they own it.
        """
        found = subscribers.find(self.s.engine, email)
        if found is None:
            try:
                found = subscribers.add(
                    self.s.engine, email, name=name, status=SubscriberStatus.PENDING,
                    source="web", now=now,
                )
            except PublisherError:
                # The same address submitted twice at once: the other request added it.
                found = subscribers.find(self.s.engine, email)
                if found is None:
                    raise
        if found.status not in CONFIRMABLE:
            return None
        if not subscribers.mark_confirm_sent(
            self.s.engine, found.id, now=now, interval=self.confirm_interval
        ):
            return None
        return found

    def _send_confirmation(self, subscriber: Subscriber, now: datetime) -> None:
        try:
            key = subscribers.link_key(self.s.engine, subscriber.id)
            url = tokens.confirm_url(self.s.config, self.s.secret, key, now)
            template = MessageTemplate.from_rendered(self.s.config, self._confirmation(url, now))
            recipient = Recipient(
                delivery_id=None,
                email=subscriber.email,
                name="",
                unsubscribe_url="",
                message_id=f"<confirm.{secrets.token_hex(12)}@{self.mail_domain}>",
            )
            provider = self.s.provider_factory(self.s.config)
            try:
                [result] = provider.send(template, [recipient], now=now)
            finally:
                provider.close()
        except Exception:
            log.exception("confirmation mail to subscriber %s failed", subscriber.id)
            return
        if result.outcome is not Outcome.SENT:
            log.error(
                "confirmation mail to subscriber %s was not sent (%s): %s",
                subscriber.id, result.outcome, result.detail,
            )

    def _confirmation(self, url: str, now: datetime) -> RenderedIssue:
        """The confirmation mail for `url`, rendered once a day and spliced per address.

        Rendering inlines CSS (premailer, ~0.1 s); a burst of sign-ups after a popular
        article should not cost that per address. A template that hides the link
        (the placeholder does not come out verbatim) is rendered per address instead.
        """
        cached = self._confirm_cache
        if cached is None or cached[0] != now.date():
            rendered = newsletter.render_confirmation(self.s.config, CONFIRM_PLACEHOLDER, now)
            cached = (now.date(), rendered)
            self._confirm_cache = cached
        rendered = cached[1]
        if CONFIRM_PLACEHOLDER not in rendered.html or CONFIRM_PLACEHOLDER not in rendered.text:
            return newsletter.render_confirmation(self.s.config, url, now)
        return replace(
            rendered,
            html=rendered.html.replace(CONFIRM_PLACEHOLDER, html.escape(url)),
            text=rendered.text.replace(CONFIRM_PLACEHOLDER, url),
        )

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
        """What a confirm link's page says: ask (pressing would activate), done (active
        now) or invalid. With `now` (a POST) the link is used."""
        try:
            key, sent_at = tokens.verify_confirm(self.s.secret, token)
        except TokenError:
            return "invalid"
        engine = self.s.engine
        holder = subscribers.by_link_key(engine, key)
        if holder is None:
            return "invalid"
        subscriber_id = holder.id
        if now is None:
            if subscribers.can_confirm(engine, subscriber_id, sent_at=sent_at):
                return "ask"
        elif subscribers.confirm(
            engine, subscriber_id, sent_at=sent_at, now=now, detail="double opt-in"
        ):
            return "done"
        found = subscribers.get(engine, subscriber_id)
        if found is not None and found.status is SubscriberStatus.ACTIVE:
            return "done"  # a second press, or an old link of someone who is subscribed
        return "invalid"

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
        found = self._subscriber(token)
        if found is None:
            return False
        if found.status in UNSUBSCRIBABLE:
            # Committed before this answer, so a batch claimed after it leaves the address
            # out. `suppress` only ever strengthens a status: a bounce recorded meanwhile
            # stays a bounce.
            subscribers.suppress(
                self.s.engine, found.email, "unsubscribe", provider="web", detail=how, now=now
            )
        return True

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
