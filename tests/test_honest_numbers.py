"""Honest choices and numbers: a reader is offered only choices that exist, an issue counts
only the readers who left from its own message, an import's summary adds up, and the
send page says "every active reader has had it" only when that is so."""

from __future__ import annotations

import csv
import io
import re
import tempfile
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from desk_support import add_users, csrf_of, quick_hashes, sign_in
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web_support import SECRET, AppClient, live_server, make_publication, outbox

from publisher.cli import cli
from publisher.config import Config
from publisher.errors import TokenError
from publisher.mail import tokens
from publisher.services import imports, stats
from publisher.store import open_store, subscribers
from publisher.store.preferences import get_preferences, set_preferences
from publisher.store.subscriber_import import import_rows
from publisher.web import create_app

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
APP = "https://app.example.org"


def article(root: Path, slug: str, day: int, *, tags: str = "") -> None:
    folder = root / "content"
    folder.mkdir(exist_ok=True)
    extra = f"tags: [{tags}]\n" if tags else ""
    (folder / f"2026-01-{day:02d}-{slug}.md").write_text(
        f"---\ntitle: {slug.title()}\ndate: 2026-01-{day:02d} 08:00\n{extra}---\n\nSome words on {slug}.\n",
        encoding="utf-8",
    )


def send(config: Config, slug: str) -> None:
    """`publisher send SLUG --yes`: the ledger, the engine and the Maildir, for real."""
    sent = CliRunner().invoke(cli, ["send", slug, "--yes"], catch_exceptions=False, env={
        "PUBLISHER_CONFIG": str(config.root / "config.toml"), "PUBLISHER_SECRET": SECRET,
    })
    assert sent.exit_code == 0, sent.output


def copy_of(config: Config, address: str, subject: str) -> EmailMessage:
    (found,) = [m for m in outbox(config) if m["To"] == address and m["Subject"] == subject]
    return found


def one_click_path(message: EmailMessage) -> str:
    """The path of the https URL in a copy's List-Unsubscribe header."""
    found = re.search(r"<(https://[^>]+)>", str(message["List-Unsubscribe"]))
    assert found, message["List-Unsubscribe"]
    return found.group(1).removeprefix(APP)


def issue_of(config: Config, slug: str) -> int:
    engine = open_store(config.store_url)
    try:
        (line,) = stats.issue_status(engine, slug)
        return line.issue_id
    finally:
        engine.dispose()


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    quick_hashes(monkeypatch)
    config = make_publication(tmp_path)
    article(tmp_path, "rest", 5)
    article(tmp_path, "walks", 6)
    add_users(config)
    return config


@pytest.fixture
def two_issues(config: Config) -> Config:
    """Ann and Bo, each sent "rest" and then "walks"."""
    engine = open_store(config.store_url)
    subscribers.add(engine, "ann@example.org", now=NOW)
    subscribers.add(engine, "bo@example.org", now=NOW)
    engine.dispose()
    send(config, "rest")
    send(config, "walks")
    return config


