"""The digest's choices in a real browser at 375 px: only the fields the choice uses show,
a weekly digest is saved and said in words, and axe-core finds no serious violation.

Skipped when chromium, chromedriver or selenium is missing (`.ci/run` installs them).
"""

from __future__ import annotations

from collections.abc import Iterator

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
from selenium.webdriver.support.select import Select

from publisher.config import load_config


class Owner(Author):
    prefix = "digest-"
    fits_narrow = True


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("digest")
    (folder / "content").mkdir()
    with serving(publication(folder, {"owner@example.org": "owner"})) as served:
        yield served


def test_a_weekly_digest_is_chosen_at_375_px(site: Site, browser: WebDriver) -> None:
    owner = Owner(browser, site)
    owner.sign_in("owner@example.org")
    browser.set_window_size(375, 900)
    owner.open("/desk/settings")
    how_often = Select(browser.find_element(By.ID, "s-digest_when"))
    assert how_often.first_selected_option.text == "No digest"
    assert not browser.find_element(By.ID, "s-digest_time").is_displayed()
    how_often.select_by_visible_text("Every week")
    assert browser.find_element(By.ID, "s-digest_day").is_displayed()
    assert not browser.find_element(By.ID, "s-digest_monthday").is_displayed()
    Select(browser.find_element(By.ID, "s-digest_day")).select_by_visible_text("Wednesday")
    owner.press("#g-sending button[type=submit]")
    assert "The digest goes out every Wednesday at 08:00" in owner.text()
    assert load_config(site.folder / "config.toml")["schedule.digest"] == "0 8 * * wed"
    owner.check("saved")
    assert not owner.violations, owner.violations
