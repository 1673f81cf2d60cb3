"""Private analytics: off by default; when on, a pixel and signed click links in the HTML part only."""

from __future__ import annotations

import csv
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa
from desk_support import add_users, quick_hashes, sign_in
from web_support import SECRET, AppClient, live_server, make_publication

from publisher.config import Config
from publisher.delivery.engine import deliver
from publisher.mail import tokens, tracking
from publisher.mail.newsletter import MessageTemplate, Recipient
from publisher.models import Outcome, SendResult
from publisher.services import access, analytics, machine_traffic
from publisher.store import engagement, ledger, open_store, segment_rules, segments, subscribers
from publisher.store.schema import deliveries, engagement_seen
from publisher.store.schema import engagement as table
from publisher.web import create_app

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
DATA = Path(__file__).parent / "data" / "machine_traffic" / "requests.csv"
HTML = (
    '<html><body><p>Read <a href="https://example.org/sleep/">the article</a> and '
    '<a href="https://journals.example.net/a?x=1&amp;y=2">the study</a>.</p>'
    '<p><a href="__pub_html_unsubscribe_url__">Unsubscribe</a></p></body></html>'
)
READER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


class Keeper:
    """A provider that keeps each message's bytes."""

    name = "keeper"
    max_batch = 100

    def __init__(self) -> None:
        self.messages: dict[str, bytes] = {}

    def send(self, template: MessageTemplate, recipients: Sequence[Recipient], *, now: datetime) -> list[SendResult]:
        for r in recipients:
            self.messages[r.email] = template.message_bytes(r, now)
        return [SendResult(r.delivery_id, r.email, Outcome.SENT, provider_id="ok") for r in recipients]

    def close(self) -> None:
        pass


def publication(tmp_path: Path, *, on: bool = True, per_person: bool = True) -> Config:
    extra = ""
    if on:
        extra = f"\n[analytics]\nenabled = true\nper_person = {'true' if per_person else 'false'}\n"
    return make_publication(tmp_path, extra=extra)


def send(config: Config, db: sa.Engine, readers: int = 2) -> tuple[int, dict[str, Message]]:
    for n in range(readers):
        subscribers.add(db, f"r{n}@example.org", now=NOW)
    issue = ledger.create_issue(db, key="tag:example.org,2026:/hi", kind="article", slug="hi", subject="Hi",
                                html=HTML, text="Read https://example.org/sleep/", tag=None, status="draft", now=NOW)
    ledger.enqueue(db, issue, now=NOW - timedelta(minutes=1))
    keeper = Keeper()
    deliver(config, db, keeper, stop=threading.Event(), clock=lambda: NOW, secret=SECRET)  # type: ignore[arg-type]
    return issue, {email: message_from_bytes(raw) for email, raw in keeper.messages.items()}


def parts(message: Message) -> tuple[str, str]:
    text = html = ""
    for part in message.walk():
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        if part.get_content_type() == "text/plain":
            text = payload.decode()
        elif part.get_content_type() == "text/html":
            html = payload.decode()
    return text, html


def click_paths(html: str) -> list[str]:
    return [urlsplit(chunk.split('"')[0]).path for chunk in html.split('href="')[1:]
            if "/c/" in chunk.split('"')[0]]


def pixel_path(html: str) -> str:
    return urlsplit(html.split('src="', 1)[1].split('"')[0]).path


def test_off_by_default_no_pixel_no_rewritten_link(tmp_path: Path) -> None:
    """Out of the box a newsletter carries no pixel and its links are the author's own."""
    config = publication(tmp_path, on=False)
    db = open_store(config.store_url)
    _, sent = send(config, db)
    _, html = parts(sent["r0@example.org"])
    assert "/o/" not in html and "/c/" not in html
    assert 'href="https://example.org/sleep/"' in html
    assert not config["analytics.enabled"] and not config["analytics.per_person"]


