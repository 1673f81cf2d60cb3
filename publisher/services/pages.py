"""What the web face's pages are rendered with: the publication's template environment
(its own templates over the defaults), the addresses of its feeds and logo, and its words
in its language.

The site's pages and the desk render through Jinja like the build does; this module is
the one place the web face takes those parts from, so a change to how the build finds a
template or names a feed reaches every page at once. Pure lookups: nothing is written.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from babel.support import NullTranslations

from publisher.config import Config
from publisher.content import i18n, palette
from publisher.content.templates import default_templates_dir, template_environment
from publisher.site import feeds
from publisher.site.feeds import FEED_TYPES, FeedKind

__all__ = [
    "FEED_TYPES",
    "FeedKind",
    "absolute_url",
    "default_templates_dir",
    "feed_url",
    "icon_svg",
    "icon_url",
    "template_environment",
    "translations",
]


def absolute_url(config: Config, path: str) -> str:
    """`path` (or an absolute URL) as an absolute URL on the publication's site."""
    return feeds.absolute_url(config, path)


def feed_url(config: Config, kind: FeedKind) -> str:
    """The public address of one of the publication's feeds."""
    return feeds.feed_url(config, kind)


def icon_url(config: Config) -> str:
    """The icon of pages served by the app: the publication's logo when it is served from
    the app's own origin (the desk's Content-Security-Policy allows images from there and
    data: URIs only), else the default icon made from the title and the accent colour."""
    logo = absolute_url(config, str(config["publication.logo"]))
    if logo and _origin(logo) == _origin(config.public_url):
        return logo
    colors = palette.palette(str(config["publication.accent_color"]))
    return palette.icon_data_uri(str(config["publication.title"]), colors)


def icon_svg(config: Config) -> str:
    """The default icon as an SVG document: what `/favicon.ico` answers when the build has none."""
    colors = palette.palette(str(config["publication.accent_color"]))
    return palette.icon_svg(str(config["publication.title"]), colors)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


def translations(language: str) -> NullTranslations:
    """The message catalog of `language` (English where there is none)."""
    return i18n.translations(language)
