"""The archive's search box in a real browser (headless Chromium), served by publisher itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from browser import chromium
from test_archive import many, with_settings
from test_build import NOW, SITE, article
from web_support import live_server

from publisher.config import load_config
from publisher.site import build
from publisher.web.static import StaticSite

WAIT = 15.0


def built_site(root: Path) -> Path:
    """Twenty-six articles, ten a page; the two to find are on the last page and in a tag."""
    config = with_settings(root, "per_page = 10")
    old = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    posts = [
        *many(24, tags=("Sleep",)),
        article("lantern-keeper", 1, date=old, id="tag:x,2024:/lantern", title="The lantern keeper's night",
                summary="A story about light.", tags=("Stories",)),
        article("eveil", 1, date=old + timedelta(days=1), id="tag:x,2024:/eveil", title="Éveil nocturne",
                summary="Se réveiller à trois heures.", tags=("Nuit",)),
    ]
    build.build_site(config, posts, NOW)
    return root / "public"


def wait_for(session: Any, condition: Any) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(session, WAIT).until(condition)


def result_links(session: Any) -> list[tuple[str, str]]:
    from selenium.webdriver.common.by import By

    return [
        (link.text, link.get_attribute("href"))
        for link in session.find_elements(By.CSS_SELECTOR, "#search-results a")
    ]


def test_search_box_finds_an_article_from_the_last_page(tmp_path: Path) -> None:
    """Typing words from a title, a summary or a topic lists the article with its link,
    accents aside, under the page's CSP; nothing is reported to the console."""
    from selenium.webdriver.common.by import By

    public = built_site(tmp_path)
    with live_server(StaticSite(public, site_url=SITE)) as url, chromium() as session:
        session.get(url + "/")
        box = wait_for(session, lambda s: s.find_element(By.ID, "search-words") if s.find_element(
            By.ID, "search").is_displayed() else None)
        assert result_links(session) == []
        box.send_keys("lantern")
        wait_for(session, lambda s: result_links(s))
        assert result_links(session) == [("The lantern keeper's night", url + "/lantern-keeper/")]
        assert session.find_element(By.ID, "search-status").text == "Matching articles: 1"
        box.clear()
        box.send_keys("eveil")
        wait_for(session, lambda s: [t for t, _ in result_links(s)] == ["Éveil nocturne"])
        box.clear()
        box.send_keys("stories light")
        wait_for(session, lambda s: [t for t, _ in result_links(s)] == ["The lantern keeper's night"])
        box.clear()
        box.send_keys("nothing-like-this")
        wait_for(session, lambda s: s.find_element(By.ID, "search-status").text == "No article matches these words.")
        assert result_links(session) == []
        # The browser asks for /favicon.ico on its own; the sample site has none.
        problems = [
            entry["message"]
            for entry in session.get_log("browser")
            if entry["level"] in ("SEVERE", "WARNING") and "favicon.ico" not in entry["message"]
        ]
        assert problems == []


def test_without_javascript_there_is_no_box(tmp_path: Path) -> None:
    """With scripts off the page is the plain archive: no search box, every article listed by page."""
    from selenium.webdriver.common.by import By

    public = built_site(tmp_path)
    with live_server(StaticSite(public, site_url=SITE)) as url, chromium(javascript=False) as session:
        session.get(url + "/")
        assert not session.find_element(By.ID, "search").is_displayed()
        assert len(session.find_elements(By.CSS_SELECTOR, "ol.archive > li")) == 10
        assert session.find_element(By.CSS_SELECTOR, 'nav.pager a[rel="next"]').is_displayed()


def test_right_to_left_archive_does_not_scroll_sideways(tmp_path: Path) -> None:
    """In Arabic the page reads right to left and nothing hidden off-screen (the skip link)
    widens it into a sideways scroll; the search box works the same."""
    from selenium.webdriver.common.by import By

    public = tmp_path / "public"
    with_settings(tmp_path, "per_page = 10")
    path = tmp_path / "config.toml"
    path.write_text(path.read_text().replace("[build]", 'language = "ar"\n\n[build]', 1))
    build.build_site(load_config(path, env={}), many(12, tags=("Sleep",)), NOW)
    with live_server(StaticSite(public, site_url=SITE)) as url, chromium() as session:
        session.set_window_size(800, 900)
        for page in ("/", "/article-003/", "/tags/sleep/"):
            session.get(url + page)
            assert session.find_element(By.TAG_NAME, "html").get_attribute("dir") == "rtl"
            overflow = session.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow == 0, page
        session.get(url + "/")
        box = wait_for(session, lambda s: s.find_element(By.ID, "search-words") if s.find_element(
            By.ID, "search").is_displayed() else None)
        box.send_keys("number 3")
        wait_for(session, lambda s: [t for t, _ in result_links(s)] == ["Article number 3"])
        assert session.find_element(By.ID, "search-status").text == "المقالات المطابقة: 1"
