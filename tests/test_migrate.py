"""publisher migrate: other services' exports moved in safely, once, with their old addresses."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from loopback_sites import serve_sites
from PIL import Image

from publisher.cli import cli
from publisher.config import Config, load_config
from publisher.errors import SourceError
from publisher.services import migration
from publisher.store import open_store, publishing
from publisher.store import redirects as redirect_store

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
EXPORTS = Path(__file__).parent / "data" / "exports"


def write_config(tmp_path: Path, *, allow_private: bool = False) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [publication]
            title = "Harbor Notes"
            url = "https://notes.example.org/"
            timezone = "UTC"
            author = "Dana Reyes"
            postal_address = "1 Wharf Street, Portland, ME"
            [newsletter]
            from = "Notes <notes@example.org>"
            [store]
            url = "sqlite:///publisher.db"
            [fetch]
            allow_private = {"true" if allow_private else "false"}
            timeout = 3.0
            """
        ),
        encoding="utf-8",
    )
    return path


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load_config(write_config(tmp_path), env={})


def zipped(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(folder).as_posix())
    return target


def migrate(config: Config, source: str, path: Path | str, **kw: str) -> migration.Plan:
    db = open_store(config.store_url)
    planned = migration.plan(config, db, source, migration.open_export(path), **kw)
    return migration.apply(config, db, planned, now=NOW)


def articles_in(config: Config) -> list[str]:
    return sorted(p.name for p in config.path_of("build.content").glob("*.md"))


def test_substack_zip_moves_in_posts_with_footnotes_and_no_paywall(config: Config, tmp_path: Path) -> None:
    """Substack's zip: three posts in, the bad date refused; footnotes kept, paywall marker gone."""
    done = migrate(config, "substack", zipped(EXPORTS / "substack", tmp_path / "substack.zip"))
    assert (done.count("created"), done.count("refused")) == (3, 1)
    assert "post_date 'yesterday-ish'" in done.refused[0][1] and done.refused[0][0] == "posts.csv:5"
    text = (config.path_of("build.content") / "2024-03-05-sleep-and-memory.md").read_text()
    assert "files the day[^1]" in text and "[^1]: Walker, 2017, chapter 6." in text
    assert "paywall-jump" not in text and "Subscribe now" not in text and "the practical part" in text
    assert "summary: What the night does for the day" in text
    paid = (config.path_of("build.content") / "2024-04-01-the-paid-one.md").read_text()
    assert "draft: true" in paid


def test_ghost_lexical_cards_become_markdown(config: Config) -> None:
    """Ghost's Lexical cards: image with caption, callout, bookmark, html table, markdown, embed."""
    done = migrate(config, "ghost", EXPORTS / "ghost", site="https://old.example.com")
    assert (done.count("created"), done.count("refused")) == (5, 1)
    text = (config.path_of("build.content") / "2024-02-01-morning-light.md").read_text()
    assert "tags: [Sleep, Light]" in text and "author: Dana Reyes, Sam Ortiz" in text
    assert "](https://old.example.com/sleep-basics/)" in text
    for piece in ("![Sunrise over a field](", "Morning light, *any* weather", "> 💡", "Ten minutes is enough.",
                  "[Circadian rhythms explained](https://example.org/circadian)", "| 7 | 10000 |",
                  "A **markdown** card", "<https://www.youtube.com/watch?v=abc123>"):
        assert piece in text
    assert "iframe" not in text
    older = (config.path_of("build.content") / "2024-02-02-an-older-post.md").read_text()
    assert "**bold**" in older and "[a link](https://example.org/old)" in older and "- first" in older


def test_wordpress_caption_becomes_a_figure_and_unknown_shortcodes_are_reported(config: Config) -> None:
    """[caption] becomes the picture with its caption; [contact-form-7] stays and is named."""
    done = migrate(config, "wordpress", EXPORTS / "wordpress")
    assert (done.count("created"), done.count("refused")) == (3, 0)
    text = (config.path_of("build.content") / "2023-11-14-breathing-at-night.md").read_text()
    assert "Four counts in, six out" in text and "[caption" not in text
    assert "tags: [Sleep, Breath]" in text
    step = next(s for s in done.articles if s.key == "wordpress:12")
    assert any("[contact-form-7]" in note for note in step.notes)


