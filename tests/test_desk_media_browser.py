"""The Media page in a real browser: headless Chromium (Debian's chromium and
chromium-driver, driven by Selenium) against `publisher serve` on loopback.

An editor uploads a photo with the page's own form (no script needed), finds its
Markdown, puts it in an article and sees delete refused; a script uploads the way the
editor's toolbar does (FormData with `file` and `csrf`) and reads the JSON; an unused
picture is deleted after the confirmation. A viewer sees the grid without the form.
axe-core checks each page (no serious or critical violation), and each is photographed
at 375 and 1280 px into SCREENSHOTS (set PUBLISHER_DESK_SCREENSHOTS to choose another
folder; the paths are printed at the end).

Skipped when chromium, chromedriver or selenium is missing.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

webdriver = pytest.importorskip("selenium.webdriver")
axe_selenium_python = pytest.importorskip("axe_selenium_python")

from PIL import ExifTags, Image  # noqa: E402
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from publisher import accounts  # noqa: E402
from publisher.config import load_config  # noqa: E402
from publisher.store import open_store  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="Debian's chromium and chromium-driver are not installed"
)

SCREENSHOTS = Path(
    os.environ.get("PUBLISHER_DESK_SCREENSHOTS") or Path(tempfile.gettempdir()) / "publisher-desk-screenshots"
)
SECRET = "browser-test-secret-0123456789abcdef"
PASSWORD = "a long enough passphrase"
WIDTHS = (375, 1280)
ARTICLE = """---
title: Light in the evening
date: 2026-01-05 08:00
---

Dim lights help the evening wind down.
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Site:
    def __init__(self, folder: Path, url: str) -> None:
        self.folder = folder
        self.url = url

    def media(self) -> list[str]:
        folder = self.folder / "content" / "media"
        return sorted(os.listdir(folder)) if folder.is_dir() else []


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A publication with one article and two desk users, served by `publisher serve`."""
    folder = tmp_path_factory.mktemp("desk-media")
    (folder / "content").mkdir()
    (folder / "content" / "2026-01-05-light-in-the-evening.md").write_text(ARTICLE, encoding="utf-8")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    (folder / "config.toml").write_text(
        f"""
[publication]
title = "Harbor Light Notes"
url = "https://notes.harborlight.example.org/"
author = "Dana Reyes, LCSW"
postal_address = "1 Harbor Road, Testville"
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
        for who, role in (("editor@example.org", "editor"), ("viewer@example.org", "viewer")):
            accounts.add_user(engine, who, role=role, password=PASSWORD, now=datetime.now(UTC))
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
    """What a person does in the browser, with axe and screenshots on every page checked."""

    def __init__(self, driver: WebDriver, site: Site) -> None:
        self.d = driver
        self.site = site
        self.violations: list[str] = []
        self.shots: list[Path] = []
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def open(self, path: str) -> None:
        self.d.get(self.site.url + path)
        self.settled()

    def press(self, css: str) -> None:
        before = self.d.find_element(By.TAG_NAME, "html")
        self.d.find_element(By.CSS_SELECTOR, css).click()
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
        for violation in axe.run()["violations"]:
            if violation["impact"] in ("serious", "critical"):
                targets = [node["target"] for node in violation["nodes"]][:3]
                self.violations.append(f"{name}: {violation['id']} ({violation['impact']}) {targets}")
        for width in WIDTHS:
            self.d.set_window_size(width, 900)
            height = int(self.d.execute_script("return document.documentElement.scrollHeight"))
            self.d.set_window_size(width, min(max(height, 600), 5000))
            shot = SCREENSHOTS / f"{name}-{width}.png"
            self.d.save_screenshot(str(shot))
            self.shots.append(shot)
            if width == 375:
                wide = self.d.execute_script("return document.documentElement.scrollWidth > window.innerWidth")
                assert not wide, f"{name} scrolls sideways at 375 px"
        self.d.set_window_size(1280, 900)

    def sign_in(self, who: str) -> None:
        self.d.delete_all_cookies()
        self.open("/desk/login")
        self.d.find_element(By.ID, "email").send_keys(who)
        self.d.find_element(By.ID, "password").send_keys(PASSWORD)
        self.press("main button[type=submit]")


