"""Reading platforms' subscriber exports and defusing spreadsheet formulas (pure)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from publisher.errors import SubscriberError
from publisher.models import SubscriberStatus as S
from publisher.store import subscriber_csv
from publisher.store.subscriber_csv import (
    Rejected,
    SourceRow,
    neutralize,
    open_export,
    read_export,
    split_tags,
)


def rows(text: str) -> list[SourceRow | Rejected]:
    return list(read_export(io.StringIO(text, newline=""), origin="t.csv")[1])


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_neutralize_defuses_formula_starts(cell: str) -> None:
    """A cell a spreadsheet would evaluate gets a leading apostrophe."""
    assert neutralize(cell) == "'" + cell


def test_neutralize_leaves_plain_text_alone() -> None:
    """Ordinary names and addresses are written as they are."""
    assert neutralize("Dana Reyes") == "Dana Reyes"
    assert neutralize("a=b@example.org") == "a=b@example.org"


@pytest.mark.parametrize(
    ("cell", "tags"),
    [
        ("a, b", ("a", "b")),
        ('"Lorem Editors","Weekly"', ("Lorem Editors", "Weekly")),
        ("['x', 'y']", ("x", "y")),
        ("", ()),
    ],
)
def test_split_tags_reads_each_platforms_spelling(cell: str, tags: tuple[str, ...]) -> None:
    """Comma lists, Mailchimp's quoted tags and list syntax all give the same tags."""
    assert split_tags(cell) == tags


@pytest.mark.parametrize(
    ("header", "platform"),
    [
        ("Email Address,First Name,Last Name,MEMBER_RATING,TAGS", "Mailchimp"),
        ("email,active_subscription,expiry,email_disabled,created_at", "Substack"),
        ("Email,Name,Subscription type,Activity", "Substack"),
        ("email,subscriber_type,creation_date,notes,tags", "Buttondown"),
        ("id,email,name,note,subscribed_to_emails,labels", "Ghost"),
        ("email,name,status,tags,timezone,created_at", "publisher"),
        ("E-mail,Full Name", "publisher"),
        ("First Name,Last Name,Email 1,Labels,Email subscriber status,Created At (UTC+0)", "Wix"),
    ],
)
def test_platform_is_recognised_by_its_header(header: str, platform: str) -> None:
    """Each platform's export is told apart by the columns it has."""
    assert read_export([header + "\n"], origin="t.csv")[0] == platform


def test_first_and_last_name_are_joined() -> None:
    """Mailchimp's First Name and Last Name become one name."""
    [row] = rows("Email Address,First Name,Last Name\na@example.org, Ana , Ruiz \n")
    assert isinstance(row, SourceRow)
    assert row.name == "Ana Ruiz"


def test_unknown_status_word_is_rejected_with_the_choices() -> None:
    """A status column with an unknown word rejects the row and lists what is known."""
    [row] = rows("email,status\na@example.org,happy\n")
    assert isinstance(row, Rejected)
    assert "unknown status 'happy'" in row.reason
    assert "unsubscribed" in row.reason


def test_status_words_of_other_tools_are_understood() -> None:
    """subscribed, cleaned and unconfirmed map onto our statuses."""
    found = rows("email,status\na@example.org,Subscribed\nb@example.org,cleaned\nc@example.org,unconfirmed\n")
    assert [r.status for r in found if isinstance(r, SourceRow)] == [S.ACTIVE, S.BOUNCED, S.PENDING]


WIX = "First Name,Last Name,Email 1,Labels,Email subscriber status,Language,Created At (UTC+0)\n"


def test_a_wix_contact_is_read_by_its_subscriber_status() -> None:
    """Wix's Subscribed, Unsubscribed and Pending map onto ours, with the name, labels and
    the date the contact was made."""
    found = rows(
        WIX
        + "Cara,Ng,cara@example.com,\"Clinicians, Parents\",Subscribed,en,2024-05-01 10:00:00\n"
        + "Dan,,dan@example.com,,Unsubscribed,en,2024-05-02\n"
        + "Fay,,fay@example.com,,Pending,en,\n"
    )
    assert all(isinstance(r, SourceRow) for r in found), found
    cara, dan, fay = (r for r in found if isinstance(r, SourceRow))
    assert (cara.email, cara.name, cara.tags, cara.status) == (
        "cara@example.com", "Cara Ng", ("Clinicians", "Parents"), S.ACTIVE
    )
    assert cara.consented_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert cara.source == "wix:t.csv"
    assert (dan.status, fay.status) == (S.UNSUBSCRIBED, S.PENDING)


