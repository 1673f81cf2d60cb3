"""The whole app under uvicorn on loopback: feeds with validators, health, start-up checks."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine
from web_support import RSS, AppClient, live_server, make_publication, publish_manifest

from publisher.config import Config, load_config
from publisher.errors import ConfigError, TemplateError
from publisher.web import create_app


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_publication(tmp_path)


def test_conditional_get_over_http(config: Config) -> None:
    """Through uvicorn: 200 with validators, then 304 for If-None-Match and If-Modified-Since."""
    with live_server(create_app(config)) as url, httpx.Client(base_url=url) as http:
        first = http.get("/feeds/rss.xml")
        assert first.status_code == 200
        assert first.content == RSS
        assert first.headers["content-encoding"] == "gzip"
        assert '<https://news.example.org/feeds/rss.xml>; rel="self"' in first.headers["link"]
        by_tag = http.get("/feeds/rss.xml", headers={"if-none-match": first.headers["etag"]})
        by_date = http.get(
            "/feeds/rss.xml", headers={"if-modified-since": first.headers["last-modified"]}
        )
    assert by_tag.status_code == by_date.status_code == 304
    assert by_tag.content == by_date.content == b""


def test_validators_survive_a_restart(config: Config) -> None:
    """A new app (a restarted server) sends the same ETag and Last-Modified and still 304s."""
    with live_server(create_app(config)) as url:
        before = httpx.get(url + "/feeds/atom.xml")
    with live_server(create_app(config)) as url:
        after = httpx.get(url + "/feeds/atom.xml", headers={"if-none-match": before.headers["etag"]})
        again = httpx.get(url + "/feeds/atom.xml")
    assert after.status_code == 304
    assert again.headers["etag"] == before.headers["etag"]
    assert again.headers["last-modified"] == before.headers["last-modified"]


def test_healthz(config: Config) -> None:
    """/healthz answers {"status": "ok"} when the database does."""
    answer = AppClient(create_app(config)).get("/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}


def test_healthz_reports_a_dead_database(config: Config, tmp_path: Path) -> None:
    """A database that cannot be reached makes /healthz answer 503."""
    missing = tmp_path / "no-such-folder" / "x.db"
    engine = create_engine(f"sqlite:///{missing}")
    answer = AppClient(create_app(config, engine=engine)).get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["status"] == "error"


def test_real_provider_needs_the_secret(tmp_path: Path) -> None:
    """With a real mail provider, the app refuses to start without PUBLISHER_SECRET."""
    make_publication(tmp_path)
    path = tmp_path / "config.toml"
    path.write_text(path.read_text().replace('provider = "maildir"', 'provider = "smtp"'))
    with pytest.raises(ConfigError, match="PUBLISHER_SECRET"):
        create_app(load_config(path, env={}))


def test_broken_page_override_fails_at_start(config: Config) -> None:
    """A page template override with a syntax error stops the app from starting."""
    overrides = config.path_of("build.templates") / "web"
    overrides.mkdir(parents=True)
    (overrides / "unsubscribe.html").write_text("{% if %}")
    with pytest.raises(TemplateError, match=r"unsubscribe\.html"):
        create_app(config)


def test_app_routes_win_over_files(config: Config) -> None:
    """A file named like an app route in public/ does not shadow the route."""
    (config.path_of("build.output") / "healthz").write_text("stale")
    assert AppClient(create_app(config)).get("/healthz").json() == {"status": "ok"}


def test_form_body_limit(config: Config) -> None:
    """A form body past 64 KB is refused with 413."""
    answer = AppClient(create_app(config)).post(
        "/subscribe", content=b"email=" + b"a" * 70_000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 413


def test_files_named_like_routes_are_served(config: Config) -> None:
    """Only the app's own paths are routes: /subscribers.html is still a file."""
    (config.path_of("build.output") / "subscribers.html").write_text("<p>list</p>")
    publish_manifest(config.path_of("build.output"))
    answer = AppClient(create_app(config)).get("/subscribers.html")
    assert answer.status_code == 200
    assert answer.text == "<p>list</p>"
