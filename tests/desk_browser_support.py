"""The desk in a real browser, for its browser tests: a publication served by `publisher
serve` on a free loopback port, headless Chromium (Debian's chromium and chromium-driver,
driven by Selenium), and an `Author` who opens, fills, presses and follows, with axe-core
on every page checked (no serious or critical violation) and screenshots at 375 and
1280 px into SCREENSHOTS (PUBLISHER_DESK_SCREENSHOTS chooses another folder);
PUBLISHER_AXE_REPORT names a file that lists every violation, whatever its impact.

Importing this module skips the test module that imports it when chromium, chromedriver,
selenium or axe-selenium-python is missing (`.ci/run` installs them).
"""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

webdriver = pytest.importorskip("selenium.webdriver")
axe_selenium_python = pytest.importorskip("axe_selenium_python")

from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from publisher import accounts  # noqa: E402
from publisher.config import Config, load_config  # noqa: E402
from publisher.store import open_store  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("Debian's chromium and chromium-driver are not installed", allow_module_level=True)

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = Path(
    os.environ.get("PUBLISHER_DESK_SCREENSHOTS") or Path(tempfile.gettempdir()) / "publisher-desk-screenshots"
)
AXE_REPORT = os.environ.get("PUBLISHER_AXE_REPORT", "")
"""A file to which every page checked adds all its axe violations, whatever their impact."""
SECRET = "browser-test-secret-0123456789abcdef"
PASSWORD = "a long enough passphrase"
WIDTHS = (375, 1280)
POSTAL = "1 Harbor Road, Testville"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Site:
    """A publication's folder and the loopback address it is (or will be) served at."""

    def __init__(self, folder: Path, url: str) -> None:
        self.folder = folder
        self.url = url

    def config(self) -> Config:
        return load_config(self.folder / "config.toml", env={"PUBLISHER_SECRET": SECRET})

    def outbox(self) -> list[EmailMessage]:
        """The Maildir's messages, oldest first."""
        new = self.folder / "outbox" / "new"
        files = sorted(new.iterdir(), key=lambda p: p.stat().st_mtime_ns) if new.is_dir() else []
        return [
            email.message_from_bytes(f.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for f in files
        ]

    def media(self) -> list[str]:
        """The files in content/media, by name."""
        folder = self.folder / "content" / "media"
        return sorted(os.listdir(folder)) if folder.is_dir() else []


def publication(folder: Path, users: Mapping[str, str], settings: str = "") -> Site:
    """Write `folder`'s config.toml for a free loopback port (the Harbor Light publication,
    drafts by default, with `settings` added) and add the desk `users` (address: role)."""
    url = f"http://127.0.0.1:{free_port()}"
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
{settings}""",
        encoding="utf-8",
    )
    site = Site(folder, url)
    engine = open_store(site.config().store_url)
    try:
        for who, role in users.items():
            accounts.add_user(engine, who, role=role, password=PASSWORD, now=datetime.now(UTC))
    finally:
        engine.dispose()
    return site


@contextmanager
def serving(site: Site) -> Iterator[Site]:
    """`publisher serve` on the site's port until the block ends (its output in serve.log)."""
    folder = site.folder
    log = (folder / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "publisher", "--config", str(folder / "config.toml"), "serve",
         "--host", "127.0.0.1", "--port", site.url.rsplit(":", 1)[1]],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PUBLISHER_SECRET": SECRET},
    )
    try:
        deadline = time.monotonic() + 90  # a loaded shared machine can take a minute to start it
        while True:
            try:
                if httpx.get(site.url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("publisher serve did not start: " + (folder / "serve.log").read_text())
            time.sleep(0.1)
        yield site
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator[WebDriver]:
    """`browser`: headless Chromium at 1280x900 with a fresh profile, nothing reaching the
    network at start-up, and the browser's console kept for `get_log("browser")`. A test
    module imports it by this name to have the fixture."""
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


def gone(element: object) -> Callable[[WebDriver], bool]:
    """Whether `element`'s page has been replaced. chromedriver answers a node of a page
    being swapped out with a plain WebDriverException, not always with the stale one."""

    def check(driver: WebDriver) -> bool:
        try:
            element.is_enabled()  # type: ignore[attr-defined]
        except WebDriverException:
            return True
        return False

    return check


class Author:
    """What a person does in the browser, with axe and screenshots on every page checked.

    A subclass may name its screenshots with a `prefix`, find links by part of their text
    (`link_by`), and require every page checked to fit 375 px without scrolling sideways
    (`fits_narrow`)."""

    prefix = ""
    link_by = By.LINK_TEXT
    fits_narrow = False

    def __init__(self, driver: WebDriver, site: Site) -> None:
        self.d = driver
        self.site = site
        self.violations: list[str] = []
        self.pages: set[str] = set()
        self.shots: list[Path] = []
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def open(self, path: str) -> None:
        self.d.get(self.site.url + path)
        self.settled()

    def field(self, element_id: str, text: str) -> None:
        box = self.d.find_element(By.ID, element_id)
        box.clear()
        box.send_keys(text)

    def press(self, css: str) -> None:
        """Click a submit button and wait for the page it leads to."""
        self.press_button(self.d.find_element(By.CSS_SELECTOR, css))

    def press_button(self, button: WebElement) -> None:
        """Click `button` (found by the caller) and wait for the page it leads to."""
        before = self.d.find_element(By.TAG_NAME, "html")
        button.click()
        WebDriverWait(self.d, 30).until(gone(before))
        self.settled()

    def follow(self, link_text: str) -> None:
        before = self.d.find_element(By.TAG_NAME, "html")
        self.d.find_element(self.link_by, link_text).click()
        WebDriverWait(self.d, 30).until(gone(before))
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
        found = axe.run()["violations"]
        if AXE_REPORT:  # every violation of every impact, for a closer look than the test's bar
            with Path(AXE_REPORT).open("a", encoding="utf-8") as report:
                for violation in found:
                    report.write(f"{self.prefix}{name}\t{violation['impact']}\t{violation['id']}\t"
                                 f"{len(violation['nodes'])}\n")
                report.write(f"{self.prefix}{name}\tchecked\t-\t{len(found)}\n")
        for violation in found:
            if violation["impact"] in ("serious", "critical"):
                targets = [node["target"] for node in violation["nodes"]][:3]
                self.violations.append(f"{name}: {violation['id']} ({violation['impact']}) {targets}")
        for width in WIDTHS:
            self.d.set_window_size(width, 900)
            height = int(self.d.execute_script("return document.documentElement.scrollHeight"))
            self.d.set_window_size(width, min(max(height, 600), 5000))
            shot = SCREENSHOTS / f"{self.prefix}{name}-{width}.png"
            self.d.save_screenshot(str(shot))
            self.shots.append(shot)
            if self.fits_narrow and width == 375:
                wide = self.d.execute_script("return document.documentElement.scrollWidth > window.innerWidth")
                assert not wide, f"{name} scrolls sideways at 375 px"
        self.d.set_window_size(1280, 900)
        self.pages.add(name)

    def sign_in(self, who: str) -> None:
        """Sign in afresh from the desk's door, which sends a stranger to the login page."""
        self.d.delete_all_cookies()
        self.open("/desk/")
        assert "/desk/login" in self.d.current_url
        self.field("email", who)
        self.field("password", PASSWORD)
        self.press("main button[type=submit]")
        assert self.d.current_url.endswith("/desk/"), self.text()
