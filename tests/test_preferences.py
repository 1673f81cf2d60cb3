"""A reader's own choices: stored from their page, honoured by every send."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine
from web_support import SECRET, AppClient, make_publication

from publisher.config import Config
from publisher.errors import SubscriberError
from publisher.mail import tokens
from publisher.store import ledger, open_store, subscribers
from publisher.store.preferences import get_preferences, set_preferences
from publisher.web import create_app

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
PUBLIC = ("sleep", "teens")


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return open_store(f"sqlite:///{tmp_path / 'p.db'}")


def reader(engine: Engine, email: str, *, frequency: str = "every", topics: tuple[str, ...] | None = None) -> int:
    found = subscribers.add(engine, email, now=NOW)
    set_preferences(engine, found.id, name="", timezone=None, frequency=frequency, topics=topics,
                    allowed_topics=PUBLIC, now=NOW)
    return found.id


def issue(engine: Engine, key: str, *, kind: str = "article", topics: tuple[str, ...] = ()) -> int:
    return ledger.create_issue(engine, key=key, kind=kind, slug=key, subject=key, html="<p>x</p>", text="x",
                               tag=None, status="draft", now=NOW, topics=topics)


def recipients(engine: Engine, issue_id: int) -> set[str]:
    ledger.enqueue(engine, issue_id, now=NOW)
    return {row.email for row in ledger.claim(engine, worker="w", limit=100, now=NOW)}


def test_digest_only_readers_get_digests_not_articles(engine: Engine) -> None:
    """An article issue skips digest-only readers; a digest reaches them."""
    reader(engine, "every@example.org")
    reader(engine, "digest@example.org", frequency="digest")
    assert recipients(engine, issue(engine, "a1")) == {"every@example.org"}
    assert recipients(engine, issue(engine, "digest:2026-11-27", kind="digest")) == {
        "every@example.org", "digest@example.org",
    }


def test_topics_choose_which_tagged_articles_arrive(engine: Engine) -> None:
    """Readers who chose topics get an article with public tags only when one matches;
    untagged articles and readers who chose nothing are unaffected."""
    reader(engine, "all@example.org")
    reader(engine, "sleep@example.org", topics=("sleep",))
    reader(engine, "none@example.org", topics=())
    assert recipients(engine, issue(engine, "teens-1", topics=("teens",))) == {"all@example.org"}
    assert recipients(engine, issue(engine, "sleep-1", topics=("sleep", "teens"))) == {
        "all@example.org", "sleep@example.org",
    }
    assert recipients(engine, issue(engine, "plain-1")) == {
        "all@example.org", "sleep@example.org", "none@example.org",
    }


def test_the_count_before_a_send_matches_the_send(engine: Engine) -> None:
    """The confirmation's count applies the same choices as the enqueue."""
    reader(engine, "all@example.org")
    reader(engine, "digest@example.org", frequency="digest")
    reader(engine, "sleep@example.org", topics=("sleep",))
    assert ledger.count_new_recipients(engine, issue_id=None, tag=None, kind="article", topics=("teens",)) == 1
    issue_id = issue(engine, "teens-2", topics=("teens",))
    assert ledger.count_new_recipients(engine, issue_id=issue_id, tag=None) == 1
    assert ledger.enqueue(engine, issue_id, now=NOW) == 1


def test_choices_a_reader_could_not_make_are_refused(engine: Engine) -> None:
    """An unknown frequency or a topic the author did not make public is a SubscriberError."""
    found = subscribers.add(engine, "r@example.org", now=NOW)
    with pytest.raises(SubscriberError, match="frequency"):
        set_preferences(engine, found.id, name="", timezone=None, frequency="hourly", topics=None,
                        allowed_topics=PUBLIC, now=NOW)
    with pytest.raises(SubscriberError, match="private"):
        set_preferences(engine, found.id, name="", timezone=None, frequency="every", topics=["private"],
                        allowed_topics=PUBLIC, now=NOW)
    with pytest.raises(SubscriberError, match="IANA"):
        set_preferences(engine, found.id, name="", timezone="Mars/Olympus", frequency="every", topics=None,
                        allowed_topics=PUBLIC, now=NOW)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_publication(
        tmp_path, extra='\n[subscribe]\npublic_tags = ["Sleep", "teens"]\n\n[schedule]\ndigest = "0 8 * * mon"\n'
    )


def manage_path(engine: Engine, subscriber_id: int) -> str:
    return f"/manage/{tokens.sign(SECRET, 'unsubscribe', subscribers.link_key(engine, subscriber_id))}"


def test_the_manage_page_shows_and_saves_choices(config: Config) -> None:
    """GET shows the choices and changes nothing; POST saves frequency, topics, name and zone."""
    engine = open_store(config.store_url)
    found = subscribers.add(engine, "reader@example.org", name="Ann", now=NOW)
    client = AppClient(create_app(config, engine=engine))
    page = client.get(manage_path(engine, found.id))
    assert page.status_code == 200
    assert 'value="sleep" checked' in page.text and 'value="teens" checked' in page.text
    assert "no-store" in page.headers["cache-control"]
    saved = client.post(
        manage_path(engine, found.id),
        data={"frequency": "digest", "topic": ["sleep"], "name": "Ann Lee", "timezone": "Europe/Oslo"},
    )
    assert saved.status_code == 200 and "Saved." in saved.text
    prefs = get_preferences(engine, found.id)
    assert prefs is not None
    chosen = (prefs.frequency, prefs.topics, prefs.name, prefs.timezone)
    assert chosen == ("digest", ("sleep",), "Ann Lee", "Europe/Oslo")


