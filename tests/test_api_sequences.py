"""The API's /sequences: each sequence with its readers at each step, one sequence, and who
is at which step a page at a time, addresses only for a key that may read subscribers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_api import Api

from publisher.services import access, segments, sequences
from publisher.store import subscribers as subs

START = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
STEPS = {"welcome": ("Welcome", "0"), "day-3": ("Three habits", "3d")}


def write_sequence(root: Path, name: str = "welcome", settings: str = "") -> None:
    folder = root / "sequences" / name
    folder.mkdir(parents=True, exist_ok=True)
    for step, (title, delay) in STEPS.items():
        (folder / f"{step}.md").write_text(f"---\ntitle: {title}\ndelay: {delay}\n---\n\nA note.\n")
    if settings:
        (folder / "sequence.toml").write_text(settings)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    """Three readers who joined after the sequence was first seen, each handed the welcome;
    the first unsubscribed afterwards (taken out at the next run)."""
    write_sequence(tmp_path)
    made = Api(tmp_path)
    sequences.run(made.config, made.db, now=START)
    for n in range(3):
        subs.add(made.db, f"r{n}@example.org", now=START + timedelta(minutes=1 + n))
    sequences.run(made.config, made.db, now=START + timedelta(minutes=10))
    subs.remove(made.db, "r0@example.org", now=START + timedelta(minutes=20))
    sequences.run(made.config, made.db, now=START + timedelta(days=1))
    yield made
    made.db.dispose()


@pytest.fixture
def issues_reader(api: Api) -> str:
    return access.create_key(api.db, "issues", ["issues:read"], now=datetime.now(UTC)).token


def test_list_names_each_sequence_with_readers_at_each_step(api: Api, issues_reader: str) -> None:
    """GET /sequences: trigger, steps in order, readers at each step, stopped apart."""
    answer = api.call("GET", "/sequences", issues_reader)
    assert answer.status_code == 200, answer.text
    (found,) = answer.json()["data"]
    assert found["name"] == "welcome" and found["trigger"] == "confirmed" and found["held"] is None
    assert [(s["name"], s["delay"], s["readers"]) for s in found["steps"]] == [("welcome", "at once", 2),
                                                                             ("day-3", "day 3", 0)]
    assert (found["readers"], found["stopped"], found["waiting"], found["finished"]) == (3, 1, 0, 0)
    assert answer.json()["problems"] == []


def test_one_sequence_and_an_unknown_one(api: Api, issues_reader: str) -> None:
    """GET /sequences/{name} is the list's entry; an unknown name is a 404 problem naming the known ones."""
    one = api.call("GET", "/sequences/welcome", issues_reader).json()
    assert one == api.call("GET", "/sequences", issues_reader).json()["data"][0]
    missing = api.call("GET", "/sequences/nope", issues_reader)
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    assert "welcome" in missing.json()["detail"]


def test_a_name_that_cannot_be_a_sequence_is_refused(api: Api, issues_reader: str) -> None:
    """A name with a slash, dot or capital is a 422 problem, never a path on disk."""
    for name in ("..%2Fcontent", "Welcome", ".hidden"):
        answer = api.call("GET", f"/sequences/{name}/readers", issues_reader)
        assert answer.status_code in (404, 422), (name, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"


def test_readers_page_by_page_with_the_house_cursor(api: Api) -> None:
    """Pages of one: each reader once, in the order they entered, with their address
    (the key may read subscribers), step and state."""
    both = access.create_key(api.db, "both", ["issues:read", "subscribers:read"], now=datetime.now(UTC)).token
    seen = []
    after = None
    while True:
        query = {"limit": 1} | ({"starting_after": after} if after is not None else {})
        page = api.call("GET", "/sequences/welcome/readers", both, params=query).json()
        seen.extend((r["email"], r["step"], r["state"]) for r in page["data"])
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        after = page["next_cursor"]
    assert seen == [("r0@example.org", "welcome", "stopped"), ("r1@example.org", "welcome", "active"),
                    ("r2@example.org", "welcome", "active")]


def test_readers_without_the_subscribers_scope_come_without_addresses(api: Api, issues_reader: str) -> None:
    """An issues:read key sees ids and steps; the addresses are null."""
    page = api.call("GET", "/sequences/welcome/readers", issues_reader).json()
    assert [r["email"] for r in page["data"]] == [None, None, None]
    assert all(r["subscriber_id"] >= 1 and r["step"] == "welcome" for r in page["data"])


def test_a_key_with_neither_scope_is_refused(api: Api) -> None:
    """A stats:read key gets 403 on every sequence route."""
    stats_only = access.create_key(api.db, "stats", ["stats:read"], now=datetime.now(UTC)).token
    for path in ("/sequences", "/sequences/welcome", "/sequences/welcome/readers"):
        answer = api.call("GET", path, stats_only)
        assert answer.status_code == 403, path


def test_a_held_sequence_says_why(api: Api, issues_reader: str) -> None:
    """A sequence whose segment is gone shows the segment and why it is held."""
    made = segments.save_segment(api.db, name="europe", now=START, rules={"match": "all", "conditions": []})
    write_sequence(api.config.root, "eu", 'segment = "europe"\n')
    assert api.call("GET", "/sequences/eu", issues_reader).json()["held"] is None
    segments.delete_segment(api.db, made.id)
    found = api.call("GET", "/sequences/eu", issues_reader).json()
    assert found["segment"] == "europe" and "no longer exists" in found["held"]


def test_a_sequence_that_cannot_be_read_is_named_and_the_others_listed(api: Api, issues_reader: str) -> None:
    """A broken step file: the list still answers, naming the file and line."""
    write_sequence(api.config.root, "broken")
    (api.config.root / "sequences" / "broken" / "day-3.md").write_text("---\ntitle: x\n---\n\nno delay\n")
    answer = api.call("GET", "/sequences", issues_reader).json()
    assert [s["name"] for s in answer["data"]] == ["welcome"]
    (problem,) = answer["problems"]
    assert "broken" in problem and "day-3.md" in problem and "delay" in problem
