"""Subscribers in the store: addresses, statuses, tags, imports and exports."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from pg_server import fresh_database, postgres_server
from sqlalchemy import Engine, create_engine, event, func, insert, select

from publisher.errors import NotFound, SubscriberError
from publisher.models import SubscriberStatus as S
from publisher.store import open_store, outbox, subscriber_import
from publisher.store import subscribers as subs
from publisher.store.engine import alembic_config
from publisher.store.schema import (
    api_keys,
    deliveries,
    events,
    idempotency_keys,
    issues,
    metadata,
    subscriber_tags,
    subscribers,
    webhook_messages,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def postgres_engine() -> Iterator[Engine]:
    with postgres_server() as url:
        db = open_store(fresh_database(url, "subscribers"))
        yield db
        db.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """Every test runs on SQLite and, where a server can be started, on PostgreSQL."""
    if request.param == "postgresql":
        db: Engine = request.getfixturevalue("postgres_engine")
        with db.begin() as conn:
            names = ", ".join(table.name for table in metadata.sorted_tables)
            conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        yield db
        return
    db = open_store(f"sqlite:///{tmp_path / 'publisher.db'}")
    yield db
    db.dispose()


def event_kinds(engine: Engine, email: str) -> list[str]:
    with engine.connect() as conn:
        query = select(events.c.kind).where(events.c.email == email).order_by(events.c.id)
        return list(conn.execute(query).scalars())


def import_text(engine: Engine, text: str, **options: Any) -> subs.ImportReport:
    options.setdefault("origin", "list.csv")
    return subs.import_csv(engine, io.StringIO(text, newline=""), now=NOW, **options)


def status_of(engine: Engine, email: str) -> S:
    found = subs.find(engine, email)
    assert found is not None
    return found.status


# Addresses


def test_normalize_email_lowercases_the_whole_address() -> None:
    """Bob@Example.ORG and bob@example.org are one subscriber."""
    assert subs.normalize_email("  Bob@Example.ORG ") == "bob@example.org"


def test_normalize_email_gives_international_domains_one_form() -> None:
    """A Unicode domain and its punycode spelling normalise to the same ASCII address."""
    assert subs.normalize_email("Ana@MÜNCHEN.example") == "ana@xn--mnchen-3ya.example"
    assert subs.normalize_email("ana@xn--mnchen-3ya.example") == "ana@xn--mnchen-3ya.example"


def test_normalize_email_keeps_an_international_local_part() -> None:
    """A non-ASCII mailbox name is kept (lower-cased), not rejected."""
    assert subs.normalize_email("Zoë@example.org") == "zoë@example.org"


def test_normalize_email_names_the_bad_address_and_the_reason() -> None:
    """An invalid address raises SubscriberError quoting it and saying what is wrong."""
    with pytest.raises(SubscriberError, match=r"'bob@' is not a valid address: .*after the @"):
        subs.normalize_email("bob@")


def test_normalize_email_does_not_look_up_dns() -> None:
    """A domain that does not exist is still accepted: no network at import time."""
    assert subs.normalize_email("a@no-such-domain.example") == "a@no-such-domain.example"


# add, get, find


def test_add_creates_an_active_subscriber_with_an_event(engine: Engine) -> None:
    """A new address is stored normalised and active, and a subscribe event is written."""
    added = subs.add(engine, "Dana@Example.org", name="Dana Reyes", tags=["Clinicians"], now=NOW)
    assert (added.email, added.name, added.status, added.tags) == (
        "dana@example.org", "Dana Reyes", S.ACTIVE, ("clinicians",)
    )
    assert added.created_at == NOW
    # Joining with a tag is also joining that topic (it starts a topic's sequence).
    assert event_kinds(engine, "dana@example.org") == ["subscribe", "topic_joined"]


def test_add_again_updates_name_and_merges_tags(engine: Engine) -> None:
    """Adding an existing address (any case) updates its name and adds the new tags."""
    first = subs.add(engine, "dana@example.org", name="Dana", tags=["a"], now=NOW)
    second = subs.add(engine, "DANA@example.org", name="Dana Reyes", tags=["b", "A"], now=NOW)
    assert second.id == first.id
    assert second.name == "Dana Reyes"
    assert second.tags == ("a", "b")


def test_add_pending_does_not_demote_an_active_subscriber(engine: Engine) -> None:
    """A second sign-up through the form leaves an active subscriber active."""
    subs.add(engine, "dana@example.org", now=NOW)
    again = subs.add(engine, "dana@example.org", status=S.PENDING, now=NOW)
    assert again.status is S.ACTIVE


def test_add_active_confirms_a_pending_subscriber(engine: Engine) -> None:
    """Adding as active an address that was pending makes it active and confirmed."""
    subs.add(engine, "dana@example.org", status=S.PENDING, now=NOW)
    again = subs.add(engine, "dana@example.org", now=NOW + timedelta(hours=1))
    assert again.status is S.ACTIVE
    with engine.connect() as conn:
        confirmed = conn.execute(select(subscribers.c.confirmed_at)).scalar_one()
    assert confirmed == NOW + timedelta(hours=1)


def test_add_refuses_to_resurrect_an_unsubscribed_address(engine: Engine) -> None:
    """Someone who left stays off the list unless they ask to come back."""
    subs.add(engine, "dana@example.org", now=NOW)
    subs.remove(engine, "dana@example.org", now=NOW)
    with pytest.raises(SubscriberError, match=r"unsubscribed.*resubscribe"):
        subs.add(engine, "dana@example.org", now=NOW)
    assert status_of(engine, "dana@example.org") is S.UNSUBSCRIBED


def test_add_with_resubscribe_brings_them_back(engine: Engine) -> None:
    """resubscribe=True puts a bounced address back, with an event saying so."""
    subs.add(engine, "dana@example.org", now=NOW)
    subs.suppress(engine, "dana@example.org", "bounce", provider="smtp", now=NOW)
    back = subs.add(engine, "dana@example.org", resubscribe=True, now=NOW)
    assert back.status is S.ACTIVE
    assert event_kinds(engine, "dana@example.org") == ["subscribe", "bounce", "subscribe"]


def test_add_rejects_an_unknown_time_zone(engine: Engine) -> None:
    """A time zone must be an IANA name; nothing is stored otherwise."""
    with pytest.raises(SubscriberError, match="'Mars/Olympus' is not an IANA zone"):
        subs.add(engine, "dana@example.org", timezone="Mars/Olympus", now=NOW)
    assert subs.find(engine, "dana@example.org") is None


def test_add_keeps_a_valid_time_zone(engine: Engine) -> None:
    """A subscriber's zone is stored for local-time delivery."""
    added = subs.add(engine, "dana@example.org", timezone="Europe/Berlin", now=NOW)
    assert added.timezone == "Europe/Berlin"


