"""Two-step sign-in: set up, asked after the password, codes taken once, required, reset.

The desk runs on loopback (uvicorn in a thread) with a clock the tests move; codes are
made with pyotp from the secret the account page shows while it is being set up.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyotp
import pytest
from click.testing import CliRunner
from desk_support import PASSWORD, add_users, csrf_of, quick_hashes, sign_in
from pg_server import fresh_database, postgres_server
from sqlalchemy import Engine, select
from store_support import POSTGRES_ENV
from web_support import SECRET, live_server, make_publication

from publisher import accounts
from publisher.accounts import SessionPolicy, totp
from publisher.cli import cli
from publisher.config import Config, load_config
from publisher.errors import AccountError, ConfigError
from publisher.store import open_store
from publisher.store.schema import recovery_codes, sign_in_factors
from publisher.web import create_app

START = datetime(2026, 12, 7, 9, 0, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = START
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self) -> datetime:
        with self.lock:
            return self.now

    def tick(self, seconds: float = 30) -> None:
        with self.lock:
            self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def publication(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str = "") -> Config:
    quick_hashes(monkeypatch)
    config = make_publication(tmp_path)
    if extra:
        config.path.write_text(config.path.read_text() + extra)
        config = load_config(config.path, env=dict(config.env))
    add_users(config)
    return config


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    return publication(tmp_path, monkeypatch)


@pytest.fixture
def url(config: Config, clock: Clock) -> Iterator[str]:
    with live_server(create_app(config, clock=clock)) as base:
        yield base


def code_at(secret: str, when: datetime) -> str:
    return pyotp.TOTP(secret).at(when)


def start_setup(http: httpx.Client) -> tuple[str, httpx.Response]:
    """Start setting up from the account page: the secret it shows, and the page."""
    page = http.get("/desk/account")
    started = http.post("/desk/account/two-factor/start", data={"csrf": csrf_of(page.text)})
    found = re.search(r'<code class="secret">([A-Z2-7]+)</code>', started.text)
    assert found, started.text
    return found.group(1), started


def turn_on(http: httpx.Client, clock: Clock) -> tuple[str, list[str]]:
    """Two-step sign-in turned on for the signed-in account: its secret and recovery codes."""
    secret, started = start_setup(http)
    answer = http.post(
        "/desk/account/two-factor/confirm", data={"csrf": csrf_of(started.text), "code": code_at(secret, clock())}
    )
    assert answer.status_code == 201, answer.text
    codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", answer.text)
    return secret, codes


def password_step(http: httpx.Client, email: str = "editor@example.org") -> httpx.Response:
    return sign_in(http, email)


def code_step(http: httpx.Client, code: str) -> httpx.Response:
    form = http.get("/desk/login/code")
    return http.post("/desk/login/code", data={"csrf": csrf_of(form.text), "code": code})


def enrolled(url: str, clock: Clock, email: str = "editor@example.org") -> tuple[str, list[str]]:
    """Turn two-step sign-in on for `email` in a browser of its own, then move the clock
    past the code that did it."""
    with httpx.Client(base_url=url) as http:
        assert password_step(http, email).status_code == 303
        secret, codes = turn_on(http, clock)
    clock.tick(90)
    return secret, codes


def test_setting_up_shows_a_qr_code_and_the_key(url: str) -> None:
    """The account page shows the secret as an inline SVG QR code and as text to type."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        secret, page = start_setup(http)
    assert page.status_code == 200
    assert "<svg" in page.text and "QR code to scan" in page.text
    assert len(secret) == 32


