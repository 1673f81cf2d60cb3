"""The second pass over a newcomer's week in the desk: what it still found, over HTTP.

Words are counted in the text and not in a pasted document's markup; the desk names
Settings, not config keys; an expired session keeps a schedule, a test copy or a send
for the author to press again, and never carries one out by signing in.
"""

from __future__ import annotations

import html
import re
import string
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from desk_support import add_users, csrf_of, quick_hashes, sign_in
from hypothesis import given
from hypothesis import strategies as st
from test_week_walk import editor_form
from web_support import SECRET, live_server, make_publication

from publisher.config import Config, load_config
from publisher.content.palette import contrast
from publisher.mail import preflight
from publisher.services import revisions
from publisher.store import open_store
from publisher.store import subscribers as subscriber_store
from publisher.web import create_app
from publisher.web.desk.charts import Series, bar_chart

ARTICLE = """---
title: Sleep after a loss
date: 2026-01-05 08:00
---

Grief changes sleep.
"""
SLUG = "sleep-after-a-loss"
ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "a long enough passphrase"


def publication(root: Path, monkeypatch: pytest.MonkeyPatch, *, postal_address: str = "1 Test Road") -> Config:
    quick_hashes(monkeypatch)
    make_publication(root)
    path = root / "config.toml"
    text = path.read_text(encoding="utf-8").replace('"1 Test Road, Testville"', f"{postal_address!r}")
    text = text.replace('language = "en"', 'language = "en"\ntimezone = "Etc/UTC"')
    path.write_text(text, encoding="utf-8")
    (root / "content").mkdir()
    (root / "content" / f"2026-01-05-{SLUG}.md").write_text(ARTICLE, encoding="utf-8")
    config = load_config(path, env={"PUBLISHER_SECRET": SECRET})
    add_users(config)
    return config


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    return publication(tmp_path, monkeypatch)


@pytest.fixture
def url(config: Config) -> Iterator[str]:
    with live_server(create_app(config)) as base:
        yield base

WORDS = st.lists(st.text(alphabet=string.ascii_letters, min_size=1, max_size=9), max_size=12)
TAGS = st.sampled_from(["p", "span", "b", "o:p", "div", "h1", "a", "font", "li"])
ATTRIBUTES = st.sampled_from([
    "", ' class="MsoNormal"', " style='mso-fareast-font-family:\"Times New Roman\";color:black'",
    ' href="https://example.org/a-long-address?x=1&amp;y=2"', ' lang="EN-GB" data-x="a > b"',
])


@given(st.lists(st.tuples(WORDS, TAGS, ATTRIBUTES), max_size=8))
def test_words_wrapped_in_tags_count_as_the_words_alone(pieces: list[tuple[list[str], str, str]]) -> None:
    """Random words in random tags with attributes: the count is the number of words."""
    text = "".join(f"<{tag}{attrs}>{' '.join(words)}</{tag}>\n" for words, tag, attrs in pieces)
    assert revisions.count_words(text) == sum(len(words) for words, _, _ in pieces)


def test_a_word_processor_paste_counts_its_words_only() -> None:
    """Comments, styles, empty paragraphs and entities of a Word paste are not words."""
    paste = (
        "<!--[if gte mso 9]><xml><o:OfficeDocumentSettings><o:AllowPNG/></o:OfficeDocumentSettings></xml>"
        "<![endif]--><style>p.MsoNormal {margin:0cm; font-size:11.0pt; font-family:\"Calibri\",sans-serif;}</style>"
        '<p class="MsoNormal" style="margin-bottom:0cm">'
        '<span lang="EN-GB">Grief&nbsp;changes sleep.<o:p></o:p></span></p>'
        '<p class="MsoNormal"><o:p>&nbsp;</o:p></p>'
    )
    assert revisions.count_words(paste) == 3


def test_home_asks_for_the_postal_address_in_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before real readers: the missing postal address is asked for in Settings, a link, not a config key."""
    config = publication(tmp_path, monkeypatch, postal_address="")
    with live_server(create_app(config)) as base, httpx.Client(base_url=base) as http:
        sign_in(http, "owner@example.org")
        home = http.get("/desk/").text
    assert 'Add your postal address in <a href="/desk/settings">Settings</a>: every email must carry it.' in home
    assert "[publication]" not in home and "postal_address" not in home


def test_home_gives_the_settings_link_to_owners_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An editor cannot open Settings: the same line, no link, marked as an owner's task."""
    config = publication(tmp_path, monkeypatch, postal_address="")
    with live_server(create_app(config)) as base, httpx.Client(base_url=base) as http:
        sign_in(http, "editor@example.org")
        home = http.get("/desk/").text
    assert "Add your postal address in Settings: every email must carry it. " in home
    assert "(an owner's task)" in home and "/desk/settings" not in home