def test_add_turns_line_breaks_in_a_name_into_spaces(engine: Engine) -> None:
    """A name can never carry CR or LF into a header later."""
    added = subs.add(engine, "dana@example.org", name="Dana\r\nBcc: x@example.org", now=NOW)
    assert added.name == "Dana Bcc: x@example.org"


def test_get_and_find(engine: Engine) -> None:
    """get finds by id, find by address in any case; both give None for nobody."""
    added = subs.add(engine, "dana@example.org", now=NOW)
    assert subs.get(engine, added.id) == added
    assert subs.find(engine, "DANA@EXAMPLE.ORG") == added
    assert subs.get(engine, added.id + 1) is None
    assert subs.find(engine, "nobody@example.org") is None


# statuses


def test_set_status_writes_an_event(engine: Engine) -> None:
    """A status change is recorded with its kind, provider and detail."""
    added = subs.add(engine, "dana@example.org", status=S.PENDING, now=NOW)
    changed = subs.set_status(engine, added.id, S.ACTIVE, now=NOW, kind="confirm", provider="web")
    assert changed.status is S.ACTIVE
    with engine.connect() as conn:
        row = conn.execute(select(events).order_by(events.c.id.desc())).first()
    assert row is not None
    assert (row.kind, row.provider, row.subscriber_id) == ("confirm", "web", added.id)


def test_set_status_of_nobody_is_not_found(engine: Engine) -> None:
    """An unknown id raises NotFound."""
    with pytest.raises(NotFound):
        subs.set_status(engine, 42, S.ACTIVE, now=NOW, kind="confirm")


def test_suppress_bounce_marks_the_address_bounced(engine: Engine) -> None:
    """A hard bounce reported by address keeps it off the list."""
    subs.add(engine, "dana@example.org", now=NOW)
    found = subs.suppress(engine, "Dana@Example.org", "bounce", provider="postmark",
                          detail="550 no such user", now=NOW)
    assert found is not None and found.status is S.BOUNCED
    assert event_kinds(engine, "dana@example.org") == ["subscribe", "bounce"]


def test_suppress_never_weakens_a_status(engine: Engine) -> None:
    """After a complaint, a later unsubscribe leaves the address complained."""
    subs.add(engine, "dana@example.org", now=NOW)
    subs.suppress(engine, "dana@example.org", "complaint", provider="ses", now=NOW)
    subs.suppress(engine, "dana@example.org", "unsubscribe", provider="web", now=NOW)
    assert status_of(engine, "dana@example.org") is S.COMPLAINED


def test_suppress_unknown_address_still_records_the_event(engine: Engine) -> None:
    """A provider's report about an address we do not know is kept, unattached."""
    assert subs.suppress(engine, "ghost@example.org", "bounce", provider="smtp", now=NOW) is None
    assert event_kinds(engine, "ghost@example.org") == ["bounce"]


