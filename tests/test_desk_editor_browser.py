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
import email
import email.policy
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

webdriver = pytest.importorskip("selenium.webdriver")
axe_selenium_python = pytest.importorskip("axe_selenium_python")

from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from publisher import accounts  # noqa: E402
from publisher.config import load_config  # noqa: E402
from publisher.services import revisions  # noqa: E402
from publisher.store import open_store  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="Debian's chromium and chromium-driver are not installed"
)

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = Path(
    os.environ.get("PUBLISHER_DESK_SCREENSHOTS") or Path(tempfile.gettempdir()) / "publisher-desk-screenshots"
)
SECRET = "browser-test-secret-0123456789abcdef"
PASSWORD = "a long enough passphrase"
WIDTHS = (375, 1280)
POSTAL = "1 Harbor Road, Testville"
TOOLBAR = ("Heading", "Subheading", "Bold", "Italic", "Link", "Quote", "Bulleted list", "Numbered list",
           "Upload an image", "Divider (horizontal line)", "Undo", "Redo")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Site:
    def __init__(self, folder: Path, url: str) -> None:
        self.folder = folder
        self.url = url

    def outbox(self) -> list[EmailMessage]:
        new = self.folder / "outbox" / "new"
        files = sorted(new.iterdir(), key=lambda p: p.stat().st_mtime_ns) if new.is_dir() else []
        return [
            email.message_from_bytes(f.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for f in files
        ]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """An empty publication with one editor, served by `publisher serve` on loopback."""
    folder = tmp_path_factory.mktemp("editor")
    (folder / "content").mkdir()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    (folder / "config.toml").write_text(
        f"""
[publication]
title = "Harbor Light Notes"
url = "https://notes.harborlight.example.org/"
author = "Dana Reyes, LCSW"
postal_address = "{POSTAL}"
timezone = "UTC"

[newsletter]
from = "Dana Reyes <notes@harborlight.example.org>"

[schedule]
policy = "draft"

[server]
public_url = "{url}"
""",
        encoding="utf-8",
    )
    config = load_config(folder / "config.toml", env={"PUBLISHER_SECRET": SECRET})
    engine = open_store(config.store_url)
    try:
        accounts.add_user(engine, "editor@example.org", role="editor", password=PASSWORD, now=datetime.now(UTC))
    finally:
        engine.dispose()
    log = (folder / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "publisher", "--config", str(folder / "config.toml"), "serve",
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PUBLISHER_SECRET": SECRET},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("publisher serve did not start: " + (folder / "serve.log").read_text())
            time.sleep(0.1)
        yield Site(folder, url)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    profile = tempfile.mkdtemp(prefix="publisher-chromium-")
    for argument in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
        f"--user-data-dir={profile}", "--window-size=1280,900",
    ):
        options.add_argument(argument)
    options.binary_location = str(CHROMIUM)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _gone(element: object) -> Callable[[WebDriver], bool]:
    def check(driver: WebDriver) -> bool:
        try:
            element.is_enabled()  # type: ignore[attr-defined]
        except WebDriverException:
            return True
        return False

    return check


class Author:
    """What the author does in the browser, with axe and screenshots on every page seen."""

    def __init__(self, driver: WebDriver, site: Site) -> None:
        self.d = driver
        self.site = site
        self.violations: list[str] = []
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def open(self, path: str) -> None:
        self.d.get(self.site.url + path)
        self.settled()

    def field(self, element_id: str, text: str) -> None:
        box = self.d.find_element(By.ID, element_id)
        box.clear()
        box.send_keys(text)

    def press(self, css: str) -> None:
        before = self.d.find_element(By.TAG_NAME, "html")
        self.d.find_element(By.CSS_SELECTOR, css).click()
        WebDriverWait(self.d, 30).until(_gone(before))
        self.settled()

    def follow(self, link_text: str) -> None:
        before = self.d.find_element(By.TAG_NAME, "html")
        self.d.find_element(By.PARTIAL_LINK_TEXT, link_text).click()
        WebDriverWait(self.d, 30).until(_gone(before))
        self.settled()

    def settled(self) -> None:
        WebDriverWait(self.d, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")

    def text(self) -> str:
        return str(self.d.find_element(By.TAG_NAME, "main").text)

    def check(self, name: str) -> None:
        """axe-core on the page as it is, then screenshots at each width."""
        self.settled()
        axe = axe_selenium_python.Axe(self.d)
        axe.inject()
        results = axe.run()
        for violation in results["violations"]:
            if violation["impact"] in ("serious", "critical"):
                targets = [node["target"] for node in violation["nodes"]][:3]
                self.violations.append(f"{name}: {violation['id']} ({violation['impact']}) {targets}")
        for width in WIDTHS:
            self.d.set_window_size(width, 900)
            height = int(self.d.execute_script("return document.documentElement.scrollHeight"))
            self.d.set_window_size(width, min(max(height, 600), 5000))
            self.d.save_screenshot(str(SCREENSHOTS / f"editor-{name}-{width}.png"))
        self.d.set_window_size(1280, 900)

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

    def sign_in(self, who: str) -> None:
        self.d.delete_all_cookies()
        self.open("/desk/login")
        self.field("email", who)
        self.field("password", PASSWORD)
        self.press("main button[type=submit]")
        assert self.d.current_url.endswith("/desk/"), self.text()


def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (40, 30), (31, 95, 153)).save(out, format="PNG")
    return out.getvalue()


def test_an_author_writes_in_the_rich_editor(site: Site, browser: WebDriver) -> None:
    """Type, format, count, autosave, leave safely, save, preview, test-send, compare, restore."""
    me = Author(browser, site)
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
    engine = open_store(load_config(site.folder / "config.toml", env={"PUBLISHER_SECRET": SECRET}).store_url)
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
    me.press("form[action$='/test'] button[type=submit]")
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
    rows[-1].find_element(By.PARTIAL_LINK_TEXT, "Compare").click()
    me.settled()
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
