"""One part of the desk (articles, issues, subscribers, settings, keys, media, versions):
what every part is built with, and the routes it adds.

Every part works over the same four things, made once by `Desk`: the publication's
config, the store, the desk's pages (templates) and its guard (`DeskAuth`, which builds
each request's `DeskContext`). A part adds what only it needs in its own constructor.
"""

from __future__ import annotations

from sqlalchemy import Engine
from starlette.routing import BaseRoute

from publisher.config import Config
from publisher.web.desk.auth import DeskAuth
from publisher.web.desk.render import DeskPages

__all__ = ["Section"]


class Section:
    """A part of the desk: its routes, over the config, the store, the pages and the guard."""

    def __init__(self, config: Config, engine: Engine, pages: DeskPages, auth: DeskAuth) -> None:
        self.config = config
        self.engine = engine
        self.pages = pages
        self.auth = auth

    def routes(self) -> list[BaseRoute]:
        """The routes this part adds under /desk."""
        raise NotImplementedError
