"""Signup forms (owners and editors): every door a reader can subscribe by, ready to copy.

    GET  /desk/subscribers/signup-forms     the hosted pages, the form to copy onto another
                                            site (for the publication and each topic), the
                                            script line for inline answers, the JSON door
                                            and the sites it answers, networks throttled

Read-only: what the forms say and which sites may answer inline are settings
(`subscribe.consent_text`, `subscribe.allowed_origins`, the topics), changed on the
Settings page. The snippets come from `services.signup.embed_form`, the same text the
tests post, so what an author copies is what the app accepts.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from publisher.accounts import Role
from publisher.services import signup
from publisher.web.desk.auth import Asked
from publisher.web.desk.section import Section

__all__ = ["Door", "SignupFormDesk"]


@dataclass(frozen=True, slots=True)
class Door:
    """One place to subscribe: the publication or one topic, its hosted page and its snippet."""

    topic: str
    page_url: str
    snippet: str


class SignupFormDesk(Section):
    def routes(self) -> list[BaseRoute]:
        guard = self.auth.guarded
        return [
            Route("/subscribers/signup-forms", guard(self.index, Role.EDITOR), methods=["GET", "HEAD"]),
        ]

    async def index(self, asked: Asked) -> Response:
        config = self.config
        base = config.public_url
        doors = [Door("", f"{base}/subscribe", signup.embed_form(config))] + [
            Door(topic, f"{base}/subscribe/{topic}", signup.embed_form(config, topic))
            for topic in signup.topics(config)
        ]
        throttled = await run_in_threadpool(lambda: signup.throttled_networks(self.engine, now=asked.now))
        return self.pages.render(
            "signup_forms", asked.desk, section="subscribers", doors=doors,
            script_line=f'<script src="{base}/subscribe.js" defer></script>',
            json_url=f"{base}/subscribe.json", origins=tuple(config["subscribe.allowed_origins"]),
            consent=signup.consent_text(config), custom_consent=bool(str(config["subscribe.consent_text"]).strip()),
            throttled=throttled,
        )
