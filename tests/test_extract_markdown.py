"""extract.html_to_markdown: imported HTML becomes Markdown that renders to the same text."""

from __future__ import annotations

import html
import textwrap

import fuzz_support  # noqa: F401  (the Hypothesis profile)
import lxml.html
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher import content
from publisher.config import Config, parse_config
from publisher.content.extract import html_to_markdown

BASE = "https://old.example.org/post/"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    text = textwrap.dedent(
        """
        [publication]
        title = "Harbor Notes"
        url = "https://notes.example.org/"
        [newsletter]
        from = "Notes <notes@example.org>"
        """
    )
    return parse_config(text, root=tmp_path_factory.mktemp("pub"))


def rendered(config: Config, markdown: str) -> str:
    """The text a reader sees once our renderer has made the Markdown HTML, spaces evened."""
    article = content.parse_article(f"---\ntitle: T\ndate: 2024-01-01\n---\n\n{markdown}", source="t.md", config=config)
    return " ".join(lxml.html.fragment_fromstring(article.html, create_parent="div").text_content().split())


def round_trip(config: Config, text: str) -> str:
    return rendered(config, html_to_markdown(f"<p>{html.escape(text)}</p>", base_url=BASE))


def test_angle_brackets_in_text_stay_text(config: Config) -> None:
    """"&lt;Saturday&gt;" comes out as "<Saturday>" on the page, not as a tag that vanishes."""
    assert round_trip(config, "Open <Saturday> only") == "Open <Saturday> only"


@pytest.mark.parametrize(
    "text",
    [
        "AT&amp;T and &copy;",
        "use `code` here",
        "[1]: https://example.org/a reference",
        "see [the note](https://example.org/)",
        "1. not a list",
        "# not a heading",
        "> not a quote",
        "*not emphasis*",
        "_not emphasis_",
        "a back\\slash\\*",
        "<!-- not a comment -->",
        "<https://example.org/>",
        "[^1] not a footnote",
    ],
)
def test_markup_in_text_stays_text(config: Config, text: str) -> None:
    """Entities, code, links, reference lines, lists, headings, quotes and emphasis written as text stay text."""
    assert round_trip(config, text) == text


def test_plain_prose_is_not_littered_with_backslashes(config: Config) -> None:
    """Only what Markdown would read as markup is escaped: snake_case, 5 * 3 and a < b stay as written."""
    markdown = html_to_markdown("<p>snake_case, 5 * 3 = 15, a < b, in 2024. Fine.</p>", base_url=BASE)
    assert markdown == "snake_case, 5 * 3 = 15, a < b, in 2024. Fine.\n"


def test_a_code_block_keeps_its_language(config: Config) -> None:
    """<pre><code class="language-python"> becomes a fenced block marked python, its text untouched."""
    markdown = html_to_markdown(
        '<pre><code class="language-python">if a &lt; b_c:\n    print("*")\n</code></pre>', base_url=BASE
    )
    assert markdown == '```python\nif a < b_c:\n    print("*")\n```\n'


def test_a_code_block_without_a_language_is_fenced_plain(config: Config) -> None:
    """A code block that names no language gets a bare fence."""
    assert html_to_markdown("<pre><code>x = 1</code></pre>", base_url=BASE) == "```\nx = 1\n```\n"


# Printable text (no control characters or lone surrogates, which no page carries), rich
# in what Markdown reads as markup.
MARKUP = st.sampled_from([*"<>&*_`[]()!#-+.=~|\\:;/ 1aé", "&amp;", "&#35;", "http://x.org", "\n", "    "])
TEXT = st.lists(
    MARKUP | st.characters(blacklist_categories=("Cc", "Cs", "Co", "Cn")), max_size=40
).map("".join)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXT)
def test_any_text_in_a_paragraph_renders_as_itself(config: Config, text: str) -> None:
    """For any text inside <p>, HTML to Markdown to our renderer's HTML keeps the same text."""
    assert round_trip(config, text) == " ".join(text.split())
