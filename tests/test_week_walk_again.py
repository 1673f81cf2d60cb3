"""The second pass over a newcomer's week in the desk: what it still found, over HTTP.

Words are counted in the text and not in a pasted document's markup; the desk names
Settings, not config keys; an expired session keeps a schedule, a test copy or a send
for the author to press again, and never carries one out by signing in.
"""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from publisher.services import revisions

WORDS = st.lists(st.text(alphabet=string.ascii_letters, min_size=1, max_size=9), max_size=12)
TAGS = st.sampled_from(["p", "span", "b", "o:p", "div", "h1", "a", "font", "li"])
ATTRIBUTES = st.sampled_from([
    "", ' class="MsoNormal"', " style='mso-fareast-font-family:\"Times New Roman\";color:black'",
    ' href="https://example.org/a-long-address?x=1&amp;y=2"', ' lang="EN-GB" data-x="a > b"',
])


@given(st.lists(st.tuples(WORDS, TAGS, ATTRIBUTES), max_size=8))
def test_words_wrapped_in_tags_count_as_the_words_alone(pieces: list[tuple[list[str], str, str]]) -> None:
    """Random words in random tags with attributes: the count is the number of words."""
    text = "".join(f"<{tag}{attrs}>{' '.join(words)}</{tag}>\n" for words, tag, attrs in pieces)
    assert revisions.count_words(text) == sum(len(words) for words, _, _ in pieces)


def test_a_word_processor_paste_counts_its_words_only() -> None:
    """Comments, styles, empty paragraphs and entities of a Word paste are not words."""
    paste = (
        "<!--[if gte mso 9]><xml><o:OfficeDocumentSettings><o:AllowPNG/></o:OfficeDocumentSettings></xml>"
        "<![endif]--><style>p.MsoNormal {margin:0cm; font-size:11.0pt; font-family:\"Calibri\",sans-serif;}</style>"
        '<p class="MsoNormal" style="margin-bottom:0cm">'
        '<span lang="EN-GB">Grief&nbsp;changes sleep.<o:p></o:p></span></p>'
        '<p class="MsoNormal"><o:p>&nbsp;</o:p></p>'
    )
    assert revisions.count_words(paste) == 3
