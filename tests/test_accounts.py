"""Desk accounts: Argon2 passwords, sign-in with its throttle, sessions that end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from desk_support import quick_hashes

from publisher import accounts
from publisher.accounts import Role, SessionPolicy
from publisher.errors import AccountError, NotFound, SignInThrottled
from publisher.store import open_store
from publisher.store.schema import desk_sessions, login_failures, users

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
PASSWORD = "a long enough passphrase"
POLICY = SessionPolicy(lifetime=timedelta(hours=10), idle=timedelta(hours=2), per_account=3, per_address=5)


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    quick_hashes(monkeypatch)


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    db = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    accounts.add_user(db, "Dana@Example.org", role="owner", password=PASSWORD, now=NOW)
    return db


def sign_in(engine: sa.Engine, password: str = PASSWORD, *, email: str = "dana@example.org",
            address: str = "192.0.2.1", now: datetime = NOW, device: str = "") -> tuple[str, accounts.DeskSession]:
    done = accounts.sign_in(engine, email, password, address=address, now=now, policy=POLICY, device=device)
    return done.token, done.session


def test_password_is_stored_as_an_argon2id_hash(engine: sa.Engine) -> None:
    """The database holds an Argon2id PHC string, never the password."""
    with engine.connect() as conn:
        stored = conn.execute(sa.select(users.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_bad_accounts_are_refused_with_the_fix(engine: sa.Engine) -> None:
    """A short password, an unknown role, a bad address and a taken address each say what to do."""
    with pytest.raises(AccountError, match="at least 10 characters"):
        accounts.add_user(engine, "sam@example.org", role="editor", password="short", now=NOW)
    with pytest.raises(AccountError, match="viewer, editor, owner"):
        accounts.add_user(engine, "sam@example.org", role="boss", password=PASSWORD, now=NOW)
    with pytest.raises(AccountError, match="not an email address"):
        accounts.add_user(engine, "not-an-address", role="editor", password=PASSWORD, now=NOW)
    with pytest.raises(AccountError, match="reset-password"):
        accounts.add_user(engine, "DANA@example.org", role="editor", password=PASSWORD, now=NOW)


def test_the_last_owner_cannot_be_removed(engine: sa.Engine) -> None:
    """Removing the only owner is refused; with a second owner it works."""
    with pytest.raises(AccountError, match="last owner"):
        accounts.remove_user(engine, "dana@example.org")
    accounts.add_user(engine, "sam@example.org", role="owner", password=PASSWORD, now=NOW)
    accounts.remove_user(engine, "dana@example.org")
    assert [u.email for u in accounts.list_users(engine)] == ["sam@example.org"]
    with pytest.raises(NotFound, match="users list"):
        accounts.remove_user(engine, "nobody@example.org")


def test_sign_in_gives_a_session_whose_cookie_is_not_stored(engine: sa.Engine) -> None:
    """The session row is keyed by the SHA-256 of the cookie value; the value finds it."""
    token, session = sign_in(engine)
    with engine.connect() as conn:
        keys = conn.execute(sa.select(desk_sessions.c.id)).scalars().all()
    assert keys == [accounts.session_key(token)]
    assert token not in keys
    found = accounts.current_session(engine, token, now=NOW, policy=POLICY)
    assert found is not None and found.user.email == "dana@example.org"
    assert found.csrf == session.csrf and len(found.csrf) >= 32


def test_each_sign_in_gets_a_new_session_id(engine: sa.Engine) -> None:
    """Two sign-ins never share a session id or a CSRF token."""
    first, one = sign_in(engine)
    second, two = sign_in(engine)
    assert first != second and one.id != two.id and one.csrf != two.csrf


def test_wrong_password_and_unknown_address_get_one_answer(engine: sa.Engine) -> None:
    """Whether the address has an account or not, the refusal reads the same."""
    with pytest.raises(AccountError) as wrong:
        sign_in(engine, "not the passphrase")
    with pytest.raises(AccountError) as unknown:
        sign_in(engine, PASSWORD, email="nobody@example.org")
    assert str(wrong.value) == str(unknown.value)
    assert not isinstance(wrong.value, SignInThrottled)


def test_an_account_is_throttled_for_the_client_that_failed(engine: sa.Engine) -> None:
    """After per_account failures from one client even the right password is refused there,
    until the window passes."""
    for minute in range(POLICY.per_account):
        with pytest.raises(AccountError):
            sign_in(engine, "guess", now=NOW + timedelta(minutes=minute))
    with pytest.raises(SignInThrottled) as throttled:
        sign_in(engine, now=NOW + timedelta(minutes=5))
    assert 0 < throttled.value.retry_after <= accounts.LOGIN_WINDOW.total_seconds()
    token, _ = sign_in(engine, now=NOW + accounts.LOGIN_WINDOW + timedelta(minutes=1))
    assert token


def test_an_attacker_elsewhere_does_not_lock_the_owner_out(engine: sa.Engine) -> None:
    """Hammering at the owner's address from client A throttles A; the owner signs in from B."""
    for _ in range(POLICY.per_account * 4):
        with pytest.raises(AccountError):
            sign_in(engine, "guess", address="203.0.113.66")
    with pytest.raises(SignInThrottled):
        sign_in(engine, address="203.0.113.66")
    assert sign_in(engine, address="198.51.100.20")[0]


