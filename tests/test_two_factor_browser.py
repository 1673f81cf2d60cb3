"""Two-step sign-in in a real browser: the owner sets it up from their account page, signs
out, and signs in again with the password and then the code. axe-core checks every page
(no serious or critical violation), each is photographed at 375 and 1280 px, and none
scrolls sideways at 320, 375 or 1280 px.

Skipped when chromium, chromedriver or selenium is missing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from desk_browser_support import (
    PASSWORD,
    Author,
    Site,
    browser_fixture,  # noqa: F401 - the `browser` fixture
    publication,
    serving,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

SETTINGS = """
[desk]
require_two_factor = "owners"

[desk.oidc]
issuer = "https://id.example.org"
client_id = "the-desk"
label = "Example ID"
"""


class Owner(Author):
    prefix = "two-step-"
    fits_narrow = True

    def fits(self, name: str) -> None:
        """The page has no sideways scrolling at 320, 375 and 1280 px."""
        for width in (320, 375, 1280):
            self.d.set_window_size(width, 900)
            wide = self.d.execute_script("return document.documentElement.scrollWidth > window.innerWidth")
            assert not wide, f"{name} scrolls sideways at {width} px"
        self.d.set_window_size(1280, 900)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("two-step")
    made = publication(folder, {"owner@example.org": "owner"}, SETTINGS)
    with serving(made) as served:
        yield served


def test_an_owner_sets_up_two_step_sign_in_and_signs_in_with_it(site: Site, browser: WebDriver) -> None:
    """Required for owners: sent to the account page, set up with the QR code's key, then
    asked for a code after the password; every page accessible and narrow-screen safe."""
    owner = Owner(browser, site)
    owner.open("/desk/login")
    assert "Sign in with Example ID" in owner.text()
    owner.check("login")
    owner.fits("login")
    owner.field("email", "owner@example.org")
    owner.field("password", PASSWORD)
    owner.press("main form[action='/desk/login'] button[type=submit]")
    assert browser.current_url.endswith("/desk/account"), owner.text()
    assert "before anything else" in owner.text()
    owner.check("account-required")
    owner.fits("account-required")

    owner.press("form[action='/desk/account/two-factor/start'] button")
    assert browser.find_element(By.CSS_SELECTOR, ".qr svg")
    secret = browser.find_element(By.CSS_SELECTOR, "code.secret").text
    owner.check("account-setup")
    owner.fits("account-setup")
    now = datetime.now(UTC)
    owner.field("first-code", pyotp.TOTP(secret).at(now))
    owner.press("form[action='/desk/account/two-factor/confirm'] button")
    codes = re.findall(r"[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}", owner.text())
    assert len(codes) == 10
    assert "before anything else" not in owner.text()
    owner.check("account-recovery-codes")
    owner.fits("account-recovery-codes")

    browser.delete_all_cookies()
    owner.open("/desk/")
    owner.field("email", "owner@example.org")
    owner.field("password", PASSWORD)
    owner.press("main form[action='/desk/login'] button[type=submit]")
    assert browser.current_url.endswith("/desk/login/code"), owner.text()
    owner.check("login-code")
    owner.fits("login-code")
    owner.field("code", pyotp.TOTP(secret).at(now + timedelta(seconds=30)))
    owner.press("main button[type=submit]")
    assert browser.current_url.endswith("/desk/"), owner.text()
    owner.open("/desk/account")
    assert "On." in owner.text() and "(this browser)" in owner.text()
    owner.check("account-on")
    owner.fits("account-on")
    assert not owner.violations, owner.violations
