"""Links to set a forgotten password, attacked: forged, swapped, replayed, raced, asked for
under other spellings of one address, and posted without the sign-in form's cookie."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from desk_support import PASSWORD, add_users, csrf_of, quick_hashes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from itsdangerous import URLSafeSerializer
from web_support import live_server, make_publication, outbox

from publisher import accounts
from publisher.config import Config
from publisher.errors import AccountError, SignInThrottled
from publisher.store import open_store
from publisher.store import users as user_store
from publisher.store.schema import desk_sessions
from publisher.web import create_app

NOW = datetime(2026, 12, 8, 7, 0, tzinfo=UTC)
SECRET = "s" * 32
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    quick_hashes(monkeypatch)
    config = make_publication(tmp_path)
    add_users(config)
    return config


@pytest.fixture
def engine(config: Config) -> Iterator[sa.Engine]:
    engine = open_store(config.store_url)
    yield engine
    engine.dispose()


def token_for(engine: sa.Engine, email: str, *, address: str = "a") -> str:
    link = accounts.ask_password_reset(engine, email, secret=SECRET, address=address, now=NOW)
    assert link is not None
    return link.path.rpartition("/")[2]


def test_a_link_signed_for_one_account_opens_no_other(engine: sa.Engine) -> None:
    """The same signed contents with another account's id are refused: the link names the hash too."""
    mine = token_for(engine, "viewer@example.org")
    signer = URLSafeSerializer(SECRET, salt="desk password reset")
    _, made, fingerprint = signer.loads(mine)
    owner = user_store.find(engine, "owner@example.org")
    assert owner is not None
    with pytest.raises(AccountError):
        accounts.reset_holder(engine, signer.dumps([owner.id, made, fingerprint]), secret=SECRET, now=NOW)


def test_a_link_signed_without_the_salt_is_refused(engine: sa.Engine) -> None:
    """A value signed with the secret for another purpose is no reset link."""
    owner = user_store.find(engine, "owner@example.org")
    assert owner is not None
    unsalted = URLSafeSerializer(SECRET).dumps([owner.id, int(NOW.timestamp()), "0" * 32])
    with pytest.raises(AccountError):
        accounts.reset_holder(engine, unsalted, secret=SECRET, now=NOW)


def test_a_link_for_a_removed_account_opens_nothing_for_a_new_one_at_its_address(engine: sa.Engine) -> None:
    """An account removed and added again under the same address is not reached by the old link."""
    token = token_for(engine, "editor@example.org")
    accounts.remove_user(engine, "editor@example.org")
    accounts.add_user(engine, "editor@example.org", role="owner", password=PASSWORD, now=NOW)
    with pytest.raises(AccountError):
        accounts.finish_password_reset(engine, token, NEW_PASSWORD, secret=SECRET, now=NOW)


def test_a_link_survives_no_change_of_password_made_meanwhile(engine: sa.Engine) -> None:
    """Reset then reset again with a second, older link: the older one is refused."""
    first = token_for(engine, "owner@example.org")
    second = token_for(engine, "owner@example.org")
    accounts.finish_password_reset(engine, second, NEW_PASSWORD, secret=SECRET, now=NOW)
    with pytest.raises(AccountError):
        accounts.finish_password_reset(engine, first, "another passphrase!", secret=SECRET, now=NOW)


def test_two_uses_of_one_link_at_once_land_once(engine: sa.Engine) -> None:
    """Eight threads posting the same link: exactly one sets the password."""
    token = token_for(engine, "owner@example.org")
    results: list[str] = []
    start = threading.Barrier(8)

    def use(n: int) -> None:
        start.wait()
        try:
            accounts.finish_password_reset(engine, token, f"passphrase number {n}", secret=SECRET, now=NOW)
        except AccountError:
            results.append("refused")
        else:
            results.append("set")

    threads = [threading.Thread(target=use, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["refused"] * 7 + ["set"]


@pytest.mark.parametrize("spelling", [" OWNER@example.org ", "Owner@EXAMPLE.ORG", "owner@example.org\t"])
def test_other_spellings_of_one_address_share_its_count(engine: sa.Engine, spelling: str) -> None:
    """Case and spaces do not buy an account more links (each from a client of its own)."""
    for n in range(3):
        accounts.ask_password_reset(engine, spelling if n else "owner@example.org", secret=SECRET,
                                    address=f"client {n}", now=NOW)
    with pytest.raises(SignInThrottled):
        accounts.ask_password_reset(engine, spelling, secret=SECRET, address="client 9", now=NOW)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300) | st.binary(max_size=200).map(lambda b: b.hex()))
