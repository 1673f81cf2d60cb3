"""The desk's pages over HTTP: the editor's atomic save and conflicts, previews bound to
their session, roles on every action, subscriber import with a preview, and the Home chart."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from desk_support import add_users, csrf_of, quick_hashes, sign_in
from web_support import live_server, make_publication

from publisher.config import Config
from publisher.store import open_store
from publisher.store import subscribers as subscriber_store
from publisher.web import create_app

ARTICLE = """---
title: Sleep after a loss
date: 2026-01-05 08:00
tags: [sleep]
---

Grief changes sleep. Here is what helps.
"""


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    quick_hashes(monkeypatch)
    config = make_publication(tmp_path)
    (tmp_path / "content").mkdir()
    (tmp_path / "content" / "2026-01-05-sleep-after-a-loss.md").write_text(ARTICLE, encoding="utf-8")
    add_users(config)
    return config


@pytest.fixture
def url(config: Config) -> Iterator[str]:
    with live_server(create_app(config)) as base:
        yield base


def editor_form(page: str) -> dict[str, str]:
    fields = dict(re.findall(r'name="(title|slug|date|tags|summary|base)"[^>]*value="([^"]*)"', page))
    fields["body"] = re.search(r'<textarea id="body" name="body"[^>]*>(.*?)</textarea>', page, re.S).group(1)
    fields["csrf"] = csrf_of(page)
    return fields


def test_save_writes_the_file_and_keeps_other_keys(config: Config, url: str) -> None:
    """Saving from the editor rewrites the article's file with the new text, atomically."""
    path = config.root / "content" / "2026-01-05-sleep-after-a-loss.md"
    path.write_text(ARTICLE.replace("tags: [sleep]", "tags: [sleep]\nimage_alt: A dark bedroom"), encoding="utf-8")
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        form = editor_form(http.get("/desk/articles/sleep-after-a-loss").text)
        form["body"] = "Grief changes sleep. Here is what helps, in three steps."
        answer = http.post("/desk/articles/sleep-after-a-loss", data={**form, "action": "save"})
    assert answer.status_code == 303
    text = path.read_text(encoding="utf-8")
    assert "in three steps" in text and "image_alt: A dark bedroom" in text
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_a_file_changed_on_disk_is_a_conflict_never_overwritten(config: Config, url: str) -> None:
    """Someone edits the file after the editor opened it: both versions are shown, nothing written."""
    path = config.root / "content" / "2026-01-05-sleep-after-a-loss.md"
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        form = editor_form(http.get("/desk/articles/sleep-after-a-loss").text)
        path.write_text(ARTICLE.replace("Here is what helps.", "Changed in another editor."), encoding="utf-8")
        form["body"] = "My version from the desk."
        answer = http.post("/desk/articles/sleep-after-a-loss", data={**form, "action": "save"})
    assert answer.status_code == 409
    assert "Changed in another editor." in answer.text and "My version from the desk." in answer.text
    assert "Changed in another editor." in path.read_text(encoding="utf-8")


def test_bad_front_matter_is_told_and_nothing_is_written(config: Config, url: str) -> None:
    """A date that is not a date names the problem; the file stays as it was."""
    path = config.root / "content" / "2026-01-05-sleep-after-a-loss.md"
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        form = editor_form(http.get("/desk/articles/sleep-after-a-loss").text)
        form["date"] = "next tuesday"
        answer = http.post("/desk/articles/sleep-after-a-loss", data={**form, "action": "save"})
    assert answer.status_code == 400
    assert "date" in answer.text
    assert path.read_text(encoding="utf-8") == ARTICLE


def test_new_article_and_its_preview_frames(config: Config, url: str) -> None:
    """A new article is written into content/; its previews load only in the session that made them."""
    with httpx.Client(base_url=url) as http, httpx.Client(base_url=url) as other:
        sign_in(http)
        csrf = csrf_of(http.get("/desk/articles/new").text)
        form = {"csrf": csrf, "title": "Rest for carers", "date": "2026-02-01 09:00", "tags": "carers",
                "summary": "", "body": "Carers need rest too.", "base": ""}
        preview = http.post("/desk/articles/preview", data=form)
        assert preview.status_code == 200
        frame = http.get(preview.json()["email"])
        assert frame.status_code == 200 and "Carers need rest too." in frame.text
        assert "sandbox" in frame.headers["content-security-policy"]
        assert "frame-ancestors 'self'" in frame.headers["content-security-policy"]
        sign_in(other)
        assert other.get(preview.json()["email"]).status_code == 404
        saved = http.post("/desk/articles/new", data={**form, "action": "save"})
    assert saved.status_code == 303
    assert (config.root / "content" / "2026-02-01-rest-for-carers.md").is_file()


def test_a_viewer_reads_but_cannot_write_or_send(config: Config, url: str) -> None:
    """Every write and send answers 403 to a viewer, with the session's own CSRF token."""
    with httpx.Client(base_url=url) as http:
        sign_in(http, "viewer@example.org")
        page = http.get("/desk/articles/sleep-after-a-loss")
        assert page.status_code == 200
        assert 'href="/desk/settings"' not in page.text
        csrf = csrf_of(page.text)
        for path in ("/desk/articles/sleep-after-a-loss/send", "/desk/articles/sleep-after-a-loss/test",
                     "/desk/articles/sleep-after-a-loss/schedule", "/desk/articles/sleep-after-a-loss",
                     "/desk/subscribers", "/desk/settings/users"):
            assert http.post(path, data={"csrf": csrf, "confirm": "0"}).status_code == 403, path
        assert http.get("/desk/settings").status_code == 403


