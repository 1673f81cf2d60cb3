"""The desk in a real browser: headless Chromium (Debian's chromium and chromium-driver,
driven by Selenium) against `publisher serve` on loopback.

One author's session, in order: sign in, write an article, preview it at 375 and 600 px,
test-send it (the copy lands in the Maildir), schedule it for the next minute; upload a
CSV with bad rows, see the rejects in the preview, import; let the daemon send the
scheduled issue and see the counts on Home and on the issue's page; a reader unsubscribes
with one click from their email's link and Home counts the departure. A viewer cannot
send; the owner makes an API key. axe-core checks every page (no serious or critical
violation), and every page is photographed at 375 and 1280 px into SCREENSHOTS (printed
at the end; set PUBLISHER_DESK_SCREENSHOTS to choose another folder).

Skipped when chromium, chromedriver or selenium is missing (`.ci/run` installs them).
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from desk_browser_support import (
    PASSWORD,
    ROOT,
    SCREENSHOTS,
    WIDTHS,
    Author,
    Site,
    browser_fixture,  # noqa: F401 - the `browser` fixture
    gone,
    publication,
    serving,
)
from PIL import Image
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from publisher import content
from publisher.site import build
from publisher.store import open_store, subscribers

CSV = (
    "email,name,tags\n"
    "noor.haddad@example.org,Noor Haddad,teens\n"
    "not-an-address,Broken Row,\n"
    "lee.chan@example.org,Lee Chan,sleep\n"
    "noor.haddad@example.org,Noor Again,\n"
    "robin.diaz@example.org,Robin Diaz,\n"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A publication with the sample articles, five readers and three desk users, served
    by `publisher serve` on a free loopback port."""
    folder = tmp_path_factory.mktemp("desk")
    shutil.copytree(ROOT / "content", folder / "content")
    users = {"editor@example.org": "editor", "viewer@example.org": "viewer", "owner@example.org": "owner"}
    made = publication(folder, users, '\n[subscribe]\npublic_tags = ["teens", "sleep"]\n')
    config = made.config()
    now = datetime.now(UTC)
    build.build_site(config, content.load_articles(config), now)
    engine = open_store(config.store_url)
    try:
        with (ROOT / "demo" / "subscribers.csv").open(encoding="utf-8", newline="") as readers:
            subscribers.import_csv(engine, readers, now=now, origin="subscribers.csv")
    finally:
        engine.dispose()
    with serving(made) as served:
        yield served


def _next_minute(now: datetime) -> datetime:
    at = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
    return at if (at - now).total_seconds() >= 8 else at + timedelta(minutes=1)


