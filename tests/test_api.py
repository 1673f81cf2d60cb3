"""The HTTP API at /api/v1: keys, scopes, problems, idempotency, and each resource once."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from openapi_spec_validator import validate
from web_support import SECRET, AppClient, live_server, make_publication, outbox

from publisher.cli import cli
from publisher.config import load_config
from publisher.delivery import engine
from publisher.delivery.maildir import MaildirProvider
from publisher.mail.mime import Recipient
from publisher.services import access, issues, scheduling, subscribers
from publisher.store import open_store
from publisher.store.schema import api_keys as api_keys_table
from publisher.store.schema import deliveries
from publisher.store.schema import subscribers as subscribers_table
from publisher.web import create_app

ARTICLE = """---
title: Notes on Rest
date: 2026-01-05 08:00
---

Some words about rest.
"""


class Api:
    """The app in-process, a store, and keys of every kind."""

    def __init__(self, root: Path, *, extra: str = "", delivery: str = "") -> None:
        self.config = make_publication(root, extra=extra)
        if delivery:
            path = root / "config.toml"
            path.write_text(path.read_text().replace('provider = "maildir"\n', f'provider = "maildir"\n{delivery}'))
            self.config = load_config(path, env={"PUBLISHER_SECRET": SECRET})
        content = root / "content"
        content.mkdir(exist_ok=True)
        (content / "2026-01-05-notes-on-rest.md").write_text(ARTICLE)
        self.db = open_store(self.config.store_url)
        self.app = create_app(self.config, engine=self.db)
        self.client = AppClient(self.app)
        now = datetime.now(UTC)
        self.admin = access.create_key(self.db, "admin", ["admin"], now=now).token
        self.reader = access.create_key(self.db, "reader", ["subscribers:read"], now=now).token
        self.writer = access.create_key(self.db, "writer", ["subscribers:write", "subscribers:read"], now=now).token
        self.revoked = access.create_key(self.db, "gone", ["admin"], now=now).token
        access.revoke_key(self.db, "gone", now=now)

    def call(self, method: str, path: str, key: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if key is not None:
            headers["authorization"] = f"Bearer {key}"
        return self.client.request(method, f"/api/v1{path}", headers=headers, **kwargs)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    made = Api(tmp_path)
    yield made
    made.db.dispose()


def _operations(api: Api) -> list[tuple[str, str, str | None]]:
    """Every (method, path with ids filled in, scope) of the OpenAPI document."""
    spec = api.call("GET", "/openapi.json").json()
    found = []
    for path, operations in spec["paths"].items():
        concrete = re.sub(r"\{[a-z_]+_id\}", "1", path).replace("{slug}", "notes-on-rest")
        for method in operations:
            found.append((method.upper(), concrete, path))
    return found


def test_openapi_document_is_valid_3_1(api: Api) -> None:
    """The generated document passes openapi-spec-validator and declares errors as problem+json."""
    spec = api.call("GET", "/openapi.json").json()
    validate(spec)
    assert spec["openapi"].startswith("3.1")
    answer = spec["paths"]["/subscribers/{subscriber_id}"]["get"]["responses"]["404"]
    assert list(answer["content"]) == ["application/problem+json"]


def test_every_route_refuses_bad_keys_alike_and_changes_nothing(api: Api) -> None:
    """No key, a wrong key and a revoked key get the same 401 on every route; nothing changes."""
    before = subscribers.counts(api.db)
    wrong = api.admin[:-1] + ("x" if api.admin[-1] != "x" else "y")
    operations = _operations(api)
    assert len(operations) >= 25
    for method, path, _ in operations:
        answers = [
            api.call(method, path, key, json={}) for key in (None, "pub_nope", api.revoked, wrong)
        ]
        assert {(a.status_code, a.content) for a in answers} == {(answers[0].status_code, answers[0].content)}, path
        assert answers[0].status_code == 401 and answers[0].headers["www-authenticate"].startswith("Bearer")
        assert answers[0].headers["content-type"] == "application/problem+json"
    assert subscribers.counts(api.db) == before


def test_every_route_refuses_a_key_without_its_scope(api: Api) -> None:
    """A key lacking the route's scope gets 403 on every route but the reads it may make."""
    stats_only = access.create_key(api.db, "stats", ["stats:read"], now=datetime.now(UTC)).token
    subscribers_only = api.reader
    for method, path, template in _operations(api):
        key = subscribers_only if template.startswith("/stats") else stats_only
        answer = api.call(method, path, key, json={})
        assert answer.status_code == 403, (method, path)
        assert answer.json()["type"] == "urn:publisher:problem:forbidden"


