"""`publisher schedule`, `schedules` and `unschedule` through the real command line."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result

from publisher.cli import cli

ZONE = ZoneInfo("America/New_York")
ARTICLE = "---\ntitle: {title}\ndate: {date}\n{extra}---\n\nSome words about {title}.\n"


class Pub:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "content").mkdir()
        self.write("2026-01-05-notes-on-rest.md", "Notes on Rest", "2026-01-05 08:00")
        self.write("2099-01-01-far-future.md", "Far Future", "2099-01-01 08:00")
        self.write("2026-01-06-a-draft.md", "A Draft", "2026-01-06 08:00", "draft: true\n")
        (root / "config.toml").write_text(
            '[publication]\ntitle = "T"\nurl = "https://example.org/"\ntimezone = "America/New_York"\n'
            'postal_address = "1 Test Street"\n[newsletter]\nfrom = "T <t@example.org>"\n'
        )
        self.env = {"PUBLISHER_CONFIG": str(root / "config.toml"), "PUBLISHER_SECRET": "k" * 40}

    def write(self, name: str, title: str, date: str, extra: str = "") -> None:
        (self.root / "content" / name).write_text(ARTICLE.format(title=title, date=date, extra=extra))

    def invoke(self, *args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=self.env, catch_exceptions=False)


@pytest.fixture
def pub(tmp_path: Path) -> Pub:
    return Pub(tmp_path)


def later(days: int = 3) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).astimezone(ZONE).replace(second=0, microsecond=0)


def sunday(year: int, month: int, first_day: int) -> date:
    """The first Sunday on or after `first_day` (US clocks change on such Sundays)."""
    day = date(year, month, first_day)
    return day + timedelta(days=(6 - day.weekday()) % 7)


def test_rescheduling_says_which_schedule_it_replaced(pub: Pub) -> None:
    """A second schedule of the same article names the one it replaced."""
    at = later(3)  # once: a minute may turn between two calls
    first = pub.invoke("schedule", "notes-on-rest", "--at", f"{at:%Y-%m-%d %H:%M}")
    assert first.exit_code == 0, first.output
    assert "replaced" not in first.output
    second = pub.invoke("schedule", "notes-on-rest", "--at", f"{later(4):%Y-%m-%d %H:%M}")
    assert second.exit_code == 0, second.output
    assert f"replaced schedule #1 (was {at:%Y-%m-%d %H:%M} America/New York)" in second.output
    assert "scheduled #2" in second.output


def test_iso_time_and_hour_alone_are_accepted(pub: Pub) -> None:
    """--at takes 2026-11-28T09:00 and 9:00 (the next 09:00 in the publication's zone)."""
    when = later(2)
    iso = pub.invoke("schedule", "notes-on-rest", "--at", f"{when:%Y-%m-%dT%H:%M}")
    assert iso.exit_code == 0, iso.output
    assert f"at {when:%Y-%m-%d %H:%M} America/New York time" in iso.output
    hour = pub.invoke("schedule", "notes-on-rest", "--at", "9:00")
    assert hour.exit_code == 0, hour.output
    assert " 09:00 America/New York time" in hour.output


def test_past_time_names_the_zone_and_exits_1(pub: Pub) -> None:
    """A past time is an error like any other (exit 1, not a usage error), naming the zone used."""
    result = pub.invoke("schedule", "notes-on-rest", "--at", "2020-01-01 09:00")
    assert result.exit_code == 1
    assert "2020-01-01 09:00 in America/New York is in the past" in result.output
    assert "--tz" in result.output
    other = pub.invoke("schedule", "notes-on-rest", "--at", "2020-01-01 09:00", "--tz", "Asia/Tokyo")
    assert other.exit_code == 1
    assert "in Asia/Tokyo is in the past" in other.output


def test_drafts_and_future_articles_can_be_scheduled(pub: Pub) -> None:
    """A draft or an article dated later is scheduled like any other: it goes on the site and
    to the list at that minute (the command says so); the file is left as it is until then."""
    draft_file = pub.root / "content" / "2026-01-06-a-draft.md"
    before = draft_file.read_text()
    draft = pub.invoke("schedule", "a-draft", "--at", f"{later():%Y-%m-%d %H:%M}")
    assert draft.exit_code == 0, draft.output
    assert draft_file.read_text() == before
    future = pub.invoke("schedule", "far-future", "--at", f"{later():%Y-%m-%d %H:%M}")
    assert future.exit_code == 0, future.output


def test_a_time_that_comes_twice_asks_which(pub: Pub) -> None:
    """The hour the clocks go back is refused with both readings, each of which is then exact."""
    day = sunday(later().year + 1, 11, 1)  # the first Sunday of November
    result = pub.invoke("schedule", "notes-on-rest", "--at", f"{day} 01:30")
    assert result.exit_code == 1
    assert "comes twice in America/New York" in result.output
    assert f"{day}T01:30-04:00" in result.output and f"{day}T01:30-05:00" in result.output
    second = pub.invoke("schedule", "notes-on-rest", "--at", f"{day}T01:30-05:00")
    assert second.exit_code == 0, second.output
    listed = pub.invoke("schedules", "--all")
    assert "06:30" in listed.output or "01:30" in listed.output


def test_a_time_the_clocks_skip_is_refused(pub: Pub) -> None:
    """The spring-forward hour does not exist: refused with the reason, exit 1."""
    day = sunday(later().year + 1, 3, 8)  # the second Sunday of March
    result = pub.invoke("schedule", "notes-on-rest", "--at", f"{day} 02:30")
    assert result.exit_code == 1
    assert "does not exist in America/New York" in result.output


def test_new_article_template_lists_send_at(pub: Pub) -> None:
    """`publisher new` writes a front matter that shows send_at among the keys."""
    result = pub.invoke("new", "Something to say")
    assert result.exit_code == 0, result.output
    (path,) = (pub.root / "content").glob("*-something-to-say.md")
    assert "# send_at: " in path.read_text()


def test_schedules_table_is_never_cut_when_piped(pub: Pub) -> None:
    """Piped (not a terminal), every cell is whole on one line, however long."""
    slug = "a-rather-long-article-slug-that-would-never-fit-in-an-eighty-column-table"
    pub.write(f"2026-01-07-{slug}.md", "Long", "2026-01-07 08:00")
    assert pub.invoke("schedule", slug, "--at", f"{later():%Y-%m-%d %H:%M}").exit_code == 0
    listing = pub.invoke("schedules").output
    (row,) = [line for line in listing.splitlines() if slug in line]
    assert "America/New_York" in row and "pending" in row


def test_tz_takes_a_city_as_the_desk_does(pub: Pub) -> None:
    """--tz "new york" is America/New_York, and the schedule is kept in that zone's name."""
    at = later(3)
    done = pub.invoke("schedule", "notes-on-rest", "--at", f"{at:%Y-%m-%d %H:%M}", "--tz", "new york")
    assert done.exit_code == 0, done.output
    assert f"at {at:%Y-%m-%d %H:%M} America/New York time. " in done.output


def test_a_time_on_another_clock_is_also_told_on_the_publications(pub: Pub) -> None:
    """--tz Asia/Tokyo: the confirmation says when that is in New York, the zone named, not UTC."""
    at = later(3).astimezone(ZoneInfo("Asia/Tokyo"))
    done = pub.invoke("schedule", "notes-on-rest", "--at", f"{at:%Y-%m-%d %H:%M}", "--tz", "Asia/Tokyo")
    assert done.exit_code == 0, done.output
    assert f"at {at:%Y-%m-%d %H:%M} Asia/Tokyo time (starting {at.astimezone(ZONE):%Y-%m-%d %H:%M} America/New York)" \
        in done.output
    assert "UTC" not in done.output


def test_tz_that_is_no_zone_suggests_a_city(pub: Pub) -> None:
    """--tz Atlantis is refused (exit 1) with a city to try, and nothing is scheduled."""
    refused = pub.invoke("schedule", "notes-on-rest", "--at", f"{later():%Y-%m-%d %H:%M}", "--tz", "Atlantis")
    assert refused.exit_code == 1
    assert "no time zone called 'Atlantis'; try a city such as London" in refused.output
    assert "no pending scheduled sends" in pub.invoke("schedules").output
