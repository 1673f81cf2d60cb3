"""Article revisions: kept on autosave and save, bounded, compared line by line, and the
desk's autosave, list, comparison and restore over HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from desk_support import add_users, csrf_of, sign_in
from web_support import live_server, make_publication

from publisher.config import Config
from publisher.errors import InvalidRequest
from publisher.services import revisions
from publisher.services.revisions import RevisionInfo
from publisher.store import open_store
from publisher.web import create_app

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
ARTICLE = """---
title: Sleep after a loss
date: 2026-01-05 08:00
tags: [sleep]
---

Grief changes sleep. Here is what helps.
"""
PATH = "content/2026-01-05-sleep-after-a-loss.md"


@pytest.fixture
def engine(tmp_path: Path):
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield engine
    engine.dispose()


def info(id: int, kind: str, at: datetime) -> RevisionInfo:
    return RevisionInfo(id=id, article="a", kind=kind, author="x", fingerprint=str(id), words=1, created_at=at)


# The service and the store


def test_an_autosave_is_kept_with_who_when_and_words(engine) -> None:
    """A revision keeps the whole text, its author, its time and the body's word count."""
    kept = revisions.record(engine, "sleep", kind="autosave", author="ed@example.org", text=ARTICLE, now=NOW)
    assert kept is not None
    (listed,) = revisions.list_revisions(engine, "sleep")
    assert (listed.author, listed.kind, listed.words, listed.created_at) == ("ed@example.org", "autosave", 7, NOW)
    assert revisions.get_revision(engine, listed.id).text == ARTICLE


def test_an_unchanged_autosave_is_not_stored_again(engine) -> None:
    """Autosaving the same text twice keeps one revision."""
    revisions.record(engine, "sleep", kind="autosave", author="e", text=ARTICLE, now=NOW)
    again = revisions.record(engine, "sleep", kind="autosave", author="e", text=ARTICLE, now=NOW + timedelta(seconds=5))
    assert again is None
    assert len(revisions.list_revisions(engine, "sleep")) == 1


def test_a_save_after_an_autosave_of_the_same_text_is_still_a_saved_version(engine) -> None:
    """Pressing Save marks the text as saved even when the last autosave already had it."""
    revisions.record(engine, "sleep", kind="autosave", author="e", text=ARTICLE, now=NOW)
    revisions.record(engine, "sleep", kind="saved", author="e", text=ARTICLE, now=NOW + timedelta(seconds=5))
    assert [r.kind for r in revisions.list_revisions(engine, "sleep")] == ["saved", "autosave"]


def test_autosaves_collapse_to_one_per_ten_minutes(engine) -> None:
    """An hour of typing, autosaved every 5 seconds, leaves one autosave per ten minutes."""
    for n in range(720):
        revisions.record(
            engine, "sleep", kind="autosave", author="e", text=f"{ARTICLE}{n}", now=NOW + timedelta(seconds=5 * n)
        )
    kept = revisions.list_revisions(engine, "sleep")
    assert 6 <= len(kept) <= 7
    assert kept[0].created_at == NOW + timedelta(seconds=5 * 719)


def test_old_autosaves_keep_one_a_day_and_saved_versions_stay() -> None:
    """Past a day, the newest autosave of each day stays; saved versions are not collapsed."""
    old = NOW - timedelta(days=3)
    found = [info(1, "autosave", old), info(2, "autosave", old + timedelta(hours=1)),
             info(3, "saved", old + timedelta(minutes=1)), info(4, "saved", old + timedelta(minutes=2))]
    assert revisions.to_prune(found, NOW) == [1]


def test_at_most_so_many_saved_versions_are_kept() -> None:
    """The oldest saved versions beyond the bound go."""
    found = [info(n, "saved", NOW - timedelta(hours=n)) for n in range(revisions.KEEP_SAVED + 2)]
    assert sorted(revisions.to_prune(found, NOW)) == [revisions.KEEP_SAVED, revisions.KEEP_SAVED + 1]


def test_a_draft_key_must_look_like_one() -> None:
    """A draft key the editor did not make is refused, naming the field."""
    with pytest.raises(InvalidRequest, match="draft_key"):
        revisions.article_key(None, "../../etc")


