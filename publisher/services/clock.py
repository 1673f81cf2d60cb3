"""The publication's clock in words: a moment as the author reads it, pure.

The store keeps moments in UTC; whatever tells the author a time (a desk page, a CLI
line, a service's message) says it on the zone of `publication.timezone` and names the
zone after it, as a person would: "2026-12-07 09:03 America/New York". The zone's
name is a label there, so underscores read as spaces and "Etc/UTC" as "UTC"; a form
value, a `<time datetime>` attribute, config and machine-readable output (JSON, CSV,
logs) keep the IANA key and UTC ISO 8601.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

__all__ = ["MINUTE", "local_time", "zone_label"]

MINUTE = "%Y-%m-%d %H:%M"


def zone_label(zone: ZoneInfo | str) -> str:
    """The zone as people read it: "America/New York", and "UTC" for Etc/UTC.

    Takes the key as stored beside a schedule too, so a page need not build a ZoneInfo.
    """
    key = zone.key if isinstance(zone, ZoneInfo) else zone
    return key.removeprefix("Etc/").replace("_", " ")


def local_time(moment: datetime | None, zone: ZoneInfo, fmt: str = MINUTE, *, named: bool = True) -> str:
    """`moment` on `zone`'s clock in `fmt`, followed by the zone's name unless `named` is
    false; nothing for no moment, so an optional time needs no test around it. A moment
    without a zone is UTC, as SQLite hands some back."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    shown = moment.astimezone(zone).strftime(fmt)
    return f"{shown} {zone_label(zone)}" if named else shown
