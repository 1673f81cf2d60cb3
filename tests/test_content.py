"""Article files: front matter, Markdown, slugs, ids and the errors an author sees."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from publisher.config import Config, load_config, parse_config
from publisher.content import (
    draft_file_name,
    load_articles,
    new_draft_text,
    parse_article,
    scan_articles,
    slugify,
)
from publisher.errors import ContentError
from publisher.models import Article

ROOT = Path(__file__).resolve().parent.parent
NEW_YORK = ZoneInfo("America/New_York")

CONFIG = """
[publication]
title = "Test Notes"
url = "https://notes.example.org/"
author = "Dana Reyes, LCSW"
timezone = "America/New_York"

[newsletter]
from = "Dana <dana@example.org>"
"""


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return parse_config(CONFIG, root=tmp_path, env={})


def article(
    config: Config, front: str, body: str = "Body text.\n", source: str = "content/post.md"
) -> Article:
    return parse_article(f"---\n{front}---\n\n{body}", source=source, config=config)


def error_of(config: Config, text: str, source: str = "content/x.md") -> str:
    with pytest.raises(ContentError) as info:
        parse_article(text, source=source, config=config)
    return str(info.value)


# Front matter: the good cases


def test_minimal_article(config: Config) -> None:
    """Title and date are enough; everything else has a default."""
    a = article(config, "title: Sleep and worry\ndate: 2026-03-01 09:30\n")
    assert a.title == "Sleep and worry"
    assert a.slug == "post"
    assert a.url == "https://notes.example.org/post/"
    assert a.author == "Dana Reyes, LCSW"
    assert a.tags == ()
    assert a.image is None
    assert a.draft is False
    assert a.updated is None
    assert a.source == "content/post.md"


def test_naive_date_gets_the_publication_zone(config: Config) -> None:
    """A date written without a zone means the publication's local time."""
    a = article(config, "title: T\ndate: 2026-03-01 09:30\n")
    assert a.date == datetime(2026, 3, 1, 9, 30, tzinfo=NEW_YORK)
    assert a.date.utcoffset() is not None


def test_date_only_means_local_midnight(config: Config) -> None:
    """A bare day is midnight at the start of that day in the publication's zone."""
    a = article(config, "title: T\ndate: 2026-07-04\n")
    assert a.date == datetime(2026, 7, 4, tzinfo=NEW_YORK)


def test_explicit_offset_is_respected(config: Config) -> None:
    """A date with its own offset names that instant, shown in the publication's zone."""
    a = article(config, "title: T\ndate: 2026-03-01T12:00:00Z\n")
    assert a.date == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert a.date.tzinfo == NEW_YORK


def test_yaml_timestamp_with_seconds_is_accepted(config: Config) -> None:
    """YAML's own timestamp form works as well as the short one."""
    a = article(config, "title: T\ndate: 2026-03-01 09:30:15\nupdated: 2026-04-01 10:00\n")
    assert a.date == datetime(2026, 3, 1, 9, 30, 15, tzinfo=NEW_YORK)
    assert a.updated == datetime(2026, 4, 1, 10, 0, tzinfo=NEW_YORK)


def test_send_at_is_parsed_like_date(config: Config) -> None:
    """send_at takes the same forms and zone rule as date."""
    a = article(config, "title: T\ndate: 2026-03-01\nsend_at: 2026-03-03 08:00\n")
    assert a.send_at == datetime(2026, 3, 3, 8, 0, tzinfo=NEW_YORK)


def test_tags_as_list(config: Config) -> None:
    """A YAML list of tags keeps its order; repeats (in any case) are dropped."""
    a = article(config, "title: T\ndate: 2026-03-01\ntags: [sleep, Anxiety, anxiety, ' ']\n")
    assert a.tags == ("sleep", "Anxiety")


def test_tags_as_comma_string(config: Config) -> None:
    """A comma-separated line is the same as a list."""
    a = article(config, "title: T\ndate: 2026-03-01\ntags: sleep, anxiety ,grief\n")
    assert a.tags == ("sleep", "anxiety", "grief")


def test_tags_keep_what_was_written(config: Config) -> None:
    """A tag YAML would read as a number or a boolean stays the text the author wrote."""
    a = article(config, "title: T\ndate: 2026-03-01\ntags: [2026, no, 1.50]\n")
    assert a.tags == ("2026", "no", "1.50")