def test_suppress_rejects_an_unknown_kind(engine: Engine) -> None:
    """Only bounce, complaint and unsubscribe suppress an address."""
    with pytest.raises(SubscriberError, match="kind"):
        subs.suppress(engine, "dana@example.org", "vacation", provider="smtp", now=NOW)


def test_remove_unsubscribes_and_keeps_the_row(engine: Engine) -> None:
    """remove keeps the address as unsubscribed, so an import cannot bring it back."""
    subs.add(engine, "dana@example.org", now=NOW)
    subs.remove(engine, "dana@example.org", now=NOW)
    assert status_of(engine, "dana@example.org") is S.UNSUBSCRIBED
    report = import_text(engine, "email\ndana@example.org\n")
    assert (report.imported, report.kept) == (0, 1)
    assert status_of(engine, "dana@example.org") is S.UNSUBSCRIBED


def test_remove_unknown_address_is_not_found(engine: Engine) -> None:
    """Removing nobody says so instead of succeeding silently."""
    with pytest.raises(NotFound, match=r"nobody@example\.org"):
        subs.remove(engine, "nobody@example.org", now=NOW)


def test_purge_erases_the_row_tags_and_events(engine: Engine) -> None:
    """purge deletes everything stored about the address."""
    subs.add(engine, "dana@example.org", tags=["a"], now=NOW)
    subs.suppress(engine, "dana@example.org", "bounce", provider="smtp", now=NOW)
    subs.remove(engine, "dana@example.org", now=NOW, purge=True)
    with engine.connect() as conn:
        for table in (subscribers, subscriber_tags, events):
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0


def test_mark_confirm_sent_allows_one_mail_per_interval(engine: Engine) -> None:
    """A second confirmation within the interval is refused; after it, allowed again."""
    added = subs.add(engine, "dana@example.org", status=S.PENDING, now=NOW)
    hour = timedelta(hours=1)
    assert subs.mark_confirm_sent(engine, added.id, now=NOW, interval=hour)
    assert not subs.mark_confirm_sent(engine, added.id, now=NOW + timedelta(minutes=5), interval=hour)
    assert subs.mark_confirm_sent(engine, added.id, now=NOW + hour, interval=hour)


# listing and counting


def test_iter_subscribers_filters_by_status_and_tag(engine: Engine) -> None:
    """Segments: status and tag narrow the list."""
    subs.add(engine, "a@example.org", tags=["clinicians"], now=NOW)
    subs.add(engine, "b@example.org", tags=["clinicians"], status=S.PENDING, now=NOW)
    subs.add(engine, "c@example.org", tags=["families"], now=NOW)
    active_clinicians = subs.iter_subscribers(engine, status=S.ACTIVE, tag="Clinicians")
    assert [s.email for s in active_clinicians] == ["a@example.org"]
    assert [s.email for s in subs.iter_subscribers(engine, tag="clinicians")] == [
        "a@example.org", "b@example.org"
    ]


def test_iter_subscribers_reads_one_page_at_a_time(engine: Engine) -> None:
    """The first subscriber arrives after reading one page, not the whole table."""
    import_text(engine, "email\n" + "".join(f"r{i}@example.org\n" for i in range(1200)))
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        stream = subs.iter_subscribers(engine, page_size=100)
        assert next(stream).email == "r0@example.org"
        assert len(statements) == 2  # one page of subscribers, and their tags
        assert "LIMIT" in statements[0]
        assert sum(1 for _ in stream) == 1199
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_counts_lists_every_status_active_first(engine: Engine) -> None:
    """counts has all five statuses, active first, zeros included."""
    subs.add(engine, "a@example.org", now=NOW)
    subs.add(engine, "b@example.org", now=NOW)
    subs.add(engine, "c@example.org", status=S.PENDING, now=NOW)
    counted = subs.counts(engine)
    assert list(counted.items()) == [
        ("active", 2), ("pending", 1), ("unsubscribed", 0), ("bounced", 0), ("complained", 0)
    ]


def test_tag_counts_counts_active_subscribers_per_tag(engine: Engine) -> None:
    """Segments and their sizes, biggest first."""
    subs.add(engine, "a@example.org", tags=["x", "y"], now=NOW)
    subs.add(engine, "b@example.org", tags=["y"], now=NOW)
    subs.add(engine, "c@example.org", tags=["y"], status=S.PENDING, now=NOW)
    assert subs.tag_counts(engine) == {"y": 2, "x": 1}


# importing


def test_import_mailchimp_subscribed_export(engine: Engine) -> None:
    """Mailchimp's columns: Email Address, First/Last Name, quoted TAGS."""
    report = import_text(
        engine,
        "Email Address,First Name,Last Name,MEMBER_RATING,OPTIN_TIME,TIMEZONE,LEID,TAGS\n"
        'ana@example.org, Ana , Ruiz ,2,2024-01-01 10:00:00,America/Chicago,1,"""Clinicians"",""Weekly"""\n'
        "ben@example.org,Ben,,2,2024-01-01 10:00:00,,2,\n",
    )
    assert (report.platform, report.imported, report.rejected) == ("Mailchimp", 2, ())
    ana = subs.find(engine, "ana@example.org")
    assert ana is not None
    assert (ana.name, ana.tags, ana.timezone, ana.status) == (
        "Ana Ruiz", ("clinicians", "weekly"), "America/Chicago", S.ACTIVE
    )


