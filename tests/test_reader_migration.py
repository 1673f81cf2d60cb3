"""Readers moved in from Substack, Ghost, Buttondown, Mailchimp and listmonk exports.

Fixtures in tests/data/exports/<service>/readers/ follow each service's documented
export (each folder's README names the page); the stores are SQLite in a temp dir.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from desk_support import add_users, quick_hashes, sign_in
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select
from web_support import live_server, make_publication

from publisher.content.exports.readers import ReaderBatch, parse_when, read_readers
from publisher.errors import SubscriberError
from publisher.models import SubscriberStatus as S
from publisher.services.reader_migration import apply_readers, plan_readers
from publisher.store import open_store
from publisher.store import subscribers as subs
from publisher.store.schema import subscribers
from publisher.web import create_app

DATA = Path(__file__).parent / "data" / "exports"
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
LATER = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


class Folder:
    """An export's files as the migration hands them over: names and bytes."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    @classmethod
    def of(cls, root: Path) -> Folder:
        return cls({p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()})

    def names(self) -> list[str]:
        return sorted(self.files)

    def read(self, name: str) -> bytes:
        return self.files[name]


def batch_of(service: str) -> ReaderBatch:
    return read_readers(service, Folder.of(DATA / service / "readers"))


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return open_store(f"sqlite:///{tmp_path / 'publisher.db'}")


def by_email(batch: ReaderBatch) -> dict[str, object]:
    return {reader.email: reader for reader in batch.readers}


def stored(engine: Engine, email: str) -> dict[str, object]:
    with engine.connect() as conn:
        row = conn.execute(select(subscribers).where(subscribers.c.email == email)).mappings().one()
    return dict(row)


def exported(engine: Engine) -> dict[str, dict[str, str]]:
    out = io.StringIO()
    subs.export_csv(engine, out)
    return {row["email"]: row for row in csv.DictReader(io.StringIO(out.getvalue()))}


# --- each service ---------------------------------------------------------------------


def test_substack_paid_reader_is_tagged_paid() -> None:
    """An active yearly plan on Substack makes a paid reader with the tag "paid"."""
    ben = by_email(batch_of("substack"))["ben@example.org"]
    assert ben.paid and "paid" in ben.tags and ben.status is S.ACTIVE  # type: ignore[attr-defined]


def test_substack_disabled_email_is_unsubscribed() -> None:
    """email_disabled = true on Substack is an unsubscribed reader."""
    assert by_email(batch_of("substack"))["cara@example.org"].status is S.UNSUBSCRIBED  # type: ignore[attr-defined]


def test_substack_file_with_bom_and_crlf_reads_its_first_column() -> None:
    """The byte-order mark and Windows line endings do not hide the email column."""
    batch = batch_of("substack")
    assert "ana@example.org" in by_email(batch)
    assert all("\r" not in reader.consent_text for reader in batch.readers)


def test_ghost_labels_and_newsletters_become_tags() -> None:
    """Ghost's labels and newsletters are the reader's tags; comped counts as paid."""
    readers = by_email(batch_of("ghost"))
    assert readers["hana@example.org"].tags == ("vip", "clinicians", "weekly notes")  # type: ignore[attr-defined]
    assert readers["kim@example.org"].paid  # type: ignore[attr-defined]


def test_ghost_member_off_emails_is_unsubscribed() -> None:
    """subscribed_to_emails = false is imported as unsubscribed."""
    assert by_email(batch_of("ghost"))["jo@example.org"].status is S.UNSUBSCRIBED  # type: ignore[attr-defined]


def ghost_json(**data: object) -> Folder:
    import json

    return Folder({"ghost.json": json.dumps({"db": [{"meta": {}, "data": data}]}).encode()})


