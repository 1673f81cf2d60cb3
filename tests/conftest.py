"""Fixtures shared by every test module: loopback servers standing in for providers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fakes import FakeAPI, SMTPServer


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    """A real SMTP server on 127.0.0.1 (ephemeral port) recording every message."""
    server = SMTPServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_api() -> Iterator[FakeAPI]:
    """A scriptable HTTP API on 127.0.0.1 recording every request (see fakes.http_api)."""
    api = FakeAPI().start()
    try:
        yield api
    finally:
        api.close()
