"""What a newcomer's week in the desk found, over HTTP: a session that ends mid-edit loses
nothing, Send pressed twice goes once, the preview button lands on the preview, the
browser's /favicon.ico is answered, and the desk's dark colours keep their contrast.

(The same week in a real browser, at 375 and 1280 px, light and dark, is
tests/test_week_walk_browser.py.)
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from desk_support import add_users, csrf_of, quick_hashes, sign_in
from web_support import live_server, make_publication, publish_manifest

from publisher.config import Config
from publisher.content.palette import contrast
from publisher.store import open_store
from publisher.store import subscribers as subscriber_store
from publisher.web import create_app

ROOT = Path(__file__).resolve().parent.parent
ARTICLE = """---
title: Sleep after a loss
date: 2026-01-05 08:00
---

Grief changes sleep.
"""
SLUG = "sleep-after-a-loss"
PASSWORD = "a long enough passphrase"


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    quick_hashes(monkeypatch)
    config = make_publication(tmp_path)
    (tmp_path / "content").mkdir()
    (tmp_path / "content" / f"2026-01-05-{SLUG}.md").write_text(ARTICLE, encoding="utf-8")
    add_users(config)
    return config


@pytest.fixture
def url(config: Config) -> Iterator[str]:
    with live_server(create_app(config)) as base:
        yield base


def editor_form(page: str) -> dict[str, str]:
    fields = dict(re.findall(r'name="(title|slug|date|tags|summary|base|draft_key)"[^>]*value="([^"]*)"', page))
    found = re.search(r'<textarea id="body" name="body"[^>]*>(.*?)</textarea>', page, re.S)
    assert found
    fields["body"] = html.unescape(found.group(1))
    fields["csrf"] = csrf_of(page)
    return {k: html.unescape(v) for k, v in fields.items()}


def hidden_fields(page: str) -> dict[str, str]:
    return {
        name: html.unescape(value)
        for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)
    }


def end_sessions(http: httpx.Client) -> None:
    """As if the session had run out: the browser's cookie no longer names one."""
    csrf = csrf_of(http.get("/desk/").text)
    http.post("/desk/logout-all", data={"csrf": csrf})


def test_a_save_after_the_session_ended_keeps_the_text_on_the_sign_in_page(config: Config, url: str) -> None:
    """Save with a dead session: the sign-in page (401) carries and shows every word typed."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        form = editor_form(http.get(f"/desk/articles/{SLUG}").text)
        end_sessions(http)
        form["body"] = "Three paragraphs typed while the session quietly ended."
        answer = http.post(f"/desk/articles/{SLUG}", data={**form, "action": "save"})
    assert answer.status_code == 401
    assert "Nothing you typed is lost" in answer.text
    kept = hidden_fields(answer.text)
    assert kept["body"] == form["body"] and kept["article"] == SLUG and kept["title"] == "Sleep after a loss"
    assert 'action="/desk/login/resume"' in answer.text
    assert "Three paragraphs typed" in answer.text.split('id="kept-body"')[1]
    assert "Grief changes sleep." in (config.root / "content" / f"2026-01-05-{SLUG}.md").read_text()


def test_signing_in_again_opens_the_editor_with_the_text_restored_unsaved(config: Config, url: str) -> None:
    """The kept sign-in: the text comes back in the editor as a version, not saved into the file."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        form = editor_form(http.get(f"/desk/articles/{SLUG}").text)
        end_sessions(http)
        form["body"] = "Words from before the session ended."
        page = http.post(f"/desk/articles/{SLUG}", data={**form, "action": "save"}).text
        back = http.post(
            "/desk/login/resume",
            data={**hidden_fields(page), "email": "editor@example.org", "password": PASSWORD},
        )
        assert back.status_code == 303
        assert back.headers["location"].startswith(f"/desk/articles/{SLUG}?revision=")
        editor = http.get(back.headers["location"])
    assert editor.status_code == 200
    assert "not saved yet" in editor.text and "Words from before the session ended." in editor.text
    assert "Grief changes sleep." in (config.root / "content" / f"2026-01-05-{SLUG}.md").read_text()