def test_on_pixel_and_links_in_html_only(tmp_path: Path) -> None:
    """With analytics on, the HTML part gets a pixel and signed links; the text part is untouched."""
    config = publication(tmp_path)
    db = open_store(config.store_url)
    issue, sent = send(config, db)
    text, html = parts(sent["r0@example.org"])
    assert "/o/" not in text and "/c/" not in text and "https://example.org/sleep/" in text
    paths = click_paths(html)
    assert len(paths) == 2 and pixel_path(html).endswith(".gif")
    assert "__pub_html_unsubscribe_url__" not in html and "/unsubscribe/" in html
    # One copy token per reader: the two readers' links differ.
    _, other = parts(sent["r1@example.org"])
    assert click_paths(other) != paths
    assert engagement.link_url(db, issue, 2) == "https://journals.example.net/a?x=1&y=2"


def test_a_click_leads_only_to_a_link_of_the_issue(tmp_path: Path) -> None:
    """A click link answers a 302 to the issue's link and is counted for its copy."""
    config = publication(tmp_path)
    db = open_store(config.store_url)
    issue, sent = send(config, db)
    _, html = parts(sent["r0@example.org"])
    later = NOW + timedelta(hours=2)
    client = AppClient(create_app(config, engine=db, clock=lambda: later))
    answer = client.get(click_paths(html)[1], headers={"user-agent": READER})
    assert answer.status_code == 302
    assert answer.headers["location"] == "https://journals.example.net/a?x=1&y=2"
    copy = db.connect().execute(sa.select(deliveries.c.id).where(deliveries.c.email == "r0@example.org")).scalar()
    assert kept_copies(db) == [copy]
    totals = engagement.totals(db, issue)
    assert totals.unique_clicks == 1


def kept_copies(db: sa.Engine) -> list[int | None]:
    """The copy each kept request names (None: no one), in the order they came."""
    with db.connect() as conn:
        return list(conn.execute(sa.select(table.c.delivery_id).order_by(table.c.id)).scalars())


def seen_digests(db: sa.Engine) -> set[str]:
    with db.connect() as conn:
        return set(conn.execute(sa.select(engagement_seen.c.digest)).scalars())


def message_key(db: sa.Engine, email: str) -> str:
    with db.connect() as conn:
        return str(conn.execute(sa.select(deliveries.c.message_key).where(deliveries.c.email == email)).scalar())


def test_repeated_pixel_loads_count_one_open_per_copy(tmp_path: Path) -> None:
    """Without per-person analytics, a copy loading the pixel three times is one unique open; the loads stay."""
    config = publication(tmp_path, per_person=False)
    db = open_store(config.store_url)
    issue, sent = send(config, db)
    client = AppClient(create_app(config, engine=db, clock=lambda: NOW + timedelta(hours=1)))
    for email, times in (("r0@example.org", 3), ("r1@example.org", 1)):
        _, html = parts(sent[email])
        for _ in range(times):
            client.get(pixel_path(html), headers={"user-agent": READER})
    totals = engagement.totals(db, issue)
    assert (totals.opens, totals.unique_opens) == (4, 2)
    assert kept_copies(db) == [None] * 4


def test_five_clicks_count_once_for_the_copy_and_the_link(tmp_path: Path) -> None:
    """Without per-person analytics, five clicks of one link by one copy: one unique click, on the copy and the link."""
    config = publication(tmp_path, per_person=False)
    db = open_store(config.store_url)
    issue, sent = send(config, db)
    _, html = parts(sent["r0@example.org"])
    client = AppClient(create_app(config, engine=db, clock=lambda: NOW + timedelta(hours=1)))
    for _ in range(5):
        assert client.get(click_paths(html)[0], headers={"user-agent": READER}).status_code == 302
    totals = engagement.totals(db, issue)
    assert (totals.clicks, totals.unique_clicks) == (5, 1)
    first = next(link for link in totals.links if link.url == "https://example.org/sleep/")
    assert (first.clicks, first.unique_clicks) == (5, 1)


