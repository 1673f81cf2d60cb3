"""The Move in / Move out page in a real browser (headless Chromium against `publisher serve`):
an owner finds it from Settings, uploads our own export, reads the preview, applies it,
and meets a refused file. axe-core finds no violation of any impact on each page, and
none scrolls sideways at 375 px; screenshots at 375 and 1280 px go to SCREENSHOTS.

Skipped when chromium, chromedriver or selenium is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import axe_selenium_python
import pytest
from click.testing import CliRunner
from desk_browser_support import (
    Author,
    Site,
    browser_fixture,  # noqa: F401 - the `browser` fixture
    publication,
    serving,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select
from test_export import sample

from publisher.cli import cli


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("desk-moving")
    (folder / "content").mkdir()
    with serving(publication(folder, {"owner@example.org": "owner"})) as served:
        yield served


class Mover(Author):
    prefix = "moving-"
    link_by = By.PARTIAL_LINK_TEXT
    fits_narrow = True

    def check(self, name: str) -> None:
        axe = axe_selenium_python.Axe(self.d)
        axe.inject()
        for violation in axe.run()["violations"]:  # none at all, of any impact
            self.violations.append(f"{name}: {violation['id']} ({violation['impact']})")
        super().check(name)


def test_an_owner_moves_a_publication_in_from_its_export(site: Site, browser: WebDriver, tmp_path: Path) -> None:
    """Settings -> Move in / Move out -> upload -> preview -> Apply, and a refused file."""
    config = sample(tmp_path / "old")
    export = tmp_path / "harbor-light-export.zip"
    assert CliRunner().invoke(cli, ["--config", str(config), "export", "--to", str(export)]).exit_code == 0
    me = Mover(browser, site)
    me.sign_in("owner@example.org")
    me.open("/desk/settings")
    me.follow("Export everything")
    assert "Move out: export everything" in me.text()
    me.check("page")

    Select(browser.find_element(By.ID, "service")).select_by_value("publisher")
    browser.find_element(By.ID, "file").send_keys(str(export))
    me.press("#in button[type=submit]")
    assert "Nothing has been written yet" in me.text()
    assert not list((site.folder / "content").glob("*.md"))
    me.check("preview")

    me.press("#plan form[action$=apply] button")
    assert "Moved in from" in me.text()
    assert len(list((site.folder / "content").glob("*.md"))) == 6
    me.check("applied")

    bad = tmp_path / "notes.zip"
    bad.write_text("not a zip")
    browser.find_element(By.ID, "file").send_keys(str(bad))
    me.press("#in button[type=submit]")
    assert "notes.zip" in me.text() and "not a zip archive" in me.text()
    me.check("refused")
    print("\nMove in / Move out screenshots:\n" + "\n".join(str(p) for p in me.shots))
    assert me.violations == []
