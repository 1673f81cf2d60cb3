"""Sign-in with an OpenID Connect provider in a real browser: headless Chromium follows
"Sign in with ..." from the desk (`publisher serve`) to oidc-provider-mock on loopback,
chooses the account there, and comes back signed in, with the desk's own page rules
(its Content-Security-Policy included) in force.

Skipped when chromium, chromedriver or selenium is missing.
"""

from __future__ import annotations

import os
import warnings
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
from selenium.webdriver.support.ui import WebDriverWait

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the mock imports authlib.jose, which Authlib now warns about
    import oidc_provider_mock


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    before = os.environ.get("AUTHLIB_INSECURE_TRANSPORT")
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"  # the mock refuses plain http otherwise
    users = [oidc_provider_mock.User(sub="dana", claims={"email": "owner@example.org", "email_verified": True})]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with oidc_provider_mock.run_server_in_thread(require_nonce=True, user_claims=users) as server:
                yield f"http://localhost:{server.server_port}"
    finally:
        if before is None:
            os.environ.pop("AUTHLIB_INSECURE_TRANSPORT", None)
        else:
            os.environ["AUTHLIB_INSECURE_TRANSPORT"] = before


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, provider: str) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("oidc")
    settings = f'\n[desk.oidc]\nissuer = "{provider}"\nclient_id = "the-desk"\nlabel = "Harbor ID"\n'
    made = publication(folder, {"owner@example.org": "owner"}, settings)
    os.environ["PUBLISHER_OIDC_CLIENT_SECRET"] = "the desk's client secret"  # `publisher serve` inherits it
    try:
        with serving(made) as served:
            yield served
    finally:
        os.environ.pop("PUBLISHER_OIDC_CLIENT_SECRET", None)


def test_an_owner_signs_in_through_the_provider_in_a_browser(site: Site, browser: WebDriver) -> None:
    """From the sign-in page to the provider and back to the page asked for, signed in."""
    owner = Author(browser, site)
    owner.prefix = "oidc-"
    owner.open("/desk/subscribers")
    assert "/desk/login" in browser.current_url
    owner.check("login")
    browser.find_element(By.LINK_TEXT, "Sign in with Harbor ID").click()
    WebDriverWait(browser, 30).until(lambda d: "/oauth2/authorize" in d.current_url)
    browser.find_element(By.CSS_SELECTOR, "button[name=sub][value=dana]").click()
    WebDriverWait(browser, 30).until(lambda d: d.current_url.startswith(site.url + "/desk/"))
    owner.settled()
    assert browser.current_url.endswith("/desk/subscribers"), owner.text()
    owner.open("/desk/account")
    assert "owner@example.org" in browser.find_element(By.TAG_NAME, "body").text
    assert not owner.violations, owner.violations