def test_an_erasure_cuts_a_copy_counted_once_loose_from_the_reader(tmp_path: Path) -> None:
    """Erasing a reader replaces their copy's digest (recomputed from the ledger): still counted, leading to no one."""
    config = publication(tmp_path, per_person=False)
    db = open_store(config.store_url)
    issue, sent = send(config, db)
    _, html = parts(sent["r0@example.org"])
    client = AppClient(create_app(config, engine=db, clock=lambda: NOW + timedelta(hours=1)))
    client.get(pixel_path(html), headers={"user-agent": READER})
    theirs = engagement.digest(issue, message_key(db, "r0@example.org"))
    assert seen_digests(db) == {theirs}
    subscribers.remove(db, "r0@example.org", now=NOW + timedelta(hours=2), purge=True)
    assert theirs not in seen_digests(db) and len(seen_digests(db)) == 1
    assert engagement.totals(db, issue).unique_opens == 1


def test_a_tampered_click_token_answers_a_plain_page(tmp_path: Path) -> None:
    """A changed signature, link number or issue answers a page linking home, never a redirect."""
    config = publication(tmp_path)
    db = open_store(config.store_url)
    issue, sent = send(config, db)
    _, html = parts(sent["r0@example.org"])
    good = click_paths(html)[0]
    link_part, copy_part = good.removeprefix("/c/").split("_")
    number, link, mac = link_part.split("-")
    forged = [
        f"/c/{number}-{link}-{'0' * 20}_{copy_part}",
        f"/c/{number}-3-{mac}_{copy_part}",
        f"/c/{link_part}_{copy_part[:-1]}{'1' if copy_part[-1] == '0' else '0'}",
        f"/c/{tracking.link_token(SECRET, issue, 99)}_{copy_part}",
        "/c/https%3A%2F%2Fevil.example",
    ]
    client = AppClient(create_app(config, engine=db, clock=lambda: NOW + timedelta(hours=1)))
    for path in forged:
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 404 and "location" not in answer.headers, path
        assert f'href="{config.site_url}"' in answer.text
    assert engagement.totals(db, issue).clicks == 0


def test_recorded_machine_traffic_is_told_from_readers() -> None:
    """Every recorded request gets the verdict its row expects."""
    with DATA.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 15
    for row in rows:
        if row["kind"] == "open":
            verdict = machine_traffic.classify_open(method=row["method"], user_agent=row["user_agent"], ip=row["ip"])
        else:
            at = NOW + timedelta(seconds=int(row["seconds"]))
            verdict = machine_traffic.classify_click(
                method=row["method"], user_agent=row["user_agent"], at=at, made_at=NOW, scanner_seconds=10,
                link_id=1,
            )
        assert (verdict.machine, verdict.reason) == (row["machine"] == "yes", row["reason"]), row


def test_every_link_of_a_copy_within_a_second_is_a_scanner(tmp_path: Path) -> None:
    """A copy whose links are all clicked within a second: every one of those clicks is a machine's."""
    config = publication(tmp_path)
    db = open_store(config.store_url)
    issue, sent = send(config, db)
    _, html = parts(sent["r0@example.org"])
    at = NOW + timedelta(minutes=5)
    client = AppClient(create_app(config, engine=db, clock=lambda: at))
    for path in click_paths(html):
        assert client.get(path, headers={"user-agent": READER}).status_code == 302
    totals = engagement.totals(db, issue)
    assert (totals.clicks, totals.machine_clicks) == (0, 2)
    assert totals.machine_reasons == {"every_link_at_once": 2}