@pytest.mark.parametrize("said", ["Never subscribed", "", "Not set", "NEVER  SUBSCRIBED"])
def test_a_wix_contact_who_never_subscribed_is_refused_with_the_reason(said: str) -> None:
    """A contact who only wrote through the site never agreed to the newsletter: refused,
    never added as a reader."""
    [row] = rows(WIX + f"Eve,,eve@example.com,,{said},en,2024-05-03\n")
    assert isinstance(row, Rejected)
    assert "never subscribed on Wix" in row.reason


def test_an_unknown_wix_status_is_refused_with_the_choices() -> None:
    [row] = rows(WIX + "Eve,,eve@example.com,,Maybe,en,2024-05-03\n")
    assert isinstance(row, Rejected)
    assert "unknown Wix subscriber status 'maybe'" in row.reason and "Never subscribed" in row.reason


@pytest.mark.parametrize(
    "header",
    [
        "Email,First Name,Accepts Email Marketing",  # a shop's customers
        "email,name,Subscription Status",
        "email,unsubscribed",
        "Email,Subscribed",
        "email,name,Marketing consent",
        "email,do_not_email",
    ],
)
def test_a_file_whose_column_says_who_may_be_mailed_but_is_not_understood_is_refused(header: str) -> None:
    """Read as our own export, everyone in it would be mailed: the whole file is refused,
    naming the column and what to do."""
    column = header.rsplit(",", 1)[1]
    with pytest.raises(SubscriberError, match=f"the column '{column}' seems to say who may be mailed") as caught:
        read_export([header + "\n", "a@example.org,A,no\n"], origin="t.csv")
    assert "Nothing was imported" in str(caught.value)


@pytest.mark.parametrize("header", ["email,name,status,tags", "Email,Name,Subscribed On", "email,consent_text"])
def test_our_own_columns_and_plain_dates_are_not_taken_for_permission(header: str) -> None:
    assert read_export([header + "\n"], origin="t.csv")[0] == "publisher"


def test_neutralised_cells_are_read_back_as_written() -> None:
    """An apostrophe that defused a formula is taken off on import."""
    [row] = rows("email,name\n'-x@example.org,'=SUM(A1)\n")
    assert isinstance(row, SourceRow)
    assert (row.email, row.name) == ("-x@example.org", "=SUM(A1)")


def test_line_numbers_count_blank_lines_and_multiline_cells() -> None:
    """Every record knows the line it starts on, as an editor shows it."""
    found = rows('\nemail,name\n\na@example.org,"two\nlines"\nb@example.org,B\n')
    assert [r.line for r in found] == [4, 6]


def test_mailchimp_time_zone_is_best_effort() -> None:
    """A Mailchimp TIMEZONE that is not an IANA zone is dropped, not fatal."""
    found = rows("Email Address,First Name,TIMEZONE\na@example.org,A,Somewhere/Else\n")
    assert isinstance(found[0], SourceRow)
    assert found[0].timezone is None


def test_records_are_read_lazily() -> None:
    """Asking for the first record reads only the first few lines of the file."""
    pulled = 0

    def lines() -> Iterator[str]:
        nonlocal pulled
        yield "email\n"
        for i in range(100_000):
            pulled += 1
            yield f"r{i}@example.org\n"

    _, records = read_export(lines(), origin="t.csv")
    assert isinstance(next(records), SourceRow)
    assert pulled < 10


def test_broken_csv_is_a_rejected_row_with_its_line() -> None:
    """A record the csv module cannot parse is rejected with its line; the others go on."""
    text = "email,name\na@example.org,A\nb@example.org," + "x" * 200_000 + "\nc@example.org,C\n"
    found = rows(text)
    assert [r.email for r in found if isinstance(r, SourceRow)] == ["a@example.org", "c@example.org"]
    (bad,) = [r for r in found if isinstance(r, Rejected)]
    assert bad.line == 3 and bad.reason.startswith("not valid CSV")


def test_unterminated_quote_is_a_rejected_row_never_a_merged_name() -> None:
    """A quote never closed rejects its own row, by line; the next rows keep their names."""
    text = 'email,name\na@example.org,"Ann\nb@example.org,Bob\nc@example.org,"Cy, Jr."\nd@example.org,"Dee\n'
    found = rows(text)
    assert [(r.email, r.name) for r in found if isinstance(r, SourceRow)] == [
        ("b@example.org", "Bob"), ("c@example.org", "Cy, Jr."),
    ]
    assert [str(r) for r in found if isinstance(r, Rejected)] == [
        'line 2: a quote opened on this line is never closed; close it ("...") or remove it',
        'line 5: a quote opened on this line is never closed; close it ("...") or remove it',
    ]


