"""Exports that try to pass a column of permission off as nothing: refused whole, never all active."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from publisher.errors import SubscriberError
from publisher.models import SubscriberStatus
from publisher.store.subscriber_csv import read_export


def _read(text: str) -> tuple[str, list[object]]:
    platform, rows = read_export(text.splitlines(keepends=True), origin="list.csv")
    return platform, list(rows)


@pytest.mark.parametrize(
    "column",
    [
        "Subscribed to newsletter",
        "Opted in",
        "Opted-In",
        "Email Subscribed",
        "Subscription",
        "Active",
        "Newsletter",
        "Can Email",
        "Allow Email",
        "Receive emails",
        "GDPR",
        "Opted out",
        "Opted-Out",
        "Blocked",
        "Complained",
        "Cancelled",
        "Deleted at",
    ],
)
def test_a_permission_column_of_an_unknown_file_is_refused(column: str) -> None:
    """A yes/no column under any common name stops the import instead of making everyone a reader."""
    with pytest.raises(SubscriberError, match="seems to say who may be mailed"):
        _read(f"Email,{column}\nann@example.com,no\n")


@pytest.mark.parametrize("column", ["Subscribed", "Marketing consent", "Opted in"])
def test_two_common_names_do_not_make_a_permission_column_mailchimps(column: str) -> None:
    """Email Address and First Name alone are no Mailchimp export: its rule would not read the column."""
    with pytest.raises(SubscriberError, match="seems to say who may be mailed"):
        _read(f"Email Address,First Name,{column}\nann@example.com,Ann,no\n")


def test_a_real_mailchimp_export_keeps_its_own_columns() -> None:
    """With Mailchimp's own columns, the file is read by Mailchimp's rule as before."""
    platform, rows = _read("Email Address,First Name,OPTIN_TIME,UNSUB_TIME\nann@example.com,Ann,,2024-01-01\n")
    assert platform == "Mailchimp"
    assert [getattr(r, "status", None) for r in rows] == [SubscriberStatus.UNSUBSCRIBED]


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
@pytest.mark.parametrize("word", ["NEVER SUBSCRIBED", " never  subscribed ", "Not set", ""])
def test_a_wix_contact_who_never_subscribed_is_refused(delimiter: str, word: str) -> None:
    """Case, spacing, BOM and delimiter do not turn a Wix contact into a reader."""
    text = f'\ufeff"Email subscriber status"{delimiter}Email\n{word}{delimiter}ann@example.com\n'
    platform, rows = _read(text)
    assert platform == "Wix"
    assert not [r for r in rows if getattr(r, "status", None) is not None]


_STRONG = {
    "subscribed",
    "subscription",
    "status",
    "consent",
    "active",
    "newsletter",
    "marketing",
    "accepts",
    "unsubscribed",
}
_WORDS = st.sampled_from(
    [
        "email",
        "subscriber",
        "subscribed",
        "subscription",
        "status",
        "opt",
        "in",
        "opted",
        "consent",
        "active",
        "newsletter",
        "marketing",
        "accepts",
        "unsubscribed",
        "wix",
        "to",
        "is",
        "allow",
        "can",
    ]
)


@settings(max_examples=80, deadline=None)
@given(st.lists(_WORDS, min_size=1, max_size=3), st.sampled_from([" ", "_", "-"]), st.booleans())
def test_no_permission_like_header_makes_everyone_active(words: list[str], joiner: str, upper: bool) -> None:
    """A header built of permission words is read by a platform's rule or refused: never ignored."""
    column = joiner.join(words)
    column = column.upper() if upper else column.title()
    assume(_STRONG & set(words))
    try:
        platform, rows = _read(f"Email,{column}\nann@example.com,no\n")
    except SubscriberError:
        return
    active = [r for r in rows if getattr(r, "status", None) == SubscriberStatus.ACTIVE]
    assert not (platform == "publisher" and active), f"{column!r} was ignored: {rows}"
