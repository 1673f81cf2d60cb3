"""Segments: the rule tree's reading and compiling (checked against a Python filter of the
same rows), sends and schedules to a segment, the CLI, the API and the desk's builder."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from desk_support import add_users, csrf_of, quick_hashes, sign_in
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web_support import AppClient, live_server, make_publication

from publisher.cli import cli
from publisher.config import load_config
from publisher.errors import Conflict, InvalidRequest, NotFound
from publisher.services import access, scheduling
from publisher.services import issues as issues_service
from publisher.services import segments as service
from publisher.store import open_store, schedules
from publisher.store import segment_rules as rules
from publisher.store import segments as segment_store
from publisher.store.schema import (
    bounce_messages,
    deliveries,
    engagement,
    issues,
    subscriber_tags,
    subscribers,
)
from publisher.web import create_app

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
TAGS = ("clinicians", "patients", "press")
TOPICS = ("sleep", "diet")
SOURCES = ("web", "cli", "import:old.csv", "api:key1")
ZONES = (None, "Europe/Berlin", "America/New_York")
DAYS_AGO = (0, 2, 9, 40, 400)


@dataclass
class Reader:
    """One generated reader: what the store holds about them, for the Python filter."""

    id: int = 0
    status: str = "active"
    tags: frozenset[str] = frozenset()
    topics: frozenset[str] | None = None
    created_at: datetime = NOW
    source: str = "web"
    timezone: str | None = None
    soft: bool = False
    hard: bool = False
    opened: set[int] = field(default_factory=set)  # issue ids
    clicked: set[int] = field(default_factory=set)


def add_readers(db: sa.Engine, readers: list[Reader]) -> None:
    with db.begin() as conn:
        for n, reader in enumerate(readers):
            reader.id = int(conn.execute(sa.insert(subscribers).values(
                email=f"r{n}-{random.random():.9f}@example.org", name=f"Reader {n}", status=reader.status,
                source=reader.source, timezone=reader.timezone, created_at=reader.created_at,
                updated_at=reader.created_at,
                topics=None if reader.topics is None else ",".join(sorted(reader.topics)),
            ).returning(subscribers.c.id)).scalar_one())
            for tag in reader.tags:
                conn.execute(sa.insert(subscriber_tags).values(subscriber_id=reader.id, tag=tag))
            for kind, flag in (("soft", reader.soft), ("hard", reader.hard)):
                if flag:
                    conn.execute(sa.insert(bounce_messages).values(
                        key=f"{kind}{reader.id}", received_at=NOW, source="pipe", kind=kind, outcome="counted",
                        subscriber_id=reader.id, address="x@example.org", raw=b"",
                    ))


def random_readers(seed: int, count: int) -> list[Reader]:
    pick = random.Random(seed)
    return [
        Reader(
            status=pick.choice(("active", "active", "active", "unsubscribed")),
            tags=frozenset(t for t in TAGS if pick.random() < 0.4),
            topics=None if pick.random() < 0.4 else frozenset(t for t in TOPICS if pick.random() < 0.5),
            created_at=NOW - timedelta(days=pick.choice(DAYS_AGO), hours=pick.randint(0, 5)),
            source=pick.choice(SOURCES),
            timezone=pick.choice(ZONES),
            soft=pick.random() < 0.2,
            hard=pick.random() < 0.1,
        )
        for _ in range(count)
    ]


def holds(item: rules.Condition | rules.Group, reader: Reader) -> bool:
    """The same rules, read in Python: what the SQL must agree with."""
    if isinstance(item, rules.Group):
        results = [holds(child, reader) for child in item.conditions]
        return all(results) if item.match == "all" else any(results)
    value = item.value
    if item.field == "tag":
        return (value in reader.tags) == (item.op == "has")
    if item.field == "topic":
        chose = reader.topics is not None and value in reader.topics
        return {"chose": chose, "gets": reader.topics is None or chose, "not_chose": not chose}[item.op]
    if item.field == "signed_up":
        if item.op in ("before", "after"):
            day = date.fromisoformat(str(value))
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return reader.created_at < start if item.op == "before" else reader.created_at >= start + timedelta(days=1)
        cut = NOW - timedelta(days=int(value or 0))
        return reader.created_at >= cut if item.op == "within_days" else reader.created_at < cut
    if item.field == "source":
        return {"is": reader.source == value, "is_not": reader.source != value,
                "starts_with": reader.source.startswith(str(value))}[item.op]
    if item.field == "timezone":
        return {"unknown": reader.timezone is None, "is": reader.timezone == value,
                "is_not": reader.timezone != value}[item.op]
    if item.field == "bounces":
        return reader.soft if item.op == "soft_bounced" else not (reader.soft or reader.hard)
    raise AssertionError(item)


def matching(db: sa.Engine, tree: rules.Group) -> set[int]:
    with db.connect() as conn:
        found = conn.execute(sa.select(subscribers.c.id).where(rules.compile_rules(tree, now=NOW))).scalars()
        return set(found)


def expected(readers: list[Reader], tree: rules.Group) -> set[int]:
    return {r.id for r in readers if r.status == "active" and holds(tree, r)}


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[sa.Engine, list[Reader]]]:
    db = open_store(f"sqlite:///{tmp_path_factory.mktemp('segments') / 'p.db'}")
    readers = random_readers(7, 120)
    add_readers(db, readers)
    yield db, readers
    db.dispose()


def tree(*conditions: dict[str, Any], match: str = "all") -> rules.Group:
    return rules.parse({"match": match, "conditions": list(conditions)})


# Each condition, against the Python filter

CASES = [
    {"field": "tag", "op": "has", "value": "Clinicians"},
    {"field": "tag", "op": "lacks", "value": "press"},
    {"field": "topic", "op": "chose", "value": "sleep"},
    {"field": "topic", "op": "not_chose", "value": "sleep"},
    {"field": "topic", "op": "gets", "value": "diet"},
    {"field": "signed_up", "op": "before", "value": "2026-11-01"},
    {"field": "signed_up", "op": "after", "value": "2026-11-30"},
    {"field": "signed_up", "op": "within_days", "value": 10},
    {"field": "signed_up", "op": "over_days", "value": 30},
    {"field": "source", "op": "is", "value": "web"},
    {"field": "source", "op": "is_not", "value": "web"},
    {"field": "source", "op": "starts_with", "value": "import:"},
    {"field": "timezone", "op": "is", "value": "Europe/Berlin"},
    {"field": "timezone", "op": "is_not", "value": "Europe/Berlin"},
    {"field": "timezone", "op": "unknown"},
    {"field": "bounces", "op": "soft_bounced"},
    {"field": "bounces", "op": "never_bounced"},
]


@pytest.mark.parametrize("condition", CASES, ids=lambda c: f"{c['field']}-{c['op']}")
def test_each_condition_matches_the_python_filter(
    population: tuple[sa.Engine, list[Reader]], condition: dict[str, Any]
) -> None:
    """Each field and operator picks the readers the Python filter picks, and some but not all."""
    db, readers = population
    chosen = tree(condition)
    assert matching(db, chosen) == expected(readers, chosen)
    assert 0 < len(expected(readers, chosen)) < len(readers)


def test_all_is_and_any_is_or(population: tuple[sa.Engine, list[Reader]]) -> None:
    """"all" keeps readers meeting both conditions, "any" readers meeting either."""
    db, _ = population
    a = {"field": "tag", "op": "has", "value": "clinicians"}
    b = {"field": "source", "op": "is", "value": "web"}
    both, either = matching(db, tree(a, b)), matching(db, tree(a, b, match="any"))
    assert both == matching(db, tree(a)) & matching(db, tree(b))
    assert either == matching(db, tree(a)) | matching(db, tree(b))
    assert both < either


def test_an_empty_tree_is_every_active_reader(population: tuple[sa.Engine, list[Reader]]) -> None:
    """No conditions: every active reader, no one who left."""
    db, readers = population
    assert matching(db, rules.empty()) == {r.id for r in readers if r.status == "active"}


def _conditions() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.builds(lambda op, v: {"field": "tag", "op": op, "value": v}, st.sampled_from(["has", "lacks"]),
                  st.sampled_from(TAGS)),
        st.builds(lambda op, v: {"field": "topic", "op": op, "value": v},
                  st.sampled_from(["chose", "not_chose", "gets"]), st.sampled_from(TOPICS)),
        st.builds(lambda op, d: {"field": "signed_up", "op": op, "value": (NOW - timedelta(days=d)).date().isoformat()},
                  st.sampled_from(["before", "after"]), st.sampled_from(DAYS_AGO)),
        st.builds(lambda op, d: {"field": "signed_up", "op": op, "value": d},
                  st.sampled_from(["within_days", "over_days"]), st.integers(1, 500)),
        st.builds(lambda op, v: {"field": "source", "op": op, "value": v},
                  st.sampled_from(["is", "is_not", "starts_with"]), st.sampled_from([*SOURCES, "im", "api"])),
        st.builds(lambda op, v: {"field": "timezone", "op": op, "value": v},
                  st.sampled_from(["is", "is_not"]), st.sampled_from(ZONES[1:])),
        st.just({"field": "timezone", "op": "unknown"}),
        st.builds(lambda op: {"field": "bounces", "op": op}, st.sampled_from(["soft_bounced", "never_bounced"])),
    )


TREES = st.recursive(
    _conditions(),
    lambda inner: st.builds(
        lambda match, items: {"match": match, "conditions": items},
        st.sampled_from(["all", "any"]), st.lists(inner, max_size=4),
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=TREES)
def test_random_trees_agree_with_the_python_filter(population: tuple[sa.Engine, list[Reader]], raw: Any) -> None:
    """Any tree of AND/OR up to the nesting limit picks exactly the readers the Python filter picks."""
    db, readers = population
    wrapped = raw if "conditions" in raw else {"conditions": [raw]}
    try:
        chosen = rules.parse(wrapped)
    except InvalidRequest as exc:
        assert "nested" in str(exc) or "at most" in str(exc)
        return
    assert matching(db, chosen) == expected(readers, chosen)
    assert rules.parse_text(rules.dumps(chosen)) == chosen


def test_engagement_counts_people_not_machines_in_the_last_issues(tmp_path: Path) -> None:
    """"opened in the last 2 issues" counts a reader's own opens of the two latest issues; a
    machine's open and an open of an older issue do not count."""
    db = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    people = [Reader() for _ in range(4)]
    add_readers(db, people)
    with db.begin() as conn:
        ids = []
        for n in range(3):
            ids.append(int(conn.execute(sa.insert(issues).values(
                key=f"i{n}", kind="article", subject="s", html="", text="", status="done", created_at=NOW,
                enqueued_at=NOW - timedelta(days=10 - n),
            ).returning(issues.c.id)).scalar_one()))
        copy = {}
        for issue_id in ids:
            for person in people:
                copy[issue_id, person.id] = int(conn.execute(sa.insert(deliveries).values(
                    issue_id=issue_id, subscriber_id=person.id, email="x", state="sent", not_before=NOW,
                ).returning(deliveries.c.id)).scalar_one())

        def hit(issue_id: int, person: Reader, kind: str, machine: bool = False) -> None:
            conn.execute(sa.insert(engagement).values(
                delivery_id=copy[issue_id, person.id], subscriber_id=person.id, issue_id=issue_id, kind=kind,
                at=NOW, machine=machine,
            ))

        hit(ids[2], people[0], "open")
        hit(ids[1], people[1], "click")
        hit(ids[2], people[2], "open", machine=True)
        hit(ids[0], people[3], "open")  # too old for "the last 2"
    opened = tree({"field": "engagement", "op": "opened", "value": 2})
    assert matching(db, opened) == {people[0].id}
    either = tree({"field": "engagement", "op": "opened_or_clicked", "value": "2"})
    assert matching(db, either) == {people[0].id, people[1].id}
    assert matching(db, tree({"field": "engagement", "op": "opened", "value": 3})) == {people[0].id, people[3].id}
    db.dispose()


