"""Helpers for the desk's tests: a publication with desk users, and signing in over HTTP."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher

from publisher import accounts
from publisher.config import Config
from publisher.store import open_store

PASSWORD = "a long enough passphrase"
USERS = {"owner@example.org": "owner", "editor@example.org": "editor", "viewer@example.org": "viewer"}


def quick_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap Argon2 parameters: the tests check behaviour, not the cost. The stand-in hash
    checked for an unknown address is made cheap too (its parameters are its own)."""
    quick = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    monkeypatch.setattr(accounts, "_hasher", quick)
    monkeypatch.setattr(accounts, "_DUMMY_HASH", quick.hash("nobody's password"))


def add_users(config: Config) -> None:
    engine = open_store(config.store_url)
    try:
        for email, role in USERS.items():
            accounts.add_user(engine, email, role=role, password=PASSWORD, now=datetime.now(UTC))
    finally:
        engine.dispose()


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF field on the page"
    return found.group(1)


def sign_in(http: httpx.Client, email: str = "editor@example.org", password: str = PASSWORD) -> httpx.Response:
    form = http.get("/desk/login")
    return http.post(
        "/desk/login", data={"csrf": csrf_of(form.text), "email": email, "password": password, "next": "/desk/"}
    )


def content_dir(root: Path) -> Path:
    folder = root / "content"
    folder.mkdir(exist_ok=True)
    return folder