def _photo(folder: Path, name: str, size: tuple[int, int], colour: tuple[int, int, int]) -> Path:
    """A photo with its place of taking in it, as a phone writes one."""
    image = Image.new("RGB", size, colour)
    exif = Image.Exif()
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (51.0, 30.0, 12.0)
    path = folder / name
    image.save(path, "JPEG", exif=exif)
    return path


def test_an_editor_uploads_uses_and_deletes_pictures(site: Site, browser: WebDriver, tmp_path: Path) -> None:
    """The Media page, in a browser, as an author uses it."""
    me = Author(browser, site)
    me.sign_in("editor@example.org")
    me.open("/desk/media")
    assert "No pictures yet" in me.text()
    assert browser.find_element(By.CSS_SELECTOR, 'nav a[aria-current="page"]').text == "Media"
    me.check("media-empty")

    # The page's own form, no script involved: choose the file, press Upload.
    photo = _photo(tmp_path, "harbour.jpg", (2400, 1600), (30, 90, 160))
    browser.find_element(By.ID, "media-file").send_keys(str(photo))
    me.press("main form[enctype] button[type=submit]")
    assert "/desk/media?uploaded=" in browser.current_url and "Uploaded" in me.text()
    markdown = browser.find_element(By.ID, "uploaded-md").get_attribute("value")
    assert markdown.startswith("![](/media/") and markdown.endswith("-1600x1067.jpg)")
    name = markdown[len("![](/media/") : -1]
    assert len(site.media()) == 3
    thumb = browser.find_element(By.CSS_SELECTOR, ".media-grid img")
    loaded = "return arguments[0].complete && arguments[0].naturalWidth"
    WebDriverWait(browser, 10).until(lambda d: d.execute_script(loaded, thumb))
    assert browser.execute_script(loaded, thumb) == 480
    me.check("media")

    # The editor's toolbar way: FormData with file and csrf, JSON back.
    answer = browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const canvas = document.createElement("canvas");
        canvas.width = 640; canvas.height = 480;
        canvas.getContext("2d").fillRect(0, 0, 640, 480);
        canvas.toBlob(function (blob) {
          const form = new FormData();
          form.append("csrf", document.querySelector("input[name=csrf]").value);
          form.append("file", blob, "pasted.png");
          fetch("/desk/media", {method: "POST", body: form, credentials: "same-origin"})
            .then(function (r) { return r.json().then(function (j) { done([r.status, j]); }); });
        }, "image/png");
        """
    )
    status, body = answer
    assert status == 201 and body["markdown"] == f"![](/media/{body['name']})" and body["width"] == 640

    # Used by an article: delete is refused, naming it.
    article = site.folder / "content" / "2026-01-05-light-in-the-evening.md"
    article.write_text(ARTICLE + f"\n![A calm harbour](/media/{name})\n", encoding="utf-8")
    me.open("/desk/media")
    card = next(li for li in browser.find_elements(By.CSS_SELECTOR, ".media-grid li") if name in li.text)
    assert "Used by: Light in the evening" in card.text
    card.find_element(By.CSS_SELECTOR, "button").click()
    WebDriverWait(browser, 30).until(lambda d: "Delete this picture?" in d.find_element(By.TAG_NAME, "main").text)
    confirm = browser.find_element(By.ID, "confirm")
    assert "used by Light in the evening" in confirm.text and not confirm.find_elements(By.TAG_NAME, "button")
    me.check("media-delete-refused")
    assert len(site.media()) == 5

    # The unused one goes after the confirmation.
    me.open("/desk/media")
    card = next(li for li in browser.find_elements(By.CSS_SELECTOR, ".media-grid li") if body["name"] in li.text)
    card.find_element(By.CSS_SELECTOR, "button").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.ID, "confirm"))
    me.check("media-delete")
    me.press("#confirm button[type=submit]")
    assert "every width of it" in me.text() and len(site.media()) == 3

    # A viewer sees the pictures, not the form or the buttons.
    me.sign_in("viewer@example.org")
    me.open("/desk/media")
    assert not browser.find_elements(By.ID, "media-file")
    assert not browser.find_elements(By.CSS_SELECTOR, ".media-grid button")
    me.check("media-viewer")

    stored = site.folder / "content" / "media"
    for file in stored.iterdir():
        assert not Image.open(io.BytesIO(file.read_bytes())).getexif().get_ifd(ExifTags.IFD.GPSInfo)
    print("\nMedia page screenshots:\n" + "\n".join(str(p) for p in me.shots))
    assert me.violations == []
