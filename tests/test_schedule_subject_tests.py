"""A scheduled send may start as a subject test: the desk's schedule form offers the send
page's fields, and the API's schedule takes `subjects`; both are checked by the same rules."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from desk_support import add_users, csrf_of, quick_hashes, sign_in
from web_support import AppClient, live_server, make_publication

from publisher.config import Config
from publisher.services import access, scheduling, subject_tests
from publisher.store import open_store
from publisher.store import subscribers as subscriber_store
from publisher.web import create_app

SLUG = "notes-on-rest"
ARTICLE = "---\ntitle: Notes on Rest\ndate: 2026-01-05 08:00\n---\n\nRest, and what keeps us from it.\n"
AT = "2099-01-05T07:00"


def publication(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, analytics: bool = True) -> Config:
    quick_hashes(monkeypatch)
    config = make_publication(tmp_path, extra="\n[analytics]\nenabled = true\n" if analytics else "")
    (tmp_path / "content").mkdir(exist_ok=True)
    (tmp_path / "content" / f"2026-01-05-{SLUG}.md").write_text(ARTICLE, encoding="utf-8")
    add_users(config)
    engine = open_store(config.store_url)
    now = datetime.now(UTC)
    for n in range(100):
        subscriber_store.add(engine, f"reader{n}@example.org", now=now)
    engine.dispose()
    return config


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    return publication(tmp_path, monkeypatch)


@pytest.fixture
def desk(config: Config) -> Iterator[tuple[httpx.Client, str]]:
    """The editor signed in over HTTP, and the form's CSRF token."""
    with live_server(create_app(config)) as base, httpx.Client(base_url=base) as http:
        sign_in(http)
        yield http, csrf_of(http.get(f"/desk/articles/{SLUG}").text)


def planned(config: Config) -> subject_tests.TestPlan | None:
    """The subject test kept with the article's pending schedule (None: no schedule or no test)."""
    engine = open_store(config.store_url)
    try:
        pending = scheduling.list_schedules(engine)
        if not pending:
            return None
        return subject_tests.scheduled_plan(config, engine, pending[0].issue_id, None, now=datetime.now(UTC))
    finally:
        engine.dispose()


def test_the_schedule_form_offers_the_subject_test(desk: tuple[httpx.Client, str]) -> None:
    """Subjects A to D, the share, the wait, a time to decide at and what decides."""
    http, _ = desk
    page = http.get(f"/desk/articles/{SLUG}").text
    form = re.search(
        r'<form method="post" action="/desk/articles/[^"]+/schedule#send" id="schedule">.*?</form>', page, re.S
    )
    assert form
    names = set(re.findall(r'name="([^"]+)"', form.group(0)))
    assert {"subject_a", "subject_b", "subject_c", "subject_d", "sample", "wait_hours", "decide_at", "by"} <= names


def test_a_schedule_with_two_subjects_keeps_the_test(config: Config, desk: tuple[httpx.Client, str]) -> None:
    """Two subjects, all readers in the share, decided after six hours by opens."""
    http, csrf = desk
    done = http.post(f"/desk/articles/{SLUG}/schedule", data={
        "csrf": csrf, "at": AT, "timezone": "", "tag": "", "subject_a": "Notes on rest",
        "subject_b": "Why rest is hard", "sample": "100", "wait_hours": "6", "by": "opens",
    })
    assert done.status_code == 303, done.text
    plan = planned(config)
    assert plan is not None
    assert (plan.subjects, plan.sample_percent, plan.wait, plan.metric) == (
        ("Notes on rest", "Why rest is hard"), 100, timedelta(hours=6), "opens",
    )


def test_the_send_panel_says_the_schedule_starts_as_a_subject_test(desk: tuple[httpx.Client, str]) -> None:
    """Scheduled, the panel names the subjects, the share and when the winner is chosen."""
    http, csrf = desk
    done = http.post(f"/desk/articles/{SLUG}/schedule", data={
        "csrf": csrf, "at": AT, "timezone": "", "tag": "", "subject_a": "Notes on rest",
        "subject_b": "Why rest is hard", "sample": "100", "wait_hours": "6",
    })
    assert done.status_code == 303, done.text
    page = http.get(f"/desk/articles/{SLUG}").text
    said = re.search(r'<span id="scheduled-test">(.*?)</span>', page, re.S)
    assert said and " ".join(re.sub(r"<[^>]+>", "", said.group(1)).split()) == (
        "It starts as a subject test: 100% of the readers get “Notes on rest” or “Why rest is hard”, "
        "and the one with more clicks goes to the rest 6 hour(s) after the start."
    )


