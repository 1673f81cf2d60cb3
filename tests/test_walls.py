"""The publication's walls: no link followed out of content/, no file removed or replaced
that the build did not make, no private file where public ones are copied from, a cache
that never executes, slugs that leave the app's routes alone, saves that keep a file's mode."""

from __future__ import annotations

import json
import logging
import os
import pickle
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from publisher import api, config, content
from publisher.config import Config, load_config
from publisher.content.watch import watch_content
from publisher.errors import BuildError, ConfigError, ContentError, NotFound
from publisher.mail import tokens
from publisher.services import articles as article_service
from publisher.site import archive, build, build_cache
from publisher.site.build.standby import RECORD
from publisher.site.build_cache import CACHE_FOLDER, ArticleCache
from publisher.store import open_store
from publisher.web import app as web_app

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

CONFIG = """\
[publication]
title = "Harbor Notes"
url = "https://notes.example.org/"
author = "Dana Reyes, LCSW"
timezone = "America/New_York"
postal_address = "120 Wharf Street, Portland, ME 04101, USA"

[build]
previews = 0

[newsletter]
from = "Dana Reyes <notes@example.org>"
"""


def text(title: str, *, slug: str = "", day: int = 1) -> str:
    return "\n".join([
        "---", f"title: {title}", f"date: 2026-01-{day:02d} 09:00", *([f"slug: {slug}"] if slug else []), "---",
        "", f"The words of {title}.", "",
    ])


def publication(root: Path, extra: str = "") -> Path:
    (root / "content").mkdir(parents=True)
    (root / "config.toml").write_text(CONFIG + extra, encoding="utf-8")
    (root / "content" / "first.md").write_text(text("First"), encoding="utf-8")
    return root / "config.toml"


def cfg(root: Path) -> Config:
    return load_config(root / "config.toml", env={})


def build_once(path: Path) -> object:
    """What `publisher build` does: articles through the cache, the build from them."""
    loaded = load_config(path, env={})
    cache = ArticleCache(loaded)
    try:
        found = content.load_articles(loaded, reader=cache.read)
        return build.build_site(loaded, found, NOW, cache=cache)
    finally:
        cache.save()


# -- links in content/ -------------------------------------------------------------------


def test_article_linked_from_outside_content_is_refused(tmp_path: Path) -> None:
    """content/notes.md linking to a file outside content/ is an error naming it; nothing is published."""
    path = publication(tmp_path)
    (tmp_path / "private.md").write_text(text("Private notes"), encoding="utf-8")
    (tmp_path / "content" / "notes.md").symlink_to("../private.md")
    with pytest.raises(ContentError, match=r"content/notes\.md is a symbolic link to a file outside content/"):
        build_once(path)
    assert not (tmp_path / "public").exists()


def test_file_linked_beside_the_articles_is_never_copied(tmp_path: Path) -> None:
    """A linked image (here to the database) stops the build, naming the link; it is not copied."""
    path = publication(tmp_path)
    (tmp_path / "publisher.db").write_bytes(b"SQLite format 3\x00 alice@example.org")
    (tmp_path / "content" / "images").mkdir()
    (tmp_path / "content" / "images" / "cover.png").symlink_to("../../publisher.db")
    with pytest.raises(ContentError, match=r"content/images/cover\.png is a symbolic link .*replace it with the file"):
        build_once(path)
    assert not any(b"alice@" in p.read_bytes() for p in tmp_path.glob("public/**/*") if p.is_file())


def test_linked_folder_in_content_is_refused(tmp_path: Path) -> None:
    """A folder linked into content/ is refused by name, not silently skipped or entered."""
    path = publication(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    (tmp_path / "content" / "files").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ContentError, match=r"content/files is a symbolic link to a folder outside content/"):
        build_once(path)


