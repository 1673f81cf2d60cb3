"""Sign-in with an OpenID Connect provider, through the real desk over HTTP on loopback.

Two providers: oidc-provider-mock (a real Authlib provider, in a thread) for the flow as
it is meant to go, and a small one of our own whose ID tokens are wrong in one way each
(nonce, audience, issuer, expiry, signature, an unverified address), signed with keys
made here.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
from click.testing import CliRunner
from desk_support import add_users, csrf_of, quick_hashes, sign_in
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from web_support import live_server, make_publication

from publisher import accounts
from publisher.accounts import SessionPolicy
from publisher.cli import cli
from publisher.config import Config
from publisher.store import open_store
from publisher.web import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the mock imports authlib.jose, which Authlib now warns about
    import oidc_provider_mock

CLIENT_ID = "the-desk"
CLIENT_SECRET = "a client secret for the desk"


def desk_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, issuer: str) -> Config:
    quick_hashes(monkeypatch)
    extra = f'\n[desk.oidc]\nissuer = "{issuer}"\nclient_id = "{CLIENT_ID}"\nlabel = "Test IdP"\n'
    config = make_publication(tmp_path, extra=extra, env={"PUBLISHER_OIDC_CLIENT_SECRET": CLIENT_SECRET})
    add_users(config)
    return config


def leave_for_provider(desk: httpx.Client) -> httpx.URL:
    """Press "Sign in with ..." on the sign-in page: where the desk sends the browser."""
    page = desk.get("/desk/login?next=/desk/subscribers")
    assert "Sign in with Test IdP" in page.text
    assert 'href="/desk/login/oidc?next=/desk/subscribers"' in page.text
    answer = desk.get("/desk/login/oidc?next=/desk/subscribers")
    assert answer.status_code == 303, answer.text
    assert "desk_oidc" in desk.cookies
    return httpx.URL(answer.headers["location"])


def callback_path(location: str) -> str:
    """The desk's callback path and query from the provider's redirect to it."""
    parts = urlsplit(location)
    assert parts.path == "/desk/login/oidc/callback"
    return f"{parts.path}?{parts.query}"


# The real provider


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # the mock refuses plain http otherwise
    users = [
        oidc_provider_mock.User(sub="owner", claims={"email": "Owner@Example.org", "email_verified": True}),
        oidc_provider_mock.User(sub="stranger", claims={"email": "stranger@example.org", "email_verified": True}),
        oidc_provider_mock.User(sub="unverified", claims={"email": "editor@example.org", "email_verified": False}),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with oidc_provider_mock.run_server_in_thread(require_nonce=True, user_claims=users) as server:
            yield f"http://localhost:{server.server_port}"


@pytest.fixture
def desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider: str) -> Iterator[tuple[str, Config]]:
    config = desk_for(tmp_path, monkeypatch, provider)
    with live_server(create_app(config)) as base:
        yield base, config


def through_provider(desk: httpx.Client, sub: str) -> httpx.Response:
    """The whole trip: to the provider, choose `sub` there, and back to the desk."""
    authorize = leave_for_provider(desk)
    with warnings.catch_warnings(), httpx.Client() as browser:
        warnings.simplefilter("ignore")
        assert browser.get(authorize).status_code == 200
        chosen = browser.post(authorize, data={"sub": sub})
    assert chosen.status_code == 302, chosen.text
    return desk.get(callback_path(chosen.headers["location"]))


def test_a_verified_address_of_an_account_signs_in(desk: tuple[str, Config]) -> None:
    """The provider's verified address, matched without regard to case, opens a session
    and comes back to the page the sign-in started from."""
    base, _ = desk
    with httpx.Client(base_url=base) as http:
        back = through_provider(http, "owner")
        assert back.status_code == 303 and back.headers["location"] == "/desk/subscribers"
        assert http.get("/desk/").status_code == 200
        assert "owner@example.org" in http.get("/desk/account").text


def test_sign_out_everywhere_ends_a_session_from_the_provider(desk: tuple[str, Config]) -> None:
    """A session the provider opened is listed on the account page and ends with the others."""
    base, _ = desk
    with httpx.Client(base_url=base) as via_provider, httpx.Client(base_url=base) as by_password:
        through_provider(via_provider, "owner")
        sign_in(by_password, "owner@example.org")
        page = by_password.get("/desk/account")
        assert page.text.count("<tr>") >= 3
        by_password.post("/desk/logout-all", data={"csrf": csrf_of(page.text)})
        assert via_provider.get("/desk/").status_code == 303


def test_an_address_without_an_account_is_refused(desk: tuple[str, Config]) -> None:
    """Nobody signs themselves up: an unknown address gets a page that says to ask an owner."""
    base, config = desk
    with httpx.Client(base_url=base) as http:
        back = through_provider(http, "stranger")
        assert back.status_code == 403
        assert "no account for stranger@example.org on this desk" in back.text
        assert "ask an owner" in back.text
        assert http.get("/desk/").status_code == 303
    engine = open_store(config.store_url)
    try:
        assert "stranger@example.org" not in {u.email for u in accounts.list_users(engine)}
    finally:
        engine.dispose()


def test_an_unverified_address_is_refused(desk: tuple[str, Config]) -> None:
    """An address the provider has not verified signs nobody in, even an account's."""
    base, _ = desk
    with httpx.Client(base_url=base) as http:
        back = through_provider(http, "unverified")
        assert back.status_code == 403 and "has not verified" in back.text
        assert http.get("/desk/").status_code == 303