def test_import_mailchimp_unsubscribed_and_cleaned_exports_stay_off_the_list(engine: Engine) -> None:
    """Rows with UNSUB_TIME come in unsubscribed, rows with CLEAN_TIME bounced."""
    import_text(
        engine,
        "Email Address,First Name,Last Name,UNSUB_TIME,UNSUB_REASON,TAGS\n"
        "u@example.org,Una,,2023-06-06 12:56:15,,\n",
    )
    report = import_text(
        engine,
        "Email Address,First Name,Last Name,CLEAN_TIME,CLEAN_CAMPAIGN_TITLE,TAGS\n"
        "c@example.org,Cy,,2020-03-23 17:30:05,,\n",
    )
    assert report.new_by_status == {"bounced": 1}
    assert status_of(engine, "u@example.org") is S.UNSUBSCRIBED
    assert status_of(engine, "c@example.org") is S.BOUNCED


def test_import_substack_signup_export(engine: Engine) -> None:
    """Substack: email_disabled=true is not mailed; deletion requests are rejected."""
    report = import_text(
        engine,
        "email,active_subscription,expiry,email_disabled,created_at\n"
        "sam@example.org,true,2027-01-01T00:00:00.000Z,false,2024-01-01T00:00:00.000Z\n"
        "off@example.org,,,true,2024-01-01T00:00:00.000Z\n"
        "x1@deletion-request.substack.com,,,false,2024-01-01T00:00:00.000Z\n",
    )
    assert report.platform == "Substack"
    assert status_of(engine, "sam@example.org") is S.ACTIVE
    assert status_of(engine, "off@example.org") is S.UNSUBSCRIBED
    assert [str(r) for r in report.rejected] == [
        "line 4: 'x1@deletion-request.substack.com' is a Substack deletion request, not an address"
    ]


def test_import_substack_dashboard_export(engine: Engine) -> None:
    """Substack's dashboard export: Email, Name, Subscription type, ..."""
    report = import_text(
        engine,
        "Email,Name,Subscription type,Activity,Subscription date,Revenue\n"
        "sam@example.org,Sam Lee,Free,3,2024-01-01,0\n",
    )
    assert report.platform == "Substack"
    found = subs.find(engine, "sam@example.org")
    assert found is not None and found.name == "Sam Lee"


def test_import_buttondown_export_maps_subscriber_types(engine: Engine) -> None:
    """Buttondown: regular is active, unactivated pending, unsubscribed stays off."""
    report = import_text(
        engine,
        "email,subscriber_type,creation_date,notes,tags,metadata\n"
        'reg@example.org,regular,2025-03-03,,"weekly, clinicians",{}\n'
        "new@example.org,unactivated,2025-03-03,,,{}\n"
        "gone@example.org,unsubscribed,2025-03-03,,,{}\n"
        "odd@example.org,wizard,2025-03-03,,,{}\n",
    )
    assert report.platform == "Buttondown"
    assert status_of(engine, "reg@example.org") is S.ACTIVE
    assert status_of(engine, "new@example.org") is S.PENDING
    assert status_of(engine, "gone@example.org") is S.UNSUBSCRIBED
    found = subs.find(engine, "reg@example.org")
    assert found is not None and found.tags == ("clinicians", "weekly")
    assert len(report.rejected) == 1
    assert report.rejected[0].line == 5
    assert "unknown Buttondown subscriber type 'wizard'" in report.rejected[0].reason


def test_import_ghost_export_honours_subscribed_to_emails(engine: Engine) -> None:
    """Ghost: labels become tags; subscribed_to_emails=false is not made active."""
    report = import_text(
        engine,
        "id,email,name,note,subscribed_to_emails,complimentary_plan,stripe_customer_id,"
        "created_at,deleted_at,labels,tiers\n"
        '1,gia@example.org,Gia,,true,false,,2026-01-01T00:00:00.000Z,,"vip,gold",\n'
        "2,no@example.org,No Mail,,false,false,,2026-01-01T00:00:00.000Z,,,\n",
    )
    assert report.platform == "Ghost"
    gia = subs.find(engine, "gia@example.org")
    assert gia is not None and (gia.name, gia.tags) == ("Gia", ("gold", "vip"))
    assert status_of(engine, "no@example.org") is S.UNSUBSCRIBED