def test_leaving_from_the_second_issues_message_counts_for_it_alone(two_issues: Config) -> None:
    """A one-click POST from the second issue's List-Unsubscribe counts for that issue; the
    first issue, which the reader also had, still counts nobody."""
    config = two_issues
    engine = open_store(config.store_url)
    client = AppClient(create_app(config, engine=engine))
    answer = client.post(one_click_path(copy_of(config, "ann@example.org", "Walks")),
                         content=b"List-Unsubscribe=One-Click",
                         headers={"content-type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200
    assert subscribers.find(engine, "ann@example.org").status == "unsubscribed"  # type: ignore[union-attr]
    first, second = issue_of(config, "rest"), issue_of(config, "walks")
    assert stats.issue_counts(engine, first).unsubscribed == 0
    assert stats.issue_counts(engine, second).unsubscribed == 1


def test_the_footer_link_counts_for_the_message_it_came_in(two_issues: Config) -> None:
    """The visible unsubscribe link of the first issue's copy, pressed on its page, counts
    for the first issue, with how the reader left as its reason."""
    config = two_issues
    engine = open_store(config.store_url)
    client = AppClient(create_app(config, engine=engine))
    text = copy_of(config, "bo@example.org", "Rest").get_body(("plain",)).get_content()  # type: ignore[union-attr]
    links = [u.removeprefix(APP) for u in re.findall(r"https://\S+/unsubscribe/\S+", text)]
    assert links, text
    assert client.post(links[0]).status_code == 200
    first, second = issue_of(config, "rest"), issue_of(config, "walks")
    assert (stats.issue_counts(engine, first).unsubscribed, stats.issue_counts(engine, second).unsubscribed) == (1, 0)
    (reason,) = stats.issue_reasons(engine, first, addresses=True).unsubscribed
    assert (reason.reason, reason.count, reason.addresses) == (
        "the unsubscribe link in the message", 1, ("bo@example.org",)
    )


def test_leaving_from_the_manage_page_of_a_message_counts_for_it(two_issues: Config) -> None:
    """The reader's page opened from a copy's "manage" link leaves by that copy's own link."""
    config = two_issues
    engine = open_store(config.store_url)
    client = AppClient(create_app(config, engine=engine))
    copy = copy_of(config, "bo@example.org", "Walks")
    text = copy.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    manage = re.search(r"https://app\.example\.org(/manage/\S+)", text)
    assert manage
    page = client.get(manage.group(1))
    leave = re.search(r'action="https://app.example.org(/unsubscribe/[^"]+)"', page.text)
    assert leave and leave.group(1) == one_click_path(copy)
    assert client.post(leave.group(1)).status_code == 200
    assert stats.issue_counts(engine, issue_of(config, "walks")).unsubscribed == 1
    assert stats.issue_counts(engine, issue_of(config, "rest")).unsubscribed == 0


def test_a_link_without_a_message_unsubscribes_and_counts_for_no_issue(two_issues: Config) -> None:
    """Links signed before messages were named keep working; they are counted for no issue."""
    config = two_issues
    engine = open_store(config.store_url)
    client = AppClient(create_app(config, engine=engine))
    ann = subscribers.find(engine, "ann@example.org")
    assert ann is not None
    old = tokens.sign(SECRET, "unsubscribe", subscribers.link_key(engine, ann.id))
    assert client.post(f"/unsubscribe/{old}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert subscribers.find(engine, "ann@example.org").status == "unsubscribed"  # type: ignore[union-attr]
    assert [stats.issue_counts(engine, issue_of(config, s)).unsubscribed for s in ("rest", "walks")] == [0, 0]


def test_a_link_naming_another_readers_message_counts_for_no_issue(two_issues: Config) -> None:
    """A token pairing one reader with another reader's message key unsubscribes only the
    reader it names, and counts for no issue."""
    config = two_issues
    engine = open_store(config.store_url)
    ann, bo = subscribers.find(engine, "ann@example.org"), subscribers.find(engine, "bo@example.org")
    assert ann is not None and bo is not None
    bo_message = copy_of(config, "bo@example.org", "Walks")["Message-ID"].strip("<>").split("@")[0]
    mixed = tokens.sign(SECRET, "unsubscribe", subscribers.link_key(engine, ann.id), bo_message)
    assert AppClient(create_app(config, engine=engine)).post(f"/unsubscribe/{mixed}").status_code == 200
    assert subscribers.find(engine, "bo@example.org").status == "active"  # type: ignore[union-attr]
    assert stats.issue_counts(engine, issue_of(config, "walks")).unsubscribed == 0


def test_a_message_token_is_one_spelling_and_only_for_its_purposes() -> None:
    """A token with a message reads back whole; a confirmation cannot carry one, a bad key
    is refused at signing, and an edited token is not valid."""
    key = "0" * 32
    token = tokens.sign(SECRET, "manage", key, "a1b2c3")
    assert tokens.verify(SECRET, "manage", token) == tokens.LinkTarget(key=key, message_key="a1b2c3")
    with pytest.raises(ValueError):
        tokens.sign(SECRET, "confirm", key, "a1b2c3")
    with pytest.raises(ValueError):
        tokens.sign(SECRET, "unsubscribe", key, "Not A Key!")
    with pytest.raises(TokenError):
        tokens.verify(SECRET, "unsubscribe", token)
    with pytest.raises(TokenError):
        tokens.verify(SECRET, "manage", token[:-1] + ("A" if token[-1] != "A" else "B"))


def test_the_issue_page_shows_each_number_with_its_reasons(two_issues: Config) -> None:
    """Owners see accepted, deferred, bounced, complained and unsubscribed-from-this-message
    with reasons and addresses; an editor sees the reasons without the addresses."""
    config = two_issues
    engine = open_store(config.store_url)
    client = AppClient(create_app(config, engine=engine))
    client.post(one_click_path(copy_of(config, "ann@example.org", "Walks")), data={"List-Unsubscribe": "One-Click"})
    subscribers.suppress(engine, "bo@example.org", "bounce", provider="postmark", detail="mailbox full",
                         now=datetime.now(UTC))
    second = issue_of(config, "walks")
    with live_server(create_app(config)) as base:
        pages = {}
        for who in ("owner@example.org", "editor@example.org"):
            with httpx.Client(base_url=base) as http:
                sign_in(http, who)
                pages[who] = http.get(f"/desk/issues/{second}").text
    owner, editor = pages["owner@example.org"], pages["editor@example.org"]
    assert "Accepted by the provider" in owner and "Delivered" not in owner
    assert "Unsubscribed from this message" in owner and "Unsubscribed after" not in owner
    assert "the mail program&#39;s one-click unsubscribe: 1 reader left" in owner
    assert "mailbox full (postmark): 1 reader bounced" in owner
    assert "<li>ann@example.org</li>" in owner and "<li>bo@example.org</li>" in owner
    assert "mailbox full (postmark): 1 reader bounced" in editor and "<li>bo@example.org</li>" not in editor


def test_the_send_page_says_every_reader_had_it_only_when_true(config: Config) -> None:
    """With the other readers kept out by their own topics, the send page says so rather
    than "every active reader has had it"; once all have had it, it says that."""
    (config.root / "config.toml").write_text(
        (config.root / "config.toml").read_text(encoding="utf-8") + '\n[subscribe]\npublic_tags = ["sleep", "walks"]\n',
        encoding="utf-8",
    )
    article(config.root, "naps", 7, tags="sleep")
    engine = open_store(config.store_url)
    subscribers.add(engine, "had@example.org", now=NOW)
    engine.dispose()
    send(config, "naps")
    engine = open_store(config.store_url)
    other = subscribers.add(engine, "walker@example.org", now=NOW)
    set_preferences(engine, other.id, name="", timezone=None, frequency="every", topics=["walks"],
                    allowed_topics=["sleep", "walks"], now=NOW)
    engine.dispose()
    with live_server(create_app(config)) as base, httpx.Client(base_url=base) as http:
        sign_in(http)
        csrf = csrf_of(http.get("/desk/articles/naps").text)
        page = http.post("/desk/articles/naps/send", data={"csrf": csrf}).text
        assert "every active reader" not in page
        assert "1 had it already and 1 chose not to get articles like this one" in page
        engine = open_store(config.store_url)
        subscribers.suppress(engine, "walker@example.org", "unsubscribe", provider="cli", now=NOW)
        engine.dispose()
        page = http.post("/desk/articles/naps/send", data={"csrf": csrf}).text
        assert "every active reader has had it already" in page


@pytest.fixture
def no_digest(tmp_path: Path) -> Config:
    config = make_publication(tmp_path)
    article(tmp_path, "rest", 5)
    return config


def manage_path(engine: object, subscriber_id: int) -> str:
    return f"/manage/{tokens.sign(SECRET, 'manage', subscribers.link_key(engine, subscriber_id))}"  # type: ignore[arg-type]


def test_no_digest_no_digest_choice(no_digest: Config) -> None:
    """Without `schedule.digest` the reader's page offers no "digest only", and a forged
    POST of it is refused with a message; nothing changes."""
    engine = open_store(no_digest.store_url)
    found = subscribers.add(engine, "reader@example.org", now=NOW)
    client = AppClient(create_app(no_digest, engine=engine))
    page = client.get(manage_path(engine, found.id))
    assert page.status_code == 200 and 'value="digest"' not in page.text
    refused = client.post(manage_path(engine, found.id), data={"frequency": "digest"})
    assert refused.status_code == 400 and "sends no digest" in refused.text
    assert get_preferences(engine, found.id).frequency == "every"  # type: ignore[union-attr]


def test_a_digest_choice_left_without_a_digest_is_told_and_gets_every_article(no_digest: Config) -> None:
    """A reader who chose the digest only before it was turned off is told on their page,
    keeps the choice when saving other things, and is sent every article."""
    engine = open_store(no_digest.store_url)
    found = subscribers.add(engine, "reader@example.org", now=NOW)
    set_preferences(engine, found.id, name="", timezone=None, frequency="digest", topics=None,
                    allowed_topics=(), now=NOW)
    client = AppClient(create_app(no_digest, engine=engine))
    page = client.get(manage_path(engine, found.id))
    assert 'id="no-digest"' in page.text and "you get every article" in page.text
    saved = client.post(manage_path(engine, found.id), data={"name": "Rae"})
    assert saved.status_code == 200
    assert get_preferences(engine, found.id).frequency == "digest"  # type: ignore[union-attr]
    engine.dispose()
    send(no_digest, "rest")
    assert [m["To"] for m in outbox(no_digest)] == ["Rae <reader@example.org>"]


def test_with_a_digest_a_digest_only_reader_is_offered_it_and_skips_articles(tmp_path: Path) -> None:
    """With `schedule.digest` set, the choice is offered and an article skips its readers."""
    config = make_publication(tmp_path, extra='\n[schedule]\ndigest = "0 8 * * mon"\n')
    article(tmp_path, "rest", 5)
    engine = open_store(config.store_url)
    found = subscribers.add(engine, "reader@example.org", now=NOW)
    subscribers.add(engine, "every@example.org", now=NOW)
    client = AppClient(create_app(config, engine=engine))
    assert 'value="digest"' in client.get(manage_path(engine, found.id)).text
    assert client.post(manage_path(engine, found.id), data={"frequency": "digest"}).status_code == 200
    engine.dispose()
    send(config, "rest")
    assert [m["To"] for m in outbox(config)] == ["every@example.org"]


ADDRESSES = st.sampled_from(
    ["ann@example.org", "ANN@example.org", "bo@example.org", "cy@example.org", "left@example.org",
     "same@example.org", "not-an-address", "@example.org", "x@", ""]
)
ROWS = st.lists(
    st.one_of(
        st.tuples(ADDRESSES, st.sampled_from(["", "Ann", "Bo"]), st.sampled_from(["", "sleep", "walks"])),
        st.just(None),  # a blank line
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=ROWS)
def test_an_import_summary_adds_up(rows: list[tuple[str, str, str] | None]) -> None:
    """Over random CSVs (repeats, blank lines, bad addresses, a header alone), added +
    updated + unchanged + kept + refused is every row read, and rows read are the
    file's non-blank lines after the header."""
    with tempfile.TemporaryDirectory() as folder:
        engine = open_store(f"sqlite:///{Path(folder) / 'p.db'}")
        try:
            subscribers.add(engine, "same@example.org", name="", now=NOW)
            subscribers.add(engine, "left@example.org", now=NOW)
            subscribers.suppress(engine, "left@example.org", "unsubscribe", provider="cli", now=NOW)
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(["email", "name", "tags"])
            for row in rows:
                if row is None:
                    buffer.write("\r\n")
                else:
                    writer.writerow(row)
            expected = sum(1 for row in rows if row is not None and any(row))
            report = import_rows(engine, io.StringIO(buffer.getvalue(), newline=""), now=NOW, origin="r.csv")
        finally:
            engine.dispose()
    summed = report.imported + report.updated + report.unchanged + report.kept + len(report.rejected)
    assert report.rows_read == expected == summed


def test_the_desk_import_summary_names_the_unchanged_row(config: Config) -> None:
    """Importing a file whose one row is already on the list says 1 read, 1 unchanged."""
    engine = open_store(config.store_url)
    subscribers.add(engine, "same@example.org", now=NOW)
    engine.dispose()
    with live_server(create_app(config)) as base, httpx.Client(base_url=base) as http:
        sign_in(http)
        csrf = csrf_of(http.get("/desk/subscribers/import").text)
        preview = http.post("/desk/subscribers/import", data={"csrf": csrf},
                            files={"file": ("list.csv", b"email\nsame@example.org\nnew@example.org\n", "text/csv")})
        key = re.search(r'name="key" value="([^"]+)"', preview.text)
        assert key, preview.text
        done = http.post("/desk/subscribers/import/confirm", data={"csrf": csrf_of(preview.text), "key": key.group(1)},
                         follow_redirects=True)
    assert "2 rows read: 1 added, 0 updated, 1 unchanged, 0 refused." in done.text



def test_an_import_jobs_summary_adds_up(tmp_path: Path) -> None:
    """A finished job (the API's) counts its unchanged rows, so its numbers add up to the rows read."""
    engine = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    subscribers.add(engine, "same@example.org", now=NOW)
    records = [{"email": "same@example.org"}, {"email": "new@example.org"}, {"email": "new@example.org"},
               {"email": "broken"}]
    job = imports.start_import(engine, now=NOW, records=records, wait=True)
    assert (job.state, job.imported, job.updated, job.unchanged, job.kept, job.rejected_count) == (
        "done", 1, 0, 1, 0, 2
    )
    assert job.rows_read == 4


def test_a_retired_topic_is_not_offered_and_its_readers_keep_it(tmp_path: Path) -> None:
    """A topic in `subscribe.retired_tags` is not on the reader's page, even if still a
    public tag; a reader who chose it keeps it when saving their other choices."""
    config = make_publication(
        tmp_path, extra='\n[subscribe]\npublic_tags = ["sleep", "walks", "naps"]\nretired_tags = ["naps"]\n'
    )
    engine = open_store(config.store_url)
    found = subscribers.add(engine, "reader@example.org", now=NOW)
    set_preferences(engine, found.id, name="", timezone=None, frequency="every", topics=["naps", "walks"],
                    allowed_topics=["naps", "walks"], now=NOW)
    client = AppClient(create_app(config, engine=engine))
    page = client.get(manage_path(engine, found.id))
    assert 'value="walks"' in page.text and 'value="naps"' not in page.text
    assert client.post(manage_path(engine, found.id), data={"topic": ["sleep"]}).status_code == 200
    assert set(get_preferences(engine, found.id).topics) == {"naps", "sleep"}  # type: ignore[union-attr, arg-type]
    newcomer = subscribers.add(engine, "new@example.org", now=NOW)
    assert client.post(manage_path(engine, newcomer.id), data={"topic": ["naps"]}).status_code == 400


def test_the_cli_import_says_how_many_rows_it_read(tmp_path: Path) -> None:
    """`publisher subscribers import` prints the rows read, which its other lines add up to."""
    config = make_publication(tmp_path)
    engine = open_store(config.store_url)
    subscribers.add(engine, "same@example.org", now=NOW)
    engine.dispose()
    path = tmp_path / "list.csv"
    path.write_text("email\nsame@example.org\nnew@example.org\nbroken\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["subscribers", "import", str(path)], catch_exceptions=False, env={
        "PUBLISHER_CONFIG": str(config.root / "config.toml"), "PUBLISHER_SECRET": SECRET,
    })
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "rows read 3 (imported + updated + unchanged + kept + rejected)" in lines
    assert {"imported 1 (1 active)", "updated 0", "unchanged 1", "rejected 1"} <= set(lines)


def test_the_upgrade_names_the_issue_of_earlier_bounces(tmp_path: Path) -> None:
    """Upgrading a database gives each bounce already recorded the issue of its reader's
    latest copy in the week before it; earlier unsubscribes, which cannot say which
    message they came from, name none."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from publisher.store.engine import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0014")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO subscribers (id, email, name, status, source, created_at, updated_at, token_key, "
            "legacy_links, frequency) VALUES (1, 'a@example.org', '', 'bounced', '', '2026-01-01 00:00:00.000000', "
            "'2026-01-01 00:00:00.000000', '" + "a" * 32 + "', 0, 'every')"
        ))
        for issue_id, sent in ((1, "2026-01-02 08:00:00.000000"), (2, "2026-01-05 08:00:00.000000")):
            conn.execute(text(
                "INSERT INTO issues (id, key, kind, slug, subject, html, text, status, created_at) VALUES "
                f"({issue_id}, 'k{issue_id}', 'article', 's', 'S', '', '', 'done', '{sent}')"
            ))
            conn.execute(text(
                "INSERT INTO deliveries (issue_id, subscriber_id, email, name, state, attempts, not_before, "
                f"sent_at, provider_id, detail, message_key, uncertain) VALUES ({issue_id}, 1, 'a@example.org', "
                f"'', 'sent', 1, '{sent}', '{sent}', '', '', 'm{issue_id}', 0)"
            ))
        for kind, at in (("unsubscribe", "2026-01-05 09:00:00.000000"), ("bounce", "2026-01-06 08:00:00.000000"),
                         ("bounce", "2026-01-20 08:00:00.000000")):
            conn.execute(text(
                "INSERT INTO events (subscriber_id, email, kind, provider, detail, created_at) VALUES "
                f"(1, 'a@example.org', '{kind}', 'x', '', '{at}')"
            ))
    command.upgrade(alembic_config(url), "head")
    with engine.connect() as conn:
        named = conn.execute(text("SELECT kind, issue_id FROM events ORDER BY id")).all()
    engine.dispose()
    assert [tuple(row) for row in named] == [("unsubscribe", None), ("bounce", 2), ("bounce", None)]


def test_the_api_gives_an_issues_numbers_as_the_desk_does(two_issues: Config) -> None:
    """GET /api/v1/stats/issues/{id} counts the departure from that issue's message only,
    and says how many copies are deferred."""
    from publisher.services import access

    config = two_issues
    engine = open_store(config.store_url)
    client = AppClient(create_app(config, engine=engine))
    client.post(one_click_path(copy_of(config, "ann@example.org", "Walks")), data={"List-Unsubscribe": "One-Click"})
    key = access.create_key(engine, "stats", ["stats:read"], now=NOW).token
    numbers = {
        slug: client.get(f"/api/v1/stats/issues/{issue_of(config, slug)}",
                         headers={"authorization": f"Bearer {key}"}).json()
        for slug in ("rest", "walks")
    }
    assert (numbers["rest"]["unsubscribed"], numbers["walks"]["unsubscribed"]) == (0, 1)
    assert numbers["walks"]["sent"] == 2 and numbers["walks"]["deferred"] == 0


def test_publisher_status_of_an_issue_names_its_own_departures(two_issues: Config) -> None:
    """`publisher status SLUG` prints the issue's bounces, complaints and the readers who
    left from its message; the other issue's line says 0."""
    config = two_issues
    engine = open_store(config.store_url)
    AppClient(create_app(config, engine=engine)).post(
        one_click_path(copy_of(config, "ann@example.org", "Walks")), data={"List-Unsubscribe": "One-Click"}
    )
    env = {"PUBLISHER_CONFIG": str(config.root / "config.toml"), "PUBLISHER_SECRET": SECRET}
    said = {slug: CliRunner().invoke(cli, ["status", slug], catch_exceptions=False, env=env).output
            for slug in ("rest", "walks")}
    assert "unsubscribed from this issue's message 1" in said["walks"]
    assert "unsubscribed from this issue's message 0" in said["rest"]


def test_a_reader_who_leaves_twice_from_one_message_counts_once(two_issues: Config) -> None:
    """Two one-click POSTs that race both record the departure; the issue counts the reader
    once and lists them once."""
    config = two_issues
    engine = open_store(config.store_url)
    ann = subscribers.find(engine, "ann@example.org")
    assert ann is not None
    path = one_click_path(copy_of(config, "ann@example.org", "Walks"))
    holder = tokens.verify(SECRET, "unsubscribe", path.removeprefix("/unsubscribe/"))
    for _ in range(2):  # what each of two racing requests does once it found her still active
        subscribers.suppress(engine, "ann@example.org", "unsubscribe", provider="web", detail="one-click",
                             now=NOW, message_key=holder.message_key)
    second = issue_of(config, "walks")
    assert stats.issue_counts(engine, second).unsubscribed == 1
    (reason,) = stats.issue_reasons(engine, second, addresses=True).unsubscribed
    assert (reason.count, reason.addresses) == (1, ("ann@example.org",))
