"""The desk's Move in / Move out page over real HTTP: the export streamed to an owner, an
upload previewed with nothing written, Apply, and every refusal (roles, CSRF, size, a bad file)."""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from desk_support import add_users, csrf_of, quick_hashes, sign_in
from test_export import SLUG, sample
from web_support import live_server, make_publication

from publisher.config import Config
from publisher.web import create_app
from publisher.web.desk import moving


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    quick_hashes(monkeypatch)
    (tmp_path / "desk").mkdir()
    config = make_publication(tmp_path / "desk")
    (tmp_path / "desk" / "content").mkdir()
    add_users(config)
    return config


@pytest.fixture
def url(config: Config) -> Iterator[str]:
    with live_server(create_app(config)) as base:
        yield base


@pytest.fixture
def own_export(tmp_path: Path) -> bytes:
    """An export of the sample publication (five readers, one issue sent)."""
    from click.testing import CliRunner

    from publisher.cli import cli

    config = sample(tmp_path / "pub")
    result = CliRunner().invoke(cli, ["--config", str(config), "export", "--to", str(tmp_path / "out.zip")])
    assert result.exit_code == 0, result.output
    return (tmp_path / "out.zip").read_bytes()


@contextmanager
def signed_in(url: str, who: str = "owner@example.org") -> Iterator[tuple[httpx.Client, str]]:
    with httpx.Client(base_url=url, timeout=60) as http:
        sign_in(http, who)
        yield http, csrf_of(http.get("/desk/subscribers").text)


def upload(http: httpx.Client, csrf: str, data: bytes, *, service: str = "publisher",
           name: str = "harbor-export.zip") -> httpx.Response:
    return http.post("/desk/moving/upload", data={"csrf": csrf, "service": service},
                     files={"file": (name, data, "application/zip")})


def articles(config: Config) -> list[str]:
    return sorted(p.name for p in (config.root / "content").glob("*.md"))


def test_settings_links_to_the_page_and_owners_see_it(url: str) -> None:
    """An owner finds Move in / Move out from Settings."""
    with signed_in(url) as (http, _csrf):
        assert 'href="/desk/moving"' in http.get("/desk/settings").text
        page = http.get("/desk/moving")
    assert page.status_code == 200
    assert "Download the export" in page.text and "Upload and preview" in page.text


@pytest.mark.parametrize("who", ["editor@example.org", "viewer@example.org"])
def test_only_owners_may_move_in_or_out(url: str, who: str) -> None:
    """Editors and viewers are refused the page, the export and the upload."""
    with signed_in(url, who) as (http, csrf):
        assert http.get("/desk/moving").status_code == 403
        assert http.post("/desk/moving/export", data={"csrf": csrf}).status_code == 403
        assert upload(http, csrf, b"PK").status_code == 403


def test_the_export_is_streamed_as_a_zip_to_an_owner(url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Export: a zip download with the README and subscribers.csv, logged with who asked."""
    caplog.set_level(logging.INFO, logger=moving.__name__)
    with signed_in(url) as (http, csrf):
        answer = http.post("/desk/moving/export", data={"csrf": csrf})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/zip"
    assert "attachment" in answer.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(answer.content)) as z:
        assert {"README.txt", "subscribers.csv", "issues.csv", "manifest.json"} <= set(z.namelist())
    assert any("owner@example.org" in r.getMessage() for r in caplog.records)


def test_the_export_needs_the_page_s_csrf_token(url: str) -> None:
    """A form from elsewhere gets nothing."""
    with signed_in(url) as (http, _csrf):
        answer = http.post("/desk/moving/export", data={"csrf": "forged"})
    assert answer.status_code == 403 and not answer.content.startswith(b"PK")


def test_an_upload_needs_the_page_s_csrf_token(url: str, own_export: bytes, config: Config) -> None:
    """An upload from a form elsewhere is refused; nothing of it is kept."""
    with signed_in(url) as (http, _csrf):
        answer = upload(http, "forged", own_export)
    assert answer.status_code == 403 and "out of date" in answer.text
    assert articles(config) == []


def test_an_upload_is_previewed_and_nothing_is_written(config: Config, url: str, own_export: bytes) -> None:
    """The preview shows counts per kind that add up; the content folder and the list stay empty."""
    with signed_in(url) as (http, csrf):
        page = upload(http, csrf, own_export)
    assert page.status_code == 200, page.text
    assert "What “harbor-export.zip” would bring" in page.text and "Nothing has been written yet" in page.text
    assert '<th scope="row">subscribers</th><td>5</td><td>5</td>' in page.text
    assert articles(config) == []


def test_apply_moves_it_in_and_removes_the_upload(
    config: Config, url: str, own_export: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Apply writes what the preview said; the uploaded file is gone afterwards."""
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    with signed_in(url) as (http, csrf):
        page = upload(http, csrf, own_export)
        held = list((tmp_path / "tmp").glob("publisher-moving-*/*"))
        assert [p.name for p in held] == ["harbor-export.zip"]
        assert oct(held[0].stat().st_mode & 0o777) == "0o600"
        key = page.text.split('name="key" value="')[1].split('"')[0]
        done = http.post("/desk/moving/apply", data={"csrf": csrf, "key": key})
    assert done.status_code == 200, done.text
    assert "Moved in from “harbor-export.zip”" in done.text
    assert f"2026-09-15-{SLUG}.md" in articles(config)
    assert list((tmp_path / "tmp").glob("publisher-moving-*")) == []


def test_another_session_cannot_apply_an_upload(url: str, own_export: bytes, config: Config) -> None:
    """The upload is bound to the session that sent it."""
    with signed_in(url) as (http, csrf):
        page = upload(http, csrf, own_export)
        key = page.text.split('name="key" value="')[1].split('"')[0]
    with signed_in(url) as (other, csrf2):
        answer = other.post("/desk/moving/apply", data={"csrf": csrf2, "key": key})
    assert answer.status_code == 400 and "no longer waiting" in answer.text
    assert articles(config) == []


def test_a_file_over_the_limit_is_refused_as_it_arrives(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """413 with what to do instead; nothing kept."""
    monkeypatch.setattr(moving, "MAX_UPLOAD", 1000)
    with signed_in(url) as (http, csrf):
        answer = upload(http, csrf, b"x" * 200_000)
    assert answer.status_code == 413 and "publisher migrate" in answer.text


def test_a_bad_export_is_told_with_its_name(url: str, config: Config) -> None:
    """A zip whose member climbs out: 400 naming the file and the member; nothing written."""
    bad = io.BytesIO()
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("manifest.json", '{"format": "publisher-export", "format_version": 1}')
        z.writestr("content/../../evil.md", "x")
    with signed_in(url) as (http, csrf):
        answer = upload(http, csrf, bad.getvalue(), name="evil.zip")
    assert answer.status_code == 400
    assert "evil.zip" in answer.text and "leads out of the archive" in answer.text
    assert articles(config) == []


def test_an_export_from_another_service_is_previewed_by_the_migration(url: str, config: Config) -> None:
    """Choosing Ghost hands the file to `publisher migrate`'s plan: the preview names its counts."""
    ghost = (Path(__file__).parent / "data" / "exports" / "ghost" / "ghost-export.json").read_bytes()
    with signed_in(url) as (http, csrf):
        answer = upload(http, csrf, ghost, service="ghost", name="ghost-export.json")
    assert answer.status_code == 200, answer.text
    assert '<th scope="row">articles</th>' in answer.text and "Nothing has been written yet" in answer.text
    assert articles(config) == []
