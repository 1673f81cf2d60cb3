"""Wall-clock times in the author's zone, made exact: pure functions, `now` passed in.

The author says "2026-12-01 09:00" and means 09:00 on their wall clock, whatever the
daylight-saving state on that day; these functions turn such words into one UTC instant
and refuse the times that do not exist (spring forward) instead of guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from publisher.errors import AmbiguousTime, ConfigError, InvalidRequest
from publisher.numbers import plain_int

__all__ = [
    "LOCAL_LAYOUT",
    "SendWindow",
    "cron_trigger",
    "exact_instant",
    "in_words",
    "local_time",
    "local_to_utc",
    "next_window",
    "parse_local",
    "parse_wall",
    "parse_wall_clock",
    "parse_window",
    "wall_clock_to_utc",
    "zone",
    "zone_label",
]

LOCAL_LAYOUT = "%Y-%m-%d %H:%M"
"""How a wall-clock time is written down (schedules keep local-time sends in it)."""

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def zone_label(zone: ZoneInfo | str) -> str:
    """The zone as people read it: "America/New York", and "UTC" for Etc/UTC.

    Takes the key as stored beside a schedule too, so a page need not build a ZoneInfo.
    """
    key = zone.key if isinstance(zone, ZoneInfo) else zone
    return key.removeprefix("Etc/").replace("_", " ")


def local_time(moment: datetime | None, zone: ZoneInfo, fmt: str = LOCAL_LAYOUT, *, named: bool = True) -> str:
    """`moment` on `zone`'s clock in `fmt`, followed by the zone's name unless `named` is
    false; nothing for no moment, so an optional time needs no test around it. A moment
    without a zone is UTC, as SQLite hands some back."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    shown = moment.astimezone(zone).strftime(fmt)
    return f"{shown} {zone_label(zone)}" if named else shown


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown time zone {name!r}: use an IANA name such as \"Europe/Berlin\"") from exc


def local_to_utc(naive: datetime, tz: ZoneInfo) -> datetime:
    """One wall-clock time in `tz` as a UTC instant.

    A time skipped by a spring-forward change does not exist and is refused; a time that
    occurs twice (fall back) means its first occurrence.
    """
    aware = naive.replace(tzinfo=tz, fold=0)
    roundtrip = aware.astimezone(UTC).astimezone(tz)
    if roundtrip.replace(tzinfo=None) != naive:
        raise ConfigError(
            f"{naive:%Y-%m-%d %H:%M} does not exist in {zone_label(tz)} (the clocks skip it for daylight saving); "
            "pick a time outside the skipped hour"
        )
    return aware.astimezone(UTC)


def wall_clock_to_utc(naive: datetime, tz: ZoneInfo) -> datetime:
    """The instant the clocks in `tz` show `naive`, for a reader's own zone, where refusing
    is no option: a time the clocks skip comes the skipped span later (09:30 in a missing
    hour is the first real instant after it, 10:30 by the new clock), and a time that occurs
    twice means its first occurrence."""
    return naive.replace(tzinfo=tz, fold=0).astimezone(UTC)


