"""The article editor in a real browser: headless Chromium (Debian's chromium and
chromium-driver, driven by Selenium) against `publisher serve` on loopback.

An author writes in the rich editor (EasyMDE, vendored): types, uses the toolbar and a
keyboard shortcut, sees the word count move, is autosaved, is warned before leaving
unsaved changes (and not after an autosave or a save), saves, previews the email at 375
and 600 px down to its footer, test-sends the text on screen, compares a version and
restores it. A dropped picture goes to the desk's media upload, whose answer (or its
absence) is told in a live region. axe-core checks every page (no serious or critical
violation) and each is photographed at 375 and 1280 px into SCREENSHOTS (printed at the
end; PUBLISHER_DESK_SCREENSHOTS chooses another folder).

Skipped when chromium, chromedriver or selenium is missing.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from desk_browser_support import (
    POSTAL,
    SCREENSHOTS,
    Author,
    Site,
    browser_fixture,  # noqa: F401 - the `browser` fixture
    publication,
    serving,
)
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from publisher.services import revisions
from publisher.store import open_store

TOOLBAR = ("Heading", "Subheading", "Bold", "Italic", "Link", "Quote", "Bulleted list", "Numbered list",
           "Upload an image", "Divider (horizontal line)", "Undo", "Redo")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """An empty publication with one editor, served by `publisher serve` on loopback."""
    folder = tmp_path_factory.mktemp("editor")
    (folder / "content").mkdir()
    with serving(publication(folder, {"editor@example.org": "editor"})) as served:
        yield served


class EditorAuthor(Author):
    """The author in the article editor: screenshots named `editor-…`, links found by part
    of their text."""

    prefix = "editor-"
    link_by = By.PARTIAL_LINK_TEXT

    # The rich editor

    def type(self, *keys: str) -> None:
        """Keys into the rich editor, where its cursor is, as a person types them."""
        ActionChains(self.d).send_keys(*keys).perform()

    def body(self) -> str:
        """The Markdown the form will post (EasyMDE keeps the textarea in step)."""
        return str(self.d.execute_script("return document.getElementById('body').value"))

    def shortcut(self, key: str) -> None:
        """Ctrl and `key` together, in the rich editor."""
        ActionChains(self.d).key_down(Keys.CONTROL).send_keys(key).key_up(Keys.CONTROL).perform()

    def would_warn(self) -> bool:
        """Whether leaving now asks first: the page's beforeunload handler cancels the event."""
        return bool(self.d.execute_script(
            "var e = new Event('beforeunload', {cancelable: true}); window.dispatchEvent(e);"
            "return e.defaultPrevented;"
        ))


def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (40, 30), (31, 95, 153)).save(out, format="PNG")
    return out.getvalue()


