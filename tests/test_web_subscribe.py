"""Subscribe with double opt-in, confirm, and RFC 8058 unsubscribe, over HTTP."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from alembic import command
from itsdangerous import URLSafeSerializer
from sqlalchemy import Engine, create_engine, select, text
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from web_support import SECRET, AppClient, live_server, make_publication, outbox, wait_for_mail

from publisher.config import Config, load_config
from publisher.delivery import make_provider
from publisher.delivery.engine import deliver
from publisher.mail import tokens
from publisher.models import SubscriberStatus
from publisher.schedule import daemon
from publisher.services import signup
from publisher.store import ledger, open_store, subscribers
from publisher.store.engine import alembic_config
from publisher.store.schema import deliveries, events
from publisher.web import create_app

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CONFIRM_LINK = re.compile(r"https://app\.example\.org(/confirm/[A-Za-z0-9._-]+)")


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_publication(tmp_path, extra="\n[subscribe]\nper_ip_per_hour = 5\n")


@pytest.fixture
def engine(config: Config) -> Engine:
    return open_store(config.store_url)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(config: Config, engine: Engine, clock: Clock) -> AppClient:
    return AppClient(create_app(config, engine=engine, clock=clock))


def status_of(engine: Engine, email: str) -> SubscriberStatus | None:
    found = subscribers.find(engine, email)
    return found.status if found else None


def add(engine: Engine, email: str, status: SubscriberStatus) -> str:
    """Add a subscriber; returns the link key their links carry."""
    subscriber = subscribers.add(engine, email, status=SubscriberStatus.ACTIVE, now=START)
    if status is not SubscriberStatus.ACTIVE:
        subscribers.set_status(engine, subscriber.id, status, now=START, kind="test")
    return subscribers.link_key(engine, subscriber.id)


NOBODYS_KEY = "0123456789abcdef0123456789abcdef"


def legacy_token(purpose: str, value: object) -> str:
    """A token as links signed before link keys carried it: the bare subscriber id."""
    return str(URLSafeSerializer(SECRET, salt=f"publisher.{purpose}").dumps(value))


def event_kinds(engine: Engine, email: str) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(events.c.kind, events.c.detail).where(events.c.email == email).order_by(events.c.id)
        ).all()
    return [(row.kind, row.detail) for row in rows]


def test_form_page(client: AppClient) -> None:
    """GET /subscribe shows the form with its email, name and honeypot fields."""
    response = client.get("/subscribe")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    for field in ('name="email"', 'name="name"', 'name="website"'):
        assert field in response.text


def test_double_opt_in_end_to_end_over_http(config: Config, engine: Engine) -> None:
    """Subscribe, receive the confirmation mail, open its link (nothing changes), press the
    button (active): all over real HTTP, the mail landing in the Maildir."""
    with live_server(create_app(config, engine=engine)) as url, httpx.Client(base_url=url) as http:
        answer = http.post("/subscribe", data={"email": "Ada@Example.org", "name": "Ada"})
        assert answer.status_code == 200
        assert "Check your inbox" in answer.text
        [mail] = wait_for_mail(config, 1)
        assert mail["To"] == "ada@example.org"
        assert "List-Unsubscribe" not in mail
        assert status_of(engine, "ada@example.org") is SubscriberStatus.PENDING
        text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        match = CONFIRM_LINK.search(text)
        assert match, text
        page = http.get(match.group(1))
        assert page.status_code == 200
        assert 'method="post"' in page.text
        assert status_of(engine, "ada@example.org") is SubscriberStatus.PENDING
        done = http.post(match.group(1))
        assert done.status_code == 200
        assert "You are subscribed" in done.text
    assert status_of(engine, "ada@example.org") is SubscriberStatus.ACTIVE
    assert ("confirm", "double opt-in") in event_kinds(engine, "ada@example.org")


@pytest.mark.parametrize(
    "status",
    [
        None,
        SubscriberStatus.PENDING,
        SubscriberStatus.ACTIVE,
        SubscriberStatus.UNSUBSCRIBED,
        SubscriberStatus.BOUNCED,
        SubscriberStatus.COMPLAINED,
    ],
)
def test_same_answer_whatever_the_list_holds(
    client: AppClient, engine: Engine, status: SubscriberStatus | None
) -> None:
    """New, pending, active, unsubscribed, bounced or complained: the same page."""
    reference = client.post("/subscribe", data={"email": "someone-new@example.org"})
    if status is not None:
        add(engine, "known@example.org", status)
    answer = client.post("/subscribe", data={"email": "known@example.org"})
    assert answer.status_code == reference.status_code == 200
    assert answer.content == reference.content
    assert answer.headers.multi_items() == reference.headers.multi_items()
    assert answer.headers.get("set-cookie") is None


def test_active_subscriber_gets_no_mail(config: Config, client: AppClient, engine: Engine) -> None:
    """An address already on the list gets no confirmation mail."""
    add(engine, "reader@example.org", SubscriberStatus.ACTIVE)
    client.post("/subscribe", data={"email": "reader@example.org"})
    assert outbox(config) == []
    assert status_of(engine, "reader@example.org") is SubscriberStatus.ACTIVE


def test_complained_address_gets_no_mail(config: Config, client: AppClient, engine: Engine) -> None:
    """An address that reported the list as spam is never mailed again from the form."""
    add(engine, "angry@example.org", SubscriberStatus.COMPLAINED)
    client.post("/subscribe", data={"email": "angry@example.org"})
    assert outbox(config) == []


def test_one_confirmation_per_address_per_interval(
    config: Config, client: AppClient, clock: Clock
) -> None:
    """A second request within the hour sends nothing; after it, one more mail."""
    client.post("/subscribe", data={"email": "twice@example.org"})
    clock.now += timedelta(minutes=59)
    client.post("/subscribe", data={"email": "TWICE@example.org"})
    assert len(outbox(config)) == 1
    clock.now += timedelta(minutes=2)
    client.post("/subscribe", data={"email": "twice@example.org"})
    assert len(outbox(config)) == 2


def test_honeypot_stores_nothing(config: Config, client: AppClient, engine: Engine) -> None:
    """A filled honeypot gets the usual answer, and nothing is stored or sent."""
    reference = client.post("/subscribe", data={"email": "person@example.org"})
    answer = client.post(
        "/subscribe", data={"email": "bot@example.org", "website": "http://spam.example"}
    )
    assert answer.status_code == 200
    assert answer.content == reference.content
    assert subscribers.find(engine, "bot@example.org") is None
    assert len(outbox(config)) == 1


def test_invalid_address_is_a_form_error(client: AppClient, engine: Engine) -> None:
    """An address that cannot be one is shown back with an error, and nothing is stored."""
    answer = client.post("/subscribe", data={"email": "not an address", "name": "X"})
    assert answer.status_code == 400
    assert 'role="alert"' in answer.text
    assert 'value="not an address"' in answer.text
    assert subscribers.counts(engine).get("pending", 0) == 0


def test_per_client_limit(config: Config, engine: Engine, clock: Clock) -> None:
    """Past subscribe.per_ip_per_hour a client gets 429 with Retry-After; others do not."""
    app = create_app(config, engine=engine, clock=clock)
    busy = AppClient(app, client=("198.51.100.7", 1000))
    for number in range(5):
        assert busy.post("/subscribe", data={"email": f"a{number}@example.org"}).status_code == 200
    refused = busy.post("/subscribe", data={"email": "a5@example.org"})
    assert refused.status_code == 429
    assert 0 < int(refused.headers["retry-after"]) <= 3600
    assert subscribers.find(engine, "a5@example.org") is None
    other = AppClient(app, client=("198.51.100.8", 1000))
    assert other.post("/subscribe", data={"email": "b@example.org"}).status_code == 200
    clock.now += timedelta(hours=1)
    assert busy.post("/subscribe", data={"email": "a6@example.org"}).status_code == 200


def _rotating_forwarded_for(url: str, attempts: int) -> list[int]:
    with httpx.Client(base_url=url) as http:
        return [
            http.post("/subscribe", data={"email": f"r{n}@example.org"},
                      headers={"x-forwarded-for": f"198.51.100.{n}"}).status_code
            for n in range(attempts)
        ]


def test_forwarded_for_cannot_bypass_the_limit(config: Config, engine: Engine, clock: Clock) -> None:
    """`publisher serve` trusts X-Forwarded-For from no one by default, 127.0.0.1 included:
    rotating it over real HTTP gets per_ip_per_hour attempts through, not all."""
    app = create_app(config, engine=engine, clock=clock)
    served = daemon.server_config(app, host="127.0.0.1", port=0)
    served.log_level = "warning"
    with live_server(app, config=served) as url:
        answers = _rotating_forwarded_for(url, 30)
    assert answers.count(200) == 5 and answers.count(429) == 25


def test_trusted_proxy_names_the_client(tmp_path: Path, clock: Clock) -> None:
    """Behind a proxy listed in [server] trusted_proxies, each forwarded address has its
    own limit."""
    config = make_publication(tmp_path)
    text = config.path.read_text().replace("[server]\n", '[server]\ntrusted_proxies = ["127.0.0.1"]\n')
    config.path.write_text(text)
    config = load_config(config.path, env=dict(config.env))
    engine = open_store(config.store_url)
    app = create_app(config, engine=engine, clock=clock)
    served = daemon.server_config(app, host="127.0.0.1", port=0)
    served.log_level = "warning"
    with live_server(app, config=served) as url:
        assert _rotating_forwarded_for(url, 8) == [200] * 8


def test_trusted_proxy_names_the_client_in_forwarded(tmp_path: Path, clock: Clock) -> None:
    """A proxy that says who the client is with RFC 7239 `Forwarded` (not X-Forwarded-For)
    gives each client its own limit, so one busy visitor does not shut the form for all."""
    config = make_publication(
        tmp_path, extra='\n[subscribe]\nper_ip_per_hour = 5\n'
    )
    text = config.path.read_text().replace("[server]\n", '[server]\ntrusted_proxies = ["127.0.0.1"]\n')
    config.path.write_text(text)
    config = load_config(config.path, env=dict(config.env))
    app = create_app(config, engine=open_store(config.store_url), clock=clock)
    served = daemon.server_config(app, host="127.0.0.1", port=0)
    served.log_level = "warning"
    with live_server(app, config=served) as url, httpx.Client(base_url=url) as http:
        def post(n: int, visitor: str) -> int:
            return http.post("/subscribe", data={"email": f"f{n}@example.org"},
                             headers={"forwarded": f"for={visitor};proto=https"}).status_code

        busy = [post(n, "198.51.100.7") for n in range(7)]
        others = [post(100 + n, f'"[2001:db8:{n}::1]:4711"') for n in range(6)]
    assert busy == [200] * 5 + [429] * 2
    assert others == [200] * 6


def test_unsubscribed_reader_can_come_back(
    config: Config, client: AppClient, engine: Engine
) -> None:
    """Someone who left gets a confirmation mail and is active again once they confirm."""
    add(engine, "back@example.org", SubscriberStatus.UNSUBSCRIBED)
    client.post("/subscribe", data={"email": "back@example.org"})
    [mail] = outbox(config)
    match = CONFIRM_LINK.search(mail.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert match
    assert status_of(engine, "back@example.org") is SubscriberStatus.UNSUBSCRIBED
    assert client.post(match.group(1)).status_code == 200
    assert status_of(engine, "back@example.org") is SubscriberStatus.ACTIVE


def test_confirm_refused_after_complaint(client: AppClient, engine: Engine) -> None:
    """A confirm link of an address that complained does nothing."""
    key = add(engine, "spam@example.org", SubscriberStatus.COMPLAINED)
    token = tokens.sign_confirm(SECRET, key, START + timedelta(hours=1))
    assert client.get(f"/confirm/{token}").status_code == 400
    assert client.post(f"/confirm/{token}").status_code == 400
    assert status_of(engine, "spam@example.org") is SubscriberStatus.COMPLAINED


def test_bad_confirm_token(client: AppClient) -> None:
    """A forged confirm token gets the "link does not work" page."""
    answer = client.post("/confirm/MQ.forged")
    assert answer.status_code == 400
    assert "does not work" in answer.text


def unsubscribe_path(key: str) -> str:
    return f"/unsubscribe/{tokens.sign(SECRET, 'unsubscribe', key)}"


def test_unsubscribe_get_changes_nothing(client: AppClient, engine: Engine) -> None:
    """GET (a mail scanner following the link) shows a button and unsubscribes nobody."""
    key = add(engine, "stay@example.org", SubscriberStatus.ACTIVE)
    page = client.get(unsubscribe_path(key))
    assert page.status_code == 200
    assert 'method="post"' in page.text
    assert status_of(engine, "stay@example.org") is SubscriberStatus.ACTIVE


def test_one_click_post_over_http(config: Config, engine: Engine) -> None:
    """RFC 8058: POST List-Unsubscribe=One-Click gives 200, no redirect, no cookie."""
    key = add(engine, "leave@example.org", SubscriberStatus.ACTIVE)
    with live_server(create_app(config, engine=engine)) as url:
        answer = httpx.post(
            url + unsubscribe_path(key),
            content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert answer.status_code == 200
    assert "location" not in answer.headers
    assert "set-cookie" not in answer.headers
    assert status_of(engine, "leave@example.org") is SubscriberStatus.UNSUBSCRIBED
    assert ("unsubscribe", "one-click") in event_kinds(engine, "leave@example.org")


def test_one_click_multipart(client: AppClient, engine: Engine) -> None:
    """The one-click body may also come as multipart/form-data."""
    key = add(engine, "multi@example.org", SubscriberStatus.ACTIVE)
    answer = client.post(
        unsubscribe_path(key), files={"List-Unsubscribe": (None, "One-Click")}
    )
    assert answer.status_code == 200
    assert status_of(engine, "multi@example.org") is SubscriberStatus.UNSUBSCRIBED


def test_one_click_is_idempotent(client: AppClient, engine: Engine) -> None:
    """A repeated POST answers the same and records one unsubscribe."""
    key = add(engine, "again@example.org", SubscriberStatus.ACTIVE)
    first = client.post(unsubscribe_path(key), data={"List-Unsubscribe": "One-Click"})
    second = client.post(unsubscribe_path(key), data={"List-Unsubscribe": "One-Click"})
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert [k for k, _ in event_kinds(engine, "again@example.org")].count("unsubscribe") == 1


def test_page_button_unsubscribes(client: AppClient, engine: Engine) -> None:
    """The GET page's button (an empty form POST) unsubscribes too."""
    key = add(engine, "button@example.org", SubscriberStatus.ACTIVE)
    assert client.post(unsubscribe_path(key), data={}).status_code == 200
    assert ("unsubscribe", "web page") in event_kinds(engine, "button@example.org")


