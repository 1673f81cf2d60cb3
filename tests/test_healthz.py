"""/healthz: one database ping answers every check for a second, a failed one never."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from web_support import make_publication

from publisher.store import open_store
from publisher.web import app as web_app
from publisher.web import create_app


class Pings:
    """Counts pings; each takes `seconds`; `fail` makes the database stop answering."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.count = 0
        self.fail = False
        self._lock = threading.Lock()

    def __call__(self, engine: Engine) -> None:
        with self._lock:
            self.count += 1
        time.sleep(self.seconds)
        if self.fail:
            raise OperationalError("SELECT 1", {}, Exception("database is away"))


@pytest.fixture
def pings(monkeypatch: pytest.MonkeyPatch) -> Pings:
    found = Pings(seconds=0.05)
    monkeypatch.setattr(web_app, "_ping", found)
    return found


def test_checks_arriving_together_share_one_ping(tmp_path: Path, pings: Pings) -> None:
    """Twenty checks at once: one ping, twenty answers of 200."""
    application = create_app(make_publication(tmp_path))

    async def many() -> list[int]:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            answers = await asyncio.gather(*(http.get("/healthz") for _ in range(20)))
        return [answer.status_code for answer in answers]

    assert asyncio.run(many()) == [200] * 20
    assert pings.count == 1


def test_a_ping_answers_for_a_second_then_the_database_is_asked_again(tmp_path: Path) -> None:
    """Within FRESH seconds of a ping no other is made; after it, the next check pings."""
    moment = [0.0]
    pings = Pings()
    engine = open_store(f"sqlite:///{tmp_path / 'h.db'}")
    health = web_app.Health(engine, clock=lambda: moment[0])

    async def checks() -> list[bool]:
        found = [await health.answers()]
        moment[0] += 0.5
        found.append(await health.answers())
        moment[0] += 0.6
        found.append(await health.answers())
        return found

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(web_app, "_ping", pings)
        assert asyncio.run(checks()) == [True, True, True]
    assert pings.count == 2
    engine.dispose()


def test_a_database_that_stops_answering_is_told_at_the_next_check(tmp_path: Path) -> None:
    """A failed ping gives 503 and is never reused: the database back, the next check is 200."""
    moment = [0.0]
    pings = Pings()
    engine = open_store(f"sqlite:///{tmp_path / 'h.db'}")
    health = web_app.Health(engine, clock=lambda: moment[0])

    async def checks() -> list[bool]:
        pings.fail = True
        found = [await health.answers(), await health.answers()]
        pings.fail = False
        found.append(await health.answers())
        return found

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(web_app, "_ping", pings)
        assert asyncio.run(checks()) == [False, False, True]
    assert pings.count == 3
    engine.dispose()