def test_link_inside_content_is_refused_and_says_so(tmp_path: Path) -> None:
    """Even a link that stays inside content/ is refused, and the message says why."""
    path = publication(tmp_path)
    (tmp_path / "content" / "again.md").symlink_to("first.md")
    with pytest.raises(ContentError, match=r"again\.md is a symbolic link to a file inside content/.*even such"):
        content.load_articles(cfg(tmp_path))
    _articles, problems = content.scan_articles(load_config(path, env={}))
    assert [str(p) for p in problems if "again.md" in str(p)]


def test_fifo_in_content_is_refused_without_hanging(tmp_path: Path) -> None:
    """A named pipe called x.md is an error, not a build waiting forever for a writer."""
    publication(tmp_path)
    os.mkfifo(tmp_path / "content" / "pipe.md")
    problems: list[str] = []
    reader = threading.Thread(
        target=lambda: problems.extend(map(str, content.scan_articles(cfg(tmp_path))[1])), daemon=True
    )
    reader.start()
    reader.join(10)
    hung = reader.is_alive()
    if hung:  # free the thread: a writer lets the open return
        (tmp_path / "content" / "pipe.md").open("w").close()
    assert not hung, "reading a FIFO hung the scan"
    assert any("pipe.md: is not a regular file" in p for p in problems)


def test_editor_never_reads_through_a_link(tmp_path: Path) -> None:
    """The editor's read of an article whose file became a link is refused, not the target shown."""
    publication(tmp_path)
    loaded = cfg(tmp_path)
    db = open_store(loaded.store_url)
    view = article_service.get_article(loaded, db, "first", now=NOW)
    (tmp_path / "secret.txt").write_text("PUBLISHER_SECRET=hunter2\n")
    (tmp_path / "content" / "first.md").unlink()
    (tmp_path / "content" / "first.md").symlink_to("../secret.txt")
    with pytest.raises(ContentError, match="symbolic link"):
        article_service.article_text(loaded, view)
    with pytest.raises(NotFound):
        article_service.get_article(loaded, db, "first", now=NOW)


def test_save_never_writes_through_or_replaces_a_link(tmp_path: Path) -> None:
    """Saving the article of a linked file is refused; the link and its target stay as they were."""
    publication(tmp_path)
    (tmp_path / "outside.md").write_text(text("Outside", slug="outside"))
    (tmp_path / "content" / "outside.md").symlink_to("../outside.md")
    with pytest.raises(NotFound):
        article_service.write_article(cfg(tmp_path), text("Changed", slug="outside"), now=NOW, slug="outside")
    assert (tmp_path / "content" / "outside.md").is_symlink()
    assert "Changed" not in (tmp_path / "outside.md").read_text()


def test_watcher_does_not_follow_a_linked_folder(tmp_path: Path) -> None:
    """A change in a folder linked into content/ is not seen; a change in a real subfolder is."""
    folder = tmp_path / "content"
    (folder / "real").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (folder / "linked").symlink_to(tmp_path / "outside")
    called = threading.Event()
    stop = threading.Event()
    thread = threading.Thread(target=watch_content, args=(folder, called.set, stop), kwargs={"quiet": 0.05})
    thread.start()
    try:
        time.sleep(0.5)
        (tmp_path / "outside" / "new.md").write_text("outside")
        assert not called.wait(2.0), "a change outside content/ was followed through the link"
        (folder / "real" / "new.md").write_text("inside")
        assert called.wait(30), "a change in a real subfolder was missed"
    finally:
        stop.set()
        thread.join(10)


# -- the build removes and replaces only what it made ------------------------------------


