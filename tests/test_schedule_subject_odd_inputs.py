"""Odd subject tests at the schedule, over HTTP: a field sent as null, a subject longer than
the form allows. Each is refused naming the field, and nothing is scheduled."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx
import pytest
from test_schedule_subject_tests import AT, SLUG, config, desk, planned
from web_support import live_server

from publisher.config import Config
from publisher.services import access
from publisher.store import open_store
from publisher.web import create_app

__all__ = ["config", "desk"]


@pytest.mark.parametrize("field", ["subjects", "subject_wait", "subject_decide_at", "segment"])
def test_the_api_refuses_a_null_subject_test_field_by_name(config: Config, field: str) -> None:
    """null where the document says a value or nothing: 422 naming the field, not a 500."""
    engine = open_store(config.store_url)
    key = access.create_key(engine, "admin", ["admin"], now=datetime.now(UTC)).token
    engine.dispose()
    with live_server(create_app(config)) as base:
        answer = httpx.post(f"{base}/api/v1/articles/{SLUG}/schedule", headers={"authorization": f"Bearer {key}"},
                            json={"at": "2099-01-05T07:00", field: None}, timeout=10)
    assert answer.status_code == 422, answer.text
    assert f"{field} is null: leave it out" in answer.json()["detail"]
    assert planned(config) is None


def test_the_schedule_form_refuses_a_subject_longer_than_300_characters(
    config: Config, desk: tuple[httpx.Client, str]
) -> None:
    """The box holds 300 characters; a longer subject posted anyway is refused as the API
    refuses it, naming the subject, and nothing is scheduled."""
    http, csrf = desk
    refused = http.post(f"/desk/articles/{SLUG}/schedule", data={
        "csrf": csrf, "at": AT, "timezone": "", "sample": "100", "subject_a": "Notes on rest",
        "subject_b": "x" * 301,
    })
    assert refused.status_code == 400
    error = re.search(r'id="send-error">([^<]*)<', refused.text)
    assert error and "subject B is 301 characters long: keep each subject to 300" in error.group(1), refused.text
    assert planned(config) is None
