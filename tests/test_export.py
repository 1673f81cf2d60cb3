"""`publisher export` and our own export read back: a publication out, into an empty
folder, and back the same, with nothing sent twice; every archive the reader must refuse."""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
import stat
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from publisher.cli import cli
from publisher.config import Config, load_config
from publisher.errors import Conflict, InvalidRequest
from publisher.mail import tokens
from publisher.services import export as service
from publisher.services import export_import
from publisher.store import open_store
from publisher.store.schema import deliveries, issues, subscribers
from publisher.web import create_app

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
SLUG = "talking-to-teens-about-stress"
INIT = [
    "--title", "Harbor Light Notes", "--url", "https://notes.harborlight.example.org/", "--author", "Dana Reyes",
    "--from", "Dana Reyes <notes@harborlight.example.org>", "--postal-address", "120 Wharf Street, Portland, ME",
    "--timezone", "America/New_York",
]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def sample(folder: Path) -> Path:
    """The repository's sample publication: five readers, one of them unsubscribed, one issue sent."""
    folder.mkdir()
    shutil.copy(ROOT / "config.toml", folder / "config.toml")
    shutil.copytree(ROOT / "content", folder / "content")
    (folder / "templates").mkdir()
    (folder / "templates" / "footer.txt").write_text("our own footer\n")
    config = str(folder / "config.toml")
    assert run("--config", config, "subscribers", "import", str(ROOT / "demo" / "subscribers.csv")).exit_code == 0
    assert run("--config", config, "send", SLUG, "--yes").exit_code == 0
    assert run("--config", config, "subscribers", "remove", "sam.okafor@example.org").exit_code == 0
    db = open_store(load_config(config).store_url)
    try:
        with db.begin() as conn:  # a reader's own choice, made on their page
            conn.execute(sa.update(subscribers).where(subscribers.c.email == "priya.raman@example.org")
                         .values(frequency="digest", topics="sleep,anxiety"))
    finally:
        db.dispose()
    return folder / "config.toml"


def exported(tmp_path: Path) -> tuple[Path, Path]:
    config = sample(tmp_path / "pub")
    result = run("--config", str(config), "export", "--to", str(tmp_path / "out.zip"))
    assert result.exit_code == 0, result.output
    return config, tmp_path / "out.zip"


def empty_publication(folder: Path) -> Path:
    assert run("init", str(folder), *INIT).exit_code == 0
    return folder / "config.toml"


def readers(config_path: Path) -> dict[str, tuple[object, ...]]:
    """Each reader as the round trip must keep them: status, when they joined, consent, choices, link key."""
    config = load_config(str(config_path))
    db = open_store(config.store_url)
    try:
        with db.connect() as conn:
            return {
                r.email: (r.status, r.name, str(r.created_at), str(r.confirmed_at), r.source, str(r.opted_in_at),
                          r.consent_text, r.frequency, r.topics, r.token_key)
                for r in conn.execute(sa.select(subscribers))
            }
    finally:
        db.dispose()


def apply(config_path: Path, archive: Path, *, write: bool = True) -> export_import.MoveIn:
    config = load_config(str(config_path))
    db = open_store(config.store_url)
    try:
        if write:
            return export_import.apply_import(config, db, archive, now=NOW)
        return export_import.plan_import(config, db, archive, now=NOW)
    finally:
        db.dispose()


@pytest.fixture
def made(tmp_path: Path) -> tuple[Path, Path]:
    return exported(tmp_path)


def test_the_export_holds_every_part_and_a_readme_that_names_them(made: tuple[Path, Path]) -> None:
    """One zip: articles, pictures, templates, subscribers, issues, deliveries, settings, README."""
    config, archive = made
    with zipfile.ZipFile(archive) as z:
        names = set(z.namelist())
        readme = z.read("README.txt").decode()
        for article in (config.parent / "content").glob("*.md"):
            assert z.read(f"content/{article.name}") == article.read_bytes()
        assert z.read("settings.toml") == config.read_bytes()
        issues = list(csv.DictReader(io.StringIO(z.read("issues.csv").decode())))
    assert {"content/images/harbor.png", "templates/footer.txt", "subscribers.csv", "deliveries.csv"} <= names
    for part in ("content/", "subscribers.csv", "issues.csv", "deliveries.csv", "settings.toml", "PUBLISHER_SECRET"):
        assert part in readme
    (issue,) = issues
    assert (issue["article"], issue["recipients"], issue["accepted"], issue["unsubscribed"]) == (SLUG, "5", "5", "0")
    assert issue["sent_at"]


