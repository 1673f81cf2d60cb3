"""`publisher serve` takes saved settings up without a restart: the app is swapped, the
digest job follows `schedule.digest`, and a broken hand edit keeps the old settings running."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes.smtp import SMTPServer
from sqlalchemy import text
from test_daemon import Publication, schedule

from publisher.config import load_config
from publisher.services import settings as settings_service
from publisher.services.settings_text import fingerprint
from publisher.store import open_store

CONFIG = """# Reload test: this comment stays.
[publication]
title = "Daemon Test"
url = "https://example.org/"
timezone = "Europe/London"
postal_address = "1 Test Street, Testville"

[newsletter]
from = "Tester <news@example.org>"

[delivery]
provider = "maildir"

[server]
public_url = "http://127.0.0.1:{port}"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Daemon:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (root / "content").mkdir()
        self.config_path = root / "config.toml"
        self.config_path.write_text(CONFIG.format(port=self.port), encoding="utf-8")
        self.env = {**os.environ, "PUBLISHER_CONFIG": str(self.config_path), "PUBLISHER_SECRET": "s" * 32}
        self.log = root / "daemon.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "publisher", "serve", "--port", str(self.port)],
                env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None and time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)

    def save(self, **form: str) -> None:
        """A save as the desk makes it, through the settings service."""
        engine = open_store(load_config(self.config_path, env=self.env).store_url)
        try:
            settings_service.save_settings(
                self.config_path, form, fingerprint_seen=fingerprint(self.config_path.read_text(encoding="utf-8")),
                who="owner@example.org", engine=engine, now=datetime.now(UTC), env={},
            )
        finally:
            engine.dispose()

    def title_served(self) -> str:
        page = httpx.get(f"{self.url}/subscribe", timeout=5).text
        return "Renamed Letters" if "Renamed Letters" in page else "Daemon Test" if "Daemon Test" in page else "?"

    def jobs(self) -> set[str]:
        engine = open_store(load_config(self.config_path, env=self.env).store_url)
        try:
            with engine.connect() as conn:
                return {row[0] for row in conn.execute(text("SELECT id FROM apscheduler_jobs"))}
        finally:
            engine.dispose()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(timeout=30) == 0, self.log.read_text()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    running = Daemon(tmp_path)
    try:
        yield running
    finally:
        running.stop()


def wait_until(check: object, timeout: float = 10.0) -> float:
    """Seconds until `check()` is true; fails after `timeout`."""
    started = time.monotonic()
    while not check():  # type: ignore[operator]
        assert time.monotonic() - started < timeout, "not taken up in time"
        time.sleep(0.01)
    return time.monotonic() - started


def test_a_saved_title_is_served_without_a_restart(daemon: Daemon) -> None:
    """Saved in the settings, served by the same process within a second."""
    assert daemon.title_served() == "Daemon Test"
    daemon.save(title="Renamed Letters")
    took = wait_until(lambda: daemon.title_served() == "Renamed Letters", timeout=15.0)
    logged = re.search(r"settings reloaded in (\d+) ms", daemon.log.read_text())
    print(f"reload: save to the new title served in {took * 1000:.0f} ms; the daemon's reload itself "
          f"{logged.group(1) if logged else '?'} ms")
    # The figure is printed: about 1-1.6 s on a busy two-core machine, 5 s at a load of 16.
    assert took < 15.0
    assert daemon.proc.poll() is None
    assert "settings reloaded in" in daemon.log.read_text()


def test_the_digest_job_follows_the_setting(daemon: Daemon) -> None:
    """A digest line set adds the daemon's digest job; emptied, the job goes."""
    assert "digest" not in daemon.jobs()
    daemon.save(digest="0 8 * * mon")
    wait_until(lambda: "digest" in daemon.jobs())
    daemon.save(digest="")
    wait_until(lambda: "digest" not in daemon.jobs())


