"""Signup anywhere: topic pages, a form copied onto another site, the JSON door with CORS,
one answer for known and unknown addresses at every door, and a flood from one network."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import anyio
import httpx
import pytest
from desk_support import add_users, csrf_of, quick_hashes, sign_in
from sqlalchemy import Engine
from web_support import SECRET, AppClient, live_server, make_publication, wait_for_mail

from publisher.config import Config, load_config, parse_config
from publisher.errors import ConfigError
from publisher.models import SubscriberStatus
from publisher.services import access, signup
from publisher.store import open_store, subscribers
from publisher.web import create_app

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BLOG = "https://blog.example.net"
SETTINGS = f"""
[subscribe]
public_tags = ["sleep", "grief"]
retired_tags = ["grief"]
allowed_origins = ["{BLOG}/"]
consent_text = "Yes, send me Quiet Harbor. I can leave at any time."
"""


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_publication(tmp_path, extra=SETTINGS)


@pytest.fixture
def engine(config: Config) -> Iterator[Engine]:
    db = open_store(config.store_url)
    yield db
    db.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(config: Config, engine: Engine, clock: Clock) -> AppClient:
    return AppClient(create_app(config, engine=engine, clock=clock))


def add(engine: Engine, email: str, status: SubscriberStatus) -> None:
    found = subscribers.add(engine, email, status=SubscriberStatus.ACTIVE, now=START)
    if status is not SubscriberStatus.ACTIVE:
        subscribers.set_status(engine, found.id, status, now=START, kind="test")


LIST_STATES = [None, SubscriberStatus.PENDING, SubscriberStatus.ACTIVE, SubscriberStatus.UNSUBSCRIBED,
               SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED]


# CORS


def test_preflight_from_an_allowed_origin_gets_exactly_that_origin(client: AppClient) -> None:
    """An origin in subscribe.allowed_origins gets its own origin back, POST and content-type allowed."""
    answer = client.request("OPTIONS", "/subscribe.json", headers={
        "origin": BLOG, "access-control-request-method": "POST", "access-control-request-headers": "content-type",
    })
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == BLOG
    assert answer.headers["access-control-allow-methods"] == "POST"
    assert "content-type" in answer.headers["access-control-allow-headers"]
    assert "Origin" in answer.headers["vary"]


def test_preflight_from_another_origin_gets_no_cors_headers(client: AppClient) -> None:
    """An origin not on the list (a look-alike included) gets 403 and no access-control header at all."""
    for origin in ("https://evil.example.com", "https://blog.example.net.evil.example.com", "null"):
        answer = client.request("OPTIONS", "/subscribe.json", headers={
            "origin": origin, "access-control-request-method": "POST",
        })
        assert answer.status_code == 403, origin
        assert not [h for h in answer.headers if h.startswith("access-control-")], origin


def test_post_from_another_origin_is_refused_and_stores_nothing(client: AppClient, engine: Engine) -> None:
    """A POST carrying an origin not on the list is 403, without CORS headers, and adds no one."""
    answer = client.post("/subscribe.json", json={"email": "ada@example.org"},
                         headers={"origin": "https://evil.example.com"})
    assert answer.status_code == 403
    assert "subscribe.allowed_origins" in answer.json()["detail"]
    assert "access-control-allow-origin" not in answer.headers
    assert subscribers.find(engine, "ada@example.org") is None


def test_the_publications_own_origin_is_always_allowed(client: AppClient) -> None:
    """The app's own address may call the JSON door without being listed."""
    answer = client.request("OPTIONS", "/subscribe.json", headers={
        "origin": "https://app.example.org", "access-control-request-method": "POST",
    })
    assert answer.headers["access-control-allow-origin"] == "https://app.example.org"


def test_an_allowed_origin_that_is_no_origin_is_refused_naming_the_key(tmp_path: Path) -> None:
    """A path or a bare host in allowed_origins is a config error naming the key and the value."""
    text = (tmp_path / "c.toml")
    for bad in ("blog.example.net", "https://blog.example.net/signup", "ftp://blog.example.net"):
        text.write_text(f'[publication]\ntitle = "T"\nurl = "https://n.example.org/"\n'
                        f'[subscribe]\nallowed_origins = ["{bad}"]\n')
        with pytest.raises(ConfigError, match=r"allowed_origins .*origins such as"):
            parse_config(text.read_text(), root=tmp_path, origin=str(text))