def test_ghost_json_members_keep_labels_newsletters_and_paid() -> None:
    """Members in Ghost's JSON export: labels and newsletters become tags, comped and paid get "paid"."""
    readers = by_email(read_readers("ghost", Folder.of(DATA / "ghost")))
    lena = readers["lena@example.org"]
    assert lena.tags == ("clinicians", "weekly", "research digest")  # type: ignore[attr-defined]
    assert lena.status is S.ACTIVE and lena.record == "ghost-export.json: members[0]"  # type: ignore[attr-defined]
    assert lena.created_at == datetime(2023, 3, 1, 10, 0, tzinfo=UTC)  # type: ignore[attr-defined]
    assert lena.source == "ghost:ghost-export.json"  # type: ignore[attr-defined]
    assert "paid" in readers["omar@example.org"].tags  # type: ignore[attr-defined]


def test_ghost_json_member_on_no_newsletter_is_unsubscribed() -> None:
    """A member subscribed to none of the newsletters has left the list."""
    readers = by_email(read_readers("ghost", Folder.of(DATA / "ghost")))
    assert readers["omar@example.org"].status is S.UNSUBSCRIBED  # type: ignore[attr-defined]


def test_ghost_json_member_whose_email_ghost_disabled_is_bounced() -> None:
    """email_disabled (a bounce or a spam complaint there) is never mailed here."""
    readers = by_email(read_readers("ghost", Folder.of(DATA / "ghost")))
    assert readers["pia@example.org"].status is S.BOUNCED  # type: ignore[attr-defined]


def test_ghost_json_member_without_an_address_is_refused_by_record() -> None:
    """A member with no email is refused, naming the file and its place in members."""
    batch = read_readers("ghost", Folder.of(DATA / "ghost"))
    assert ("ghost-export.json: members[4]", "no email address") in batch.refused


def test_ghost_json_and_members_csv_are_one_reader_per_address() -> None:
    """The same address in the JSON (paid, subscribed) and the CSV (later unsubscribed): one reader,
    unsubscribed, still tagged paid, signed up when the JSON says."""
    batch = read_readers("ghost", Folder.of(DATA / "ghost"))
    hana = by_email(batch)["hana@example.org"]
    assert hana.status is S.UNSUBSCRIBED and "paid" in hana.tags  # type: ignore[attr-defined]
    assert hana.created_at == datetime(2023, 4, 1, 12, 0, tzinfo=UTC)  # type: ignore[attr-defined]
    assert [r.email for r in batch.readers].count("hana@example.org") == 1
    assert len(batch.readers) + len(batch.merged) + len(batch.refused) == batch.rows == 10


def test_ghost_json_before_newsletters_reads_the_subscribed_flag() -> None:
    """An export from before Ghost's newsletters (no members_newsletters) reads each member's own flag."""
    folder = ghost_json(members=[{"id": "1", "email": "a@example.org", "status": "free", "subscribed": True},
                                 {"id": "2", "email": "b@example.org", "status": "free", "subscribed": False}])
    readers = by_email(read_readers("ghost", folder))
    assert readers["a@example.org"].status is S.ACTIVE  # type: ignore[attr-defined]
    assert readers["b@example.org"].status is S.UNSUBSCRIBED  # type: ignore[attr-defined]


def test_ghost_json_members_that_are_not_a_list_name_the_file() -> None:
    """db[0].data.members of the wrong shape is refused, naming the file."""
    with pytest.raises(SubscriberError, match=r"ghost\.json: db\[0\]\.data\.members is not a list"):
        read_readers("ghost", ghost_json(members={"email": "a@example.org"}))


def test_ghost_dry_run_says_where_the_readers_came_from(tmp_path: Path) -> None:
    """The plan names the JSON's members and the CSV as the readers' files."""
    from publisher.config import load_config
    from publisher.services import migration

    (tmp_path / "config.toml").write_text(
        '[publication]\ntitle = "T"\nurl = "https://t.example.org/"\npostal_address = "1 Wharf St"\n'
        '[newsletter]\nfrom = "T <t@example.org>"\n[store]\nurl = "sqlite:///p.db"\n'
    )
    config = load_config(tmp_path / "config.toml", env={})
    planned = migration.plan(config, open_store(config.store_url), "ghost", migration.open_export(DATA / "ghost"))
    assert "readers read from ghost-export.json (its members), readers/members.2024-06-01.csv" in planned.notes
    assert planned.readers.created == 7 and len(planned.readers.refused) == 1