def test_the_answer_counts_only_in_the_browser_that_left(desk: tuple[str, Config]) -> None:
    """A callback brought to another browser (no state cookie: a login CSRF) is refused."""
    base, _ = desk
    with httpx.Client(base_url=base) as leaver, httpx.Client(base_url=base) as victim:
        authorize = leave_for_provider(leaver)
        with warnings.catch_warnings(), httpx.Client() as browser:
            warnings.simplefilter("ignore")
            chosen = browser.post(authorize, data={"sub": "owner"})
        back = victim.get(callback_path(chosen.headers["location"]))
        assert back.status_code == 403 and "another browser" in back.text
        assert victim.get("/desk/").status_code == 303


def test_the_answer_is_taken_once(desk: tuple[str, Config]) -> None:
    """The same callback again (a replay, a reload) signs nobody in a second time."""
    base, _ = desk
    with httpx.Client(base_url=base) as http:
        authorize = leave_for_provider(http)
        state_cookie = http.cookies["desk_oidc"]
        with warnings.catch_warnings(), httpx.Client() as browser:
            warnings.simplefilter("ignore")
            chosen = browser.post(authorize, data={"sub": "owner"})
        path = callback_path(chosen.headers["location"])
        assert http.get(path).status_code == 303
    with httpx.Client(base_url=base, cookies={"desk_oidc": state_cookie}) as again:
        replay = again.get(path)
        assert replay.status_code == 403 and "already used" in replay.text


def test_an_account_with_two_step_sign_in_is_asked_for_its_code(desk: tuple[str, Config]) -> None:
    """The provider is a first step like the password: the account's code still follows."""
    base, config = desk
    engine = open_store(config.store_url)
    try:
        owner = next(u for u in accounts.list_users(engine) if u.role == "owner")
        now = datetime.now(UTC)
        secret = config.secret("PUBLISHER_SECRET") or ""
        enrolment = accounts.begin_two_factor(engine, owner, now=now, secret=secret, issuer="t")
        accounts.confirm_two_factor(
            engine, owner, pyotp.TOTP(enrolment.secret).at(now), address="x", now=now,
            policy=SessionPolicy.from_config(config), secret=secret,
        )
    finally:
        engine.dispose()
    with httpx.Client(base_url=base) as http:
        back = through_provider(http, "owner")
        assert back.status_code == 303 and back.headers["location"] == "/desk/login/code"
        assert http.get("/desk/").status_code == 303


def test_a_refusal_at_the_provider_is_said_on_the_sign_in_page(desk: tuple[str, Config]) -> None:
    """Pressing "deny" at the provider comes back to a page that says so, signed out."""
    base, _ = desk
    with httpx.Client(base_url=base) as http:
        authorize = leave_for_provider(http)
        with warnings.catch_warnings(), httpx.Client() as browser:
            warnings.simplefilter("ignore")
            denied = browser.post(authorize, data={"action": "deny"})
        back = http.get(callback_path(denied.headers["location"]))
        assert back.status_code == 400 and "did not sign you in" in back.text
        assert http.get("/desk/").status_code == 303


