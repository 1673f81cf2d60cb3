"""The editor's send panel and pictures in a real browser, where only a browser shows what
goes wrong: where the page stands after a refusal, and where an uploaded picture lands in
the text. Headless Chromium (Debian's chromium and chromium-driver, driven by Selenium)
against `publisher serve` on loopback; axe-core and screenshots as in every desk test.

Skipped when chromium, chromedriver or selenium is missing.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator

import pytest
from desk_browser_support import (
    Author,
    Site,
    browser_fixture,  # noqa: F401 - the `browser` fixture
    publication,
    serving,
)
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

ARTICLE = """---
title: Panic Attacks, Step by Step
date: 2026-11-02 07:00
draft: true
---

A panic attack peaks within ten minutes.
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A publication with one draft and one editor, served by `publisher serve` on loopback."""
    folder = tmp_path_factory.mktemp("send-panel")
    (folder / "content").mkdir()
    (folder / "content" / "2026-11-02-panic-attacks.md").write_text(ARTICLE, encoding="utf-8")
    with serving(publication(folder, {"editor@example.org": "editor"})) as served:
        yield served


class PanelAuthor(Author):
    prefix = "send-panel-"


def test_a_refused_schedule_is_told_where_the_author_is_looking(site: Site, browser: WebDriver) -> None:
    """On a phone, Schedule with a time in the past opens the page at the refusal, not at
    the top of the editor two screens above it."""
    me = PanelAuthor(browser, site)
    me.sign_in("editor@example.org")
    browser.set_window_size(375, 800)
    try:
        me.open("/desk/articles/panic-attacks")
        browser.execute_script("document.getElementById('at').value = '2001-01-01T09:00'")
        me.press("#schedule button[type=submit]")
        error = browser.find_element(By.ID, "send-error")
        assert "in the past" in error.text
        top, bottom, height = browser.execute_script(
            "var r = arguments[0].getBoundingClientRect(); return [r.top, r.bottom, window.innerHeight];", error
        )
        assert top >= 0 and bottom <= height, f"the refusal is at {top}-{bottom} px, the screen is {height} px tall"
    finally:
        browser.set_window_size(1280, 900)
    me.check("refused-schedule")
    assert not me.violations, me.violations


def _png(colour: tuple[int, int, int]) -> str:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


GIVE = """
var bytes = Uint8Array.from(atob(arguments[0]), function (c) { return c.charCodeAt(0); });
var data = new DataTransfer(); data.items.add(new File([bytes], arguments[1], {type: 'image/png'}));
if (arguments[2] === 'drop') {
  document.querySelector('.CodeMirror-scroll').dispatchEvent(
    new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
} else {
  document.activeElement.dispatchEvent(
    new ClipboardEvent('paste', {clipboardData: data, bubbles: true, cancelable: true}));
}
"""


def test_an_uploaded_picture_is_a_paragraph_with_the_cursor_where_its_description_goes(
    site: Site, browser: WebDriver
) -> None:
    """A picture dropped after a sentence, then one pasted at once, each get a paragraph of
    their own, and what the author types next is the second one's alt text."""
    me = PanelAuthor(browser, site)
    me.sign_in("editor@example.org")
    me.open("/desk/articles/panic-attacks")
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".EasyMDEContainer"))
    editor = "document.querySelector('.CodeMirror').CodeMirror"
    browser.execute_script(f"var cm = {editor}; cm.focus(); cm.setCursor(cm.lineCount(), 0);")

    def body() -> str:
        return str(browser.execute_script("return document.getElementById('body').value"))

    for count, (name, how, colour) in enumerate(
        [("dock.png", "drop", (31, 95, 153)), ("pier.png", "paste", (153, 95, 31))], start=1
    ):
        browser.execute_script(GIVE, _png(colour), name, how)
        WebDriverWait(browser, 20).until(lambda d, n=count: body().count("/media/") == n)
    ActionChains(browser).send_keys("A pier at dusk").perform()
    assert re.search(r"ten minutes\.\n\n!\[\]\(/media/[^)]+\)\n\n!\[A pier at dusk\]\(/media/[^)]+\)\n", body()), body()
    assert "Describe it between the brackets" in browser.find_element(By.ID, "upload-status").text
    me.check("pictures-placed")
    assert not me.violations, me.violations


def test_a_refused_upload_is_told_in_one_sentence(site: Site, browser: WebDriver) -> None:
    """A text file named .jpg dropped into the editor is refused with the desk's reason,
    said once and ended once."""
    me = PanelAuthor(browser, site)
    me.sign_in("editor@example.org")
    me.open("/desk/articles/panic-attacks")
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".EasyMDEContainer"))
    words = base64.b64encode(b"just some words\n").decode()
    browser.execute_script(GIVE.replace("image/png", "image/jpeg"), words, "holiday.jpg", "drop")
    status = browser.find_element(By.ID, "upload-status")
    WebDriverWait(browser, 20).until(lambda d: status.text and "\u2026" not in status.text)
    assert status.text.startswith("holiday.jpg was not uploaded: The file is not a picture"), status.text
    assert status.text.endswith(".") and not status.text.endswith(".."), status.text