def parse_wall_clock(text: str) -> datetime:
    """"YYYY-MM-DD HH:MM" (or with :SS) as a naive wall-clock time, in no zone yet."""
    for layout in (LOCAL_LAYOUT, "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text.strip(), layout)
        except ValueError:
            continue
    raise ConfigError(f"time {text!r} must look like \"2026-12-01 09:00\"")


_TIME_ONLY_RE = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")
_AT_HINT = '"2026-12-01 09:00", "2026-12-01T09:00" or "09:00"'


def parse_wall(text: str, tz: ZoneInfo, *, now: datetime | None = None) -> datetime:
    """The naive wall-clock time in `tz` that `text` names.

    "YYYY-MM-DD HH:MM" (or with T for the space, or with :SS), or "HH:MM" alone for the
    next time that hour comes in `tz` after `now`. A time written with an offset
    ("...T09:00+01:00", "...Z") is that instant, shown on `tz`'s clock.
    """
    text = text.strip()
    match = _TIME_ONLY_RE.fullmatch(text)
    if match and now is not None:
        hour, minute, second = (int(g or 0) for g in match.groups())
        if hour > 23 or minute > 59 or second > 59:
            raise ConfigError(f"time {text!r} is not a time of day; write it like {_AT_HINT}")
        local_now = now.astimezone(tz)
        wall = datetime.combine(local_now.date(), time(hour, minute, second))
        if wall <= local_now.replace(tzinfo=None):
            wall += timedelta(days=1)
        return wall
    try:
        shape = re.fullmatch(r"(\d{4}-\d{2}-\d{2})[T ](\d{1,2})(:\d{2}.*)", text)
        if not shape:
            raise ValueError(text)
        day, hour_text, rest = shape.groups()
        parsed = datetime.fromisoformat(f"{day}T{int(hour_text):02d}{rest}")
    except ValueError as exc:
        raise ConfigError(f"time {text!r} must look like {_AT_HINT}") from exc
    if parsed.tzinfo is not None:
        return parsed.astimezone(tz).replace(tzinfo=None)
    return parsed


def parse_local(text: str, tz: ZoneInfo, *, now: datetime | None = None) -> datetime:
    """A time as `parse_wall` reads it, in `tz`, as a UTC instant."""
    return local_to_utc(parse_wall(text, tz, now=now), tz)


_OFFSET_RE = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})\s*\Z", re.IGNORECASE)


def exact_instant(text: str, tz: ZoneInfo, *, now: datetime) -> tuple[datetime, datetime]:
    """What an author means by a send time: (the wall-clock time in `tz`, the UTC instant).

    Read as `parse_wall` reads it, but never guessed: a time the clocks skip is refused,
    and a time that occurs twice raises AmbiguousTime with both occurrences written with
    their offsets ("2026-11-01T01:30-04:00"), either of which, given back, is exact.
    InvalidRequest (naming the time and the zone) for anything unreadable.
    """
    try:
        wall = parse_wall(text, tz, now=now)
    except ConfigError as exc:
        raise InvalidRequest(str(exc)) from exc
    if _OFFSET_RE.search(text.strip()):
        instant = datetime.fromisoformat(text.strip().replace(" ", "T", 1).replace("z", "Z")).astimezone(UTC)
        return wall.replace(fold=0), instant
    first, second = wall.replace(tzinfo=tz, fold=0), wall.replace(tzinfo=tz, fold=1)
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != wall:
        raise InvalidRequest(
            f"{wall:%Y-%m-%d %H:%M} does not exist in {zone_label(tz)}: the clocks skip that hour for daylight "
            "saving. Pick a time outside it."
        )
    if first.utcoffset() != second.utcoffset():
        choices = [
            (moment.isoformat(timespec="minutes"), moment.astimezone(UTC)) for moment in (first, second)
        ]
        names = " or ".join(
            f"{moment:%H:%M} {moment.tzname()} ({label[-6:]}{', an hour later' if i else ''})"
            for i, (moment, (label, _)) in enumerate(zip((first, second), choices, strict=True))
        )
        raise AmbiguousTime(
            f"{wall:%Y-%m-%d %H:%M} comes twice in {zone_label(tz)} (the clocks go back that night): say which, "
            f"{names}, by giving the time with its offset ({choices[0][0]} or {choices[1][0]}).",
            choices,
        )
    return wall, first.astimezone(UTC)


def in_words(delta: timedelta) -> str:
    """"in 2 days 3 hours", "in 5 minutes", "in under a minute": how far off a time is."""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return "in under a minute"
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    parts = [(days, "day"), (hours, "hour")] if days else [(hours, "hour"), (minutes, "minute")]
    words = [f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts if n]
    return "in " + " ".join(words)


@dataclass(frozen=True, slots=True)
class SendWindow:
    """Weekdays (0 = Monday) and a wall-clock time at which queued issues go out."""

    days: tuple[int, ...]
    at: time