def test_a_wrong_first_code_leaves_it_off(url: str, config: Config, clock: Clock) -> None:
    """Two-step sign-in is on only after a right code: a wrong one is refused and changes nothing."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        secret, started = start_setup(http)
        wrong = "000000" if code_at(secret, clock()) != "000000" else "111111"
        answer = http.post("/desk/account/two-factor/confirm", data={"csrf": csrf_of(started.text), "code": wrong})
    assert answer.status_code == 400
    assert "not right" in answer.text
    engine = open_store(config.store_url)
    try:
        user = accounts.list_users(engine)[0]
        assert not any(u.two_factor for u in accounts.list_users(engine)), user
    finally:
        engine.dispose()


def test_a_right_first_code_turns_it_on_with_ten_recovery_codes(url: str, clock: Clock) -> None:
    """A right code turns it on and shows ten recovery codes, once; the secret is not shown again."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        secret, codes = turn_on(http, clock)
        again = http.get("/desk/account")
    assert len(codes) == 10 and len(set(codes)) == 10
    assert "On." in again.text
    assert secret not in again.text and codes[0] not in again.text


def test_the_secret_and_the_codes_are_not_kept_in_clear(url: str, config: Config, clock: Clock) -> None:
    """The database holds the TOTP secret sealed and the recovery codes as hashes only."""
    secret, codes = enrolled(url, clock)
    engine = open_store(config.store_url)
    try:
        with engine.connect() as conn:
            sealed = conn.execute(select(sign_in_factors.c.secret)).scalar_one()
            hashes = set(conn.execute(select(recovery_codes.c.code_hash)).scalars())
    finally:
        engine.dispose()
    assert secret not in sealed
    assert totp.unseal(SECRET, sealed) == secret
    assert not set(codes) & hashes and len(hashes) == 10


def test_sign_in_asks_for_the_code_after_the_password(url: str, clock: Clock) -> None:
    """A right password alone signs nobody in: it leads to the code page, and the code does."""
    secret, _ = enrolled(url, clock)
    with httpx.Client(base_url=url) as http:
        first = password_step(http)
        assert first.status_code == 303 and first.headers["location"] == "/desk/login/code"
        assert "desk_session" not in http.cookies
        assert http.get("/desk/").headers["location"].startswith("/desk/login")
        done = code_step(http, code_at(secret, clock()))
        assert done.status_code == 303 and done.headers["location"] == "/desk/"
        assert http.get("/desk/").status_code == 200


def test_a_code_replayed_within_its_window_is_refused(url: str, clock: Clock) -> None:
    """The code that signed one browser in is refused to another while it would still be good."""
    secret, _ = enrolled(url, clock)
    code = code_at(secret, clock())
    with httpx.Client(base_url=url) as first:
        password_step(first)
        assert code_step(first, code).status_code == 303
    clock.tick(20)
    with httpx.Client(base_url=url) as second:
        password_step(second)
        replay = code_step(second, code)
    assert replay.status_code == 400
    assert "used already" in replay.text
    assert "desk_session" not in second.cookies


def test_an_older_code_after_a_newer_one_is_refused(url: str, clock: Clock) -> None:
    """Once a code for one time step is taken, the previous step's code is refused too."""
    secret, _ = enrolled(url, clock)
    with httpx.Client(base_url=url) as first:
        password_step(first)
        assert code_step(first, code_at(secret, clock() + timedelta(seconds=30))).status_code == 303
    with httpx.Client(base_url=url) as second:
        password_step(second)
        assert code_step(second, code_at(secret, clock())).status_code == 400


def test_a_recovery_code_works_once(url: str, clock: Clock) -> None:
    """A recovery code signs in in place of the app's code, and never again."""
    _, codes = enrolled(url, clock)
    with httpx.Client(base_url=url) as first:
        password_step(first)
        used = code_step(first, codes[3].upper())
        assert used.status_code == 303
        assert used.headers["location"] == "/desk/account?m=recovery-used"
        page = first.get(used.headers["location"]).text
        assert "You signed in with a recovery code" in page and "Recovery codes left: 9" in page
    with httpx.Client(base_url=url) as second:
        password_step(second)
        again = code_step(second, codes[3])
    assert again.status_code == 400
    assert "recovery code" in again.text


