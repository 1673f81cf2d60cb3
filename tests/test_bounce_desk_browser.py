"""The desk's Bounces to review in a real browser (headless Chromium against `publisher serve`):
an editor finds a message no rule could read from the Subscribers page, reads it, applies it
as a hard bounce, and sees it on the reader's page. axe-core checks each page (no serious or
critical violation). Skipped when chromium, chromedriver or selenium is missing.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

import pytest
from desk_browser_support import (
    Author,
    browser_fixture,  # noqa: F401 - the `browser` fixture
    publication,
    serving,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from publisher.services.bounce_intake import take_message
from publisher.store import open_store, subscribers

UNCLEAR = textwrap.dedent("""\
    From: postmaster@mx.example.net
    To: notes@harborlight.example.org
    Subject: Undeliverable
    Message-ID: <odd-browser@mx.example.net>

    We could not hand your message to <robin.diaz@example.org>. Something went wrong.
    """).encode()


def test_an_editor_decides_on_a_bounce_kept_for_review(
    browser: WebDriver, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """From Subscribers to the queue, to the message, to Apply: the reader is stopped and
    their page says what came back and who decided."""
    folder = tmp_path_factory.mktemp("bounces-desk")
    site = publication(folder, {"editor@example.org": "editor"})
    engine = open_store(site.config().store_url)
    now = datetime.now(UTC)
    subscribers.add(engine, "robin.diaz@example.org", now=now)
    assert take_message(site.config(), engine, UNCLEAR, now=now, source="imap").outcome == "review"
    engine.dispose()
    with serving(site):
        me = Author(browser, site)
        me.sign_in("editor@example.org")
        me.open("/desk/subscribers")
        me.follow("Bounces to review")
        assert "robin.diaz@example.org" in me.text()
        me.check("bounces")
        me.press_button(me.d.find_element(By.CSS_SELECTOR, "main tbody a"))  # waits for the new page
        assert "We could not hand your message" in me.text()
        me.check("bounce")
        me.press("button[name=decision][value=hard]")
        assert "Decided." in me.text() and "Nothing waits for review." in me.text()
        me.open("/desk/subscribers?q=robin")
        me.follow("robin.diaz@example.org")
        assert "decided hard by editor@example.org" in me.text()
        me.check("subscriber-bounced")
    assert me.violations == []