def test_an_any_group_of_tags_and_opens_holds_each_reader_once(tmp_path: Path) -> None:
    """"has a tag or opened the last issue" (one list of ids from each table) holds every
    reader who meets either, once, and only active readers."""
    db = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    press = frozenset({"press"})
    people = [Reader(tags=press), Reader(), Reader(tags=press), Reader(status="unsubscribed")]
    add_readers(db, people)
    with db.begin() as conn:
        issue = int(conn.execute(sa.insert(issues).values(
            key="i", kind="article", subject="s", html="", text="", status="done", created_at=NOW, enqueued_at=NOW,
        ).returning(issues.c.id)).scalar_one())
        for person in people[1:]:
            copy = int(conn.execute(sa.insert(deliveries).values(
                issue_id=issue, subscriber_id=person.id, email="x", state="sent", not_before=NOW,
            ).returning(deliveries.c.id)).scalar_one())
            conn.execute(sa.insert(engagement).values(
                delivery_id=copy, subscriber_id=person.id, issue_id=issue, kind="open", at=NOW, machine=False,
            ))
    either = rules.parse({"match": "any", "conditions": [
        {"field": "tag", "op": "has", "value": "press"}, {"field": "engagement", "op": "opened", "value": 1},
    ]})
    assert matching(db, either) == {people[0].id, people[1].id, people[2].id}
    assert segment_store.count(db, either, now=NOW) == 3
    db.dispose()