# The JSON door


def test_json_door_answers_202_and_records_source_topic_and_consent(client: AppClient, engine: Engine) -> None:
    """A JSON signup from an allowed site is pending, tagged with its topic, from "json:<topic>",
    with the consent text kept; the answer carries that site's origin."""
    answer = client.post("/subscribe.json", json={"email": "Ada@Example.org", "name": "Ada", "topic": "sleep"},
                         headers={"origin": BLOG})
    assert answer.status_code == 202
    assert answer.json()["status"] == "check_inbox"
    assert answer.headers["access-control-allow-origin"] == BLOG
    found = subscribers.find(engine, "ada@example.org")
    assert found is not None and found.status is SubscriberStatus.PENDING
    assert found.tags == ("sleep",)
    assert found.source == "json:sleep"
    assert found.consent_text == "Yes, send me Quiet Harbor. I can leave at any time."


def test_json_door_refuses_a_bad_address_naming_the_field(client: AppClient, engine: Engine) -> None:
    """A bad address is 400 problem+json naming the email field; nothing is stored."""
    answer = client.post("/subscribe.json", json={"email": "not an address"}, headers={"origin": BLOG})
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["field"] == "email"
    assert answer.headers["access-control-allow-origin"] == BLOG


def test_json_door_refuses_a_body_that_is_not_json(client: AppClient) -> None:
    """Broken JSON, or JSON that is not an object, is 400 saying what the body must be."""
    for body in (b"{not json", b"[1, 2]"):
        answer = client.post("/subscribe.json", content=body, headers={"content-type": "application/json"})
        assert answer.status_code == 400
        assert "JSON object" in answer.json()["detail"]


def test_json_door_honeypot_answers_alike_and_stores_nothing(client: AppClient, engine: Engine) -> None:
    """A filled honeypot gets the ordinary answer and adds no one."""
    answer = client.post("/subscribe.json", json={"email": "bot@example.org", "website": "http://spam"})
    assert answer.status_code == 202
    assert subscribers.find(engine, "bot@example.org") is None


def test_json_door_ignores_a_topic_readers_may_not_choose(client: AppClient, engine: Engine) -> None:
    """A retired or unknown topic still subscribes the reader, to the publication, without the tag."""
    client.post("/subscribe.json", json={"email": "ada@example.org", "topic": "grief"})
    found = subscribers.find(engine, "ada@example.org")
    assert found is not None and found.tags == () and found.source == "json"


# No enumeration


@pytest.mark.parametrize("status", LIST_STATES)
def test_json_door_answers_alike_whatever_the_list_holds(
    client: AppClient, engine: Engine, status: SubscriberStatus | None
) -> None:
    """Known (in any state) and unknown addresses get the same status, headers and body."""
    if status is not None:
        add(engine, "known@example.org", status)
    answer = client.post("/subscribe.json", json={"email": "known@example.org"}, headers={"origin": BLOG})
    fresh = client.post("/subscribe.json", json={"email": "fresh@example.org"}, headers={"origin": BLOG})
    assert (answer.status_code, answer.content) == (fresh.status_code, fresh.content) == (202, fresh.content)
    assert {k: v for k, v in answer.headers.items() if k != "date"} == {
        k: v for k, v in fresh.headers.items() if k != "date"
    }


@pytest.mark.parametrize("status", LIST_STATES)
def test_embed_form_answers_alike_whatever_the_list_holds(
    client: AppClient, engine: Engine, status: SubscriberStatus | None
) -> None:
    """The copied form's POST gets the same page for a known and an unknown address."""
    if status is not None:
        add(engine, "known@example.org", status)
    form = {"door": "embed", "topic": "sleep"}
    answer = client.post("/subscribe", data={**form, "email": "known@example.org"})
    fresh = client.post("/subscribe", data={**form, "email": "fresh@example.org"})
    assert (answer.status_code, answer.text) == (fresh.status_code, fresh.text)


@pytest.fixture
def write_only(config: Config, engine: Engine) -> str:
    return access.create_key(engine, "signup-form", ["subscribers:write"], now=datetime.now(UTC)).token