def test_buttondown_reads_three_date_formats(config: Config) -> None:
    """Dates with an offset, with Z and as MM/DD/YYYY all read; a missing one is refused."""
    done = migrate(config, "buttondown", EXPORTS / "buttondown")
    assert done.count("created") == 3 and done.refused == (("emails.csv:5", "publish_date '' is not a date"),)
    assert articles_in(config)[:3] == [
        "2024-01-07-weekly-notes-1.md", "2024-01-14-weekly-notes-2.md", "2024-01-21-weekly-notes-3.md",
    ]
    assert "<script>" not in (config.path_of("build.content") / "2024-01-14-weekly-notes-2.md").read_text()


def test_dry_run_writes_nothing_and_its_counts_add_up(config: Config) -> None:
    """The plan names what would happen, its counts add up to the records, and nothing is written."""
    db = open_store(config.store_url)
    planned = migration.plan(config, db, "wordpress", migration.open_export(EXPORTS / "wordpress"))
    counts = [planned.count(a) for a in ("created", "unchanged", "refused")]
    assert sum(counts) == planned.records == 3
    assert planned.redirects.created == 3
    assert articles_in(config) == [] and redirect_store.all_redirects(db) == []


def test_running_twice_changes_nothing(config: Config) -> None:
    """A second run finds every article moved in already: no file, row or redirect added."""
    migrate(config, "wordpress", EXPORTS / "wordpress")
    before = {p.name: p.read_bytes() for p in config.path_of("build.content").glob("*.md")}
    again = migrate(config, "wordpress", EXPORTS / "wordpress")
    assert (again.count("created"), again.count("unchanged"), again.redirects.created) == (0, 3, 0)
    assert {p.name: p.read_bytes() for p in config.path_of("build.content").glob("*.md")} == before


def test_imported_posts_are_never_mailed(config: Config) -> None:
    """Every article moved in is recorded as noticed: no policy mails it as new."""
    migrate(config, "substack", EXPORTS / "substack")
    seen = publishing.seen_ids(open_store(config.store_url))
    from publisher import content

    public = [a for a in content.load_articles(config) if not a.draft]
    assert public and all(a.id in seen for a in public)


def test_a_killed_migration_resumes_without_duplicates(tmp_path: Path) -> None:
    """SIGKILL half-way through, then a rerun: every post exactly once, redirects complete."""
    config_path = write_config(tmp_path)
    export = tmp_path / "big"
    (export / "posts").mkdir(parents=True)
    rows = ["post_id,post_date,is_published,email_sent_at,type,audience,title,subtitle"]
    for n in range(1, 121):
        rows.append(f"{n}.post-{n},2024-01-01T10:{n % 60:02d}:00Z,true,2024-01-01,newsletter,everyone,Post {n},")
        (export / "posts" / f"{n}.post-{n}.html").write_text(f"<p>Body {n}</p>")
    (export / "posts.csv").write_text("\n".join(rows) + "\n")
    command = [sys.executable, "-m", "publisher", "--config", str(config_path), "migrate", "substack", str(export)]
    env = {**os.environ, "PUBLISHER_SECRET": "x"}
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    content = tmp_path / "content"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(content.glob("*.md"))) < 40:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    cut = len(list(content.glob("*.md")))
    assert 0 < cut < 120
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert "unchanged" in result.stdout
    files = list(content.glob("*.md"))
    assert len(files) == 120 and not list(content.glob(".*"))
    config = load_config(config_path, env={})
    assert len(redirect_store.all_redirects(open_store(config.store_url))) == 120


def test_a_zip_member_that_climbs_out_is_refused(tmp_path: Path) -> None:
    """A member named ../evil is refused, by name, before anything is read."""
    target = tmp_path / "slip.zip"
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr("posts.csv", "post_id\n")
        archive.writestr("../../evil.sh", "boom")
    with pytest.raises(SourceError, match=r"'\.\./\.\./evil\.sh' has a path that climbs out"):
        migration.open_export(target)
    assert not (tmp_path.parent / "evil.sh").exists()


def test_a_zip_bomb_is_refused(tmp_path: Path) -> None:
    """A member that would grow a thousand times is refused, naming it."""
    target = tmp_path / "bomb.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("posts.csv", b"\0" * (50 * 1024 * 1024))
    with pytest.raises(SourceError, match=r"'posts\.csv' would grow from .*zip bomb"):
        migration.open_export(target)


def test_xml_with_entities_is_refused(config: Config) -> None:
    """A WXR file declaring entities (billion laughs) is refused, naming the file."""
    with pytest.raises(SourceError, match=r"entities\.xml: declares XML entities"):
        migration.plan(config, open_store(config.store_url), "wordpress",
                       migration.open_export(EXPORTS / "wordpress-entities" / "entities.xml"))


