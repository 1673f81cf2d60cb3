"""Whole numbers that people and other programs type, read as plain ASCII digits.

`str.isdigit` is true for "²" and "①", which `int` refuses, and `int` refuses any run of
more than 4,300 digits: testing with the one and reading with the other turns a hand-made
query, header, attribute or setting into a server error. `plain_int` reads only what both
agree on, and no more digits than any count, size or id here needs.
"""

from __future__ import annotations

__all__ = ["plain_int"]


def plain_int(text: str, *, digits: int = 18) -> int | None:
    """The number `text` spells in 1 to `digits` ASCII digits (no sign, no spaces), else None."""
    if 0 < len(text) <= digits and text.isascii() and text.isdigit():
        return int(text)
    return None
