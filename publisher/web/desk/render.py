"""Desk pages: templates/desk/<name>.html rendered with the request's `DeskContext`.

Every page is sent with a strict Content-Security-Policy: scripts and style sheets only
from the desk's own static files, frames only from the desk (the newsletter previews),
forms posting only back to it, and the page itself never framed by another site.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import jinja2
from starlette.responses import HTMLResponse

from publisher.accounts import Role, allows
from publisher.config import Config
from publisher.errors import TemplateError
from publisher.services.pages import default_templates_dir, icon_url
from publisher.services.previews import desk_words
from publisher.web.desk import clock
from publisher.web.desk.context import DeskContext

__all__ = ["DESK_HEADERS", "PREVIEW_HEADERS", "DeskPages", "static_dir"]

DESK_HEADERS = {
    "cache-control": "no-store",
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    ),
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
}
PREVIEW_HEADERS = {
    "cache-control": "no-store",
    # A newsletter as a reader sees it: its inline CSS, remote images, no scripts at all,
    # and shown only inside the desk's own sandboxed frame.
    "content-security-policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; "
        "frame-ancestors 'self'; sandbox"
    ),
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}
NAV = (
    ("home", "Home", "/desk/"),
    ("articles", "Articles", "/desk/articles"),
    ("issues", "Issues", "/desk/issues"),
    ("subscribers", "Subscribers", "/desk/subscribers"),
    ("sequences", "Sequences", "/desk/sequences"),
    ("media", "Media", "/desk/media"),
    ("settings", "Settings", "/desk/settings"),
)


def static_dir() -> Path:
    return default_templates_dir() / "desk" / "static"


class _CompiledTemplates(jinja2.BytecodeCache):
    """The desk's templates, compiled once per process: an app rebuilt after a settings
    change (the daemon's reload) reuses them. Jinja checks each one against its source's
    checksum, so an edited template is compiled again."""

    def __init__(self) -> None:
        self._kept: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with self._lock:
            code = self._kept.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        code = bucket.bytecode_to_string()
        with self._lock:
            self._kept[bucket.key] = code


# Every DeskPages builds its environment with the same options, so one cache serves all.
_COMPILED = _CompiledTemplates()


class DeskPages:
    """The desk's templates. They are the desk's own: a publication's overrides of the
    archive and emails do not reach them."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(default_templates_dir())),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            bytecode_cache=_COMPILED,
            # The desk's templates ship with the package and change only with it: looking
            # at each file's time on every page cost more than a page's SQL.
            auto_reload=False,
            # Every one kept in a plain dict: Jinja's bounded cache moves the page's entry
            # to the front of a list on every look-up, a scan of the whole list each page.
            cache_size=-1,
        )
        self.env.globals["nav"] = NAV
        self.env.globals["Role"] = Role
        self.env.globals["allows"] = allows
        self.env.globals["icon"] = icon_url(config)
        self.env.filters["desk_words"] = desk_words  # config keys said as Settings (mail.preflight)
        clock.install(self.env, config)  # times on the publication's clock: `| local`

    def check(self, *names: str) -> None:
        for name in names:
            self._template(name)

    def _template(self, name: str) -> jinja2.Template:
        try:
            return self.env.get_template(f"desk/{name}.html")
        except jinja2.TemplateError as exc:
            raise TemplateError(f"desk template {name}.html cannot be loaded: {exc}; reinstall publisher") from exc

    def render(
        self,
        name: str,
        desk: DeskContext,
        /,
        *,
        status: int = 200,
        section: str = "",
        **context: Any,
    ) -> HTMLResponse:
        """Page `name` with the request's context; a page may pass its own `message`."""
        context.setdefault("message", desk.message)
        try:
            html = self._template(name).render(
                request=desk.request, session=desk.session, section=section, csrf=desk.csrf,
                publication=desk.publication, locale=desk.locale, desk=desk, **context,
            )
        except jinja2.TemplateError as exc:
            raise TemplateError(f"desk template {name}.html failed to render: {exc}") from exc
        return HTMLResponse(html, status_code=status, headers=DESK_HEADERS)