def test_a_decision_time_is_read_in_the_schedules_zone(config: Config, desk: tuple[httpx.Client, str]) -> None:
    http, csrf = desk
    done = http.post(f"/desk/articles/{SLUG}/schedule", data={
        "csrf": csrf, "at": AT, "timezone": "Europe/Berlin", "tag": "", "subject_a": "One", "subject_b": "Two",
        "sample": "100", "decide_at": "2099-01-05T15:00",
    })
    assert done.status_code == 303, done.text
    plan = planned(config)
    assert plan is not None and plan.at == datetime(2099, 1, 5, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"subject_a": "Only one"}, "give two to four subjects, not 1"),
        ({"subject_a": "Same", "subject_b": "same"}, "two of the subjects are the same"),
        ({"subject_a": "One", "subject_b": "Two", "sample": "lots"}, "sample must be a whole number"),
        ({"subject_a": "One", "subject_b": "Two", "sample": "100", "decide_at": "2099-01-05T07:05"},
         "must be at least 10 minutes after the send starts"),
        ({"subject_a": "One", "subject_b": "Two"}, "the sample would be 20 reader(s)"),
    ],
    ids=["one-subject", "same-twice", "sample-not-a-number", "decided-before-it-starts", "sample-too-small"],
)
def test_a_test_that_cannot_run_is_refused_and_nothing_is_scheduled(
    config: Config, desk: tuple[httpx.Client, str], fields: dict[str, str], said: str
) -> None:
    """Told at the send panel, with what was typed kept in the form."""
    http, csrf = desk
    refused = http.post(f"/desk/articles/{SLUG}/schedule", data={"csrf": csrf, "at": AT, "timezone": "", **fields})
    assert refused.status_code == 400
    error = re.search(r'id="send-error">([^<]*)<', refused.text)
    assert error and said in error.group(1).replace("&#39;", "'"), refused.text
    assert f'name="subject_a" type="text" maxlength="300" value="{fields["subject_a"]}"' in refused.text
    assert planned(config) is None


def api(config: Config) -> tuple[AppClient, dict[str, str]]:
    engine = open_store(config.store_url)
    key = access.create_key(engine, "admin", ["admin"], now=datetime.now(UTC)).token
    return AppClient(create_app(config, engine=engine)), {"authorization": f"Bearer {key}"}


def test_the_api_schedules_a_subject_test(config: Config) -> None:
    client, auth = api(config)
    done = client.post(f"/api/v1/articles/{SLUG}/schedule", headers=auth, json={
        "at": "2099-01-05T07:00", "subjects": ["Notes on rest", "Why rest is hard"], "subject_sample": 100,
        "subject_wait": "2h", "subject_by": "opens",
    })
    assert done.status_code == 201, done.text
    plan = planned(config)
    assert plan is not None
    assert (plan.subjects, plan.sample_percent, plan.wait, plan.metric) == (
        ("Notes on rest", "Why rest is hard"), 100, timedelta(hours=2), "opens",
    )


@pytest.mark.parametrize(
    ("body", "status", "said"),
    [
        ({"subject_sample": 50}, 422, "body.subject_sample: goes with subjects"),
        ({"subjects": ["A", "B"], "subject_wait": "2h", "subject_decide_at": "2099-01-05 12:00"}, 422,
         "give subject_wait or subject_decide_at, not both"),
        ({"subjects": ["A", "a"]}, 400, "two of the subjects are the same"),
        ({"subjects": ["A"]}, 422, "body.subjects: Value should have at least 2 items"),
        ({"subjects": ["A", "B"], "subject_wait": "1m"}, 400, "between 10 minutes and 14 days"),
    ],
    ids=["companion-alone", "wait-and-time", "same-twice", "one-subject", "short-wait"],
)
def test_the_api_refuses_a_test_that_is_not_one(
    config: Config, body: dict[str, object], status: int, said: str
) -> None:
    client, auth = api(config)
    refused = client.post(f"/api/v1/articles/{SLUG}/schedule", headers=auth, json={"at": "2099-01-05T07:00", **body})
    assert refused.status_code == status, refused.text
    assert said in refused.json()["detail"]
    assert planned(config) is None


def test_the_api_refuses_a_test_without_analytics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing could be counted: 400 saying to turn analytics on, nothing scheduled."""
    config = publication(tmp_path, monkeypatch, analytics=False)
    client, auth = api(config)
    refused = client.post(f"/api/v1/articles/{SLUG}/schedule", headers=auth,
                          json={"at": "2099-01-05T07:00", "subjects": ["A", "B"], "subject_sample": 100})
    assert refused.status_code == 400 and "turn on analytics" in refused.json()["detail"]
    assert planned(config) is None