def test_title_keeps_what_was_written(config: Config) -> None:
    """`title: 1984` is the text "1984", not a number."""
    assert article(config, "title: 1984\ndate: 2026-03-01\n").title == "1984"


def test_title_html_stays_literal_text(config: Config) -> None:
    """Markup in a title is text; templates and feeds escape it."""
    a = article(config, "title: \"<script>alert('x')</script> & more\"\ndate: 2026-03-01\n")
    assert a.title == "<script>alert('x')</script> & more"


def test_line_breaks_and_control_characters_leave_title_author_summary(config: Config) -> None:
    """Nothing that could split a mail header survives in one-line fields."""
    a = article(
        config,
        'title: "Line one\\r\\nBcc: x@evil.example\\u0000"\n'
        "date: 2026-03-01\n"
        'author: "Dana\\nReyes"\n'
        "summary: |\n  First line\n  second\tline\n",
    )
    assert a.title == "Line one Bcc: x@evil.example"
    assert a.author == "Dana Reyes"
    assert a.summary == "First line second line"


def test_explicit_author_overrides_publication_author(config: Config) -> None:
    """An article by a guest names its own author."""
    a = article(config, "title: T\ndate: 2026-03-01\nauthor: Sam Ortiz, PhD\n")
    assert a.author == "Sam Ortiz, PhD"


def test_relative_image_becomes_absolute(config: Config) -> None:
    """image: /images/x.jpg resolves against the site."""
    a = article(config, "title: T\ndate: 2026-03-01\nimage: /images/x.jpg\nimage_alt: A lamp\n")
    assert a.image == "https://notes.example.org/images/x.jpg"
    assert a.image_alt == "A lamp"


def test_absolute_image_is_kept(config: Config) -> None:
    """An image on another host stays where it is."""
    a = article(config, "title: T\ndate: 2026-03-01\nimage: https://cdn.example.net/x.jpg\n")
    assert a.image == "https://cdn.example.net/x.jpg"


def test_image_path_with_spaces_is_encoded(config: Config) -> None:
    """image: /images/my photo.jpg becomes a URL feeds and mail clients accept."""
    a = article(config, "title: T\ndate: 2026-03-01\nimage: /images/my photo é.jpg\n")
    assert a.image == "https://notes.example.org/images/my%20photo%20%C3%A9.jpg"


def test_script_image_is_refused(config: Config) -> None:
    """image must be an http(s) URL."""
    message = error_of(config, "---\ntitle: T\ndate: 2026-03-01\nimage: javascript:alert(1)\n---\n")
    assert message.startswith("content/x.md:4: image must be an http(s) URL")


def test_empty_optional_keys_are_ignored(config: Config) -> None:
    """`updated:` with nothing after it is the same as leaving it out."""
    a = article(config, "title: T\ndate: 2026-03-01\nupdated:\ntags:\nimage:\ndraft:\n")
    assert a.updated is None
    assert a.tags == ()
    assert a.image is None
    assert a.draft is False


def test_crlf_and_bom_are_accepted(config: Config) -> None:
    """Files saved by Windows editors parse the same."""
    text = "\ufeff---\r\ntitle: T\r\ndate: 2026-03-01\r\n---\r\n\r\nHello\r\nworld.\r\n"
    a = parse_article(text, source="content/post.md", config=config)
    assert a.title == "T"
    assert a.html == "<p>Hello<br>\nworld.</p>\n"


def test_lone_surrogates_leave_titles_tags_and_summaries(config: Config) -> None:
    """A YAML "\\ud800" escape cannot make text that no UTF-8 page or feed can hold."""
    a = article(config, 'title: "bad \\ud800 one"\ndate: 2026-03-01\nsummary: "s \\udfff"\ntags: ["\\ud83d"]\n')
    assert a.title == "bad one"
    assert a.summary == "s"
    assert a.tags == ()
    a.title.encode("utf-8")


def test_internationalised_host_gives_ascii_id_and_url(tmp_path: Path) -> None:
    """A site on an IDN host gets a valid tag URI and an ASCII article URL."""
    idn = parse_config(CONFIG.replace("notes.example.org", "bücher.example"), root=tmp_path, env={})
    a = article(idn, "title: T\ndate: 2026-03-01\nslug: t\n")
    assert a.id == "tag:xn--bcher-kva.example,2026-03-01:/t"
    assert a.url == "https://xn--bcher-kva.example/t/"


# Front matter: the bad cases, each naming file and line