def test_the_export_is_readable_by_its_owner_only(made: tuple[Path, Path]) -> None:
    """Mode 0600: it holds every reader's address."""
    _config, archive = made
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600


def test_subscribers_csv_keeps_status_and_consent(made: tuple[Path, Path]) -> None:
    """The unsubscribed reader is exported as unsubscribed, with when they consented and where from."""
    _config, archive = made
    with zipfile.ZipFile(archive) as z:
        rows = {r["email"]: r for r in csv.DictReader(io.StringIO(z.read("subscribers.csv").decode()))}
    assert rows["sam.okafor@example.org"]["status"] == "unsubscribed"
    assert rows["avery.quinn@example.org"]["confirmed_at"]
    assert rows["avery.quinn@example.org"]["source"]


def test_an_existing_file_is_never_replaced(made: tuple[Path, Path]) -> None:
    """Exporting onto a name that exists is refused and leaves that file alone."""
    config, archive = made
    before = archive.read_bytes()
    result = CliRunner().invoke(cli, ["--config", str(config), "export", "--to", str(archive)])
    assert result.exit_code == 1 and "exists already" in result.output
    assert archive.read_bytes() == before


@pytest.mark.parametrize(
    ("to", "told"),
    [("nowhere/out.zip", "does not exist; create it first"), ("out.tar.gz", "an export is a .zip file")],
    ids=["missing-folder", "not-zip"],
)
def test_a_destination_that_cannot_be_is_told(tmp_path: Path, to: str, told: str) -> None:
    """--to names a .zip in a folder that exists, or a folder: otherwise one clear sentence, exit 1."""
    config = sample(tmp_path / "pub")
    result = CliRunner().invoke(cli, ["--config", str(config), "export", "--to", str(tmp_path / to)])
    assert result.exit_code == 1 and told in result.output
    assert "Traceback" not in result.output


def test_an_export_inside_the_content_folder_is_refused(tmp_path: Path) -> None:
    """The build would publish it: refused before anything is written."""
    config = sample(tmp_path / "pub")
    target = config.parent / "content" / "leak.zip"
    result = CliRunner().invoke(cli, ["--config", str(config), "export", "--to", str(target)])
    assert result.exit_code == 1 and "content folder" in result.output
    assert not target.exists()
    assert not [p for p in (config.parent / "content").iterdir() if p.name.startswith(".publisher-export")]


# -- the round trip --------------------------------------------------------------------------


def test_the_round_trip_gives_the_same_publication_back(tmp_path: Path, made: tuple[Path, Path]) -> None:
    """`migrate publisher` into a new publication: byte-identical articles, pictures, templates; same readers and
    consent; check passes."""
    config, archive = made
    again = empty_publication(tmp_path / "again")
    result = run("--config", str(again), "migrate", "publisher", str(archive))
    assert result.exit_code == 0, result.output
    assert "subscribers: 5 read: 5 created" in result.output
    assert "issues: 1 read: 1 created" in result.output
    old_content, new_content = config.parent / "content", again.parent / "content"
    for path in old_content.rglob("*"):
        if path.is_file():
            assert (new_content / path.relative_to(old_content)).read_bytes() == path.read_bytes(), path
    assert (again.parent / "templates" / "footer.txt").read_text() == "our own footer\n"
    assert readers(again) == readers(config)
    assert run("--config", str(again), "check").exit_code == 0