def test_import_reports_bad_rows_with_line_numbers(engine: Engine) -> None:
    """Each rejected row names its line (counting multi-line cells) and the reason."""
    report = import_text(
        engine,
        "email,name,timezone\n"
        'ok@example.org,"Two\nLines",\n'
        "bob@,Bob,\n"
        ",Nobody,\n"
        "tz@example.org,Tia,Mars/Olympus\n"
        "fine@example.org,Fine,\n",
    )
    assert report.imported == 2
    assert [r.line for r in report.rejected] == [4, 5, 6]
    assert str(report.rejected[0]).startswith("line 4: 'bob@' is not a valid address: ")
    assert report.rejected[1].reason == "no address in the email column"
    assert "Mars/Olympus" in report.rejected[2].reason


def test_import_dedupes_across_case_in_the_file_and_the_store(engine: Engine) -> None:
    """A repeat in any case is rejected; an address already stored is updated, not added."""
    subs.add(engine, "old@example.org", name="Old", now=NOW)
    report = import_text(
        engine,
        "email,name\nAna@Example.org,Ana\nana@example.ORG,Ana Again\nOLD@example.org,Olden\n",
    )
    assert (report.imported, report.updated) == (1, 1)
    assert [str(r) for r in report.rejected] == ["line 3: ana@example.org repeats line 2"]
    old = subs.find(engine, "old@example.org")
    assert old is not None and old.name == "Olden"
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(subscribers)).scalar_one() == 2


def test_import_pending_flag_keeps_new_rows_pending(engine: Engine) -> None:
    """--pending imports as pending (to be confirmed) instead of active."""
    import_text(engine, "email\nnew@example.org\n", pending=True)
    assert status_of(engine, "new@example.org") is S.PENDING


def test_import_adds_extra_tags_to_every_row(engine: Engine) -> None:
    """--tag labels everyone in the file, new or already here."""
    subs.add(engine, "old@example.org", tags=["a"], now=NOW)
    import_text(engine, "email\nold@example.org\nnew@example.org\n", tags=["From Mailchimp"])
    assert [s.tags for s in subs.iter_subscribers(engine)] == [
        ("a", "from mailchimp"), ("from mailchimp",)
    ]


def test_import_unsubscribe_from_the_platform_wins_over_active(engine: Engine) -> None:
    """An active subscriber the export marks unsubscribed becomes unsubscribed, with an event."""
    subs.add(engine, "dana@example.org", now=NOW)
    report = import_text(engine, "email,status\ndana@example.org,unsubscribed\n")
    assert report.updated == 1
    assert status_of(engine, "dana@example.org") is S.UNSUBSCRIBED
    assert event_kinds(engine, "dana@example.org") == ["subscribe", "unsubscribe"]


def test_import_reads_semicolons_and_a_byte_order_mark(tmp_path: Path, engine: Engine) -> None:
    """A spreadsheet's "CSV UTF-8" with semicolons imports like any other."""
    path = tmp_path / "list.csv"
    path.write_bytes("email;name\nana@example.org;Ana Ñúñez\n".encode("utf-8-sig"))
    with path.open(encoding="utf-8-sig", newline="") as lines:
        report = subs.import_csv(engine, lines, now=NOW, origin=str(path))
    assert report.imported == 1
    ana = subs.find(engine, "ana@example.org")
    assert ana is not None and ana.name == "Ana Ñúñez"


def test_import_without_an_address_column_says_which_columns_it_saw(engine: Engine) -> None:
    """A file with no email column is refused before anything is written."""
    with pytest.raises(SubscriberError, match=r"list.csv: no address column.*\(name, city\)"):
        import_text(engine, "name,city\nAna,Lima\n")


def test_import_of_an_empty_file_is_refused(engine: Engine) -> None:
    """An empty file is an error, not an import of nobody."""
    with pytest.raises(SubscriberError, match="empty"):
        import_text(engine, "")


def test_import_that_fails_half_way_imports_nothing(engine: Engine) -> None:
    """A file that turns out not to be UTF-8 after 3,000 rows leaves the store untouched."""

    def lines() -> Iterator[str]:
        yield "email\n"
        for i in range(3000):
            yield f"r{i}@example.org\n"
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    with pytest.raises(SubscriberError, match=r"cannot be read as utf-8 text.*nothing was imported"):
        subs.import_csv(engine, lines(), now=NOW, origin="big.csv")
    assert subs.counts(engine)["active"] == 0


def test_import_of_5000_rows_streams_in_one_transaction(engine: Engine) -> None:
    """The file is read as rows are written (not first loaded whole), and committed once."""
    pulled = 0
    pulled_at_first_insert: list[int] = []
    commits = 0

    def lines() -> Iterator[str]:
        nonlocal pulled
        yield "email,name,tags\n"
        for i in range(5000):
            pulled += 1
            yield f"Reader{i}@Example.org,Reader {i},weekly\n"

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO subscribers") and not pulled_at_first_insert:
            pulled_at_first_insert.append(pulled)

    def on_commit(conn: Any) -> None:
        nonlocal commits
        commits += 1

    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "commit", on_commit)
    try:
        report = subs.import_csv(engine, lines(), now=NOW, origin="big.csv")
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(engine, "commit", on_commit)
    assert (report.imported, report.rejected) == (5000, ())
    assert pulled_at_first_insert[0] <= subscriber_import.PAGE < 5000  # the first chunk, not the file
    assert commits == 1
    assert subs.tag_counts(engine) == {"weekly": 5000}