def test_any_token_is_refused_with_an_account_error(engine: sa.Engine, token: str) -> None:
    """Whatever the path holds, the answer is AccountError, never another exception."""
    with pytest.raises(AccountError):
        accounts.reset_holder(engine, token, secret=SECRET, now=NOW)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5), max_size=4))
def test_signed_contents_of_any_shape_are_refused(engine: sa.Engine, contents: list[object]) -> None:
    """Even signed with the secret, contents that are not [id, moment, fingerprint] open nothing."""
    token = URLSafeSerializer(SECRET, salt="desk password reset").dumps(contents)
    with pytest.raises(AccountError):
        accounts.reset_holder(engine, token, secret=SECRET, now=NOW)


def test_the_forms_are_refused_without_the_sign_in_cookie(config: Config) -> None:
    """A cross-site post (no cookie of ours, or a field that does not match it) asks for nothing
    and sets nothing."""
    with live_server(create_app(config)) as base:
        with httpx.Client(base_url=base) as http:
            page = http.get("/desk/login/forgot")
            token = csrf_of(page.text)
        with httpx.Client(base_url=base, headers={"origin": "null"}) as stranger:
            asked = stranger.post("/desk/login/forgot", data={"csrf": token, "email": "owner@example.org"})
            assert asked.status_code == 403
            engine = open_store(config.store_url)
            try:
                link = token_for(engine, "editor@example.org", address="elsewhere")
                before = user_store.find(engine, "editor@example.org")
                stranger.cookies.set("desk_login", "forged")
                posted = stranger.post(f"/desk/login/reset/{link}",
                                       data={"csrf": token, "password": NEW_PASSWORD, "again": NEW_PASSWORD})
                assert posted.status_code == 403
                assert user_store.find(engine, "editor@example.org") == before
            finally:
                engine.dispose()
    assert outbox(config) == []


def test_known_and_unknown_addresses_get_the_same_answer(config: Config) -> None:
    """Status, headers' names and the page (but for the address typed) are alike."""
    answers = []
    with live_server(create_app(config)) as base:
        for email in ("owner@example.org", "nobody@example.org"):
            with httpx.Client(base_url=base) as http:
                form = http.get("/desk/login/forgot")
                answer = http.post("/desk/login/forgot", data={"csrf": csrf_of(form.text), "email": email})
                answers.append((answer.status_code, sorted(answer.headers.keys()),
                                re.sub(r'value="[^"]*"', "", answer.text.replace(email, "ADDRESS"))))
    assert answers[0] == answers[1]


def _session_row(user_id: int) -> dict[str, object]:
    return {"id": "f" * 64, "user_id": user_id, "csrf": "c" * 64, "address": "a", "created_at": NOW,
            "seen_at": NOW, "expires_at": NOW + timedelta(days=1)}


def test_a_reset_leaves_the_second_factor_on_and_ends_the_sessions(engine: sa.Engine) -> None:
    """A mailbox alone does not turn off the code, and no session survives the new password."""
    owner = user_store.find(engine, "owner@example.org")
    assert owner is not None
    user_store.start_factor(engine, owner.id, "sealed secret", now=NOW)
    assert user_store.take_step(engine, owner.id, 1, now=NOW, enable=True)
    with engine.begin() as conn:
        conn.execute(sa.insert(desk_sessions).values(**_session_row(owner.id)))
    accounts.finish_password_reset(engine, token_for(engine, "owner@example.org"), NEW_PASSWORD,
                                   secret=SECRET, now=NOW)
    factor = user_store.factor(engine, owner.id)
    assert factor is not None and factor.enabled_at is not None
    with engine.connect() as conn:
        left = conn.execute(sa.select(sa.func.count()).select_from(desk_sessions)
                            .where(desk_sessions.c.user_id == owner.id)).scalar_one()
    assert left == 0