# Bad rules


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (
            {"conditions": [{"field": "shoe_size", "op": "is", "value": "9"}]},
            "conditions[0].field: unknown field 'shoe_size'",
        ),
        ({"conditions": [{"field": "tag", "op": "contains", "value": "x"}]}, "conditions[0].op: tag takes has, lacks"),
        ({"conditions": [{"field": "signed_up", "op": "before", "value": "yesterday"}]}, "YYYY-MM-DD"),
        ({"conditions": [{"field": "signed_up", "op": "within_days", "value": -3}]}, "whole number of days"),
        ({"conditions": [{"field": "tag", "op": "has"}]}, "conditions[0].value: give a value"),
        ({"match": "most", "conditions": []}, 'rules.match: must be "all" or "any"'),
        ({"conditions": {"field": "tag"}}, "rules.conditions: must be a list"),
        ([1, 2], "rules: expected a group"),
        ({"conditions": ["tag has x"]}, "conditions[0]: expected a condition"),
        ({"conditions": [{"conditions": [{"conditions": [{"conditions": [{"conditions": []}]}]}]}]}, "nested 4 deep"),
    ],
)
def test_bad_rules_are_refused_naming_the_place(raw: Any, words: str) -> None:
    """A malformed tree, an unknown field or operator, a bad value: InvalidRequest naming where."""
    with pytest.raises(InvalidRequest) as caught:
        rules.parse(raw)
    assert words in str(caught.value)


