"""The desk's door: sessions, cookies, CSRF and roles, over real HTTP on loopback."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from desk_support import PASSWORD, add_users, csrf_of, quick_hashes, sign_in
from starlette.routing import Mount, Route
from web_support import live_server, make_publication

from publisher.config import Config, load_config
from publisher.schedule import daemon
from publisher.web import create_app


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


def proxied_publication(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, public_url: str = "https://app.example.org",
    proxies: str = '["127.0.0.1"]',
) -> Config:
    """The test publication behind a proxy on this host, listed in [server] trusted_proxies."""
    quick_hashes(monkeypatch)
    config = make_publication(tmp_path)
    text = config.path.read_text().replace(
        'public_url = "https://app.example.org"', f'public_url = "{public_url}"\ntrusted_proxies = {proxies}'
    )
    config.path.write_text(text)
    add_users(config)
    return load_config(config.path, env=dict(config.env))


def served(config: Config) -> contextlib.AbstractContextManager[str]:
    """The app as `publisher serve` runs it (uvicorn reads no proxy headers itself)."""
    app = create_app(config)
    options = daemon.server_config(app, host="127.0.0.1", port=0)
    options.log_level = "warning"
    return live_server(app, config=options)


WITHOUT_SESSION = {
    "/desk/login",
    # The steps of a sign-in: the code after the password, the trip to a provider and back.
    "/desk/login/code",
    "/desk/login/oidc",
    "/desk/login/oidc/callback",
    # Signing in again from an editor's save that came after the session ended.
    "/desk/login/resume",
    # A forgotten password: asking for a link, and the mailed link's own page.
    "/desk/login/forgot",
    "/desk/login/reset/some-slug",
    # A preview's pictures: the preview's random key is the permission (see desk.previews),
    # since a sandboxed frame sends no cookie.
    "/desk/preview/some-slug/media/some-slug",
}


def desk_routes(config: Config) -> list[tuple[str, set[str]]]:
    """Every desk route (path with sample parameters, methods), found by walking the app."""
    app = create_app(config)
    [desk] = [r for r in app.routes if isinstance(r, Mount) and r.path == "/desk"]
    found = []
    for route in desk.routes:
        if isinstance(route, Route):
            path = "/desk" + route.path.replace("{path:path}", "a/b.md")
            path = re.sub(r"\{\w+:int\}", "1", path)
            path = re.sub(r"\{\w+\}", "some-slug", path)
            found.append((path, set(route.methods or ())))
    return found


def test_every_route_without_a_session_goes_to_login(config: Config, url: str) -> None:
    """GETs redirect to the sign-in page (coming back afterwards), POSTs are refused."""
    routes = desk_routes(config)
    assert len(routes) >= 3
    with httpx.Client(base_url=url) as http:
        for path, methods in routes:
            if path in WITHOUT_SESSION:
                continue
            if "GET" in methods:
                answer = http.get(path)
                assert answer.status_code == 303, path
                assert answer.headers["location"].startswith("/desk/login?next=/desk"), path
            if "POST" in methods:
                assert http.post(path, data={"csrf": "x"}).status_code == 401, path


def test_sign_in_sets_a_strict_cookie_and_shows_home(url: str) -> None:
    """The session cookie is HttpOnly, SameSite=Lax, scoped to /desk, not Secure over http."""
    with httpx.Client(base_url=url) as http:
        answer = sign_in(http)
        assert answer.status_code == 303 and answer.headers["location"] == "/desk/"
        cookie = answer.headers["set-cookie"]
        assert "desk_session=" in cookie
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/desk" in cookie
        assert "Secure" not in cookie
        home = http.get("/desk/")
    assert home.status_code == 200
    assert "editor@example.org" in home.text
    assert "script-src 'self'" in home.headers["content-security-policy"]
    assert "unsafe-inline" not in home.headers["content-security-policy"]


def test_cookie_is_secure_behind_https(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over https (as a trusted proxy reports it) the cookie is marked Secure."""
    config = proxied_publication(tmp_path, monkeypatch, public_url="http://app.example.org")
    with served(config) as base, httpx.Client(base_url=base) as http:
        form = http.get("/desk/login", headers={"x-forwarded-proto": "https"})
        assert "Secure" in form.headers["set-cookie"]
        token = csrf_of(form.text)
        # httpx keeps Secure cookies for https only, as browsers do: hand it back by hand.
        answer = http.post(
            "/desk/login", headers={"x-forwarded-proto": "https", "cookie": f"desk_login={token}"},
            data={"csrf": token, "email": "viewer@example.org", "password": PASSWORD},
        )
    assert answer.status_code == 303
    assert "Secure" in answer.headers["set-cookie"]