def test_send_now_asks_with_the_count_and_sends_only_when_it_matches(config: Config, url: str) -> None:
    """The first press asks, naming the count and the provider; nothing leaves before; a
    confirmation with a stale count asks again."""
    engine = open_store(config.store_url)
    from datetime import UTC, datetime

    for n in range(3):
        subscriber_store.add(engine, f"reader{n}@example.org", now=datetime.now(UTC))
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        csrf = csrf_of(http.get("/desk/").text)
        ask = http.post("/desk/articles/sleep-after-a-loss/send", data={"csrf": csrf})
        assert "to 3 readers through the Maildir outbox" in ask.text
        assert "It goes to <strong>3 readers</strong>" in ask.text
        assert not (config.root / "outbox" / "new").is_dir() or not any((config.root / "outbox" / "new").iterdir())
        stale = http.post("/desk/articles/sleep-after-a-loss/send", data={"csrf": csrf, "confirm": "2"})
        assert "changed since you last looked" in stale.text
        sent = http.post("/desk/articles/sleep-after-a-loss/send", data={"csrf": csrf, "confirm": "3"})
    assert sent.status_code == 303 and sent.headers["location"].startswith("/desk/issues/")
    engine.dispose()


def test_import_preview_writes_nothing_until_confirmed(config: Config, url: str) -> None:
    """Upload: the preview counts and rejects rows, the list is unchanged; confirming imports."""
    csv = b"email,name\nnew.one@example.org,New One\nbroken,Broken\n"
    engine = open_store(config.store_url)
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        csrf = csrf_of(http.get("/desk/subscribers/import").text)
        preview = http.post(
            "/desk/subscribers/import", data={"csrf": csrf}, files={"file": ("list.csv", csv, "text/csv")}
        )
        assert preview.status_code == 200
        assert "Line 3" in preview.text and "Import 1 row" in preview.text
        assert subscriber_store.counts(engine)["active"] == 0
        key = re.search(r'name="key" value="([^"]+)"', preview.text).group(1)
        done = http.post("/desk/subscribers/import/confirm", data={"csrf": csrf, "key": key})
        assert "2 rows read: 1 added, 0 updated, 0 unchanged, 1 refused." in done.text
        again = http.post("/desk/subscribers/import/confirm", data={"csrf": csrf, "key": key})
        assert again.status_code == 400
    assert subscriber_store.counts(engine)["active"] == 1
    engine.dispose()


def test_a_wix_export_adds_only_its_subscribed_contacts(config: Config, url: str) -> None:
    """The preview names Wix, refuses the contact who never subscribed with the reason,
    and the import adds the subscribed one as active and keeps the unsubscribed one off."""
    csv = (
        b"First Name,Last Name,Email 1,Labels,Email subscriber status,Created At (UTC+0)\n"
        b"Cara,Ng,cara@example.com,,Subscribed,2024-05-01\n"
        b"Dan,,dan@example.com,,Unsubscribed,2024-05-02\n"
        b"Eve,,eve@example.com,,Never subscribed,2024-05-03\n"
    )
    engine = open_store(config.store_url)
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        csrf = csrf_of(http.get("/desk/subscribers/import").text)
        preview = http.post(
            "/desk/subscribers/import", data={"csrf": csrf}, files={"file": ("contacts.csv", csv, "text/csv")}
        )
        assert preview.status_code == 200
        assert "Looks like a <strong>Wix</strong> export" in preview.text
        assert "Line 4: &#39;eve@example.com&#39;: never subscribed on Wix" in preview.text
        key = re.search(r'name="key" value="([^"]+)"', preview.text).group(1)
        http.post("/desk/subscribers/import/confirm", data={"csrf": csrf, "key": key})
    counts = subscriber_store.counts(engine)
    assert (counts["active"], counts["unsubscribed"]) == (1, 1)
    assert subscriber_store.find(engine, "eve@example.com") is None
    engine.dispose()


def test_a_file_with_a_permission_column_it_cannot_read_is_refused_whole(config: Config, url: str) -> None:
    """A shop's customer list, whose "Accepts Email Marketing" says no for some, is not
    imported with everyone in it active: the page names the column and what to do."""
    csv = b"Email,First Name,Accepts Email Marketing\nyes@example.com,Y,yes\nno@example.com,N,no\n"
    engine = open_store(config.store_url)
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        csrf = csrf_of(http.get("/desk/subscribers/import").text)
        answer = http.post(
            "/desk/subscribers/import", data={"csrf": csrf}, files={"file": ("customers.csv", csv, "text/csv")}
        )
    assert answer.status_code == 400
    assert "the column &#39;Accepts Email Marketing&#39; seems to say who may be mailed" in answer.text
    assert subscriber_store.counts(engine)["active"] == 0
    engine.dispose()