def test_rules_that_are_not_json_are_refused() -> None:
    """Text that is not JSON is refused with where it breaks."""
    with pytest.raises(InvalidRequest, match="rules: not JSON"):
        rules.parse_text('{"conditions": [')


def test_too_many_conditions_are_refused() -> None:
    """A tree of more than MAX_CONDITIONS conditions is refused, not truncated."""
    many = [{"field": "tag", "op": "has", "value": "x"}] * (rules.MAX_CONDITIONS + 1)
    with pytest.raises(InvalidRequest, match="conditions at most"):
        rules.parse({"conditions": many})


# Saving


def test_a_name_is_unique(tmp_path: Path) -> None:
    """A second segment with the same name is a Conflict naming the field."""
    db = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    service.save_segment(db, name="Clinicians", rules={"conditions": []}, now=NOW)
    with pytest.raises(Conflict, match="name: a segment called 'Clinicians' exists"):
        service.save_segment(db, name="Clinicians", rules={"conditions": []}, now=NOW)
    db.dispose()


def test_an_unknown_segment_names_those_there_are(tmp_path: Path) -> None:
    """Asking for a segment that does not exist lists the ones that do."""
    db = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    service.save_segment(db, name="Clinicians", rules={"conditions": []}, now=NOW)
    with pytest.raises(NotFound, match="no segment called 'clinician': the segments are: Clinicians"):
        service.find_segment(db, "clinician")
    db.dispose()


# Sends, schedules and exports

ARTICLE = """---
title: Notes on Rest
date: 2026-01-05 08:00
---

Some words about rest.
"""

CONFIG = """
[publication]
title = "Segment Test"
url = "https://example.org/"
postal_address = "1 Test Street, Testville"

[newsletter]
from = "Tester <news@example.org>"

[delivery]
provider = "maildir"

[delivery.maildir]
path = "outbox"
"""

CLINICIANS = {"match": "all", "conditions": [{"field": "tag", "op": "has", "value": "clinicians"}]}


