"""The desk's clock: every time the author reads is on the publication's clock.

The store keeps moments in UTC (SQLite hands some back without a zone; those are UTC
too); the words are services.clock's, shared with the CLI and the services' messages.
A page shows one through the `local` filter, which turns it to the zone of
`publication.timezone` and names that zone after it, as the schedule on Home does:
`{{ issue.created_at | local }}` reads "2026-12-07 09:03 America/New York". A table names
the zone once, in its heading, from `clock_zone`, and its cells say
`| local(named=False)`. A zone kept as a key beside a schedule is shown with
`| zone`. The clock follows the zone's rules, so the same UTC minute reads
an hour apart in July and in January, as the author's own watch does.

Per-day counts (Home's chart, the stats) stay UTC days: moving their edges would change
the numbers, so those pages say UTC where they count.
"""

from __future__ import annotations

from datetime import datetime

import jinja2

from publisher.config import Config
from publisher.services.clock import MINUTE, local_time, zone_label

__all__ = ["install", "local_time", "zone_label"]


def install(env: jinja2.Environment, config: Config) -> None:
    """Give `env` the `local` and `zone` filters and the `clock_zone` name for `config`'s zone.

    `{{ u.zone | zone }}` shows a zone kept as a key ("America/New_York") as a label
    ("America/New York"); a form value or a `<time datetime>` keeps the key itself.
    """
    zone = config.tz

    def local(moment: datetime | None, fmt: str = MINUTE, named: bool = True) -> str:
        return local_time(moment, zone, fmt, named=named)

    env.filters["local"] = local
    env.filters["zone"] = zone_label
    env.globals["clock_zone"] = zone_label(zone)
