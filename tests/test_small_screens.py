"""Every page fits a phone: no sideways scrolling at 320, 375 and 1280 px.

One headless Chromium (Debian's chromium and chromium-driver, driven by Selenium) visits
every page a person meets: the desk's (signed in as the owner, who sees them all), the
reader's (subscribe, confirm, unsubscribe, their own page) and the archive's (index,
a later page, an article, the topics, a topic, the search box with results, the page
for an address that is not there). Each is measured at each width with the viewport set
through the DevTools protocol, so the page is laid out again without being loaded again;
a page that is wider than the window is named with its width and its widest element,
and photographed into SCREENSHOTS.
(As a desktop window, not a phone: a phone's viewport grows to fit a page too wide for
it, and zooms out, so `innerWidth` would grow with the fault it is meant to show.)
axe-core checks each page (no serious or critical violation), the site's and the
reader's pages in their dark scheme as well.

Skipped when chromium, chromedriver or selenium is missing (`.ci/run` installs them).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from desk_browser_support import (
    AXE_REPORT,
    ROOT,
    SCREENSHOTS,
    SECRET,
    Author,
    Site,
    browser_fixture,  # noqa: F401 - the `browser` fixture
    publication,
    serving,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from publisher import content
from publisher.site import build
from publisher.store import open_store, subscribers

WIDTHS = (320, 375, 1280)
OWNER = "dana.reyes.owner.of.the.practice@harborlight-community-health.example.org"  # a long one, in the header
# A reader whose name and address are long and unbroken: the pages that show them must wrap.
LONG_READER = (
    "email,name,tags\n"
    "maximiliana.vandenberg-oyelaran.counselling.referrals@harborlight-community-health.example.org,"
    "Maximiliana Wilhelmina van den Berg-Oyelaran,teens\n"
)

# An article with everything that can be wider than a phone: an address without a break,
# a wide table, a long line of code, a large picture.
WIDE_ARTICLE = """---
title: "Resources: https://harborlight-community-health.example.org/resources/referrals-and-crisis-lines"
date: 2026-11-02 08:00
author: Dana Reyes, LCSW
summary: Where to turn, with every-address-spelled-out-in-full-so-it-can-be-copied-without-breaking.
tags: [resources, crisis-lines-and-other-urgent-support-for-families]
---

Call or write to https://harborlight-community-health.example.org/resources/referrals-and-crisis-lines/by-region/north-east

| Service | Hours | Telephone | Address | Languages | Notes |
| --- | --- | --- | --- | --- | --- |
| Harbor Light Counselling Service | Mon-Fri 08:00-20:00 | +1 555 0100 200 | 12 Wharf Street | English, Spanish | Yes |

    printf 'a line of code far longer than any phone is wide, kept on one line: %s\\n' "$(date -I)"