def test_buttondown_types_map_to_statuses() -> None:
    """unactivated is pending, undeliverable is bounced, premium is paid."""
    readers = by_email(batch_of("buttondown"))
    assert readers["nia@example.org"].status is S.PENDING  # type: ignore[attr-defined]
    assert readers["olu@example.org"].status is S.BOUNCED  # type: ignore[attr-defined]
    assert readers["max@example.org"].paid  # type: ignore[attr-defined]


def test_buttondown_unknown_type_is_refused_naming_file_and_record() -> None:
    """A subscriber type Buttondown does not document is refused with its file and line."""
    refused = dict(batch_of("buttondown").refused)
    assert "mystery" in refused["subscribers.csv:6"]


def test_mailchimp_keeps_opt_in_and_confirm_times() -> None:
    """OPTIN_TIME is when they signed up, CONFIRM_TIME when they confirmed, with the IPs."""
    sam = by_email(batch_of("mailchimp"))["uma@example.org"]
    assert sam.created_at == datetime(2019, 5, 1, 9, 0, tzinfo=UTC)  # type: ignore[attr-defined]
    assert sam.confirmed_at == datetime(2019, 5, 1, 9, 1, tzinfo=UTC)  # type: ignore[attr-defined]
    assert "June letter" in sam.consent_text  # type: ignore[attr-defined]


def test_mailchimp_cleaned_file_is_bounced() -> None:
    """Every address of the cleaned file is bounced."""
    assert by_email(batch_of("mailchimp"))["vic@example.org"].status is S.BOUNCED  # type: ignore[attr-defined]


def test_mailchimp_source_names_service_and_file() -> None:
    """The source says where the reader came from and fits the column."""
    vic = by_email(batch_of("mailchimp"))["vic@example.org"]
    assert vic.source == "mailchimp:cleaned_members_export_5f1e2d9c0a.csv"  # type: ignore[attr-defined]


def test_listmonk_blocklisted_is_unsubscribed() -> None:
    """A blocklisted listmonk subscriber is never mailed."""
    assert by_email(batch_of("listmonk"))["xia@example.org"].status is S.UNSUBSCRIBED  # type: ignore[attr-defined]


def test_listmonk_unsubscribed_from_every_list_is_unsubscribed() -> None:
    """Enabled, but unsubscribed from each of their lists: they left."""
    assert by_email(batch_of("listmonk"))["zoe@example.org"].status is S.UNSUBSCRIBED  # type: ignore[attr-defined]


def test_listmonk_lists_become_tags() -> None:
    """The lists a listmonk subscriber is on become their tags."""
    assert by_email(batch_of("listmonk"))["wes@example.org"].tags == ("weekly",)  # type: ignore[attr-defined]


def test_listmonk_bad_attributes_are_refused() -> None:
    """attributes that are not JSON refuse the record, naming it."""
    assert "attributes is not JSON" in dict(batch_of("listmonk").refused)["subscribers.csv:6"]


def test_wordpress_export_holds_no_readers() -> None:
    """A service whose export has no subscribers gives an empty batch."""
    assert read_readers("wordpress", Folder({"export.xml": b"<rss/>"})).rows == 0


# --- duplicates -----------------------------------------------------------------------


def test_duplicate_in_one_file_keeps_unsubscribed() -> None:
    """The same address twice in one file: unsubscribed beats subscribed."""
    batch = batch_of("ghost")
    assert by_email(batch)["hana@example.org"].status is S.UNSUBSCRIBED  # type: ignore[attr-defined]
    assert [record for record, _ in batch.merged] == ["members.2024-06-01.csv:6"]


