"""The desk's Sequences section over real HTTP: steps, who is at which step, preview,
checks, and saving a step (refused whole when it is not one)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from desk_support import add_users, csrf_of, quick_hashes, sign_in
from web_support import live_server, make_publication

from publisher.config import Config
from publisher.services import segments, sequences
from publisher.store import open_store
from publisher.store import subscribers as subs
from publisher.web import create_app

WELCOME = "---\ntitle: Welcome to the notes\ndelay: 0\nsummary: What to expect.\n---\n\nHello and welcome.\n"
DAY_3 = "---\ntitle: Three habits\ndelay: 3d\nsummary: Small changes.\n---\n\nThree habits.\n"


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    quick_hashes(monkeypatch)
    config = make_publication(tmp_path)
    (tmp_path / "content").mkdir()
    folder = tmp_path / "sequences" / "welcome"
    folder.mkdir(parents=True)
    (folder / "welcome.md").write_text(WELCOME)
    (folder / "day-3.md").write_text(DAY_3)
    add_users(config)
    db = open_store(config.store_url)
    start = datetime.now(UTC) - timedelta(days=1)
    sequences.run(config, db, now=start)
    subs.add(db, "ada@example.org", now=start + timedelta(minutes=1))
    sequences.run(config, db, now=start + timedelta(minutes=2))  # ada's welcome is in the ledger
    db.dispose()
    return config


@pytest.fixture
def url(config: Config) -> Iterator[str]:
    with live_server(create_app(config)) as base:
        yield base


def test_the_list_names_each_sequence_and_its_steps(url: str) -> None:
    """Sequences in the navigation; the list shows the trigger, the steps and the readers."""
    with httpx.Client(base_url=url) as http:
        sign_in(http, "viewer@example.org")
        page = http.get("/desk/sequences")
    assert page.status_code == 200
    assert 'href="/desk/sequences"' in page.text
    assert "confirms (becomes an active reader)" in page.text
    assert "welcome (at once), day-3 (day 3)" in page.text


def test_owners_see_who_is_at_which_step(url: str) -> None:
    """The owner's page counts readers per step and names them with their next step."""
    with httpx.Client(base_url=url) as http:
        sign_in(http, "owner@example.org")
        page = http.get("/desk/sequences/welcome")
    assert page.status_code == 200
    row = ('<a href="/desk/sequences/welcome/welcome">welcome</a></td>\n'
           '    <td>Welcome to the notes</td>\n    <td>1</td>')
    assert row in page.text
    assert "ada@example.org" in page.text


def test_editors_see_the_counts_but_not_the_readers(url: str) -> None:
    """Who the readers are is for owners; an editor sees how many stand at each step."""
    with httpx.Client(base_url=url) as http:
        sign_in(http, "editor@example.org")
        page = http.get("/desk/sequences/welcome")
    assert page.status_code == 200
    assert "Who is at which step" in page.text
    assert "ada@example.org" not in page.text


def test_a_step_shows_its_email_and_the_checks(url: str) -> None:
    """The step page frames the email in a sandbox and lists the checks before sending."""
    with httpx.Client(base_url=url) as http:
        sign_in(http, "viewer@example.org")
        page = http.get("/desk/sequences/welcome/day-3")
        email = http.get("/desk/sequences/welcome/day-3/email")
    assert page.status_code == 200
    assert 'sandbox="" title="The step\'s email' in page.text
    assert "<strong>Preheader</strong> (passed)" in page.text
    assert "<strong>Unsubscribe link</strong> (passed)" in page.text
    assert "Three habits" in email.text
    assert "sandbox" in email.headers["content-security-policy"]


def test_an_unknown_sequence_is_a_404_naming_the_known_ones(url: str) -> None:
    """A mistyped address says which sequences there are."""
    with httpx.Client(base_url=url) as http:
        sign_in(http, "viewer@example.org")
        page = http.get("/desk/sequences/welcom")
    assert page.status_code == 404
    assert "(sequences: welcome)" in page.text


def test_saving_a_text_without_a_delay_is_refused_and_writes_nothing(config: Config, url: str) -> None:
    """The step's file stays as it was; the page says which line to add."""
    path = config.root / "sequences" / "welcome" / "day-3.md"
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        form = http.get("/desk/sequences/welcome/day-3")
        answer = http.post("/desk/sequences/welcome/day-3",
                           data={"csrf": csrf_of(form.text), "text": "---\ntitle: Changed\n---\n\nNo delay.\n"})
    assert answer.status_code == 400
    assert "front matter has no delay; add a line like &#39;delay: 3d&#39;" in answer.text
    assert path.read_text() == DAY_3


def test_saving_a_step_rewrites_its_file(config: Config, url: str) -> None:
    """A good text replaces the file; nothing is sent by saving."""
    path = config.root / "sequences" / "welcome" / "day-3.md"
    new = DAY_3.replace("Three habits", "Three small habits")
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        form = http.get("/desk/sequences/welcome/day-3")
        answer = http.post("/desk/sequences/welcome/day-3", data={"csrf": csrf_of(form.text), "text": new},
                           follow_redirects=True)
    assert answer.status_code == 200
    assert "Nothing was sent" in answer.text
    assert path.read_text() == new


