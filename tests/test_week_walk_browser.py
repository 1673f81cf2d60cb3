"""The author's week walked once in a real browser, as a newcomer would, with what that
walk found fixed: headless Chromium (Debian's chromium and chromium-driver, driven by
Selenium) against `publisher serve` on loopback, one session through several steps.

She writes a title in a right-to-left script, pastes what Word leaves (its markup is not
counted as words), previews (the page opens at the preview), schedules it for Tuesday 07:00,
goes back with the browser's button (nothing is scheduled twice), double-clicks Send (one
copy each), loses her session while typing (her words come back), and does it all again in
the dark colour scheme, where Home's chart bars turn light. axe-core checks every page taken
(no serious or critical violation, contrast included, light and dark), each fits 375 px
without scrolling sideways, and the browser never logs a missing /favicon.ico.
Screenshots at 375 and 1280 px go to SCREENSHOTS (`week-…`).

Skipped when chromium, chromedriver or selenium is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

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
from selenium.webdriver.support.ui import WebDriverWait

from publisher.store import open_store, schedules
from publisher.store import subscribers as subscriber_store

TITLE = "שינה טובה: a title in two scripts"
WORD = (  # what Word leaves in a paste of HTML: long lines of markup
    "<p class=MsoNormal style='margin-bottom:0cm;line-height:normal'><b><span lang=EN-GB style='font-size:14.0pt;"
    "font-family:\"Calibri\",sans-serif;mso-fareast-font-family:\"Times New Roman\"'>Sleep hygiene<o:p></o:p>"
    "</span></b></p>\n<!--[if gte mso 9]><xml><w:WordDocument><w:View>Normal</w:View></w:WordDocument></xml>"
    "<![endif]-->\n<p class=MsoListParagraphCxSpFirst style='text-indent:-18.0pt;mso-list:l0 level1 lfo1'>"
    "<![if !supportLists]><span style='font-family:Symbol'>·<span style='font:7.0pt \"Times New Roman\"'>"
    "&nbsp;&nbsp; </span></span><![endif]>Keep a regular bedtime<o:p></o:p></p>"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A publication with one owner and two readers, served by `publisher serve` on loopback."""
    folder = tmp_path_factory.mktemp("week")
    (folder / "content").mkdir()
    served = publication(folder, {"dana@example.org": "owner"})
    engine = open_store(served.config().store_url)
    try:
        for n in range(2):
            subscriber_store.add(engine, f"reader{n}@example.org", now=datetime.now(UTC))
    finally:
        engine.dispose()
    with serving(served):
        yield served


class Newcomer(Author):
    prefix = "week-"
    link_by = By.PARTIAL_LINK_TEXT
    fits_narrow = True

    def type_body(self, text: str) -> None:
        self.d.execute_script("document.querySelector('.CodeMirror').CodeMirror.setValue(arguments[0])", text)

    def pending(self) -> int:
        engine = open_store(self.site.config().store_url)
        try:
            return len(schedules.pending(engine))
        finally:
            engine.dispose()

    def posts(self, path: str) -> int:
        """How many POSTs to `path` the server has answered so far (its access log)."""
        return (self.site.folder / "serve.log").read_text().count(f'"POST {path} HTTP')


def next_tuesday() -> str:
    today = datetime.now(UTC).date()
    ahead = (1 - today.weekday()) % 7 or 7
    return f"{today + timedelta(days=ahead)}T07:00"


def test_the_week_in_a_browser(browser: WebDriver, site: Site) -> None:
    """Write, preview, schedule, go back, send with a double click, lose the session mid-edit:
    nothing surprising, nothing lost, nothing twice."""
    she = Newcomer(browser, site)
    she.sign_in("dana@example.org")
    she.open("/desk/articles/new")
    she.field("title", TITLE)
    she.type_body("Teenagers need more sleep than we think.\n\n" + WORD + "\n\nDr Dana Reyes\nHarbor Light Clinic")
    # The words typed and pasted, not Word's markup: 7 + 6 + 6.
    WebDriverWait(browser, 10).until(
        lambda d: d.find_element(By.ID, "word-count").get_attribute("data-words") == "19"
    )
    she.press("button[value=preview]")
    assert browser.current_url.endswith("#preview-h")
    assert browser.execute_script("return window.scrollY") > 0, "the preview is below the fold"
    she.check("preview")
    she.press("button[value=save]")
    slug = browser.current_url.split("/desk/articles/")[1].split("?")[0]

    browser.execute_script("document.getElementById('at').value = arguments[0]", next_tuesday())
    she.press("#schedule button[type=submit]")
    assert "Scheduled for Tue" in browser.find_element(By.ID, "send-state").text
    she.check("scheduled")
    browser.back()
    she.settled()
    assert she.pending() == 1

    she.open(f"/desk/articles/{slug}")
    she.press("#send-now button[type=submit]")
    she.check("confirm-send")
    confirm = browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]")
    # A double click: the second press comes while the first one's page is on its way.
    browser.execute_script("var b = arguments[0]; b.click(); setTimeout(function () { b.click(); }, 40);", confirm)
    WebDriverWait(browser, 30).until(
        lambda d: "/desk/issues/" in d.current_url or d.find_elements(By.ID, "send-error")
    )
    assert "/desk/issues/" in browser.current_url, she.text()
    she.settled()
    assert she.posts(f"/desk/articles/{slug}/send") == 2, "the confirmation went twice"  # ask, then confirm
    WebDriverWait(browser, 30).until(lambda d: len(site.outbox()) >= 2)
    assert sorted(m["To"] for m in site.outbox()) == ["reader0@example.org", "reader1@example.org"]

    she.open("/desk/articles/new")
    she.field("title", "Written while the session ran out")
    she.type_body("Every word of this must survive.")
    browser.delete_all_cookies()
    she.press("button[value=save]")
    assert "Nothing you typed is lost" in she.text()
    she.check("session-ended")
    she.field("email", "dana@example.org")
    she.field("password", PASSWORD)
    she.press("main form button[type=submit]")
    assert "not saved yet" in she.text()
    assert "Every word of this must survive." in browser.execute_script(
        "return document.querySelector('.CodeMirror').CodeMirror.getValue()"
    )

    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
    )
    try:
        she.open(f"/desk/articles/{slug}")
        page = browser.execute_script("return getComputedStyle(document.documentElement).backgroundColor")
        assert page == "rgb(20, 23, 26)"
        she.check("dark-editor")
        she.open("/desk/articles")
        she.check("dark-articles")
        she.open("/desk/")
        bar = browser.execute_script("return getComputedStyle(document.querySelector('.chart .series-0')).fill")
        assert bar == "rgb(141, 189, 245)", "the chart's bars keep their light-page colour on the dark page"
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})

    assert she.violations == []
    missing = [e["message"] for e in browser.get_log("browser") if "favicon.ico" in e["message"]]
    assert missing == []