class Pub:
    """A publication in a temp folder: one article, a Maildir provider, SQLite."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "content").mkdir()
        (root / "content" / "2026-01-05-notes-on-rest.md").write_text(ARTICLE)
        (root / "config.toml").write_text(CONFIG)
        self.env = {"PUBLISHER_CONFIG": str(root / "config.toml"), "PUBLISHER_SECRET": "k" * 40}
        self.config = load_config(root / "config.toml")
        self.db = open_store(self.config.store_url)

    def readers(self, clinicians: int, others: int) -> None:
        add_readers(self.db, [Reader(tags=frozenset({"clinicians"})) for _ in range(clinicians)])
        add_readers(self.db, [Reader(tags=frozenset({"patients"})) for _ in range(others)])

    def invoke(self, *args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=self.env, catch_exceptions=False)

    def outbox(self) -> int:
        folder = self.root / "outbox" / "new"
        return len(list(folder.iterdir())) if folder.is_dir() else 0

    def issue(self) -> Any:
        with self.db.connect() as conn:
            return conn.execute(sa.select(issues)).one()


@pytest.fixture
def pub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pub]:
    monkeypatch.setenv("PUBLISHER_SECRET", "k" * 40)
    publication = Pub(tmp_path)
    yield publication
    publication.db.dispose()


def test_send_to_a_segment_reaches_its_readers_and_records_its_count(pub: Pub) -> None:
    """`publisher send SLUG --segment NAME` mails the segment's readers only, and the issue
    records the segment and the count that was sent."""
    pub.readers(clinicians=3, others=4)
    service.save_segment(pub.db, name="Clinicians", rules=CLINICIANS, now=NOW)
    result = pub.invoke("send", "notes-on-rest", "--segment", "clinicians", "--yes")
    assert result.exit_code == 0, result.output
    assert "3 new recipient(s) queued for the segment 'clinicians'" in result.output
    assert pub.outbox() == 3
    row = pub.issue()
    assert (row.segment_name, row.segment_count) == ("Clinicians", 3)


def test_the_count_at_send_time_is_what_is_sent(pub: Pub) -> None:
    """A reader who joins the segment after the preview is in the send; the issue records
    the count at the send, not the one the author saw earlier."""
    pub.readers(clinicians=2, others=1)
    service.save_segment(pub.db, name="Clinicians", rules=CLINICIANS, now=NOW)
    assert service.preview(pub.db, CLINICIANS, now=NOW).count == 2
    pub.readers(clinicians=1, others=0)
    queued = issues_service.send_now(pub.config, pub.db, "notes-on-rest", now=NOW, segment="Clinicians")
    assert queued.added == 3
    assert segment_store.issue_segment(pub.db, queued.issue_id) == segment_store.IssueSegment(
        segment_id=1, name="Clinicians", count=3
    )


def test_dry_run_with_a_segment_counts_its_readers(pub: Pub) -> None:
    """--dry-run --segment counts the segment's readers and writes nothing."""
    pub.readers(clinicians=2, others=5)
    service.save_segment(pub.db, name="Clinicians", rules=CLINICIANS, now=NOW)
    result = pub.invoke("send", "notes-on-rest", "--segment", "Clinicians", "--dry-run")
    assert "would send to 2 readers of the segment 'Clinicians'" in result.output
    assert pub.outbox() == 0


def test_send_to_an_unknown_segment_sends_nothing(pub: Pub) -> None:
    """An unknown segment is an error (exit 1) that lists the segments; no row is written."""
    pub.readers(clinicians=1, others=1)
    service.save_segment(pub.db, name="Clinicians", rules=CLINICIANS, now=NOW)
    result = pub.invoke("send", "notes-on-rest", "--segment", "Nurses", "--yes")
    assert result.exit_code == 1
    assert "no segment called 'Nurses': the segments are: Clinicians" in result.output
    with pub.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar_one() == 0


def test_a_tag_and_a_segment_together_are_refused(pub: Pub) -> None:
    """--tag with --segment is a usage error (exit 2)."""
    service.save_segment(pub.db, name="Clinicians", rules=CLINICIANS, now=NOW)
    result = pub.invoke("send", "notes-on-rest", "--segment", "Clinicians", "--tag", "x", "--yes")
    assert result.exit_code == 2
    assert "not both" in result.output


def test_a_subject_test_to_a_segment_is_refused(pub: Pub) -> None:
    """--subject-test with --segment is a usage error (exit 2), not a test sent to everyone."""
    service.save_segment(pub.db, name="Clinicians", rules=CLINICIANS, now=NOW)
    result = pub.invoke("send", "notes-on-rest", "--segment", "Clinicians", "--subject-test", "A",
                        "--subject-test", "B", "--yes")
    assert result.exit_code == 2
    assert "not yet to a --segment" in result.output


def _schedule(pub: Pub, segment: str) -> schedules.Schedule:
    done = scheduling.schedule_send(
        pub.config, pub.db, "notes-on-rest", at="2026-12-08 09:00", now=NOW, tz_name="UTC", segment=segment
    )
    return done.schedule


def test_a_schedule_with_a_segment_sends_its_readers_then(pub: Pub) -> None:
    """A scheduled send to a segment queues the readers the segment holds when it starts,
    and records that count on the issue."""
    pub.readers(clinicians=2, others=3)
    service.save_segment(pub.db, name="Clinicians", rules=CLINICIANS, now=NOW)
    item = _schedule(pub, "Clinicians")
    pub.readers(clinicians=1, others=1)  # joined between scheduling and the start
    started = scheduling.start_schedule(pub.config, pub.db, item, now=item.run_at)
    assert started.queued == 3 and not started.held
    assert pub.issue().segment_count == 3