def test_machine_opens_are_counted_apart(tmp_path: Path) -> None:
    """Apple's proxy fetch is a machine's; Gmail's proxy is a reader's open, noted; HEAD counts as a machine."""
    config = publication(tmp_path, per_person=False)
    db = open_store(config.store_url)
    issue, sent = send(config, db)
    _, html = parts(sent["r0@example.org"])
    pixel = pixel_path(html)
    client = AppClient(create_app(config, engine=db, clock=lambda: NOW + timedelta(hours=1)))
    client.get(pixel, headers={"user-agent": "Mozilla/5.0"})
    client.get(pixel, headers={"user-agent": "Mozilla/5.0 (via ggpht.com GoogleImageProxy)"})
    client.get(pixel, headers={"user-agent": READER})
    answer = client.head(pixel, headers={"user-agent": READER})
    assert answer.headers["content-type"] == "image/gif"
    totals = engagement.totals(db, issue)
    assert (totals.opens, totals.machine_opens) == (2, 2)
    assert totals.noted_opens == {"google_image_proxy": 1}
    assert totals.unique_opens == 1 and kept_copies(db) == [None, None, None, None]
    assert totals.machine_share == 0.5


def test_per_person_engagement_is_erased_with_the_reader(tmp_path: Path) -> None:
    """Erasing a reader cuts their opens loose from them; the issue's counts stay."""
    config = publication(tmp_path)
    db = open_store(config.store_url)
    issue, sent = send(config, db)
    _, html = parts(sent["r0@example.org"])
    client = AppClient(create_app(config, engine=db, clock=lambda: NOW + timedelta(hours=1)))
    client.get(pixel_path(html), headers={"user-agent": READER})
    found = subscribers.find(db, "r0@example.org")
    assert found is not None
    assert analytics.reader_summary(config, db, found.id) == (1, 1)
    page = client.get(f"/manage/{tokens.sign(SECRET, 'unsubscribe', subscribers.link_key(db, found.id))}")
    assert "What we know: you opened 1 of the last 1 issues." in page.text
    subscribers.remove(db, "r0@example.org", now=NOW + timedelta(hours=2), purge=True)
    assert kept_copies(db) == [None]
    totals = engagement.totals(db, issue)
    assert (totals.opens, totals.unique_opens) == (1, 1)


def kept_readers(db: sa.Engine) -> list[int | None]:
    """The reader each kept request names (None: no one), in the order they came."""
    with db.connect() as conn:
        return list(conn.execute(sa.select(table.c.subscriber_id).order_by(table.c.id)).scalars())


def opened_last_issue(db: sa.Engine) -> int:
    """How many active readers the segment "opened the last issue" holds."""
    rules = segment_rules.parse({"conditions": [{"field": "engagement", "op": "opened", "value": 1}]})
    return segments.count(db, rules, now=NOW + timedelta(hours=2))


def test_a_per_person_open_names_its_reader_until_they_are_erased(tmp_path: Path) -> None:
    """An open kept per person names the copy's reader, whom "opened" segments find; the
    erasure takes the reader away and the count stays."""
    config = publication(tmp_path)
    db = open_store(config.store_url)
    issue, sent = send(config, db)
    _, html = parts(sent["r0@example.org"])
    client = AppClient(create_app(config, engine=db, clock=lambda: NOW + timedelta(hours=1)))
    client.get(pixel_path(html), headers={"user-agent": READER})
    client.get(click_paths(html)[0], headers={"user-agent": READER})
    found = subscribers.find(db, "r0@example.org")
    assert found is not None
    assert kept_readers(db) == [found.id, found.id] and opened_last_issue(db) == 1
    subscribers.remove(db, "r0@example.org", now=NOW + timedelta(hours=2), purge=True)
    assert kept_readers(db) == [None, None] and opened_last_issue(db) == 0
    assert engagement.totals(db, issue).opens == 1


