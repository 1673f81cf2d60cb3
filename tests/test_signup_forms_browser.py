"""Signup forms in a real browser (headless Chromium against `publisher serve`): an editor
finds the desk's Signup forms from Subscribers (axe-core, 375 and 1280 px wide), and the form
copied from it onto another site, with its script, answers inline on an allowed site and
by a page of its own without the script. Skipped when chromium, chromedriver or selenium
is missing.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from desk_browser_support import (
    Author,
    browser_fixture,  # noqa: F401 - the `browser` fixture
    free_port,
    publication,
    serving,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from publisher.services import signup
from publisher.store import open_store, subscribers


class Narrow(Author):
    prefix = "signup-"
    link_by = By.PARTIAL_LINK_TEXT
    fits_narrow = True


@pytest.fixture
def blog(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Another site on loopback: a folder of static pages served over HTTP."""
    folder = tmp_path / "blog"
    folder.mkdir()
    port = free_port()
    handler = functools.partial(_Quiet, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", folder
    finally:
        server.shutdown()
        server.server_close()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_signup_forms_page_and_a_copied_form_on_another_site(
    browser: WebDriver, tmp_path_factory: pytest.TempPathFactory, blog: tuple[str, Path]
) -> None:
    """The desk page passes axe and fits 375 px; its snippet pasted into a page of an allowed
    site answers under the form (the script), and the same snippet without the script
    answers with the app's page and a link back."""
    blog_url, blog_folder = blog
    folder = tmp_path_factory.mktemp("signup-desk")
    site = publication(folder, {"editor@example.org": "editor"}, settings=(
        f'\n[subscribe]\npublic_tags = ["sleep"]\nallowed_origins = ["{blog_url}"]\n'
    ))
    with serving(site):
        me = Narrow(browser, site)
        me.sign_in("editor@example.org")
        me.open("/desk/subscribers")
        me.follow("Signup forms")
        assert "Topic “sleep”" in me.text()
        me.check("desk")
        snippet = browser.find_element(By.ID, "snippet-2").get_attribute("value") or ""
        script_line = browser.find_element(By.ID, "script-line").get_attribute("value") or ""
        assert snippet.startswith("<form ")
        page = ("<!doctype html><html lang='en'><head><title>Blog</title></head>"
                "<body><main><h1>Sleep notes</h1>{}</main></body></html>")
        (blog_folder / "inline.html").write_text(page.format(snippet + script_line), encoding="utf-8")
        (blog_folder / "plain.html").write_text(page.format(snippet), encoding="utf-8")

        browser.get(f"{blog_url}/inline.html")
        browser.find_element(By.NAME, "email").send_keys("ada@example.org")
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        message = browser.find_element(By.CSS_SELECTOR, "[data-publisher-message]")
        WebDriverWait(browser, 20).until(lambda d: message.text)
        assert "a message is on its way" in message.text
        assert browser.current_url == f"{blog_url}/inline.html"

        browser.get(f"{blog_url}/plain.html")
        browser.find_element(By.NAME, "email").send_keys("grace@example.org")
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(browser, 20).until(lambda d: d.current_url.startswith(site.url))
        me.settled()
        assert "Check your inbox" in me.text()
        me.check("done")
        assert not me.violations, me.violations

    engine = open_store(site.config().store_url)
    ada = subscribers.find(engine, "ada@example.org")
    grace = subscribers.find(engine, "grace@example.org")
    engine.dispose()
    assert ada is not None and ada.source == "json:sleep" and ada.tags == ("sleep",)
    assert grace is not None and grace.source == "embed:sleep"
    assert grace.consent_text == signup.consent_text(site.config())