def test_an_author_writes_checks_sends_and_follows_an_issue(site: Site, browser: WebDriver) -> None:
    """The whole desk, in a browser, as an author and a reader would use it."""
    started = time.monotonic()
    me = Author(browser, site)

    # Signing in: the login page, then Home.
    browser.delete_all_cookies()
    me.open("/desk/articles")
    assert "/desk/login?next=/desk/articles" in browser.current_url
    me.check("login")
    # By keyboard alone: the skip link first, then the fields in order, Enter to send.
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Skip to content"
    before = browser.find_element(By.TAG_NAME, "html")
    ActionChains(browser).send_keys(Keys.TAB, "editor@example.org", Keys.TAB, PASSWORD, Keys.ENTER).perform()
    WebDriverWait(browser, 30).until(gone(before))
    me.settled()
    assert browser.current_url.endswith("/desk/articles"), me.text()
    me.open("/desk/")
    me.check("home")

    # A photo first, from the Media page: it comes back as Markdown to put in the article.
    me.open("/desk/media")
    photo = site.folder / "office.jpg"
    Image.new("RGB", (1200, 800), (90, 130, 160)).save(photo, "JPEG")
    browser.find_element(By.ID, "media-file").send_keys(str(photo))
    me.press("main form[action='/desk/media'] button[type=submit]")
    picture = browser.find_element(By.ID, "uploaded-md").get_attribute("value") or ""
    assert picture.startswith("![](") and "1200x800" in picture, picture
    me.check("media-uploaded")

    # Write a new article as a draft, with the photo described, save it, preview and check it.
    me.open("/desk/articles/new")
    me.check("editor-new")
    me.field("title", "Five small habits for calmer evenings")
    me.field("tags", "sleep, evenings")
    me.field("summary", "Small changes to the last hour of the day that help the whole family rest.")
    browser.execute_script(
        "document.getElementById('date').value = arguments[0];",
        f"{datetime.now(UTC) - timedelta(minutes=5):%Y-%m-%d %H:%M}",
    )
    draft = browser.find_element(By.ID, "draft")
    if not draft.is_selected():
        draft.click()
    # The body is a rich editor (EasyMDE over CodeMirror) that keeps the textarea in step.
    browser.execute_script(
        "document.querySelector('.CodeMirror').CodeMirror.setValue(arguments[0]);",
        "Evenings set the tone for sleep.\n\n" + picture.replace("![]", "![The practice's waiting room at dusk]")
        + "\n\n## Dim the lights\n\nAn hour before bed, lower the lights.\n\nDana Reyes\nLCSW\nHarbor Light\n",
    )
    me.press("button[name=action][value=save]")
    assert browser.current_url.endswith("/desk/articles/five-small-habits-for-calmer-evenings?m=saved")
    files = list((site.folder / "content").glob("*five-small-habits-for-calmer-evenings.md"))
    assert len(files) == 1 and "Dim the lights" in files[0].read_text(encoding="utf-8")
    me.press("button[name=action][value=preview]")
    frames = browser.find_elements(By.CSS_SELECTOR, "iframe[data-preview=email]")
    assert [f.get_attribute("sandbox") for f in frames] == ["", ""], me.text()
    assert [f.size["width"] for f in frames] == [375, 600]
    browser.switch_to.frame(frames[0])
    assert "Dim the lights" in browser.find_element(By.TAG_NAME, "body").text
    browser.switch_to.default_content()
    checks = browser.find_element(By.ID, "preflight-h").find_element(By.XPATH, "..").text
    assert "Postal address (passed)" in checks and "Unsubscribe link (passed)" in checks
    assert "Links to your site (passed)" in checks
    me.check("editor-preview")

    # A test copy to me lands in the Maildir.
    me.press("#send form[action$='/test#send'] button[type=submit]")
    assert "The test copy is on its way" in me.text()
    copies = site.outbox()
    assert [m["To"] for m in copies] == ["editor@example.org"]
    assert copies[0]["Subject"] == "[Test] Five small habits for calmer evenings"  # a test copy says so

    # Saving never sent anything: only the test copy is in the outbox.
    assert len(site.outbox()) == 1

    # A time in the past is refused with the reason, and the typed time is kept.
    browser.execute_script("document.getElementById('at').value = arguments[0];", "2020-01-07T07:00")
    me.press("#send form[action$='/schedule#send'] button[type=submit]")
    assert "is in the past" in browser.find_element(By.ID, "send-error").text
    assert browser.find_element(By.ID, "at").get_attribute("value") == "2020-01-07T07:00"
    me.check("schedule-refused")

    # Schedule the draft for Tuesday 07:00: Home shows it with Cancel; cancel it there.
    tuesday = datetime.now(UTC).date() + timedelta(days=(1 - datetime.now(UTC).weekday()) % 7 or 7)
    browser.execute_script("document.getElementById('at').value = arguments[0];", f"{tuesday}T07:00")
    assert "in " in browser.find_element(By.ID, "at-words").text  # how far off, said while typing
    # A city in the zone field, as the server takes one: the hint follows it while typed.
    zone = browser.find_element(By.ID, "timezone")
    own_zone = str(zone.get_attribute("value"))
    zone.clear()
    zone.send_keys("New York")
    assert "(America/New York)" in browser.find_element(By.ID, "at-words").text
    zone.clear()
    zone.send_keys(own_zone)
    me.press("#send form[action$='/schedule#send'] button[type=submit]")
    state = browser.find_element(By.ID, "send-state").text
    assert f"Scheduled for {tuesday:%a %d %b %Y}, 07:00 UTC" in state and "goes on the site" in state, state
    me.check("editor-scheduled")
    me.open("/desk/")
    assert "Five small habits for calmer evenings" in browser.find_element(By.ID, "scheduled").text
    me.check("home-scheduled")
    me.press("#scheduled form[action$='/cancel'] button[type=submit]")
    assert "Nothing is scheduled." in browser.find_element(By.ID, "scheduled").text

    # Reschedule it for the next minute (the author's zone is UTC): the daemon sends it then.
    me.open("/desk/articles/five-small-habits-for-calmer-evenings")
    assert "Draft" in browser.find_element(By.ID, "send-state").text
    at = _next_minute(datetime.now(UTC))
    browser.execute_script(
        "document.getElementById('at').value = arguments[0];", f"{at:%Y-%m-%dT%H:%M}"
    )
    me.press("#send form[action$='/schedule#send'] button[type=submit]")
    assert f"Scheduled for {at:%a %d %b %Y, %H:%M} UTC" in browser.find_element(By.ID, "send-state").text

    # Send now asks first, naming the readers and the provider (and is not confirmed here).
    me.press("#send form[action$='/send#send'] button[type=submit]")
    assert "to 5 readers through the Maildir outbox" in browser.find_element(By.TAG_NAME, "h1").text
    assert "Nothing has been sent yet." in me.text()
    me.check("confirm-send")

    # Upload a CSV with bad rows: the preview shows the rejects, then import.
    me.open("/desk/subscribers/import")
    me.check("import")
    upload = site.folder / "more-readers.csv"
    upload.write_text(CSV, encoding="utf-8")
    browser.find_element(By.ID, "file").send_keys(str(upload))
    me.press("main form button[type=submit]")
    rejected = browser.find_element(By.ID, "rejected").text
    assert "Line 3" in rejected and "Line 5" in rejected
    assert "Import 3 rows" in me.text()
    assert "not-an-address" not in browser.find_element(By.TAG_NAME, "tbody").text
    me.check("import-preview")
    me.press("main form button[type=submit]")
    assert "5 rows read: 3 added, 0 updated, 0 unchanged, 2 refused." in me.text()
    me.open("/desk/subscribers")
    assert "noor.haddad@example.org" in me.text()
    me.check("subscribers")
    me.follow("noor.haddad@example.org")
    me.check("subscriber")

    # The other pages, for axe and the screenshots.
    for path, name in (("/desk/articles", "articles"), ("/desk/issues", "issues")):
        me.open(path)
        me.check(name)

    # A viewer reads but cannot send.
    me.sign_in("viewer@example.org")
    me.open("/desk/articles/five-small-habits-for-calmer-evenings")
    assert not browser.find_elements(By.CSS_SELECTOR, "#send form[action$='/send#send']")
    assert browser.find_element(By.ID, "title").get_attribute("disabled") is not None or not browser.find_element(
        By.ID, "title"
    ).is_enabled()
    me.check("editor-viewer")

    # The daemon sends the scheduled issue to the eight readers; Home and the issue page count it.
    me.sign_in("editor@example.org")
    deadline = time.monotonic() + 120
    while len([m for m in site.outbox() if m["To"] != "editor@example.org"]) < 8:
        assert time.monotonic() < deadline, "the scheduled issue was not sent"
        time.sleep(0.5)
    time.sleep(1.0)
    me.open("/desk/")
    row = browser.find_element(By.ID, "last-issues").find_element(By.TAG_NAME, "tbody").text
    assert "Five small habits for calmer evenings" in row and " 8 " in f" {row} "
    # It went on the site at its minute, its signature's lines kept apart.
    page = next((site.folder / "public").glob("*/five-small-habits-for-calmer-evenings/index.html"), None) or next(
        (site.folder / "public").rglob("five-small-habits-for-calmer-evenings/index.html")
    )
    assert "Dana Reyes<br>" in page.read_text(encoding="utf-8")
    me.follow("Five small habits for calmer evenings")
    counts = browser.find_element(By.ID, "live-counts").text
    # Written as a sentence, shown as one: not "Accepted By The Provider".
    assert re.search(r"Accepted by the provider\s+8", counts), counts
    me.check("issue")

    # A reader unsubscribes with one click from their email's link; Home counts the departure.
    letter = next(m for m in site.outbox() if m["To"] and "avery.quinn" in m["To"])
    link = re.search(r"<(http[^>]+/unsubscribe/[^>]+)>", letter["List-Unsubscribe"])
    assert link
    browser.delete_all_cookies()
    browser.get(link.group(1))
    me.check("unsubscribe")
    me.follow("choose what you get")
    assert "Your subscription" in browser.find_element(By.TAG_NAME, "h1").text
    me.check("manage")
    browser.back()
    me.press("main form button[type=submit]")
    assert "You are unsubscribed" in browser.find_element(By.TAG_NAME, "h1").text
    me.sign_in("editor@example.org")
    assert browser.find_element(By.CSS_SELECTOR, "strong[data-status=unsubscribed]").text == "1"
    assert "1 left" in me.text()
    # The issue counts the departure for its own message, with how the reader left.
    me.open("/desk/issues")
    me.follow("Five small habits for calmer evenings")
    counts = browser.find_element(By.ID, "live-counts").text
    assert re.search(r"Unsubscribed from this message\s+1", counts), counts
    browser.find_element(By.CSS_SELECTOR, "details.reasons summary").click()
    assert "the unsubscribe link in the message: 1 reader left" in me.text()
    me.check("issue-reasons")

    # The owner's settings.
    me.sign_in("owner@example.org")
    me.open("/desk/settings")
    me.check("settings")
    # An API key: made from its form, shown once, then only its prefix is listed.
    me.follow("Create, list and revoke API keys")
    me.field("k-name", "crm-sync")
    browser.find_element(By.CSS_SELECTOR, "label[for=k-scope-1]").click()
    me.press("main form[action$='/settings/keys'] button[type=submit]")
    token = str(browser.find_element(By.ID, "new-token").get_attribute("value"))
    assert token.startswith("pub_"), me.text()
    me.check("keys")
    me.open("/desk/settings/keys")
    assert "crm-sync" in me.text() and token not in browser.page_source

    print(f"\nscreenshots of {len(me.pages)} pages at {WIDTHS} px: {SCREENSHOTS}")
    print(f"browser session: {time.monotonic() - started:.1f} s")
    assert me.violations == [], "\n".join(me.violations)
