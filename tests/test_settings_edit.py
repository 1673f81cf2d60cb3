"""The desk's Settings forms: written back to config.toml with its comments, checked by
parse_config's rules, refused on a file changed on disk, audited, secrets kept write-only."""

from __future__ import annotations

import errno
import os
import re
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from html import unescape
from pathlib import Path

import dns.resolver
import httpx
import pytest
from desk_support import add_users, csrf_of, quick_hashes, sign_in
from dnslib import QTYPE, RCODE, RR, TXT, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer
from fakes import FakeAPI
from fakes.http_api import RecordedRequest, Reply
from web_support import live_server, make_publication

from publisher.config import SECRETS_FILE, Config, load_config
from publisher.errors import ConfigError, Conflict
from publisher.services import dkim_setup
from publisher.services import settings as settings_service
from publisher.services.preferences import public_topics
from publisher.services.settings_text import cron_in_words, edit_text, fingerprint, next_fire_times
from publisher.store import open_store
from publisher.store import subscribers as subscriber_store
from publisher.store.preferences import get_preferences, set_preferences
from publisher.web import create_app

COMMENTED = """# Quiet Harbor's settings: keep this comment.
[publication]
title = "Quiet Harbor"  # the name readers see
url = "https://news.example.org/"
language = "en"
postal_address = "1 Test Road, Testville"

# Who the letters come from.
[newsletter]
from = "Quiet Harbor <letters@example.org>"

[delivery]
provider = "maildir"

[delivery.maildir]
path = "outbox"

[store]
url = "sqlite:///publisher.db"

[subscribe]
public_tags = ["sleep", "grief"]
"""
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
TOKEN = "pm-server-token-0123456789"


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    quick_hashes(monkeypatch)
    for name in ("PUBLISHER_POSTMARK_TOKEN", "PUBLISHER_SMTP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    make_publication(tmp_path)
    (tmp_path / "config.toml").write_text(COMMENTED, encoding="utf-8")
    (tmp_path / "content").mkdir()
    config = load_config(tmp_path / "config.toml", env={"PUBLISHER_SECRET": "s" * 40})
    add_users(config)
    return config


@pytest.fixture
def url(config: Config) -> Iterator[str]:
    with live_server(create_app(config)) as base:
        yield base


@contextmanager
def owner(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url) as http:
        sign_in(http, "owner@example.org")
        yield http


def form_of(page: str, group: str) -> dict[str, str]:
    """The hidden fields and current values of one settings form on the page."""
    found = re.search(rf'<form method="post" action="/desk/settings/save" id="g-{group}".*?</form>', page, re.S)
    assert found, f"no {group} form"
    html = found.group(0)
    found_inputs = re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', html)
    fields = {name: unescape(value) for name, value in found_inputs}  # as the browser reads them
    for name, options in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', html, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', options)
        fields[name] = chosen.group(1) if chosen else ""
    for name in [k for k in fields if k.startswith(("retire-", "restore-", "clear-"))]:
        del fields[name]  # unchecked boxes are not sent
    for box in re.findall(r'<input[^>]*type="checkbox"[^>]*>', html):
        named = re.search(r'name="([^"]+)"', box)
        if named and " checked" not in box:
            fields.pop(named.group(1), None)
    return fields


def save(http: httpx.Client, group: str, **changes: str) -> httpx.Response:
    fields = form_of(http.get("/desk/settings").text, group)
    return http.post("/desk/settings/save", data={**fields, **changes})


def text_of(config: Config) -> str:
    return (config.root / "config.toml").read_text(encoding="utf-8")


def test_a_saved_title_is_written_back_keeping_comments_and_order(config: Config, url: str) -> None:
    """The new value lands in config.toml; every comment and the order of the tables stay."""
    with owner(url) as http:
        answer = save(http, "publication", title="Harbor Letters")
    assert answer.status_code == 200, answer.text
    assert "Saved" in answer.text
    text = text_of(config)
    assert 'title = "Harbor Letters"  # the name readers see' in text
    assert text.replace('"Harbor Letters"', '"Quiet Harbor"') == COMMENTED
    assert load_config(config.root / "config.toml")["publication.title"] == "Harbor Letters"