def test_a_picture_at_a_private_address_stays_remote_and_is_named(config: Config) -> None:
    """A picture on a private address is not fetched; the article comes in with the link, and says so."""
    done = migrate(config, "ghost", EXPORTS / "ghost")
    step = next(s for s in done.articles if s.key.endswith("01"))
    assert any("192.168.1.20" in note and "private address" in note for note in step.notes)
    assert "http://192.168.1.20/content/images/sunrise.jpg" in (
        config.path_of("build.content") / "2024-02-01-morning-light.md").read_text()


def test_pictures_are_fetched_into_the_media_folder(tmp_path: Path) -> None:
    """A reachable picture is stored in content/media and the body points at it."""
    config = load_config(write_config(tmp_path, allow_private=True), env={})
    with serve_sites(tmp_path) as site:
        buffer = io.BytesIO()
        Image.new("RGB", (40, 30), "teal").save(buffer, "PNG")
        (site.root / "pic.png").write_bytes(buffer.getvalue())
        post = {"id": "p1", "title": "Pictured", "slug": "pictured", "status": "published",
                "published_at": "2024-01-01T00:00:00Z", "html": f'<p><img src="{site.url}/pic.png" alt="teal"></p>'}
        export = tmp_path / "ghost.json"
        export.write_text(json.dumps({"db": [{"data": {"posts": [post]}}]}))
        migrate(config, "ghost", export)
    text = (config.path_of("build.content") / "2024-01-01-pictured.md").read_text()
    assert "![teal](/media/" in text and site.url not in text
    assert list((config.path_of("build.content") / "media").glob("*"))


def test_old_addresses_get_a_301_from_the_app(config: Config) -> None:
    """/2023/11/slug/ and /?p=12 from WordPress, and /p/slug from Substack, answer 301 to the new page."""
    from publisher.web.app import create_app

    migrate(config, "wordpress", EXPORTS / "wordpress")
    migrate(config, "substack", EXPORTS / "substack")
    app = create_app(config, provider_factory=lambda c: None)  # type: ignore[arg-type,return-value]

    async def ask() -> list[tuple[int, str]]:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            answers = [await client.get(old) for old in OLD]
        return [(r.status_code, r.headers.get("location", "")) for r in answers]

    assert asyncio.run(ask()) == [(301, "/breathing-at-night/"), (301, "/breathing-at-night/"),
                                  (301, "/sleep-and-memory/"), (404, "")]


OLD = ("/2023/11/breathing-at-night/", "/?p=12", "/p/sleep-and-memory", "/p/never-here")


def test_the_build_writes_redirects_for_a_static_host(config: Config) -> None:
    """The build writes _redirects and a page at each old path that sends a browser on."""
    from publisher.services.site import build_site

    migrate(config, "wordpress", EXPORTS / "wordpress")
    build_site(config, NOW)
    public = config.path_of("build.output")
    lines = (public / "_redirects").read_text().splitlines()
    assert "/2023/11/breathing-at-night /breathing-at-night/ 301" in lines
    assert "/ p=12 /breathing-at-night/ 301" in lines
    page = (public / "2023" / "11" / "breathing-at-night" / "index.html").read_text()
    assert 'http-equiv="refresh" content="0; url=/breathing-at-night/"' in page


def test_cli_dry_run_prints_counts(tmp_path: Path) -> None:
    """`publisher migrate ghost PATH --dry-run` prints the counts and writes nothing."""
    config_path = write_config(tmp_path)
    result = CliRunner().invoke(cli, ["--config", str(config_path), "migrate", "ghost", str(EXPORTS / "ghost"),
                                      "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "articles: 6 read: 5 would be created, 0 updated, 0 unchanged" in result.output
    assert not (tmp_path / "content").exists() or not list((tmp_path / "content").glob("*.md"))


def test_cli_names_a_bad_zip(tmp_path: Path) -> None:
    """A file that is not the export is one line naming it, exit 1, no traceback."""
    config_path = write_config(tmp_path)
    bad = tmp_path / "export.zip"
    bad.write_bytes(b"PK\x03\x04 not really")
    shutil.copy(bad, tmp_path / "copy.zip")
    result = CliRunner().invoke(cli, ["--config", str(config_path), "migrate", "substack", str(bad)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "export.zip: holds nothing a substack export has" in result.output
