"""The author's desk at /desk: write, check, test, schedule and follow issues, manage the list.

Server-rendered pages over the same service functions the CLI and the API call; the
desk only reads forms and shows results. Every route but the sign-in page and the
static files needs a session (see `auth`), and each names the least role it needs.

    GET  /desk/                               Home
    GET  /desk/static/{file}                  the desk's CSS and JS (no session needed)

and the sections, each in its own module: `signin` (the password, the code after it, an
OpenID Connect provider, signing out), `account` (two-step sign-in, recovery codes and
sessions), `articles` (the editor, previews, preflight and sending), `revisions` (the
editor's autosaves and saved versions), `issues`, `subscribers` and its `bounces` (the
review queue of mail that came back), `settings` and its `keys`, and `guide` (the guide to
going live, read in the desk).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from publisher.accounts import Role, SessionPolicy
from publisher.config import Config
from publisher.services.providers import Provider
from publisher.web.desk import home
from publisher.web.desk.account import AccountDesk
from publisher.web.desk.articles import ArticleDesk
from publisher.web.desk.auth import Asked, DeskAuth, SameOrigin
from publisher.web.desk.bounces import BounceDesk
from publisher.web.desk.guide import GuideDesk
from publisher.web.desk.issues import IssueDesk
from publisher.web.desk.keys import KeyDesk
from publisher.web.desk.media import MediaDesk
from publisher.web.desk.moving import MovingDesk
from publisher.web.desk.render import DeskPages, static_dir
from publisher.web.desk.revisions import RevisionDesk
from publisher.web.desk.segments import SegmentDesk
from publisher.web.desk.sequences import SequenceDesk
from publisher.web.desk.settings import SettingsDesk
from publisher.web.desk.signin import SignInDesk
from publisher.web.desk.signup_forms import SignupFormDesk
from publisher.web.desk.subscribers import SubscriberDesk
from publisher.web.limits import Proxies
from publisher.web.routing import IndexedRouter

__all__ = ["Desk", "DeskSettings"]

PAGES = (
    "login", "home", "articles", "editor", "conflict", "confirm_send", "issues", "issue",
    "subscribers", "subscriber", "import", "imported", "settings", "keys",
    "revisions", "revision", "media", "login_code", "account", "moving",
    "bounces", "bounce",
    "segments", "segment",
    "sequences", "sequence", "sequence_step",
    "signup_forms", "guide",
)


@dataclass(frozen=True, slots=True)
class DeskSettings:
    config: Config
    engine: Engine
    secret: str
    clock: Callable[[], datetime]
    provider_factory: Callable[[Config], Provider]


class Desk:
    """The desk's routes for one publication, to mount at /desk."""

    def __init__(self, settings: DeskSettings) -> None:
        self.s = settings
        self.pages = DeskPages(settings.config)
        self.pages.check(*PAGES)
        self.auth = DeskAuth(
            settings.engine, SessionPolicy.from_config(settings.config), settings.clock,
            Proxies.from_list(settings.config["server.trusted_proxies"]), public_url=settings.config.public_url,
            publication=str(settings.config["publication.title"]), locale=str(settings.config["publication.language"]),
        )
        config, engine = settings.config, settings.engine
        self.sections = (
            SignInDesk(config, engine, self.pages, self.auth, secret=settings.secret, clock=settings.clock,
                       provider_factory=settings.provider_factory),
            AccountDesk(config, engine, self.pages, self.auth, secret=settings.secret, clock=settings.clock),
            ArticleDesk(config, engine, self.pages, self.auth, settings.provider_factory),
            IssueDesk(config, engine, self.pages, self.auth),
            BounceDesk(config, engine, self.pages, self.auth),
            SignupFormDesk(config, engine, self.pages, self.auth),
            SubscriberDesk(config, engine, self.pages, self.auth),
            SegmentDesk(config, engine, self.pages, self.auth),
            SettingsDesk(config, engine, self.pages, self.auth, settings.provider_factory),
            KeyDesk(config, engine, self.pages, self.auth),
            MediaDesk(config, engine, self.pages, self.auth),
            RevisionDesk(config, engine, self.pages, self.auth),
            MovingDesk(config, engine, self.pages, self.auth),
            SequenceDesk(config, engine, self.pages, self.auth),
            GuideDesk(config, engine, self.pages, self.auth),
        )

    def mount(self) -> Mount:
        return Mount("/desk", app=SameOrigin(IndexedRouter(self.routes()), self.auth))

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.auth.reading(self.home, Role.VIEWER), methods=["GET", "HEAD"]),
            *(route for section in self.sections for route in section.routes()),
            Mount("/static", app=StaticFiles(directory=str(static_dir())), name="desk-static"),
        ]

    # Pages

    def home(self, asked: Asked) -> Response:
        view = home.home_view(self.s.config, self.s.engine, asked.now)
        return self.pages.render("home", asked.desk, section="home", view=view)