![A wide view of the harbour](/images/sleep-lamp.png)
"""

WIDEST = """
const limit = window.innerWidth;
let found = null;
for (const el of document.body.querySelectorAll('*')) {
  const box = el.getBoundingClientRect();
  // Text too long for its box (an address without a break) spills past it: count that too.
  const spills = getComputedStyle(el).overflowX === 'visible';
  const right = spills ? Math.max(box.right, box.left + el.scrollWidth) : box.right;
  if (box.width === 0 || right <= limit + 0.5) continue;
  let clipped = false;
  for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
    const style = getComputedStyle(up);
    const scrolls = style.overflowX !== 'visible' && style.overflowX !== 'clip';
    if (scrolls && up.getBoundingClientRect().right <= limit + 0.5) {
      clipped = true; break;
    }
  }
  if (clipped) continue;
  if (found === null || right >= found.right) {  // on a tie, the innermost
    const name = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
      + (typeof el.className === 'string' && el.className ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
    found = {name: name, right: Math.round(right), text: (el.textContent || '').trim().slice(0, 60)};
  }
}
return found;
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The sample articles and a wide one on a site with a long name, paged by three;
    readers with long names, the wide article sent to them; served by `publisher serve`."""
    folder = tmp_path_factory.mktemp("screens")
    shutil.copytree(ROOT / "content", folder / "content")
    (folder / "content" / "2026-11-02-resources.md").write_text(WIDE_ARTICLE, encoding="utf-8")
    made = publication(
        folder, {OWNER: "owner"},
        '\n[build]\nper_page = 3\n\n[subscribe]\npublic_tags = ["teens", "sleep", "grief", "anxiety"]\n',
    )
    toml = folder / "config.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8").replace(
            'title = "Harbor Light Notes"',
            'title = "Harbor Light Notes: Long-Form Writing on Mental Health, Recovery and Family Life"',
        ),
        encoding="utf-8",
    )
    config = made.config()
    assert str(config["publication.title"]).endswith("Family Life")
    now = datetime.now(UTC)
    articles = content.load_articles(config)
    build.build_site(config, articles, now)
    engine = open_store(config.store_url)
    try:
        with (ROOT / "demo" / "subscribers.csv").open(encoding="utf-8", newline="") as readers:
            subscribers.import_csv(engine, readers, now=now, origin="subscribers.csv")
        subscribers.import_csv(engine, iter(LONG_READER.splitlines(keepends=True)), now=now, origin="long.csv")
    finally:
        engine.dispose()
    sent = subprocess.run(  # the article whose title is one long address: the issue pages show it
        [sys.executable, "-m", "publisher", "--config", str(folder / "config.toml"), "send", "resources", "--yes"],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "PUBLISHER_SECRET": SECRET}, check=False,
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    with serving(made) as served:
        yield served


def _links(site: Site, kind: str, to: str = "") -> list[str]:
    """The app's `kind` links (manage, unsubscribe, confirm) in the mail received so far
    (by those whose address holds `to`)."""
    found: list[str] = []
    for message in site.outbox():
        if to not in str(message["To"]):
            continue
        body = message.get_body(("plain",))
        assert body is not None
        found += re.findall(re.escape(site.url) + rf"(/{kind}/[^\s>]+)", body.get_content())
    return found


class Measurer(Author):
    prefix = "screens-"

    def __init__(self, driver: WebDriver, site: Site) -> None:
        super().__init__(driver, site)
        self.overflows: list[str] = []
        self.dark: dict[str, str] = {}
        """Each page's background in its dark scheme."""

    def measure(self, name: str) -> None:
        """axe once (twice for the site's and the reader's pages, which have a dark
        scheme too), then the page at each width: it must not scroll sideways."""
        self.settled()
        self.check_axe(name)
        if not name.startswith("desk-"):
            self.d.execute_cdp_cmd(
                "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
            )
            self.check_axe(name + " (dark)")
            self.dark[name] = str(self.d.execute_script("return getComputedStyle(document.body).backgroundColor"))
            self.d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
        for width in WIDTHS:
            self.d.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": False},
            )
            wide = self.d.execute_script(
                "return [document.documentElement.scrollWidth, window.innerWidth]"
            )
            assert wide[1] == width, f"{name}: the window is {wide[1]} px wide, not {width}"
            if wide[0] > wide[1]:
                widest = self.d.execute_script(WIDEST)
                self.d.save_screenshot(str(SCREENSHOTS / f"{self.prefix}{name}-{width}.png"))
                self.overflows.append(
                    f"{name} at {width} px: the page is {wide[0]} px wide; widest: {widest}"
                )
        self.d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        self.pages.add(name)

    def check_axe(self, name: str) -> None:
        import axe_selenium_python

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

    def visit(self, name: str, path: str) -> None:
        self.open(path)
        self.measure(name)

    def first_link(self, css: str) -> str:
        """The path of the first link `css` finds (the archive links to the public site's
        address, which is served here too)."""
        href = self.d.find_element(By.CSS_SELECTOR, css).get_attribute("href") or ""
        return urlsplit(href).path


