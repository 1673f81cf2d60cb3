"""A forgotten password set again from a mailed link: the desk's pages over real HTTP, and
the rules of `publisher.accounts.resets` with a clock the test moves."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from desk_support import PASSWORD, add_users, csrf_of, quick_hashes, sign_in
from web_support import live_server, make_publication, outbox, wait_for_mail

from publisher import accounts
from publisher.config import Config
from publisher.errors import AccountError, SignInThrottled
from publisher.store import open_store
from publisher.web import create_app

NEW_PASSWORD = "a brand new passphrase"
NOW = datetime(2026, 12, 8, 7, 0, tzinfo=UTC)
SECRET = "s" * 32


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    quick_hashes(monkeypatch)
    config = make_publication(tmp_path)
    add_users(config)
    return config


@pytest.fixture
def url(config: Config) -> Iterator[str]:
    with live_server(create_app(config)) as base:
        yield base


@pytest.fixture
def engine(config: Config) -> Iterator[sa.Engine]:
    engine = open_store(config.store_url)
    yield engine
    engine.dispose()


def ask(http: httpx.Client, email: str) -> httpx.Response:
    form = http.get("/desk/login/forgot")
    assert form.status_code == 200, form.text
    return http.post("/desk/login/forgot", data={"csrf": csrf_of(form.text), "email": email})


def mailed_path(config: Config, count: int = 1) -> str:
    """The desk path of the link in the `count`th message of the outbox."""
    mail = wait_for_mail(config, count)
    assert len(mail) == count, [m["To"] for m in mail]
    body = mail[-1].get_body(("plain",))
    assert body is not None
    found = re.search(r"https://[^/\s]+(/desk/login/reset/\S+)", body.get_content())
    assert found, body.get_content()
    return found.group(1)


def set_password(http: httpx.Client, path: str, password: str, again: str | None = None) -> httpx.Response:
    page = http.get(path)
    token = csrf_of(page.text) if 'name="csrf"' in page.text else csrf_of(http.get("/desk/login").text)
    return http.post(path, data={"csrf": token, "password": password, "again": password if again is None else again})


def test_a_forgotten_password_is_set_again_from_the_mailed_link(config: Config, url: str) -> None:
    """The author asks for a link, gets it by mail, sets a new password with it, and signs in
    with the new one; the old one no longer works and her other session has ended."""
    with httpx.Client(base_url=url) as elsewhere:
        assert sign_in(elsewhere, "owner@example.org").status_code == 303
        assert elsewhere.get("/desk/").status_code == 200
        with httpx.Client(base_url=url) as http:
            asked = ask(http, "Owner@Example.org")
            assert asked.status_code == 200
            assert "a message with a link to set a new password is on its way there" in asked.text
            [mail] = wait_for_mail(config, 1)
            assert mail["To"] == "owner@example.org"
            assert mail["Subject"] == "Set a new password for the Quiet Harbor desk"
            assert "List-Unsubscribe" not in mail
            path = mailed_path(config)
            form = http.get(path)
            assert form.status_code == 200 and "owner@example.org" in form.text
            assert form.headers["referrer-policy"] == "same-origin"  # the link goes to no other site
            done = set_password(http, path, NEW_PASSWORD)
            assert done.status_code == 303 and done.headers["location"] == "/desk/login?m=password-set"
            assert "Your new password is set" in http.get(done.headers["location"]).text
            assert sign_in(http, "owner@example.org", PASSWORD).status_code == 400
            assert sign_in(http, "owner@example.org", NEW_PASSWORD).status_code == 303
        assert elsewhere.get("/desk/", follow_redirects=False).status_code == 303


def test_a_link_works_once(config: Config, url: str) -> None:
    """The second use of the same link is refused, and says how to get a new one."""
    with httpx.Client(base_url=url) as http:
        ask(http, "editor@example.org")
        path = mailed_path(config)
        assert set_password(http, path, NEW_PASSWORD).status_code == 303
        again = set_password(http, path, "yet another passphrase")
        assert again.status_code == 400
        assert "expired or was used already" in unescape(again.text)
        assert http.get(path).status_code == 400
        assert sign_in(http, "editor@example.org", NEW_PASSWORD).status_code == 303


def test_an_address_without_an_account_gets_the_same_answer_and_no_mail(config: Config, url: str) -> None:
    """Asking for an address with no account looks the same as for one with an account,
    and mails nobody."""
    with httpx.Client(base_url=url) as http:
        stranger = ask(http, "nobody@example.org")
        known = ask(http, "viewer@example.org")
    said = "a message with a link to set a new password is on its way there"
    assert stranger.status_code == known.status_code == 200
    assert said in stranger.text and said in known.text
    mail = wait_for_mail(config, 1)
    assert [m["To"] for m in mail] == ["viewer@example.org"]


def test_a_password_typed_twice_differently_or_too_short_is_refused(config: Config, url: str) -> None:
    """The page says what is wrong, keeps the link usable, and changes nothing."""
    with httpx.Client(base_url=url) as http:
        ask(http, "owner@example.org")
        path = mailed_path(config)
        differ = set_password(http, path, NEW_PASSWORD, again="a brand new passphrasf")
        assert differ.status_code == 400 and "The two passwords are not the same" in differ.text
        short = set_password(http, path, "short")
        assert short.status_code == 400 and "too short" in short.text
        assert set_password(http, path, NEW_PASSWORD).status_code == 303


def test_a_made_up_or_edited_link_is_refused(config: Config, url: str) -> None:
    """A token that is not ours, or ours with a character changed, opens nothing."""
    with httpx.Client(base_url=url) as http:
        ask(http, "owner@example.org")
        path = mailed_path(config)
        edited = path[:-2] + ("A" if path[-2] != "A" else "B") + path[-1]
        for bad in ("/desk/login/reset/nonsense", edited, "/desk/login/reset/" + "x" * 5000):
            page = http.get(bad)
            assert page.status_code in (400, 404, 414), bad
            assert "owner@example.org" not in page.text
            answer = set_password(http, bad, NEW_PASSWORD)
            assert answer.status_code in (400, 404, 414)
        assert sign_in(http, "owner@example.org", PASSWORD).status_code == 303


def test_asking_too_often_is_slowed(config: Config, url: str) -> None:
    """A fourth link for one account within the window is refused with a wait, and no
    fourth mail goes."""
    with httpx.Client(base_url=url) as http:
        answers = [ask(http, "owner@example.org").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    assert len(wait_for_mail(config, 3)) == 3
    assert len(outbox(config)) == 3


def test_the_sign_in_page_leads_to_the_forgotten_password_page(url: str) -> None:
    """The link under the sign-in form opens the page that mails a link; with the mail going
    to the outbox folder only, that page says so and names the command instead."""
    with httpx.Client(base_url=url) as http:
        login = http.get("/desk/login").text
        assert 'href="/desk/login/forgot"' in login
        page = http.get("/desk/login/forgot").text
    assert "publisher users reset-password EMAIL" in page and 'id="forgot-outbox"' in page


# The rules, with a clock the test moves


def test_a_link_expires_after_an_hour(engine: sa.Engine) -> None:
    link = accounts.ask_password_reset(engine, "owner@example.org", secret=SECRET, address="a", now=NOW)
    assert link is not None
    token = link.path.rpartition("/")[2]
    assert accounts.reset_holder(engine, token, secret=SECRET, now=NOW + timedelta(minutes=59)).email == (
        "owner@example.org"
    )
    with pytest.raises(AccountError, match="expired"):
        accounts.reset_holder(engine, token, secret=SECRET, now=NOW + timedelta(minutes=61))
    with pytest.raises(AccountError, match="expired"):
        accounts.reset_holder(engine, token, secret=SECRET, now=NOW - timedelta(minutes=1))


def test_a_link_made_under_another_secret_is_refused(engine: sa.Engine) -> None:
    link = accounts.ask_password_reset(engine, "owner@example.org", secret=SECRET, address="a", now=NOW)
    assert link is not None
    with pytest.raises(AccountError):
        accounts.reset_holder(engine, link.path.rpartition("/")[2], secret="t" * 32, now=NOW)


def test_a_link_is_void_once_the_password_changed_another_way(engine: sa.Engine) -> None:
    """A link asked for before an owner set the password from the command line opens nothing."""
    link = accounts.ask_password_reset(engine, "editor@example.org", secret=SECRET, address="a", now=NOW)
    assert link is not None
    accounts.reset_password(engine, "editor@example.org", password="set by the owner", now=NOW)
    with pytest.raises(AccountError, match="used already"):
        accounts.finish_password_reset(engine, link.path.rpartition("/")[2], NEW_PASSWORD, secret=SECRET, now=NOW)


def test_an_account_without_a_password_gets_no_link(engine: sa.Engine) -> None:
    """An account that signs in only through the OpenID Connect provider has no password to
    set again."""
    accounts.add_user(engine, "sso@example.org", role="editor", password=None, now=NOW)
    assert accounts.ask_password_reset(engine, "sso@example.org", secret=SECRET, address="a", now=NOW) is None


def test_one_client_asking_for_many_accounts_is_slowed(engine: sa.Engine) -> None:
    """One client cycling through addresses is held after nine links, however many
    addresses it tries."""
    for n in range(9):
        accounts.ask_password_reset(engine, f"guess{n}@example.org", secret=SECRET, address="one", now=NOW)
    with pytest.raises(SignInThrottled):
        accounts.ask_password_reset(engine, "owner@example.org", secret=SECRET, address="one", now=NOW)
    assert accounts.ask_password_reset(engine, "owner@example.org", secret=SECRET, address="two", now=NOW)