def test_home_lists_a_scheduled_send_in_utc_not_etc_utc(config: Config, url: str) -> None:
    """A send scheduled in the publication's zone (UTC) reads UTC on Home."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        csrf = csrf_of(http.get("/desk/").text)
        at = f"{datetime.now(UTC).year + 1}-01-05T07:00"
        assert http.post(f"/desk/articles/{SLUG}/schedule", data={"csrf": csrf, "at": at}).status_code == 303
        home = http.get("/desk/").text
    listed = re.search(r'<time datetime="[^"]+">[^<]*07:00</time>\s*(\S+)', home)
    assert listed and listed.group(1) == "UTC"
    assert "Etc/UTC" not in home


def test_a_new_article_with_a_taken_title_says_so_beside_the_title(url: str) -> None:
    """Saving a new article whose title makes an address already in use: the editor says it
    beside the title field, in plain words, without a file path."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        page = http.get("/desk/articles/new").text
        draft_key = re.search(r'name="draft_key" value="([^"]+)"', page)
        assert draft_key
        answer = http.post("/desk/articles/new", data={
            "csrf": csrf_of(page), "base": "", "draft_key": draft_key.group(1), "title": "Sleep after a loss",
            "slug": "", "date": "2026-12-01 09:00", "tags": "", "summary": "", "body": "Another text.",
            "action": "save",
        })
    assert answer.status_code == 409, re.findall(r'class="error"[^>]*>([^<]*)', answer.text)
    title = answer.text.split('id="title"', 1)[1].split("</p>", 1)[0]
    assert 'aria-describedby="title-error"' in title
    assert (
        "An article at this address already exists (sleep-after-a-loss): "
        "change the title or the address (slug)."
    ) in title
    assert "content/" not in answer.text and "exists already" not in answer.text


def test_the_chart_bars_keep_3_to_1_on_the_light_and_the_dark_page() -> None:
    """Each series' bar: 3:1 (WCAG, graphics) on white as drawn, and on the dark scheme's page
    with the fill desk.css gives its class there."""
    svg = bar_chart("Readers", ["Mon", "Tue"], [Series(f"s{n}", (3, 5)) for n in range(4)])
    drawn = dict(re.findall(r'<rect class="(series-\d)"[^>]* fill="(#[0-9a-f]{6})"', svg))
    css = (ROOT / "templates" / "desk" / "static" / "desk.css").read_text(encoding="utf-8")
    dark = css[css.index("@media (prefers-color-scheme: dark)"):]
    page = re.findall(r"--page:\s*(#[0-9a-f]{6})", dark)[0]
    dark_fill = dict(re.findall(r"\.chart \.(series-\d) \{ fill: (#[0-9a-f]{6}); \}", dark))
    assert sorted(drawn) == sorted(dark_fill) == [f"series-{n}" for n in range(4)]
    low = [f"{name} {colour} on white: {contrast(colour, '#ffffff'):.2f}" for name, colour in drawn.items()
           if contrast(colour, "#ffffff") < 3]
    low += [f"{name} {colour} on {page}: {contrast(colour, page):.2f}" for name, colour in dark_fill.items()
            if contrast(colour, page) < 3]
    assert low == []


@pytest.mark.parametrize("cli", [
    preflight.POSTAL_MISSING,
    "config.toml: [publication] postal_address is empty; newsletters must show a postal address in the "
    "footer. Set it before sending.",
    "config.toml: [publication] postal_address is empty, and newsletters sent through 'smtp' must show the "
    "sender's postal address in their footer (CAN-SPAM). Set it, e.g. postal_address = \"Your Name\", and run again.",
])
def test_the_desk_asks_for_the_postal_address_in_settings_where_the_cli_names_the_key(cli: str) -> None:
    """Each wording of the missing postal address (check, warning, refusal) reads, in the desk, as Settings."""
    said = preflight.desk_words(cli)
    assert said.startswith("Add your postal address in Settings")
    assert "config.toml" not in said and "postal_address" not in said and "[" not in said


def test_the_desk_names_settings_for_the_logo_and_dkim_and_leaves_other_messages_alone() -> None:
    """The logo warning, the DKIM records' reasons, a DKIM key missing: Settings; the rest unchanged."""
    logo = preflight.desk_words(
        "config.toml: [publication] logo 'https://x.org/logo.svg' is an SVG image, which Gmail and Outlook do not "
        "show in mail: the newsletter's masthead would have an empty space. Use a PNG."
    )
    dkim = [preflight.desk_words(m) for m in (
        preflight.DKIM_KEY_WHY, preflight.DKIM_PROVIDER_WHY,
        "config.toml: [delivery.dkim] selector is required when domain is set (a name for the key)",
    )]
    assert "Settings (Publication), 'https://x.org/logo.svg'" in logo
    assert all("Settings" in m and "[delivery" not in m for m in dkim)
    assert preflight.desk_words("The footer carries “1 Road”.") == "The footer carries “1 Road”."