def test_an_unsubscribe_link_from_mail_sent_before_the_move_works_after_it(
    tmp_path: Path, made: tuple[Path, Path]
) -> None:
    """Same secret, same link key: the one-click link in an old message unsubscribes the same reader."""
    config, archive = made
    again = empty_publication(tmp_path / "again")
    apply(again, archive)
    db = open_store(load_config(str(config)).store_url)
    try:
        with db.connect() as conn:
            key = conn.execute(sa.select(subscribers.c.token_key)
                               .where(subscribers.c.email == "avery.quinn@example.org")).scalar_one()
    finally:
        db.dispose()
    link = tokens.sign("s" * 40, "unsubscribe", key)
    new = load_config(str(again), env={"PUBLISHER_SECRET": "s" * 40})
    transport = httpx.ASGITransport(app=create_app(new))

    async def post() -> int:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            answer = await http.post(f"/unsubscribe/{link}", data={"List-Unsubscribe": "One-Click"})
            return answer.status_code

    assert asyncio.run(post()) == 200
    assert readers(again)["avery.quinn@example.org"][0] == "unsubscribed"


def one_click(config: Config, email: str) -> None:
    """The reader presses the one-click unsubscribe of the issue's message they got."""
    db = open_store(config.store_url)
    try:
        with db.connect() as conn:
            key, message = conn.execute(
                sa.select(subscribers.c.token_key, deliveries.c.message_key)
                .join(deliveries, deliveries.c.subscriber_id == subscribers.c.id)
                .where(subscribers.c.email == email)
            ).one()
    finally:
        db.dispose()
    link = tokens.sign("s" * 40, "unsubscribe", key, message)
    transport = httpx.ASGITransport(app=create_app(config))

    async def post() -> int:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return (await http.post(f"/unsubscribe/{link}", data={"List-Unsubscribe": "One-Click"})).status_code

    assert asyncio.run(post()) == 200


def test_each_issue_s_figures_and_each_reader_s_history_come_back(tmp_path: Path) -> None:
    """A reader who left by the issue's link: issues.csv says so, and so do the issue's figures after the move."""
    from publisher.services import stats

    secret = {"PUBLISHER_SECRET": "s" * 40}
    config = sample(tmp_path / "pub")
    one_click(load_config(str(config), env=secret), "avery.quinn@example.org")
    assert run("--config", str(config), "export", "--to", str(tmp_path / "out.zip")).exit_code == 0
    with zipfile.ZipFile(tmp_path / "out.zip") as z:
        (issue,) = csv.DictReader(io.StringIO(z.read("issues.csv").decode()))
    assert issue["unsubscribed"] == "1"
    again = empty_publication(tmp_path / "again")
    done = apply(again, tmp_path / "out.zip")
    assert done.of("events").created >= 1
    db = open_store(load_config(str(again)).store_url)
    try:
        (figures,) = stats.issues_counts(db, stats.issue_status(db))
    finally:
        db.dispose()
    assert (figures.sent, figures.unsubscribed) == (5, 1)
    assert apply(again, tmp_path / "out.zip").of("events").created == 0


def test_copies_still_waiting_at_export_are_named_and_never_sent_from_here(tmp_path: Path) -> None:
    """A copy queued when the export was made: the plan says so, naming the issue, and it comes back skipped."""
    config = sample(tmp_path / "pub")
    db = open_store(load_config(str(config)).store_url)
    try:
        with db.begin() as conn:
            conn.execute(sa.update(deliveries).where(deliveries.c.email == "priya.raman@example.org")
                         .values(state="queued"))
    finally:
        db.dispose()
    assert run("--config", str(config), "export", "--to", str(tmp_path / "out.zip")).exit_code == 0
    again = empty_publication(tmp_path / "again")
    planned = apply(again, tmp_path / "out.zip", write=False)
    assert any(note.startswith("1 copy was still waiting to be sent when the publication was exported (")
               and "never sent from here" in note for note in planned.notes), planned.notes
    apply(again, tmp_path / "out.zip")
    db = open_store(load_config(str(again)).store_url)
    try:
        with db.connect() as conn:
            state = conn.execute(sa.select(deliveries.c.state).where(
                deliveries.c.email == "priya.raman@example.org")).scalar_one()
    finally:
        db.dispose()
    assert state == "skipped"