def test_unknown_subscriber_is_a_problem_document(api: Api) -> None:
    """A NotFound from the service layer is a 404 problem with a stable type."""
    answer = api.call("GET", "/subscribers/999", api.reader)
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"] == "urn:publisher:problem:not-found"
    assert "999" in answer.json()["detail"]


def test_double_opt_in_adds_pending_and_mails_the_link(api: Api) -> None:
    """The default create adds a pending subscriber and sends the confirmation mail."""
    answer = api.call("POST", "/subscribers", api.writer, json={"email": "Ada@Example.org", "name": "Ada"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "pending" and answer.json()["email"] == "ada@example.org"
    [mail] = outbox(api.config)
    assert mail["To"] == "ada@example.org" and "/confirm/" in mail.get_body(("plain",)).get_content()


def test_adding_without_opt_in_needs_admin_and_a_note(api: Api) -> None:
    """double_opt_in false: 403 without admin, 422 naming consent_note without one, then an active subscriber."""
    body = {"email": "bo@example.org", "double_opt_in": False}
    noted = {**body, "consent_note": "signed up at the talk"}
    assert api.call("POST", "/subscribers", api.writer, json=noted).status_code == 403
    refused = api.call("POST", "/subscribers", api.admin, json=body)
    assert refused.status_code == 422 and "consent_note" in refused.json()["detail"]
    answer = api.call("POST", "/subscribers", api.admin, json=noted)
    assert answer.status_code == 201 and answer.json()["status"] == "active"
    assert outbox(api.config) == []


def test_pages_walk_the_list_with_the_cursor(api: Api) -> None:
    """next_cursor leads through every subscriber once."""
    now = datetime.now(UTC)
    for n in range(5):
        subscribers.subscribe(api.db, f"r{n}@example.org", now=now)
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = api.call("GET", "/subscribers", api.reader, params=params).json()
        seen += [s["email"] for s in page["data"]]
        if not page["has_more"]:
            break
        params["starting_after"] = page["next_cursor"]
    assert seen == [f"r{n}@example.org" for n in range(5)]


def test_a_retried_post_gets_the_first_answer(api: Api) -> None:
    """Same Idempotency-Key and body: the stored answer again, the action not redone."""
    headers = {"idempotency-key": "add-ada-1"}
    first = api.call("POST", "/subscribers", api.writer, json={"email": "ada@example.org"}, headers=headers)
    again = api.call("POST", "/subscribers", api.writer, json={"email": "ada@example.org"}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert len(outbox(api.config)) == 1


def test_an_idempotency_key_reused_with_another_body_is_a_conflict(api: Api) -> None:
    """The same key for a different request is refused with 409 and does nothing."""
    headers = {"idempotency-key": "k1"}
    api.call("POST", "/subscribers", api.writer, json={"email": "ada@example.org"}, headers=headers)
    other = api.call("POST", "/subscribers", api.writer, json={"email": "bo@example.org"}, headers=headers)
    assert other.status_code == 409
    assert other.json()["type"] == "urn:publisher:problem:idempotency-key-reused"
    with pytest.raises(Exception, match="no subscriber"):
        subscribers.get_subscriber(api.db, "bo@example.org")


def test_a_refused_request_does_not_use_up_its_idempotency_key(api: Api) -> None:
    """A 403 is not stored: the same key works once the request is allowed."""
    headers = {"idempotency-key": "k2"}
    body = {"email": "a@example.org"}
    assert api.call("POST", "/subscribers", api.reader, json=body, headers=headers).status_code == 403
    assert api.call("POST", "/subscribers", api.writer, json=body, headers=headers).status_code == 201


def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    """Past api.rate_limit requests a minute, a key gets 429 and a Retry-After."""
    limited = Api(tmp_path, extra="\n[api]\nrate_limit = 3\n")
    answers = [limited.call("GET", "/tags", limited.reader).status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    last = limited.call("GET", "/tags", limited.reader)
    assert int(last.headers["retry-after"]) >= 1
    assert limited.call("GET", "/tags", limited.writer).status_code == 200  # another key, its own count
    limited.db.dispose()


def test_bulk_import_job_reports_rows_and_rejections(api: Api) -> None:
    """An import runs as a job; its record lists the rejected row with its number."""
    records = [{"email": "a@example.org"}, {"email": "not an address"}, {"email": "b@example.org", "tags": ["x"]}]
    started = api.call("POST", "/imports", api.writer, json={"subscribers": records})
    assert started.status_code == 202, started.text
    job = started.json()
    deadline = time.monotonic() + 10
    while job["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
        job = api.call("GET", f"/imports/{job['id']}", api.reader).json()
    assert (job["state"], job["imported"], job["rejected_count"]) == ("done", 2, 1)
    assert job["rejected"][0]["row"] == 2 and "not a valid address" in job["rejected"][0]["reason"]


def test_csv_import_job(api: Api) -> None:
    """CSV text goes through the same importer as the CLI."""
    started = api.call("POST", "/imports", api.writer, json={"csv": "email,name\nc@example.org,Cy\n"}).json()
    deadline = time.monotonic() + 10
    while started["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
        started = api.call("GET", f"/imports/{started['id']}", api.reader).json()
    assert (started["state"], started["imported"], started["format"]) == ("done", 1, "csv")
    assert subscribers.get_subscriber(api.db, "c@example.org").name == "Cy"


def test_articles_are_written_into_content(api: Api) -> None:
    """POST writes the Markdown file; GET reads it back with its state; a bad one is a 422."""
    text = "---\ntitle: Walking Daily\ndate: 2026-02-01 08:00\n---\n\nWalk.\n"
    made = api.call("POST", "/articles", api.admin, json={"markdown": text})
    assert made.status_code == 201, made.text
    assert made.json()["state"] == "published" and made.json()["markdown"] == text
    assert (api.config.root / "content" / "2026-02-01-walking-daily.md").read_text() == text
    bad = api.call("POST", "/articles", api.admin, json={"markdown": "---\ntitle: [\n---\n"})
    assert bad.status_code == 422 and bad.json()["type"] == "urn:publisher:problem:invalid-content"
    shown = api.call("GET", "/articles/walking-daily/preview", api.admin).json()
    assert "Walk." in shown["html"]


def test_issue_send_schedule_and_cancel(api: Api) -> None:
    """Create an issue, queue it, schedule it in local time, then cancel what is left."""
    subscribers.subscribe(api.db, "ada@example.org", now=datetime.now(UTC))
    made = api.call("POST", "/issues", api.admin, json={"article": "notes-on-rest"}).json()
    queued = api.call("POST", f"/issues/{made['id']}/send", api.admin)
    assert queued.status_code == 202 and queued.json()["added"] == 1
    planned = api.call("POST", f"/issues/{made['id']}/schedule", api.admin,
                       json={"at": "2099-01-01 09:00", "local_time": True})
    assert planned.status_code == 201 and planned.json()["timezone"] == "local"
    cancelled = api.call("POST", f"/issues/{made['id']}/cancel", api.admin).json()
    assert cancelled["rows"] == 1 and [s["state"] for s in cancelled["schedules"]] == ["cancelled"]
    status = api.call("GET", f"/issues/{made['id']}", api.admin).json()
    assert status["counts"]["skipped"] == 1


def test_schedule_in_the_past_is_refused(api: Api) -> None:
    """Same rule as the CLI: a time already gone is a 400 that says to send now."""
    made = api.call("POST", "/issues", api.admin, json={"article": "notes-on-rest"}).json()
    answer = api.call("POST", f"/issues/{made['id']}/schedule", api.admin, json={"at": "2001-01-01 09:00"})
    assert answer.status_code == 400 and "in the past" in answer.json()["detail"]


def test_api_unsubscribe_during_a_send_wins(tmp_path: Path) -> None:
    """A reader unsubscribed through the API while a send runs gets nothing claimed after it."""
    made = Api(tmp_path, delivery="concurrency = 1\nbatch_size = 2\n")
    now = datetime.now(UTC)
    for n in range(6):
        subscribers.subscribe(made.db, f"r{n}@example.org", now=now)
    leaving = subscribers.get_subscriber(made.db, "r5@example.org")
    queued = issues.send_now(made.config, made.db, "notes-on-rest", now=now)
    told: list[int] = []

    class Slow(MaildirProvider):
        def send(self, template: Any, recipients: Sequence[Recipient], *, now: datetime) -> Any:
            if not told:
                answer = httpx.post(f"{url}/api/v1/subscribers/{leaving.id}/unsubscribe",
                                    headers={"authorization": f"Bearer {made.writer}"})
                told.append(answer.status_code)
            return super().send(template, recipients, now=now)

    with live_server(made.app) as url:
        engine.deliver(made.config, made.db, Slow.from_config(made.config), stop=threading.Event(),
                       issue_id=queued.issue_id, linger=0.0)
    assert told == [200]
    with made.db.connect() as conn:
        states = dict(conn.execute(
            sa.select(deliveries.c.email, deliveries.c.state).where(deliveries.c.issue_id == queued.issue_id)
        ).all())
    assert states["r5@example.org"] == "skipped"
    assert "r5@example.org" not in {m["To"] for m in outbox(made.config)}
    made.db.dispose()


def test_stats_count_the_day(api: Api) -> None:
    """Today's joins show in /stats/subscribers."""
    subscribers.subscribe(api.db, "ada@example.org", now=datetime.now(UTC))
    days = api.call("GET", "/stats/subscribers", api.admin, params={"days": 2}).json()["data"]
    assert [d["joined"] for d in days] == [0, 1]


def test_validation_errors_are_problems(api: Api) -> None:
    """A body missing a field is a 422 problem naming the field."""
    answer = api.call("POST", "/subscribers", api.writer, json={"name": "no address"})
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    assert "email" in answer.json()["detail"]


def test_subscribers_table_untouched_by_refusals(api: Api) -> None:
    """A refused write leaves the table as it was (checked in SQL, not through the API)."""
    api.call("DELETE", "/subscribers/1", api.reader)
    with api.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(subscribers_table)).scalar_one() == 0



def test_keys_cli_shows_a_key_once_and_revokes_it(api: Api) -> None:
    """`keys create` prints the key once; `keys list` never shows it; after `keys revoke` it is refused."""
    env = {"PUBLISHER_CONFIG": str(api.config.path), "PUBLISHER_SECRET": SECRET}
    runner = CliRunner()
    made = runner.invoke(cli, ["keys", "create", "zapier", "--scope", "subscribers:read"], env=env)
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()
    assert api.call("GET", "/tags", token).status_code == 200
    listed = runner.invoke(cli, ["keys", "list"], env=env).output
    assert "zapier" in listed and token not in listed and token[-20:] not in listed
    with api.db.connect() as conn:
        stored = " ".join(str(v) for row in conn.execute(sa.select(api_keys_table)) for v in row)
    assert token not in stored
    assert runner.invoke(cli, ["keys", "revoke", "zapier"], env=env).exit_code == 0
    assert api.call("GET", "/tags", token).status_code == 401
    bad = runner.invoke(cli, ["keys", "create", "zapier", "--scope", "subscribers:read"], env=env)
    assert bad.exit_code == 1 and "exists already" in bad.output


def _readme_routes() -> list[tuple[str, str, str]]:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("<!-- api:start -->") : readme.index("<!-- api:end -->")]
    return [
        (m.group(1), m.group(2), m.group(3))
        for m in re.finditer(r"^\| `(\w+) (\S+)` \| ([a-z:]+) \|", table, re.MULTILINE)
    ]


def test_readme_lists_every_route_with_the_scope_it_takes(api: Api) -> None:
    """README's route table is the OpenAPI document's operations, and each scope it names is enough."""
    documented = _readme_routes()
    assert sorted((m, p) for m, p, _ in documented) == sorted((m, t) for m, _, t in _operations(api))
    keys: dict[str, str] = {}
    for method, path, scope in documented:
        if scope not in keys:
            keys[scope] = access.create_key(api.db, scope.replace(":", "-"), [scope], now=datetime.now(UTC)).token
        concrete = re.sub(r"\{[a-z_]+_id\}", "999", path).replace("{slug}", "no-such-article")
        answer = api.call(method, concrete, keys[scope], json={})
        assert answer.status_code not in (401, 403), (method, path, answer.text)


def test_failures_list_each_recipient_with_the_reason(api: Api) -> None:
    """/issues/{id}/failures names the failed recipient and the provider's answer."""
    subscribers.subscribe(api.db, "ada@example.org", now=datetime.now(UTC))
    made = api.call("POST", "/issues", api.admin, json={"article": "notes-on-rest"}).json()
    api.call("POST", f"/issues/{made['id']}/send", api.admin)
    with api.db.begin() as conn:
        conn.execute(sa.update(deliveries).values(state="failed", attempts=5, detail="550 no such user"))
    found = api.call("GET", f"/issues/{made['id']}/failures", api.admin).json()["data"]
    assert [(f["email"], f["state"], f["reason"]) for f in found] == [("ada@example.org", "failed", "550 no such user")]


# What a write-only key reads back


@pytest.fixture
def write_only(api: Api) -> str:
    return access.create_key(api.db, "write-only", ["subscribers:write"], now=datetime.now(UTC)).token


def test_a_write_only_key_reads_nothing_back_from_a_repeated_post(api: Api, write_only: str) -> None:
    """POSTing an address already on the list answers what was sent, not the record (nor its id)."""
    subscribers.subscribe(api.db, "ada@example.org", name="Ada Lovelace", tags=["vip"],
                          timezone="Europe/London", now=datetime.now(UTC))
    answer = api.call("POST", "/subscribers", write_only, json={"email": "ada@example.org"})
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"email": "ada@example.org"}
    assert "etag" not in answer.headers


def test_a_write_only_key_reads_nothing_back_from_a_patch(api: Api, write_only: str) -> None:
    """An empty PATCH, or one changing a field, answers the id and the fields sent, no more."""
    known = subscribers.subscribe(api.db, "ada@example.org", name="Ada Lovelace", tags=["vip"],
                                  now=datetime.now(UTC)).subscriber
    assert api.call("PATCH", f"/subscribers/{known.id}", write_only, json={}).json() == {"id": known.id}
    answer = api.call("PATCH", f"/subscribers/{known.id}", write_only, json={"timezone": "Europe/Paris"})
    assert answer.json() == {"id": known.id, "timezone": "Europe/Paris"}
    unsubscribed = api.call("POST", f"/subscribers/{known.id}/unsubscribe", write_only)
    assert unsubscribed.json() == {"id": known.id}


def test_a_key_that_may_read_gets_the_whole_record(api: Api) -> None:
    """With subscribers:read too, a write answers the subscriber as stored."""
    known = subscribers.subscribe(api.db, "ada@example.org", name="Ada", now=datetime.now(UTC)).subscriber
    answer = api.call("PATCH", f"/subscribers/{known.id}", api.writer, json={}).json()
    assert (answer["name"], answer["status"]) == ("Ada", "active")


def test_an_empty_patch_changes_nothing(api: Api) -> None:
    """PATCH {} leaves updated_at as it was."""
    known = subscribers.subscribe(api.db, "ada@example.org", now=datetime(2026, 1, 1, tzinfo=UTC)).subscriber
    assert api.call("PATCH", f"/subscribers/{known.id}", api.writer, json={}).status_code == 200
    with api.db.connect() as conn:
        assert conn.execute(sa.select(subscribers_table.c.updated_at)).scalar_one() == datetime(2026, 1, 1, tzinfo=UTC)


# Conditional writes


def test_a_patch_with_a_stale_if_match_is_refused(api: Api) -> None:
    """The ETag of a GET lets one PATCH through; after it, the same ETag gets 412 and changes nothing."""
    known = subscribers.subscribe(api.db, "ada@example.org", now=datetime.now(UTC)).subscriber
    tag = api.call("GET", f"/subscribers/{known.id}", api.writer).headers["etag"]
    first = api.call("PATCH", f"/subscribers/{known.id}", api.writer, json={"name": "Ada"},
                     headers={"if-match": tag})
    assert first.status_code == 200 and first.headers["etag"] != tag
    second = api.call("PATCH", f"/subscribers/{known.id}", api.writer, json={"name": "Bo"},
                      headers={"if-match": tag})
    assert second.status_code == 412 and second.json()["type"] == "urn:publisher:problem:precondition-failed"
    assert subscribers.get_subscriber(api.db, known.id).name == "Ada"


def test_a_put_with_a_stale_if_match_is_refused(api: Api) -> None:
    """An article's ETag is its file's version: a PUT naming an older one gets 412, the file stays."""
    tag = api.call("GET", "/articles/notes-on-rest", api.admin).headers["etag"]
    changed = ARTICLE.replace("Some words", "Other words")
    done = api.call("PUT", "/articles/notes-on-rest", api.admin, json={"markdown": changed},
                    headers={"if-match": tag})
    assert done.status_code == 200, done.text
    again = api.call("PUT", "/articles/notes-on-rest", api.admin, json={"markdown": ARTICLE},
                     headers={"if-match": tag})
    assert again.status_code == 412
    assert (api.config.root / "content" / "2026-01-05-notes-on-rest.md").read_text() == changed


# Scheduling


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"at": "2099-13-45 09:00"}, "at"),
        ({"at": "2099-01-01 09:00", "timezone": "Mars/Olympus_Mons"}, "timezone"),
    ],
)
def test_a_schedule_with_a_bad_date_or_zone_is_a_422_naming_the_field(
    api: Api, body: dict[str, str], field: str
) -> None:
    """Not a 503: the caller's value is wrong, and the problem says which."""
    made = api.call("POST", "/issues", api.admin, json={"article": "notes-on-rest"}).json()
    answer = api.call("POST", f"/issues/{made['id']}/schedule", api.admin, json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["loc"] == ["body", field] and field in answer.json()["detail"]


def test_a_schedule_says_whether_it_is_in_local_time(api: Api) -> None:
    """local_time is a boolean; the wall-clock time the author gave is wall_clock."""
    made = api.call("POST", "/issues", api.admin, json={"article": "notes-on-rest"}).json()
    planned = api.call("POST", f"/issues/{made['id']}/schedule", api.admin,
                       json={"at": "2099-01-01 09:00", "timezone": "Europe/Berlin"}).json()
    assert (planned["local_time"], planned["wall_clock"], planned["timezone"]) == (
        False, "2099-01-01 09:00", "Europe/Berlin"
    )


# Answers the fuzzer found wrong


def test_a_body_too_large_is_a_problem_document(api: Api) -> None:
    """413 answers application/problem+json like every other refusal, not plain text."""
    answer = api.call("POST", "/subscribers", api.writer, content=b"x" * 2_000_000,
                      headers={"content-type": "application/json"})
    assert answer.status_code == 413
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"] == "urn:publisher:problem:too-large"


@pytest.mark.parametrize("path", ["/articles/a%0Ab/preview", "/articles/x%0A%0Dy", "/subscribers/%0A1/export"])
def test_a_path_with_an_encoded_newline_is_a_problem_document(api: Api, path: str) -> None:
    """A newline inside a path segment reaches the API and gets its problem answer."""
    answer = api.call("GET", path, api.admin)
    assert answer.status_code in (404, 422)
    assert answer.headers["content-type"] == "application/problem+json"


def test_405_lists_every_method_the_path_takes(api: Api) -> None:
    """Allow names the methods of every route on the path, HEAD with GET."""
    answer = api.call("POST", "/subscribers/1", api.admin)
    assert answer.status_code == 405
    assert answer.headers["allow"] == "DELETE, GET, HEAD, PATCH"
    assert api.call("DELETE", "/subscribers", api.admin).headers["allow"] == "GET, HEAD, POST"


def test_head_answers_like_get_without_a_body(api: Api) -> None:
    """HEAD works wherever GET does: the same status and headers, no body."""
    got = api.call("GET", "/tags", api.reader)
    head = api.call("HEAD", "/tags", api.reader)
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == got.headers["content-length"]


def test_error_details_never_show_server_paths(api: Api) -> None:
    """A bad article's problem names its file relative to the publication, never where it lives."""
    bad = api.call("PUT", "/articles/notes-on-rest", api.admin, json={"markdown": "---\ntitle: [\n---\n"})
    assert bad.status_code == 422
    detail = bad.json()["detail"]
    assert str(api.config.root) not in detail and "content/2026-01-05-notes-on-rest.md" in detail


def test_every_post_declares_idempotency_key(api: Api) -> None:
    """The OpenAPI document declares the Idempotency-Key header on each POST."""
    spec = api.call("GET", "/openapi.json").json()
    posts = [ops["post"] for ops in spec["paths"].values() if "post" in ops]
    assert posts and all(
        any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in post.get("parameters", []))
        for post in posts
    )


