"""Desk account rules under concurrency: the sign-in throttle and the last owner, on
SQLite and on PostgreSQL (a throwaway server, or $PUBLISHER_TEST_POSTGRES_URL's)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from desk_support import PASSWORD, add_users, csrf_of
from pg_server import fresh_database, postgres_server
from store_support import POSTGRES_ENV
from web_support import live_server, make_publication

from publisher import accounts
from publisher.accounts import SessionPolicy
from publisher.errors import AccountError, SignInThrottled
from publisher.store import open_store
from publisher.web import create_app

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
POLICY = SessionPolicy(lifetime=timedelta(hours=1), idle=timedelta(hours=1), per_account=5, per_address=20)
ATTEMPTS = 100


class CountingHasher(PasswordHasher):
    """Argon2 with cheap parameters that counts the passwords it checks."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.checked = 0
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        with self._lock:
            self.checked += 1
        return super().verify(hash, password)


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> CountingHasher:
    counting = CountingHasher()
    monkeypatch.setattr(accounts, "_hasher", counting)
    return counting


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    configured = os.environ.get(POSTGRES_ENV)
    if configured:
        yield configured
        return
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'p.db'}"
    server: str = request.getfixturevalue("postgres_url")
    return fresh_database(server, f"accounts_{abs(hash(request.node.name)) % 10**8}")


@pytest.fixture
def engine(store_url: str) -> Iterator[sa.Engine]:
    db = open_store(store_url)
    yield db
    db.dispose()


def all_at_once(count: int, attempt: Callable[[int], Any]) -> list[Any]:
    """`attempt(n)` for n in range(count), each in its own thread, started together."""
    start = threading.Barrier(count)

    def run(n: int) -> Any:
        start.wait()
        try:
            return attempt(n)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def test_parallel_wrong_passwords_reach_the_hash_at_most_the_limit(
    engine: sa.Engine, hasher: CountingHasher
) -> None:
    """100 wrong passwords at once for one account from one client: at most per_account
    of them are checked against the hash, the rest are throttled."""
    accounts.add_user(engine, "dana@example.org", role="owner", password=PASSWORD, now=NOW)
    hasher.checked = 0
    answers = all_at_once(ATTEMPTS, lambda n: accounts.sign_in(
        engine, "dana@example.org", f"guess {n}", address="203.0.113.9", now=NOW, policy=POLICY
    ))
    assert hasher.checked <= POLICY.per_account
    assert sum(isinstance(a, SignInThrottled) for a in answers) == ATTEMPTS - hasher.checked
    assert all(isinstance(a, AccountError) for a in answers)


def test_parallel_guesses_across_accounts_hold_the_clients_limit(
    engine: sa.Engine, hasher: CountingHasher
) -> None:
    """100 wrong passwords at once for 100 accounts from one client: at most per_address checked."""
    hasher.checked = 0
    all_at_once(ATTEMPTS, lambda n: accounts.sign_in(
        engine, f"user{n}@example.org", "guess", address="203.0.113.9", now=NOW, policy=POLICY
    ))
    assert 0 < hasher.checked <= POLICY.per_address


def test_parallel_sign_ins_over_http_hold_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hasher: CountingHasher
) -> None:
    """100 wrong passwords POSTed at once to /desk/login: at most desk.login_failures
    reach the hash check; the others are answered 429."""
    config = make_publication(tmp_path)
    add_users(config)
    hasher.checked = 0
    with live_server(create_app(config)) as base:
        with httpx.Client(base_url=base) as http:
            token = csrf_of(http.get("/desk/login").text)

        def post(n: int) -> int:
            with httpx.Client(base_url=base, timeout=60) as http:
                return http.post(
                    "/desk/login", headers={"cookie": f"desk_login={token}"},
                    data={"csrf": token, "email": "owner@example.org", "password": f"guess {n}"},
                ).status_code

        codes = all_at_once(ATTEMPTS, post)
    limit = int(config["desk.login_failures"])
    assert hasher.checked <= limit
    assert codes.count(400) == hasher.checked and codes.count(429) == ATTEMPTS - hasher.checked


def owners(engine: sa.Engine) -> list[str]:
    return [u.email for u in accounts.list_users(engine) if u.role == "owner"]


def engine_reset(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM users"))


def test_two_owners_removing_each_other_leave_one(engine: sa.Engine, hasher: CountingHasher) -> None:
    """Two owners removing each other at the same moment: one removal is refused, every time."""
    pair = ("ann@example.org", "bo@example.org")
    for _ in range(10):
        engine_reset(engine)
        for email in pair:
            accounts.add_user(engine, email, role="owner", password=PASSWORD, now=NOW)
        answers = all_at_once(2, lambda n: accounts.remove_user(engine, pair[n]))
        assert len(owners(engine)) == 1
        assert sum(isinstance(a, AccountError) and "last owner" in str(a) for a in answers) == 1


def test_two_owners_demoting_each_other_leave_one(engine: sa.Engine, hasher: CountingHasher) -> None:
    """Two owners making each other editors at the same moment: one change is refused."""
    pair = ("ann@example.org", "bo@example.org")
    for _ in range(10):
        engine_reset(engine)
        for email in pair:
            accounts.add_user(engine, email, role="owner", password=PASSWORD, now=NOW)
        answers = all_at_once(2, lambda n: accounts.change_role(engine, pair[n], role="editor", now=NOW))
        assert len(owners(engine)) == 1
        assert sum(isinstance(a, AccountError) for a in answers) == 1