def parse_window(text: str) -> SendWindow:
    """"tue 08:00", "mon,thu 07:30" or "daily 09:00"."""
    match = re.fullmatch(r"\s*([a-z,]+)\s+(\d{1,2}):(\d{2})\s*", text.lower())
    if not match:
        raise ConfigError(
            f"[schedule] window {text!r} must look like \"tue 08:00\", \"mon,thu 07:30\" or \"daily 09:00\""
        )
    day_words, hour, minute = match.group(1), int(match.group(2)), int(match.group(3))
    if hour > 23 or minute > 59:
        raise ConfigError(f"[schedule] window {text!r}: {hour:02d}:{minute:02d} is not a time of day")
    if day_words == "daily":
        days = tuple(range(7))
    else:
        try:
            days = tuple(sorted({_DAYS.index(word[:3]) for word in day_words.split(",") if word}))
        except ValueError as exc:
            raise ConfigError(
                f"[schedule] window {text!r}: days are mon, tue, wed, thu, fri, sat, sun or daily"
            ) from exc
    return SendWindow(days=days, at=time(hour, minute))


def next_window(window: SendWindow, now: datetime, tz: ZoneInfo) -> datetime:
    """The first window opening strictly after `now`, as UTC, computed on the wall clock."""
    local_now = now.astimezone(tz)
    for offset in range(8):
        day = local_now.date() + timedelta(days=offset)
        if day.weekday() not in window.days:
            continue
        naive = datetime.combine(day, window.at)
        try:
            candidate = local_to_utc(naive, tz)
        except ConfigError:
            # The window falls into a skipped hour this one day: open at the hour after.
            candidate = local_to_utc(naive + timedelta(hours=1), tz)
        if candidate > now:
            return candidate
    raise AssertionError("a weekly window always opens within eight days")


_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Cron's weekday numbers, 0 to 7, as names (0 and 7 are both Sunday)."""



def _number(field: str) -> bool:
    return plain_int(field, digits=4) is not None

def _weekday_names(field: str) -> str:
    """A cron weekday field with its numbers spelled as the days cron means: "1-5" is
    "mon,tue,wed,thu,fri", "*/2" is "sun,tue,thu,sat"; names and anything that is not a
    number stay as written (the scheduler reports what it cannot read)."""
    parts = []
    for part in field.split(","):
        base, _, step = part.partition("/")
        first, _, last = base.partition("-")
        numbers = (first == "*" or _number(first)) and (not last or _number(last)) and (not step or _number(step))
        if not numbers or (first == "*" and not step) or (first == "*" and last):
            parts.append(part)
            continue
        start, end = (0, 6) if first == "*" else (int(first), int(last or first))
        if step and not last and first != "*":
            end = 6
        if not 0 <= start <= end <= 7 or (step and int(step) == 0):
            parts.append(part)
            continue
        parts.extend(_CRON_DAYS[n] for n in range(start, end + 1, int(step or 1)))
    return ",".join(dict.fromkeys(parts))


def cron_trigger(line: str, zone: tzinfo, key: str) -> Any:
    """APScheduler's trigger for the cron `line` (a digest's or a backup's) in `zone`.

    ConfigError, naming `key`, for a line the scheduler cannot read and for one it would
    misread: APScheduler takes "mon#1" as every Monday, without a word, so a weekday with
    "#" is refused and the line that means the first Monday is offered instead. A day of
    the month and a weekday given together must both match (APScheduler's reading).
    Weekdays given as numbers are read as cron reads them (0 and 7 Sunday, 1 Monday, ...
    6 Saturday), not as APScheduler would (0 Monday): they are handed over as names.
    """
    from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped,unused-ignore]

    if "#" in line:
        raise ConfigError(
            f"{key} {line!r} names a weekday with #, which the scheduler reads as every such weekday: "
            "for the first Monday of the month write \"0 8 1-7 * mon\" (a day 1 to 7 that is a Monday)"
        )
    fields = line.split()
    if len(fields) == 5:
        fields[4] = _weekday_names(fields[4])
    try:
        return CronTrigger.from_crontab(" ".join(fields), timezone=zone)
    except ValueError as exc:
        raise ConfigError(
            f"{key} {line!r} is not a cron line ({exc}): write minute, hour, day of month, "
            "month and weekday, e.g. \"0 8 * * mon\" for every Monday at 08:00"
        ) from exc