def test_bad_date_names_file_line_and_forms(config: Config) -> None:
    """An unreadable date says which forms work."""
    message = error_of(config, "---\ntitle: T\ndate: tomorrow\n---\n")
    assert message == (
        "content/x.md:3: date must look like 2026-11-02 or 2026-11-02 09:30, got 'tomorrow'"
    )


def test_impossible_date_is_a_bad_date(config: Config) -> None:
    """A thirteenth month is reported as a bad date, not as a crash."""
    message = error_of(config, "---\ntitle: T\ndate: 2026-13-45\n---\n")
    assert message.startswith("content/x.md:3: date '2026-13-45' is not a real date")
    assert "2026-11-02 09:30" in message


def test_bad_updated_names_its_own_line(config: Config) -> None:
    """The error points at updated, not at date."""
    message = error_of(config, "---\ntitle: T\ndate: 2026-03-01\nupdated: soon\n---\n")
    assert message.startswith("content/x.md:4: updated must look like")


def test_updated_before_date_is_refused(config: Config) -> None:
    """An update cannot precede publication; it is almost always a typo."""
    message = error_of(config, "---\ntitle: T\ndate: 2026-03-01\nupdated: 2026-02-01\n---\n")
    assert message.startswith("content/x.md:4: updated is before date")


def test_broken_yaml_names_the_file_line(config: Config) -> None:
    """YAML's line is shifted by the opening fence, so it matches the file."""
    message = error_of(config, "---\ndate: 2026-03-01\ntitle: Sleep: a guide\n---\n")
    assert message.startswith("content/x.md:3: front matter is not valid YAML")


def test_unclosed_list_names_where_it_opened(config: Config) -> None:
    """One line number: where the list began, not where YAML gave up."""
    message = error_of(config, "---\ntitle: T\ndate: 2026-03-01\ntags: [a, b\ndraft: true\n---\n")
    assert message.startswith("content/x.md:4: front matter is not valid YAML: the flow sequence opened here")
    assert not re.search(r"line \d", message)


def test_unclosed_quote_names_its_line_only(config: Config) -> None:
    """A quote never closed is reported on the line it opened, with no second line number."""
    message = error_of(config, '---\ntitle: "Sleep\ndate: 2026-03-01\ntags: [a]\n---\n')
    assert message.startswith("content/x.md:2: front matter is not valid YAML: a quoted scalar never ends")
    assert not re.search(r"line \d", message)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2026-13-01", "month must be in 1..12"),
        ("2026-02-30", "day is out of range for month"),
        ("2026-12-01 25:00", "hour must be in 0..23"),
    ],
)
def test_impossible_date_says_which_part_is_wrong(config: Config, value: str, reason: str) -> None:
    """A date of the right shape that does not exist names the part out of range."""
    message = error_of(config, f"---\ntitle: T\ndate: {value}\n---\n")
    assert message.startswith(f"content/x.md:3: date '{value}' is not a real date or time: {reason}")


def test_missing_title(config: Config) -> None:
    """An article without a title is refused with the line to add."""
    message = error_of(config, "---\ndate: 2026-03-01\n---\n")
    assert message == "content/x.md:1: front matter has no title; add a line like 'title: My article'"


def test_empty_title(config: Config) -> None:
    """A title of only spaces is the same as none, reported on its line."""
    message = error_of(config, "---\ndate: 2026-03-01\ntitle: '  '\n---\n")
    assert message.startswith("content/x.md:3: title is empty")


def test_title_must_be_text(config: Config) -> None:
    """A list where the title should be is refused."""
    message = error_of(config, "---\ntitle: [a, b]\ndate: 2026-03-01\n---\n")
    assert message.startswith("content/x.md:2: title must be text")


def test_missing_date(config: Config) -> None:
    """An article without a date is refused."""
    message = error_of(config, "---\ntitle: T\n---\n")
    assert message.startswith("content/x.md:1: front matter has no date")


def test_unknown_key_suggests_the_nearest(config: Config) -> None:
    """A typo in a key gets a "did you mean"."""
    message = error_of(config, "---\ntitle: T\ndate: 2026-03-01\ntag: [a]\n---\n")
    assert message == "content/x.md:4: unknown front matter key 'tag'; did you mean 'tags'?"


