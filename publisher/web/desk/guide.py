"""The guide to going live, read in the desk.

    GET  /desk/going-live    docs/going-live.md as a page, with a plain-words opening

Home (while nothing has been sent, or something is missing) and Settings' "Before going
live" link here, so that the author who has only ever seen the desk finds out that going
live needs a server, a mail provider and records at her domain, and that the steps are
written down, without knowing the guide's file exists. The guide is the one in `docs/`,
read when the page is asked for: there is one text to keep true, not a copy in the desk.

An install that does not carry the guide (a wheel built without `docs/`) shows the
opening and says where the guide is instead of failing. The file is the project's own,
but it is rendered with raw HTML off all the same: the page shows its Markdown, never
markup someone slipped into a checkout.
"""

from __future__ import annotations

import functools
from pathlib import Path

from markdown_it import MarkdownIt
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

import publisher
from publisher.accounts import Role
from publisher.web.desk.auth import Asked
from publisher.web.desk.section import Section

__all__ = ["GUIDE_NAME", "GuideDesk", "guide_html"]

GUIDE_NAME = "going-live.md"
_PACKAGE = Path(publisher.__file__).resolve().parent
# Inside the package when an install carries it there; beside the package in a checkout
# (`pip install -e .`, or the source folder the guide itself has you clone).
_PLACES = (_PACKAGE / "_docs" / GUIDE_NAME, _PACKAGE.parent / "docs" / GUIDE_NAME)


def _guide_path() -> Path | None:
    return next((place for place in _PLACES if place.is_file()), None)


@functools.lru_cache(maxsize=4)
def _rendered(path: Path, stamp: float) -> str:
    # Keyed by the file's time: an updated guide is shown as it is now, not as first read.
    del stamp
    markdown = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = markdown.parse(path.read_text(encoding="utf-8"))
    # The page has its own title: the guide's is dropped and its sections sit a level
    # under the page's heading for them, so that the outline reads as one page.
    if len(tokens) >= 3 and tokens[0].type == "heading_open" and tokens[0].tag == "h1":
        tokens = tokens[3:]
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(int(token.tag[1]) + 1, 6)}"
    return str(markdown.renderer.render(tokens, markdown.options, {}))


def guide_html() -> str:
    """The guide as HTML, or "" when this install does not carry it."""
    path = _guide_path()
    if path is None:
        return ""
    try:
        return _rendered(path, path.stat().st_mtime)
    except (OSError, UnicodeDecodeError):
        return ""


class GuideDesk(Section):
    def routes(self) -> list[BaseRoute]:
        return [Route("/going-live", self.auth.reading(self.guide, Role.VIEWER), methods=["GET", "HEAD"])]

    def guide(self, asked: Asked) -> Response:
        return self.pages.render("guide", asked.desk, section="settings", guide=guide_html())
