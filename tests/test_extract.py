"""extract: pages and feed items from common blog platforms into clean article Markdown."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from loopback_sites import SITES

from publisher import content
from publisher.config import Config, parse_config
from publisher.content.extract import entry_to_article, feed_to_articles, page_to_article, parse_feed, split_byline
from publisher.errors import SourceError

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
NEW_YORK = ZoneInfo("America/New_York")
WIX_URL = "https://www.tidewatercounseling.example/post/grounding-skills-for-panic"


@pytest.fixture
def config(tmp_path: Path) -> Config:
    text = textwrap.dedent(
        """
        [publication]
        title = "Harbor Notes"
        url = "https://notes.example.org/"
        timezone = "America/New_York"
        [newsletter]
        from = "Notes <notes@example.org>"
        """
    )
    return parse_config(text, root=tmp_path)


def wix_page() -> str:
    return (SITES / "wix/post.html").read_text(encoding="utf-8")


def test_wix_page_keeps_title_and_byline_apart(config: Config) -> None:
    """The "Title: By Name, Credential" heading becomes a title and an author."""
    article = page_to_article(wix_page(), url=WIX_URL, config=config, now=NOW)
    assert article.title == "Grounding Skills for Panic: A Field Guide for Hard Moments"
    assert article.author == "Morgan Ellis, LMFT"


def test_wix_page_dates_from_json_ld_and_the_updated_line(config: Config) -> None:
    """datePublished gives the date; the yearless "Updated: Mar 3" gives this year's update."""
    article = page_to_article(wix_page(), url=WIX_URL, config=config, now=NOW)
    assert article.date == datetime(2024, 1, 22, 15, 4, tzinfo=UTC)
    assert article.updated == datetime(2024, 3, 3, tzinfo=NEW_YORK)


def test_yearless_updated_date_after_now_is_last_years(config: Config) -> None:
    """Wix omits the year for this year's dates, so one later than now belongs to last year."""
    page = wix_page().replace("2024-01-22T15:04:00.000Z", "2023-01-22T15:04:00.000Z")
    article = page_to_article(page, url=WIX_URL, config=config, now=datetime(2024, 2, 1, tzinfo=UTC))
    assert article.updated == datetime(2023, 3, 3, tzinfo=NEW_YORK)


def test_wix_page_keeps_headings_lists_links_images_and_references(config: Config) -> None:
    """The article's structure survives: headings, both lists, links, image and reference list."""
    body = page_to_article(wix_page(), url=WIX_URL, config=config, now=NOW).body
    assert "## Why Grounding Helps During Panic" in body
    assert "### What the Research Says About Breathing" in body
    assert "1. **Paced breathing.**" in body and "5. **Label the wave.**" in body
    assert "- Practise twice a day for five minutes." in body
    assert "[1](https://doi.example.org/10.1000/panic.2019.044)" in body
    assert "[book a consultation](https://www.tidewatercounseling.example/book-online)" in body
    assert (
        "![Stone steps leading down to a quiet harbor at dawn]"
        "(https://www.tidewatercounseling.example/media/a1b2c3_harbor_steps.jpg)"
    ) in body
    assert "## References" in body
    assert "1. Okafor, L., & Brandt, J. (2019)." in body
    assert "3. Adeyemi, R. (2022)." in body


def test_wix_page_metadata_image_and_summary(config: Config) -> None:
    """The cover image and the description come from the page's metadata."""
    article = page_to_article(wix_page(), url=WIX_URL, config=config, now=NOW)
    assert article.image == "https://static.wixstatic.example/media/a1b2c3_lighthouse.jpg"
    assert article.summary.startswith("Five grounding skills")
    assert article.slug == "grounding-skills-for-panic"


@pytest.mark.parametrize(
    "chrome",
    [
        "top of page",
        "bottom of page",  # scroll anchors
        "About Us",
        "Book Online",
        "Log In",  # navigation
        "Facebook",
        "Twitter",
        "LinkedIn",
        "Copy link",
        "Share via",
        "Share Post",  # share buttons
        "112 views",
        "6 min read",  # post stats
        "Comment",
        "Jordan",
        "cold water trick",
        "Write a comment",
        "Publish",
        "Reply",  # comments
        "Rated",
        "No ratings yet",
        "Add a rating",  # ratings
        "cookies",
        "Accept",
        "Decline",  # cookie banner
        "Recent Posts",
        "Sleep and Worry",
        "See All",  # related posts
        "Proudly created",
        "Ferry Road",  # footer
        "pixel.example.com",
        "svSession",
        "viewerModel",
        "SITE_CONTAINER",  # scripts, styles
        "Updated:",
        "By Morgan",  # metadata lines live in the front matter
    ],
)
def test_wix_page_chrome_is_dropped(config: Config, chrome: str) -> None:
    """Nothing of the page around the article reaches the Markdown."""
    body = page_to_article(wix_page(), url=WIX_URL, config=config, now=NOW).body
    assert chrome.lower() not in body.lower()


