"""`publisher schedule`, `schedules` and `unschedule` through the real command line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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


def test_rescheduling_says_which_schedule_it_replaced(pub: Pub) -> None:
    """A second schedule of the same article names the one it replaced."""
    at = later(3)  # once: a minute may turn between two calls
    first = pub.invoke("schedule", "notes-on-rest", "--at", f"{at:%Y-%m-%d %H:%M}")
    assert first.exit_code == 0, first.output
    assert "replaced" not in first.output
    second = pub.invoke("schedule", "notes-on-rest", "--at", f"{later(4):%Y-%m-%d %H:%M}")
    assert second.exit_code == 0, second.output
    assert f"replaced schedule #1 (was {at:%Y-%m-%d %H:%M} America/New_York)" in second.output
    assert "scheduled #2" in second.output


def test_iso_time_and_hour_alone_are_accepted(pub: Pub) -> None:
    """--at takes 2026-11-28T09:00 and 9:00 (the next 09:00 in the publication's zone)."""
    when = later(2)
    iso = pub.invoke("schedule", "notes-on-rest", "--at", f"{when:%Y-%m-%dT%H:%M}")
    assert iso.exit_code == 0, iso.output
    assert f"at {when:%Y-%m-%d %H:%M} America/New_York time" in iso.output
    hour = pub.invoke("schedule", "notes-on-rest", "--at", "9:00")
    assert hour.exit_code == 0, hour.output
    assert " 09:00 America/New_York time" in hour.output


def test_past_time_names_the_zone_and_exits_1(pub: Pub) -> None:
    """A past time is an error like any other (exit 1, not a usage error), naming the zone used."""
    result = pub.invoke("schedule", "notes-on-rest", "--at", "2020-01-01 09:00")
    assert result.exit_code == 1
    assert "2020-01-01 09:00 in America/New_York is in the past" in result.output
    assert "--tz" in result.output
    other = pub.invoke("schedule", "notes-on-rest", "--at", "2020-01-01 09:00", "--tz", "Asia/Tokyo")
    assert other.exit_code == 1
    assert "in Asia/Tokyo is in the past" in other.output


def test_future_article_points_at_send_at(pub: Pub) -> None:
    """An article not yet published is mailed by its `send_at:` line; the refusal says so."""
    result = pub.invoke("schedule", "far-future", "--at", f"{later():%Y-%m-%d %H:%M}")
    assert result.exit_code == 1
    assert "send_at: 2099-01-01 08:00" in result.output
    draft = pub.invoke("schedule", "a-draft", "--at", f"{later():%Y-%m-%d %H:%M}")
    assert draft.exit_code == 1
    assert "draft: true" in draft.output


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