def test_an_upload_that_is_not_utf8_is_refused_with_the_fix(url: str) -> None:
    """A Latin-1 file is refused, naming the file and how to save it."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        csrf = csrf_of(http.get("/desk/subscribers/import").text)
        answer = http.post(
            "/desk/subscribers/import", data={"csrf": csrf},
            files={"file": ("latin.csv", "email,name\nl\xe9a@example.org,L\xe9a\n".encode("latin-1"), "text/csv")},
        )
    assert answer.status_code == 400
    assert "latin.csv" in answer.text and "CSV UTF-8" in answer.text


def test_home_and_settings_lead_to_the_going_live_guide_read_in_the_desk(config: Config, url: str) -> None:
    """While nothing has been sent, Home and Settings link to the guide; the page is the guide under one title."""
    with httpx.Client(base_url=url) as http:
        sign_in(http, "owner@example.org")
        home, settings = http.get("/desk/").text, http.get("/desk/settings").text
        guide = http.get("/desk/going-live")
    for page in (home, settings):
        assert re.search(r'<p id="going-live">[^<]*<a href="/desk/going-live">how to go live, step by step</a>', page)
    # Settings says it at the top too, with what is missing: its own list comes last on a long page.
    top = re.search(r'<h1>Settings</h1>\s*<p class="warn" id="live-first">Not live yet: \d+ things? to do.*?</p>',
                    settings, re.S)
    assert top and '<a href="#live-h">listed below</a>' in top.group(0) and 'href="/desk/going-live"' in top.group(0)
    assert guide.status_code == 200
    assert guide.text.count("<h1") == 1 and "<h3>1. Install</h3>" in guide.text
    assert "sudo -u publisher publisher init /srv/publisher" in guide.text  # the steps themselves, from docs/


def test_an_install_without_the_guide_says_where_it_is(
    config: Config, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wheel built without docs/ still answers the page, naming the guide's file instead of failing."""
    from publisher.web.desk import guide

    monkeypatch.setattr(guide, "_PLACES", (tmp_path / "nowhere" / guide.GUIDE_NAME,))
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        page = http.get("/desk/going-live")
    assert page.status_code == 200
    assert "does not carry the guide" in page.text and "<code>docs/going-live.md</code>" in page.text


