"""Fifty link checks against sites that drip leave the app answering: /healthz over real HTTP."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from desk_support import add_users, quick_hashes, sign_in
from hostile_servers import Hostile, drip
from test_desk_pages import ARTICLE, editor_form
from web_support import live_server, make_publication

from publisher.config import Config
from publisher.mail import preflight
from publisher.web import create_app

CHECKS = 50
LINKS = 5
# A check's deadline, the p99 bound below: a /healthz held up by checks would wait at
# least one whole deadline, while a machine that is merely busy stays under it. Fifty
# checks take their turns (32 at once, links on a shared pool), so the last returns
# within ten deadlines.
DEADLINE = 4.0


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    with drip(interval=0.5, lifetime=60) as server:
        yield server


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hostile: Hostile) -> Config:
    quick_hashes(monkeypatch)
    config = make_publication(tmp_path, extra="\n[fetch]\nallow_private = true\ntimeout = 2\n")
    links = " ".join(f"[link {n}]({hostile.url}/{n})" for n in range(LINKS))
    (tmp_path / "content").mkdir(exist_ok=True)
    (tmp_path / "content" / "2026-01-05-sleep-after-a-loss.md").write_text(ARTICLE + f"\n{links}\n", encoding="utf-8")
    add_users(config)
    monkeypatch.setattr(preflight, "_spam_score", lambda message: None)
    monkeypatch.setattr(preflight, "look_up", lambda names, resolver=None: dict.fromkeys(names, "not asked here"))
    monkeypatch.setattr(preflight, "CHECK_SECONDS", DEADLINE)
    return config


def test_healthz_answers_during_fifty_hostile_link_checks(config: Config, hostile: Hostile) -> None:
    """50 "Check links and DNS too" at once, every link dripping a byte each 0.5 s: /healthz
    stays quick (p99 under a check's deadline) and every check returns in its turn."""
    with live_server(create_app(config)) as url, httpx.Client(base_url=url, timeout=60) as http:
        sign_in(http)
        form = {**editor_form(http.get("/desk/articles/sleep-after-a-loss").text), "action": "check-all"}
        answers: list[tuple[int, float]] = []

        def check() -> None:
            started = time.monotonic()
            with httpx.Client(base_url=url, cookies=http.cookies, timeout=60) as own:
                status = own.post("/desk/articles/sleep-after-a-loss", data=form).status_code
            answers.append((status, time.monotonic() - started))

        workers = [threading.Thread(target=check) for _ in range(CHECKS)]
        for worker in workers:
            worker.start()
        health: list[float] = []
        with httpx.Client(base_url=url, timeout=30) as probe:
            while any(w.is_alive() for w in workers) and len(health) < 400:
                started = time.monotonic()
                assert probe.get("/healthz").status_code == 200
                health.append(time.monotonic() - started)
                time.sleep(0.02)
        for worker in workers:
            worker.join(60)
    ordered = sorted(health)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    print(f"/healthz during {CHECKS} hostile checks: p50 {statistics.median(health) * 1000:.1f} ms, "
          f"p99 {p99 * 1000:.1f} ms ({len(health)} requests); slowest check {max(t for _, t in answers):.1f} s")
    assert [s for s, _ in answers] == [200] * CHECKS
    assert len(hostile.connections) >= LINKS
    assert p99 < DEADLINE
    assert max(t for _, t in answers) < 10 * DEADLINE