def test_imported_wix_page_parses_as_an_article(config: Config) -> None:
    """The written text is a valid article file with the extracted values."""
    imported = page_to_article(wix_page(), url=WIX_URL, config=config, now=NOW)
    article = content.parse_article(imported.text(config), source="import.md", config=config)
    assert article.title == imported.title
    assert article.author == "Morgan Ellis, LMFT"
    assert article.date == imported.date
    assert article.updated == imported.updated
    assert article.image == imported.image
    assert '<h2 id="why-grounding-helps-during-panic">' in article.html or "<h2" in article.html
    assert article.html.count("<ol>") == 2
    assert 'src="https://www.tidewatercounseling.example/media/a1b2c3_harbor_steps.jpg"' in article.html


def test_hostile_markup_in_a_page_is_sanitised(config: Config) -> None:
    """Scripts, handlers and javascript: links inside the article body are removed."""
    page = wix_page().replace(
        "<h2>When to Ask",
        '<p>Read <a href="javascript:alert(1)">this</a> <img src="x.png" onerror="alert(2)">'
        '<script>alert(3)</script> and <b onclick="x()">that</b>.</p><h2>When to Ask',
    )
    imported = page_to_article(page, url=WIX_URL, config=config, now=NOW)
    text = imported.text(config)
    html = content.parse_article(text, source="import.md", config=config).html
    for bad in ("javascript:", "alert(", "onerror", "onclick", "<script"):
        assert bad not in text and bad not in html
    assert "Read this" in text


def test_wordpress_page_dates_author_and_tags(config: Config) -> None:
    """A Yoast-style @graph gives dates, author and keywords; categories become tags."""
    page = (SITES / "wordpress/post.html").read_text(encoding="utf-8")
    url = "https://quiethours.example.com/2024/02/12/sleep-and-worry/"
    article = page_to_article(page, url=url, config=config, now=NOW)
    assert article.title == "Sleep and Worry: Breaking the Loop"
    assert article.author == "Priya Natarajan, PsyD"
    assert article.date == datetime(2024, 2, 12, 14, 30, tzinfo=UTC)
    assert article.updated == datetime(2024, 2, 20, 8, 15, tzinfo=UTC)
    assert {"insomnia", "worry"} <= set(article.tags)
    for chrome in (
        "Share this",
        "Like this",
        "Leave a Reply",
        "Alex",
        "Proudly powered",
        "We use cookies",
        "Skip to content",
    ):
        assert chrome not in article.body


def test_wordpress_page_dates_from_meta_tags_alone(config: Config) -> None:
    """Without JSON-LD, article:published_time and article:modified_time are used."""
    page = (SITES / "wordpress/post.html").read_text(encoding="utf-8")
    start = page.index('<script type="application/ld+json"')
    page = page[:start] + page[page.index("</script>", start) + len("</script>") :]
    article = page_to_article(page, url="https://quiethours.example.com/x/", config=config, now=NOW)
    assert article.date == datetime(2024, 2, 12, 14, 30, tzinfo=UTC)
    assert article.updated == datetime(2024, 2, 20, 8, 15, tzinfo=UTC)


def test_ghost_page_keeps_quote_and_numbered_list_and_drops_signup(config: Config) -> None:
    """Ghost's article header, signup calls and read-more cards stay behind."""
    page = (SITES / "ghost/post.html").read_text(encoding="utf-8")
    article = page_to_article(page, url="https://fieldnotes.example.net/ninety-days-in/", config=config, now=NOW)
    assert article.author == "Sam Okoro"
    assert article.tags == ("Recovery",)
    assert "> Progress looks like a quiet Tuesday." in article.body
    assert "1. Skipping the supports that worked." in article.body
    assert article.body.startswith("The third month of recovery")
    for chrome in ("Sign up", "Subscribe", "Enter your email", "Gratitude", "Powered by Ghost", "3 min read"):
        assert chrome not in article.body


def test_a_page_without_article_text_is_refused(config: Config) -> None:
    """A page with nothing to import says so instead of writing an empty article."""
    page = "<html><head><title>Home</title></head><body><nav><a href='/'>Home</a></nav></body></html>"
    with pytest.raises(SourceError, match="no article text"):
        page_to_article(page, url="https://example.org/", config=config, now=NOW)


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Sleep Well: By Dana Reyes, LCSW", ("Sleep Well", "Dana Reyes, LCSW")),
        ("Sleep Well | by Dana Reyes", ("Sleep Well", "Dana Reyes")),
        ("Stand By Me: A Review", ("Stand By Me: A Review", "")),
        ("Passing by the harbor", ("Passing by the harbor", "")),
    ],
)
def test_split_byline(title: str, expected: tuple[str, str]) -> None:
    """Only a byline after a separator is split off the title."""
    assert split_byline(title) == expected


