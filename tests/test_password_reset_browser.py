"""A forgotten password set again in a real browser: from the sign-in page's link to the
mailed link's form and back to signing in. axe-core checks each page (no serious or
critical violation), each is photographed at 375 and 1280 px and fits 375 px.

Skipped when chromium, chromedriver or selenium is missing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from desk_browser_support import (
    PASSWORD,
    Author,
    Site,
    browser_fixture,  # noqa: F401 - the `browser` fixture
    publication,
    serving,
)
from selenium.webdriver.remote.webdriver import WebDriver

NEW_PASSWORD = "a brand new passphrase"


class Forgetful(Author):
    prefix = "reset-"
    fits_narrow = True


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    made = publication(tmp_path_factory.mktemp("reset"), {"owner@example.org": "owner"})
    with serving(made) as served:
        yield served


def test_an_author_who_forgot_her_password_sets_a_new_one(site: Site, browser: WebDriver) -> None:
    """The link under the sign-in form, the address, the mailed link, the new password typed
    twice, and the sign-in with it; the old password no longer opens the desk."""
    me = Forgetful(browser, site)
    browser.delete_all_cookies()
    me.open("/desk/login")
    me.follow("Forgotten your password?")
    me.check("ask")
    me.field("email", "owner@example.org")
    me.press("main form button[type=submit]")
    assert "is on its way there" in me.text()
    me.check("asked")

    deadline = time.monotonic() + 10  # the mail goes after the page
    while not site.outbox() and time.monotonic() < deadline:
        time.sleep(0.05)
    body = site.outbox()[-1].get_body(("plain",))
    assert body is not None
    found = re.search(r"https?://[^/\s]+(/desk/login/reset/\S+)", body.get_content())
    assert found, body.get_content()
    me.open(found.group(1))
    assert "owner@example.org" in me.text()
    me.check("choose")
    me.field("password", NEW_PASSWORD)
    me.field("again", NEW_PASSWORD)
    me.press("main form button[type=submit]")
    assert browser.current_url.endswith("/desk/login?m=password-set"), me.text()
    assert "Your new password is set" in browser.page_source
    me.check("set")

    me.field("email", "owner@example.org")
    me.field("password", PASSWORD)
    me.press("main form[action='/desk/login'] button[type=submit]")
    assert "do not match an account" in me.text()
    me.field("email", "owner@example.org")
    me.field("password", NEW_PASSWORD)
    me.press("main form[action='/desk/login'] button[type=submit]")
    assert browser.current_url.endswith("/desk/"), me.text()

    me.open(found.group(1))
    assert "expired or was used already" in me.text()
    me.check("used")
    assert not me.violations, "\n".join(me.violations)