def test_unknown_key_without_a_near_match_lists_the_keys(config: Config) -> None:
    """A key nothing like a known one lists what is allowed."""
    message = error_of(config, "---\ntitle: T\ndate: 2026-03-01\ncolour: blue\n---\n")
    assert message.startswith("content/x.md:4: unknown front matter key 'colour'; known keys are")
    assert "image_alt" in message


def test_key_set_twice(config: Config) -> None:
    """YAML would silently keep the last value; we ask the author to choose."""
    message = error_of(config, "---\ntitle: A\ndate: 2026-03-01\ntitle: B\n---\n")
    assert message == "content/x.md:4: title is set twice (first on line 2); keep one"


def test_front_matter_must_be_a_mapping(config: Config) -> None:
    """A YAML list instead of key: value lines is refused."""
    message = error_of(config, "---\n- title\n- date\n---\n")
    assert message.startswith("content/x.md:2: front matter must be 'key: value' lines")


def test_missing_closing_fence(config: Config) -> None:
    """Front matter that never ends is reported at its opening line."""
    message = error_of(config, "---\ntitle: T\ndate: 2026-03-01\n\nBody.\n")
    assert message.startswith("content/x.md:1: the front matter opened here is never closed")


def test_missing_opening_fence(config: Config) -> None:
    """A file without front matter says what an article looks like."""
    message = error_of(config, "title: T\ndate: 2026-03-01\n")
    assert message.startswith("content/x.md:1: an article starts with a line '---'")


def test_draft_must_be_a_boolean(config: Config) -> None:
    """draft takes true or false, nothing vaguer."""
    message = error_of(config, "---\ntitle: T\ndate: 2026-03-01\ndraft: maybe\n---\n")
    assert message == "content/x.md:4: draft must be true or false, got 'maybe'"


# Slugs, urls and ids


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Sleep & Anxiety: Don't Panic!", "sleep-and-anxiety-dont-panic"),
        ("Café Straße, Øresund", "cafe-strasse-oresund"),
        ("  --Hello--World--  ", "hello-world"),
        ("Grief After Loss (Part 2)", "grief-after-loss-part-2"),
        ("日本語", "ri-ben-yu"),
        ("Привет мир", "privet-mir"),
        ("🙂", ""),
    ],
)
def test_slugify(title: str, slug: str) -> None:
    """Titles become lower-case ASCII words joined by single hyphens, other scripts transliterated."""
    assert slugify(title) == slug


def test_slugify_caps_length_at_a_word() -> None:
    """Long titles are cut at a hyphen, never leaving one dangling."""
    slug = slugify("word " * 40)
    assert len(slug) <= 80
    assert not slug.endswith("-")
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug)


def test_slug_comes_from_the_file_name_without_its_date(config: Config) -> None:
    """YYYY-MM-DD-slug.md gives slug, so retitling never moves the article."""
    a = article(config, "title: Anything\ndate: 2026-03-01\n", source="content/2026-03-01-my-post.md")
    assert a.slug == "my-post"


def test_slug_comes_from_the_title_when_there_is_no_file(config: Config) -> None:
    """Text that did not come from a .md file takes its slug from the title."""
    a = article(config, "title: Sleep & Worry\ndate: 2026-03-01\n", source="https://old.example/p/1")
    assert a.slug == "sleep-and-worry"


def test_explicit_slug_wins(config: Config) -> None:
    """slug: in the front matter overrides file name and title."""
    a = article(config, "title: T\ndate: 2026-03-01\nslug: chosen-one\n")
    assert a.slug == "chosen-one"
    assert a.url == "https://notes.example.org/chosen-one/"


def test_bad_explicit_slug_suggests_one(config: Config) -> None:
    """A slug with spaces or capitals is refused with a usable suggestion."""
    message = error_of(config, "---\ntitle: T\ndate: 2026-03-01\nslug: My Post/../x\n---\n")
    assert message.startswith("content/x.md:4: slug must be lower-case letters")
    assert "try 'my-post-x'" in message


def test_reserved_slug_is_refused(config: Config) -> None:
    """An article cannot take the address of the feeds folder."""
    message = error_of(config, "---\ntitle: T\ndate: 2026-03-01\nslug: feeds\n---\n")
    assert message.startswith("content/x.md:4: slug 'feeds' is reserved")


