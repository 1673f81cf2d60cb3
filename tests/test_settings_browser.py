"""The desk's Settings page in a real browser, against `publisher serve`: an owner renames the
publication, gives its zone as a city, sets a digest and a topic, generates a DKIM key, mistypes
a zone, and sees
each change served without a restart; axe-core finds no serious or critical violation and
no page scrolls sideways at 375 px (screenshots at 375 and 1280 px into SCREENSHOTS).

Skipped when chromium, chromedriver or selenium is missing (`.ci/run` installs them).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from desk_browser_support import (
    SCREENSHOTS,
    Author,
    Site,
    browser_fixture,  # noqa: F401 - the `browser` fixture
    publication,
    serving,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.select import Select


class Owner(Author):
    prefix = "settings-"
    fits_narrow = True

    def shoot(self, name: str, element_id: str) -> None:
        """The part of the page that step is about, at each width (the page is longer than a screenshot)."""
        for width, height in ((375, 1400), (1280, 1000)):
            self.d.set_window_size(width, height)
            self.d.execute_script("document.getElementById(arguments[0]).scrollIntoView()", element_id)
            self.d.save_screenshot(str(SCREENSHOTS / f"{self.prefix}{name}-{element_id}-{width}.png"))
        self.d.set_window_size(1280, 900)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("settings")
    (folder / "content").mkdir()
    made = publication(folder, {"owner@example.org": "owner"}, '\n[subscribe]\npublic_tags = ["sleep", "grief"]\n')
    with serving(made) as served:
        yield served


def served_title(site: Site, title: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if title in httpx.get(site.url + "/subscribe", timeout=5).text:
            return True
        time.sleep(0.05)
    return False


def test_an_owner_changes_the_settings_in_the_browser(site: Site, browser: WebDriver) -> None:
    owner = Owner(browser, site)
    owner.sign_in("owner@example.org")
    owner.open("/desk/settings")
    owner.check("page")
    owner.shoot("page", "edit")

    owner.field("s-title", "Harbor Light Letters")
    owner.field("s-timezone", "London")
    owner.press("#g-publication button[type=submit]")
    assert "Saved" in owner.text()
    assert browser.find_element(By.ID, "s-timezone").get_attribute("value") == "Europe/London"
    owner.check("saved")
    owner.shoot("saved", "main")
    assert served_title(site, "Harbor Light Letters")

    Select(browser.find_element(By.ID, "s-digest_when")).select_by_visible_text("Every week")
    Select(browser.find_element(By.ID, "s-digest_day")).select_by_visible_text("Monday")
    owner.press("#g-sending button[type=submit]")
    words = browser.find_element(By.ID, "digest-words").text
    assert "every Monday at 08:00 Europe/London" in words and words.count("Monday ") == 4
    owner.check("digest")
    owner.shoot("digest", "g-sending")

    owner.field("s-new_topic", "Work")
    owner.press("#g-topics button[type=submit]")
    assert browser.find_element(By.ID, "s-topic-2").get_attribute("value") == "work"

    owner.field("s-dkim_domain", "harborlight.example.org")
    owner.field("s-dkim_selector", "2026dec")
    owner.press("#g-dkim button[formaction='/desk/settings/dkim']")
    record = browser.find_element(By.ID, "dkim-record-1").get_attribute("value") or ""
    assert record.startswith("v=DKIM1; k=rsa; p=")
    owner.check("dkim")
    owner.shoot("dkim", "g-dkim")
    owner.press("#g-dkim button[formaction='/desk/settings/dkim-check']")
    assert "Not published yet" in owner.text() or "Not checked" in owner.text()
    owner.check("dkim-checked")

    owner.field("s-timezone", "Mars/Olympus")
    owner.press("#g-publication button[type=submit]")
    error = browser.find_element(By.ID, "s-timezone-error").text
    assert "Time zone must be an IANA time zone" in error
    assert browser.find_element(By.ID, "s-timezone").get_attribute("aria-invalid") == "true"
    owner.check("refused")
    owner.shoot("refused", "g-publication")

    owner.open("/desk/settings#audit")
    owner.shoot("audit", "audit")
    audit = browser.find_element(By.ID, "audit").text
    assert "publication.title" in audit and "subscribe.public_tags" in audit
    assert not owner.violations, owner.violations