def test_duplicate_across_files_keeps_unsubscribed() -> None:
    """An address in Mailchimp's subscribed and unsubscribed files is unsubscribed."""
    assert by_email(batch_of("mailchimp"))["rosa@example.org"].status is S.UNSUBSCRIBED  # type: ignore[attr-defined]


def test_duplicate_differing_in_case_is_one_reader() -> None:
    """Ana@Example.org and ana@example.org are one reader, kept unsubscribed."""
    readers = by_email(batch_of("substack"))
    assert readers["ana@example.org"].status is S.UNSUBSCRIBED  # type: ignore[attr-defined]


def test_unsubscribed_here_is_not_reactivated(engine: Engine) -> None:
    """An address that unsubscribed here stays unsubscribed whatever the export says."""
    subs.add(engine, "sam@example.org", now=NOW)
    subs.suppress(engine, "sam@example.org", "unsubscribe", provider="test", now=NOW)
    counts = apply_readers(engine, batch_of("mailchimp"), now=LATER)
    assert stored(engine, "sam@example.org")["status"] == "unsubscribed"
    assert counts.skipped == 2  # sam, kept; rosa's second record, merged


def test_active_here_is_unsubscribed_by_the_export(engine: Engine) -> None:
    """An address active here that the export says left is taken off the list."""
    subs.add(engine, "uma@example.org", now=NOW)
    apply_readers(engine, batch_of("mailchimp"), now=LATER)
    assert stored(engine, "uma@example.org")["status"] == "unsubscribed"


def test_mailchimp_time_zone_is_kept(engine: Engine) -> None:
    """Mailchimp's TIMEZONE becomes the reader's zone; one that is no zone is left out."""
    apply_readers(engine, batch_of("mailchimp"), now=NOW)
    assert stored(engine, "rosa@example.org")["timezone"] == "America/New_York"
    assert stored(engine, "sam@example.org")["timezone"] is None


def test_listmonk_export_imports_through_subscribers_import(engine: Engine) -> None:
    """`publisher subscribers import` reads listmonk's export too: blocklisted stays off the list."""
    text = (DATA / "listmonk" / "readers" / "subscribers.csv").read_text(encoding="utf-8")
    report = subs.import_csv(engine, io.StringIO(text, newline=""), now=NOW, origin="subscribers.csv")
    assert report.platform == "listmonk"
    assert stored(engine, "xia@example.org")["status"] == "unsubscribed"


def test_export_zip_is_read_through_the_migration(tmp_path: Path) -> None:
    """The readers of a Mailchimp zip, opened as `publisher migrate` opens it."""
    from publisher.services.migration import open_export

    archive = tmp_path / "audience.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted((DATA / "mailchimp" / "readers").glob("*.csv")):
            out.write(path, f"audience/{path.name}")
    batch = read_readers("mailchimp", open_export(archive))
    assert (len(batch.readers), len(batch.merged)) == (5, 1)


_TYPES = {"unactivated": S.PENDING, "regular": S.ACTIVE, "unsubscribed": S.UNSUBSCRIBED, "undeliverable": S.BOUNCED}
_ORDER = [S.PENDING, S.ACTIVE, S.UNSUBSCRIBED, S.BOUNCED]


@given(st.lists(st.sampled_from(sorted(_TYPES)), min_size=1, max_size=6))
def test_the_most_protective_status_wins_in_any_order(kinds: list[str]) -> None:
    """However often and in whatever order an address comes, the status furthest off the list wins."""
    rows = "".join(f"{i},same@example.org,2022-01-01,{kind}\n" for i, kind in enumerate(kinds))
    data = ("id,email,creation_date,subscriber_type\n" + rows).encode()
    batch = read_readers("buttondown", Folder({"subscribers.csv": data}))
    assert [r.status for r in batch.readers] == [max((_TYPES[k] for k in kinds), key=_ORDER.index)]
    assert len(batch.merged) == len(kinds) - 1


