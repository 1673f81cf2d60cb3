"""Untrusted HTML into HTML that is safe to put in a page, a feed or an email.

Everything an article's author (or a watched feed) writes as raw HTML passes through
`clean_html` before it reaches a reader. The policy is an allow-list: what is not named
here is dropped. Scripts, frames, plugins, forms and styles go with their content; event
handlers and `style` attributes go; only http(s), mailto and tel URLs survive. Relative
URLs are resolved against the page the HTML belongs to, because feed readers and mail
clients have no page to resolve them against.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import nh3

__all__ = ["clean_html", "to_uri"]

_TAGS = frozenset({
    "a", "abbr", "b", "bdi", "bdo", "blockquote", "br", "caption", "cite", "code", "col",
    "colgroup", "dd", "del", "details", "dfn", "div", "dl", "dt", "em", "figcaption",
    "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li",
    "mark", "ol", "p", "pre", "q", "rp", "rt", "ruby", "s", "samp", "section", "small",
    "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th",
    "thead", "time", "tr", "u", "ul", "var", "wbr",
})

# Dropped together with everything inside them: their content is code, or a widget that
# makes no sense once the tag is gone.
_DROP_WITH_CONTENT = frozenset({
    "applet", "embed", "form", "frame", "frameset", "iframe", "math", "noembed",
    "noframes", "noscript", "object", "script", "select", "style", "svg", "template",
    "textarea", "title",
})

_ATTRIBUTES: dict[str, set[str]] = {
    "*": {"id", "title", "lang", "dir"},
    "a": {"href", "hreflang", "class"},
    "abbr": {"title"},
    "blockquote": {"cite"},
    "code": {"class"},
    "col": {"span"},
    "colgroup": {"span"},
    "del": {"cite", "datetime"},
    "hr": {"class"},
    "img": {"src", "alt", "width", "height"},
    "ins": {"cite", "datetime"},
    "li": {"value", "class"},
    "ol": {"start", "reversed", "type", "class"},
    "q": {"cite"},
    "section": {"class"},
    "sup": {"class"},
    "td": {"colspan", "rowspan", "headers", "align", "style"},
    "th": {"colspan", "rowspan", "headers", "align", "scope", "style"},
    "time": {"datetime"},
}

# `target` is allowed only with these values; a link that opens a new window gets
# rel="noopener" so the opened page cannot navigate this one.
_TARGETS = {"a": {"target": {"_blank", "_self", "_parent", "_top"}}}

_SCHEMES = frozenset({"http", "https", "mailto", "tel"})

# Classes the Markdown renderer emits (footnotes, fenced code); nothing else survives, so
# pasted HTML cannot borrow the page's own styles.
_CLASS_RE = re.compile(
    r"footnote-ref|footnote-backref|footnotes-sep|footnotes|footnotes-list|footnote-item"
    r"|language-[A-Za-z0-9_+#.-]{1,40}"
)
_DIMENSION_RE = re.compile(r"\d{1,5}%?")
_TEXT_ALIGN_RE = re.compile(r"\s*text-align\s*:\s*(left|right|center)\s*;?\s*", re.IGNORECASE)

_URL_ATTRIBUTES = frozenset({"href", "src", "cite"})

# Characters a URI may carry as they are (RFC 3986 reserved and unreserved, and "%" of an
# existing escape); anything else is percent-encoded as UTF-8.
_URI_SAFE = "!#$&'()*+,/:;=?@[]~-._%"
_URI_CHARS = r"[A-Za-z0-9!#$&'()*+,/:;=?@\[\]~._-]*"
_PLAIN_URI = re.compile(rf"[A-Za-z][A-Za-z0-9+.-]*:{_URI_CHARS}(?:%[0-9A-Fa-f]{{2}}{_URI_CHARS})*")
_FRAGMENT_LINK = re.compile(r"#[A-Za-z0-9_.:-]*")
_BARE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")

# nh3 serialises every attribute as name="value" with `"` escaped, so this reads an
# opening <a> tag exactly, even when a URL inside it contains ">".
_A_TAG_RE = re.compile(r'<a((?:\s+[^\s=>/]+(?:="[^"]*")?)*)(\s*/?)>')


def to_uri(url: str) -> str:
    """`url` as a URI that feeds, mail clients and validators accept.

    Authors write image paths with spaces, paste addresses with accents and hosts in
    their own script. Those are IRIs at best; a feed's URIs must be plain ASCII. The host
    becomes IDNA ("xn--..."), and spaces, non-ASCII characters and a "%" that starts no
    escape are percent-encoded. A URI that is already valid comes back unchanged.
    """
    url = url.strip()
    if _PLAIN_URI.fullmatch(url):
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if not netloc.isascii():
        userinfo, at, host_port = netloc.rpartition("@")
        host, colon, port = host_port.partition(":")
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            host = quote(host, safe="")
        netloc = f"{quote(userinfo, safe=':%')}{at}{host}{colon}{port}"

    def encode(part: str) -> str:
        return quote(_BARE_PERCENT.sub("%25", part), safe=_URI_SAFE)

    uri = urlunsplit((parts.scheme, netloc, encode(parts.path), encode(parts.query), encode(parts.fragment)))
    # urlunsplit drops an empty query or fragment; keep what the author wrote.
    if parts.fragment == "" and url.endswith("#"):
        uri += "#"
    return uri


def _filter_attribute(tag: str, name: str, value: str) -> str | None:
    if name in _URL_ATTRIBUTES:
        # Relative URLs are made absolute (and encoded) by `url_relative` after this.
        value = value.strip()
        return to_uri(value) if urlsplit(value).scheme else value
    if name == "class":
        kept = [c for c in value.split() if _CLASS_RE.fullmatch(c)]
        return " ".join(kept) or None
    if name in ("width", "height"):
        return value.strip() if _DIMENSION_RE.fullmatch(value.strip()) else None
    if name == "style":
        # Only the alignment Markdown tables write; anything else in a style is dropped.
        match = _TEXT_ALIGN_RE.fullmatch(value)
        return f"text-align:{match.group(1).lower()}" if match else None
    return value


def _add_noopener(match: re.Match[str]) -> str:
    attributes = match.group(1)
    if " target=" not in attributes:
        return match.group(0)
    return f'<a{attributes} rel="noopener"{match.group(2)}>'


def clean_html(html: str, *, base_url: str) -> str:
    """Sanitise `html` and make every relative link and image absolute against `base_url`.

    `base_url` is the address of the page the HTML will appear on (an article's archive
    page), so relative URLs mean what they would mean to a browser showing that page.
    Pure; safe to call on untrusted input of any size.
    """

    page = base_url.partition("#")[0]

    def absolute(url: str) -> str:
        url = url.strip()
        # Footnotes make fragment links the common case; urljoin is slow for them.
        if _FRAGMENT_LINK.fullmatch(url):
            return page + url
        return to_uri(urljoin(base_url, url))

    cleaned: str = nh3.clean(
        html,
        tags=set(_TAGS),
        clean_content_tags=set(_DROP_WITH_CONTENT),
        attributes=_ATTRIBUTES,
        tag_attribute_values=_TARGETS,
        attribute_filter=_filter_attribute,
        url_schemes=set(_SCHEMES),
        url_relative=absolute,
        link_rel=None,
        strip_comments=True,
    )
    if "target=" not in cleaned:
        return cleaned
    return _A_TAG_RE.sub(_add_noopener, cleaned)