def test_unsubscribe_keeps_a_bounce(client: AppClient, engine: Engine) -> None:
    """Unsubscribing a bounced address answers 200 and leaves it bounced."""
    key = add(engine, "gone@example.org", SubscriberStatus.BOUNCED)
    assert client.post(unsubscribe_path(key)).status_code == 200
    assert status_of(engine, "gone@example.org") is SubscriberStatus.BOUNCED


def test_unsubscribe_wins_over_later_batches(client: AppClient, engine: Engine) -> None:
    """Once the POST is answered, the address is no longer among the active subscribers."""
    key = add(engine, "out@example.org", SubscriberStatus.ACTIVE)
    client.post(unsubscribe_path(key))
    active = subscribers.iter_subscribers(engine, status=SubscriberStatus.ACTIVE)
    assert "out@example.org" not in {s.email for s in active}


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_bad_and_unknown_tokens_answer_alike(
    client: AppClient, engine: Engine, method: str
) -> None:
    """A forged token, a confirm token and a valid token for nobody: one answer."""
    known = add(engine, "someone@example.org", SubscriberStatus.ACTIVE)
    answers = [
        client.request(method, path)
        for path in (
            "/unsubscribe/NDI.forged-signature",
            "/unsubscribe/" + tokens.sign(SECRET, "confirm", known),
            unsubscribe_path(NOBODYS_KEY),
        )
    ]
    assert {a.status_code for a in answers} == {400}
    assert len({a.content for a in answers}) == 1
    assert status_of(engine, "someone@example.org") is SubscriberStatus.ACTIVE