def test_many_clients_hold_strangers_back_but_not_the_owners_browser(engine: sa.Engine) -> None:
    """Past the account-wide cap a new client is refused, while a browser that signed in
    before (its device cookie) still gets in."""
    owner = accounts.sign_in(engine, "dana@example.org", PASSWORD, address="198.51.100.20", now=NOW, policy=POLICY)
    cap = POLICY.per_account * accounts.ACCOUNT_SPREAD
    for n in range(cap):
        with pytest.raises(AccountError):
            sign_in(engine, "guess", address=f"10.0.{n // 200}.{n % 200}")
    with pytest.raises(SignInThrottled):
        sign_in(engine, address="192.0.2.200")
    with pytest.raises(SignInThrottled):
        sign_in(engine, address="198.51.100.20")  # the owner's network, without the browser
    assert sign_in(engine, address="198.51.100.20", device=owner.device)[0]


def test_a_device_cookie_counts_only_for_its_own_user(engine: sa.Engine) -> None:
    """Dana's device cookie does not lift the limits for another account."""
    accounts.add_user(engine, "sam@example.org", role="editor", password=PASSWORD, now=NOW)
    dana = accounts.sign_in(engine, "dana@example.org", PASSWORD, address="192.0.2.1", now=NOW, policy=POLICY)
    for _ in range(POLICY.per_account):
        with pytest.raises(AccountError):
            sign_in(engine, "guess", email="sam@example.org", device=dana.device)
    with pytest.raises(SignInThrottled):
        sign_in(engine, email="sam@example.org", device=dana.device)


def test_ended_throttle_windows_are_forgotten(engine: sa.Engine) -> None:
    """Failures from many clients leave rows only until their window ends: the next
    failure after it clears them, so guessing from everywhere cannot fill the table."""
    for n in range(30):
        with pytest.raises(AccountError):
            sign_in(engine, "guess", email=f"user{n}@example.org", address=f"10.1.0.{n}")
    later = NOW + accounts.LOGIN_WINDOW + timedelta(seconds=1)
    with pytest.raises(AccountError):
        sign_in(engine, "guess", address="10.2.0.1", now=later)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(login_failures)).scalar_one() == 3


def test_a_browser_that_signed_in_keeps_its_device_cookie(engine: sa.Engine) -> None:
    """A first sign-in hands out a device cookie; signing in with it hands the same one back."""
    first = accounts.sign_in(engine, "dana@example.org", PASSWORD, address="192.0.2.1", now=NOW, policy=POLICY)
    again = accounts.sign_in(
        engine, "dana@example.org", PASSWORD, address="192.0.2.9", now=NOW, policy=POLICY, device=first.device
    )
    assert len(first.device) >= 32 and again.device == first.device


def test_an_address_is_throttled_across_accounts(engine: sa.Engine) -> None:
    """One address guessing at many accounts is stopped, and a right password does not reopen it."""
    for n in range(POLICY.per_address):
        with pytest.raises(AccountError):
            sign_in(engine, "guess", email=f"user{n}@example.org", address="203.0.113.7")
    with pytest.raises(SignInThrottled):
        sign_in(engine, address="203.0.113.7")
    assert sign_in(engine, address="203.0.113.8")[0]


def test_a_success_clears_the_accounts_failures(engine: sa.Engine) -> None:
    """Failures before a good sign-in do not count towards the next throttle."""
    for _ in range(POLICY.per_account - 1):
        with pytest.raises(AccountError):
            sign_in(engine, "guess")
    sign_in(engine)
    for _ in range(POLICY.per_account - 1):
        with pytest.raises(AccountError):
            sign_in(engine, "guess")
    assert sign_in(engine)[0]


def test_sessions_expire_and_go_idle(engine: sa.Engine) -> None:
    """A session ends after its lifetime, and sooner when unused for `idle`."""
    token, _ = sign_in(engine)
    for hour in range(1, 10):
        assert accounts.current_session(engine, token, now=NOW + timedelta(hours=hour), policy=POLICY)
    assert accounts.current_session(engine, token, now=NOW + timedelta(hours=10), policy=POLICY) is None
    idle, _ = sign_in(engine)
    assert accounts.current_session(engine, idle, now=NOW + timedelta(hours=2), policy=POLICY) is None


def test_sign_out_everywhere_and_a_new_password_end_every_session(engine: sa.Engine) -> None:
    """Sign out everywhere ends all of the user's sessions; so does a password reset."""
    one, session = sign_in(engine)
    two, _ = sign_in(engine)
    assert accounts.sign_out_everywhere(engine, session) == 2
    assert accounts.current_session(engine, one, now=NOW, policy=POLICY) is None
    assert accounts.current_session(engine, two, now=NOW, policy=POLICY) is None
    three, _ = sign_in(engine)
    accounts.reset_password(engine, "dana@example.org", password="another long passphrase", now=NOW)
    assert accounts.current_session(engine, three, now=NOW, policy=POLICY) is None
    with pytest.raises(AccountError):
        sign_in(engine)
    assert sign_in(engine, "another long passphrase")[0]


def test_roles_include_the_ones_below() -> None:
    """Owners may do what editors may, editors what viewers may; unknown roles nothing."""
    assert accounts.allows("owner", Role.EDITOR) and accounts.allows("editor", Role.VIEWER)
    assert not accounts.allows("viewer", Role.EDITOR) and not accounts.allows("editor", Role.OWNER)
    assert not accounts.allows("admin", Role.VIEWER)


def test_an_attempt_that_read_the_clock_earlier_counts_in_the_window_already_open(engine: sa.Engine) -> None:
    """Two sign-ins at once: the one that read the clock first but took the lock second
    counts in the window the other opened; it does not start a window of its own."""
    from publisher.store import sessions

    window = timedelta(minutes=15)
    assert sessions.take(engine, [("pair a b", 1)], now=NOW + timedelta(milliseconds=5), window=window) == 0.0
    assert sessions.take(engine, [("pair a b", 1)], now=NOW, window=window) > 0
