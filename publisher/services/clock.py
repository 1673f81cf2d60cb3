"""The publication's clock in words: a moment as the author reads it, pure.

The store keeps moments in UTC; whatever tells the author a time (a desk page, a CLI
line, a service's message) says it on the zone of `publication.timezone` and names the
zone after it, as a person would: "2026-12-07 09:03 America/New York". The zone's
name is a label there, so underscores read as spaces and "Etc/UTC" as "UTC"; a form
value, a `<time datetime>` attribute, config and machine-readable output (JSON, CSV,
logs) keep the IANA key and UTC ISO 8601.
"""

from __future__ import annotations

# The functions live with the rest of the pure timing code, below the store, so that its own
# messages ("does not exist in America/New York") say a zone the same way; the faces, which
# may not reach that layer, read them here.
from publisher.schedule.timing import LOCAL_LAYOUT as MINUTE
from publisher.schedule.timing import local_time, zone_label

__all__ = ["MINUTE", "local_time", "zone_label"]