def test_an_erased_reader_stays_erased_and_the_issue_s_count_stays_true(tmp_path: Path) -> None:
    """The erased reader's copy travels emptied of them: counted, never tied to anyone, never added twice."""
    from publisher.services import subscribers as subscriber_service

    config = sample(tmp_path / "pub")
    db = open_store(load_config(str(config)).store_url)
    try:
        subscriber_service.erase(db, "jordan.mbeki@example.org", now=NOW)
    finally:
        db.dispose()
    assert run("--config", str(config), "export", "--to", str(tmp_path / "out.zip")).exit_code == 0
    with zipfile.ZipFile(tmp_path / "out.zip") as z:
        assert b"jordan" not in b"".join(z.read(n) for n in z.namelist() if n.endswith(".csv"))
    again = empty_publication(tmp_path / "again")
    apply(again, tmp_path / "out.zip")
    assert apply(again, tmp_path / "out.zip").of("deliveries").created == 0
    db = open_store(load_config(str(again)).store_url)
    try:
        with db.connect() as conn:
            rows = conn.execute(sa.select(deliveries.c.email, deliveries.c.subscriber_id)).all()
    finally:
        db.dispose()
    assert len(rows) == 5 and sum(1 for email, who in rows if email == "" and who is None) == 1
    assert "jordan.mbeki@example.org" not in readers(again)


def test_sending_an_imported_article_again_sends_nothing(tmp_path: Path, made: tuple[Path, Path]) -> None:
    """The issue comes back marked delivered to the readers who had it: a send queues no one."""
    _config, archive = made
    again = empty_publication(tmp_path / "again")
    apply(again, archive)
    result = run("--config", str(again), "send", SLUG, "--yes")
    assert "0 new recipient(s) queued" in result.output, result.output
    assert not (again.parent / "outbox").exists() or not list((again.parent / "outbox" / "new").iterdir())


def test_imported_articles_are_noticed_so_no_policy_mails_them(tmp_path: Path, made: tuple[Path, Path]) -> None:
    """Every imported article is recorded as noticed: a daemon with policy "now" sees nothing new."""
    from publisher import content
    from publisher.store import publishing

    _config, archive = made
    again = empty_publication(tmp_path / "again")
    apply(again, archive)
    config = load_config(str(again))
    db = open_store(config.store_url)
    try:
        seen = publishing.seen_ids(db)
    finally:
        db.dispose()
    imported = [a for a in content.load_articles(config) if "welcome" not in a.slug]
    assert len(imported) == 6 and all(a.id in seen for a in imported)


def test_the_plan_writes_nothing_and_its_counts_add_up(tmp_path: Path, made: tuple[Path, Path]) -> None:
    """A dry run: counts per kind that add up to what the archive holds, and no file or row written."""
    config, archive = made
    again = empty_publication(tmp_path / "again")
    before = sorted(p.name for p in (again.parent / "content").rglob("*"))
    plan = apply(again, archive, write=False)
    assert sorted(p.name for p in (again.parent / "content").rglob("*")) == before
    assert readers(again) == {}
    articles = len(list((config.parent / "content").glob("*.md")))
    assert plan.of("articles").read == articles == plan.of("articles").created
    assert plan.of("subscribers").read == 5 and plan.of("deliveries").created == 5
    done = apply(again, archive)
    assert [(k.kind, k.created, k.updated) for k in done.kinds] == [(k.kind, k.created, k.updated) for k in plan.kinds]


def test_importing_twice_changes_nothing(tmp_path: Path, made: tuple[Path, Path]) -> None:
    """The second run creates nothing and skips everything."""
    _config, archive = made
    again = empty_publication(tmp_path / "again")
    apply(again, archive)
    second = apply(again, archive)
    assert all(k.created == 0 and k.refused == 0 for k in second.kinds), second
    db = open_store(load_config(str(again)).store_url)
    try:
        with db.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar() == 5
    finally:
        db.dispose()


class Killed(BaseException):
    """Stands for a kill: nothing after it runs, no handler sees it."""