def test_a_cookie_held_before_sign_in_never_becomes_the_session(url: str) -> None:
    """Session fixation: a planted session cookie is replaced at sign-in."""
    planted = "planted-by-someone-else-0123456789"
    with httpx.Client(base_url=url) as http:
        form = http.get("/desk/login", headers={"cookie": f"desk_session={planted}"})
        token = csrf_of(form.text)
        answer = http.post(
            "/desk/login", headers={"cookie": f"desk_session={planted}; desk_login={token}"},
            data={"csrf": token, "email": "editor@example.org", "password": PASSWORD},
        )
        assert answer.status_code == 303
        given = answer.headers["set-cookie"].split(";")[0].split("=", 1)[1]
        assert given != planted
        assert http.get("/desk/", headers={"cookie": f"desk_session={planted}"}).status_code == 303
        assert http.get("/desk/", headers={"cookie": f"desk_session={given}"}).status_code == 200


def test_sign_in_without_the_forms_token_is_refused(url: str) -> None:
    """A sign-in POST from another site (no matching token cookie) does not sign anyone in."""
    with httpx.Client(base_url=url) as http:
        answer = http.post(
            "/desk/login", data={"csrf": "forged", "email": "editor@example.org", "password": PASSWORD}
        )
        assert answer.status_code == 403
        assert "desk_session" not in http.cookies
        assert http.get("/desk/").status_code == 303


def test_wrong_password_is_refused_then_throttled(url: str) -> None:
    """Five wrong passwords for an account, then even the right one waits (429, Retry-After)."""
    with httpx.Client(base_url=url) as http:
        for _ in range(5):
            wrong = sign_in(http, password="not the passphrase")
            assert wrong.status_code == 400
            assert "do not match an account" in wrong.text
        throttled = sign_in(http)
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) > 0


def test_a_form_without_its_csrf_token_changes_nothing(url: str) -> None:
    """Signing out without the session's token is refused and the session lives on."""
    with httpx.Client(base_url=url) as http:
        sign_in(http)
        refused = http.post("/desk/logout", data={"csrf": "wrong"})
        assert refused.status_code == 403
        assert http.get("/desk/").status_code == 200
        page = http.get("/desk/")
        done = http.post("/desk/logout", data={"csrf": csrf_of(page.text)})
        assert done.status_code == 303
        assert http.get("/desk/").status_code == 303


def test_sign_out_everywhere_ends_other_sessions(url: str) -> None:
    """Two browsers signed in; "sign out everywhere" in one ends the other too."""
    with httpx.Client(base_url=url) as one, httpx.Client(base_url=url) as two:
        sign_in(one)
        sign_in(two)
        page = one.get("/desk/")
        assert one.post("/desk/logout-all", data={"csrf": csrf_of(page.text)}).status_code == 303
        assert two.get("/desk/").status_code == 303


def test_next_never_leaves_the_desk(url: str) -> None:
    """A next= pointing at another site is replaced by the desk's home."""
    with httpx.Client(base_url=url) as http:
        form = http.get("/desk/login?next=//evil.example/desk")
        answer = http.post(
            "/desk/login?next=//evil.example/desk",
            data={"csrf": csrf_of(form.text), "email": "editor@example.org", "password": PASSWORD,
                  "next": "https://evil.example/"},
        )
    assert answer.headers["location"] == "/desk/"