def test_pages_keep_tokens_private(client: AppClient, engine: Engine) -> None:
    """Token pages are not cached, framed or leaked through Referer."""
    page = client.get(unsubscribe_path(add(engine, "p@example.org", SubscriberStatus.ACTIVE)))
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def confirm_link(mail: object) -> str:
    text = mail.get_body(("plain",)).get_content()  # type: ignore[attr-defined]
    match = CONFIRM_LINK.search(text)
    assert match, text
    return match.group(1)


class AnswerFirst:
    """Records, in order, when the app starts its answer and when it looks an address up."""

    def __init__(self, app: ASGIApp, monkeypatch: pytest.MonkeyPatch) -> None:
        self.app = app
        self.order: list[str] = []
        find = subscribers.find

        def recorded(*args: object, **kwargs: object) -> object:
            self.order.append("lookup")
            return find(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(signup.subscribers, "find", recorded)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def noted(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.order.append("answer")
            await send(message)

        await self.app(scope, receive, noted)


@pytest.mark.parametrize("status", [None, SubscriberStatus.ACTIVE, SubscriberStatus.COMPLAINED])
def test_answer_is_sent_before_the_address_is_looked_up(
    config: Config, engine: Engine, clock: Clock, monkeypatch: pytest.MonkeyPatch,
    status: SubscriberStatus | None,
) -> None:
    """Whether the address is new or known, the answer leaves before the database is asked,
    so its timing cannot tell the two apart (an insert costs more than a read)."""
    if status is not None:
        add(engine, "timed@example.org", status)
    app = AnswerFirst(create_app(config, engine=engine, clock=clock), monkeypatch)
    assert AppClient(app).post("/subscribe", data={"email": "timed@example.org"}).status_code == 200
    assert app.order == ["answer", "lookup"]


def post_together(url: str, forms: list[dict[str, str]]) -> list[int]:
    """POST each form to /subscribe from its own thread, all released at the same instant."""
    start = threading.Barrier(len(forms))
    codes: list[int] = [0] * len(forms)

    def one(index: int) -> None:
        with httpx.Client(base_url=url) as http:
            start.wait()
            codes[index] = http.post("/subscribe", data=forms[index]).status_code

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(forms))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    return codes


@pytest.mark.parametrize("status", [None, SubscriberStatus.UNSUBSCRIBED])
def test_concurrent_requests_send_one_confirmation(
    config: Config, engine: Engine, status: SubscriberStatus | None
) -> None:
    """Several POSTs for one address at the same instant, over real HTTP: one mail, one row."""
    if status is not None:
        add(engine, "race@example.org", status)
    with live_server(create_app(config, engine=engine)) as url:
        forms = [{"email": "race@example.org"}, {"email": "RACE@example.org"}] * 2
        assert post_together(url, forms) == [200] * 4
        wait_for_mail(config, 2, timeout=3)
        assert subscribers.counts(engine)[(status or SubscriberStatus.PENDING).value] == 1
        [mail] = outbox(config)
        assert httpx.post(url + confirm_link(mail)).status_code == 200
    assert status_of(engine, "race@example.org") is SubscriberStatus.ACTIVE


def test_second_sign_up_does_not_void_the_first_mail(
    config: Config, client: AppClient, engine: Engine, clock: Clock
) -> None:
    """Another sign-up of the same address touching the row after the mail went out (two
    requests racing, the later one updating the row) leaves the mail's link working."""
    client.post("/subscribe", data={"email": "first@example.org", "name": "First"})
    [mail] = outbox(config)
    clock.now += timedelta(seconds=1)
    subscribers.add(
        engine, "first@example.org", name="Second", status=SubscriberStatus.PENDING,
        source="web", now=clock.now,
    )
    assert client.post(confirm_link(mail)).status_code == 200
    assert status_of(engine, "first@example.org") is SubscriberStatus.ACTIVE


def test_name_with_line_breaks_and_length(config: Config, client: AppClient, engine: Engine) -> None:
    """CR/LF cannot start a header, 10,000 characters are cut to the column's 200, and the
    confirmation mail shows no name at all (the sender has not proved the address is theirs)."""
    name = "Eve\r\nBcc: victim@example.net\r\n\r\nHello" + "x" * 10_000
    assert client.post("/subscribe", data={"email": "eve@example.org", "name": name}).status_code == 200
    stored = subscribers.find(engine, "eve@example.org")
    assert stored is not None
    assert "\r" not in stored.name and "\n" not in stored.name
    assert stored.name.startswith("Eve Bcc: victim@example.net Hello")
    assert len(stored.name) == 200
    [mail] = outbox(config)
    assert mail["To"] == "eve@example.org"
    assert mail["Bcc"] is None
    assert "victim" not in str(mail)


def test_typed_input_is_escaped_when_shown_back(client: AppClient) -> None:
    """An invalid address and the name are shown back in the form, HTML-escaped."""
    answer = client.post(
        "/subscribe",
        data={"email": '"><script>alert(1)</script>', "name": "<img src=x onerror=alert(2)>"},
    )
    assert answer.status_code == 400
    assert "<script>" not in answer.text
    assert "<img src=x" not in answer.text
    assert "&lt;script&gt;" in answer.text
    assert "&lt;img src=x onerror=alert(2)&gt;" in answer.text


def test_forwarded_for_is_not_trusted_by_the_app(config: Config, engine: Engine) -> None:
    """One client rotating X-Forwarded-For is still one client: the app keys the limit on the
    address the server reports (uvicorn replaces it only for FORWARDED_ALLOW_IPS proxies)."""
    busy = AppClient(create_app(config, engine=engine), client=("198.51.100.7", 1000))
    codes = [
        busy.post(
            "/subscribe", data={"email": f"f{n}@example.org"},
            headers={"x-forwarded-for": f"192.0.2.{n}", "forwarded": f"for=192.0.2.{n}"},
        ).status_code
        for n in range(7)
    ]
    assert codes == [200] * 5 + [429] * 2


def test_chunked_body_over_the_limit(config: Config, engine: Engine) -> None:
    """A body without Content-Length is counted as it arrives and refused past 64 KB."""

    def chunks() -> Iterator[bytes]:
        yield b"email=a%40example.org&name="
        for _ in range(100):
            yield b"n" * 1024

    with live_server(create_app(config, engine=engine)) as url:
        answer = httpx.post(
            url + "/subscribe", content=chunks(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert answer.status_code == 413
    assert subscribers.find(engine, "a@example.org") is None


def test_old_confirm_link_does_not_bring_back_who_left(
    config: Config, client: AppClient, engine: Engine, clock: Clock
) -> None:
    """Confirm, leave, then press the old confirm link again: still unsubscribed. Coming back
    takes a fresh confirmation mail, whose link works."""
    client.post("/subscribe", data={"email": "leaver@example.org"})
    old = confirm_link(outbox(config)[0])
    assert client.post(old).status_code == 200
    subscriber = subscribers.find(engine, "leaver@example.org")
    assert subscriber is not None and subscriber.status is SubscriberStatus.ACTIVE
    clock.now += timedelta(days=30)
    client.post(unsubscribe_path(subscribers.link_key(engine, subscriber.id)), data={"List-Unsubscribe": "One-Click"})
    clock.now += timedelta(days=1)
    assert client.get(old).status_code == 400
    answer = client.post(old)
    assert answer.status_code == 400
    assert "does not work" in answer.text
    assert status_of(engine, "leaver@example.org") is SubscriberStatus.UNSUBSCRIBED
    client.post("/subscribe", data={"email": "leaver@example.org"})
    fresh = confirm_link(outbox(config)[1])
    assert fresh != old
    assert client.get(fresh).status_code == 200
    assert client.post(fresh).status_code == 200
    assert status_of(engine, "leaver@example.org") is SubscriberStatus.ACTIVE


def test_confirm_link_sent_before_a_bounce_does_nothing(
    config: Config, client: AppClient, engine: Engine, clock: Clock
) -> None:
    """A status recorded after the mail was sent (here a bounce) outlives its link."""
    client.post("/subscribe", data={"email": "bouncy@example.org"})
    link = confirm_link(outbox(config)[0])
    clock.now += timedelta(minutes=5)
    subscribers.suppress(engine, "bouncy@example.org", "bounce", provider="test", now=clock.now)
    assert client.post(link).status_code == 400
    assert status_of(engine, "bouncy@example.org") is SubscriberStatus.BOUNCED


def test_confirm_link_pressed_twice(config: Config, client: AppClient, engine: Engine) -> None:
    """A second press (or a later visit) of a used link says "subscribed" and changes nothing."""
    client.post("/subscribe", data={"email": "twice-pressed@example.org"})
    link = confirm_link(outbox(config)[0])
    first, second = client.post(link), client.post(link)
    assert first.status_code == second.status_code == 200
    assert "You are subscribed" in second.text
    assert "You are subscribed" in client.get(link).text
    kinds = [kind for kind, _ in event_kinds(engine, "twice-pressed@example.org")]
    assert kinds.count("confirm") == 1


def test_both_confirmation_mails_work_while_pending(
    config: Config, client: AppClient, engine: Engine, clock: Clock
) -> None:
    """Someone who asked twice (an hour apart) may press either mail's link."""
    client.post("/subscribe", data={"email": "patient@example.org"})
    clock.now += timedelta(hours=2)
    client.post("/subscribe", data={"email": "patient@example.org"})
    first, _ = (confirm_link(mail) for mail in outbox(config))
    assert client.post(first).status_code == 200
    assert status_of(engine, "patient@example.org") is SubscriberStatus.ACTIVE


def test_unsubscribe_token_does_not_confirm(client: AppClient, engine: Engine) -> None:
    """A token of the other purpose, an old-style confirm token without a sending time and
    garbage all get the one "does not work" page."""
    key = add(engine, "pending@example.org", SubscriberStatus.PENDING)
    answers = [
        client.post(path)
        for path in (
            "/confirm/" + tokens.sign(SECRET, "unsubscribe", key),
            "/confirm/" + tokens.sign(SECRET, "confirm", key),
            "/confirm/garbage",
            "/confirm/",
        )
    ]
    assert {a.status_code for a in answers} == {400}
    assert len({a.content for a in answers}) == 1
    assert status_of(engine, "pending@example.org") is SubscriberStatus.PENDING


@pytest.mark.parametrize(
    "garbage",
    ["/extra", "=", "==", ".", "%20", "%2Fx", ">", ")", "/"],
)
def test_link_with_trailing_garbage(client: AppClient, engine: Engine, garbage: str) -> None:
    """A link with anything after its token gets the same page as a forged one and changes
    nothing, even for a POST."""
    key = add(engine, "tail@example.org", SubscriberStatus.ACTIVE)
    reference = client.post("/unsubscribe/NDI.forged-signature")
    answer = client.post(unsubscribe_path(key) + garbage)
    assert answer.status_code == reference.status_code == 400
    assert answer.content == reference.content
    assert status_of(engine, "tail@example.org") is SubscriberStatus.ACTIVE


def test_token_for_subscriber_zero(client: AppClient) -> None:
    """A validly signed older token for id 0 (no row ever has it) is just an unknown token."""
    reference = client.get("/unsubscribe/NDI.forged-signature")
    answer = client.get("/unsubscribe/" + legacy_token("unsubscribe", 0))
    assert answer.status_code == 400
    assert answer.content == reference.content


def test_token_for_an_id_beyond_the_database(client: AppClient) -> None:
    """A signed id too large for the database gets the invalid page, not a server error."""
    assert client.post("/unsubscribe/" + legacy_token("unsubscribe", 2**70)).status_code == 400


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"List-Unsubscribe=One-Click", "application/x-www-form-urlencoded"),
        (b"List-Unsubscribe=One-Click&extra=1", "application/x-www-form-urlencoded"),
        (b"", "application/x-www-form-urlencoded"),
        (b"List-Unsubscribe=One-Click", "text/plain"),
        (b"--broken multipart", "multipart/form-data; boundary=xyz"),
    ],
)
def test_any_post_to_a_valid_link_unsubscribes(
    client: AppClient, engine: Engine, body: bytes, content_type: str
) -> None:
    """The RFC 8058 body, a near miss, none or a broken one: a POST to the link is the
    request, and the answer is 200 without redirect or cookie."""
    key = add(engine, "poster@example.org", SubscriberStatus.ACTIVE)
    answer = client.post(
        unsubscribe_path(key), content=body, headers={"content-type": content_type}
    )
    assert answer.status_code == 200
    assert "location" not in answer.headers and "set-cookie" not in answer.headers
    assert status_of(engine, "poster@example.org") is SubscriberStatus.UNSUBSCRIBED