def test_the_manage_page_refuses_bad_tokens_and_bad_values(config: Config) -> None:
    """A forged token gets the "does not work" page; a bad zone is told and nothing changes."""
    engine = open_store(config.store_url)
    found = subscribers.add(engine, "reader@example.org", now=NOW)
    client = AppClient(create_app(config, engine=engine))
    assert client.get("/manage/forged-token").status_code == 400
    assert client.post("/manage/forged-token", data={"frequency": "digest"}).status_code == 400
    bad = client.post(manage_path(engine, found.id), data={"frequency": "every", "timezone": "Nowhere/Town"})
    assert bad.status_code == 400 and "IANA" in bad.text
    prefs = get_preferences(engine, found.id)
    assert prefs is not None and prefs.timezone is None


def test_the_unsubscribe_page_links_to_the_manage_page(config: Config) -> None:
    """Every unsubscribe page offers the reader's own page instead."""
    engine = open_store(config.store_url)
    found = subscribers.add(engine, "reader@example.org", now=NOW)
    client = AppClient(create_app(config, engine=engine))
    token = tokens.sign(SECRET, "unsubscribe", subscribers.link_key(engine, found.id))
    page = client.get(f"/unsubscribe/{token}")
    assert f'href="https://app.example.org/manage/{token}"' in page.text


def test_the_footer_manage_link_opens_that_readers_page(config: Config) -> None:
    """A sent copy's "manage your subscription" link opens its reader's page and saves their
    choices; the page's way out is that reader's working unsubscribe link."""
    import re

    from click.testing import CliRunner
    from web_support import outbox

    from publisher.cli import cli

    (config.root / "content").mkdir()
    (config.root / "content" / "2026-01-05-rest.md").write_text(
        "---\ntitle: Rest\ndate: 2026-01-05 08:00\n---\n\nSome words on rest.\n", encoding="utf-8"
    )
    engine = open_store(config.store_url)
    ann = subscribers.add(engine, "ann@example.org", now=NOW)
    subscribers.add(engine, "bo@example.org", now=NOW)
    sent = CliRunner().invoke(cli, ["send", "rest", "--yes"], catch_exceptions=False, env={
        "PUBLISHER_CONFIG": str(config.root / "config.toml"), "PUBLISHER_SECRET": SECRET,
    })
    assert sent.exit_code == 0, sent.output
    (copy,) = [m for m in outbox(config) if m["To"] == "ann@example.org"]
    text = copy.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = copy.get_body(("html",)).get_content()  # type: ignore[union-attr]
    link = re.search(r"Manage your subscription \(how often, which topics\): (\S+)", text)
    assert link and f'<a href="{link.group(1)}"' in html
    path = link.group(1).removeprefix("https://app.example.org")
    assert path.startswith("/manage/") and path.removeprefix("/manage/") not in copy["List-Unsubscribe"]
    client = AppClient(create_app(config, engine=engine))
    page = client.get(path)
    assert page.status_code == 200 and "ann@example.org" in page.text
    saved = client.post(path, data={"frequency": "digest", "name": "Ann"})
    assert saved.status_code == 200 and "Saved." in saved.text
    prefs = get_preferences(engine, ann.id)
    assert prefs is not None and (prefs.frequency, prefs.name) == ("digest", "Ann")
    leave = re.search(r'action="https://app.example.org(/unsubscribe/[^"]+)"', page.text)
    assert leave and leave.group(1) in copy["List-Unsubscribe"]
    assert client.post(leave.group(1)).status_code == 200
    assert subscribers.find(engine, "ann@example.org").status == "unsubscribed"  # type: ignore[union-attr]
    assert subscribers.find(engine, "bo@example.org").status == "active"  # type: ignore[union-attr]


def test_a_manage_link_cannot_unsubscribe_and_other_tokens_cannot_manage(config: Config) -> None:
    """A manage token is no unsubscribe token; a confirmation token opens no one's page."""
    engine = open_store(config.store_url)
    found = subscribers.add(engine, "reader@example.org", now=NOW)
    key = subscribers.link_key(engine, found.id)
    client = AppClient(create_app(config, engine=engine))
    manage = tokens.sign(SECRET, "manage", key)
    assert client.get(f"/manage/{manage}").status_code == 200
    assert client.post(f"/unsubscribe/{manage}", data={"List-Unsubscribe": "One-Click"}).status_code == 400
    assert subscribers.find(engine, "reader@example.org").status == "active"  # type: ignore[union-attr]
    confirm = tokens.sign_confirm(SECRET, key, NOW)
    assert client.get(f"/manage/{confirm}").status_code == 400
    assert client.get(f"/manage/{tokens.sign('another-secret-0123456789abcdef-xyz', 'manage', key)}").status_code == 400
    assert client.get(f"/manage/{manage}x").status_code == 400