def test_wrong_codes_are_throttled_like_passwords(url: str, clock: Clock) -> None:
    """After desk.login_failures wrong codes, even the right one waits (429 with Retry-After)."""
    secret, _ = enrolled(url, clock)
    right = code_at(secret, clock())
    wrong = next(c for c in ("123456", "654321", "111111") if c != right)
    with httpx.Client(base_url=url) as http:
        password_step(http)
        answers = [code_step(http, wrong).status_code for _ in range(5)]
        last = code_step(http, right)
    assert answers == [400] * 5
    assert last.status_code == 429 and int(last.headers["retry-after"]) > 0


def test_the_code_page_waits_five_minutes_at_most(url: str, clock: Clock) -> None:
    """A right password left without its code expires: the code then leads back to the password."""
    secret, _ = enrolled(url, clock)
    with httpx.Client(base_url=url) as http:
        password_step(http)
        form = http.get("/desk/login/code")
        clock.tick(301)
        late = http.post("/desk/login/code", data={"csrf": csrf_of(form.text), "code": code_at(secret, clock())})
    assert late.status_code == 400
    assert "expired" in late.text and 'action="/desk/login"' in late.text


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    configured = os.environ.get(POSTGRES_ENV)
    if configured:
        yield configured
        return
    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    quick_hashes(monkeypatch)
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'p.db'}"
    else:
        name = f"two_step_{abs(hash(request.node.name)) % 10**8}"
        url = fresh_database(request.getfixturevalue("postgres_url"), name)
    engine = open_store(url)
    yield engine
    engine.dispose()


def test_browsers_sending_one_code_at_once_sign_in_once(store: Engine, clock: Clock) -> None:
    """Of eight sign-ins finished at the same moment with the same code, exactly one
    succeeds, on SQLite and on PostgreSQL."""
    policy = SessionPolicy(lifetime=timedelta(hours=1), idle=timedelta(hours=1), per_account=50, per_address=50)
    user = accounts.add_user(store, "editor@example.org", role="editor", password=PASSWORD, now=clock())
    enrolment = accounts.begin_two_factor(store, user, now=clock(), secret=SECRET, issuer="t")
    accounts.confirm_two_factor(
        store, user, code_at(enrolment.secret, clock()), address="a", now=clock(), policy=policy, secret=SECRET
    )
    clock.tick(60)
    tokens = []
    for _ in range(8):
        step = accounts.sign_in(store, user.email, PASSWORD, address="a", now=clock(), policy=policy)
        assert isinstance(step, accounts.CodeNeeded)
        tokens.append(step.token)
    code = code_at(enrolment.secret, clock())
    barrier = threading.Barrier(len(tokens))

    def finish(token: str) -> str:
        barrier.wait()
        try:
            accounts.sign_in_with_code(store, token, code, address="a", now=clock(), policy=policy, secret=SECRET)
        except AccountError as exc:
            return str(exc)
        return "in"

    with ThreadPoolExecutor(len(tokens)) as pool:
        results = list(pool.map(finish, tokens))
    assert results.count("in") == 1, results
    assert all("used already" in r for r in results if r != "in"), results


def test_moving_to_a_new_phone_keeps_the_old_one_until_the_new_is_confirmed(url: str, clock: Clock) -> None:
    """A new phone's key is shown while the old phone's codes still sign in; once a code
    from the new phone confirms it, the old phone's codes stop working."""
    old, _ = enrolled(url, clock)
    with httpx.Client(base_url=url) as http:
        password_step(http)
        code_step(http, code_at(old, clock()))
        new, started = start_setup(http)
        assert new != old and "Moving to a new phone" in started.text
        clock.tick(60)
        with httpx.Client(base_url=url) as meanwhile:
            password_step(meanwhile)
            assert code_step(meanwhile, code_at(old, clock())).status_code == 303
        clock.tick(60)
        from_old = http.post(
            "/desk/account/two-factor/confirm", data={"csrf": csrf_of(started.text), "code": code_at(old, clock())}
        )
        assert from_old.status_code == 400
        moved = http.post(
            "/desk/account/two-factor/confirm", data={"csrf": csrf_of(started.text), "code": code_at(new, clock())}
        )
        assert moved.status_code == 201 and "Your recovery codes" in moved.text
    clock.tick(60)
    with httpx.Client(base_url=url) as later:
        password_step(later)
        assert code_step(later, code_at(old, clock())).status_code == 400
        assert code_step(later, code_at(new, clock())).status_code == 303