def test_the_going_live_guide_sends_an_editor_to_no_page_they_may_not_open(config: Config, url: str) -> None:
    """Settings is an owner's page: an editor reading the guide is offered Home, not a 403."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        page = http.get("/desk/going-live").text
    assert 'href="/desk/settings' not in page and "(an owner's page)" in page


def test_home_has_a_chart_and_its_table(config: Config, url: str) -> None:
    """The 90-day chart is an SVG hidden from screen readers, with the numbers in a table."""
    engine = open_store(config.store_url)
    from datetime import UTC, datetime

    subscriber_store.add(engine, "reader@example.org", now=datetime.now(UTC))
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        home = http.get("/desk/").text
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in home and 'aria-hidden="true"' in home
    assert re.search(r"<td>\d{4}-\d\d-\d\d</td><td class=\"num\">1</td>", home)
    engine.dispose()


def test_failed_copies_can_be_sent_again(config: Config, url: str) -> None:
    """The issue page lists failures with their reason; "send again" requeues exactly those."""
    from datetime import UTC, datetime

    from sqlalchemy import update

    from publisher.store import ledger
    from publisher.store.schema import deliveries

    engine = open_store(config.store_url)
    now = datetime.now(UTC)
    for n in range(2):
        subscriber_store.add(engine, f"reader{n}@example.org", now=now)
    issue_id = ledger.create_issue(engine, key="k", kind="article", slug="sleep-after-a-loss", subject="Sleep",
                                   html="<p>x</p>", text="x", tag=None, status="sending", now=now)
    ledger.enqueue(engine, issue_id, now=now)
    with engine.begin() as conn:
        conn.execute(update(deliveries).where(deliveries.c.email == "reader0@example.org")
                     .values(state="failed", attempts=5, detail="550 mailbox unavailable"))
        conn.execute(update(deliveries).where(deliveries.c.email == "reader1@example.org").values(state="sent"))
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        page = http.get(f"/desk/issues/{issue_id}")
        assert "550 mailbox unavailable" in page.text and "Send the 1 failed copy again" in page.text
        again = http.post(f"/desk/issues/{issue_id}/retry", data={"csrf": csrf_of(page.text)})
    assert again.status_code == 303
    (line,) = ledger.status(engine, issue_id)
    assert (line.queued, line.sent, line.failed, line.status) == (1, 1, 0, "sending")
    engine.dispose()


def test_an_issue_says_its_pictures_come_from_the_site(config: Config, url: str) -> None:
    """A picture broken in "The email as sent" is said to be the site's not being online, not the send's."""
    from datetime import UTC, datetime

    from publisher.store import ledger

    engine = open_store(config.store_url)
    issue_id = ledger.create_issue(engine, key="k", kind="article", slug="sleep-after-a-loss", subject="Sleep",
                                   html="<p>x</p>", text="x", tag=None, status="done", now=datetime.now(UTC))
    engine.dispose()
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        page = http.get(f"/desk/issues/{issue_id}").text
    assert re.search(r'id="email-pictures">Its pictures load from your public site[^<]*not online', page)


def new_token(page: str) -> str:
    found = re.search(r'id="new-token"[^>]*value="([^"]+)"', page)
    assert found, "no new key on the page"
    return found.group(1)


def test_an_owner_creates_a_key_sees_it_once_and_revokes_it(config: Config, url: str) -> None:
    """The token works against the API, is shown only in the answer that made it, and stops on revoke."""
    with httpx.Client(base_url=url) as http:
        sign_in(http, "owner@example.org")
        assert 'href="/desk/settings/keys"' in http.get("/desk/settings").text
        page = http.get("/desk/settings/keys")
        assert page.status_code == 200 and "No API keys yet" in page.text
        made = http.post("/desk/settings/keys", data={
            "csrf": csrf_of(page.text), "name": "crm-sync", "scope-subscribers:read": "on",
        })
        assert made.status_code == 201
        token = new_token(made.text)
        assert "shown this once" in made.text and "Authorization: Bearer" in made.text
        listed = http.get("/desk/settings/keys").text
        prefix, secret = token[:21], token[21:]
        assert token not in listed and secret not in listed
        assert f"<code>{prefix}</code>" in listed and "subscribers:read" in listed and "<td>never</td>" in listed
        api = httpx.get(f"{url}/api/v1/subscribers", headers={"authorization": f"Bearer {token}"})
        assert api.status_code == 200
        assert "<td>never</td>" not in http.get("/desk/settings/keys").text
        revoked = http.post("/desk/settings/keys/revoke", data={"csrf": csrf_of(listed), "name": "crm-sync"})
        assert revoked.status_code == 303
        assert "Key revoked" in http.get(revoked.headers["location"]).text
    assert httpx.get(f"{url}/api/v1/subscribers", headers={"authorization": f"Bearer {token}"}).status_code == 401


def test_bad_key_requests_are_told_and_change_nothing(config: Config, url: str) -> None:
    """A bad name, no scope, a name in use, an unknown or revoked key, a missing CSRF token."""
    from publisher.services import access

    engine = open_store(config.store_url)
    with httpx.Client(base_url=url) as http:
        sign_in(http, "owner@example.org")
        csrf = csrf_of(http.get("/desk/settings/keys").text)
        bad_name = http.post("/desk/settings/keys", data={"csrf": csrf, "name": "two words", "scope-admin": "on"})
        assert bad_name.status_code == 400 and "key name &#39;two words&#39; must be" in bad_name.text.lower()
        assert 'value="two words"' in bad_name.text and "new-token" not in bad_name.text
        no_scope = http.post("/desk/settings/keys", data={"csrf": csrf, "name": "reporting"})
        assert no_scope.status_code == 400 and "Scope must be one or more of" in no_scope.text
        forged = http.post("/desk/settings/keys", data={"name": "forged", "scope-admin": "on"})
        assert forged.status_code == 403
        made = http.post("/desk/settings/keys", data={"csrf": csrf, "name": "ok", "scope-admin": "on"})
        assert made.status_code == 201
        taken = http.post("/desk/settings/keys", data={"csrf": csrf, "name": "ok", "scope-stats:read": "on"})
        assert taken.status_code == 409 and "exists already" in taken.text and "new-token" not in taken.text
        unknown = http.post("/desk/settings/keys/revoke", data={"csrf": csrf, "name": "nope"})
        assert unknown.status_code == 404 and "No API key called" in unknown.text
        assert http.post("/desk/settings/keys/revoke", data={"csrf": csrf, "name": "ok"}).status_code == 303
        twice = http.post("/desk/settings/keys/revoke", data={"csrf": csrf, "name": "ok"})
        assert twice.status_code == 409 and "revoked already" in twice.text
    assert [k.name for k in access.list_keys(engine)] == ["ok"]
    engine.dispose()


@pytest.mark.parametrize("who", ["editor@example.org", "viewer@example.org"])
def test_only_owners_reach_api_keys(config: Config, url: str, who: str) -> None:
    """Editors and viewers neither see the keys nor make or revoke one, even with their CSRF token."""
    from datetime import UTC, datetime

    from publisher.services import access

    engine = open_store(config.store_url)
    access.create_key(engine, "existing", ["stats:read"], now=datetime.now(UTC))
    with httpx.Client(base_url=url) as http:
        sign_in(http, who)
        home = http.get("/desk/")
        assert "/desk/settings" not in home.text
        csrf = csrf_of(home.text)
        assert http.get("/desk/settings/keys").status_code == 403
        made = http.post("/desk/settings/keys", data={"csrf": csrf, "name": "mine", "scope-admin": "on"})
        assert made.status_code == 403 and "pub_" not in made.text
        revoke = http.post("/desk/settings/keys/revoke", data={"csrf": csrf, "name": "existing"})
        assert revoke.status_code == 403
    assert [(k.name, k.revoked_at) for k in access.list_keys(engine)] == [("existing", None)]
    engine.dispose()


def test_links_and_dns_are_checked_only_when_asked(config: Config, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """"Preview and check" asks DNS nothing; "Check links and DNS too" looks the records up."""
    from test_preflight import Zone, dns_server

    from publisher.mail import preflight

    monkeypatch.setattr(preflight, "_spam_score", lambda message: None)
    zone = Zone({"example.org": [["v=spf1 mx ~all"]], "_dmarc.example.org": [["v=DMARC1; p=none"]]})
    with dns_server(zone) as resolver, httpx.Client(base_url=url) as http:
        asked: list[list[str]] = []

        def look_up(names: list[str], _resolver: object = None) -> object:
            asked.append(list(names))
            return real(names, resolver)

        real = preflight.look_up
        monkeypatch.setattr(preflight, "look_up", look_up)
        sign_in(http)
        form = editor_form(http.get("/desk/articles/sleep-after-a-loss").text)
        plain = http.post("/desk/articles/sleep-after-a-loss", data={**form, "action": "preview"})
        assert plain.status_code == 200 and "Check links and DNS too" in plain.text
        assert "DNS: SPF" not in plain.text and asked == []
        deep = http.post("/desk/articles/sleep-after-a-loss", data={**form, "action": "check-all"})
    assert deep.status_code == 200
    assert re.search(r"DNS: SPF \(example.org\)</strong> \(passed\)", deep.text), deep.text
    assert re.search(r"DNS: DMARC \(_dmarc.example.org\)</strong> \(passed\)", deep.text)
    assert re.search(r"Links to other sites</strong> \(passed\): There are none", deep.text)
    assert asked == [["example.org", "_dmarc.example.org"]]


# The editor: lead image, line breaks, previews of drafts, test copies of the text on screen

SIGNED = "Warm regards,\n\nDr. Jane Doe\nLCSW\nPractice name"


def _mail_texts(config: Config) -> list[str]:
    import email
    import email.policy

    folder = config.root / "outbox" / "new"
    found = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        part = message.get_body(preferencelist=("plain",))
        found.append(part.get_content().replace("\r\n", "\n"))  # type: ignore[union-attr]
    return found


def test_the_lead_image_and_its_description_are_saved(config: Config, url: str) -> None:
    """The form's image and image_alt become front matter keys."""
    path = config.root / "content" / "2026-01-05-sleep-after-a-loss.md"
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        form = editor_form(http.get("/desk/articles/sleep-after-a-loss").text)
        answer = http.post("/desk/articles/sleep-after-a-loss", data={
            **form, "image": "/media/harbor.jpg", "image_alt": "The harbour at dawn", "action": "save",
        })
        assert answer.status_code == 303
        page = http.get("/desk/articles/sleep-after-a-loss").text
    text = path.read_text(encoding="utf-8")
    assert "image: /media/harbor.jpg" in text and "image_alt: The harbour at dawn" in text
    assert 'value="/media/harbor.jpg"' in page and 'href="/desk/media"' in page