def test_cli_schedule_with_a_segment_records_it_on_the_issue(pub: Pub) -> None:
    """`publisher schedule SLUG --at ... --segment NAME` says who it goes to and records the segment."""
    service.save_segment(pub.db, name="Clinicians", rules=CLINICIANS, now=NOW)
    result = pub.invoke("schedule", "notes-on-rest", "--at", "2099-01-01 09:00", "--segment", "Clinicians")
    assert result.exit_code == 0, result.output
    assert "It goes to the readers the segment 'Clinicians' holds then." in result.output
    row = pub.issue()
    assert (row.segment_name, row.segment_count) == ("Clinicians", None)


def test_a_segment_deleted_before_its_schedule_runs_holds_it(pub: Pub) -> None:
    """Deleting the segment a schedule names holds the send with a message naming the
    segment; nothing is queued, nobody outside it is mailed."""
    pub.readers(clinicians=2, others=3)
    found = service.save_segment(pub.db, name="Clinicians", rules=CLINICIANS, now=NOW)
    item = _schedule(pub, "Clinicians")
    service.delete_segment(pub.db, found.id)
    started = scheduling.start_schedule(pub.config, pub.db, item, now=item.run_at)
    assert started.queued == 0
    assert "the segment “Clinicians” this issue was to go to has been deleted" in started.held
    assert schedules.get(pub.db, item.id).state == "held"
    with pub.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar_one() == 0


def test_export_a_segment(pub: Pub) -> None:
    """`publisher subscribers export --segment NAME` writes the segment's readers only."""
    pub.readers(clinicians=2, others=3)
    service.save_segment(pub.db, name="Clinicians", rules=CLINICIANS, now=NOW)
    target = pub.root / "clinicians.csv"
    result = pub.invoke("subscribers", "export", str(target), "--segment", "Clinicians")
    assert result.exit_code == 0, result.output
    lines = target.read_text().splitlines()
    assert len(lines) == 3 and all("clinicians" in line for line in lines[1:])


def test_export_of_an_unknown_segment_writes_no_file(pub: Pub) -> None:
    """An unknown segment is told, and no file is left behind."""
    target = pub.root / "out.csv"
    result = pub.invoke("subscribers", "export", str(target), "--segment", "Nobody")
    assert result.exit_code == 1 and "no segment called 'Nobody'" in result.output
    assert not target.exists()


def test_an_unsubscribe_between_preview_and_send_wins(pub: Pub) -> None:
    """A reader who unsubscribes after the preview is not in the send to the segment."""
    pub.readers(clinicians=3, others=0)
    service.save_segment(pub.db, name="Clinicians", rules=CLINICIANS, now=NOW)
    with pub.db.begin() as conn:
        conn.execute(sa.update(subscribers).where(subscribers.c.id == 1).values(status="unsubscribed"))
    queued = issues_service.send_now(pub.config, pub.db, "notes-on-rest", now=NOW, segment="Clinicians")
    assert queued.added == 2


# The API


class Api:
    """The app in-process through httpx, a store, keys of each kind, one article."""

    def __init__(self, root: Path) -> None:
        self.config = make_publication(root)
        (root / "content").mkdir(exist_ok=True)
        (root / "content" / "2026-01-05-notes-on-rest.md").write_text(ARTICLE)
        self.db = open_store(self.config.store_url)
        self.client = AppClient(create_app(self.config, engine=self.db))
        now = datetime.now(UTC)
        self.reader = access.create_key(self.db, "reader", ["subscribers:read"], now=now).token
        self.writer = access.create_key(self.db, "writer", ["subscribers:write"], now=now).token
        self.issues = access.create_key(self.db, "issues", ["issues:write", "issues:read"], now=now).token

    def call(self, method: str, path: str, key: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, f"/api/v1{path}", headers={"authorization": f"Bearer {key}"}, **kwargs)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    made = Api(tmp_path)
    yield made
    made.db.dispose()


def _clinicians(api: Api, clinicians: int, others: int) -> int:
    add_readers(api.db, [Reader(tags=frozenset({"clinicians"})) for _ in range(clinicians)])
    add_readers(api.db, [Reader(tags=frozenset({"patients"})) for _ in range(others)])
    answer = api.call("POST", "/segments", api.writer, json={"name": "Clinicians", "rules": CLINICIANS})
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def test_api_lists_segments_with_their_count(api: Api) -> None:
    """GET /segments names each segment with its rules, in words too, and its count now."""
    _clinicians(api, 3, 2)
    (found,) = api.call("GET", "/segments", api.reader).json()["data"]
    assert (found["name"], found["count"], found["description"]) == ("Clinicians", 3, "tag has clinicians")
    assert found["rules"] == CLINICIANS


