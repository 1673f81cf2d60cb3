"""The desk's clock: every time the author reads is on the publication's clock.

The store keeps moments in UTC (SQLite hands some back without a zone; those are UTC
too). A page shows one through the `local` filter, which turns it to the zone of
`publication.timezone` and names that zone after it, as the schedule on Home does:
`{{ issue.created_at | local }}` reads "2026-12-07 09:03 America/New_York". A table names
the zone once, in its heading, from `clock_zone`, and its cells say
`| local(named=False)`. The clock follows the zone's rules, so the same UTC minute reads
an hour apart in July and in January, as the author's own watch does.

Per-day counts (Home's chart, the stats) stay UTC days: moving their edges would change
the numbers, so those pages say UTC where they count.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import jinja2

from publisher.config import Config

__all__ = ["install", "local_time", "zone_label"]

MINUTE = "%Y-%m-%d %H:%M"


def zone_label(zone: ZoneInfo) -> str:
    """The zone as the schedule names it: "America/New_York", and "UTC" for Etc/UTC."""
    return zone.key.removeprefix("Etc/")


def local_time(moment: datetime | None, zone: ZoneInfo, fmt: str = MINUTE, *, named: bool = True) -> str:
    """`moment` on `zone`'s clock in `fmt`, followed by the zone's name unless `named` is
    false; nothing for no moment, so an optional time needs no test around it."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    shown = moment.astimezone(zone).strftime(fmt)
    return f"{shown} {zone_label(zone)}" if named else shown


def install(env: jinja2.Environment, config: Config) -> None:
    """Give `env` the `local` filter and the `clock_zone` name for `config`'s zone."""
    zone = config.tz

    def local(moment: datetime | None, fmt: str = MINUTE, named: bool = True) -> str:
        return local_time(moment, zone, fmt, named=named)

    env.filters["local"] = local
    env.globals["clock_zone"] = zone_label(zone)