def test_a_provider_without_a_client_id_says_what_to_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An issuer without desk.oidc.client_id keeps its button, which says what is missing."""
    quick_hashes(monkeypatch)
    config = make_publication(tmp_path, extra='\n[desk.oidc]\nissuer = "https://id.example.org"\n')
    with live_server(create_app(config)) as base, httpx.Client(base_url=base) as http:
        page = http.get("/desk/login")
        assert "Sign in with your sign-in provider" in page.text
        answer = http.get("/desk/login/oidc")
    assert answer.status_code == 400 and "needs desk.oidc.client_id" in answer.text


def test_no_provider_configured_offers_no_button(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without desk.oidc.issuer the sign-in page has no provider button, and its route refuses."""
    quick_hashes(monkeypatch)
    config = make_publication(tmp_path)
    with live_server(create_app(config)) as base, httpx.Client(base_url=base) as http:
        page = http.get("/desk/login")
        assert "Sign in with" not in page.text
        answer = http.get("/desk/login/oidc")
    assert answer.status_code == 400 and "desk.oidc.issuer" in answer.text


# A provider of our own, whose ID tokens are wrong on purpose


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Forger:
    """What the provider signs next, and what it was sent."""

    issuer: str = ""
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "k1"}))
    wrong: str = ""
    nonce: str = ""
    discovery_issuer: str = ""
    token_requests: list[dict[str, list[str]]] = field(default_factory=list)
    auth_headers: list[str] = field(default_factory=list)

    def id_token(self) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer, "sub": "42", "aud": CLIENT_ID, "iat": now, "exp": now + 300,
            "nonce": self.nonce, "email": "owner@example.org", "email_verified": True,
        }
        key = self.key
        if self.wrong == "nonce":
            claims["nonce"] = "not-the-one-sent"
        elif self.wrong == "audience":
            claims["aud"] = "another-client"
        elif self.wrong == "issuer":
            claims["iss"] = "https://evil.example.net"
        elif self.wrong == "expired":
            claims["iat"], claims["exp"] = now - 3600, now - 600
        elif self.wrong == "signature":
            key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
        elif self.wrong == "unverified":
            claims["email_verified"] = False
        elif self.wrong == "unsigned":
            header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
            return f"{header}.{_b64(json.dumps(claims).encode())}."
        return jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)


def forging_provider(forger: Forger) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _json(self, data: object, status: int = 200) -> None:
            body = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/.well-known/openid-configuration":
                self._json({
                    "issuer": forger.discovery_issuer or forger.issuer,
                    "authorization_endpoint": forger.issuer + "/authorize",
                    "token_endpoint": forger.issuer + "/token",
                    "jwks_uri": forger.issuer + "/jwks",
                })
            elif self.path == "/jwks":
                self._json(KeySet([forger.key]).as_dict(private=False))
            else:
                self._json({"error": "not_found"}, 404)

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            forger.token_requests.append(parse_qs(self.rfile.read(length).decode()))
            forger.auth_headers.append(self.headers.get("authorization", ""))
            self._json({"access_token": "x", "token_type": "Bearer", "id_token": forger.id_token()})

    return Handler


@pytest.fixture
def forger() -> Iterator[Forger]:
    made = Forger()
    server = ThreadingHTTPServer(("127.0.0.1", 0), forging_provider(made))
    made.issuer = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield made
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def forged_desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forger: Forger) -> Iterator[str]:
    config = desk_for(tmp_path, monkeypatch, forger.issuer)
    with live_server(create_app(config)) as base:
        yield base


@contextlib.contextmanager
def forged_trip(base: str, forger: Forger) -> Iterator[tuple[httpx.Client, httpx.Response, httpx.URL]]:
    """To the forger (which is told the nonce sent) and straight back with a code."""
    with httpx.Client(base_url=base) as http:
        authorize = leave_for_provider(http)
        params = authorize.params
        forger.nonce = params["nonce"]
        yield http, http.get(f"/desk/login/oidc/callback?code=abc&state={params['state']}"), authorize


def test_a_right_token_from_our_own_provider_signs_in(forged_desk: str, forger: Forger) -> None:
    """The control case: the forger's honest token signs the owner in."""
    with forged_trip(forged_desk, forger) as (http, back, _):
        assert back.status_code == 303
        assert http.get("/desk/").status_code == 200