def test_an_import_killed_half_way_resumes_without_duplicates(
    tmp_path: Path, made: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the files and readers, before the ledger: run again, the rest comes, nothing twice."""
    from publisher.store import export_rows

    _config, archive = made
    again = empty_publication(tmp_path / "again")

    def killed(*args: object, **kwargs: object) -> None:
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(export_rows, "put_issue", killed)
        with pytest.raises(Killed):
            apply(again, archive)
    second = apply(again, archive)
    assert second.of("articles").created == 0 and second.of("subscribers").created == 0
    assert second.of("issues").created == 1 and second.of("deliveries").created == 5
    result = run("--config", str(again), "send", SLUG, "--yes")
    assert "0 new recipient(s) queued" in result.output


def test_an_issue_never_lands_without_its_copies(
    tmp_path: Path, made: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed while the copies are written: the issue is not there either, so a send cannot mail them again."""
    from publisher.store import export_rows

    _config, archive = made
    again = empty_publication(tmp_path / "again")

    def killed(*args: object, **kwargs: object) -> None:
        raise Killed

    monkeypatch.setattr(export_rows, "_new_copies", killed)
    with pytest.raises(Killed):
        apply(again, archive)
    db = open_store(load_config(str(again)).store_url)
    try:
        with db.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(issues)).scalar() == 0
    finally:
        db.dispose()


def test_an_article_with_other_content_here_is_refused_not_replaced(tmp_path: Path, made: tuple[Path, Path]) -> None:
    """A file of the same name with other bytes stays; the refusal names the member."""
    _config, archive = made
    again = empty_publication(tmp_path / "again")
    mine = again.parent / "content" / "2026-04-14-grief-after-loss.md"
    mine.write_text("---\ntitle: Mine\ndate: 2026-04-14\n---\n\nMy own.\n")
    done = apply(again, archive)
    assert mine.read_text().endswith("My own.\n")
    (reason,) = done.of("articles").reasons
    assert "content/2026-04-14-grief-after-loss.md" in reason and "left alone" in reason


