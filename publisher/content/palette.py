"""The publication's colours, light and dark, chosen so that text keeps its contrast.

The author picks one colour (`publication.accent_color`); everything else follows from
it here. Links are the accent darkened (on the light page) or lightened (on the dark
page) just enough to reach WCAG's 4.5:1 against every background they sit on, so a
pale yellow accent still gives readable links; text on the accent (buttons, the default
icon) is black or white, whichever contrasts more, which is always at least 4.58:1.
The newsletter, the archive, the subscription pages and the desk's icon read the same
`Palette`, so a colour chosen once shows everywhere.

Pure: a colour in, colours and an SVG out. Contrast and luminance follow WCAG 2.2's
definitions (relative luminance of sRGB, ratio (L1 + 0.05) / (L2 + 0.05)).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape as _escape
from typing import Final
from urllib.parse import quote

__all__ = [
    "DEFAULT_ACCENT",
    "MIN_CONTRAST",
    "Palette",
    "Scheme",
    "contrast",
    "icon_data_uri",
    "icon_svg",
    "is_color",
    "luminance",
    "palette",
]

DEFAULT_ACCENT: Final = "#1d5c63"
MIN_CONTRAST: Final = 4.5
"""WCAG 2.2 AA for body-size text."""

_HEX = re.compile(r"#[0-9a-fA-F]{6}")


def is_color(value: str) -> bool:
    """Whether `value` is written #rrggbb (the one form every mail client understands)."""
    return _HEX.fullmatch(value) is not None


def _rgb(color: str) -> tuple[int, int, int]:
    if not is_color(color):
        raise ValueError(f"{color!r} is not a colour written #rrggbb")
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def _hex(rgb: Sequence[float]) -> str:
    return "#" + "".join(f"{max(0, min(255, round(c))):02x}" for c in rgb)


def luminance(color: str) -> float:
    """WCAG relative luminance of a #rrggbb colour, 0 (black) to 1 (white)."""

    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in _rgb(color))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(one: str, other: str) -> float:
    """WCAG contrast ratio of two colours, 1 to 21."""
    a, b = sorted((luminance(one), luminance(other)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def _mix(color: str, toward: str, share: float) -> str:
    start, end = _rgb(color), _rgb(toward)
    return _hex([s + (e - s) * share for s, e in zip(start, end, strict=True)])


def _readable(color: str, backgrounds: tuple[str, ...], toward: str) -> str:
    """`color` moved toward `toward` (black or white) by the least step that reads at 4.5:1
    on every one of `backgrounds`; unchanged when it already does."""
    for step in range(0, 101):
        candidate = _mix(color, toward, step / 100)
        if all(contrast(candidate, bg) >= MIN_CONTRAST for bg in backgrounds):
            return candidate
    return toward


def _on(color: str) -> str:
    """Black or white text on `color`, whichever contrasts more."""
    return "#000000" if contrast(color, "#000000") >= contrast(color, "#ffffff") else "#ffffff"


@dataclass(frozen=True, slots=True)
class Scheme:
    """One colour scheme (light or dark): backgrounds, text, and the accent's derivatives."""

    page: str
    """Behind the newsletter's card and the site."""
    surface: str
    """The newsletter's card (the article), the site's body."""
    footer: str
    text: str
    heading: str
    muted: str
    rule: str
    code: str
    accent: str
    """The author's colour as chosen (rules, the button); never text on the page."""
    on_accent: str
    """Text on the accent: black or white."""
    link: str
    """Links and the masthead: the accent made readable on `page`, `surface` and `footer`."""

    @property
    def backgrounds(self) -> tuple[str, ...]:
        return (self.page, self.surface, self.footer)


# Greys tuned by hand: muted text reads at 4.5:1 or better on every background of its
# scheme. The accent's three colours are filled in by `palette`.
_LIGHT: Final = Scheme(
    page="#f3f0ea", surface="#ffffff", footer="#faf8f4", text="#24211d", heading="#1b1917",
    muted="#5f584e", rule="#e4ded3", code="#f6f4f0", accent="", on_accent="", link="",
)
_DARK: Final = Scheme(
    page="#121416", surface="#1c1f22", footer="#181b1e", text="#e8e6e3", heading="#f4f2ef",
    muted="#b1aaa0", rule="#3a3f45", code="#262a2e", accent="", on_accent="", link="",
)


@dataclass(frozen=True, slots=True)
class Palette:
    """The light and the dark scheme for one accent colour."""

    accent: str
    light: Scheme
    dark: Scheme


def palette(accent: str = DEFAULT_ACCENT) -> Palette:
    """Both schemes for `accent` (#rrggbb; raises ValueError otherwise)."""
    accent = accent.lower()
    on_accent = _on(accent)

    def scheme(base: Scheme, toward: str) -> Scheme:
        return Scheme(
            page=base.page, surface=base.surface, footer=base.footer, text=base.text, heading=base.heading,
            muted=base.muted, rule=base.rule, code=base.code, accent=accent, on_accent=on_accent,
            link=_readable(accent, base.backgrounds, toward),
        )

    return Palette(accent=accent, light=scheme(_LIGHT, "#000000"), dark=scheme(_DARK, "#ffffff"))


def icon_svg(title: str, colors: Palette) -> str:
    """The default icon: the title's first letter on a rounded square of the accent."""
    letter = next((c for c in title if c.isalnum()), "•").upper()
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64">'
        f'<rect width="64" height="64" rx="14" fill="{colors.accent}"/>'
        '<text x="32" y="44" text-anchor="middle" font-family="Georgia, serif" font-size="38" '
        f'font-weight="bold" fill="{colors.light.on_accent}">{_escape(letter, quote=False)}</text></svg>'
    )


def icon_data_uri(title: str, colors: Palette) -> str:
    """`icon_svg` as a data: URI, for a `<link rel="icon">` that needs no file and no request
    (every page's Content-Security-Policy allows data: images)."""
    return "data:image/svg+xml," + quote(icon_svg(title, colors), safe="")