def test_a_new_articles_revisions_move_to_its_slug(engine) -> None:
    """The first save adopts the draft's autosaves."""
    key = revisions.new_draft_key()
    revisions.record(engine, revisions.article_key(None, key), kind="autosave", author="e", text=ARTICLE, now=NOW)
    assert [d.article for d in revisions.unsaved_drafts(engine)] == [f"new:{key}"]
    assert revisions.adopt(engine, key, "sleep-after-a-loss") == 1
    assert len(revisions.list_revisions(engine, "sleep-after-a-loss")) == 1
    assert revisions.unsaved_drafts(engine) == []


def test_words_leave_out_front_matter_and_link_addresses() -> None:
    """Words are the body's, and a link counts its text, not its address."""
    assert revisions.count_words("---\ntitle: A long title here\n---\n\nSee [the guide](https://x.org/a-b-c) now.") == 4
    assert revisions.reading_minutes(0) == 0 and revisions.reading_minutes(231) == 2


def test_side_by_side_aligns_changed_added_and_removed_lines() -> None:
    """Lines pair up where they changed; an added line has nothing on its left."""
    rows = revisions.side_by_side("a\nb\nc\n", "a\nB\nc\nd\n")
    assert [(r.change, r.left_number, r.right_number) for r in rows] == [
        ("same", 1, 1), ("changed", 2, 2), ("same", 3, 3), ("added", None, 4),
    ]


# The desk


@pytest.fixture
def config(tmp_path: Path) -> Config:
    config = make_publication(tmp_path)
    (tmp_path / "content").mkdir()
    (tmp_path / PATH).write_text(ARTICLE, encoding="utf-8")
    add_users(config)
    return config


@pytest.fixture
def url(config: Config) -> Iterator[str]:
    with live_server(create_app(config)) as base:
        yield base


def form_of(page: str) -> dict[str, str]:
    names = "title|slug|date|tags|summary|base|draft_key|image|image_alt"
    fields = dict(re.findall(rf'name="({names})"[^>]*value="([^"]*)"', page))
    fields["body"] = re.search(r'<textarea id="body" name="body"[^>]*>(.*?)</textarea>', page, re.S).group(1)
    fields["csrf"] = csrf_of(page)
    return fields


def test_autosave_keeps_a_revision_and_leaves_the_file_alone(config: Config, url: str) -> None:
    """An autosave answers 201 with the time; the article's file is not written."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        form = form_of(http.get("/desk/articles/sleep-after-a-loss").text)
        form["body"] = "Typed but not saved."
        answer = http.post("/desk/autosave", data={**form, "article": "sleep-after-a-loss"})
        assert answer.status_code == 201 and answer.json()["saved"] is True
        again = http.post("/desk/autosave", data={**form, "article": "sleep-after-a-loss"})
        assert again.json() == {"saved": False, "unchanged": True}
        listing = http.get("/desk/articles/sleep-after-a-loss/revisions")
    assert (config.root / PATH).read_text(encoding="utf-8") == ARTICLE
    assert "Autosave" in listing.text and "editor@example.org" in listing.text


def test_autosave_needs_the_csrf_token(config: Config, url: str) -> None:
    """A post without the session's token keeps nothing."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        form = form_of(http.get("/desk/articles/sleep-after-a-loss").text)
        answer = http.post("/desk/autosave", data={**form, "csrf": "forged", "article": "sleep-after-a-loss"})
        listing = http.get("/desk/articles/sleep-after-a-loss/revisions")
    assert answer.status_code == 403
    assert "No versions yet" in listing.text


def test_a_viewer_cannot_autosave(config: Config, url: str) -> None:
    """Autosave is writing: a viewer gets 403."""
    with httpx.Client(base_url=url) as http:
        sign_in(http, "viewer@example.org")
        form = form_of(http.get("/desk/articles/sleep-after-a-loss").text)
        answer = http.post("/desk/autosave", data={**form, "article": "sleep-after-a-loss"})
    assert answer.status_code == 403


def test_autosave_of_an_unknown_article_is_told(config: Config, url: str) -> None:
    """An article that is gone answers 404 with the reason as JSON."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        form = form_of(http.get("/desk/articles/sleep-after-a-loss").text)
        answer = http.post("/desk/autosave", data={**form, "article": "no-such-article"})
    assert answer.status_code == 404 and "no-such-article" in answer.json()["error"]


def test_saving_makes_a_saved_version(config: Config, url: str) -> None:
    """The Save button's text becomes a revision of kind saved."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        form = form_of(http.get("/desk/articles/sleep-after-a-loss").text)
        form["body"] = "Saved for real."
        assert http.post("/desk/articles/sleep-after-a-loss", data={**form, "action": "save"}).status_code == 303
        listing = http.get("/desk/articles/sleep-after-a-loss/revisions")
    assert re.search(r"<td>Saved</td>", listing.text)


