"""The desk's Sequences pages in headless Chromium: axe-core on each, and a new step
written through the form, as an author would."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from desk_browser_support import (
    Author,
    Site,
    browser_fixture,  # noqa: F401 - the `browser` fixture
    publication,
    serving,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from publisher.services import sequences
from publisher.store import open_store
from publisher.store import subscribers as subs

WELCOME = "---\ntitle: Welcome to the notes\ndelay: 0\nsummary: What to expect.\n---\n\nHello and welcome.\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A publication with a welcome sequence and one reader in it, served by `publisher serve`."""
    folder = tmp_path_factory.mktemp("sequences")
    (folder / "content").mkdir()
    (folder / "sequences" / "welcome").mkdir(parents=True)
    (folder / "sequences" / "welcome" / "welcome.md").write_text(WELCOME)
    made = publication(folder, {"editor@example.org": "editor", "owner@example.org": "owner"})
    config = made.config()
    engine = open_store(config.store_url)
    start = datetime.now(UTC) - timedelta(hours=1)
    try:
        sequences.run(config, engine, now=start)
        subs.add(engine, "ada@example.org", now=start + timedelta(minutes=1))
        sequences.run(config, engine, now=start + timedelta(minutes=2))
    finally:
        engine.dispose()
    with serving(made) as served:
        yield served


def test_the_sequences_pages_pass_axe_and_a_new_step_is_saved(site: Site, browser: WebDriver) -> None:
    """List, sequence, step: no serious accessibility fault; the form writes a day-3 step."""
    me = Author(browser, site)
    me.prefix = "sequences-"
    me.sign_in("owner@example.org")
    me.open("/desk/sequences")
    me.check("list")
    me.field("name", "welcome")
    me.field("step", "day-3")
    box = browser.find_element(By.ID, "text")
    box.clear()
    box.send_keys("---\ntitle: Three small habits\ndelay: 3d\nsummary: Small changes.\n---\n\nThree habits.\n")
    me.press("main form button[type=submit]")
    assert "Nothing was sent" in me.text()
    assert "Goes day 3 after the reader enters the sequence" in me.text()
    me.check("step")
    me.open("/desk/sequences/welcome")
    assert "ada@example.org" in me.text()
    me.check("sequence")
    assert (site.folder / "sequences" / "welcome" / "day-3.md").is_file()
    assert me.violations == [], "\n".join(me.violations)