def test_forget_cuts_the_opens_loose_from_the_reader_too(tmp_path: Path) -> None:
    """`forget`, the erasure's first step, leaves no request naming the reader, even before
    the reader's row goes."""
    config = publication(tmp_path)
    db = open_store(config.store_url)
    _, sent = send(config, db)
    client = AppClient(create_app(config, engine=db, clock=lambda: NOW + timedelta(hours=1)))
    for address in ("r0@example.org", "r1@example.org"):
        client.get(pixel_path(parts(sent[address])[1]), headers={"user-agent": READER})
    erased, kept = subscribers.find(db, "r0@example.org"), subscribers.find(db, "r1@example.org")
    assert erased is not None and kept is not None
    with db.begin() as conn:
        assert engagement.forget(conn, erased.id) == 2  # the request, and its copy's digest
    assert kept_readers(db) == [None, kept.id] and kept_copies(db)[0] is None


def test_without_per_person_an_open_names_no_reader(tmp_path: Path) -> None:
    """With per-person analytics off an open is kept without its reader: "opened" finds no one."""
    config = publication(tmp_path, per_person=False)
    db = open_store(config.store_url)
    _, sent = send(config, db)
    client = AppClient(create_app(config, engine=db, clock=lambda: NOW + timedelta(hours=1)))
    client.get(pixel_path(parts(sent["r0@example.org"])[1]), headers={"user-agent": READER})
    assert kept_readers(db) == [None] and opened_last_issue(db) == 0


def test_the_upgrade_gives_opens_kept_per_person_their_reader(tmp_path: Path) -> None:
    """A store from before opens carried their reader gets, for each open kept per person,
    its copy's reader; an open kept without a person stays without one."""
    from alembic import command

    from publisher.store.engine import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0029")
    old = sa.create_engine(url)
    with old.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO subscribers (id, email, name, status, source, created_at, updated_at, token_key, "
            "legacy_links, frequency) VALUES (7, 'a@example.org', '', 'active', '', '2026-01-01 00:00:00.000000', "
            "'2026-01-01 00:00:00.000000', '" + "a" * 32 + "', 0, 'every')"
        ))
        conn.execute(sa.text(
            "INSERT INTO issues (id, key, kind, slug, subject, html, text, status, created_at) VALUES "
            "(1, 'k1', 'article', 's', 'S', '', '', 'done', '2026-01-02 08:00:00.000000')"
        ))
        conn.execute(sa.text(
            "INSERT INTO deliveries (id, issue_id, subscriber_id, email, name, state, attempts, not_before, "
            "provider_id, detail, message_key, uncertain) VALUES (3, 1, 7, 'a@example.org', '', 'sent', 1, "
            "'2026-01-02 08:00:00.000000', '', '', 'm1', 0)"
        ))
        for delivery in ("3", "NULL"):
            conn.execute(sa.text(
                "INSERT INTO engagement (delivery_id, issue_id, kind, at, machine, reason) VALUES "
                f"({delivery}, 1, 'open', '2026-01-02 09:00:00.000000', 0, '')"
            ))
    old.dispose()
    db = open_store(url)
    assert kept_readers(db) == [7, None]


@pytest.mark.parametrize("per_person", [True, False])
def test_the_api_shows_the_issue_numbers(tmp_path: Path, per_person: bool) -> None:
    """GET /api/v1/stats/issues/{id}/engagement answers the same numbers as the report."""
    config = publication(tmp_path, per_person=per_person)
    db = open_store(config.store_url)
    issue, sent = send(config, db)
    _, html = parts(sent["r0@example.org"])
    client = AppClient(create_app(config, engine=db, clock=lambda: NOW + timedelta(hours=1)))
    client.get(pixel_path(html), headers={"user-agent": READER})
    client.get(click_paths(html)[0], headers={"user-agent": READER})
    key = access.create_key(db, "stats", ["stats:read"], now=NOW).token
    answer = client.get(f"/api/v1/stats/issues/{issue}/engagement", headers={"authorization": f"Bearer {key}"})
    assert answer.status_code == 200
    body = answer.json()
    numbers = analytics.issue_totals(db, issue)
    assert (body["opens"], body["clicks"]) == (numbers.opens, numbers.clicks) == (1, 1)
    assert body["links"][0]["url"] == numbers.links[0].url == "https://example.org/sleep/"
    assert body["unique_opens"] == 1 and body["links"][0]["unique_clicks"] == 1
    missing = client.get("/api/v1/stats/issues/999/engagement", headers={"authorization": f"Bearer {key}"})
    assert missing.status_code == 404