def test_a_new_step_of_a_new_sequence_makes_its_folder(config: Config, url: str) -> None:
    """From the list's form: a sequence that did not exist gets its folder and first step."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        form = http.get("/desk/sequences")
        answer = http.post("/desk/sequences", data={
            "csrf": csrf_of(form.text), "name": "sleep", "step": "intro",
            "text": "---\ntitle: Sleep notes\ndelay: 0\n---\n\nFirst.\n",
        }, follow_redirects=True)
    assert answer.status_code == 200
    assert (config.root / "sequences" / "sleep" / "intro.md").is_file()


def test_a_step_name_with_a_slash_is_refused(config: Config, url: str) -> None:
    """Names are letters, digits, - and _: nothing is written outside the sequences folder."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        form = http.get("/desk/sequences")
        answer = http.post("/desk/sequences", data={
            "csrf": csrf_of(form.text), "name": "..", "step": "x",
            "text": "---\ntitle: T\ndelay: 0\n---\n\nx\n",
        })
    assert answer.status_code == 400
    assert "sequence name &#39;..&#39;: use lower-case letters" in answer.text
    assert not (config.root / "x.md").exists()


def test_a_viewer_cannot_save_a_step(config: Config, url: str) -> None:
    """Saving is an editor's."""
    with httpx.Client(base_url=url) as http:
        sign_in(http, "viewer@example.org")
        form = http.get("/desk/sequences/welcome/day-3")
        answer = http.post("/desk/sequences/welcome/day-3", data={"csrf": csrf_of(form.text), "text": DAY_3})
    assert answer.status_code == 403


def test_a_sequence_held_by_a_deleted_segment_says_why(config: Config, url: str) -> None:
    """The sequence page names its segment and, once the segment is deleted, that it is
    held and what to do; the list marks it held too."""
    db = open_store(config.store_url)
    made = segments.save_segment(db, name="europe", now=datetime.now(UTC), rules={"match": "all", "conditions": []})
    (config.root / "sequences" / "welcome" / "sequence.toml").write_text('segment = "europe"\n')
    with httpx.Client(base_url=url) as http:
        sign_in(http, "viewer@example.org")
        before = http.get("/desk/sequences/welcome").text
        segments.delete_segment(db, made.id)
        after = http.get("/desk/sequences/welcome").text
        listed = http.get("/desk/sequences").text
    db.dispose()
    assert "in the segment <strong>europe</strong>" in before and "Held:" not in before
    assert "Held: sequence &#39;welcome&#39; is held: its segment &#39;europe&#39; no longer exists" in after
    assert "held: its segment is gone" in listed


def test_the_desk_import_starts_an_imported_sequence_for_the_new_readers(config: Config, url: str) -> None:
    """The import form offers the sequences started by an import; the new active readers
    enter it, the reader already on the list does not, and its welcome goes to them."""
    folder = config.root / "sequences" / "moved"
    folder.mkdir()
    (folder / "hello.md").write_text("---\ntitle: You moved with us\ndelay: 0\n---\n\nHello.\n")
    (folder / "sequence.toml").write_text('trigger = "imported"\n')
    csv = b"email,name\nnew@example.org,New\nada@example.org,Ada\n"
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        form = http.get("/desk/subscribers/import").text
        assert '<option value="moved">moved</option>' in form and '<option value="welcome">' not in form
        preview = http.post("/desk/subscribers/import", data={"csrf": csrf_of(form), "sequence": "moved"},
                            files={"file": ("list.csv", csv, "text/csv")})
        assert "enter the sequence <strong>moved</strong>" in preview.text
        key = re.search(r'name="key" value="([^"]+)"', preview.text).group(1)
        done = http.post("/desk/subscribers/import/confirm", data={"csrf": csrf_of(form), "key": key})
        assert done.status_code == 200
    db = open_store(config.store_url)
    sequences.run(config, db, now=datetime.now(UTC) + timedelta(seconds=1))
    (view,) = sequences.overview(config, db, "moved")
    readers = [r.email for r in sequences.readers(config, db, "moved")]
    db.dispose()
    assert readers == ["new@example.org"] and view.steps[0].at_step == 1


def test_the_desk_import_refuses_a_sequence_not_started_by_imports(config: Config, url: str) -> None:
    """A forged choice of a sequence started by confirmation is refused at the upload, nothing kept."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        form = http.get("/desk/subscribers/import").text
        answer = http.post("/desk/subscribers/import", data={"csrf": csrf_of(form), "sequence": "welcome"},
                           files={"file": ("list.csv", b"email\nnew@example.org\n", "text/csv")})
    assert answer.status_code == 400 and "not by an import" in answer.text