def test_an_empty_lead_image_field_removes_the_key(config: Config, url: str) -> None:
    """Clearing the image field takes the image out of the front matter."""
    path = config.root / "content" / "2026-01-05-sleep-after-a-loss.md"
    path.write_text(ARTICLE.replace("tags: [sleep]", "tags: [sleep]\nimage: /media/old.jpg"), encoding="utf-8")
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        form = editor_form(http.get("/desk/articles/sleep-after-a-loss").text)
        assert http.post("/desk/articles/sleep-after-a-loss", data={
            **form, "image": "", "image_alt": "", "action": "save",
        }).status_code == 303
    assert "image" not in path.read_text(encoding="utf-8")


def test_the_editor_keeps_the_policy_and_posts_a_plain_textarea(config: Config, url: str) -> None:
    """The rich editor's files come from the desk; no inline script or style; the textarea
    still posts `body` without them; the word count is shown."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        page = http.get("/desk/articles/sleep-after-a-loss")
        script = http.get("/desk/static/vendor/easymde/easymde.min.js")
        style = http.get("/desk/static/vendor/easymde/easymde.min.css")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "style-src 'self';" in policy and "unsafe" not in policy
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text), "no inline script"
    assert not re.search(r"\sstyle=", page.text), "no inline style"
    assert '<script src="/desk/static/vendor/easymde/easymde.min.js" defer></script>' in page.text
    assert '<textarea id="body" name="body"' in page.text
    assert "7 words · about 1 min to read" in page.text
    assert script.status_code == 200 and script.text.startswith("/**\n * easymde v2.21.0")
    assert style.status_code == 200 and len(style.content) == 12923


def test_single_line_breaks_stay_in_the_previews(config: Config, url: str) -> None:
    """A signature block keeps its lines in the web page and the email previews."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        form = editor_form(http.get("/desk/articles/sleep-after-a-loss").text)
        shown = http.post("/desk/articles/preview", data={**form, "body": SIGNED}).json()
        email_page, web_page = http.get(shown["email"]).text, http.get(shown["web"]).text
    for page in (email_page, web_page):
        assert re.search(r"Dr\. Jane Doe<br\s*/?>\s*LCSW<br\s*/?>\s*Practice name", page), page


