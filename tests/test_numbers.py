"""Numbers typed by people and other programs: what `str.isdigit` takes and `int` refuses
("²", more than 4,300 digits) is no number anywhere, never a server error."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from publisher.errors import ContentError
from publisher.numbers import plain_int


@given(st.text(max_size=40))
def test_any_text_is_a_plain_number_or_none(text: str) -> None:
    """Whatever the text, plain_int answers a number it spells in ASCII digits, or None."""
    found = plain_int(text)
    if found is None:
        assert not (text.isascii() and text.isdigit() and 0 < len(text) <= 18)
    else:
        assert found == int(text) and str(found) == text.lstrip("0").rjust(1, "0")


@pytest.mark.parametrize("text", ["\u00b2", "\u2460", "\u0663", "9" * 5000, "9" * 19, "-1", "+1", " 1", "1_000", ""])
def test_what_int_or_isdigit_would_read_differently_is_none(text: str) -> None:
    """A superscript, a circled or Arabic-Indic digit, 5,000 or 19 digits, a sign, a space: None."""
    assert plain_int(text) is None


def test_an_email_picture_with_a_width_of_superscripts_takes_the_column() -> None:
    """An article's `<img width="²">` (pasted HTML) is as wide as the column, not a failed render."""
    from test_newsletter import BODY, make_article, render

    from publisher.mail import newsletter

    body = BODY + '<p><img src="https://example.org/a.jpg" alt="A" width="\u00b2\u00b2"></p>'
    html = render(article=make_article(html=body)).html
    picture = next(tag for tag in html.split("<img")[1:] if 'src="https://example.org/a.jpg"' in tag)
    assert f'width="{newsletter.CONTENT_WIDTH}"' in picture and "\u00b2" not in picture


def test_a_subject_sample_in_superscripts_is_told_with_its_line() -> None:
    """`subject_sample: ²⁰` is the front matter error with its line, not a crash."""
    from test_subject_tests import CONFIG

    from publisher.content.articles import parse_article

    front = 'title: T\ndate: 2026-12-01 08:00\nsubjects: ["A", "B"]\nsubject_sample: "\u00b2\u2070"'
    text = f"---\n{front}\n---\n\nWords.\n"
    with pytest.raises(ContentError) as caught:
        parse_article(text, source="content/t.md", config=CONFIG)
    assert str(caught.value).startswith("content/t.md:5: subject_sample must be a percentage from 1 to 100")