def test_a_quoted_cell_may_still_span_lines() -> None:
    """A real multi-line cell (an address in a notes column) is one record, numbered from its start."""
    text = 'email,name,notes\na@example.org,Ann,"1 Road\nTown"\nb@example.org,"Bob ""B"" Lee",x\n'
    found = rows(text)
    assert [(r.line, r.name) for r in found if isinstance(r, SourceRow)] == [(2, "Ann"), (4, 'Bob "B" Lee')]


@pytest.mark.parametrize("codec", ["latin-1", "cp1252", "utf-16", "utf-16-le", "utf-16-be", "utf-8-sig"])
def test_files_in_other_encodings_import_as_written(codec: str) -> None:
    """Latin-1, Windows-1252 and UTF-16 (with or without BOM) are told apart and read right."""
    names = ["José Müller", "Zoë Ørsted", "Anne-Marie Lefèvre", "Ça Va"]
    if codec != "latin-1":
        names.append("Bob “Bobby” Smith – Jr")
    text = "email,name\r\n" + "".join(f"p{i}@example.org,{n}\r\n" for i, n in enumerate(names))
    with open_export(io.BytesIO(text.encode(codec)), origin="t.csv") as lines:
        _, records = read_export(lines, origin="t.csv")
        assert [r.name for r in records if isinstance(r, SourceRow)] == names


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"PK\x03\x04" + bytes(range(256)) * 4, "not a CSV file but a zip archive or an Excel workbook"),
        (b"\x00\x01\x02\xff\xfe\x00" * 500 + bytes(range(256)), "not a text file"),
    ],
)
def test_binary_file_is_refused_in_one_line(data: bytes, said: str) -> None:
    """A file that is not text is refused with one line naming the file."""
    with pytest.raises(SubscriberError) as caught:
        open_export(io.BytesIO(data), origin="t.csv")
    assert str(caught.value).startswith(f"t.csv: {said}")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("header", "row", "when"),
    [
        ("Email Address,First Name,OPTIN_TIME,CONFIRM_TIME", "a@example.org,A,2021-03-04 05:06:07,2021-03-04 05:09:00",
         datetime(2021, 3, 4, 5, 9, tzinfo=UTC)),
        ("Email Address,First Name,OPTIN_TIME,CONFIRM_TIME", "a@example.org,A,2021-03-04 05:06:07,",
         datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)),
        ("email,active_subscription,email_disabled,created_at", "a@example.org,false,false,2022-01-02T03:04:05.000Z",
         datetime(2022, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("id,email,name,note,subscribed_to_emails,created_at", "1,a@example.org,A,,true,2023-05-06T07:08:09.000Z",
         datetime(2023, 5, 6, 7, 8, 9, tzinfo=UTC)),
    ],
)
def test_consent_date_and_source_are_read(header: str, row: str, when: datetime) -> None:
    """Mailchimp's CONFIRM_TIME (else OPTIN_TIME), Substack's and Ghost's created_at."""
    (found,) = rows(f"{header}\n{row}\n")
    assert isinstance(found, SourceRow)
    assert found.consented_at == when
    assert found.source.endswith(":t.csv")


def test_central_european_file_is_not_taken_for_western() -> None:
    """Windows-1250 (Polish) stays 1250: only a tie goes to Windows-1252."""
    names = ["Łukasz Żółć", "Grzegorz Brzęczyszczykiewicz", "Świętosław Wąż"]
    text = "email,name\r\n" + "".join(f"p{i}@example.org,{name}\r\n" for i, name in enumerate(names))
    with open_export(io.BytesIO(text.encode("cp1250")), origin="t.csv") as lines:
        _, records = read_export(lines, origin="t.csv")
        assert [r.name for r in records if isinstance(r, SourceRow)] == names


# Lines without quotes: cells with delimiters, blanks, NUL, and line breaks at the end or not.
QUOTELESS_LINES = st.tuples(
    st.lists(
        st.text(st.sampled_from(["a", "é", " ", "\t", ",", ";", "\x00", "\r", "\n", "@", "'", "="]), max_size=6),
        max_size=5,
    ).map("".join),
    st.sampled_from(["", "\n", "\r\n", "\r", "\n\n", "\r\r"]),
).map("".join)


@given(line=QUOTELESS_LINES, delimiter=st.sampled_from([",", ";", "\t"]))
def test_a_line_without_quotes_is_split_as_the_csv_module_reads_it(line: str, delimiter: str) -> None:
    """The quick split of a line with no quote gives csv's cells; a line break before the end is left to csv."""
    found = subscriber_csv._split(line, delimiter)
    if found is None:
        body = line[:-2] if line.endswith("\r\n") else line[:-1] if line.endswith(("\r", "\n")) else line
        assert "\r" in body or "\n" in body
    else:
        assert found == next(csv.reader([line], delimiter=delimiter), [])
