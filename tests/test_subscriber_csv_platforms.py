"""Other platforms' exports: each told by its own columns, and only its subscribed readers mailed (pure,
and one import through the store)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.errors import SubscriberError
from publisher.models import SubscriberStatus as S
from publisher.store import open_store
from publisher.store import subscribers as subs
from publisher.store.subscriber_csv import Rejected, SourceRow, read_export

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

# Headers as the platforms write them (see the module's docstring for where each comes from).
KIT = "first_name,email_address,state,created_at,tags\n"
BEEHIIV = (
    "email,First Name,Last Name,status,tier,created_at,stripe_customer_id,Free Tier,Premium Tier,"
    "unsubscribed_at,Subscription Date (Substack)\n"
)
MAILERLITE = "email,name,status,subscribed_at,unsubscribed_at,optin_ip,opens_count,clicks_count\n"
LISTMONK = "uuid,email,name,attributes,status,created_at,updated_at,lists\n"
MAILCHIMP = (
    '"Email Address","First Name","Last Name","Address","Phone Number",MEMBER_RATING,OPTIN_TIME,OPTIN_IP,'
    "CONFIRM_TIME,CONFIRM_IP,LATITUDE,LONGITUDE,GMTOFF,DSTOFF,TIMEZONE,CC,REGION,LAST_CHANGED,LEID,EUID,"
    "NOTES,TAGS"
)
MAILCHIMP_UNSUBSCRIBED = (
    MAILCHIMP + ",UNSUB_TIME,UNSUB_CAMPAIGN_TITLE,UNSUB_CAMPAIGN_ID,UNSUB_REASON,UNSUB_REASON_OTHER\n"
)


def read(text: str, origin: str = "t.csv") -> tuple[str, list[SourceRow | Rejected]]:
    platform, rows = read_export(io.StringIO(text, newline=""), origin=origin)
    return platform, list(rows)


def statuses(text: str, origin: str = "t.csv") -> list[S | None]:
    return [r.status if isinstance(r, SourceRow) else None for r in read(text, origin)[1]]


@pytest.mark.parametrize(
    ("header", "platform"),
    [
        (KIT, "Kit"),
        ("email,first_name,state\n", "Kit"),
        (BEEHIIV, "beehiiv"),
        (MAILERLITE, "MailerLite"),
        ("email,name,attributes,status\n", "listmonk"),
    ],
)
def test_each_platforms_export_is_recognised_by_its_columns(header: str, platform: str) -> None:
    """Kit, beehiiv, MailerLite and listmonk's import format are told apart by their columns."""
    assert read(header)[0] == platform


def test_a_kit_subscriber_is_mailed_only_when_active() -> None:
    """Kit's active is a reader; inactive waits for confirmation; cancelled, bounced, complained stay off."""
    found = statuses(
        KIT
        + "Ann,ann@example.org,active,2024-01-01T00:00:00Z,\n"
        + "Ben,ben@example.org,inactive,2024-01-01T00:00:00Z,\n"
        + "Cy,cy@example.org,cancelled,2024-01-01T00:00:00Z,\n"
        + "Di,di@example.org,bounced,2024-01-01T00:00:00Z,\n"
        + "Ed,ed@example.org,complained,2024-01-01T00:00:00Z,\n"
    )
    assert found == [S.ACTIVE, S.PENDING, S.UNSUBSCRIBED, S.BOUNCED, S.COMPLAINED]


def test_an_unknown_state_refuses_the_row_with_its_line_column_word_and_what_to_do() -> None:
    """A word Kit does not document is no permission: the row is refused, saying where and why."""
    _platform, [row] = read(KIT + "Ann,ann@example.org,paused,2024-01-01T00:00:00Z,\n")
    assert isinstance(row, Rejected) and row.line == 2
    assert "unknown Kit state 'paused' in the state column" in row.reason
    assert "expected active, confirmed, cold, inactive" in row.reason and "add them by hand only if" in row.reason


def test_a_postal_state_is_a_place_not_kits_word() -> None:
    """A list of names with a postal State column (CA, New York, Bavaria) imports its people as readers."""
    found = statuses(
        "Email Address,First Name,State\nann@example.org,Ann,CA\nben@example.org,Ben,New York\n"
        "cy@example.org,Cy,Bavaria\ndi@example.org,Di,cancelled\ned@example.org,Ed,Unconfirmed\n"
    )
    assert found == [S.ACTIVE, S.ACTIVE, S.ACTIVE, S.UNSUBSCRIBED, S.PENDING]