def test_an_idempotency_key_outside_visible_ascii_is_refused(api: Api) -> None:
    """The server takes exactly what the document declares: visible ASCII, spaces inside only."""
    for key in ("zoë-1", " lead", "tab\there"):
        answer = api.call("POST", "/subscribers", api.writer, json={"email": "ada@example.org"},
                          headers={"idempotency-key": key.encode()})
        assert answer.status_code == 400, key
    assert subscribers.counts(api.db)["pending"] == 0


def test_the_document_lists_every_webhook_event(api: Api) -> None:
    """Each event `hooks add --event` takes is an OpenAPI webhook, subscriber.erased carrying the id alone."""
    spec = api.call("GET", "/openapi.json").json()
    assert sorted(spec["webhooks"]) == sorted(access.EVENTS)
    erased = spec["webhooks"]["subscriber.erased"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert list(erased["properties"]["data"]["properties"]) == ["id"]
    assert {"subscriber.erased", "subscriber.updated"} <= set(access.EVENTS)


# Scheduling an article by its slug


def test_an_article_is_scheduled_with_its_instant_in_utc(api: Api) -> None:
    """POST /articles/{slug}/schedule reads `at` in the zone given and answers run_at in UTC."""
    answer = api.call("POST", "/articles/notes-on-rest/schedule", api.admin,
                      json={"at": "2099-01-01T09:00", "timezone": "Europe/Berlin"})
    assert answer.status_code == 201, answer.text
    made = answer.json()
    assert (made["run_at"], made["slug"], made["wall_clock"]) == ("2099-01-01T08:00:00Z", "notes-on-rest",
                                                                  "2099-01-01 09:00")
    assert [s.id for s in scheduling.list_schedules(api.db)] == [made["id"]]


def test_scheduling_an_article_follows_the_commands_rules(api: Api) -> None:
    """A time gone is a 400, an unknown slug a 404, a zone that does not exist a 422 naming it."""
    past = api.call("POST", "/articles/notes-on-rest/schedule", api.admin, json={"at": "2001-01-01T09:00"})
    assert past.status_code == 400 and "in the past" in past.json()["detail"]
    unknown = api.call("POST", "/articles/nothing-here/schedule", api.admin, json={"at": "2099-01-01T09:00"})
    assert unknown.status_code == 404
    zone = api.call("POST", "/articles/notes-on-rest/schedule", api.admin,
                    json={"at": "2099-01-01T09:00", "timezone": "Mars/Base"})
    assert zone.status_code == 422 and zone.json()["errors"][0]["loc"] == ["body", "timezone"]


def test_an_import_takes_unusable_records_and_reports_them(api: Api) -> None:
    """The document lets an import record carry any address or zone, as the server does: each
    unusable one is a rejected row of the job, never a refusal of the whole import."""
    spec = api.call("GET", "/openapi.json").json()
    record = spec["components"]["schemas"]["ImportRecord"]["properties"]
    assert "format" not in record["email"] and "enum" not in str(record["timezone"])
    started = api.call("POST", "/imports", api.writer, json={"subscribers": [{"email": "", "timezone": "Nowhere/X"}]})
    assert started.status_code == 202, started.text
