"""Wall-clock times in the author's zone, across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from publisher.errors import ConfigError
from publisher.schedule import timing
from publisher.schedule.timing import local_to_utc, next_window, parse_local, parse_window

NY = ZoneInfo("America/New_York")


def test_parse_local_before_and_after_dst() -> None:
    """09:00 means 09:00 on the wall clock on both sides of the spring-forward change."""
    assert parse_local("2026-03-07 09:00", NY) == datetime(2026, 3, 7, 14, 0, tzinfo=UTC)  # EST
    assert parse_local("2026-03-09 09:00", NY) == datetime(2026, 3, 9, 13, 0, tzinfo=UTC)  # EDT


def test_skipped_hour_is_refused() -> None:
    """02:30 on the spring-forward night does not exist in New York, and saying so beats guessing."""
    with pytest.raises(ConfigError, match="does not exist in America/New York"):
        parse_local("2026-03-08 02:30", NY)


def test_repeated_hour_means_first_occurrence() -> None:
    """01:30 on the fall-back night happens twice; the first (EDT) one is meant."""
    assert local_to_utc(datetime(2026, 11, 1, 1, 30), NY) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)


def test_bad_time_text() -> None:
    """A time that does not look like one says what it should look like."""
    with pytest.raises(ConfigError, match="2026-12-01 09:00"):
        parse_local("next tuesday", NY)


def test_window_parsing() -> None:
    """Windows name weekdays (or daily) and a time."""
    assert parse_window("tue 08:00").days == (1,)
    assert parse_window("mon,thu 07:30").days == (0, 3)
    assert parse_window("daily 09:00").days == tuple(range(7))
    with pytest.raises(ConfigError, match="tue 08:00"):
        parse_window("someday")


def test_next_window_across_dst() -> None:
    """The Tuesday 08:00 window after the change is 08:00 EDT, not 08:00 EST."""
    window = parse_window("tue 08:00")
    before = next_window(window, datetime(2026, 3, 1, 12, 0, tzinfo=UTC), NY)  # Sunday
    after = next_window(window, before, NY)
    assert before == datetime(2026, 3, 3, 13, 0, tzinfo=UTC)
    assert after == datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def test_next_window_is_strictly_later() -> None:
    """At the very minute of a window, the next one is a week on."""
    window = parse_window("tue 08:00")
    at = datetime(2026, 12, 1, 13, 0, tzinfo=UTC)  # Tuesday 08:00 EST
    assert next_window(window, at, NY) == datetime(2026, 12, 8, 13, 0, tzinfo=UTC)


def test_wall_clock_in_a_skipped_hour_comes_the_gap_later() -> None:
    """A reader's 02:30 on a spring-forward night is 03:30 by the new clock, never an error;
    an hour that occurs twice means its first occurrence."""
    berlin = ZoneInfo("Europe/Berlin")
    skipped = timing.wall_clock_to_utc(datetime(2026, 3, 29, 2, 30), berlin)
    assert skipped == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert skipped.astimezone(berlin).strftime("%H:%M") == "03:30"
    twice = timing.wall_clock_to_utc(datetime(2026, 10, 25, 2, 30), berlin)
    assert twice == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


def test_wall_clock_text_is_read_without_a_zone() -> None:
    """A stored local time reads back as date and minutes; anything else names the form."""
    assert timing.parse_wall_clock("2026-12-02 09:30") == datetime(2026, 12, 2, 9, 30)
    with pytest.raises(ConfigError, match="2026-12-01 09:00"):
        timing.parse_wall_clock("9:30")


def test_iso_times_and_hour_alone() -> None:
    """`T` may join date and time; "9:00" alone is the next 09:00 in the zone; an offset is honoured."""
    now = datetime(2026, 11, 27, 13, 0, tzinfo=UTC)  # 08:00 in New York
    assert parse_local("2026-11-28T09:00", NY) == datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
    assert parse_local("2026-11-28 9:00", NY) == datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
    assert parse_local("9:00", NY, now=now) == datetime(2026, 11, 27, 14, 0, tzinfo=UTC)
    assert parse_local("07:30", NY, now=now) == datetime(2026, 11, 28, 12, 30, tzinfo=UTC)
    assert parse_local("2026-11-28T09:00+01:00", NY) == datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    with pytest.raises(ConfigError, match="not a time of day"):
        parse_local("25:00", NY, now=now)


@pytest.mark.parametrize(
    ("weekday", "days"),
    [
        ("2", ["Tue", "Tue", "Tue"]),
        ("0", ["Sun", "Sun", "Sun"]),
        ("7", ["Sun", "Sun", "Sun"]),
        ("1-5", ["Tue", "Wed", "Thu"]),
        ("*/2", ["Tue", "Thu", "Sat"]),
        ("5-7", ["Fri", "Sat", "Sun"]),
        ("mon", ["Mon", "Mon", "Mon"]),
    ],
)
def test_a_weekday_number_fires_on_the_day_cron_means(weekday: str, days: list[str]) -> None:
    """Cron's 2 is Tuesday and 0 or 7 Sunday; the scheduler itself would take 2 for Wednesday
    and refuse 7, so a digest written "0 7 * * 2" would go out a day late."""
    trigger = timing.cron_trigger(f"0 7 * * {weekday}", ZoneInfo("UTC"), "[schedule] digest")
    moment, fired = datetime(2026, 12, 7, 12, 0, tzinfo=UTC), []  # a Monday
    for _ in range(3):
        moment = trigger.get_next_fire_time(None, moment)
        fired.append(moment.strftime("%a"))
        moment = moment.replace(minute=1)
    assert fired == days


def test_a_weekday_number_out_of_range_is_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"\[schedule\] digest '0 7 \* \* 9' is not a cron line"):
        timing.cron_trigger("0 7 * * 9", ZoneInfo("UTC"), "[schedule] digest")