def test_the_editors_checks_ask_for_the_postal_address_in_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Preview and check without a postal address: the checks say Settings, never config.toml or the key."""
    config = publication(tmp_path, monkeypatch, postal_address="")
    with live_server(create_app(config)) as base, httpx.Client(base_url=base, timeout=60) as http:
        sign_in(http)
        form = editor_form(http.get(f"/desk/articles/{SLUG}").text)
        page = http.post(f"/desk/articles/{SLUG}", data={**form, "action": "preview"}).text
    checks = page.split('id="preflight-h"', 1)[1].split("</section>", 1)[0]
    assert "<strong>Postal address</strong> (needs a look): Add your postal address in Settings" in checks
    assert "config.toml" not in checks and "postal_address" not in checks and "[delivery.dkim]" not in checks


def end_sessions(http: httpx.Client) -> None:
    """As if the session had run out: the browser's cookie no longer names one."""
    http.post("/desk/logout-all", data={"csrf": csrf_of(http.get("/desk/").text)})


def kept_fields(page: str) -> dict[str, str]:
    form = page.split('action="/desk/login/resume"', 1)[1].split("</form>", 1)[0]
    return {n: html.unescape(v) for n, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form)}


def mailed(config: Config) -> list[Path]:
    return [p for p in (config.root / "outbox").rglob("*") if p.is_file()] if (config.root / "outbox").exists() else []


def test_a_schedule_after_the_session_ended_keeps_the_time_and_schedules_nothing(config: Config, url: str) -> None:
    """Schedule with a dead session: the sign-in page keeps the time typed; signing in opens
    the send panel with it filled in, and nothing is scheduled until Schedule is pressed again."""
    at = f"{datetime.now(UTC).year + 1}-03-04T06:45"
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        csrf = csrf_of(http.get(f"/desk/articles/{SLUG}").text)
        end_sessions(http)
        ended = http.post(f"/desk/articles/{SLUG}/schedule", data={"csrf": csrf, "at": at, "timezone": "Europe/Paris"})
        assert ended.status_code == 401 and "nothing is scheduled" in ended.text
        kept = kept_fields(ended.text)
        assert (kept["at"], kept["timezone"], kept["then"], kept["article"]) == (at, "Europe/Paris", "schedule", SLUG)
        back = http.post("/desk/login/resume", data={**kept, "email": "editor@example.org", "password": PASSWORD})
        assert back.status_code == 303 and back.headers["location"].startswith(f"/desk/articles/{SLUG}?then=schedule")
        editor = http.get(back.headers["location"]).text
        home = http.get("/desk/").text
    assert f'name="at" type="datetime-local" required value="{at}"' in editor
    assert 'id="timezone" name="timezone" type="text" value="Europe/Paris"' in editor
    assert "Nothing is scheduled yet" in editor and "Scheduled</strong> for" not in editor
    assert "06:45" not in home


def test_signing_in_after_an_expired_send_does_not_send(config: Config, url: str) -> None:
    """Send now with a dead session, then sign in again: nothing is sent, no issue starts; the
    article opens on its send panel for the author to press Send now again."""
    engine = open_store(config.store_url)
    subscriber_store.add(engine, "reader@example.org", now=datetime.now(UTC))
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        csrf = csrf_of(http.get(f"/desk/articles/{SLUG}").text)
        end_sessions(http)
        ended = http.post(f"/desk/articles/{SLUG}/send", data={"csrf": csrf, "tag": "", "confirm": "1"})
        assert ended.status_code == 401 and "nothing was sent" in ended.text
        back = http.post(
            "/desk/login/resume", data={**kept_fields(ended.text), "email": "editor@example.org", "password": PASSWORD}
        )
        assert back.status_code == 303 and back.headers["location"].startswith(f"/desk/articles/{SLUG}?then=send")
        editor = http.get(back.headers["location"]).text
    assert "Nothing was sent: press Send now below" in editor
    assert mailed(config) == []
    with engine.connect() as db:
        assert db.exec_driver_sql("SELECT count(*) FROM issues").scalar() == 0
    engine.dispose()


def test_a_test_copy_after_the_session_ended_keeps_the_addresses_and_sends_nothing(config: Config, url: str) -> None:
    """Send a test copy with a dead session: signing in brings the typed addresses back, unsent."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        csrf = csrf_of(http.get(f"/desk/articles/{SLUG}").text)
        end_sessions(http)
        ended = http.post(f"/desk/articles/{SLUG}/test", data={"csrf": csrf, "to": "colleague@example.org"})
        assert ended.status_code == 401 and "Your session has ended. Sign in again at" not in ended.text
        back = http.post(
            "/desk/login/resume", data={**kept_fields(ended.text), "email": "editor@example.org", "password": PASSWORD}
        )
        editor = http.get(back.headers["location"]).text
    to = editor.split('id="to"', 1)[1].split(">", 1)[0]
    assert 'value="colleague@example.org"' in to
    assert "No test copy was sent" in editor and mailed(config) == []
