"""The one rule of the keyset pages the lists are read in (subscribers, the desk's listing,
an issue's readers): what a page hands back as the cursor of the next."""

from __future__ import annotations

__all__ = ["next_after"]


def next_after(last: int | None, *, has_more: bool, looked_to: int | None) -> int | None:
    """Where the next page starts: where a search stopped without filling this one
    (`looked_to`), else this page's last id when more follow; None at the end."""
    if looked_to is not None:
        return looked_to
    return last if has_more else None