def test_the_code_exchange_carries_pkce_and_the_client_secret(forged_desk: str, forger: Forger) -> None:
    """The authorization request sends an S256 challenge; the token request, its verifier
    and the client's secret (HTTP Basic)."""
    with forged_trip(forged_desk, forger) as (_, _, authorize):
        pass
    assert authorize.params["code_challenge_method"] == "S256"
    assert authorize.params["response_type"] == "code" and "openid" in authorize.params["scope"]
    verifier = forger.token_requests[0]["code_verifier"][0]
    challenge = _b64(hashlib.sha256(verifier.encode()).digest())
    assert challenge == authorize.params["code_challenge"]
    expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert forger.auth_headers[0] == expected


@pytest.mark.parametrize(
    ("wrong", "says"),
    [
        ("nonce", "nonce differs"),
        ("audience", "another client"),
        ("issuer", "issued by 'https://evil.example.net'"),
        ("expired", "has expired"),
        ("signature", "does not verify"),
        ("unsigned", "does not verify"),
        ("unverified", "has not verified"),
    ],
)
def test_a_wrong_id_token_is_refused(forged_desk: str, forger: Forger, wrong: str, says: str) -> None:
    """Each way an ID token can be wrong is refused with a page that says which, and nobody is signed in."""
    forger.wrong = wrong
    with forged_trip(forged_desk, forger) as (http, back, _):
        assert back.status_code == 403
        assert says in back.text.replace("&#39;", "'"), back.text
        assert "desk_session" not in http.cookies
        assert http.get("/desk/").status_code == 303


def test_a_provider_that_names_another_issuer_is_refused(forged_desk: str, forger: Forger) -> None:
    """Discovery whose issuer is not the configured one stops the sign-in before it leaves."""
    forger.discovery_issuer = "https://someone-else.example.net"
    with httpx.Client(base_url=forged_desk) as http:
        answer = http.get("/desk/login/oidc")
    assert answer.status_code == 502
    assert "set desk.oidc.issuer" in answer.text


def test_a_provider_that_does_not_answer_is_said_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An issuer where nothing listens gets a page that says so, quickly."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = desk_for(tmp_path, monkeypatch, f"http://127.0.0.1:{port}")
    with live_server(create_app(config)) as base, httpx.Client(base_url=base) as http:
        started = time.monotonic()
        answer = http.get("/desk/login/oidc")
    assert answer.status_code == 502 and "did not answer" in answer.text
    assert time.monotonic() - started < 10


def test_an_account_added_without_a_password_signs_in_through_the_provider_only(desk: tuple[str, Config]) -> None:
    """`users add --no-password` invites an address the provider vouches for; no password opens it."""
    base, config = desk
    result = CliRunner().invoke(
        cli,
        ["--config", str(config.path), "users", "add", "stranger@example.org", "--role", "editor", "--no-password"],
        env={"PUBLISHER_SECRET": "x" * 40},
    )
    assert result.exit_code == 0, result.output
    assert "through the sign-in provider" in result.output
    with httpx.Client(base_url=base) as http:
        for guess in ("", "!", "a long enough passphrase"):
            page = http.get("/desk/login")
            answer = http.post(
                "/desk/login", data={"csrf": csrf_of(page.text), "email": "stranger@example.org", "password": guess}
            )
            assert answer.status_code == 400, guess
        assert through_provider(http, "stranger").status_code == 303
        assert http.get("/desk/").status_code == 200


def test_an_owner_invites_someone_without_a_password_who_then_signs_in_through_the_provider(
    desk: tuple[str, Config],
) -> None:
    """Settings' "Add someone" takes an empty password when a sign-in provider is set: the
    person invited has no password to guess, and gets in through the provider."""
    base, config = desk
    with httpx.Client(base_url=base) as owner:
        sign_in(owner, "owner@example.org")
        page = owner.get("/desk/settings")
        assert "Leave it empty and they sign in with Test IdP" in page.text
        assert "content: no such folder" in page.text  # the page names it rather than failing
        added = owner.post(
            "/desk/settings/users",
            data={"csrf": csrf_of(page.text), "email": "stranger@example.org", "role": "editor", "password": ""},
        )
        assert added.status_code == 303, added.text
    engine = open_store(config.store_url)
    try:
        (invited,) = [u for u in accounts.list_users(engine) if u.email == "stranger@example.org"]
        assert invited.password_hash == accounts.NO_PASSWORD
    finally:
        engine.dispose()
    with httpx.Client(base_url=base) as http:
        assert http.post("/desk/login", data={"email": "stranger@example.org", "password": ""}).status_code != 303
        back = through_provider(http, "stranger")
        assert back.status_code == 303, back.text
        assert http.get("/desk/").status_code == 200