def test_a_broken_hand_edit_keeps_the_old_settings_and_is_logged(daemon: Daemon) -> None:
    """Invalid TOML written by hand: logged, the old settings keep serving; the next good edit is taken up."""
    good = daemon.config_path.read_text(encoding="utf-8")
    daemon.config_path.write_text(good.replace('title = "Daemon Test"', 'title = "Renamed Letters'), encoding="utf-8")
    wait_until(lambda: "cannot be used" in daemon.log.read_text())
    assert daemon.title_served() == "Daemon Test"
    daemon.config_path.write_text(good.replace("Daemon Test", "Renamed Letters"), encoding="utf-8")
    wait_until(lambda: daemon.title_served() == "Renamed Letters")


def test_a_hand_edit_that_fails_the_start_checks_is_refused(daemon: Daemon) -> None:
    """A real provider without its key would not start: the reload refuses it the same way."""
    good = daemon.config_path.read_text(encoding="utf-8")
    daemon.config_path.write_text(
        good.replace('provider = "maildir"', 'provider = "postmark"').replace("Daemon Test", "Renamed Letters")
        .replace('postal_address = "1 Test Street, Testville"\n', ""),
        encoding="utf-8",
    )
    wait_until(lambda: "cannot be used" in daemon.log.read_text())
    assert daemon.title_served() == "Daemon Test"


def test_a_secret_saved_while_serving_stays_out_of_the_log(daemon: Daemon) -> None:
    """The reload names what changed, never a secret's value."""
    daemon.save(**{"secret-PUBLISHER_POSTMARK_TOKEN": "pm-token-never-logged"})
    wait_until(lambda: "settings reloaded in" in daemon.log.read_text())
    assert "pm-token-never-logged" not in daemon.log.read_text()


def test_a_send_under_way_finishes_with_the_settings_it_started_with(
    tmp_path: Path, smtp_server: SMTPServer
) -> None:
    """The sender's name changes mid-send: every copy of that send keeps the old From."""
    smtp_server.delay = 0.03
    delivery = (
        '[delivery]\nprovider = "smtp"\nconcurrency = 1\nbatch_size = 5\n'
        f'[delivery.smtp]\nhost = "127.0.0.1"\nport = {smtp_server.port}\nsecurity = "none"\nconnections = 1\n'
    )
    pub = Publication(tmp_path, delivery=delivery)
    readers = [f"reader{i}@example.org" for i in range(150)]
    pub.add_readers(*readers)
    schedule(pub, -1)
    pub.start()
    try:
        wait_until(lambda: len(smtp_server.messages) >= 5, timeout=60)
        config_path = tmp_path / "config.toml"
        engine = open_store(load_config(config_path, env=pub.env).store_url)
        try:
            settings_service.save_settings(
                config_path, {"from_name": "Someone Else", "from_address": "news@example.org"},
                fingerprint_seen=fingerprint(config_path.read_text(encoding="utf-8")), who="owner@example.org",
                engine=engine, now=datetime.now(UTC), env={},
            )
        finally:
            engine.dispose()
        wait_until(lambda: "settings reloaded in" in pub.logs(), timeout=20)
        at_reload = len(smtp_server.messages)
        wait_until(lambda: len(smtp_server.counts()) == len(readers), timeout=90)
    finally:
        pub.stop_all()
    assert at_reload < len(readers), "the reload came after the send: slow the server down"
    senders = {str(m.parsed().get("From")) for m in smtp_server.messages}
    assert senders == {"Tester <news@example.org>"}


def test_a_rebuilt_desk_compiles_none_of_its_templates_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app a reload builds reuses the desk's compiled templates: only the first
    build of the process pays for compiling them."""
    import jinja2

    from publisher.web.desk import render

    names = [p.stem for p in (render.default_templates_dir() / "desk").glob("*.html")]
    config = load_config(Path(__file__).resolve().parent.parent / "config.toml", {})
    render.DeskPages(config).check(*names)
    compiled: list[str] = []
    original = jinja2.Environment.compile

    def counting(self: jinja2.Environment, source: str, name: str | None = None, *args: Any, **kw: Any) -> Any:
        compiled.append(name or "")
        return original(self, source, name, *args, **kw)

    monkeypatch.setattr(jinja2.Environment, "compile", counting)
    render.DeskPages(config).check(*names)
    assert names and compiled == []