def test_file_made_in_the_served_build_survives_the_switch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file another program writes into the served build while a build runs (a database's
    journal) is kept, with a warning, when that build is cleared instead of being deleted
    with it. The build served before stays as the standby, so it is cleared by the build
    after next (here a full one: the standby's record is gone)."""
    path = publication(tmp_path)
    build_once(path)
    public = tmp_path / "public"
    served = public.resolve()
    real_switch = build.writing._switch
    made: list[bool] = []

    def switch(output: Path, version: Path) -> None:
        if not made:
            (output / "journal.db-wal").write_text("a running daemon's journal")
            made.append(True)
        real_switch(output, version)

    monkeypatch.setattr(build.writing, "_switch", switch)
    (tmp_path / "content" / "first.md").write_text(text("First, edited"), encoding="utf-8")
    build_once(path)
    assert (served / "index.html").exists(), "the build served before is the standby"
    (tmp_path / ".public.builds" / RECORD).unlink(missing_ok=True)
    (tmp_path / "content" / "first.md").write_text(text("First, edited again"), encoding="utf-8")
    report = build_once(path)
    assert public.resolve() != served
    assert (served / "journal.db-wal").read_text() == "a running daemon's journal"
    assert any("journal.db-wal" in w and "did not write" in w for w in report.warnings)  # type: ignore[attr-defined]
    assert not (served / "index.html").exists(), "what the build wrote in the old build is removed"


def test_file_made_in_the_served_build_survives_a_small_build_and_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the small path the old build stays as the standby: a file another program wrote
    into it during the switch is kept there, and the next small build, which writes into
    that tree, keeps it too."""
    path = publication(tmp_path)
    build_once(path)
    build_once(path)  # leaves a standby record
    served = (tmp_path / "public").resolve()
    real_switch = build.writing._switch
    made: list[Path] = []

    def switch(output: Path, version: Path) -> None:
        if not made:
            (output / "journal.db-wal").write_text("a running daemon's journal")
            made.append(output / "journal.db-wal")
        real_switch(output, version)

    monkeypatch.setattr(build.writing, "_switch", switch)
    (tmp_path / "content" / "first.md").write_text(text("First, edited"), encoding="utf-8")
    build_once(path)
    assert (served / "journal.db-wal").read_text() == "a running daemon's journal"
    (tmp_path / "content" / "first.md").write_text(text("First, edited again"), encoding="utf-8")
    build_once(path)
    assert made and made[0].read_text() == "a running daemon's journal"


def test_stale_removal_never_follows_a_link_in_the_output(tmp_path: Path) -> None:
    """A manifest listing a file behind a link in the output cannot make the build delete it."""
    path = publication(tmp_path)
    build_once(path)
    served = (tmp_path / "public").resolve()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "publisher.db-wal").write_bytes(b"journal")
    (served / "data").symlink_to(tmp_path / "data")
    manifest = json.loads((served / build.MANIFEST).read_text())
    manifest["files"]["data/publisher.db-wal"] = build.files._digest(b"journal")
    (served / build.MANIFEST).write_text(json.dumps(manifest))
    build_once(path)
    assert (tmp_path / "data" / "publisher.db-wal").read_bytes() == b"journal"


def test_pages_are_never_written_through_a_link_in_the_output(tmp_path: Path) -> None:
    """A folder of the output replaced by a link elsewhere stops the build; nothing lands there."""
    path = publication(tmp_path)
    build_once(path)
    served = (tmp_path / "public").resolve()
    (tmp_path / "elsewhere").mkdir()
    for page in (served / "feeds").rglob("*"):
        if page.is_file():
            page.unlink()
    for folder in sorted((served / "feeds").rglob("*"), reverse=True):
        folder.rmdir()
    (served / "feeds").rmdir()
    (served / "feeds").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(BuildError, match="feeds is a link"):
        build_once(path)
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_output_link_the_author_made_is_refused(tmp_path: Path) -> None:
    """public/ as the author's own link to a web root is refused, never replaced."""
    path = publication(tmp_path)
    (tmp_path / "www").mkdir()
    (tmp_path / "public").symlink_to(tmp_path / "www")
    with pytest.raises(BuildError, match="which publisher did not make"):
        build_once(path)
    assert (tmp_path / "public").readlink() == tmp_path / "www"


def test_builds_folder_that_is_a_link_is_refused(tmp_path: Path) -> None:
    """.public.builds as a link elsewhere stops the build: nothing is staged or pruned there."""
    path = publication(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "v1").mkdir()
    (tmp_path / ".public.builds").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(BuildError, match=r"\.public\.builds: it is a link or a file"):
        build_once(path)
    assert [p.name for p in (tmp_path / "elsewhere").iterdir()] == ["v1"]


# -- private files never where public ones are copied from --------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('\n[store]\nurl = "sqlite:///content/publisher.db"\n', r"\[store\] url puts the database inside content/"),
        ('\n[store]\nurl = "sqlite+pysqlite:///content/db/x.db?timeout=5"\n', r"\[store\] url puts the database"),
        ('\n[delivery.dkim]\nprivate_key_file = "content/dkim.pem"\n',
         r"\[delivery.dkim\] private_key_file puts the DKIM key inside content/"),
        ('\n[delivery.maildir]\npath = "content/outbox"\n', r"\[delivery.maildir\] path puts the outbox"),
        ('\n[build]\ncontent = "."\n', r"\[build\] content = '\.' holds the publication's private files"),
    ],
)
def test_private_file_inside_content_is_refused_at_load(tmp_path: Path, extra: str, message: str) -> None:
    """The database, a DKIM key, the outbox, the secret or the cache inside content/ is a config error."""
    text_ = CONFIG.replace("[build]\npreviews = 0\n", "") + extra
    if "[build]" not in extra:
        text_ += "\n[build]\npreviews = 0\n"
    (tmp_path / "config.toml").write_text(text_)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "config.toml", env={})