def test_windows_1252_file_keeps_its_names() -> None:
    """A members file saved by a Western spreadsheet as Windows-1252 keeps "Øberg"."""
    data = "email,name,subscribed_to_emails,created_at\nsam@example.org,Sam Øberg,true,2024-01-01\n".encode("cp1252")
    batch = read_readers("ghost", Folder({"members.csv": data}))
    assert batch.readers[0].name == "Sam Øberg"


# --- dates ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["2024-03-05T10:00:00Z", "2024-03-05 10:00:00", "03/05/2024 10:00", "Tue, 05 Mar 2024 10:00:00 +0000"],
)
def test_three_date_formats_read_the_same(text: str) -> None:
    """ISO 8601, MM/DD/YYYY HH:MM and RFC 2822 are one moment."""
    assert parse_when(text) == datetime(2024, 3, 5, 10, 0, tzinfo=UTC)


def test_day_first_date_is_refused() -> None:
    """13/02/2024 only reads day-first: refused, not guessed."""
    with pytest.raises(SubscriberError, match="day-first"):
        parse_when("13/02/2024 10:00")


def test_record_with_a_day_first_date_names_file_and_record() -> None:
    """The refusal names the file, the record and the column."""
    reason = dict(batch_of("substack").refused)["email_list.calm-notes.csv:7"]
    assert "created_at" in reason and "13/02/2024" in reason


def test_unreadable_date_does_not_refuse_a_reader_who_left() -> None:
    """An unsubscribed record with a bad date is still imported, so it is never mailed."""
    data = b"email,email_disabled,created_at\nleft@example.org,true,yesterday-ish\n"
    batch = read_readers("substack", Folder({"email_list.x.csv": data}))
    assert [(r.email, r.status, r.created_at) for r in batch.readers] == [("left@example.org", S.UNSUBSCRIBED, None)]


# --- bad input --------------------------------------------------------------------------


def test_bad_address_is_refused_naming_file_and_record() -> None:
    """An address without @ is refused with its file and line."""
    assert "not a valid address" in dict(batch_of("substack").refused)["email_list.calm-notes.csv:8"]


def test_address_the_store_refuses_is_named_by_its_record(engine: Engine) -> None:
    """An address refused as it is written (two dots in a row) is named by file and line."""
    data = b"email,email_disabled,created_at\nann..lee@example.org,false,2024-01-01\nok@example.org,false,\n"
    batch = read_readers("substack", Folder({"email_list.x.csv": data}))
    counts = apply_readers(engine, batch, now=NOW)
    assert [record for record, _ in counts.refused] == ["email_list.x.csv:2"]
    assert (counts.created, counts.total) == (1, 2)


def test_file_without_an_address_column_names_the_file() -> None:
    """A members file without an email column is an error naming it."""
    with pytest.raises(SubscriberError, match=r"members\.csv: no address column"):
        read_readers("ghost", Folder({"members.csv": b"id,name\n1,Ana\n"}))


def test_formula_in_a_name_is_neutralised_on_export(engine: Engine) -> None:
    """A name that a spreadsheet would run comes back out as text."""
    apply_readers(engine, batch_of("ghost"), now=NOW)
    assert exported(engine)["ivo@example.org"]["name"].startswith("'=HYPERLINK")


def test_consent_is_in_the_subscribers_export(engine: Engine) -> None:
    """`publisher subscribers export` carries the opt-in time and the consent text."""
    apply_readers(engine, batch_of("mailchimp"), now=NOW)
    row = exported(engine)["uma@example.org"]
    assert row["opted_in_at"] == "2019-05-01T09:00:00+00:00"
    assert row["confirmed_at"] == "2019-05-01T09:01:00+00:00"
    assert "unsubscribed 2022-06-01" in row["consent_text"]


