"""Charts as server-rendered SVG: no script, readable without styles, and always shown
beside a table of the same numbers for screen readers (the SVG itself is hidden from
them and carries only a title).

Pure: numbers in, markup out. Colours are presentation attributes, not inline styles,
so the desk's Content-Security-Policy (no inline styles) allows them. They are for a light
page; each bar also carries its series' class (`series-0` ...), and desk.css's dark scheme
fills those with `DARK_COLOURS`, so that the bars keep 3:1 on the dark page too.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["COLOURS", "DARK_COLOURS", "Series", "bar_chart"]

# Each passes WCAG's 3:1 for graphics against white,
COLOURS = ("#1f5f99", "#b3261e", "#2e7d32", "#6a3d9a")
# and each of these against the dark scheme's page (desk.css writes them, in this order).
DARK_COLOURS = ("#8dbdf5", "#ff9c8f", "#8fd694", "#c9a8ff")


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    values: tuple[int, ...]


def bar_chart(
    title: str, labels: Sequence[str], series: Sequence[Series], *, width: int = 720, height: int = 200
) -> str:
    """Grouped bars, one group per label: the SVG as a string (markup-safe)."""
    count = max(1, len(labels))
    top = max([1, *(v for s in series for v in s.values)])
    pad_left, pad_bottom, pad_top = 36, 24, 8
    plot_w = width - pad_left - 4
    plot_h = height - pad_bottom - pad_top
    group = plot_w / count
    bar = max(1.0, group / (len(series) + 0.5))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'class="chart" role="img" aria-hidden="true" focusable="false" preserveAspectRatio="none">',
        f"<title>{html.escape(title)}</title>",
        f'<line x1="{pad_left}" y1="{pad_top + plot_h}" x2="{width - 4}" y2="{pad_top + plot_h}" '
        'stroke="#555" stroke-width="1"/>',
        f'<text x="{pad_left - 6}" y="{pad_top + 10}" text-anchor="end" font-size="11" fill="#333">{top}</text>',
        f'<text x="{pad_left - 6}" y="{pad_top + plot_h}" text-anchor="end" font-size="11" fill="#333">0</text>',
    ]
    for index in range(count):
        for number, one in enumerate(series):
            value = one.values[index] if index < len(one.values) else 0
            if value <= 0:
                continue
            h = plot_h * value / top
            x = pad_left + index * group + number * bar
            parts.append(
                f'<rect class="series-{number % len(COLOURS)}" x="{x:.1f}" y="{pad_top + plot_h - h:.1f}" '
                f'width="{bar:.1f}" height="{h:.1f}" fill="{COLOURS[number % len(COLOURS)]}"/>'
            )
    if labels:
        for index in (0, count - 1):
            anchor = "start" if index == 0 else "end"
            x = pad_left if index == 0 else width - 4
            parts.append(
                f'<text x="{x}" y="{height - 6}" text-anchor="{anchor}" font-size="11" fill="#333">'
                f"{html.escape(labels[index])}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)