def test_a_new_article_autosaves_under_its_draft_key_until_saved(config: Config, url: str) -> None:
    """A new article's autosaves are listed under its draft key, then move to its slug on save."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        form = form_of(http.get("/desk/articles/new").text)
        key = form["draft_key"]
        form.update(title="Rest for carers", date="2026-02-01 09:00", body="Carers need rest too.")
        assert http.post("/desk/autosave", data={**form, "article": ""}).status_code == 201
        assert "Carers need rest too" not in http.get(f"/desk/drafts/{key}/revisions").text  # the list shows no text
        assert "Autosave" in http.get(f"/desk/drafts/{key}/revisions").text
        assert f"/desk/articles/new?draft={key}" in http.get("/desk/articles/new").text  # offered to continue
        assert http.post("/desk/articles/new", data={**form, "action": "save"}).status_code == 303
        listing = http.get("/desk/articles/rest-for-carers/revisions").text
    assert "Autosave" in listing and "<td>Saved</td>" in listing


def test_restore_puts_the_text_in_the_editor_unsaved(config: Config, url: str) -> None:
    """Restore fills the editor with the old text; the file is unchanged until Save."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        form = form_of(http.get("/desk/articles/sleep-after-a-loss").text)
        form["body"] = "An older idea worth keeping."
        revision_id = http.post("/desk/autosave", data={**form, "article": "sleep-after-a-loss"}).json()["id"]
        page = http.get(f"/desk/articles/sleep-after-a-loss?revision={revision_id}")
        assert "An older idea worth keeping." in page.text and "not saved yet" in page.text
        assert (config.root / PATH).read_text(encoding="utf-8") == ARTICLE
        restored = form_of(page.text)
        assert http.post("/desk/articles/sleep-after-a-loss", data={**restored, "action": "save"}).status_code == 303
    assert "An older idea worth keeping." in (config.root / PATH).read_text(encoding="utf-8")


def test_restore_of_another_articles_revision_is_refused(config: Config, url: str) -> None:
    """A revision id from another article is not put into this one."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        form = form_of(http.get("/desk/articles/new").text)
        form.update(title="Other", body="Other text.")
        revision_id = http.post("/desk/autosave", data={**form, "article": ""}).json()["id"]
        page = http.get(f"/desk/articles/sleep-after-a-loss?revision={revision_id}")
    assert page.status_code == 404 and "Other text." not in page.text


def test_compare_shows_both_sides_of_a_change(config: Config, url: str) -> None:
    """The comparison is a table with the revision's line and the saved file's line side by side."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        form = form_of(http.get("/desk/articles/sleep-after-a-loss").text)
        # First the file as the desk writes it, so that only the body differs.
        http.post("/desk/articles/sleep-after-a-loss", data={**form, "action": "save"})
        form = form_of(http.get("/desk/articles/sleep-after-a-loss").text)
        form["body"] = "Grief changes sleep. Here is what hurts."
        revision_id = http.post("/desk/autosave", data={**form, "article": "sleep-after-a-loss"}).json()["id"]
        page = http.get(f"/desk/revisions/{revision_id}").text
    assert re.search(r"<del>.*Here is what hurts\.</del>", page)
    assert re.search(r"<ins>.*Here is what helps\.</ins>", page)
    assert "1 line differs" in page


def test_bad_autosaves_are_told_as_json(config: Config, url: str) -> None:
    """A draft key the editor did not make, or a book-length text, answers 400 naming it."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        form = form_of(http.get("/desk/articles/new").text)
        forged = http.post("/desk/autosave", data={**form, "article": "", "draft_key": "../x"})
        huge = http.post("/desk/autosave", data={**form, "article": "", "body": "word " * 250_000})
    assert forged.status_code == 400 and "draft_key" in forged.json()["error"]
    assert huge.status_code == 400 and "characters" in huge.json()["error"]


def test_unknown_revisions_are_told(config: Config, url: str) -> None:
    """A revision that is not there, or not a number, is a short page saying so."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        missing = http.get("/desk/revisions/999")
        not_a_number = http.get("/desk/articles/sleep-after-a-loss?revision=abc")
        bad_key = http.get("/desk/drafts/no!/revisions")
    assert missing.status_code == 404 and "no revision 999" in missing.text
    assert not_a_number.status_code == 404 and "revision abc" in not_a_number.text
    assert bad_key.status_code == 404 and "draft_key" in bad_key.text