def test_kits_own_lower_case_word_it_does_not_document_still_refuses_the_row() -> None:
    """A lower-case word is no place: one Kit does not document refuses the row, saying to rename a postal column."""
    _platform, [row] = read("Email Address,First Name,State\nann@example.org,Ann,ca\n")
    assert isinstance(row, Rejected)
    assert "unknown Kit state 'ca'" in row.reason and "rename that column" in row.reason


def test_a_cut_down_kit_export_still_keeps_those_who_left_off_the_list() -> None:
    """With only email and state left, Kit's cancelled and inactive are no readers; an address's state is."""
    found = statuses(
        "email,name,state\nann@example.org,Ann,cancelled\nben@example.org,Ben,inactive\ncy@example.org,Cy,CA\n"
    )
    assert found == [S.UNSUBSCRIBED, S.PENDING, S.ACTIVE]


def test_beehiiv_readers_who_left_stay_off_the_list() -> None:
    """inactive is unsubscribed, pending waits, and an unsubscribed_at date wins over "active"."""
    found = statuses(
        BEEHIIV
        + "lo@example.com, Lo ,,active,free,2023-03-24 10:23:10 UTC,,Yes,No,,\n"
        + "do@example.com,,,inactive,free,2023-03-24 10:36:48 UTC,,Yes,No,,\n"
        + "am@example.com,,,pending,free,2023-04-11 14:02:46 UTC,,Yes,No,,\n"
        + "un@example.com,,,active,premium,2023-04-11 14:02:46 UTC,cus_1,No,Yes,2024-03-13 11:33:53 UTC,\n"
    )
    assert found == [S.ACTIVE, S.UNSUBSCRIBED, S.PENDING, S.UNSUBSCRIBED]


def test_beehiivs_dates_are_read_as_utc() -> None:
    """beehiiv writes "2023-03-24 10:23:10 UTC": that is when they signed up."""
    _platform, [row] = read(BEEHIIV + "lo@example.com,Lo,,active,free,2023-03-24 10:23:10 UTC,,Yes,No,,\n")
    assert isinstance(row, SourceRow) and row.consented_at == datetime(2023, 3, 24, 10, 23, 10, tzinfo=UTC)


def test_mailerlite_statuses_map_onto_ours() -> None:
    """active, unconfirmed, unsubscribed, bounced and junk; an unsubscribed_at date keeps one off."""
    found = statuses(
        MAILERLITE
        + "a@example.org,A,active,2024-01-01,,,0,0\n"
        + "b@example.org,B,unconfirmed,2024-01-01,,,0,0\n"
        + "c@example.org,C,unsubscribed,2024-01-01,2024-02-01,,0,0\n"
        + "d@example.org,D,bounced,2024-01-01,,,0,0\n"
        + "e@example.org,E,junk,2024-01-01,,,0,0\n"
        + "f@example.org,F,active,2024-01-01,2024-02-01,,0,0\n"
    )
    assert found == [S.ACTIVE, S.PENDING, S.UNSUBSCRIBED, S.BOUNCED, S.UNSUBSCRIBED, S.UNSUBSCRIBED]


def test_buttondowns_documented_types_are_understood() -> None:
    """churned and upcoming still get the letters; blocked and complained do not."""
    found = statuses(
        "email,type,creation_date\n"
        "a@example.org,churned,2024-01-01\n"
        "b@example.org,upcoming,2024-01-01\n"
        "c@example.org,blocked,2024-01-01\n"
        "d@example.org,complained,2024-01-01\n"
    )
    assert found == [S.ACTIVE, S.ACTIVE, S.UNSUBSCRIBED, S.COMPLAINED]