def test_editors_and_viewers_can_neither_see_nor_change_settings(config: Config, url: str) -> None:
    """Only owners reach the Settings page and its save."""
    for email in ("editor@example.org", "viewer@example.org"):
        with httpx.Client(base_url=url) as http:
            sign_in(http, email)
            csrf = csrf_of(http.get("/desk/").text)
            assert http.get("/desk/settings").status_code == 403
            tried = http.post("/desk/settings/save", data={
                "csrf": csrf, "fingerprint": fingerprint(COMMENTED), "title": "Taken over",
            })
            assert tried.status_code == 403
    assert text_of(config) == COMMENTED


def test_a_file_edited_by_hand_after_the_page_opened_is_not_overwritten(config: Config, url: str) -> None:
    """The form's fingerprint no longer matches the disk: refused, nothing written."""
    with owner(url) as http:
        fields = form_of(http.get("/desk/settings").text, "publication")
        edited = COMMENTED.replace('language = "en"', 'language = "de"')
        (config.root / "config.toml").write_text(edited, encoding="utf-8")
        answer = http.post("/desk/settings/save", data={**fields, "title": "Mine"})
    assert answer.status_code == 409
    assert settings_service.CHANGED_ON_DISK in answer.text.replace("&#39;", "'")
    assert text_of(config) == edited