def test_a_drafts_preview_shows_its_pictures_from_the_desk(config: Config, url: str) -> None:
    """Pictures under media/ are served for the preview by its key, and only those."""
    from io import BytesIO

    from PIL import Image

    picture = BytesIO()
    Image.new("RGB", (40, 30), (31, 95, 153)).save(picture, format="PNG")
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        form = editor_form(http.get("/desk/articles/sleep-after-a-loss").text)
        uploaded = http.post("/desk/media", data={"csrf": form["csrf"]},
                             files={"file": ("dock.png", picture.getvalue(), "image/png")})
        assert uploaded.status_code == 201, uploaded.text
        name = uploaded.json()["name"]
        shown = http.post("/desk/articles/preview", data={**form, "body": uploaded.json()["markdown"]}).json()
        frame = http.get(shown["email"]).text
    key = shown["email"].split("/")[3]
    assert f'src="/desk/preview/{key}/media/{name}"' in frame
    with httpx.Client(base_url=url) as anyone:  # a sandboxed frame sends no cookie
        served = anyone.get(f"/desk/preview/{key}/media/{name}")
        assert served.status_code == 200 and served.headers["content-type"].startswith("image/")
        assert anyone.get(f"/desk/preview/{key}/media/other-{name}").status_code == 404
        assert anyone.get(f"/desk/preview/not-a-key/media/{name}").status_code == 404


def test_the_editor_says_how_to_caption_a_picture_and_both_previews_show_it(config: Config, url: str) -> None:
    """The text's help shows a caption's form; written so, it is under the picture in the email and web page."""
    from io import BytesIO

    from PIL import Image

    picture = BytesIO()
    Image.new("RGB", (40, 30), (31, 95, 153)).save(picture, format="PNG")
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        page = http.get("/desk/articles/sleep-after-a-loss").text
        help_text = re.search(r'<span id="caption-help">(.*?)</span>', page, re.S)
        assert help_text and '"Caption under it"' in help_text.group(1).replace("&#34;", '"')
        form = editor_form(page)
        uploaded = http.post("/desk/media", data={"csrf": form["csrf"]},
                             files={"file": ("dock.png", picture.getvalue(), "image/png")}).json()
        body = uploaded["markdown"].replace("[]", "[A dock at dusk]").replace(")", ' "The dock by our office")')
        shown = http.post("/desk/articles/preview", data={**form, "body": body}).json()
        frames = [http.get(shown["email"]).text, http.get(shown["web"]).text]
    for frame in frames:
        assert re.search(r'<figure[^>]*><img [^>]*alt="A dock at dusk"[^>]*><figcaption[^>]*>The dock by our office'
                         r"</figcaption></figure>", frame), frame


def test_a_test_copy_is_the_text_on_screen(config: Config, url: str) -> None:
    """With the editor's fields, the test copy has the unsaved text; the file is unchanged."""
    path = config.root / "content" / "2026-01-05-sleep-after-a-loss.md"
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        form = editor_form(http.get("/desk/articles/sleep-after-a-loss").text)
        answer = http.post("/desk/articles/sleep-after-a-loss/test", data={
            **form, "body": f"Not saved yet.\n\n{SIGNED}", "to": "",
        })
    assert answer.status_code == 303, answer.text
    (text,) = _mail_texts(config)
    assert "Not saved yet." in text
    assert "Dr. Jane Doe\nLCSW\nPractice name" in text, "the text part keeps the signature's lines"
    assert path.read_text(encoding="utf-8") == ARTICLE


def test_a_test_copy_without_the_editors_fields_is_the_saved_file(config: Config, url: str) -> None:
    """Without script the test form posts only the addresses: the copy is the file."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        csrf = csrf_of(http.get("/desk/articles/sleep-after-a-loss").text)
        assert http.post("/desk/articles/sleep-after-a-loss/test", data={"csrf": csrf, "to": ""}).status_code == 303
    (text,) = _mail_texts(config)
    assert "Here is what helps." in text


def test_an_editor_shown_again_after_a_refused_save_starts_unsaved(config: Config, url: str) -> None:
    """The text of a refused save is marked unsaved, so the page warns before leaving it."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        form = editor_form(http.get("/desk/articles/sleep-after-a-loss").text)
        http.post("/desk/articles/sleep-after-a-loss", data={**form, "action": "save"})  # as the desk writes it
        page = http.get("/desk/articles/sleep-after-a-loss").text
        form = editor_form(page)
        refused = http.post("/desk/articles/sleep-after-a-loss", data={**form, "date": "soon", "action": "save"})
        previewed = http.post("/desk/articles/sleep-after-a-loss", data={**form, "action": "preview"})
    assert "data-dirty" not in page
    assert refused.status_code == 400 and 'data-dirty="unsaved"' in refused.text
    assert "data-dirty" not in previewed.text, "a preview of the saved text is not a change"


def test_editing_while_the_article_is_being_sent_says_what_a_save_changes(config: Config, url: str) -> None:
    """Copies queued and leaving: the editor says so, and that a save changes the site only."""
    from datetime import UTC, datetime

    from publisher.services import issues as issue_service

    engine = open_store(config.store_url)
    for n in range(3):
        subscriber_store.add(engine, f"reader{n}@example.org", now=datetime.now(UTC))
    issue_service.send_now(config, engine, "sleep-after-a-loss", now=datetime.now(UTC))
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        page = http.get("/desk/articles/sleep-after-a-loss").text
    assert "Sending now" in page and "3 to go" in page
    assert "changes the site, not the copies" in page
    engine.dispose()


