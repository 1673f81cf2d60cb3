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
from collections.abc import Iterator
from pathlib import Path

import pytest
from desk_browser_support import (
    Author,
    Site,
    browser_fixture,  # noqa: F401 - the `browser` fixture
    publication,
    serving,
)
from PIL import ExifTags, Image
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

ARTICLE = """---
title: Light in the evening
date: 2026-01-05 08:00
---

Dim lights help the evening wind down.
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A publication with one article and two desk users, served by `publisher serve`."""
    folder = tmp_path_factory.mktemp("desk-media")
    (folder / "content").mkdir()
    (folder / "content" / "2026-01-05-light-in-the-evening.md").write_text(ARTICLE, encoding="utf-8")
    with serving(publication(folder, {"editor@example.org": "editor", "viewer@example.org": "viewer"})) as served:
        yield served


class MediaAuthor(Author):
    """Every page checked must fit 375 px without scrolling sideways."""

    fits_narrow = True


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
    me = MediaAuthor(browser, site)
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
    me.press_button(card.find_element(By.CSS_SELECTOR, "button"))
    assert "Delete this picture?" in me.text()
    confirm = browser.find_element(By.ID, "confirm")
    assert "used by Light in the evening" in confirm.text and not confirm.find_elements(By.TAG_NAME, "button")
    me.check("media-delete-refused")
    assert len(site.media()) == 5

    # The unused one goes after the confirmation.
    me.open("/desk/media")
    card = next(li for li in browser.find_elements(By.CSS_SELECTOR, ".media-grid li") if body["name"] in li.text)
    me.press_button(card.find_element(By.CSS_SELECTOR, "button"))
    assert browser.find_elements(By.ID, "confirm")
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