@pytest.mark.parametrize(
    "text",
    [
        "id,email,name,subscribed_to_emails,created_at\n1,a@example.org,A,,2024-01-01\n",
        "email,active_subscription,expiry,email_disabled,created_at\na@example.org,false,,,2024-01-01\n",
        "email,subscriber_type,creation_date\na@example.org,,2024-01-01\n",
        LISTMONK + "u1,a@example.org,A,{},,2024-01-01,2024-01-01,[]\n",
        KIT + "A,a@example.org,,2024-01-01,\n",
    ],
)
def test_an_empty_status_cell_is_refused_not_taken_for_subscribed(text: str) -> None:
    """A record whose platform does not say it is subscribed is not made a reader."""
    _platform, [row] = read(text)
    assert isinstance(row, Rejected)
    assert "is empty" in row.reason


def test_a_deleted_ghost_member_is_not_mailed() -> None:
    """A member with a deleted_at date left Ghost, even if subscribed_to_emails still says true."""
    found = statuses(
        "id,email,name,note,subscribed_to_emails,complimentary_plan,stripe_customer_id,created_at,deleted_at,"
        "labels,tiers\n1,a@example.org,A,,true,false,,2023-01-01T00:00:00.000Z,2024-01-01T00:00:00.000Z,,\n"
    )
    assert found == [S.UNSUBSCRIBED]


def test_a_listmonk_subscriber_who_left_every_list_is_not_mailed() -> None:
    """Enabled, but unsubscribed from each list it is on: listmonk sends them nothing."""
    left = '"[{""id"": 1, ""name"": ""Weekly"", ""subscription_status"": ""unsubscribed""}]"'
    stays = '"[{""id"": 1, ""name"": ""Weekly"", ""subscription_status"": ""confirmed""}]"'
    found = statuses(
        LISTMONK
        + f"u1,a@example.org,A,{{}},enabled,2024-01-01,2024-01-01,{left}\n"
        + f"u2,b@example.org,B,{{}},enabled,2024-01-01,2024-01-01,{stays}\n"
    )
    assert found == [S.UNSUBSCRIBED, S.ACTIVE]


@pytest.mark.parametrize(
    ("header", "column"),
    [
        ("Email,Subscription Type,Unsubscribed", "Unsubscribed"),
        ("Email Address,MEMBER_RATING,Newsletter", "Newsletter"),
        ("email,type,creation_date,Opted out", "Opted out"),
        ("uuid,email,attributes,status,Do not email", "Do not email"),
    ],
)
def test_a_look_alike_with_a_permission_column_its_platform_lacks_is_refused_whole(header: str, column: str) -> None:
    """Read by the platform's rule, that column would be ignored and everyone in it mailed."""
    with pytest.raises(SubscriberError) as caught:
        read(header + "\nann@example.org,free,true,x,y\n")
    said = str(caught.value)
    assert said.startswith("t.csv: the column") and repr(column) in said
    assert "Nothing was imported" in said and "remove that column" in said


@pytest.mark.parametrize(
    "text",
    [
        "email,status,status\nann@example.org,unsubscribed,active\n",
        "id,email,subscribed_to_emails,Subscribed to emails\n1,ann@example.org,false,true\n",
    ],
)
def test_a_permission_column_named_twice_refuses_the_file(text: str) -> None:
    """The last of two columns of one name would win: "unsubscribed, active" must not make a reader."""
    with pytest.raises(SubscriberError, match="times, and it seems to say who may be mailed"):
        read(text)


def test_no_real_export_is_refused() -> None:
    """The columns each platform really writes pass the check for permission columns."""
    headers = [
        MAILCHIMP + "\n",
        MAILCHIMP_UNSUBSCRIBED,
        MAILCHIMP + ",CLEAN_TIME,CLEAN_CAMPAIGN_TITLE,CLEAN_CAMPAIGN_ID\n",
        "email,active_subscription,expiry,plan,email_disabled,created_at\n",
        "email,expiry,email_disabled,stripe_connected_customer_id,type\n",
        "Email,Name,Subscription type,Activity,Subscription date,Revenue\n",
        "id,email,name,note,subscribed_to_emails,complimentary_plan,stripe_customer_id,created_at,deleted_at,"
        "labels,tiers,status,newsletters\n",
        "id,email,creation_date,notes,metadata,tags,secondary_id,subscriber_type,source,referrer_url,ip_address\n",
        LISTMONK,
        "First Name,Last Name,Email 1,Labels,Email subscriber status,SMS subscriber status,Created At (UTC+0)\n",
        KIT,
        BEEHIIV,
        MAILERLITE,
    ]
    for header in headers:
        read(header)