@pytest.mark.parametrize(
    ("feed", "titles"),
    [
        ("wordpress/feed.xml", ["What Happens in a First Session", "Sleep and Worry: Breaking the Loop"]),
        ("wordpress/atom.xml", ["Sleep and Worry: Breaking the Loop"]),
        ("ghost/rss.xml", ["Why I Keep a Gratitude List (and When I Don't)", "Ninety Days In: What Changes"]),
        ("substack/feed.xml", ["Attention Is a Muscle"]),
        (
            "wix/blog-feed.xml",
            ["What Happens in a First Session", "Grounding Skills for Panic: A Field Guide for Hard Moments"],
        ),
    ],
)
def test_platform_feeds_become_articles_oldest_first(config: Config, feed: str, titles: list[str]) -> None:
    """RSS and Atom feeds of each platform give one parseable article per item, oldest first."""
    articles = feed_to_articles(
        (SITES / feed).read_bytes(), url=f"https://feeds.example/{feed}", config=config, now=NOW
    )
    assert [a.title for a in articles] == titles
    for imported in articles:
        content.parse_article(imported.text(config), source=f"{imported.slug}.md", config=config)


def test_atom_entry_has_published_and_updated(config: Config) -> None:
    """Atom's published and updated become date and updated."""
    (article,) = feed_to_articles(
        (SITES / "wordpress/atom.xml").read_bytes(), url="https://q.example/feed/atom/", config=config, now=NOW
    )
    assert article.date == datetime(2024, 2, 12, 14, 30, tzinfo=UTC)
    assert article.updated == datetime(2024, 2, 14, 8, 0, tzinfo=UTC)
    assert article.tags == ("Anxiety", "Sleep")


def test_feed_item_links_resolve_against_the_item_page(config: Config) -> None:
    """Relative links in an item point at the blog, not at wherever the feed was fetched from."""
    articles = feed_to_articles(
        (SITES / "wordpress/feed.xml").read_bytes(), url="http://127.0.0.1:9/feed.xml", config=config, now=NOW
    )
    sleep = next(a for a in articles if a.slug == "sleep-and-worry")
    assert "https://quiethours.example.com/wp-content/uploads/2024/02/notebook-1024x683.jpg" in sleep.body
    assert "[insomnia programme](https://quiethours.example.com/services/insomnia/)" in sleep.body
    assert "127.0.0.1" not in sleep.body


def test_feed_item_image_from_enclosure_and_media(config: Config) -> None:
    """Substack's enclosure and Ghost's media:content give the cover image."""
    (substack,) = feed_to_articles(
        (SITES / "substack/feed.xml").read_bytes(), url="https://s.example/feed", config=config, now=NOW
    )
    assert substack.image == "https://substackcdn.example/image/fetch/w_1200/focus-desk.jpeg"
    ghost = feed_to_articles(
        (SITES / "ghost/rss.xml").read_bytes(), url="https://g.example/rss/", config=config, now=NOW
    )
    assert ghost[1].image == "https://fieldnotes.example.net/content/images/2024/03/sunrise-trail.jpg"


def test_feed_item_without_a_date_gets_now(config: Config) -> None:
    """An undated item is dated when it was first seen."""
    entry = {"id": "x", "title": "Undated", "link": "https://b.example/undated/", "summary": "<p>Hi.</p>"}
    assert entry_to_article(entry, feed_url="https://b.example/feed", config=config, now=NOW).date == NOW


def test_a_web_page_is_not_a_feed() -> None:
    """An HTML page at a feed's address is reported as not a feed, with a hint."""
    with pytest.raises(SourceError, match=r"not an RSS or Atom feed.*/feed"):
        parse_feed((SITES / "broken/not-a-feed.html").read_bytes(), url="https://b.example/")


def test_watched_feed_item_with_hundreds_of_categories_is_trimmed(config: Config) -> None:
    """A feed item's categories become at most MAX_TAGS tags of at most MAX_TAG_LENGTH
    characters, so the article file it becomes can be read back."""
    categories = "".join(f"<category>topic {n}</category>" for n in range(500))
    feed = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><link>https://q.example/</link>'
        f"<item><title>Many tags</title><link>https://q.example/many/</link>"
        f"<category>{'x' * 300}</category>{categories}"
        "<pubDate>Mon, 12 Feb 2024 14:30:00 +0000</pubDate><description>Body.</description></item>"
        "</channel></rss>"
    ).encode()
    (article,) = feed_to_articles(feed, url="https://q.example/feed/", config=config, now=NOW)
    assert article.tags == tuple(f"topic {n}" for n in range(content.MAX_TAGS))
    assert len(content.parse_article(article.text(config), source="content/x.md", config=config).tags) == 20