def test_titles_in_other_scripts_get_distinct_readable_slugs(config: Config) -> None:
    """Two titles in Chinese, written a minute apart, never share an address."""
    first = article(config, "title: 睡眠与焦虑\ndate: 2026-03-01\n", source="https://old.example/p/1")
    second = article(config, "title: 睡眠与压力\ndate: 2026-03-01\n", source="https://old.example/p/2")
    assert (first.slug, second.slug) == ("shui-mian-yu-jiao-lu", "shui-mian-yu-ya-li")
    now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    assert draft_file_name("Сон и тревога", now, config) != draft_file_name("Сон и стресс", now, config)


def test_title_without_letters_needs_a_slug(config: Config) -> None:
    """When no slug can be made, the author is asked for one."""
    message = error_of(config, "---\ntitle: 🙂\ndate: 2026-03-01\n---\n", source="x")
    assert "add a line like 'slug: my-article'" in message


def test_id_is_a_tag_uri_from_host_first_date_and_slug(config: Config) -> None:
    """Ids follow RFC 4151 and use the publication day in the publication's zone."""
    a = article(config, "title: T\ndate: 2026-03-01 23:30\n")
    assert a.id == "tag:notes.example.org,2026-03-01:/post"


def test_id_survives_edits(config: Config) -> None:
    """Retitling, updating and rewriting an article keeps its id."""
    before = article(config, "title: First\ndate: 2026-03-01\n", "One.\n")
    after = article(
        config, "title: Second\ndate: 2026-03-01\nupdated: 2026-05-01\n", "Two, longer.\n"
    )
    assert before.id == after.id
    assert before.url == after.url



def test_id_survives_a_corrected_date(config: Config) -> None:
    """Moving `date:` keeps the id minted from the file name, so nothing is re-sent as new."""
    source = "content/2026-03-01-sleep.md"
    before = article(config, "title: T\ndate: 2026-03-01 09:00\n", source=source)
    after = article(config, "title: T\ndate: 2026-03-04 18:00\n", source=source)
    assert before.id == after.id == "tag:notes.example.org,2026-03-01:/sleep"
    assert after.date.day == 4

# Markdown


def test_tables_render(config: Config) -> None:
    """Pipe tables become HTML tables, with alignment kept."""
    a = article(config, "title: T\ndate: 2026-03-01\n", "| a | b |\n|:--|--:|\n| 1 | 2 |\n")
    assert "<table>" in a.html
    assert '<td style="text-align:right">2</td>' in a.html


def test_footnotes_render_with_absolute_links(config: Config) -> None:
    """Footnote references and back-links point into the article's page."""
    a = article(config, "title: T\ndate: 2026-03-01\n", "Claim.[^1]\n\n[^1]: Source.\n")
    assert '<sup class="footnote-ref"><a href="https://notes.example.org/post/#fn1"' in a.html
    assert 'class="footnote-item"' in a.html
    assert 'href="https://notes.example.org/post/#fnref1"' in a.html


def test_relative_links_and_images_become_absolute(config: Config) -> None:
    """Links and images work from a feed reader or an email."""
    a = article(
        config,
        "title: T\ndate: 2026-03-01\n",
        "[About](/about/) and [next](../next/)\n\n![A lamp](/images/lamp.jpg)\n",
    )
    assert 'href="https://notes.example.org/about/"' in a.html
    assert 'href="https://notes.example.org/next/"' in a.html
    assert '<img src="https://notes.example.org/images/lamp.jpg" alt="A lamp">' in a.html


def test_hostile_html_in_the_body_is_removed(config: Config) -> None:
    """Raw HTML passes through the sanitiser."""
    body = (
        "<script>alert(1)</script>\n\n"
        '<img src="/x.png" alt="x" onerror="alert(2)">\n\n'
        "[click](javascript:alert(3)) and <a href=\"javascript:alert(4)\">raw</a>\n\n"
        '<iframe src="https://evil.example/"></iframe>\n\n'
        "Safe text.\n"
    )
    a = article(config, "title: T\ndate: 2026-03-01\n", body)
    assert "alert(1)" not in a.html
    assert "onerror" not in a.html
    assert "href=\"javascript" not in a.html
    assert "<a>raw</a>" in a.html
    assert "<iframe" not in a.html
    assert "Safe text." in a.html


def test_no_typographic_replacements_or_linkify(config: Config) -> None:
    """Straight quotes stay straight and bare URLs stay text."""
    a = article(config, "title: T\ndate: 2026-03-01\n", '"Quoted" -- see https://x.example\n')
    assert a.html == '<p>"Quoted" -- see https://x.example</p>\n'


# Summary