def test_a_new_article_comes_back_under_its_draft_key(url: str) -> None:
    """A new article (no address yet) is restored into a new editor under its own draft key."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        form = editor_form(http.get("/desk/articles/new").text)
        end_sessions(http)
        form.update(title="שלום: a title in two scripts", body="A first draft, never saved.")
        page = http.post("/desk/articles/new", data={**form, "action": "preview"}).text
        back = http.post(
            "/desk/login/resume",
            data={**hidden_fields(page), "email": "editor@example.org", "password": PASSWORD},
        )
        editor = http.get(back.headers["location"])
    assert back.headers["location"].startswith(f"/desk/articles/new?draft={form['draft_key']}&revision=")
    assert "A first draft, never saved." in editor.text and "שלום: a title in two scripts" in editor.text


def test_a_wrong_password_keeps_the_text_and_writes_nothing(config: Config, url: str) -> None:
    """A mistyped password on the kept sign-in says so, carries the text again and keeps no version."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        form = editor_form(http.get(f"/desk/articles/{SLUG}").text)
        end_sessions(http)
        form["body"] = "Still here after a typo."
        page = http.post(f"/desk/articles/{SLUG}", data={**form, "action": "save"}).text
        wrong = http.post(
            "/desk/login/resume", data={**hidden_fields(page), "email": "editor@example.org", "password": "nope"}
        )
        forged = http.post(
            "/desk/login/resume",
            data={**hidden_fields(page), "csrf": "forged-token-0123456789", "email": "editor@example.org",
                  "password": PASSWORD},
        )
        assert http.get("/desk/").headers["location"].startswith("/desk/login")
    assert wrong.status_code == 400 and hidden_fields(wrong.text)["body"] == "Still here after a typo."
    assert forged.status_code == 403 and hidden_fields(forged.text)["body"] == "Still here after a typo."


def test_send_pressed_twice_sends_once_and_shows_the_issue(config: Config, url: str) -> None:
    """The confirmed Send arriving twice (a double click): one copy each, and the second
    answer leads to the issue under way, not to "nobody would get it"."""
    engine = open_store(config.store_url)
    for n in range(2):
        subscriber_store.add(engine, f"reader{n}@example.org", now=datetime.now(UTC))
    engine.dispose()
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        csrf = csrf_of(http.get("/desk/").text)
        first = http.post(f"/desk/articles/{SLUG}/send", data={"csrf": csrf, "confirm": "2"})
        second = http.post(f"/desk/articles/{SLUG}/send", data={"csrf": csrf, "confirm": "2"})
        issue = http.get(second.headers["location"])
    assert first.status_code == 303 and second.status_code == 303
    assert second.headers["location"] == first.headers["location"].replace("m=queued", "m=already-sent")
    assert "each reader gets one copy" in issue.text


def test_preview_lands_on_the_preview(config: Config, url: str) -> None:
    """"Preview and check" posts to the editor's own address with #preview-h, so the page
    that comes back opens at the preview, not at the top of a long form."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        page = http.get(f"/desk/articles/{SLUG}").text
    assert f'value="preview" class="secondary" formaction="/desk/articles/{SLUG}#preview-h"' in page
    assert 'id="preview-h"' in page


def test_the_browsers_favicon_request_gets_the_publications_icon(url: str) -> None:
    """/favicon.ico, asked for by every browser, is the default icon, cached for a day, not a 404."""
    with httpx.Client(base_url=url) as http:
        icon = http.get("/favicon.ico")
        again = http.get("/favicon.ico", headers={"if-none-match": icon.headers["etag"]})
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
    assert icon.content.startswith(b"<svg") and b">Q</text>" in icon.content  # the title, "Quiet Harbor"
    assert "max-age=86400" in icon.headers["cache-control"]
    assert again.status_code == 304


def test_a_favicon_the_build_wrote_wins(config: Config) -> None:
    """A publication's own favicon.ico in the build is served as it is."""
    public = config.root / "public"
    (public / "favicon.ico").write_bytes(b"\x00\x00\x01\x00own icon")
    publish_manifest(public)
    with live_server(create_app(config)) as base:
        icon = httpx.get(base + "/favicon.ico")
    assert icon.status_code == 200 and icon.content == b"\x00\x00\x01\x00own icon"