def test_an_author_writes_in_the_rich_editor(site: Site, browser: WebDriver) -> None:
    """Type, format, count, autosave, leave safely, save, preview, test-send, compare, restore."""
    me = EditorAuthor(browser, site)
    me.sign_in("editor@example.org")

    # The rich editor replaces the textarea, with a labelled toolbar and no request elsewhere.
    me.open("/desk/articles/new")
    container = WebDriverWait(browser, 10).until(lambda d: d.find_element(By.CSS_SELECTOR, ".EasyMDEContainer"))
    labels = [b.get_attribute("aria-label") for b in container.find_elements(By.CSS_SELECTOR, ".editor-toolbar button")]
    assert labels == list(TOOLBAR)
    assert not browser.find_element(By.ID, "body").is_displayed()  # still in the form, as `body`
    me.check("new")
    me.field("title", "Calmer evenings")
    browser.execute_script(
        "document.getElementById('date').value = arguments[0];",
        f"{datetime.now(UTC) - timedelta(minutes=5):%Y-%m-%d %H:%M}",
    )
    if browser.find_element(By.ID, "draft").is_selected():
        browser.find_element(By.ID, "draft").click()

    # Type, then make that line a heading with the toolbar, and bold with Ctrl+B.
    browser.find_element(By.CSS_SELECTOR, ".CodeMirror").click()
    me.type("What helps at night")
    browser.find_element(By.CSS_SELECTOR, ".editor-toolbar button[aria-label='Heading']").click()
    me.type(Keys.END, Keys.ENTER, Keys.ENTER, "Dim the lights and ")
    me.shortcut("b")
    me.type("rest", Keys.END, ".", Keys.ENTER, Keys.ENTER)
    me.type("Warm regards,", Keys.ENTER, Keys.ENTER, "Dr. Jane Doe", Keys.ENTER, "LCSW", Keys.ENTER, "Practice name")
    text = me.body()
    assert text.startswith("## What helps at night\n\nDim the lights and **rest**.\n\n"), text
    assert "Dr. Jane Doe\nLCSW\nPractice name" in text
    # Words and reading time, counted live by the rule the server counts with.
    words = revisions.count_words(text)
    assert words == 17
    assert browser.find_element(By.ID, "word-count").text == f"{words} words · about 1 min to read"
    assert me.would_warn(), "unsaved changes must ask before leaving"

    # Autosave within a few seconds: a revision under the draft key, and no warning any more.
    WebDriverWait(browser, 15).until(
        lambda d: "Autosaved at" in d.find_element(By.ID, "autosave-status").text
    )
    assert not me.would_warn(), "an autosaved text must not ask before leaving"
    key = browser.find_element(By.NAME, "draft_key").get_attribute("value")
    engine = open_store(site.config().store_url)
    try:
        kept = revisions.list_revisions(engine, f"new:{key}")
    finally:
        engine.dispose()
    assert [r.kind for r in kept] == ["autosave"] and kept[0].words == words
    assert not list((site.folder / "content").glob("*.md")), "an autosave never writes the article file"
    me.type(" more")
    assert me.would_warn()

    # Save: the file has the Markdown with its line breaks; the saved page does not warn.
    me.press("button[name=action][value=save]")
    assert browser.current_url.endswith("/desk/articles/calmer-evenings?m=saved"), me.text()
    (saved,) = (site.folder / "content").glob("*calmer-evenings.md")
    assert "Dr. Jane Doe\nLCSW\nPractice name more" in saved.read_text(encoding="utf-8")
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".EasyMDEContainer"))
    assert not me.would_warn()
    me.check("saved")

    # Preview: two email widths, side by side at 1280 px and stacked at 375 px, footer reachable.
    me.press("button[name=action][value=preview]")
    frames = browser.find_elements(By.CSS_SELECTOR, "iframe[data-preview=email]")
    assert [f.size["width"] for f in frames] == [375, 600]
    assert frames[0].location["y"] == frames[1].location["y"], "side by side on a wide screen"
    for frame, width in zip(frames, (375, 600), strict=True):
        browser.switch_to.frame(frame)
        footer = browser.find_element(By.XPATH, f"//*[contains(normalize-space(.), '{POSTAL}')][last()]")
        assert "Unsubscribe" in browser.find_element(By.TAG_NAME, "body").text
        assert "Dr. Jane Doe\nLCSW\nPractice name" in browser.find_element(By.TAG_NAME, "body").text
        footer.location_once_scrolled_into_view  # noqa: B018 - scrolls inside the frame
        assert footer.is_displayed()
        browser.switch_to.default_content()
        frame.screenshot(str(SCREENSHOTS / f"editor-preview-email-{width}-footer.png"))
    me.check("preview")
    browser.set_window_size(375, 900)
    frames = browser.find_elements(By.CSS_SELECTOR, "iframe[data-preview=email]")
    assert frames[1].location["y"] > frames[0].location["y"], "stacked on a narrow screen"
    browser.set_window_size(1280, 900)

    # A test copy of the text on screen, not saved yet.
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".EasyMDEContainer"))
    browser.find_element(By.CSS_SELECTOR, ".CodeMirror").click()
    me.shortcut(Keys.END)
    me.type(Keys.ENTER, Keys.ENTER, "A line only in the test copy.")
    me.press("form[action$='/test#send'] button[type=submit]")
    assert "The test copy is on its way" in me.text(), me.text()
    (copy,) = site.outbox()
    plain = copy.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    assert "A line only in the test copy." in plain
    assert "Dr. Jane Doe\nLCSW\nPractice name" in plain, "the text part keeps the signature's line breaks"
    assert "A line only in the test copy." not in saved.read_text(encoding="utf-8")

    # The versions: autosave and saved, compared side by side, and one restored.
    me.open("/desk/articles/calmer-evenings/revisions")
    listing = me.text()
    assert "Autosave" in listing and "Saved" in listing and "editor@example.org" in listing
    me.check("revisions")
    rows = browser.find_elements(By.CSS_SELECTOR, "tbody tr")
    me.press_button(rows[-1].find_element(By.PARTIAL_LINK_TEXT, "Compare"))  # waits for the new page
    assert browser.find_elements(By.CSS_SELECTOR, "table.sidebyside ins, table.sidebyside del")
    me.check("compare")
    me.follow("Restore this version into the editor")
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".EasyMDEContainer"))
    assert "not saved yet" in me.text()
    assert me.body().rstrip().endswith("Practice name"), me.body()  # the first autosave, before " more"
    assert me.would_warn(), "a restored version is unsaved until Save"
    me.check("restored")

    # A dropped picture goes to the desk's media upload; its answer is told in a live region.
    browser.execute_script(
        "var bytes = Uint8Array.from(atob(arguments[0]), function (c) { return c.charCodeAt(0); });"
        "var data = new DataTransfer(); data.items.add(new File([bytes], 'dock.png', {type: 'image/png'}));"
        "var target = document.querySelector('.CodeMirror-scroll');"
        "target.dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));",
        base64.b64encode(_png()).decode(),
    )
    status = browser.find_element(By.ID, "upload-status")
    assert status.get_attribute("role") == "alert"
    WebDriverWait(browser, 10).until(lambda d: "…" not in status.text and status.text)
    assert status.text.startswith("Uploaded ") or "cannot be uploaded from this desk yet" in status.text, status.text
    if status.text.startswith("Uploaded "):
        # The picture is in the text, and the draft's preview shows it from the desk.
        assert "![" in me.body(), me.body()
        # The answer says how to caption it, with the picture's own address.
        assert re.search(r'!\[\]\(/media/[0-9a-f]+-40x30\.jpg "Your caption"\)\.$', status.text), status.text
        me.press("button[name=action][value=preview]")
        browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, "iframe.frame-600"))
        image = browser.find_element(By.CSS_SELECTOR, "img[src*='/media/']")
        assert "/desk/preview/" in image.get_attribute("src")
        WebDriverWait(browser, 10).until(lambda d: d.execute_script("return arguments[0].complete", image))
        loaded = browser.execute_script("return arguments[0].naturalWidth", image)
        browser.switch_to.default_content()
        assert loaded, "the preview's picture did not load from the desk"

    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"
              and "Content Security Policy" in e["message"]]
    assert errors == [], errors
    print(f"\nScreenshots: {SCREENSHOTS}/editor-*.png")
    assert me.violations == [], "\n".join(me.violations)