def test_a_trusted_proxy_names_who_is_throttled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind a trusted proxy, one visitor's wrong passwords throttle that visitor, not
    everyone the proxy forwards: the owner signs in from another address."""
    config = proxied_publication(tmp_path, monkeypatch)
    with served(config) as base, httpx.Client(base_url=base) as http:
        attacker = {"x-forwarded-for": "203.0.113.66", "host": "app.example.org"}
        owner = {"x-forwarded-for": "198.51.100.20", "host": "app.example.org"}
        token = csrf_of(http.get("/desk/login").text)
        answers = [
            http.post("/desk/login", headers={**attacker, "cookie": f"desk_login={token}"},
                      data={"csrf": token, "email": "owner@example.org", "password": "guess"}).status_code
            for _ in range(8)
        ]
        signed_in = http.post("/desk/login", headers={**owner, "cookie": f"desk_login={token}"},
                              data={"csrf": token, "email": "owner@example.org", "password": PASSWORD})
    assert answers == [400] * 5 + [429] * 3
    assert signed_in.status_code == 303


def test_a_forged_forwarded_for_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From a peer that is not a trusted proxy, X-Forwarded-For and Forwarded change nothing:
    rotating them does not escape the throttle."""
    config = proxied_publication(tmp_path, monkeypatch, proxies='["10.0.0.1"]')
    with served(config) as base, httpx.Client(base_url=base) as http:
        token = csrf_of(http.get("/desk/login").text)
        answers = [
            http.post("/desk/login",
                      headers={"x-forwarded-for": f"203.0.113.{n}", "forwarded": f"for=198.51.100.{n}",
                               "cookie": f"desk_login={token}"},
                      data={"csrf": token, "email": "owner@example.org", "password": "guess"}).status_code
            for n in range(7)
        ]
    assert answers == [400] * 5 + [429] * 2