@pytest.mark.parametrize("status", LIST_STATES)
def test_api_write_only_key_gets_one_answer(
    client: AppClient, engine: Engine, write_only: str, status: SubscriberStatus | None
) -> None:
    """POST /api/v1/subscribers with a key that may not read the list: the same 202 and body
    for a new address and one the list holds in any state."""
    if status is not None:
        add(engine, "known@example.org", status)
    headers = {"authorization": f"Bearer {write_only}"}
    known = client.post("/api/v1/subscribers", json={"email": "known@example.org"}, headers=headers)
    fresh = client.post("/api/v1/subscribers", json={"email": "fresh@example.org"}, headers=headers)
    assert known.status_code == fresh.status_code == 202, known.text
    assert known.json() == {"email": "known@example.org"} and fresh.json() == {"email": "fresh@example.org"}
    assert set(known.headers) - {"date"} == set(fresh.headers) - {"date"}


def test_api_write_only_key_still_hears_about_a_bad_address(client: AppClient, write_only: str) -> None:
    """What can be told without the list (a bad address) is still refused, naming it."""
    answer = client.post("/api/v1/subscribers", json={"email": "not an address"},
                         headers={"authorization": f"Bearer {write_only}"})
    assert answer.status_code in (400, 422)
    assert "address" in answer.text


def test_api_signup_records_the_key_as_its_source(client: AppClient, engine: Engine, write_only: str) -> None:
    """A subscriber added through the API names the key it came by."""
    client.post("/api/v1/subscribers", json={"email": "fresh@example.org"},
                headers={"authorization": f"Bearer {write_only}"})
    found = subscribers.find(engine, "fresh@example.org")
    key = access.list_keys(engine)[0]
    assert found is not None and found.source == f"api:key{key.id}"


# Hosted pages


def test_topic_page_preselects_its_topic(client: AppClient, engine: Engine) -> None:
    """/subscribe/sleep names the topic and its form subscribes to it, from "web:sleep"."""
    page = client.get("/subscribe/sleep")
    assert page.status_code == 200
    assert "Subscribe to Quiet Harbor: sleep" in page.text
    client.post("/subscribe/sleep", data={"email": "ada@example.org"})
    found = subscribers.find(engine, "ada@example.org")
    assert found is not None and found.tags == ("sleep",) and found.source == "web:sleep"


def test_unknown_topic_page_still_offers_the_publication(client: AppClient) -> None:
    """A topic that is not offered (retired, or never was) is 404 with the plain form below."""
    for topic in ("grief", "nothing-here"):
        page = client.get(f"/subscribe/{topic}")
        assert page.status_code == 404
        assert 'name="email"' in page.text and "no such topic" in page.text


def test_hosted_page_shows_and_records_the_consent_text(client: AppClient, engine: Engine) -> None:
    """The consent text is on the page and kept with the subscriber, whose source is "web"."""
    page = client.get("/subscribe")
    assert "Yes, send me Quiet Harbor. I can leave at any time." in page.text
    client.post("/subscribe", data={"email": "ada@example.org"})
    found = subscribers.find(engine, "ada@example.org")
    assert found is not None and found.source == "web"
    assert found.consent_text == "Yes, send me Quiet Harbor. I can leave at any time."


def test_default_consent_text_names_the_publication(tmp_path: Path) -> None:
    """Without subscribe.consent_text, the consent sentence names the publication."""
    config = make_publication(tmp_path)
    assert signup.consent_text(config).startswith("I agree to receive Quiet Harbor by email.")


# The copied form


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}
        self.scripts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form":
            self.action = found["action"] or ""
        elif tag == "input":
            self.fields[found["name"] or ""] = found.get("value") or ""
        elif tag == "script":
            self.scripts.append(found.get("src") or "")