def test_the_article_list_shows_each_schedule_with_reschedule_and_cancel(config: Config, url: str) -> None:
    """A scheduled article is listed with its time in the publication's zone, how far off
    it is, Reschedule and Cancel; Cancel there takes it back and returns to the list."""
    from datetime import UTC, datetime, timedelta

    from publisher.services import scheduling

    engine = open_store(config.store_url)
    at = (datetime.now(UTC) + timedelta(days=2)).astimezone(config.tz).replace(second=0, microsecond=0)
    done = scheduling.schedule_send(
        config, engine, "sleep-after-a-loss", at=f"{at:%Y-%m-%d %H:%M}", now=datetime.now(UTC)
    )
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        listing = http.get("/desk/articles").text
        assert f"{at:%a %d %b %Y, %H:%M}" in listing and "(in 1 day" in listing
        assert "/desk/articles/sleep-after-a-loss#schedule" in listing
        cancel = http.post(
            f"/desk/schedules/{done.schedule.id}/cancel", data={"csrf": csrf_of(listing), "back": "/desk/articles"}
        )
    assert cancel.status_code == 303 and cancel.headers["location"] == "/desk/articles?m=cancelled"
    assert scheduling.list_schedules(engine) == []
    engine.dispose()


def test_a_refused_schedule_shows_the_article_with_its_address(config: Config, url: str) -> None:
    """A schedule refused (a time in the past) shows the editor with the article's address
    filled in, as the editor first showed it, not an empty Address field."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        page = http.get("/desk/articles/sleep-after-a-loss").text
        refused = http.post(
            "/desk/articles/sleep-after-a-loss/schedule", data={"csrf": csrf_of(page), "at": "2001-01-01T09:00"}
        )
    assert refused.status_code == 400
    assert "in the past" in refused.text
    assert 'id="slug" name="slug" type="text" value="sleep-after-a-loss"' in refused.text


def test_a_schedule_takes_a_city_for_its_time_zone(config: Config, url: str) -> None:
    """"New York" in the schedule's Time zone is America/New_York, as in Settings and init."""
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from publisher.services import scheduling

    at = datetime.now(UTC).astimezone(ZoneInfo("America/New_York")) + timedelta(days=3)
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        page = http.get("/desk/articles/sleep-after-a-loss").text
        assert "A city is enough" in page
        done = http.post("/desk/articles/sleep-after-a-loss/schedule",
                         data={"csrf": csrf_of(page), "at": f"{at:%Y-%m-%dT%H:%M}", "timezone": "new york"})
    assert done.status_code == 303, done.text
    engine = open_store(config.store_url)
    (kept,) = scheduling.list_schedules(engine)
    engine.dispose()
    assert kept.timezone == "America/New_York"
    assert kept.run_at == at.replace(second=0, microsecond=0).astimezone(UTC)


def test_a_schedule_in_a_zone_that_is_not_one_says_what_to_type(config: Config, url: str) -> None:
    """An unknown zone is told with a city to try, nothing is scheduled, and the typed name stays."""
    from publisher.services import scheduling

    with httpx.Client(base_url=url) as http:
        sign_in(http)
        page = http.get("/desk/articles/sleep-after-a-loss").text
        refused = http.post("/desk/articles/sleep-after-a-loss/schedule",
                            data={"csrf": csrf_of(page), "at": "2031-01-01T09:00", "timezone": "Mars/Olympus"})
    assert refused.status_code == 400
    assert "No time zone called &#39;Mars/Olympus&#39;; try a city such as London" in refused.text
    assert "IANA" not in refused.text and 'value="Mars/Olympus"' in refused.text
    engine = open_store(config.store_url)
    assert scheduling.list_schedules(engine) == []
    engine.dispose()


def test_a_schedule_left_after_send_now_says_the_article_was_sent(config: Config, url: str) -> None:
    """Send now on a scheduled article leaves the schedule (for readers who join before it),
    and Home and the editor say it was sent already instead of that readers get it then."""
    from datetime import UTC, datetime, timedelta

    engine = open_store(config.store_url)
    subscriber_store.add(engine, "reader@example.org", now=datetime.now(UTC))
    at = (datetime.now(UTC) + timedelta(days=2)).astimezone(config.tz)
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        csrf = csrf_of(http.get("/desk/articles/sleep-after-a-loss").text)
        planned = http.post(
            "/desk/articles/sleep-after-a-loss/schedule", data={"csrf": csrf, "at": f"{at:%Y-%m-%dT%H:%M}"}
        )
        assert planned.status_code == 303, planned.text
        assert "Your readers get it then" in http.get("/desk/articles/sleep-after-a-loss").text
        sent = http.post("/desk/articles/sleep-after-a-loss/send", data={"csrf": csrf, "confirm": "1"})
        assert sent.status_code == 303, sent.text
        home = http.get("/desk/").text
        editor = http.get("/desk/articles/sleep-after-a-loss").text
    engine.dispose()
    assert "sent already: then only to readers who have not had it" in home
    assert 'id="scheduled-after-send"' in editor and "Your readers get it then" not in editor