def test_a_mailchimp_file_of_non_subscribed_contacts_adds_no_one() -> None:
    """Contacts Mailchimp never had as subscribers are refused, with the reason."""
    platform, [row] = read(
        MAILCHIMP + "\nann@example.org,Ann,,,,2,2020-01-01,,,,,,0,0,,,,2023-01-01,1,e1,,\n",
        origin="export/nonsubscribed_members_export_5f1e.csv",
    )
    assert platform == "Mailchimp" and isinstance(row, Rejected)
    assert "non-subscribed" in row.reason


@pytest.mark.parametrize(
    ("text", "origin"),
    [
        (
            "Email Address,First Name,OPTIN_TIME,UNSUB_TIME\nann@example.org,Ann,2020-01-01,\n",
            "unsubscribed_members_export_5f1e.csv",
        ),
        ("email,subscriber_type,creation_date\nann@example.org,regular,2020-01-01\n", "unsubscribers.csv"),
    ],
)
def test_a_file_named_for_those_who_left_keeps_everyone_in_it_off_the_list(text: str, origin: str) -> None:
    """Mailchimp's unsubscribed_ file and Buttondown's unsubscribers.csv: whatever a row says."""
    assert statuses(text, origin) == [S.UNSUBSCRIBED]


# Header, one record with {w} for the status cell, and the words that make a reader, of each
# platform whose status is one cell.
_ONE_CELL = [
    # (Kit's state in lower case, as Kit writes it: with a capital it is a place, as in CA.)
    ("email,first_name,state", "ann@example.org,Ann,{w}", {"active", "confirmed", "cold"}),
    ("email,status,tier", "ann@example.org,{w},free", {"active"}),
    ("email,status,optin_ip", "ann@example.org,{w},", {"active"}),
    ("uuid,email,attributes,status", "u1,ann@example.org,{},{w}", {"enabled"}),
    (
        "email,subscriber_type,creation_date",
        "ann@example.org,{w},2024-01-01",
        {
            "regular",
            "premium",
            "trialed",
            "unpaid",
            "gifted",
            "churning",
            "churned",
            "paused",
            "past_due",
            "upcoming",
            "complimentary",
        },
    ),
    ("id,email,subscribed_to_emails", "1,ann@example.org,{w}", {"true", "yes", "1", "y", "t"}),
    ("email,email_disabled,created_at", "ann@example.org,{w},2024-01-01", {"false", "no", "0", "n", "f"}),
    ("Email 1,Email subscriber status", "ann@example.org,{w}", {"subscribed"}),
]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(_ONE_CELL), st.text(alphabet="abcdeilnorstuvy_ 01TRUEF", max_size=12))
def test_only_a_word_that_means_subscribed_makes_a_reader(case: tuple[str, str, set[str]], word: str) -> None:
    """Whatever the status cell holds, the reader is active only if their platform's word says so."""
    header, record, active = case
    word = word.lower() if header.endswith(",state") else word
    _platform, rows = read(header + "\n" + record.replace("{w}", word) + "\n")
    made_active = [r for r in rows if isinstance(r, SourceRow) and r.status is S.ACTIVE]
    assert not made_active or " ".join(word.lower().split()) in active


def test_an_import_mails_only_the_readers_each_platform_had_as_subscribed(tmp_path: Path) -> None:
    """Through the store: of a Kit export, only the active subscriber is an active reader."""
    engine = open_store(f"sqlite:///{tmp_path / 'publisher.db'}")
    try:
        text = (
            KIT
            + "Ann,ann@example.org,active,2024-01-01T00:00:00Z,\n"
            + "Cy,cy@example.org,cancelled,2024-01-01T00:00:00Z,\n"
            + "Ed,ed@example.org,paused,2024-01-01T00:00:00Z,\n"
        )
        report = subs.import_csv(engine, io.StringIO(text, newline=""), now=NOW, origin="kit.csv")
        assert report.platform == "Kit" and [r.line for r in report.rejected] == [4]
        active = [s.email for s in subs.iter_subscribers(engine) if s.status is S.ACTIVE]
        assert active == ["ann@example.org"]
        assert subs.find(engine, "cy@example.org") is not None
    finally:
        engine.dispose()