def test_a_secret_sealed_under_another_publisher_secret_says_what_to_do() -> None:
    """A secret that the current PUBLISHER_SECRET cannot open names the reset command."""
    sealed = totp.seal("the old secret, long enough to be real", "JBSWY3DPEHPK3PXP")
    with pytest.raises(AccountError, match="reset-2fa"):
        totp.unseal("a new secret, also long enough to be real", sealed)


def test_sign_out_everywhere_ends_sessions_opened_with_a_code(url: str, clock: Clock) -> None:
    """The account page lists the sessions; "sign out everywhere" ends every one of them."""
    secret, _ = enrolled(url, clock)
    with httpx.Client(base_url=url) as phone, httpx.Client(base_url=url) as laptop:
        password_step(phone)
        code_step(phone, code_at(secret, clock()))
        clock.tick(30)
        password_step(laptop)
        code_step(laptop, code_at(secret, clock()))
        page = laptop.get("/desk/account")
        assert page.text.count("<tr>") >= 3  # the header and both sessions
        assert "(this browser)" in page.text
        laptop.post("/desk/logout-all", data={"csrf": csrf_of(page.text)})
        assert phone.get("/desk/").status_code == 303
        assert laptop.get("/desk/").status_code == 303


# Required for owners


@pytest.fixture
def strict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Clock) -> Iterator[str]:
    config = publication(tmp_path, monkeypatch, '\n[desk]\nrequire_two_factor = "owners"\n')
    with live_server(create_app(config, clock=clock)) as base:
        yield base


def test_an_owner_without_it_is_sent_to_set_it_up_first(strict: str) -> None:
    """With desk.require_two_factor = "owners", an owner's every page leads to the set-up."""
    with httpx.Client(base_url=strict) as http:
        sign_in(http, "owner@example.org")
        for path in ("/desk/", "/desk/settings", "/desk/subscribers"):
            answer = http.get(path)
            assert answer.status_code == 303 and answer.headers["location"] == "/desk/account", path
        page = http.get("/desk/account")
        assert "before anything else" in page.text


def test_an_owner_without_it_can_change_nothing(strict: str) -> None:
    """Until it is set up, an owner's forms elsewhere are refused (403), signing out is not."""
    with httpx.Client(base_url=strict) as http:
        sign_in(http, "owner@example.org")
        token = csrf_of(http.get("/desk/account").text)
        refused = http.post("/desk/settings/keys", data={"csrf": token, "name": "x", "scope-read": "on"})
        assert refused.status_code == 403 and "/desk/account" in refused.text
        assert http.post("/desk/logout", data={"csrf": token}).status_code == 303


def test_an_owner_with_it_set_up_goes_everywhere(strict: str, clock: Clock) -> None:
    """Once the owner has turned it on, the desk opens."""
    with httpx.Client(base_url=strict) as http:
        sign_in(http, "owner@example.org")
        turn_on(http, clock)
        assert http.get("/desk/").status_code == 200


def test_an_editor_is_not_held_when_only_owners_must(strict: str) -> None:
    """"owners" asks nothing of editors."""
    with httpx.Client(base_url=strict) as http:
        sign_in(http, "editor@example.org")
        assert http.get("/desk/").status_code == 200