def test_prefetch_then_one_click(client: AppClient, engine: Engine) -> None:
    """A scanner's GET and HEAD change nothing; the one-click POST after them still works,
    with foreign cookies and no CSRF token."""
    key = add(engine, "scanned@example.org", SubscriberStatus.ACTIVE)
    path = unsubscribe_path(key)
    assert client.get(path).status_code == 200
    assert client.head(path).status_code == 200
    assert status_of(engine, "scanned@example.org") is SubscriberStatus.ACTIVE
    answer = client.post(
        path, data={"List-Unsubscribe": "One-Click"},
        headers={"cookie": "session=someone-elses", "origin": "https://mail.example.com"},
    )
    assert answer.status_code == 200
    assert status_of(engine, "scanned@example.org") is SubscriberStatus.UNSUBSCRIBED


HTML_SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "referrer-policy",
                         "x-frame-options")


def test_every_page_has_security_headers(
    config: Config, engine: Engine, clock: Clock
) -> None:
    """Form, answer, form error, limit, confirm and unsubscribe pages, good links and bad:
    each carries a CSP without scripts, nosniff, a referrer policy and a frame refusal."""
    app = create_app(config, engine=engine, clock=clock)
    client = AppClient(app)
    active = add(engine, "headers@example.org", SubscriberStatus.ACTIVE)
    pages = [
        client.get("/subscribe"),
        client.post("/subscribe", data={"email": "h@example.org"}),
        client.post("/subscribe", data={"email": "nope"}),
        client.get(unsubscribe_path(active)),
        client.get("/unsubscribe/bad"),
        client.get("/confirm/bad"),
        client.post(unsubscribe_path(active)),
    ]
    limited = AppClient(app, client=("192.0.2.99", 1))
    pages += [limited.post("/subscribe", data={"email": f"l{n}@example.org"}) for n in range(6)]
    assert pages[-1].status_code == 429
    for page in pages:
        assert page.headers["content-type"].startswith("text/html")
        for name in HTML_SECURITY_HEADERS:
            assert name in page.headers, (page.request.url, name)
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src" not in policy
        assert "form-action 'self'" in policy
        assert page.headers["x-content-type-options"] == "nosniff"
        assert "<script" not in page.text.lower()


