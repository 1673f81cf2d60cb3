"""A picture with a caption: `![what it shows](media/harbor.jpg "The caption")`. Pure.

A paragraph that holds one picture and nothing else, written with a title in quotes after
its address, becomes `<figure><img ...><figcaption>The caption</figcaption></figure>`, the
shape Ghost, Wix and WordPress give a captioned picture, which the site's stylesheet and
the email's inlined one already set under the picture in smaller, muted type. The title
moves into the caption rather than staying a tooltip that says it twice.

The alt text stays what the picture shows, for readers who cannot see it; the caption is
what everyone reads under it. A picture inside a sentence, or one without a title, is left
as CommonMark renders it: nothing an author wrote before captions existed changes.
"""

from __future__ import annotations

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.rules_core import StateCore
from markdown_it.token import Token

__all__ = ["figure_plugin"]


def figure_plugin(md: MarkdownIt) -> None:
    """Render each lone picture with a title as a figure with that title as its caption."""
    md.core.ruler.after("inline", "figure", _figures)


def _lone_picture(inline: Token) -> Token | None:
    """The paragraph's one picture, or None when it holds anything else (words, a second
    picture); the line breaks around a picture typed on its own line do not count."""
    found: Token | None = None
    for child in inline.children or ():
        if child.type == "image" and found is None:
            found = child
        elif child.type in ("softbreak", "hardbreak") or (child.type == "text" and not child.content.strip()):
            continue
        else:
            return None
    return found


def _figures(state: StateCore) -> None:
    tokens = state.tokens
    for index in range(1, len(tokens) - 1):
        opening, inline, closing = tokens[index - 1], tokens[index], tokens[index + 1]
        # A paragraph inside a list item or a quote is "tight" there (hidden): it renders no
        # <p>, and a figure in its place would break the list's shape. Only visible ones.
        if opening.type != "paragraph_open" or opening.hidden or inline.type != "inline":
            continue
        picture = _lone_picture(inline)
        caption = str(picture.attrGet("title") or "").strip() if picture is not None else ""
        if picture is None or not caption:
            continue
        del picture.attrs["title"]
        opening.tag = closing.tag = "figure"
        words = Token("html_inline", "", 0)
        words.content = f"<figcaption>{escapeHtml(caption)}</figcaption>"
        inline.children = [picture, words]
