"""The app's own HTML pages (subscribe, confirm, unsubscribe), in the archive's look.

They extend templates/web/base.html with the same context the build gives it, so an
author who restyles the archive restyles these too, and they speak the publication's
language from the same catalogs. Every page is sent with headers that
keep it out of frames and caches and keep its token out of Referer headers.
"""

from __future__ import annotations

from typing import Any

import jinja2
from starlette.responses import HTMLResponse

from publisher.config import Config
from publisher.errors import TemplateError
from publisher.services import pages as feeds
from publisher.services.pages import template_environment

__all__ = ["PAGE_HEADERS", "Pages"]

FEED_LINKS: tuple[tuple[feeds.FeedKind, str], ...] = (
    ("rss", "RSS"), ("atom", "Atom"), ("json", "JSON Feed"),
)

PAGE_HEADERS = {
    "cache-control": "no-store",
    "content-security-policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
}


class Pages:
    """Renders templates/web/<name>.html into responses."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.env = template_environment(config)
        title = str(config["publication.title"])
        self.base: dict[str, Any] = {
            "site": {
                "title": title,
                "description": str(config["publication.description"]),
                "author": str(config["publication.author"]),
                "language": str(config["publication.language"]),
                "url": config.site_url + "/",
                "subscribe_url": config.public_url + "/subscribe",
                "logo": feeds.absolute_url(config, str(config["publication.logo"])),
            },
            "feeds": [
                {
                    "label": label,
                    "title": f"{title} ({label})",
                    "type": feeds.FEED_TYPES[kind],
                    "href": feeds.feed_url(config, kind),
                }
                for kind, label in FEED_LINKS
            ],
            "hubs": (),
            "public_url": config.public_url,
        }

    def gettext(self, message: str) -> str:
        """`message` in the publication's language (for texts the app puts into a page)."""
        return feeds.translations(str(self.config["publication.language"])).gettext(message)

    def check(self, *names: str) -> None:
        """Load each page once at start-up, so a broken override fails `publisher serve`
        rather than the first reader who clicks a link."""
        for name in names:
            self._template(name)

    def _template(self, name: str) -> jinja2.Template:
        try:
            return self.env.get_template(f"web/{name}.html")
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(
                f"template {exc.name!r} not found in {self.config.path_of('build.templates')} "
                "or the defaults; check the file name of your override"
            ) from exc
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"{exc.filename or exc.name}:{exc.lineno}: {exc.message}; fix the template"
            ) from exc

    def render(self, page: str, /, *, status: int = 200, **context: Any) -> HTMLResponse:
        try:
            html = self._template(page).render(**self.base, **context)
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template web/{page}.html failed to render: {exc}") from exc
        return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)
