"""Desk pages: templates/desk/<name>.html rendered with the signed-in user's context.

Every page is sent with a strict Content-Security-Policy: scripts and style sheets only
from the desk's own static files, frames only from the desk (the newsletter previews),
forms posting only back to it, and the page itself never framed by another site.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from publisher.accounts import DeskSession, Role, allows
from publisher.config import Config
from publisher.content.templates import default_templates_dir
from publisher.errors import TemplateError

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
MESSAGES = {
    "saved": "Saved.",
    "test-sent": "The test copy is on its way.",
    "scheduled": "Scheduled.",
    "queued": "The issue is being sent. Follow it below.",
    "cancelled": "The schedule is cancelled.",
    "retrying": "The failed copies are queued again.",
    "added": "Subscriber saved.",
    "unsubscribed": "Unsubscribed. The address stays on file so that no import brings it back.",
    "erased": "Erased: the address and its personal data are gone.",
    "imported": "Imported.",
    "user-added": "User added.",
    "user-removed": "User removed.",
    "key-revoked": "Key revoked: requests with it are refused from now on.",
}
"""Notices shown after a redirect, by code (`?m=saved`): a link cannot make the desk say
anything else."""
NAV = (
    ("home", "Home", "/desk/"),
    ("articles", "Articles", "/desk/articles"),
    ("issues", "Issues", "/desk/issues"),
    ("subscribers", "Subscribers", "/desk/subscribers"),
    ("media", "Media", "/desk/media"),
    ("settings", "Settings", "/desk/settings"),
)


def static_dir() -> Path:
    return default_templates_dir() / "desk" / "static"


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
        )
        self.env.globals["publication"] = str(config["publication.title"])
        self.env.globals["nav"] = NAV
        self.env.globals["Role"] = Role
        self.env.globals["allows"] = allows

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
        request: Request,
        session: DeskSession | None,
        /,
        *,
        status: int = 200,
        section: str = "",
        **context: Any,
    ) -> HTMLResponse:
        csrf = session.csrf if session else context.pop("csrf", "")
        context.setdefault("message", MESSAGES.get(request.query_params.get("m", ""), ""))
        try:
            html = self._template(name).render(
                request=request, session=session, section=section, csrf=csrf, **context
            )
        except jinja2.TemplateError as exc:
            raise TemplateError(f"desk template {name}.html failed to render: {exc}") from exc
        return HTMLResponse(html, status_code=status, headers=DESK_HEADERS)