def test_api_pages_a_segments_readers_with_cursors(api: Api) -> None:
    """GET /segments/{id}/subscribers pages through the segment's readers with next_cursor."""
    segment_id = _clinicians(api, 5, 4)
    seen: list[int] = []
    cursor: int | None = None
    while True:
        params = {"limit": 2} | ({"starting_after": cursor} if cursor is not None else {})
        page = api.call("GET", f"/segments/{segment_id}/subscribers", api.reader, params=params).json()
        seen += [row["id"] for row in page["data"]]
        assert all("clinicians" in row["tags"] for row in page["data"])
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
    assert len(seen) == 5 == len(set(seen)) and seen == sorted(seen)


def test_api_segments_take_the_subscriber_scopes(api: Api) -> None:
    """Reading segments needs subscribers:read, saving subscribers:write: an issues key gets 403."""
    segment_id = _clinicians(api, 1, 0)
    assert api.call("GET", "/segments", api.issues).status_code == 403
    assert api.call("GET", f"/segments/{segment_id}/subscribers", api.issues).status_code == 403
    assert api.call("POST", "/segments", api.reader, json={"name": "x", "rules": {}}).status_code == 403


def test_api_refuses_a_bad_rule_naming_its_place(api: Api) -> None:
    """A segment with an unknown field is a 400 problem naming the condition, and nothing is saved."""
    answer = api.call("POST", "/segments", api.writer, json={
        "name": "Odd", "rules": {"conditions": [{"field": "shoe_size", "op": "is", "value": "9"}]},
    })
    assert answer.status_code == 400
    assert "conditions[0].field: unknown field 'shoe_size'" in answer.json()["detail"]
    assert api.call("GET", "/segments", api.reader).json()["data"] == []


def test_api_unknown_segment_is_404(api: Api) -> None:
    """A segment id that does not exist is a 404 problem."""
    assert api.call("GET", "/segments/99/subscribers", api.reader).status_code == 404


def test_api_send_to_a_segment_records_it_on_the_issue(api: Api) -> None:
    """POST /issues/{id}/send with a segment queues its readers; the issue shows the segment and count."""
    _clinicians(api, 2, 3)
    made = api.call("POST", "/issues", api.issues, json={"article": "notes-on-rest"}).json()
    sent = api.call("POST", f"/issues/{made['id']}/send", api.issues, json={"segment": "Clinicians"})
    assert sent.status_code == 202, sent.text
    assert sent.json()["added"] == 2
    shown = api.call("GET", f"/issues/{made['id']}", api.issues).json()
    assert shown["segment"] == {"id": 1, "name": "Clinicians", "count": 2}


def test_api_schedule_with_a_segment(api: Api) -> None:
    """POST /issues/{id}/schedule with a segment records it on the issue, its count still to come."""
    _clinicians(api, 2, 3)
    made = api.call("POST", "/issues", api.issues, json={"article": "notes-on-rest"}).json()
    later = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%d %H:%M")
    answer = api.call("POST", f"/issues/{made['id']}/schedule", api.issues,
                      json={"at": later, "timezone": "UTC", "segment": "Clinicians"})
    assert answer.status_code == 201, answer.text
    shown = api.call("GET", f"/issues/{made['id']}", api.issues).json()
    assert shown["segment"] == {"id": 1, "name": "Clinicians", "count": None}


def test_api_send_to_an_unknown_segment_is_404_and_sends_nothing(api: Api) -> None:
    """A send naming no saved segment is a 404 naming the segments there are; no row is written."""
    _clinicians(api, 1, 1)
    made = api.call("POST", "/issues", api.issues, json={"article": "notes-on-rest"}).json()
    sent = api.call("POST", f"/issues/{made['id']}/send", api.issues, json={"segment": "Nurses"})
    assert sent.status_code == 404
    assert "the segments are: Clinicians" in sent.json()["detail"]
    with api.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar_one() == 0


# The desk's builder, over HTTP


@pytest.fixture
def desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, sa.Engine]]:
    quick_hashes(monkeypatch)
    config = make_publication(tmp_path)
    (tmp_path / "content").mkdir(exist_ok=True)
    add_users(config)
    db = open_store(config.store_url)
    add_readers(db, [Reader(tags=frozenset({"clinicians"})) for _ in range(12)])
    add_readers(db, [Reader(tags=frozenset({"patients"})) for _ in range(3)])
    with live_server(create_app(config)) as base:
        yield base, db
    db.dispose()