def test_the_dry_run_at_the_command_line_says_so_and_writes_nothing(tmp_path: Path, made: tuple[Path, Path]) -> None:
    """`migrate publisher --dry-run` prints what would be created and leaves the folder alone."""
    _config, archive = made
    again = empty_publication(tmp_path / "again")
    result = run("--config", str(again), "migrate", "publisher", str(archive), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run: nothing was written" in result.output and "5 would be created" in result.output
    assert not (again.parent / "content" / "images").exists()


def test_redirects_come_back(tmp_path: Path) -> None:
    """An old address recorded by a migration is in redirects.csv and answered again after the round trip."""
    from publisher.store import redirects

    config = sample(tmp_path / "pub")
    db = open_store(load_config(str(config)).store_url)
    try:
        redirects.add(db, [("/p/old-teens", "/talking-to-teens-about-stress/")], source="substack", now=NOW)
    finally:
        db.dispose()
    assert run("--config", str(config), "export", "--to", str(tmp_path / "out.zip")).exit_code == 0
    again = empty_publication(tmp_path / "again")
    assert apply(again, tmp_path / "out.zip").of("redirects").created == 1
    db = open_store(load_config(str(again)).store_url)
    try:
        assert redirects.lookup(db, "/p/old-teens/") == "/talking-to-teens-about-stress/"
    finally:
        db.dispose()


def test_the_publication_s_settings_come_back_but_not_the_server_s(tmp_path: Path, made: tuple[Path, Path]) -> None:
    """Title, author, description, the newsletter's sender come back; the address and the folders stay this one's."""
    config, archive = made
    again = empty_publication(tmp_path / "again")
    before = load_config(str(again))
    done = apply(again, archive)
    old, new = load_config(str(config)), load_config(str(again))
    for key in ("publication.author", "publication.description", "newsletter.reply_to", "schedule.policy"):
        assert new[key] == old[key], key
    assert new["publication.url"] == before["publication.url"] and new["store.url"] == before["store.url"]
    assert done.of("settings").updated >= 3 and done.of("settings").refused == 0
    assert "# " in again.read_text()  # init's comments kept


def _with_settings(archive: Path, out: Path, text: str) -> Path:
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(out, "w") as copy:
        for info in source.infolist():
            data = text.encode() if info.filename == "settings.toml" else source.read(info)
            copy.writestr(info, data)
    return out


def test_settings_that_break_the_rules_change_nothing(tmp_path: Path, made: tuple[Path, Path]) -> None:
    """A setting refused by config.toml's rules is named, and config.toml stays as it was."""
    config, archive = made
    text = config.read_text().replace('policy = "wait"', 'policy = "sometimes"')
    bad = _with_settings(archive, tmp_path / "edited.zip", text)
    again = empty_publication(tmp_path / "again")
    before = again.read_bytes()
    done = apply(again, bad)
    assert again.read_bytes() == before
    settings = done.of("settings")
    assert settings.updated == 0 and settings.refused >= 1
    assert "edited.zip: settings.toml" in settings.reasons[0] and "policy" in " ".join(settings.reasons)


# -- archives refused --------------------------------------------------------------------------


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


MANIFEST = b'{"format": "publisher-export", "format_version": 1}'


@pytest.mark.parametrize(
    ("members", "told"),
    [
        ({"manifest.json": MANIFEST, "content/../../evil.md": b"x"}, "leads out of the archive"),
        ({"manifest.json": MANIFEST, "/etc/evil.md": b"x"}, "leads out of the archive"),
        ({"manifest.json": MANIFEST, "content/.hidden": b"x"}, "hidden file"),
        ({"manifest.json": MANIFEST, "content/bomb.md": b"\0" * (50 * 1024 * 1024)}, "zip bomb"),
        ({"posts.csv": b"a,b\n"}, "not an export of publisher"),
        ({"manifest.json": b'{"format": "publisher-export", "format_version": 99}'}, "newer publisher"),
    ],
    ids=["climbs", "absolute", "hidden", "bomb", "other-service", "newer"],
)
def test_a_bad_archive_is_refused_before_anything_is_written(
    tmp_path: Path, members: dict[str, bytes], told: str
) -> None:
    """Each refusal names the archive and what is wrong; the publication is untouched."""
    again = empty_publication(tmp_path / "again")
    open_store(load_config(str(again)).store_url).dispose()
    before = sorted(p.name for p in again.parent.rglob("*"))
    archive = _zip(tmp_path / "bad.zip", members)
    with pytest.raises(InvalidRequest, match=told) as caught:
        apply(again, archive)
    assert "bad.zip" in str(caught.value)
    assert sorted(p.name for p in again.parent.rglob("*")) == before


def test_a_file_that_is_not_a_zip_is_told(tmp_path: Path) -> None:
    """Not a zip: one clear sentence, no traceback."""
    again = empty_publication(tmp_path / "again")
    bad = tmp_path / "notes.zip"
    bad.write_text("hello")
    with pytest.raises(InvalidRequest, match=r"notes\.zip: not a zip archive"):
        apply(again, bad)


def test_a_formula_in_a_subject_is_neutralised_and_comes_back(tmp_path: Path) -> None:
    """issues.csv keeps a spreadsheet from running a subject; the reader takes the apostrophe off."""
    from publisher.content.exports.publisher_export import restore_cell
    from publisher.services.export import _csv_text

    (cell,) = next(csv.reader(io.StringIO(_csv_text([['=HYPERLINK("x")']]).decode())))
    assert cell == "'=HYPERLINK(\"x\")"
    assert restore_cell(cell) == '=HYPERLINK("x")'


def test_conflict_is_the_error_for_an_existing_name(tmp_path: Path, made: tuple[Path, Path]) -> None:
    """The service raises Conflict (exit 1 with its message at the CLI)."""
    config, archive = made
    c = load_config(str(config))
    db = open_store(c.store_url)
    try:
        with pytest.raises(Conflict):
            service.create_export(c, db, now=NOW, to=archive)
    finally:
        db.dispose()