def test_every_page_fits_320_375_and_1280_px(site: Site, browser: WebDriver) -> None:
    """Desk, reader and archive pages: none wider than the window at any of the three widths."""
    me = Measurer(browser, site)

    # The reader's side: subscribing, confirming, their page, unsubscribing.
    me.visit("subscribe", "/subscribe")
    browser.find_element(By.NAME, "email").send_keys(
        "new.reader.with.a.rather.long.address@harborlight-community-health.example.org"
    )
    me.press("main form button[type=submit]")
    me.measure("subscribe-done")
    deadline = time.monotonic() + 15
    while not (confirm := _links(site, "confirm")) and time.monotonic() < deadline:
        time.sleep(0.1)  # the confirmation mail leaves after the answer
    assert confirm, "no confirmation mail in the outbox"
    me.visit("confirm", confirm[-1])
    manage = _links(site, "manage", to="maximiliana")
    assert manage, "no newsletter in the outbox"
    me.visit("manage", manage[0])
    me.visit("unsubscribe", _links(site, "unsubscribe", to="maximiliana")[0])
    me.press("main form button[type=submit]")
    me.measure("unsubscribed")

    # The archive.
    me.visit("archive-index", "/")
    me.visit("archive-page-2", "/page/2/")
    older = me.first_link(".archive h3 a")
    article = me.first_link(".archive h3 a")
    me.visit("archive-article", article)
    me.visit("archive-wide-article", "/resources/")
    me.visit("newsletter-wide", "/newsletters/resources.html")  # the email as the archive shows it
    assert browser.title.startswith("Resources"), browser.title
    me.visit("archive-topics", "/tags/")
    me.visit("archive-topic", me.first_link(".topics a"))
    me.visit("archive-not-found", "/no-such-page/")
    me.open("/")
    box = browser.find_element(By.CSS_SELECTOR, ".search input")
    box.send_keys("sleep")
    me.measure("archive-search")

    # The desk, as the owner.
    me.sign_in(OWNER)
    me.measure("desk-home")
    for name, path in (
        ("desk-articles", "/desk/articles"),
        ("desk-editor-new", "/desk/articles/new"),
        ("desk-editor", f"/desk/articles{article.rstrip('/')}"),
        ("desk-versions", f"/desk/articles{article.rstrip('/')}/revisions"),
        ("desk-issues", "/desk/issues"),
        ("desk-subscribers", "/desk/subscribers"),
        ("desk-import", "/desk/subscribers/import"),
        ("desk-media", "/desk/media"),
        ("desk-settings", "/desk/settings"),
        ("desk-going-live", "/desk/going-live"),  # long shell lines in the guide's code blocks
        ("desk-keys", "/desk/settings/keys"),
        ("desk-account", "/desk/account"),
    ):
        me.visit(name, path)
    me.open(f"/desk/articles{older.rstrip('/')}")
    me.press("button[name=action][value=save]")  # a saved version, to compare
    me.open(f"/desk/articles{older.rstrip('/')}/revisions")
    me.visit("desk-version", me.first_link("main table a[href^='/desk/revisions/']"))
    me.open(f"/desk/articles{older.rstrip('/')}")
    me.press("#send-now button[type=submit]")
    me.measure("desk-confirm-send")
    me.open("/desk/subscribers/import")
    upload = site.folder / "readers.csv"
    upload.write_text(LONG_READER.replace("maximiliana.", "another.maximiliana."), encoding="utf-8")
    browser.find_element(By.ID, "file").send_keys(str(upload))
    me.press("main form button[type=submit]")
    me.measure("desk-import-preview")
    me.press("main form[action='/desk/subscribers/import/confirm'] button[type=submit]")
    me.measure("desk-imported")
    me.open("/desk/issues")
    me.visit("desk-issue", me.first_link("main table a[href^='/desk/issues/']"))
    me.visit("desk-issue-readers", me.first_link("#issue-readers-link"))  # the long address, a link
    me.open("/desk/subscribers?q=maximiliana")
    me.visit("desk-subscriber", me.first_link("main table a[href^='/desk/subscribers/']"))
    me.d.delete_all_cookies()
    me.visit("desk-login", "/desk/login")
    me.visit("desk-forgotten-password", "/desk/login/forgot")
    me.visit("desk-new-password", "/desk/login/reset/not-a-link")

    # Nothing a page asks for (its icon above all) is refused by its Content-Security-Policy.
    refused = [e["message"] for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]
    assert not refused, refused
    assert me.dark["archive-article"] == me.dark["manage"] == "rgb(28, 31, 34)", me.dark  # the dark surface
    assert not me.overflows, "pages that scroll sideways:\n" + "\n".join(me.overflows)
    assert not me.violations, "\n".join(me.violations)
    assert len(me.pages) >= 30, sorted(me.pages)
    assert httpx.get(site.url + "/healthz").status_code == 200