def test_forms_post_to_themselves_without_scripts(
    client: AppClient, engine: Engine
) -> None:
    """Every form is a plain HTML form posting back to its own address: it works with
    JavaScript off (and the CSP allows none)."""
    key = add(engine, "nojs@example.org", SubscriberStatus.PENDING)
    link = "/confirm/" + tokens.sign_confirm(SECRET, key, START + timedelta(hours=1))
    for path in ("/subscribe", unsubscribe_path(key), link):
        page = client.get(path)
        assert page.status_code == 200, path
        assert re.search(r'<form[^>]*method="post"[^>]*action=""', page.text), path
        assert 'type="submit"' in page.text


def test_uploaded_file_is_not_a_field(client: AppClient, engine: Engine) -> None:
    """A file part named like a field is ignored, not turned into text and shown back."""
    answer = client.post(
        "/subscribe", files={"email": ("a.txt", b"x@example.org", "text/plain")},
    )
    assert answer.status_code == 400
    assert "UploadFile" not in answer.text
    assert subscribers.find(engine, "x@example.org") is None


def test_behind_a_proxy_on_the_same_host(config: Config, engine: Engine) -> None:
    """Through uvicorn as `publisher serve` runs it, a proxy on 127.0.0.1 is trusted: the
    right-most forwarded address is the client, and a visitor's own X-Forwarded-For entries
    in front of it change nothing."""
    with live_server(create_app(config, engine=engine)) as url, httpx.Client(base_url=url) as http:

        def post(number: int, chain: str) -> int:
            return http.post(
                "/subscribe", data={"email": f"p{number}@example.org"},
                headers={"x-forwarded-for": chain},
            ).status_code

        same_visitor = [post(n, f"10.9.8.{n}, 192.0.2.44") for n in range(6)]
        other_visitor = post(9, "192.0.2.45")
    assert same_visitor == [200] * 5 + [429]
    assert other_visitor == 200


