"""The desk's clock: the times the author reads are on the publication's clock, named."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from desk_support import add_users, quick_hashes, sign_in
from web_support import SECRET, live_server, make_publication

from publisher.config import Config, load_config
from publisher.services import issues as issue_service
from publisher.services import scheduling
from publisher.store import open_store
from publisher.store import subscribers as subscriber_store
from publisher.web import create_app
from publisher.web.desk.clock import local_time, zone_label

NEW_YORK = ZoneInfo("America/New_York")
ARTICLE = """---
title: Sleep after a loss
date: 2026-01-05 08:00
---

Grief changes sleep. Here is what helps.
"""


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    quick_hashes(monkeypatch)
    make_publication(tmp_path)
    path = tmp_path / "config.toml"
    path.write_text(
        path.read_text(encoding="utf-8").replace('language = "en"', 'language = "en"\ntimezone = "America/New_York"'),
        encoding="utf-8",
    )
    (tmp_path / "content").mkdir()
    (tmp_path / "content" / "2026-01-05-sleep-after-a-loss.md").write_text(ARTICLE, encoding="utf-8")
    config = load_config(path, env={"PUBLISHER_SECRET": SECRET})
    add_users(config)
    return config


def test_a_moment_reads_on_the_zones_clock_with_its_name() -> None:
    """14:03 UTC on a December day is 09:03 in New York, and says so."""
    assert local_time(datetime(2026, 12, 7, 14, 3, tzinfo=UTC), NEW_YORK) == "2026-12-07 09:03 America/New York"


def test_a_stored_moment_without_a_zone_is_utc() -> None:
    """SQLite's naive datetimes are UTC; in July New York is four hours behind it, not five."""
    assert local_time(datetime(2026, 7, 1, 14, 3), NEW_YORK, named=False) == "2026-07-01 10:03"


def test_a_utc_publication_is_labelled_utc() -> None:
    """Etc/UTC is named as the schedule names it: UTC."""
    assert local_time(datetime(2026, 7, 1, 14, 3, tzinfo=UTC), ZoneInfo("Etc/UTC")) == "2026-07-01 14:03 UTC"


def test_the_issues_list_and_a_readers_page_read_on_the_publications_clock(config: Config) -> None:
    """An issue's creation and a reader's history show New York's hour and name it, never UTC."""
    engine = open_store(config.store_url)
    now = datetime.now(UTC)
    reader = subscriber_store.add(engine, "reader@example.org", now=now)
    issue_service.send_now(config, engine, "sleep-after-a-loss", now=now)
    engine.dispose()
    with live_server(create_app(config)) as base, httpx.Client(base_url=base) as http:
        sign_in(http)
        issues = http.get("/desk/issues").text
        person = http.get(f"/desk/subscribers/{reader.id}").text
    assert "Created (America/New York)" in issues and f"<td>{now.astimezone(NEW_YORK):%Y-%m-%d %H:%M}</td>" in issues
    assert "UTC" not in issues
    assert "When (America/New York)" in person and "UTC" not in person


def test_a_zone_kept_as_a_key_reads_with_spaces() -> None:
    """A key stored beside a schedule is labelled as people write it, each part of it."""
    assert zone_label("America/Argentina/Buenos_Aires") == "America/Argentina/Buenos Aires"


def test_homes_schedule_names_the_zone_with_spaces_and_keeps_the_instant(config: Config) -> None:
    """Home's "Scheduled" says "America/New York"; its <time datetime> stays the UTC instant."""
    engine = open_store(config.store_url)
    now = datetime.now(UTC)
    done = scheduling.schedule_send(config, engine, "sleep-after-a-loss", at=f"{now.year + 1}-01-15 09:00", now=now)
    engine.dispose()
    with live_server(create_app(config)) as base, httpx.Client(base_url=base) as http:
        sign_in(http)
        home = http.get("/desk/").text
    scheduled = " ".join(home[home.index('id="scheduled-h"') :].split("</section>")[0].split())
    assert "09:00</time> America/New York" in scheduled and "New_York" not in scheduled
    assert f'<time datetime="{done.schedule.run_at.isoformat()}">' in scheduled