def test_private_file_in_a_folder_linked_into_content_is_refused(tmp_path: Path) -> None:
    """A database folder that is a link into content/ counts where it leads."""
    (tmp_path / "content").mkdir()
    (tmp_path / "data").symlink_to(tmp_path / "content")
    (tmp_path / "config.toml").write_text(CONFIG + '\n[store]\nurl = "sqlite:///data/publisher.db"\n')
    with pytest.raises(ConfigError, match=r"config.toml:\d+: \[store\] url puts the database inside content/"):
        load_config(tmp_path / "config.toml", env={})


def test_config_knows_the_private_files_by_their_names() -> None:
    """config.py's names of the secret file and the cache are the ones tokens and the cache use."""
    assert config._SECRET_FILE == tokens.SECRET_FILE_NAME
    assert config._CACHE_FOLDER == build_cache.CACHE_FOLDER


# -- the build cache never executes -----------------------------------------------------


class _Planted:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (str(self.marker), "ran"))  # type: ignore[return-value]


def test_cache_files_are_never_unpickled(tmp_path: Path) -> None:
    """A pickle planted where the cache lives runs nothing (the cache is JSON), and is removed."""
    path = publication(tmp_path)
    build_once(path)
    marker = tmp_path / "ran"
    cache = tmp_path / CACHE_FOLDER
    for name in ("articles.pickle", "renders-0000000000000000.pickle", "articles.json"):
        (cache / name).write_bytes(pickle.dumps(_Planted(marker)))
    for record in cache.glob("renders-*.json"):
        record.write_bytes(pickle.dumps(_Planted(marker)))
    (tmp_path / "content" / "first.md").write_text(text("First, edited"), encoding="utf-8")
    build_once(path)
    assert not marker.exists()
    assert not list(cache.glob("*.pickle"))


def test_cache_folder_is_0700_whatever_the_umask(tmp_path: Path) -> None:
    """Under umask 0 the cache and its HTML folder are the publisher's alone, its files 0600."""
    path = publication(tmp_path)
    old = os.umask(0)
    try:
        build_once(path)
    finally:
        os.umask(old)
    cache = tmp_path / CACHE_FOLDER
    assert cache.stat().st_mode & 0o777 == 0o700
    assert (cache / "html").stat().st_mode & 0o777 == 0o700
    assert {p.stat().st_mode & 0o777 for p in cache.rglob("*") if p.is_file()} == {0o600}