# exporting


def test_export_writes_the_documented_columns(engine: Engine) -> None:
    """email, name, status, tags, timezone, created_at, confirmed_at, source, opted_in_at,
    consent_text; one row each."""
    subs.add(engine, "ana@example.org", name="Ana", tags=["a", "b"], timezone="Europe/Berlin",
             now=NOW)
    out = io.StringIO()
    assert subs.export_csv(engine, out) == 1
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows == [
        ["email", "name", "status", "tags", "timezone", "created_at", "confirmed_at", "source",
         "opted_in_at", "consent_text"],
        ["ana@example.org", "Ana", "active", "a,b", "Europe/Berlin", "2026-11-26T12:00:00+00:00",
         "2026-11-26T12:00:00+00:00", "cli", "", ""],
    ]


def test_export_neutralises_formula_injection(engine: Engine) -> None:
    """Cells starting with = + - @ tab or CR get a leading apostrophe."""
    subs.add(engine, "-mallory@example.org", name="=HYPERLINK(\"http://x\")", tags=["@cmd"],
             now=NOW)
    subs.add(engine, "plain@example.org", name="+1 555", now=NOW)
    out = io.StringIO()
    subs.export_csv(engine, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert rows[0]["email"] == "'-mallory@example.org"
    assert rows[0]["name"] == "'=HYPERLINK(\"http://x\")"
    assert rows[0]["tags"] == "'@cmd"
    assert rows[1]["name"] == "'+1 555"


def test_export_imports_back_unchanged(tmp_path: Path, engine: Engine) -> None:
    """An export (neutralised cells and all) is a valid import for another publisher."""
    subs.add(engine, "-mallory@example.org", name="=SUM(A1)", tags=["x", "y"], now=NOW)
    subs.add(engine, "left@example.org", now=NOW)
    subs.remove(engine, "left@example.org", now=NOW)
    out = io.StringIO()
    subs.export_csv(engine, out)
    other = open_store(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        report = subs.import_csv(other, io.StringIO(out.getvalue(), newline=""), now=NOW,
                                 origin="export.csv")
        assert report.rejected == ()
        assert [(s.email, s.name, s.status, s.tags) for s in subs.iter_subscribers(other)] == [
            ("-mallory@example.org", "=SUM(A1)", S.ACTIVE, ("x", "y")),
            ("left@example.org", "", S.UNSUBSCRIBED, ()),
        ]
    finally:
        other.dispose()


def test_importing_the_same_file_again_reports_unchanged(engine: Engine) -> None:
    """A second import of one file changes nothing, and says so instead of "updated"."""
    text = "email,name,tags\na@example.org,Ann,x\nb@example.org,Bob,\n"
    import_text(engine, text)
    again = import_text(engine, text)
    assert (again.imported, again.updated, again.unchanged) == (0, 0, 2)
    changed = import_text(engine, "email,name,tags\na@example.org,Ann Lee,x\nb@example.org,Bob,\n")
    assert (changed.updated, changed.unchanged) == (1, 1)


def test_consent_date_and_source_survive_import_and_export(engine: Engine) -> None:
    """A Mailchimp CONFIRM_TIME becomes the consent date; export writes it and the source back."""
    import_text(
        engine,
        "Email Address,First Name,OPTIN_TIME,CONFIRM_TIME\n"
        "ana@example.org,Ana,2021-03-04 05:06:07,2021-03-04 05:10:00\n",
    )
    out = io.StringIO()
    subs.export_csv(engine, out)
    header, row = list(csv.reader(io.StringIO(out.getvalue())))
    exported = dict(zip(header, row, strict=True))
    assert exported["confirmed_at"] == "2021-03-04T05:10:00+00:00"
    assert exported["source"].startswith("mailchimp:")
    subs.remove(engine, "ana@example.org", now=NOW, purge=True)
    back = import_text(engine, out.getvalue())
    assert back.platform == "publisher" and back.imported == 1
    again = io.StringIO()
    subs.export_csv(engine, again)
    assert list(csv.reader(io.StringIO(again.getvalue())))[1][6:] == row[6:]


# Erasure leaves nothing, and ids are never given again


def _every_text(engine: Engine) -> list[str]:
    """Every value in every table, as written and, where it is JSON, decoded."""
    found: list[str] = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                for value in row:
                    if not isinstance(value, str):
                        continue
                    found.append(value.lower())
                    with contextlib.suppress(ValueError):
                        found.append(json.dumps(json.loads(value), ensure_ascii=False).lower())
    return found


def _hook_everything(engine: Engine) -> None:
    outbox.add_endpoint(engine, "https://crm.example.net/hook", outbox.EVENTS, now=NOW)


@pytest.mark.parametrize(
    ("typed", "forms"),
    [
        ("zoë@example.org", ("zoë@example.org",)),
        ("a@bücher.example", ("a@bücher.example", "a@xn--bcher-kva.example")),
    ],
)
def test_erase_of_an_international_address_leaves_no_trace(
    engine: Engine, typed: str, forms: tuple[str, ...]
) -> None:
    """Erasure finds the address in webhook bodies and kept API answers whatever their encoding."""
    _hook_everything(engine)
    added = subs.add(engine, typed, name="Zoë", tags=["x"], now=NOW)
    subs.edit(engine, added.id, name="Zoë Q", now=NOW)
    subs.add(engine, "bo@example.org", now=NOW)
    with engine.begin() as conn:
        key_id = conn.execute(
            insert(api_keys).values(name="k", key_id="k", key_hash="0" * 64, scopes="admin", created_at=NOW)
            .returning(api_keys.c.id)
        ).scalar_one()
        # As stored: raw, JSON-escaped (\u00eb), and escaped in capitals (\u00EB).
        bodies = [json.dumps({"id": added.id, "email": form}, ensure_ascii=ascii_only)
                  for form in forms for ascii_only in (True, False)]
        bodies += [re.sub(r"\\u([0-9a-f]{4})", lambda found: "\\u" + found[1].upper(), body) for body in bodies]
        for n, body in enumerate(bodies):
            conn.execute(insert(idempotency_keys).values(
                api_key_id=key_id, key=f"k{n}", fingerprint="f", status=201, content_type="application/json",
                body=body, created_at=NOW,
            ))
    subs.remove(engine, typed, now=NOW, purge=True)
    left = _every_text(engine)
    assert [text for text in left if any(form in text for form in forms)] == []
    assert any("bo@example.org" in text for text in left)


def test_erase_tells_webhook_receivers_the_id_and_nothing_else(engine: Engine) -> None:
    """subscriber.erased carries the erased id, never the address."""
    _hook_everything(engine)
    added = subs.add(engine, "dana@example.org", now=NOW)
    subs.remove(engine, "dana@example.org", now=NOW, purge=True)
    with engine.connect() as conn:
        rows = conn.execute(select(webhook_messages.c.event, webhook_messages.c.payload)).all()
    assert [event for event, _ in rows] == ["subscriber.erased"]
    assert json.loads(rows[0].payload)["data"] == {"id": added.id}


def test_an_erased_id_is_never_given_to_someone_else(engine: Engine) -> None:
    """The newest subscriber erased, the next one added gets a new id."""
    subs.add(engine, "ana@example.org", now=NOW)
    gone = subs.add(engine, "dana@example.org", now=NOW)
    subs.remove(engine, "dana@example.org", now=NOW, purge=True)
    assert subs.add(engine, "eve@example.org", now=NOW).id > gone.id


def test_an_edit_that_changes_nothing_writes_nothing(engine: Engine) -> None:
    """Same name, same tags, nothing at all: updated_at stays and no event is queued."""
    _hook_everything(engine)
    added = subs.add(engine, "dana@example.org", name="Dana", tags=["b", "a"], now=NOW)
    later = NOW + timedelta(hours=1)
    subs.edit(engine, added.id, now=later)
    subs.edit(engine, added.id, name="Dana", tags=["a", "b"], timezone="", now=later)
    with engine.connect() as conn:
        assert conn.execute(select(subscribers.c.updated_at)).scalar_one() == NOW
        # Only what the add wrote: the created event and a topic joined for each tag.
        assert list(conn.execute(select(webhook_messages.c.event)).scalars()) == [
            "subscriber.created", "subscriber.topic_joined", "subscriber.topic_joined"
        ]


def test_an_edit_tells_webhook_receivers_what_changed(engine: Engine) -> None:
    """subscriber.updated names the fields that moved and carries the record as it is now."""
    _hook_everything(engine)
    added = subs.add(engine, "dana@example.org", name="Dana", now=NOW)
    subs.edit(engine, added.id, tags=["Clinicians"], now=NOW)
    with engine.connect() as conn:
        payload = conn.execute(
            select(webhook_messages.c.payload).where(webhook_messages.c.event == "subscriber.updated")
        ).scalar_one()
    data = json.loads(payload)["data"]
    assert (data["id"], data["changed"], data["tags"], data["name"]) == (added.id, ["tags"], ["clinicians"], "Dana")


# One cap on tags, every door


def test_more_tags_than_the_cap_are_refused(engine: Engine) -> None:
    """MAX_TAGS tags are fine; one more is a SubscriberError that names the cap."""
    subs.add(engine, "dana@example.org", tags=[f"t{n}" for n in range(subs.MAX_TAGS)], now=NOW)
    with pytest.raises(SubscriberError, match=str(subs.MAX_TAGS)):
        subs.add(engine, "eve@example.org", tags=[f"t{n}" for n in range(subs.MAX_TAGS + 1)], now=NOW)


def test_adding_tags_past_the_cap_to_someone_is_refused(engine: Engine) -> None:
    """Tags merged into an existing subscriber count with the ones they have."""
    subs.add(engine, "dana@example.org", tags=[f"t{n}" for n in range(subs.MAX_TAGS)], now=NOW)
    with pytest.raises(SubscriberError, match=str(subs.MAX_TAGS)):
        subs.add(engine, "dana@example.org", tags=["one more"], now=NOW)
    assert len(subs.get(engine, 1).tags) == subs.MAX_TAGS  # type: ignore[union-attr]


def test_an_import_row_with_too_many_tags_is_rejected(engine: Engine) -> None:
    """A CSV row carrying 5,000 tags is rejected with its line, like any unusable row."""
    many = ",".join(f"t{n}" for n in range(5000))
    report = import_text(engine, f'email,tags\nana@example.org,"{many}"\nbo@example.org,x\n')
    assert report.imported == 1
    assert [r.line for r in report.rejected] == [2] and str(subs.MAX_TAGS) in report.rejected[0].reason


def test_migration_0009_keeps_rows_links_and_indexes(tmp_path: Path) -> None:
    """On SQLite the rebuilt table keeps its rows, its tags, the events' and deliveries'
    links to it and its indexes; after it an erased id is not given again."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0008")
    db = create_engine(url)
    event.listen(db, "connect", lambda connection, _: connection.execute("PRAGMA foreign_keys = ON"))
    with db.begin() as conn:
        for n, address in enumerate(("ana@example.org", "bo@example.org"), start=1):
            conn.execute(insert(subscribers).values(
                id=n, email=address, name="", status="active", source="", created_at=NOW, updated_at=NOW,
                token_key=f"{n:032d}", legacy_links=False, frequency="every",
            ))
        conn.execute(insert(subscriber_tags).values(subscriber_id=2, tag="x"))
        conn.execute(insert(events).values(subscriber_id=2, email="bo@example.org", kind="subscribe", provider="",
                                           detail="", created_at=NOW))
        conn.execute(insert(issues).values(id=1, key="a", kind="article", subject="s", html="", text="",
                                           status="done", created_at=NOW))
        conn.execute(insert(deliveries).values(issue_id=1, subscriber_id=2, email="bo@example.org", state="sent",
                                               attempts=1, not_before=NOW, message_key="m"))
        indexes_before = _index_sql(conn)
    command.upgrade(alembic_config(url), "0009")
    with db.connect() as conn:
        assert "AUTOINCREMENT" in conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE name = 'subscribers'"
        ).scalar_one()
        assert _index_sql(conn) == indexes_before
        assert conn.execute(select(subscriber_tags.c.subscriber_id, subscriber_tags.c.tag)).all() == [(2, "x")]
        assert conn.execute(select(events.c.subscriber_id)).scalars().all() == [2]
        assert conn.execute(select(deliveries.c.subscriber_id)).scalars().all() == [2]
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
    db.dispose()
    store = open_store(url)
    subs.remove(store, "bo@example.org", now=NOW, purge=True)
    assert subs.add(store, "cy@example.org", now=NOW).id == 3
    store.dispose()


def _index_sql(conn: Any) -> list[str]:
    """The indexes and unique constraints of the subscribers table, as SQLite keeps them."""
    found = conn.exec_driver_sql(
        "SELECT name FROM pragma_index_list('subscribers') ORDER BY name"
    ).scalars().all()
    columns = [
        f"{name}: " + ",".join(conn.exec_driver_sql(f"SELECT name FROM pragma_index_info('{name}')").scalars())
        for name in found
        if not name.startswith("sqlite_autoindex")
    ]
    unique = conn.exec_driver_sql(
        "SELECT count(*) FROM pragma_index_list('subscribers') WHERE \"unique\" = 1"
    ).scalar_one()
    return [*columns, f"unique: {unique}"]


def test_an_import_row_that_would_pass_the_cap_with_existing_tags_is_rejected(engine: Engine) -> None:
    """Tags an import adds to someone count with the ones they have; the row is rejected, not cut."""
    subs.add(engine, "ana@example.org", tags=[f"t{n}" for n in range(subs.MAX_TAGS - 1)], now=NOW)
    report = import_text(engine, 'email,tags\nana@example.org,"x,y"\nbo@example.org,x\n')
    assert [r.line for r in report.rejected] == [2] and str(subs.MAX_TAGS) in report.rejected[0].reason
    assert len(subs.find(engine, "ana@example.org").tags) == subs.MAX_TAGS - 1  # type: ignore[union-attr]