def test_embed_form_round_trip_over_real_http(config: Config, engine: Engine) -> None:
    """The snippet as copied: a plain POST (no script) to the app over real HTTP answers a page
    with a link back to the page it was on, mails the confirmation, and the subscriber keeps
    "embed:sleep" as source and the consent text."""
    snippet = signup.embed_form(config, "sleep")
    form = _Form()
    form.feed(snippet)
    assert form.action == "https://app.example.org/subscribe"
    assert form.fields["door"] == "embed" and form.fields["topic"] == "sleep" and form.fields["website"] == ""
    with live_server(create_app(config, engine=engine)) as url, httpx.Client(base_url=url) as http:
        answer = http.post("/subscribe", data={**form.fields, "email": "ada@example.org"},
                           headers={"referer": f"{BLOG}/posts/sleep-well"})
        assert answer.status_code == 200
        assert "Check your inbox" in answer.text
        assert f'href="{BLOG}/posts/sleep-well"' in answer.text
        [mail] = wait_for_mail(config, 1)
    assert mail["To"] == "ada@example.org"
    found = subscribers.find(engine, "ada@example.org")
    assert found is not None and found.status is SubscriberStatus.PENDING
    assert found.source == "embed:sleep" and found.tags == ("sleep",)
    assert found.consent_text == "Yes, send me Quiet Harbor. I can leave at any time."


def test_embed_form_links_back_only_to_allowed_sites(client: AppClient) -> None:
    """A Referer from a site not on the list gets no "back" link to it."""
    answer = client.post("/subscribe", data={"door": "embed", "email": "ada@example.org"},
                         headers={"referer": "https://evil.example.com/phish"})
    assert answer.status_code == 200 and "evil.example.com" not in answer.text


def test_script_is_served_and_fetches_nothing_else(config: Config, client: AppClient) -> None:
    """/subscribe.js is JavaScript from the app itself; the snippet with it loads only that."""
    answer = client.get("/subscribe.js")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/javascript")
    assert "/subscribe.json" in answer.text and not re.search(r"https?://", answer.text)
    form = _Form()
    form.feed(signup.embed_form(config, script=True))
    assert form.scripts == ["https://app.example.org/subscribe.js"]


# A flood from one network


def _flood(app: object, count: int) -> list[httpx.Response]:
    """`count` JSON signups, each from another address of 198.51.100.0/24, through the trusted proxy."""

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            return [
                await http.post("/subscribe.json", json={"email": f"flood{n}@example.org"},
                                headers={"x-forwarded-for": f"198.51.100.{n % 250 + 1}"})
                for n in range(count)
            ]

    return anyio.run(go)


def test_a_flood_from_one_network_is_throttled_and_people_elsewhere_get_through(tmp_path: Path) -> None:
    """2,000 signups in one minute from one /24: the network's hourly allowance gets through,
    every other request is told when to try again (429, never dropped in silence), someone
    from another network still subscribes, and the network is recorded for Home."""
    config = make_publication(tmp_path, extra='\n[subscribe]\nper_network_per_hour = 100\n')
    text = config.path.read_text().replace("[server]\n", '[server]\ntrusted_proxies = ["127.0.0.1"]\n')
    config.path.write_text(text)
    config = load_config(config.path, env={"PUBLISHER_SECRET": SECRET})
    engine = open_store(config.store_url)
    clock = Clock()
    app = create_app(config, engine=engine, clock=clock)
    started = time.monotonic()
    answers = _flood(app, 2_000)
    assert time.monotonic() - started < 50
    codes = [a.status_code for a in answers]
    assert codes.count(202) == 100 and codes.count(429) == 1_900
    refused = next(a for a in answers if a.status_code == 429)
    assert re.search(r"try again in \d+ minutes?", refused.json()["detail"])
    assert 0 < int(refused.headers["retry-after"]) <= 3600
    assert sum(subscribers.counts(engine).values()) == 100
    person = AppClient(app, client=("203.0.113.50", 4000))
    assert person.post("/subscribe", data={"email": "real@example.org"}).status_code == 200
    assert subscribers.find(engine, "real@example.org") is not None
    [network] = signup.throttled_networks(engine, now=clock.now)
    assert (network.network, network.refused) == ("198.51.100.0/24", 1_900)
    engine.dispose()