def test_cookies_are_secure_when_the_public_url_is_https(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind a proxy that sends no X-Forwarded-Proto, an https public URL still makes the
    session, sign-in form and device cookies Secure."""
    config = proxied_publication(tmp_path, monkeypatch)
    with served(config) as base, httpx.Client(base_url=base) as http:
        proxy = {"x-forwarded-for": "198.51.100.20", "host": "app.example.org"}
        form = http.get("/desk/login", headers=proxy)
        token = csrf_of(form.text)
        answer = http.post(
            "/desk/login", headers={**proxy, "cookie": f"desk_login={token}"},
            data={"csrf": token, "email": "viewer@example.org", "password": PASSWORD},
        )
    assert "Secure" in form.headers["set-cookie"]
    assert answer.status_code == 303
    cookies = answer.headers.get_list("set-cookie")
    assert {c.split("=", 1)[0] for c in cookies} == {"desk_session", "desk_login", "desk_device"}
    assert all("Secure" in cookie for cookie in cookies)


def test_cookies_are_secure_from_an_unlisted_proxy_too(url: str) -> None:
    """A request for the public host (a proxy not listed, a tunnel) gets Secure cookies;
    only a request made on the server itself, to a loopback address, does not."""
    with httpx.Client(base_url=url) as http:
        form = http.get("/desk/login", headers={"host": "app.example.org"})
        local = http.get("/desk/login")
    assert "Secure" in form.headers["set-cookie"]
    assert "Secure" not in local.headers["set-cookie"]


FOREIGN = "https://evil.example"


def test_sign_in_from_another_origin_is_refused(url: str) -> None:
    """Login CSRF: a sign-in POST whose Origin is another site is 403, even with a matching
    token and cookie, and signs nobody in."""
    with httpx.Client(base_url=url) as http:
        token = csrf_of(http.get("/desk/login").text)
        answer = http.post(
            "/desk/login", headers={"origin": FOREIGN},
            data={"csrf": token, "email": "editor@example.org", "password": PASSWORD},
        )
        assert answer.status_code == 403
        assert "another site (https://evil.example)" in answer.text
        assert "desk_session" not in http.cookies
        assert http.get("/desk/").status_code == 303


def test_sign_in_from_a_foreign_referer_is_refused(url: str) -> None:
    """Without Origin, the Referer's origin is checked; "null" counts as foreign."""
    with httpx.Client(base_url=url) as http:
        token = csrf_of(http.get("/desk/login").text)
        data = {"csrf": token, "email": "editor@example.org", "password": PASSWORD}
        assert http.post("/desk/login", headers={"referer": FOREIGN + "/page"}, data=data).status_code == 403
        assert http.post("/desk/login", headers={"origin": "null"}, data=data).status_code == 403
        assert "desk_session" not in http.cookies


def test_a_malformed_origin_is_refused_not_a_crash(url: str) -> None:
    """An Origin or Referer that is no URL at all is foreign: 403, the page, nothing done."""
    with httpx.Client(base_url=url) as http:
        token = csrf_of(http.get("/desk/login").text)
        data = {"csrf": token, "email": "editor@example.org", "password": PASSWORD}
        for headers in ({"origin": "http://[::1"}, {"referer": "http://["}, {"origin": "javascript:x"}):
            answer = http.post("/desk/login", headers=headers, data=data)
            assert answer.status_code == 403 and "another site (null)" in answer.text
        assert "desk_session" not in http.cookies


def test_sign_in_from_the_desks_own_origin_works(url: str) -> None:
    """The desk's own origin (where the browser is, or the public URL) signs in."""
    with httpx.Client(base_url=url) as http:
        token = csrf_of(http.get("/desk/login").text)
        data = {"csrf": token, "email": "editor@example.org", "password": PASSWORD}
        assert http.post("/desk/login", headers={"origin": url}, data=data).status_code == 303
    with httpx.Client(base_url=url) as http:
        token = csrf_of(http.get("/desk/login").text)
        data = {"csrf": token, "email": "editor@example.org", "password": PASSWORD}
        own = http.post("/desk/login", headers={"referer": "https://app.example.org/desk/login"}, data=data)
        assert own.status_code == 303


def test_every_desk_post_from_another_origin_is_refused(config: Config, url: str) -> None:
    """Every POST route under /desk answers 403 to a foreign Origin, with the session's
    token and all, and the session lives on."""
    routes = [path for path, methods in desk_routes(config) if "POST" in methods]
    assert len(routes) >= 5
    with httpx.Client(base_url=url) as http:
        sign_in(http, "owner@example.org")
        token = csrf_of(http.get("/desk/").text)
        for path in routes:
            answer = http.post(path, headers={"origin": FOREIGN}, data={"csrf": token})
            assert answer.status_code == 403, path
            assert "another site" in answer.text, path
        assert http.get("/desk/").status_code == 200


def test_sign_in_over_plain_http_to_an_https_desk_says_why(url: str) -> None:
    """A browser that reached an https desk over plain http (it kept no Secure cookie)
    is told to sign in over https, at the public URL, instead of "form expired" forever."""
    with httpx.Client(base_url=url, headers={"host": "app.example.org"}) as http:
        token = csrf_of(http.get("/desk/login").text)
        answer = http.post("/desk/login", data={"csrf": token, "email": "editor@example.org", "password": PASSWORD})
    assert answer.status_code == 403
    assert "Sign in over https, at https://app.example.org/desk/login" in answer.text


def test_a_wrong_password_is_answered_with_the_way_to_a_new_one(url: str) -> None:
    """The sign-in page leads to the page that mails a link to set a forgotten password."""
    with httpx.Client(base_url=url) as http:
        wrong = sign_in(http, password="not the passphrase")
    assert wrong.status_code == 400
    assert '<a href="/desk/login/forgot">Forgotten your password?</a>' in wrong.text