def test_an_issues_minutes_are_read_on_the_publications_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The table under the sent-per-minute chart gives each minute in the publication's zone,
    as its heading and the chart's labels say, not in UTC."""
    from datetime import UTC, datetime

    from web_support import SECRET

    from publisher.config import load_config
    from publisher.schedule import jobs
    from publisher.services import issues as issue_service

    quick_hashes(monkeypatch)
    make_publication(tmp_path)
    path = tmp_path / "config.toml"
    path.write_text(
        path.read_text(encoding="utf-8").replace('language = "en"', 'language = "en"\ntimezone = "America/New_York"'),
        encoding="utf-8",
    )
    (tmp_path / "content").mkdir()
    (tmp_path / "content" / "2026-01-05-sleep-after-a-loss.md").write_text(ARTICLE, encoding="utf-8")
    config = load_config(path, env={"PUBLISHER_SECRET": SECRET})
    add_users(config)
    engine = open_store(config.store_url)
    subscriber_store.add(engine, "reader@example.org", now=datetime.now(UTC))
    queued = issue_service.send_now(config, engine, "sleep-after-a-loss", now=datetime.now(UTC))
    jobs.register(str(path), jobs.Runtime(config=config, db=engine))
    jobs.deliver_due(str(path))
    with live_server(create_app(config)) as base, httpx.Client(base_url=base) as http:
        sign_in(http)
        page = http.get(f"/desk/issues/{queued.issue_id}").text
    engine.dispose()
    row = re.search(r"<tbody><tr><td>(\d{4}-\d\d-\d\d \d\d:\d\d)([^<]*)</td>", page)
    assert row, page
    shown = datetime.strptime(row.group(1), "%Y-%m-%d %H:%M")
    local = datetime.now(UTC).astimezone(config.tz).replace(tzinfo=None)
    assert abs((local - shown).total_seconds()) < 600 and row.group(2) == "", row.group(0)


def test_an_issue_without_analytics_says_opens_are_not_counted(config: Config, url: str) -> None:
    """With analytics off, the report's Opens and clicks says why it is empty, not nothing."""
    from datetime import UTC, datetime

    from publisher.services import issues as issue_service

    engine = open_store(config.store_url)
    subscriber_store.add(engine, "reader@example.org", now=datetime.now(UTC))
    queued = issue_service.send_now(config, engine, "sleep-after-a-loss", now=datetime.now(UTC))
    engine.dispose()
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        page = http.get(f"/desk/issues/{queued.issue_id}").text
    section = page[page.index('id="engagement"') :].split("</section>", 1)[0]
    assert 'id="not-counted"' in section and "analytics.enabled" in section


def test_home_shows_the_next_digest_and_what_it_gathers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A digest mails every reader as a schedule does: Home names its next time and the
    articles it would gather, beside the scheduled sends."""
    from datetime import UTC, datetime

    from web_support import SECRET

    from publisher import content
    from publisher.config import load_config
    from publisher.store import publishing

    quick_hashes(monkeypatch)
    make_publication(tmp_path, extra='\n[schedule]\ndigest = "0 8 * * mon"\n')
    (tmp_path / "content").mkdir()
    (tmp_path / "content" / "2026-01-05-sleep-after-a-loss.md").write_text(ARTICLE, encoding="utf-8")
    config = load_config(tmp_path / "config.toml", env={"PUBLISHER_SECRET": SECRET})
    add_users(config)
    engine = open_store(config.store_url)
    for article in content.load_articles(config):
        publishing.mark_seen(
            engine, article_id=article.id, slug=article.slug, origin="", handled="wait", now=datetime.now(UTC)
        )
    engine.dispose()
    with live_server(create_app(config)) as base, httpx.Client(base_url=base) as http:
        sign_in(http)
        home = http.get("/desk/").text
    found = re.search(r'<p id="next-digest">(.*?)</p>', home, re.S)
    assert found, home
    said = re.sub(r"\s+", " ", found.group(1))
    assert "Mon " in said and "08:00" in said and "Nothing is scheduled" not in home
    assert "1 article on the site that no digest carried yet" in said and "Sleep after a loss" in said
    assert "to every active reader but those who had each of them already" in said


def test_a_schedule_refused_for_a_problem_says_so_as_a_sentence(config: Config, url: str) -> None:
    """A picture without words stops a schedule; the send panel's refusal begins with a capital."""
    from datetime import UTC, datetime, timedelta

    path = config.root / "content" / "2026-01-05-sleep-after-a-loss.md"
    path.write_text(ARTICLE.replace("Here is what helps.", "Here is what helps.\n\n![](https://example.org/a.jpg)"))
    at = (datetime.now(UTC) + timedelta(days=2)).astimezone(config.tz)
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        csrf = csrf_of(http.get("/desk/articles/sleep-after-a-loss").text)
        refused = http.post(
            "/desk/articles/sleep-after-a-loss/schedule", data={"csrf": csrf, "at": f"{at:%Y-%m-%dT%H:%M}"}
        )
    assert refused.status_code == 400
    said = re.search(r'<p class="error" role="alert" id="send-error">([^<]*)', refused.text)
    assert said and said.group(1).startswith("Not scheduled: fix these first."), refused.text