def _builder(http: httpx.Client, **fields: str) -> httpx.Response:
    page = http.get("/desk/segments/new").text
    return http.post("/desk/segments/build", data={"csrf": csrf_of(page), **fields})


def test_desk_add_condition_rerenders_with_one_more_row(desk: tuple[str, sa.Engine]) -> None:
    """"Add condition" is a POST that shows the conditions typed so far and one more row, without JavaScript."""
    with httpx.Client(base_url=desk[0]) as http:
        sign_in(http)
        answer = _builder(http, **{"c0-what": "tag:has", "c0-value": "clinicians", "action": "add"})
    assert answer.status_code == 200
    assert 'name="c1-what"' in answer.text and 'name="c2-what"' not in answer.text
    assert 'value="clinicians"' in answer.text


def test_desk_shows_the_live_count_and_a_sample_of_ten(desk: tuple[str, sa.Engine]) -> None:
    """Counting shows how many readers match and ten of them; an editor sees no addresses."""
    with httpx.Client(base_url=desk[0]) as http:
        sign_in(http)
        answer = _builder(http, **{"c0-what": "tag:has", "c0-value": "clinicians", "action": "preview"})
    assert '<span id="count">12</span> active readers match now' in answer.text
    assert "The first 10" in answer.text
    assert "@example.org</td>" not in answer.text and "Addresses are shown to owners only" in answer.text


def test_desk_shows_addresses_to_owners(desk: tuple[str, sa.Engine]) -> None:
    """An owner's sample shows each reader's address."""
    with httpx.Client(base_url=desk[0]) as http:
        sign_in(http, "owner@example.org")
        answer = _builder(http, **{"c0-what": "tag:has", "c0-value": "patients", "action": "preview"})
    assert answer.text.count("@example.org</td>") == 3


def test_desk_saves_a_segment_with_a_name(desk: tuple[str, sa.Engine]) -> None:
    """Saving stores the rules under the name, and the list shows it with its count."""
    with httpx.Client(base_url=desk[0]) as http:
        sign_in(http)
        saved = _builder(http, **{"c0-what": "tag:has", "c0-value": "clinicians", "name": "Clinicians",
                                  "action": "save"})
        assert saved.status_code == 303
        listed = http.get("/desk/segments").text
    assert "Clinicians</a>" in listed and "<td>12</td>" in listed
    assert [s.name for s in service.list_segments(desk[1])] == ["Clinicians"]


def test_desk_names_a_bad_value_and_saves_nothing(desk: tuple[str, sa.Engine]) -> None:
    """A date that is not a date is shown beside the form (400), and nothing is saved."""
    with httpx.Client(base_url=desk[0]) as http:
        sign_in(http)
        answer = _builder(http, **{"c0-what": "signed_up:before", "c0-value": "last spring", "name": "Old",
                                   "action": "save"})
    assert answer.status_code == 400
    assert "Conditions[0].value: give a date as YYYY-MM-DD" in answer.text
    assert service.list_segments(desk[1]) == []


def test_desk_viewers_cannot_build_segments(desk: tuple[str, sa.Engine]) -> None:
    """A viewer is refused the builder."""
    with httpx.Client(base_url=desk[0]) as http:
        sign_in(http, "viewer@example.org")
        assert http.get("/desk/segments/new").status_code == 403


def test_desk_confirm_page_sends_to_a_chosen_segment(desk: tuple[str, sa.Engine], tmp_path: Path) -> None:
    """Choosing a segment for Send now shows its count on the confirm page; confirming queues
    that many and the issue records the segment and the count."""
    base, db = desk
    (tmp_path / "content" / "2026-01-05-notes-on-rest.md").write_text(ARTICLE)
    patients = {"conditions": [{"field": "tag", "op": "has", "value": "patients"}]}
    service.save_segment(db, name="Patients", rules=patients, now=NOW)
    with httpx.Client(base_url=base) as http:
        sign_in(http)
        editor = http.get("/desk/articles/notes-on-rest").text
        assert 'value="segment:Patients"' in editor
        token = csrf_of(editor)
        asked = http.post("/desk/articles/notes-on-rest/send", data={"csrf": token, "tag": "segment:Patients"})
        assert "to 3 readers" in asked.text and "of the segment <strong>Patients</strong>" in asked.text
        sent = http.post("/desk/articles/notes-on-rest/send",
                         data={"csrf": token, "tag": "segment:Patients", "confirm": "3"})
    assert sent.status_code == 303
    with db.connect() as conn:
        row = conn.execute(sa.select(issues.c.segment_name, issues.c.segment_count)).one()
    assert tuple(row) == ("Patients", 3)
