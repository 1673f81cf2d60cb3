"""Subscribe with double opt-in, confirm, and RFC 8058 unsubscribe, over HTTP."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select
from web_support import SECRET, AppClient, live_server, make_publication, outbox, wait_for_mail

from publisher import tokens
from publisher.config import Config
from publisher.models import SubscriberStatus
from publisher.store import open_store, subscribers
from publisher.store.schema import events
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


def add(engine: Engine, email: str, status: SubscriberStatus) -> int:
    subscriber = subscribers.add(engine, email, status=SubscriberStatus.ACTIVE, now=START)
    if status is not SubscriberStatus.ACTIVE:
        subscribers.set_status(engine, subscriber.id, status, now=START, kind="test")
    return subscriber.id


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
        assert mail["To"] == "Ada <ada@example.org>"
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
    subscriber_id = add(engine, "spam@example.org", SubscriberStatus.COMPLAINED)
    token = tokens.sign(SECRET, "confirm", subscriber_id)
    assert client.post(f"/confirm/{token}").status_code == 400
    assert status_of(engine, "spam@example.org") is SubscriberStatus.COMPLAINED


def test_bad_confirm_token(client: AppClient) -> None:
    """A forged confirm token gets the "link does not work" page."""
    answer = client.post("/confirm/MQ.forged")
    assert answer.status_code == 400
    assert "does not work" in answer.text


def unsubscribe_path(subscriber_id: int) -> str:
    return f"/unsubscribe/{tokens.sign(SECRET, 'unsubscribe', subscriber_id)}"


def test_unsubscribe_get_changes_nothing(client: AppClient, engine: Engine) -> None:
    """GET (a mail scanner following the link) shows a button and unsubscribes nobody."""
    subscriber_id = add(engine, "stay@example.org", SubscriberStatus.ACTIVE)
    page = client.get(unsubscribe_path(subscriber_id))
    assert page.status_code == 200
    assert 'method="post"' in page.text
    assert status_of(engine, "stay@example.org") is SubscriberStatus.ACTIVE


def test_one_click_post_over_http(config: Config, engine: Engine) -> None:
    """RFC 8058: POST List-Unsubscribe=One-Click gives 200, no redirect, no cookie."""
    subscriber_id = add(engine, "leave@example.org", SubscriberStatus.ACTIVE)
    with live_server(create_app(config, engine=engine)) as url:
        answer = httpx.post(
            url + unsubscribe_path(subscriber_id),
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
    subscriber_id = add(engine, "multi@example.org", SubscriberStatus.ACTIVE)
    answer = client.post(
        unsubscribe_path(subscriber_id), files={"List-Unsubscribe": (None, "One-Click")}
    )
    assert answer.status_code == 200
    assert status_of(engine, "multi@example.org") is SubscriberStatus.UNSUBSCRIBED


def test_one_click_is_idempotent(client: AppClient, engine: Engine) -> None:
    """A repeated POST answers the same and records one unsubscribe."""
    subscriber_id = add(engine, "again@example.org", SubscriberStatus.ACTIVE)
    first = client.post(unsubscribe_path(subscriber_id), data={"List-Unsubscribe": "One-Click"})
    second = client.post(unsubscribe_path(subscriber_id), data={"List-Unsubscribe": "One-Click"})
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert [k for k, _ in event_kinds(engine, "again@example.org")].count("unsubscribe") == 1


def test_page_button_unsubscribes(client: AppClient, engine: Engine) -> None:
    """The GET page's button (an empty form POST) unsubscribes too."""
    subscriber_id = add(engine, "button@example.org", SubscriberStatus.ACTIVE)
    assert client.post(unsubscribe_path(subscriber_id), data={}).status_code == 200
    assert ("unsubscribe", "web page") in event_kinds(engine, "button@example.org")


def test_unsubscribe_keeps_a_bounce(client: AppClient, engine: Engine) -> None:
    """Unsubscribing a bounced address answers 200 and leaves it bounced."""
    subscriber_id = add(engine, "gone@example.org", SubscriberStatus.BOUNCED)
    assert client.post(unsubscribe_path(subscriber_id)).status_code == 200
    assert status_of(engine, "gone@example.org") is SubscriberStatus.BOUNCED


def test_unsubscribe_wins_over_later_batches(client: AppClient, engine: Engine) -> None:
    """Once the POST is answered, the address is no longer among the active subscribers."""
    subscriber_id = add(engine, "out@example.org", SubscriberStatus.ACTIVE)
    client.post(unsubscribe_path(subscriber_id))
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
            unsubscribe_path(99999),
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