def send_to_everyone(config: Config, engine: Engine) -> dict[str, str]:
    """One newsletter to every active subscriber through the delivery engine, into the
    Maildir; each reader's one-click unsubscribe path, as their mail carries it."""
    issue = ledger.create_issue(
        engine, key="tag:example.org,2026:/hello", kind="article", slug="hello", subject="Hello",
        html="<html><body><p>Hello</p></body></html>", text="Hello", tag=None, status="draft",
        now=START,
    )
    ledger.enqueue(engine, issue, now=START)
    provider = make_provider(config)
    deliver(config, engine, provider, stop=threading.Event(), clock=lambda: START, secret=SECRET)
    links: dict[str, str] = {}
    for mail in outbox(config):
        url = str(mail["List-Unsubscribe"]).split(",")[0].strip(" <>")
        links[mail["To"].addresses[0].addr_spec] = urlsplit(url).path
    return links


def test_a_link_never_reaches_another_person_after_a_rebuild(tmp_path: Path) -> None:
    """The database rebuilt under the same secret, the subscribers imported in another
    order: a link from mail the first database sent unsubscribes nobody there, where it
    used to unsubscribe whoever now had the same row id. In its own database it still works."""
    (tmp_path / "first").mkdir()
    (tmp_path / "rebuilt").mkdir()
    first_config = make_publication(tmp_path / "first")
    first = open_store(first_config.store_url)
    for address in ("ann@example.org", "bob@example.org"):
        subscribers.add(first, address, now=START)
    links = send_to_everyone(first_config, first)
    assert set(links) == {"ann@example.org", "bob@example.org"}

    config = make_publication(tmp_path / "rebuilt")
    rebuilt = open_store(config.store_url)
    for address in ("bob@example.org", "ann@example.org"):
        subscribers.add(rebuilt, address, now=START)
    client = AppClient(create_app(config, engine=rebuilt, clock=lambda: START))
    for address in ("ann@example.org", "bob@example.org"):
        assert client.get(links[address]).status_code == 400
        answer = client.post(links[address], data={"List-Unsubscribe": "One-Click"})
        assert answer.status_code == 400
    assert status_of(rebuilt, "ann@example.org") is SubscriberStatus.ACTIVE
    assert status_of(rebuilt, "bob@example.org") is SubscriberStatus.ACTIVE

    original = AppClient(create_app(first_config, engine=first, clock=lambda: START))
    answer = original.post(links["bob@example.org"], data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200
    assert status_of(first, "bob@example.org") is SubscriberStatus.UNSUBSCRIBED
    assert status_of(first, "ann@example.org") is SubscriberStatus.ACTIVE


def test_an_older_id_link_reaches_nobody_in_a_rebuilt_database(
    client: AppClient, engine: Engine
) -> None:
    """A link in the older id-only form, from mail a previous database sent: in a database
    made since, no row can prove it is that person, so nobody is unsubscribed."""
    add(engine, "first@example.org", SubscriberStatus.ACTIVE)
    add(engine, "second@example.org", SubscriberStatus.ACTIVE)
    for subscriber_id in (1, 2):
        answer = client.post(
            "/unsubscribe/" + legacy_token("unsubscribe", subscriber_id),
            data={"List-Unsubscribe": "One-Click"},
        )
        assert answer.status_code == 400
    assert status_of(engine, "first@example.org") is SubscriberStatus.ACTIVE
    assert status_of(engine, "second@example.org") is SubscriberStatus.ACTIVE


def test_older_id_links_keep_working_for_whom_they_were_mailed_to(
    config: Config, clock: Clock, tmp_path: Path
) -> None:
    """A database from before link keys, upgraded: an id-only link works for the reader
    the ledger shows it was mailed to, and for nobody the ledger never mailed."""
    url = f"sqlite:///{tmp_path / 'before-link-keys.db'}"
    command.upgrade(alembic_config(url), "0001")
    legacy_db = create_engine(url)
    with legacy_db.begin() as conn:
        for n, address in enumerate(("ann@example.org", "bob@example.org", "cy@example.org"), 1):
            conn.execute(
                text(
                    "INSERT INTO subscribers (id, email, name, status, source, created_at, updated_at)"
                    " VALUES (:id, :email, '', 'active', 'cli', :now, :now)"
                ),
                {"id": n, "email": address, "now": START},
            )
        conn.execute(
            text(
                "INSERT INTO issues (id, key, kind, slug, subject, html, text, status, created_at)"
                " VALUES (1, 'k', 'article', 's', 'S', 'h', 't', 'done', :now)"
            ),
            {"now": START},
        )
        for n in (1, 2):
            conn.execute(
                text(
                    "INSERT INTO deliveries (issue_id, subscriber_id, email, name, state, attempts,"
                    " not_before, provider_id, detail, uncertain)"
                    " VALUES (1, :n, :email, '', 'sent', 1, :now, '', '', false)"
                ),
                {"n": n, "email": ("ann@example.org", "bob@example.org")[n - 1], "now": START},
            )
    legacy_db.dispose()
    engine = open_store(url)
    with engine.connect() as conn:
        assert sorted(conn.execute(select(deliveries.c.message_key)).scalars()) == ["i1.d1", "i1.d2"]
    client = AppClient(create_app(config, engine=engine, clock=clock))
    unsubscribe = {"List-Unsubscribe": "One-Click"}
    assert client.post("/unsubscribe/" + legacy_token("unsubscribe", 2), data=unsubscribe).status_code == 200
    assert client.post("/unsubscribe/" + legacy_token("unsubscribe", 3), data=unsubscribe).status_code == 400
    assert status_of(engine, "bob@example.org") is SubscriberStatus.UNSUBSCRIBED
    assert status_of(engine, "ann@example.org") is SubscriberStatus.ACTIVE
    assert status_of(engine, "cy@example.org") is SubscriberStatus.ACTIVE
    keys = [subscribers.link_key(engine, n) for n in (1, 2, 3)]
    assert len(set(keys)) == 3