def test_summary_defaults_to_the_first_paragraph_text(config: Config) -> None:
    """Markup is dropped and an image-only paragraph is skipped."""
    a = article(
        config,
        "title: T\ndate: 2026-03-01\n",
        "![Lamp](/l.jpg)\n\nSome *kind* of [linked](/x/) `text`[^1].\nNext line.\n\nSecond.\n\n"
        "[^1]: Note.\n",
    )
    assert a.summary == "Some kind of linked text. Next line."


def test_long_first_paragraph_is_shortened_at_a_word(config: Config) -> None:
    """A derived summary stays near 200 characters and ends with an ellipsis."""
    a = article(config, "title: T\ndate: 2026-03-01\n", "alpha beta, " * 60 + "\n")
    assert len(a.summary) <= 201
    assert re.fullmatch(r"(alpha beta, )+alpha( beta)?…", a.summary)


def test_summary_falls_back_to_the_first_text_of_any_kind(config: Config) -> None:
    """An article of headings and lists still gets a summary, from its first text."""
    a = article(config, "title: T\ndate: 2026-03-01\n", "![lead](/x.jpg)\n\n## Why *sleep*\n\n- one\n")
    assert a.summary == "Why sleep"
    assert article(config, "title: T\ndate: 2026-03-01\n", "![only an image](/x.jpg)\n").summary == ""


def test_explicit_summary_is_kept_whole(config: Config) -> None:
    """An author's summary is not shortened."""
    text = "word " * 80
    a = article(config, f"title: T\ndate: 2026-03-01\nsummary: {text}\n")
    assert a.summary == text.strip()


# Drafts and future articles


def test_drafts_and_future_articles_are_not_public(config: Config) -> None:
    """is_public hides drafts and anything dated after now."""
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    past = article(config, "title: T\ndate: 2026-03-01\n")
    draft = article(config, "title: T\ndate: 2026-03-01\ndraft: true\n")
    future = article(config, "title: T\ndate: 2030-01-01\n")
    assert past.is_public(now)
    assert not draft.is_public(now)
    assert not future.is_public(now)


# Size