def test_desk_subscriber_page_shows_the_consent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The desk's page of a reader who moved in says when they opted in and what was recorded."""
    quick_hashes(monkeypatch)
    config = make_publication(tmp_path)
    add_users(config)
    engine = open_store(config.store_url)
    apply_readers(engine, batch_of("mailchimp"), now=NOW)
    uma = subs.find(engine, "uma@example.org")
    engine.dispose()
    assert uma is not None
    with live_server(create_app(config)) as base, httpx.Client(base_url=base) as http:
        sign_in(http)
        page = http.get(f"/desk/subscribers/{uma.id}").text
    assert "Opted in: 2019-05-01 09:00 UTC" in page
    assert "unsubscribe reason NORMAL" in page


def test_export_imported_back_keeps_consent(engine: Engine, tmp_path: Path) -> None:
    """Our own export, imported into an empty store, gives the same consent back."""
    apply_readers(engine, batch_of("mailchimp"), now=NOW)
    out = io.StringIO()
    subs.export_csv(engine, out)
    other = open_store(f"sqlite:///{tmp_path / 'other.db'}")
    subs.import_csv(other, io.StringIO(out.getvalue(), newline=""), now=LATER, origin="subscribers.csv")
    assert exported(other) == exported(engine)


# --- counts, dry run, again -------------------------------------------------------------


@pytest.mark.parametrize("service", ["substack", "ghost", "buttondown", "mailchimp", "listmonk"])
def test_counts_add_up_to_records_read(engine: Engine, service: str) -> None:
    """created + updated + unchanged + skipped + refused = records read."""
    batch = batch_of(service)
    assert apply_readers(engine, batch, now=NOW).total == batch.rows


def test_dry_run_writes_nothing(engine: Engine) -> None:
    """plan_readers counts what would be created and leaves the store empty."""
    counts = plan_readers(engine, batch_of("mailchimp"))
    assert counts.created == 5
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(subscribers)).scalar() == 0


def test_dry_run_does_not_wait_for_the_write_lock(engine: Engine) -> None:
    """A preview runs while another writer holds the database (a subscribe, a send)."""
    batch = batch_of("mailchimp")
    with engine.connect() as other:
        other.exec_driver_sql("BEGIN IMMEDIATE")
        started = time.perf_counter()
        assert plan_readers(engine, batch).created == 5
        assert time.perf_counter() - started < 5
        other.rollback()


def test_dry_run_says_what_the_migration_does(engine: Engine) -> None:
    """The plan's counts are the migration's counts."""
    subs.add(engine, "rosa@example.org", now=NOW)
    batch = batch_of("mailchimp")
    assert plan_readers(engine, batch) == apply_readers(engine, batch, now=LATER)


def test_running_twice_changes_nothing(engine: Engine) -> None:
    """The second run finds every reader unchanged and writes nothing new."""
    batch = batch_of("buttondown")
    apply_readers(engine, batch, now=NOW)
    before = exported(engine)
    again = apply_readers(engine, batch, now=LATER)
    assert (again.created, again.updated) == (0, 0)
    assert exported(engine) == before


def test_reader_without_consent_here_gains_it(engine: Engine) -> None:
    """An address already here gets the opt-in time and text the export kept."""
    subs.add(engine, "tess@example.org", now=NOW)
    counts = apply_readers(engine, batch_of("mailchimp"), now=LATER)
    assert counts.updated == 1
    assert stored(engine, "tess@example.org")["opted_in_at"] == datetime(2020, 2, 3, 11, 0, tzinfo=UTC)


def test_unsubscribed_reader_is_never_in_a_send(engine: Engine) -> None:
    """Readers imported as unsubscribed or bounced are not among the active readers."""
    apply_readers(engine, batch_of("mailchimp"), now=NOW)
    active = {s.email for s in subs.iter_subscribers(engine, status=S.ACTIVE)}
    assert active == {"sam@example.org", "tess@example.org"}