def test_the_issue_page_reports_opens_clicks_top_links_and_machines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The desk's issue page shows readers' and machines' opens and clicks, a chart and the top links."""
    quick_hashes(monkeypatch)
    config = publication(tmp_path)
    add_users(config)
    db = open_store(config.store_url)
    issue, sent = send(config, db)
    _, html = parts(sent["r0@example.org"])
    later = NOW + timedelta(hours=1)
    client = AppClient(create_app(config, engine=db, clock=lambda: later))
    client.get(pixel_path(html), headers={"user-agent": READER})
    client.get(pixel_path(html), headers={"user-agent": "Mozilla/5.0"})
    client.get(click_paths(html)[1], headers={"user-agent": READER})
    with live_server(create_app(config, engine=db)) as url, httpx.Client(base_url=url) as http:
        sign_in(http)
        page = http.get(f"/desk/issues/{issue}").text
    report = page.split('id="engagement"', 1)[1].split("</section>", 1)[0]
    assert "Readers: 1 opened it (1 picture load(s) in all), 1 clicked (1 click(s) in all);" in report
    assert "Machines: 1 open(s), 0 click(s), 33% of all requests (apple privacy protection: 1)" in report
    assert "<svg" in report
    assert report.index("https://journals.example.net/a?x=1&amp;y=2") < report.index("https://example.org/sleep/")


def test_links_keep_their_numbers_when_an_issue_is_rendered_again(tmp_path: Path) -> None:
    """A resume numbers the same links the same way, and a new link comes after them."""
    db = open_store(f"sqlite:///{tmp_path / 's.db'}")
    issue = ledger.create_issue(db, key="k", kind="article", slug="k", subject="s", html="<p/>", text="x",
                                tag=None, status="draft", now=NOW)
    first = engagement.record_links(db, issue, ["https://a.example/", "https://b.example/"])
    again = engagement.record_links(db, issue, ["https://c.example/", "https://b.example/", "https://a.example/"])
    assert first == {"https://a.example/": 1, "https://b.example/": 2}
    assert again == {"https://c.example/": 3, "https://b.example/": 2, "https://a.example/": 1}


def test_a_link_sent_while_on_still_leads_on_when_analytics_are_turned_off(tmp_path: Path) -> None:
    """Turning analytics off stops the counting, not the links in mail already sent."""
    config = publication(tmp_path)
    db = open_store(config.store_url)
    issue, sent = send(config, db)
    _, html = parts(sent["r0@example.org"])
    (tmp_path / "off").mkdir()
    off = make_publication(tmp_path / "off", extra="\n[analytics]\nenabled = false\n")
    client = AppClient(create_app(off, engine=db, clock=lambda: NOW + timedelta(hours=1)))
    assert client.get(click_paths(html)[0], headers={"user-agent": READER}).status_code == 302
    assert client.get(pixel_path(html), headers={"user-agent": READER}).headers["content-type"] == "image/gif"
    totals = engagement.totals(db, issue)
    assert (totals.opens, totals.clicks) == (0, 0)


def test_a_reader_page_says_nothing_known_before_any_issue(tmp_path: Path) -> None:
    """With nothing sent to a reader yet, their page claims no knowledge of them."""
    config = publication(tmp_path)
    db = open_store(config.store_url)
    found = subscribers.add(db, "new@example.org", now=NOW)
    client = AppClient(create_app(config, engine=db, clock=lambda: NOW))
    page = client.get(f"/manage/{tokens.sign(SECRET, 'unsubscribe', subscribers.link_key(db, found.id))}")
    assert page.status_code == 200 and "What we know" not in page.text