def test_five_megabyte_article_parses_in_linear_time(config: Config) -> None:
    """A huge article is parsed in seconds, not minutes."""
    paragraph = "Plain words of an ordinary paragraph, " * 20 + "a [link](/x/) and *emphasis*.\n\n"
    body = paragraph * (5_000_000 // len(paragraph))
    started = time.perf_counter()
    a = article(config, "title: Big\ndate: 2026-03-01\n", body)
    elapsed = time.perf_counter() - started
    assert len(a.html) > 5_000_000
    assert elapsed < 30


# New drafts


def test_new_draft_text_round_trips(config: Config) -> None:
    """A new draft parses as is, as a draft dated now in the publication's zone."""
    now = datetime(2026, 11, 2, 14, 30, tzinfo=UTC)
    title = 'Sleep: "why" #1 & more'
    a = parse_article(
        new_draft_text(title, now, config), source="content/whatever.md", config=config
    )
    assert a.title == title
    assert a.draft is True
    assert a.date == datetime(2026, 11, 2, 9, 30, tzinfo=NEW_YORK)
    assert a.slug == "sleep-why-1-and-more"
    assert a.author == "Dana Reyes, LCSW"


def test_draft_file_name(config: Config) -> None:
    """New files are named YYYY-MM-DD-slug.md by the publication's calendar."""
    now = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
    assert draft_file_name("Walking & Mood", now, config) == "2026-11-02-walking-and-mood.md"


def test_new_draft_needs_a_title(config: Config) -> None:
    """An empty title is refused before any file is written."""
    with pytest.raises(ContentError):
        new_draft_text("  \n", datetime(2026, 11, 2, tzinfo=UTC), config)


# Loading a folder


def write(folder: Path, name: str, front: str, body: str = "Body.\n") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\n{front}---\n\n{body}", encoding="utf-8")
    return path


def test_load_articles_newest_first(config: Config, tmp_path: Path) -> None:
    """Articles come back newest first, with their paths relative to the publication."""
    content = tmp_path / "content"
    write(content, "2026-01-01-old.md", "title: Old\ndate: 2026-01-01\n")
    write(content, "2026-05-01-new.md", "title: New\ndate: 2026-05-01\n")
    write(content, "sub/2026-03-01-mid.md", "title: Mid\ndate: 2026-03-01\n")
    articles = load_articles(config)
    assert [a.slug for a in articles] == ["new", "mid", "old"]
    assert articles[1].source == str(Path("content/sub/2026-03-01-mid.md"))


def test_load_articles_skips_hidden_and_underscore_files(config: Config, tmp_path: Path) -> None:
    """Editor backups and notes beside the articles are not articles."""
    content = tmp_path / "content"
    write(content, "2026-01-01-real.md", "title: Real\ndate: 2026-01-01\n")
    (content / "_notes.md").write_text("just notes", encoding="utf-8")
    (content / ".draft.md").write_text("hidden", encoding="utf-8")
    assert [a.slug for a in load_articles(config)] == ["real"]


def test_load_articles_includes_drafts_and_future(config: Config, tmp_path: Path) -> None:
    """Filtering is the caller's job, with is_public."""
    content = tmp_path / "content"
    write(content, "a.md", "title: A\ndate: 2026-01-01\ndraft: true\n")
    write(content, "b.md", "title: B\ndate: 2030-01-01\n")
    assert len(load_articles(config)) == 2


def test_duplicate_slugs_name_both_files(config: Config, tmp_path: Path) -> None:
    """Two articles cannot share an address."""
    content = tmp_path / "content"
    write(content, "2026-01-01-same.md", "title: One\ndate: 2026-01-01\n")
    write(content, "2026-02-01-other.md", "title: Two\ndate: 2026-02-01\nslug: same\n")
    with pytest.raises(ContentError) as info:
        load_articles(config)
    message = str(info.value)
    assert "2026-01-01-same.md" in message
    assert "2026-02-01-other.md" in message
    assert "slug 'same' is already used" in message


def test_scan_articles_reports_every_broken_file(config: Config, tmp_path: Path) -> None:
    """scan_articles keeps the good articles and names each bad file, duplicates included."""
    content = tmp_path / "content"
    write(content, "2026-01-01-good.md", "title: Good\ndate: 2026-01-01\n")
    write(content, "2026-01-02-bad-date.md", "title: Bad\ndate: someday\n")
    write(content, "2026-01-03-twin.md", "title: Twin\ndate: 2026-01-03\nslug: good\n")
    (content / "2026-01-04-latin1.md").write_bytes(b"---\ntitle: caf\xe9\n---\n")
    articles, errors = scan_articles(config)
    assert [a.slug for a in articles] == ["good"]
    messages = [str(e) for e in errors]
    assert messages[0].startswith(str(Path("content/2026-01-02-bad-date.md")) + ":3: date must look like")
    assert "slug 'good' is already used by" in messages[1]
    assert "is not UTF-8 text" in messages[2]
    with pytest.raises(ContentError, match="bad-date"):
        load_articles(config)


def test_index_and_unicode_file_names_give_plain_slugs(config: Config, tmp_path: Path) -> None:
    """An article called "index" and a file name with accents both get ordinary addresses."""
    content = tmp_path / "content"
    write(content, "2026-01-01-index.md", "title: Index\ndate: 2026-01-01\n")
    write(content, "2026-01-02-ünïcode-café.md", "title: Ünïcode\ndate: 2026-01-02\n")
    assert [a.url for a in load_articles(config)] == [
        "https://notes.example.org/unicode-cafe/",
        "https://notes.example.org/index/",
    ]


def test_missing_content_folder(config: Config) -> None:
    """A missing folder names the setting to fix."""
    with pytest.raises(ContentError, match=r"build\.content"):
        load_articles(config)


def test_non_utf8_file_is_named(config: Config, tmp_path: Path) -> None:
    """A file in another encoding is reported, not mis-decoded."""
    content = tmp_path / "content"
    content.mkdir()
    (content / "latin.md").write_bytes("---\ntitle: Caf\xe9\n---\n".encode("latin-1"))
    with pytest.raises(ContentError, match=r"latin\.md: is not UTF-8"):
        load_articles(config)


def test_errors_in_a_folder_name_the_file(config: Config, tmp_path: Path) -> None:
    """A bad article is reported by its path relative to the publication."""
    content = tmp_path / "content"
    write(content, "2026-01-01-bad.md", "title: T\ndate: never\n")
    with pytest.raises(ContentError) as info:
        load_articles(config)
    assert str(info.value).startswith(str(Path("content/2026-01-01-bad.md")) + ":3: date must")


# The shipped sample publication


@pytest.fixture(scope="module")
def shipped() -> list[Article]:
    return load_articles(load_config(ROOT / "config.toml", env={}))


SHIPPED_NOW = datetime(2026, 11, 26, tzinfo=UTC)


def test_shipped_content_parses(shipped: list[Article]) -> None:
    """Every sample article parses, with at least four public ones."""
    public = [a for a in shipped if a.is_public(SHIPPED_NOW)]
    assert len(public) >= 4


def test_shipped_public_articles_have_the_full_shape(shipped: list[Article]) -> None:
    """Each public sample has sections, a numbered reference list, an image and tags."""
    for a in (a for a in shipped if a.is_public(SHIPPED_NOW)):
        assert a.html.count("<h2>") >= 3, a.source
        references = a.html.split("<h2>References</h2>", 1)
        assert len(references) == 2 and references[1].lstrip().startswith("<ol>"), a.source
        assert a.image and a.image.startswith("https://notes.harborlight.example.org/"), a.source
        assert a.image_alt, a.source
        assert a.tags, a.source
        assert a.author == "Dana Reyes, LCSW", a.source


def test_shipped_content_has_an_updated_article(shipped: list[Article]) -> None:
    """One sample shows an update after publication."""
    assert any(a.updated and a.updated > a.date for a in shipped if a.is_public(SHIPPED_NOW))


def test_shipped_draft_and_future_articles_stay_hidden(shipped: list[Article]) -> None:
    """The sample draft and the 2030 article exist but are not public."""
    hidden = [a for a in shipped if not a.is_public(SHIPPED_NOW)]
    assert any(a.draft for a in hidden)
    assert any(a.date.year == 2030 and not a.draft for a in hidden)


def test_shipped_file_names_match_their_dates(shipped: list[Article]) -> None:
    """Sample files are named YYYY-MM-DD-slug.md after their own date."""
    for a in shipped:
        assert Path(a.source).name == f"{a.date:%Y-%m-%d}-{a.slug}.md"


# Bounds: tags and dates that cannot be right


def test_too_many_tags_are_refused(config: Config) -> None:
    """An article with more tags than MAX_TAGS is refused naming the line and the limit."""
    tags = ", ".join(f"t{n}" for n in range(1000))
    message = error_of(config, f"---\ntitle: T\ndate: 2026-01-05\ntags: [{tags}]\n---\nx\n")
    assert message.startswith("content/x.md:4: 1000 tags; an article has at most 20")


def test_twenty_tags_are_fine(config: Config) -> None:
    """MAX_TAGS tags are accepted as written."""
    tags = ", ".join(f"t{n}" for n in range(20))
    assert len(article(config, f"title: T\ndate: 2026-01-05\ntags: [{tags}]\n").tags) == 20


def test_overlong_tag_is_refused(config: Config) -> None:
    """A tag longer than MAX_TAG_LENGTH is refused with its start shown."""
    message = error_of(config, f"---\ntitle: T\ndate: 2026-01-05\ntags: [{'x' * 5000}]\n---\nx\n")
    assert "is 5000 characters long; a tag has at most 50" in message


@pytest.mark.parametrize("value", ["0001-01-01", "0001-01-01 00:30", "1066-10-14", "9999-12-31", "2400-01-01"])
def test_dates_that_cannot_be_right_are_refused(config: Config, value: str) -> None:
    """A date far outside any publication's life is a slip, refused with the line."""
    message = error_of(config, f"---\ntitle: T\ndate: {value}\n---\nx\n")
    assert message.startswith(f"content/x.md:3: date '{value}' cannot be right")


@pytest.mark.parametrize("name", ["2026-02-30-post.md", "2026-13-01-post.md", "0000-01-01-post.md"])
def test_file_name_with_an_impossible_date_is_refused(config: Config, name: str) -> None:
    """A YYYY-MM-DD- file name that names no real day is refused, naming the file."""
    message = error_of(config, "---\ntitle: T\ndate: 2026-02-10\n---\nx\n", source=f"content/{name}")
    assert message.startswith(f"content/{name}: the file name's date")
    assert "is not a real day" in message


def test_control_character_in_front_matter_is_a_content_error(config: Config) -> None:
    """A character YAML refuses to read (here U+001F) is a ContentError with its line, not
    a traceback from the YAML reader."""
    message = error_of(config, "---\ntitle: T\n\x1f: x\ndate: 2026-01-05\n---\nx\n")
    assert message.startswith("content/x.md:3: front matter is not valid YAML")