def _dark_block() -> str:
    css = (ROOT / "templates" / "desk" / "static" / "desk.css").read_text(encoding="utf-8")
    start = css.find("@media (prefers-color-scheme: dark)")
    assert start >= 0, "desk.css has no dark colour scheme"
    return css[start:]


def test_the_dark_colours_keep_the_contrast_of_the_light_ones() -> None:
    """In the dark scheme, text, muted text, links and buttons keep at least 4.5:1 (WCAG AA)
    on every background they sit on; the borders of fields at least 3:1."""
    block = _dark_block()
    var = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-f]{6})", block))
    backgrounds = {
        "page": var["page"], "field": var["field"], "soft": var["soft"],
        "notice": "#16301a", "error box": "#3a1613", "warn box": "#33290e",
    }
    pairs = [(role, var[role], where, colour) for role in ("text", "muted", "accent")
             for where, colour in backgrounds.items()]
    pairs += [
        ("error", var["error"], "error box", "#3a1613"),
        ("button text", var["on-accent"], "accent", var["accent"]),
        ("button text", var["on-accent"], "accent-dark", var["accent-dark"]),
        ("danger button text", var["on-accent"], "error", var["error"]),
        ("inserted", "#ccf2cf", "inserted", "#193d1d"),
        ("deleted", "#ffd2cc", "deleted", "#4d1c18"),
        ("comment", "#f3dca8", "comment", "#2f2713"),
        *[("editor token", colour, "field", var["field"]) for colour in ("#a9c8ff", "#ffb4a8", "#9be09f")],
    ]
    low = [f"{role} on {where}: {contrast(fg, bg):.2f}" for role, fg, where, bg in pairs if contrast(fg, bg) < 4.5]
    assert low == []
    assert contrast("#8b929a", var["page"]) >= 3 and contrast("#8b929a", var["field"]) >= 3


def test_a_draft_sent_in_the_minute_it_was_dated_comes_out_with_one_date(config: Config) -> None:
    """Write a draft and send it within the same minute: it goes on the site dated once,
    not refused for a date "set twice"."""
    from publisher.services import articles as article_service

    now = datetime(2026, 12, 7, 2, 50, 30, tzinfo=UTC)
    path = config.root / "content" / "2026-12-07-quick.md"
    path.write_text("---\ntitle: Quick\ndate: 2026-12-07 02:50\ndraft: true\n---\n\nSent at once.\n", encoding="utf-8")
    article = article_service.publish_scheduled(config, "quick", at=now, now=now)
    assert article.is_public(now)
    assert path.read_text(encoding="utf-8").count("date:") == 1


def test_send_now_on_a_scheduled_article_says_the_schedule_stays(config: Config, url: str) -> None:
    """Send now, when the article is also scheduled, names that schedule on the confirmation
    and what it will still do, so that neither send surprises."""
    engine = open_store(config.store_url)
    subscriber_store.add(engine, "reader@example.org", now=datetime.now(UTC))
    engine.dispose()
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        csrf = csrf_of(http.get("/desk/").text)
        at = f"{datetime.now(UTC).year + 1}-01-05T07:00"
        assert http.post(f"/desk/articles/{SLUG}/schedule", data={"csrf": csrf, "at": at}).status_code == 303
        ask = http.post(f"/desk/articles/{SLUG}/send", data={"csrf": csrf})
    assert 'id="also-scheduled"' in ask.text
    assert "reaches only readers who have not had it" in ask.text and "07:00" in ask.text
