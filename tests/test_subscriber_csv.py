"""Reading platforms' subscriber exports and defusing spreadsheet formulas (pure)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from publisher.errors import SubscriberError
from publisher.models import SubscriberStatus as S
from publisher.store.subscriber_csv import Rejected, SourceRow, neutralize, read_export, split_tags


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


def test_broken_csv_names_the_line() -> None:
    """A record the csv module cannot parse stops the import with its line."""
    text = "email,name\na@example.org,A\nb@example.org," + "x" * 200_000 + "\n"
    with pytest.raises(SubscriberError, match=r"t\.csv:3: not valid CSV"):
        rows(text)