def test_two_saves_posted_at_once_one_wins_and_the_other_is_told(config: Config, url: str) -> None:
    """Two forms from the same page, posted in parallel: one is written, one gets the conflict."""
    answers: list[int] = []
    barrier = threading.Barrier(2)

    def post(title: str) -> None:
        with owner(url) as client:
            fields = form_of(client.get("/desk/settings").text, "publication")
            barrier.wait()
            answers.append(client.post("/desk/settings/save", data={**fields, "title": title}).status_code)

    threads = [threading.Thread(target=post, args=(title,)) for title in ("First", "Second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(answers) == [200, 409]
    assert load_config(config.root / "config.toml")["publication.title"] in ("First", "Second")


def test_a_zone_that_does_not_exist_is_named_beside_its_field(config: Config, url: str) -> None:
    """An unknown zone: 400, the message beside the time zone, the file untouched."""
    with owner(url) as http:
        answer = save(http, "publication", timezone="Europe/Londn", title="Not saved either")
    assert answer.status_code == 400
    assert 'id="s-timezone-error"' in answer.text and 'aria-invalid="true"' in answer.text
    assert "Time zone must be an IANA time zone" in answer.text
    assert "Europe/London" in answer.text  # the suggestion
    assert 'value="Not saved either"' in answer.text  # what was typed stays in the form
    assert text_of(config) == COMMENTED


def test_a_city_is_completed_to_its_zone(config: Config, url: str) -> None:
    """"London" is saved as Europe/London."""
    with owner(url) as http:
        assert save(http, "publication", timezone="London").status_code == 200
    assert load_config(config.root / "config.toml")["publication.timezone"] == "Europe/London"


def test_a_site_address_without_a_scheme_gets_https(config: Config, url: str) -> None:
    with owner(url) as http:
        assert save(http, "publication", url="letters.example.org").status_code == 200
    assert load_config(config.root / "config.toml")["publication.url"] == "https://letters.example.org"


def test_the_sender_gets_a_display_name(config: Config, url: str) -> None:
    """Name and address make one From header with the display name."""
    with owner(url) as http:
        answer = save(http, "sender", from_name="Dana Reyes, LCSW", from_address="dana@example.org")
    assert answer.status_code == 200
    assert load_config(config.root / "config.toml")["newsletter.from"] == '"Dana Reyes, LCSW" <dana@example.org>'


def test_the_providers_are_offered_in_words_and_saved_by_their_config_names(config: Config, url: str) -> None:
    """Maildir and ses are said as what they are; the value saved is still the config's own."""
    with owner(url) as http:
        page = http.get("/desk/settings").text
        answer = save(http, "provider", provider="maildir")
    select = re.search(r'<select id="s-provider".*?</select>', page, re.S)
    assert select
    options = dict(re.findall(r'<option value="([^"]+)"[^>]*>([^<]+)</option>', select.group(0)))
    assert options["maildir"].startswith("None yet: write each email into a folder")
    assert options["ses"] == "Amazon SES" and options["smtp"].startswith("A mail server (SMTP)")
    assert answer.status_code == 200 and load_config(config.root / "config.toml")["delivery.provider"] == "maildir"


def test_a_sender_address_that_is_not_one_is_refused(config: Config, url: str) -> None:
    with owner(url) as http:
        answer = save(http, "sender", from_address="dana at example")
    assert answer.status_code == 400
    assert "Sender address must be an email address" in answer.text
    assert text_of(config) == COMMENTED


def test_a_digest_that_never_fires_is_refused(config: Config, url: str) -> None:
    """The 30th of February never comes: refused with what to do."""
    with owner(url) as http:
        answer = save(http, "sending", digest_when="custom", digest="0 8 30 2 *")
    assert answer.status_code == 400
    assert "never fires" in answer.text and 'id="s-digest-error"' in answer.text
    assert text_of(config) == COMMENTED


def test_the_digest_is_shown_in_words_with_its_next_three_times(config: Config, url: str) -> None:
    with owner(url) as http:
        save(http, "publication", timezone="Europe/London")
        page = save(http, "sending", digest_when="weekly", digest_day="mon", digest_time="08:00", policy="digest")
    assert page.status_code == 200
    words = re.search(r'id="digest-words">([^<]*)', page.text)
    assert words and "every Monday at 08:00 Europe/London" in words.group(1)
    assert words.group(1).count("Monday ") == 4


def test_cron_in_words_and_its_next_times() -> None:
    """The pure part: a weekly line in words, the next times in the zone, a bad line refused."""
    assert cron_in_words("0 8 * * mon", "Europe/London") == "every Monday at 08:00 Europe/London"
    assert cron_in_words("30 7 * * mon,thu", "UTC") == "every Monday and Thursday at 07:30 UTC"
    times = next_fire_times("0 8 * * mon", "Europe/London", NOW)
    assert [t.isoformat() for t in times] == [
        "2026-12-14T08:00:00+00:00", "2026-12-21T08:00:00+00:00", "2026-12-28T08:00:00+00:00",
    ]
    with pytest.raises(ConfigError, match="not a cron line"):
        next_fire_times("every monday", "UTC", NOW)


def test_cron_in_words_says_the_zone_as_people_read_it() -> None:
    """A digest "every Monday at 08:00 America/New York": the key's underscore is a space."""
    assert cron_in_words("0 8 * * mon", "America/New_York") == "every Monday at 08:00 America/New York"
    assert cron_in_words("0 8 1-7 * mon", "America/New_York").endswith("(America/New York)")


def test_edit_text_keeps_comments_and_adds_missing_tables() -> None:
    """A key in a table that is missing adds the table at the end; nothing else moves."""
    text = edit_text(COMMENTED, {"schedule.digest": "0 8 * * mon", "publication.timezone": "Europe/London"})
    assert text.startswith(COMMENTED.split("\n# Who")[0].rstrip() + '\ntimezone = "Europe/London"\n')
    assert "# Who the letters come from." in text and text.rstrip().endswith('[schedule]\ndigest = "0 8 * * mon"')


def test_a_full_disk_leaves_the_old_file_whole(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    """The write fails midway (no space): config.toml is as it was, no temporary file stays."""
    path = config.root / "config.toml"
    path.chmod(0o640)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(settings_service.os, "fsync", full)
    engine = open_store(config.store_url)
    try:
        with pytest.raises(ConfigError, match="disk is full"):
            settings_service.save_settings(
                path, {"title": "Lost"}, fingerprint_seen=fingerprint(COMMENTED), who="owner@example.org",
                engine=engine, now=NOW, env={},
            )
    finally:
        engine.dispose()
    assert path.read_text(encoding="utf-8") == COMMENTED
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert not [p for p in config.root.iterdir() if p.name.endswith(".tmp")]


def test_a_save_keeps_the_file_mode(config: Config) -> None:
    path = config.root / "config.toml"
    path.chmod(0o640)
    engine = open_store(config.store_url)
    try:
        settings_service.save_settings(
            path, {"title": "Kept private"}, fingerprint_seen=fingerprint(COMMENTED), who="owner@example.org",
            engine=engine, now=NOW, env={},
        )
        with pytest.raises(Conflict):
            settings_service.save_settings(
                path, {"title": "Stale"}, fingerprint_seen=fingerprint(COMMENTED), who="owner@example.org",
                engine=engine, now=NOW, env={},
            )
    finally:
        engine.dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_every_change_is_in_the_audit_log_newest_first(config: Config, url: str) -> None:
    """Who, when, the key, the old and the new value, newest first on the page."""
    with owner(url) as http:
        save(http, "publication", title="Harbor Letters")
        page = save(http, "publication", language="de")
    rows = re.findall(r"<tr><td>[0-9-]+ [0-9:]+</td><td>([^<]*)</td><td><code>([^<]*)</code></td>"
                      r"<td>([^<]*)</td><td>([^<]*)</td></tr>", page.text)
    assert rows == [
        ("owner@example.org", "publication.language", "en", "de"),
        ("owner@example.org", "publication.title", "Quiet Harbor", "Harbor Letters"),
    ]


def postmark_accepting(api: FakeAPI) -> None:
    def handler(request: RecordedRequest) -> Reply:
        if request.path == "/server" and request.headers.get("x-postmark-server-token") == TOKEN:
            return Reply.ok({"Name": "Quiet Harbor"})
        return Reply.error(401, {"ErrorCode": 10, "Message": "Request does not contain a valid Server token."})

    api.handler = handler


def use_postmark(config: Config, api: FakeAPI) -> None:
    """Point the Postmark base URL at the fake (a setting the form does not cover)."""
    path = config.root / "config.toml"
    path.write_text(COMMENTED + f'\n[delivery.postmark]\nbase_url = "{api.url}"\n', encoding="utf-8")


def test_a_provider_key_is_checked_without_sending_and_never_shown(
    config: Config, url: str, fake_api: FakeAPI
) -> None:
    """The key goes to the secrets file (0600), never to config.toml, the page or the audit."""
    postmark_accepting(fake_api)
    use_postmark(config, fake_api)
    with owner(url) as http:
        answer = save(http, "provider", provider="postmark", **{"secret-PUBLISHER_POSTMARK_TOKEN": TOKEN})
        assert answer.status_code == 200, answer.text
        page = http.get("/desk/settings").text
    assert [r.path for r in fake_api.requests] == ["/server"]  # asked, nothing sent
    assert TOKEN not in answer.text and TOKEN not in page and TOKEN not in text_of(config)
    secrets = config.root / SECRETS_FILE
    assert f"PUBLISHER_POSTMARK_TOKEN={TOKEN}" in secrets.read_text(encoding="utf-8")
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert "<td><code>PUBLISHER_POSTMARK_TOKEN</code></td><td>(empty)</td><td>(set)</td>" in page
    reloaded = load_config(config.root / "config.toml", env={})
    assert reloaded["delivery.provider"] == "postmark"
    assert reloaded.secret("PUBLISHER_POSTMARK_TOKEN") == TOKEN


def test_a_key_the_provider_refuses_saves_nothing_and_the_old_one_stays(
    config: Config, url: str, fake_api: FakeAPI
) -> None:
    """Postmark answers 401 to the new key: told at save; config and secrets unchanged."""
    postmark_accepting(fake_api)
    use_postmark(config, fake_api)
    (config.root / SECRETS_FILE).write_text(f"PUBLISHER_POSTMARK_TOKEN={TOKEN}\n", encoding="utf-8")
    before = text_of(config)
    with owner(url) as http:
        answer = save(http, "provider", provider="postmark", **{"secret-PUBLISHER_POSTMARK_TOKEN": "typo-token"})
    assert answer.status_code == 400
    assert "was refused: postmark refuses the key (401)" in answer.text
    assert 'id="s-secret-PUBLISHER_POSTMARK_TOKEN-error"' in answer.text
    assert "typo-token" not in answer.text
    assert text_of(config) == before
    assert (config.root / SECRETS_FILE).read_text(encoding="utf-8") == f"PUBLISHER_POSTMARK_TOKEN={TOKEN}\n"


def test_a_real_provider_without_its_key_is_refused(config: Config, url: str) -> None:
    with owner(url) as http:
        answer = save(http, "provider", provider="postmark")
    assert answer.status_code == 400
    assert "needs its Postmark server token" in answer.text
    assert text_of(config) == COMMENTED


def test_a_secret_set_in_the_environment_cannot_be_changed_here(
    config: Config, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBLISHER_SMTP_PASSWORD", "from-the-environment")
    with owner(url) as http:
        page = http.get("/desk/settings").text
        assert "set in the server's environment" in page
        answer = save(http, "provider", **{"secret-PUBLISHER_SMTP_PASSWORD": "other"})
    assert answer.status_code == 400 and "change it there" in answer.text
    assert not (config.root / SECRETS_FILE).exists()


def reader_with_topics(config: Config, *topics: str) -> int:
    """An active reader who chose `topics` on their own page."""
    engine = open_store(config.store_url)
    try:
        reader = subscriber_store.add(engine, "reader@example.org", now=NOW)
        set_preferences(engine, reader.id, name="", timezone=None, frequency="every", topics=topics,
                        allowed_topics=config["subscribe.public_tags"], now=NOW)
        return reader.id
    finally:
        engine.dispose()


def topics_of(config: Config, reader: int) -> tuple[str, ...] | None:
    engine = open_store(config.store_url)
    try:
        found = get_preferences(engine, reader)
        assert found is not None
        return found.topics
    finally:
        engine.dispose()


def test_a_retired_topic_is_no_longer_offered_and_its_readers_keep_it(config: Config, url: str) -> None:
    """Retiring "grief" moves it to subscribe.retired_tags; readers who chose it still have it."""
    reader = reader_with_topics(config, "grief")
    with owner(url) as http:
        fields = form_of(http.get("/desk/settings").text, "topics")
        retire = next(k.removeprefix("topic-was-") for k, v in fields.items() if k.startswith("topic-was-")
                      and v == "grief")
        answer = http.post("/desk/settings/save", data={**fields, f"retire-{retire}": "1"})
    assert answer.status_code == 200, answer.text
    reloaded = load_config(config.root / "config.toml")
    assert reloaded["subscribe.public_tags"] == ("sleep",)
    assert reloaded["subscribe.retired_tags"] == ("grief",)
    assert public_topics(reloaded) == ("sleep",)  # what the reader's page offers
    assert topics_of(config, reader) == ("grief",)


def test_a_renamed_topic_is_renamed_in_its_readers_choices(config: Config, url: str) -> None:
    reader = reader_with_topics(config, "sleep")
    with owner(url) as http:
        fields = form_of(http.get("/desk/settings").text, "topics")
        renamed = {k.replace("-was", ""): "Rest" for k, v in fields.items() if k.startswith("topic-was-")
                   and v == "sleep"}
        answer = http.post("/desk/settings/save", data={**fields, **renamed, "new_topic": "Work"})
    assert answer.status_code == 200, answer.text
    assert "1 reader(s) who chose it keep it" in answer.text
    assert load_config(config.root / "config.toml")["subscribe.public_tags"] == ("rest", "grief", "work")
    assert topics_of(config, reader) == ("rest",)


def test_settings_that_cannot_change_live_are_not_in_the_forms(config: Config, url: str) -> None:
    with owner(url) as http:
        page = http.get("/desk/settings").text
    for name in ("store", "host", "port"):
        assert f'name="{name}"' not in page
    assert "take effect after a restart" in page


def test_nothing_changed_writes_nothing(config: Config, url: str) -> None:
    before = os.stat(config.root / "config.toml").st_mtime_ns
    with owner(url) as http:
        answer = save(http, "publication")
    assert answer.status_code == 200 and "Nothing was changed" in answer.text
    assert os.stat(config.root / "config.toml").st_mtime_ns == before


class Zone(BaseResolver):  # type: ignore[misc]
    """TXT records by name; NXDOMAIN for any other."""

    def __init__(self, records: dict[str, list[str]]) -> None:
        self.records = records

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".")
        if name not in self.records:
            reply.header.rcode = RCODE.NXDOMAIN
        for value in self.records.get(name, []):
            chunks = [value[i:i + 255].encode() for i in range(0, len(value), 255)]
            reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(chunks), ttl=60))
        return reply


@contextmanager
def dns_server(records: dict[str, list[str]]) -> Iterator[dns.resolver.Resolver]:
    """A DNS server on 127.0.0.1 answering from `records`; yields a resolver that asks only it."""
    server = DNSServer(Zone(records), address="127.0.0.1", port=0, logger=DNSLogger(logf=lambda *_: None))
    server.start_thread()
    try:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = server.server.server_address[1]
        yield resolver
    finally:
        server.stop()
        server.server.server_close()


def test_a_generated_dkim_key_is_put_to_use_and_its_record_shown(config: Config, url: str) -> None:
    """The key lands beside config.toml (0600), [delivery.dkim] names it, the page shows the TXT record."""
    with owner(url) as http:
        fields = form_of(http.get("/desk/settings").text, "dkim")
        answer = http.post("/desk/settings/dkim", data={**fields, "dkim_domain": "example.org",
                                                          "dkim_selector": "2026dec"})
    assert answer.status_code == 200, answer.text
    key = config.root / "dkim-2026dec.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and "PRIVATE KEY" in key.read_text(encoding="utf-8")
    reloaded = load_config(config.root / "config.toml")
    assert (reloaded["delivery.dkim.domain"], reloaded["delivery.dkim.selector"],
            reloaded["delivery.dkim.private_key_file"]) == ("example.org", "2026dec", "dkim-2026dec.pem")
    assert "2026dec.<wbr>_domainkey.<wbr>example.<wbr>org (TXT)" in answer.text
    assert re.search(r"v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]{300,}", answer.text)
    assert "PRIVATE KEY" not in answer.text


def test_a_dkim_key_is_never_written_over(config: Config, url: str) -> None:
    (config.root / "dkim-news.pem").write_text("kept\n", encoding="utf-8")
    with owner(url) as http:
        fields = form_of(http.get("/desk/settings").text, "dkim")
        answer = http.post("/desk/settings/dkim", data={**fields, "dkim_domain": "example.org",
                                                          "dkim_selector": "news"})
    assert answer.status_code == 409 and "choose another selector" in answer.text
    assert (config.root / "dkim-news.pem").read_text(encoding="utf-8") == "kept\n"
    assert text_of(config) == COMMENTED


def test_a_dkim_key_file_that_cannot_be_read_is_refused(config: Config, url: str) -> None:
    with owner(url) as http:
        answer = save(http, "dkim", dkim_domain="example.org", dkim_selector="news", dkim_key_file="missing.pem")
    assert answer.status_code == 400
    assert 'id="s-dkim_key_file-error"' in answer.text and "missing.pem" in answer.text
    assert text_of(config) == COMMENTED


def test_the_dkim_record_is_checked_in_dns(config: Config) -> None:
    """Published: the check says so; missing: it names the record to publish."""
    engine = open_store(config.store_url)
    try:
        dkim_setup.generate_key(config.root / "config.toml", domain="example.org", selector="news",
                                fingerprint_seen=fingerprint(COMMENTED), who="owner@example.org", engine=engine,
                                now=NOW, env={})
        view = settings_service.settings_view(config.root / "config.toml", engine=engine, now=NOW, env={})
    finally:
        engine.dispose()
    (record,) = view.dkim_records
    with dns_server({record.name: [record.value]}) as resolver:
        (published,) = dkim_setup.check_dns(config.root / "config.toml", resolver)
    assert published.ok is True
    with dns_server({}) as resolver:
        (missing,) = dkim_setup.check_dns(config.root / "config.toml", resolver)
    assert missing.ok is False and record.value in missing.detail


def test_a_config_file_broken_by_hand_is_told_and_not_edited(config: Config, url: str) -> None:
    """The page says what is wrong with the file and offers no form until it is fixed."""
    broken = COMMENTED.replace('language = "en"', 'language = "en')
    with owner(url) as http:
        (config.root / "config.toml").write_text(broken, encoding="utf-8")
        page = http.get("/desk/settings")
    assert page.status_code == 200
    assert "cannot be edited here until its problems are fixed" in page.text and "not valid TOML" in page.text
    assert 'action="/desk/settings/save"' not in page.text
    assert text_of(config) == broken


def test_a_field_far_too_long_is_refused(config: Config, url: str) -> None:
    with owner(url) as http:
        answer = save(http, "publication", postal_address="1 Road, " * 500)
    assert answer.status_code == 400 and "longer than 1,000 characters" in answer.text
    assert 'id="s-postal_address-error"' in answer.text
    assert text_of(config) == COMMENTED


def test_sign_in_and_backups_are_set_from_the_page(config: Config, url: str) -> None:
    """Two-step sign-in for owners, a nightly backup and how many to keep: written back and
    read by parse_config; a time that is not one is refused beside the backups' choice."""
    with owner(url) as http:
        refused = save(http, "safety", backup_when="nightly", backup_time="25:00")
        assert refused.status_code == 400, refused.text
        assert 'id="s-backup_schedule-error"' in refused.text and "need a time written HH:MM" in refused.text
        assert 'name="backup_time" type="time" value="25:00"' in refused.text
        assert text_of(config) == COMMENTED
        answer = save(http, "safety", require_two_factor="owners", backup_when="nightly", backup_time="03:30",
                      backup_keep="5")
        assert answer.status_code == 200, answer.text
    saved = load_config(config.root / "config.toml")
    assert saved["desk.require_two_factor"] == "owners"
    assert (saved["backup.schedule"], saved["backup.keep"]) == ("30 3 * * *", 5)


def test_backups_are_offered_as_every_night_or_every_week_at_a_time(config: Config, url: str) -> None:
    """No cron line to write: "every week on Sunday at 04:15" is saved as its line, and the page
    shows it back as that choice; Off empties it."""
    with owner(url) as http:
        whole = http.get("/desk/settings").text
        page = whole[whole.index('id="g-safety"'):].split("</form>", 1)[0]
        assert "cron" not in page.lower() and "* *" not in page
        assert '<option value="nightly">Every night</option>' in page and 'name="backup_time" type="time"' in page
        assert save(http, "safety", backup_when="weekly", backup_day="sun", backup_time="04:15").status_code == 200
        assert load_config(config.root / "config.toml")["backup.schedule"] == "15 4 * * sun"
        shown = form_of(http.get("/desk/settings").text, "safety")
        assert (shown["backup_when"], shown["backup_day"], shown["backup_time"]) == ("weekly", "sun", "04:15")
        assert save(http, "safety", backup_when="off").status_code == 200
    assert load_config(config.root / "config.toml")["backup.schedule"] == ""


def test_a_cron_line_written_by_hand_stays_editable_as_text(config: Config, url: str) -> None:
    """A backup line that is no night or week (the 1st of each month) is shown as its text, and kept."""
    path = config.root / "config.toml"
    path.write_text(path.read_text(encoding="utf-8") + '\n[backup]\nschedule = "0 2 1 * *"\n', encoding="utf-8")
    with owner(url) as http:
        shown = form_of(http.get("/desk/settings").text, "safety")
        assert (shown["backup_when"], shown["backup_schedule"]) == ("custom", "0 2 1 * *")
        assert save(http, "safety", backup_schedule="0 2 15 * *").status_code == 200
        refused = save(http, "safety", backup_schedule="0 3 30 2 *")
        assert refused.status_code == 400 and 'id="s-backup_schedule-error"' in refused.text
    assert load_config(path)["backup.schedule"] == "0 2 15 * *"


def test_every_save_button_reads_as_plain_words(url: str) -> None:
    """Each settings group's button says what it saves; DKIM is written DKIM."""
    with owner(url) as http:
        page = http.get("/desk/settings").text
    buttons = re.findall(r'<button type="submit">(Save[^<]*)</button>', page)
    assert "Save DKIM signing" in buttons and "Save the mail provider" in buttons
    assert len(buttons) == 8 and not [b for b in buttons if "dkim" in b]


def test_the_look_is_set_from_the_page(config: Config, url: str) -> None:
    """A logo and an accent colour; a colour not written #rrggbb is named beside its field."""
    with owner(url) as http:
        refused = save(http, "publication", accent_color="teal")
        assert refused.status_code == 400 and 'id="s-accent_color-error"' in refused.text
        answer = save(http, "publication", accent_color="#8a2be2", logo="media/logo.png")
        assert answer.status_code == 200, answer.text
    saved = load_config(config.root / "config.toml")
    assert (saved["publication.accent_color"], saved["publication.logo"]) == ("#8a2be2", "media/logo.png")


def test_a_reply_to_with_a_name_is_kept_when_the_sender_changes(config: Config, url: str) -> None:
    """A reply-to written as the sample writes it, with a name, does not stop a new sender name."""
    path = config.root / "config.toml"
    path.write_text(
        COMMENTED.replace(
            'from = "Quiet Harbor <letters@example.org>"',
            'from = "Quiet Harbor <letters@example.org>"\nreply_to = "Dana Reyes <dana@example.org>"',
        ),
        encoding="utf-8",
    )
    with owner(url) as http:
        page = http.get("/desk/settings").text
        answer = save(http, "sender", from_name="Dr. Dana Reyes")
    assert re.search(r'<input id="s-reply_to" name="reply_to" type="text"', page)
    assert answer.status_code == 200, answer.text
    saved = load_config(path)
    assert saved["newsletter.from"] == '"Dr. Dana Reyes" <letters@example.org>'
    assert saved["newsletter.reply_to"] == "Dana Reyes <dana@example.org>"


def test_the_digest_is_said_to_go_to_whom_the_send_sends_it(config: Config, url: str) -> None:
    """Settings says who gets the digest as the send does: every active reader but those
    who had each of its articles already."""
    with owner(url) as http:
        page = unescape(http.get("/desk/settings").text)
    assert "to every active reader but those who had each of its articles already, one by one" in page


def test_a_logo_that_is_a_file_on_the_computer_is_refused(config: Config, url: str) -> None:
    """A logo typed as a file of the author's computer, or as a script, is named beside its
    field instead of being saved as a broken picture in every newsletter."""
    with owner(url) as http:
        for typed in (r"C:\Users\dana\Pictures\logo.png", "file:///home/dana/logo.png", "javascript:alert(1)"):
            answer = save(http, "publication", logo=typed)
            assert answer.status_code == 400, typed
            assert "Logo must be an https address or a path on the site" in answer.text
        assert save(http, "publication", logo="media/logo.png").status_code == 200
    assert load_config(config.root / "config.toml")["publication.logo"] == "media/logo.png"


def test_turning_the_digest_on_says_what_its_first_one_gathers(config: Config, url: str) -> None:
    """The save that turns the digest on names the articles its first one mails, those
    already sent one by one too, and who gets it."""
    from publisher import content
    from publisher.store import publishing

    (config.root / "content" / "2026-12-01-panic-attacks.md").write_text(
        "---\ntitle: Panic Attacks, Step by Step\ndate: 2026-12-01 08:00\n---\n\nWords.\n", encoding="utf-8"
    )
    engine = open_store(config.store_url)
    for article in content.load_articles(config):
        publishing.mark_seen(engine, article_id=article.id, slug=article.slug, origin="", handled="wait", now=NOW)
    engine.dispose()
    with owner(url) as http:
        page = save(http, "sending", digest_when="weekly", digest_day="mon", digest_time="08:00")
    assert page.status_code == 200, page.text
    said = unescape(re.sub(r"\s+", " ", page.text))
    assert "gathers 1 article on the site that no digest carried yet (“Panic Attacks, Step by Step”)" in said
    assert "and goes to every active reader but those who had each of them already." in said


def test_a_provider_test_names_the_provider_as_a_send_does(config: Config, url: str) -> None:
    """The provider test's answer names the demo "the Maildir outbox", not its config value."""
    (config.root / "content" / "rest.md").write_text(
        "---\ntitle: Rest\ndate: 2026-12-01\n---\nSome words about rest.\n", encoding="utf-8"
    )
    with owner(url) as http:
        csrf = csrf_of(http.get("/desk/settings").text)
        answer = http.post("/desk/settings/provider-test", data={"csrf": csrf})
    assert answer.status_code == 200, answer.text
    assert "The Maildir outbox took a test copy for owner@example.org." in unescape(answer.text)