def test_an_owner_cannot_turn_off_what_is_required(strict: str, clock: Clock) -> None:
    """Where it is required, the account's own "turn off" is refused and it stays on."""
    with httpx.Client(base_url=strict) as http:
        sign_in(http, "owner@example.org")
        turn_on(http, clock)
        page = http.get("/desk/account")
        answer = http.post("/desk/account/two-factor/off", data={"csrf": csrf_of(page.text)})
    assert answer.status_code == 409 and "required" in answer.text


def test_everyone_means_viewers_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Clock) -> None:
    """With desk.require_two_factor = "everyone", a viewer is sent to set it up as well."""
    config = publication(tmp_path, monkeypatch, '\n[desk]\nrequire_two_factor = "everyone"\n')
    with live_server(create_app(config, clock=clock)) as base, httpx.Client(base_url=base) as http:
        sign_in(http, "viewer@example.org")
        assert http.get("/desk/").headers["location"] == "/desk/account"


def test_a_setting_that_is_not_a_choice_is_named(tmp_path: Path) -> None:
    """desk.require_two_factor takes off, owners or everyone, and says so."""
    config = make_publication(tmp_path)
    config.path.write_text(config.path.read_text() + '\n[desk]\nrequire_two_factor = "admins"\n')
    with pytest.raises(ConfigError, match=r"require_two_factor.*off, owners, everyone"):
        load_config(config.path, env=dict(config.env))


# Resets


def test_an_owner_resets_someone_elses_second_factor(url: str, clock: Clock) -> None:
    """The owner's reset ends their sessions; they then sign in with the password alone."""
    enrolled(url, clock)
    with httpx.Client(base_url=url) as owner:
        sign_in(owner, "owner@example.org")
        page = owner.get("/desk/account")
        assert "editor@example.org" in page.text
        answer = owner.post(
            "/desk/account/two-factor/reset", data={"csrf": csrf_of(page.text), "email": "editor@example.org"}
        )
        assert answer.status_code == 303
    with httpx.Client(base_url=url) as editor:
        assert password_step(editor).headers["location"] == "/desk/"


def test_an_editor_cannot_reset_anyones_second_factor(url: str, clock: Clock) -> None:
    """Resetting someone else's is for owners only."""
    with httpx.Client(base_url=url) as editor:
        sign_in(editor, "editor@example.org")
        page = editor.get("/desk/account")
        answer = editor.post(
            "/desk/account/two-factor/reset", data={"csrf": csrf_of(page.text), "email": "owner@example.org"}
        )
    assert answer.status_code == 403


def test_the_command_line_resets_a_second_factor(url: str, config: Config, clock: Clock) -> None:
    """`publisher users reset-2fa EMAIL` forgets it; `users list` shows who has one."""
    enrolled(url, clock)
    runner = CliRunner()
    args = ["--config", str(config.path), "users"]
    env = {"PUBLISHER_SECRET": SECRET}
    assert "editor@example.org\teditor" in runner.invoke(cli, [*args, "list"], env=env).output
    assert "two-step" in runner.invoke(cli, [*args, "list"], env=env).output
    result = runner.invoke(cli, [*args, "reset-2fa", "Editor@Example.org"], env=env)
    assert result.exit_code == 0, result.output
    assert "reset for editor@example.org" in result.output
    assert "two-step\n" not in runner.invoke(cli, [*args, "list"], env=env).output
    with httpx.Client(base_url=url) as editor:
        assert password_step(editor).headers["location"] == "/desk/"


def test_the_command_line_names_an_unknown_account(config: Config) -> None:
    """reset-2fa for nobody says so and exits 1."""
    result = CliRunner().invoke(
        cli, ["--config", str(config.path), "users", "reset-2fa", "nobody@example.org"],
        env={"PUBLISHER_SECRET": SECRET},
    )
    assert result.exit_code == 1
    assert "no desk user nobody@example.org" in result.output