# --- a big export, and a kill -------------------------------------------------------------

MAILCHIMP_HEADER = (
    '"Email Address","First Name","Last Name","Address",MEMBER_RATING,OPTIN_TIME,OPTIN_IP,CONFIRM_TIME,'
    "CONFIRM_IP,GMTOFF,DSTOFF,TIMEZONE,CC,REGION,LAST_CHANGED,LEID,EUID,NOTES,TAGS"
)


def mailchimp_export(count: int) -> Folder:
    """A Mailchimp audience export of `count` records: 10% unsubscribed, 3% cleaned."""
    files: dict[str, list[str]] = {
        "subscribed_members_export_big.csv": [MAILCHIMP_HEADER],
        "unsubscribed_members_export_big.csv": [MAILCHIMP_HEADER + ",UNSUB_TIME,UNSUB_REASON"],
        "cleaned_members_export_big.csv": [MAILCHIMP_HEADER + ",CLEAN_TIME"],
    }
    for i in range(count):
        row = (
            f'reader{i}@example.org,Reader,"No. {i}","{i} Main St  Springfield  IL  62701  US",2,'
            f'"2020-01-02 10:{i % 60:02d}:00",203.0.113.{i % 250},"2020-01-02 10:{i % 60:02d}:30",'
            f'203.0.113.{i % 250},-5,-4,America/New_York,US,IL,"2023-01-01 00:00:00",{i},e{i},,"""Weekly"""'
        )
        if i % 100 < 3:
            files["cleaned_members_export_big.csv"].append(row + ',"2022-01-01 00:00:00"')
        elif i % 100 < 13:
            files["unsubscribed_members_export_big.csv"].append(row + ',"2022-02-01 00:00:00",NORMAL')
        else:
            files["subscribed_members_export_big.csv"].append(row)
    return Folder({name: ("\r\n".join(rows) + "\r\n").encode() for name, rows in files.items()})


@pytest.mark.slow
def test_a_large_mailchimp_audience_moves_in(engine: Engine) -> None:
    """30,000 records (benchmarks/migrate_readers.py runs 100,000): every one counted, the
    13% who left never among the active."""
    started = time.perf_counter()
    batch = read_readers("mailchimp", mailchimp_export(30_000))
    counts = apply_readers(engine, batch, now=NOW)
    elapsed = time.perf_counter() - started
    assert (counts.created, counts.total) == (30_000, 30_000)
    assert subs.counts(engine)["active"] == 26_100
    print(f"30,000 Mailchimp readers read and written in {elapsed:.1f} s")


_KILLED_RUN = """
import sys, time
sys.path.insert(0, {tests!r})
from test_reader_migration import mailchimp_export, NOW
from publisher.content.exports.readers import read_readers
from publisher.services.reader_migration import apply_readers
from publisher.store import open_store
engine = open_store({url!r})
batch = read_readers("mailchimp", mailchimp_export(30_000))
print("writing", flush=True)
apply_readers(engine, batch, now=NOW)
print("done", flush=True)
"""


@pytest.mark.slow
def test_migration_killed_midway_resumes_without_duplicates(tmp_path: Path) -> None:
    """kill -9 while writing leaves nothing half-done; the next run brings everyone once."""
    url = f"sqlite:///{tmp_path / 'publisher.db'}"
    open_store(url).dispose()
    script = _KILLED_RUN.format(tests=str(Path(__file__).parent), url=url)
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "writing"
        time.sleep(1.0)
        child.kill()
        assert child.wait() == -9
    engine = open_store(url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(subscribers)).scalar() == 0
    batch = read_readers("mailchimp", mailchimp_export(30_000))
    assert apply_readers(engine, batch, now=LATER).created == 30_000
    again = apply_readers(engine, batch, now=LATER)
    assert (again.created, again.updated) == (0, 0)