def test_the_hosted_page_tells_a_throttled_network_when_to_try_again(tmp_path: Path) -> None:
    """Past the network's limit the form page is 429 and says in how many minutes to try again."""
    config = make_publication(tmp_path, extra='\n[subscribe]\nper_network_per_hour = 2\n')
    engine = open_store(config.store_url)
    clock = Clock()
    app = create_app(config, engine=engine, clock=clock)
    answers = [AppClient(app, client=(f"192.0.2.{n}", 4000)).post("/subscribe", data={"email": f"p{n}@example.org"})
               for n in range(1, 4)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert "try again in 60 minutes" in answers[2].text
    clock.now += timedelta(minutes=30)
    later = AppClient(app, client=("192.0.2.9", 4000)).post("/subscribe", data={"email": "p9@example.org"})
    assert "try again in 30 minutes" in later.text
    engine.dispose()


def test_network_of_groups_ipv4_by_24_and_keeps_ipv6_64() -> None:
    """An IPv4 client counts in its /24; an IPv6 client key is already its /64."""
    assert signup.network_of("198.51.100.7") == "198.51.100.0/24"
    assert signup.network_of("2001:db8:1:2::/64") == "2001:db8:1:2::/64"
    assert signup.network_of("unknown") == "unknown"


# The desk


@pytest.fixture
def desk_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    quick_hashes(monkeypatch)
    config = make_publication(tmp_path, extra=SETTINGS)
    add_users(config)
    return config


def test_desk_shows_each_form_to_copy_to_editors(desk_config: Config) -> None:
    """Signup forms, linked from Subscribers, shows the publication's and each topic's page and
    snippet (escaped), the script line and the allowed sites; a viewer is refused."""
    with live_server(create_app(desk_config)) as url, httpx.Client(base_url=url) as http:
        sign_in(http, "editor@example.org")
        assert 'href="/desk/subscribers/signup-forms"' in http.get("/desk/subscribers").text
        page = http.get("/desk/subscribers/signup-forms")
        with httpx.Client(base_url=url) as other:
            sign_in(other, "viewer@example.org")
            refused = other.get("/desk/subscribers/signup-forms")
    assert page.status_code == 200
    assert "https://app.example.org/subscribe/sleep" in page.text
    assert "/subscribe/grief" not in page.text
    assert page.text.count("&lt;form action=&#34;https://app.example.org/subscribe&#34;") == 2
    assert "&lt;script src=&#34;https://app.example.org/subscribe.js&#34; defer&gt;" in page.text
    assert "<code>https://blog.example.net</code>" in page.text
    assert "Yes, send me Quiet Harbor." in page.text
    assert refused.status_code == 403


def test_home_tells_the_author_about_a_throttled_network(desk_config: Config) -> None:
    """After a network is refused, Home names it with how many requests were refused."""
    engine = open_store(desk_config.store_url)
    now = datetime.now(UTC)
    for _ in range(3):
        signup.count_attempt(engine, "198.51.100.7", now=now, limits=signup.Limits(per_client=10, per_network=1))
    engine.dispose()
    with live_server(create_app(desk_config)) as url, httpx.Client(base_url=url) as http:
        sign_in(http, "viewer@example.org")
        home = http.get("/desk/")
    assert "Signups refused for coming too fast" in home.text
    assert "2 signup requests from the network 198.51.100.0/24" in home.text


def test_settings_edits_the_allowed_sites(desk_config: Config) -> None:
    """The owner's Settings page has the allowed sites as one line, and saving it writes a list."""
    with live_server(create_app(desk_config)) as url, httpx.Client(base_url=url) as http:
        sign_in(http, "owner@example.org")
        page = http.get("/desk/settings")
        assert 'value="https://blog.example.net"' in page.text
        form = {"csrf": csrf_of(page.text), "group": "signup",
                "fingerprint": re.search(r'name="fingerprint" value="([^"]+)"', page.text).group(1),  # type: ignore[union-attr]
                "consent_text": "Yes, please.", "allowed_origins": "https://blog.example.net, https://shop.example.net/"}
        saved = http.post("/desk/settings/save", data=form)
    assert saved.status_code in (200, 303), saved.text
    config = load_config(desk_config.path, env=dict(desk_config.env))
    assert config["subscribe.allowed_origins"] == ("https://blog.example.net", "https://shop.example.net")
    assert config["subscribe.consent_text"] == "Yes, please."


def test_refusals_by_the_client_limit_count_for_its_network(engine: Engine) -> None:
    """One address past its own limit is recorded under its network too, so Home counts all of a flood."""
    limits = signup.Limits(per_client=2, per_network=100)
    waits = [signup.count_attempt(engine, "192.0.2.7", now=START, limits=limits) for _ in range(5)]
    assert [bool(w) for w in waits] == [False, False, True, True, True]
    [network] = signup.throttled_networks(engine, now=START)
    assert (network.network, network.refused) == ("192.0.2.0/24", 3)