def test_cache_writable_by_others_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Entries in a group- or world-writable cache folder are not used; a warning names the folder."""
    path = publication(tmp_path)
    build_once(path)
    cache = tmp_path / CACHE_FOLDER
    index = cache / "articles.json"
    found = json.loads(index.read_text())
    for entry in found["payload"].values():
        entry[0][build_cache._FIELDS.index("title")] = "PLANTED"
    index.write_text(json.dumps(found))
    for record in cache.glob("renders-*.json"):
        record.unlink()
    cache.chmod(0o777)
    build_cache._WARNED.clear()
    with caplog.at_level(logging.WARNING, logger="publisher.site.build_cache"):
        loaded = load_config(path, env={})
        reader = ArticleCache(loaded)
        found_articles = content.load_articles(loaded, reader=reader.read)
    assert [a.title for a in found_articles] == ["First"]
    assert reader.parsed == 1
    assert any(str(cache) in r.getMessage() and "writable by group or others" in r.getMessage() for r in caplog.records)


def test_cache_keeps_dates_in_the_publication_zone(tmp_path: Path) -> None:
    """An article read back from the JSON cache equals the parsed one, zone and all."""
    path = publication(tmp_path)
    loaded = load_config(path, env={})
    first = ArticleCache(loaded)
    parsed = content.load_articles(loaded, reader=first.read)
    first.save()
    again = ArticleCache(loaded)
    cached = content.load_articles(loaded, reader=again.read)
    assert again.parsed == 0
    assert cached == parsed
    assert repr(cached[0].date) == repr(parsed[0].date)


# -- slugs that would shadow the app -----------------------------------------------------


@pytest.mark.parametrize("slug", ["desk", "api", "manage", "static", "healthz", "media", "search"])
def test_slug_shadowing_the_app_is_refused(slug: str, tmp_path: Path) -> None:
    """A slug the app or the build uses at the top level is an error naming the file and line."""
    loaded = load_config(publication(tmp_path), env={})
    with pytest.raises(ContentError, match=rf"^content/x\.md:4: slug '{slug}' is reserved"):
        content.parse_article(text("Anything", slug=slug), source="content/x.md", config=loaded)


def test_a_title_whose_slug_is_reserved_is_refused(tmp_path: Path) -> None:
    """A file named desk.md (its slug from the name) is refused too, naming the file."""
    loaded = load_config(publication(tmp_path), env={})
    with pytest.raises(ContentError, match=r"content/desk\.md:2: slug 'desk' is reserved"):
        content.parse_article(text("Desk"), source="content/desk.md", config=loaded)


def test_reserved_slugs_cover_every_route_and_build_folder() -> None:
    """Every top-level name the app routes or the build writes a folder under is reserved."""
    routes = {path.strip("/").split("/")[0] for path in (*web_app.APP_PATHS, *web_app.APP_PREFIXES)}
    routes |= {api.PREFIX.strip("/").split("/")[0]}
    assert routes | archive.ARCHIVE_FOLDERS | {"feeds", "newsletters"} <= content.RESERVED_SLUGS


# -- saves keep the file's mode ----------------------------------------------------------


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o664])
def test_saving_keeps_the_files_mode(tmp_path: Path, mode: int) -> None:
    """A save replaces the file with one of the same mode, not the temp file's 0600."""
    publication(tmp_path)
    target = tmp_path / "content" / "first.md"
    target.chmod(mode)
    article_service.write_article(cfg(tmp_path), text("First, saved"), now=NOW, slug="first")
    assert "First, saved" in target.read_text()
    assert target.stat().st_mode & 0o777 == mode


def test_new_article_gets_the_umask_mode(tmp_path: Path) -> None:
    """A new article's file is 0666 less the umask, like any file the author makes."""
    publication(tmp_path)
    old = os.umask(0o022)
    try:
        written = article_service.write_article(cfg(tmp_path), text("Second", slug="second"), now=NOW)
    finally:
        os.umask(old)
    assert written.path.stat().st_mode & 0o777 == 0o644
    assert not [p for p in (tmp_path / "content").iterdir() if p.name.startswith(".")]
