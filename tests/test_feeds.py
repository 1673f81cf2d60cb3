"""Feeds: golden files, validity as readers see it, and the feedgen quirks handled."""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from xml.etree import ElementTree

import feedparser
import pytest
from feed_rules import feed_problems

from publisher.config import Config, parse_config
from publisher.content import parse_article
from publisher.errors import BuildError, ConfigError
from publisher.models import Article
from publisher.site import feeds

GOLDEN = Path(__file__).parent / "golden" / "feeds"
REGENERATE = os.environ.get("PUBLISHER_REGENERATE_GOLDEN") == "1"
"""Set PUBLISHER_REGENERATE_GOLDEN=1 to rewrite the golden files from the current output."""

SITE = "https://notes.example.org"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ATOM = "{http://www.w3.org/2005/Atom}"
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def xml(data: bytes) -> ElementTree.Element:
    return ElementTree.fromstring(data)  # noqa: S314  (our own output, not untrusted input)


def make_config(**overrides: str) -> Config:
    sections = {
        "publication": {
            "title": '"Harbor Notes"',
            "url": f'"{SITE}/"',
            "description": '"Notes on sleep and recovery."',
            "author": '"Dana Reyes, LCSW"',
            "email": '"notes@example.org"',
            "timezone": '"America/New_York"',
        },
        "feeds": {"entries": "3", "hubs": '["https://hub.example.com/", "https://hub2.example.net/"]'},
        "newsletter": {"from": '"Dana <notes@example.org>"'},
    }
    for key, value in overrides.items():
        section, _, name = key.rpartition(".")
        sections.setdefault(section, {})[name] = value
    text = "\n".join(
        f"[{section}]\n" + "\n".join(f"{k} = {v}" for k, v in values.items()) for section, values in sections.items()
    )
    return parse_config(text, root=Path("/nonexistent"))


def make_article(slug: str, day: int, **fields: object) -> Article:
    date = datetime(2026, 1, day, 14, 30, tzinfo=UTC)
    values: dict[str, object] = {
        "slug": slug,
        "title": slug.replace("-", " ").capitalize(),
        "date": date,
        "html": f"<h2>About {slug}</h2>\n<p>Body of {slug} &amp; more.</p>\n",
        "id": f"tag:notes.example.org,{date:%Y-%m-%d}:/{slug}",
        "url": f"{SITE}/{slug}/",
        "author": "Dana Reyes, LCSW",
        "summary": f"Summary of {slug}.",
        "tags": ("sleep",),
    }
    values.update(fields)
    return Article(**values)  # type: ignore[arg-type]


def sample_articles() -> list[Article]:
    return [
        make_article(
            "night-waking",
            20,
            updated=datetime(2026, 2, 2, 9, 0, tzinfo=UTC),
            tags=("Sleep", "Anxiety"),
            image=f"{SITE}/images/night.jpg",
            image_alt="A window at night",
        ),
        make_article("grief-and-rest", 12, tags=("grief",), author="Sam Ortiz, PhD"),
        make_article("small-steps", 5, tags=("sleep", "habits")),
        make_article("first-note", 1, tags=("sleep",)),
        make_article("a-draft", 25, draft=True),
        make_article("from-the-future", 28, date=NOW + timedelta(days=3)),
    ]


def check_golden(name: str, data: bytes) -> None:
    path = GOLDEN / name
    if REGENERATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    assert data == path.read_bytes(), f"{name} differs; PUBLISHER_REGENERATE_GOLDEN=1 rewrites it"


@pytest.mark.parametrize(
    ("name", "build", "tag"),
    [
        ("rss.xml", feeds.build_rss, None),
        ("atom.xml", feeds.build_atom, None),
        ("feed.json", feeds.build_json, None),
        ("tag-sleep.xml", feeds.build_atom, "sleep"),
    ],
)
def test_golden(name: str, build: feeds.FeedBuilder, tag: str | None) -> None:
    """Each feed matches its reviewed golden file byte for byte."""
    check_golden(name, build(make_config(), sample_articles(), NOW, tag=tag))


@pytest.mark.parametrize("build", [feeds.build_rss, feeds.build_atom])
def test_feedparser_reads_without_bozo(build: feeds.FeedBuilder) -> None:
    """feedparser reads the feed cleanly, with every entry, id, date and author."""
    parsed = feedparser.parse(build(make_config(), sample_articles(), NOW))
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert [e.id for e in parsed.entries] == [a.id for a in sample_articles()[:3]]
    first = parsed.entries[0]
    assert first.title == "Night waking"
    assert first.link == f"{SITE}/night-waking/"
    assert first.author == "Dana Reyes, LCSW"
    assert first.published_parsed[:5] == (2026, 1, 20, 14, 30)
    assert first.updated_parsed[:5] == (2026, 2, 2, 9, 0)
    assert [t.term for t in first.tags] == ["Sleep", "Anxiety"]
    assert first.media_thumbnail == [{"url": f"{SITE}/images/night.jpg"}]


def test_rss_channel_link_is_the_site() -> None:
    """The RSS channel <link> is the home page, not the self or a hub link feedgen added last."""
    root = xml(feeds.build_rss(make_config(), sample_articles(), NOW))
    assert root.findtext("channel/link") == f"{SITE}/"


def test_rss_carries_hub_links() -> None:
    """feedgen drops rel=hub from RSS; the feed still announces every hub after rel=self."""
    channel = xml(feeds.build_rss(make_config(), sample_articles(), NOW))[0]
    links = [(e.get("rel"), e.get("href")) for e in channel.findall(f"{ATOM}link")]
    assert links == [
        ("self", f"{SITE}/feeds/rss.xml"),
        ("hub", "https://hub.example.com/"),
        ("hub", "https://hub2.example.net/"),
    ]


def test_atom_carries_hub_and_self_links() -> None:
    """Atom announces self, each hub and the site as alternate."""
    root = xml(feeds.build_atom(make_config(), sample_articles(), NOW))
    links = {(e.get("rel"), e.get("href")) for e in root.findall(f"{ATOM}link")}
    assert links == {
        ("self", f"{SITE}/feeds/atom.xml"),
        ("hub", "https://hub.example.com/"),
        ("hub", "https://hub2.example.net/"),
        ("alternate", f"{SITE}/"),
    }


def test_no_hubs_no_hub_links() -> None:
    """Without configured hubs no feed mentions a hub."""
    config = make_config(**{"feeds.hubs": "[]"})
    for build in (feeds.build_rss, feeds.build_atom, feeds.build_json):
        assert b"hub" not in build(config, sample_articles(), NOW)


def test_bad_hub_url_is_a_config_error() -> None:
    """A hub that is not an absolute URL is refused with the key named."""
    config = make_config(**{"feeds.hubs": '["hub.example.com"]'})
    with pytest.raises(ConfigError, match=r"\[feeds\] hubs"):
        feeds.build_atom(config, sample_articles(), NOW)


def test_rss_guid_is_the_stable_id_and_not_a_permalink() -> None:
    """RSS guids are the article ids, marked isPermaLink="false"."""
    channel = xml(feeds.build_rss(make_config(), sample_articles(), NOW))[0]
    guid = channel.find("item/guid")
    assert guid is not None
    assert guid.text == sample_articles()[0].id
    assert guid.get("isPermaLink") == "false"


def test_ids_survive_an_edit() -> None:
    """Retitling and revising an article keeps its id in every feed."""
    articles = sample_articles()
    edited = [
        replace(
            articles[0], title="Waking at night", html="<p>New text.</p>", updated=datetime(2026, 2, 20, tzinfo=UTC)
        ),
        *articles[1:],
    ]
    for build in (feeds.build_rss, feeds.build_atom):
        before = feedparser.parse(build(make_config(), articles, NOW)).entries[0]
        after = feedparser.parse(build(make_config(), edited, NOW)).entries[0]
        assert before.id == after.id
        assert before.title != after.title


def test_full_content_and_summary() -> None:
    """Each entry carries the full HTML (escaped in XML) and the plain summary."""
    config = make_config()
    rss = feedparser.parse(feeds.build_rss(config, sample_articles(), NOW)).entries[2]
    atom = feedparser.parse(feeds.build_atom(config, sample_articles(), NOW)).entries[2]
    for entry in (rss, atom):
        assert entry.summary == "Summary of small-steps."
        assert "<h2>About small-steps</h2>" in entry.content[0].value
    raw = feeds.build_rss(config, sample_articles(), NOW)
    assert b"&lt;h2&gt;About small-steps&lt;/h2&gt;" in raw


def test_rss_dates_are_rfc_822() -> None:
    """pubDate and lastBuildDate are RFC 822 dates in UTC."""
    channel = xml(feeds.build_rss(make_config(), sample_articles(), NOW))[0]
    dates = [channel.findtext("lastBuildDate"), *(e.text for e in channel.iter("pubDate"))]
    assert dates[0] == "Mon, 02 Feb 2026 09:00:00 +0000"
    for text in dates:
        assert text is not None
        assert parsedate_to_datetime(text).utcoffset() == timedelta(0)


def test_atom_and_json_dates_are_rfc_3339() -> None:
    """Every Atom and JSON Feed timestamp is RFC 3339."""
    root = xml(feeds.build_atom(make_config(), sample_articles(), NOW))
    stamps = [e.text or "" for tag in ("updated", "published") for e in root.iter(f"{ATOM}{tag}")]
    doc = json.loads(feeds.build_json(make_config(), sample_articles(), NOW))
    stamps += [item[key] for item in doc["items"] for key in ("date_published", "date_modified")]
    assert len(stamps) == 1 + 3 + 3 + 6
    assert all(RFC3339.match(s) for s in stamps), stamps


def test_feed_time_is_newest_modification_not_now() -> None:
    """Building later with the same articles gives the same bytes."""
    config = make_config()
    for build in (feeds.build_rss, feeds.build_atom, feeds.build_json):
        assert build(config, sample_articles(), NOW) == build(config, sample_articles(), NOW + timedelta(days=1))
    root = xml(feeds.build_atom(config, sample_articles(), NOW))
    assert root.findtext(f"{ATOM}updated") == "2026-02-02T09:00:00+00:00"


def test_newest_entries_only() -> None:
    """A feed carries the newest `feeds.entries` articles, newest first."""
    parsed = feedparser.parse(feeds.build_atom(make_config(), sample_articles(), NOW))
    assert [e.link for e in parsed.entries] == [
        f"{SITE}/night-waking/",
        f"{SITE}/grief-and-rest/",
        f"{SITE}/small-steps/",
    ]


def test_drafts_and_future_articles_never_appear() -> None:
    """Even when a caller passes them, drafts and future articles are left out."""
    config = make_config(**{"feeds.entries": "50"})
    for build in (feeds.build_rss, feeds.build_atom, feeds.build_json):
        data = build(config, sample_articles(), NOW)
        assert b"a-draft" not in data
        assert b"from-the-future" not in data
        assert b"first-note" in data


def test_tag_feed_holds_only_that_tag() -> None:
    """A tag feed lists the articles with the tag, in any letter case, and names itself."""
    data = feeds.build_atom(make_config(), sample_articles(), NOW, tag="SLEEP")
    parsed = feedparser.parse(data)
    assert parsed.bozo == 0
    assert [e.link for e in parsed.entries] == [f"{SITE}/night-waking/", f"{SITE}/small-steps/", f"{SITE}/first-note/"]
    assert parsed.feed.title == "Harbor Notes: sleep"
    assert parsed.feed.id == f"{SITE}/feeds/tags/sleep.xml"
    self_links = [ln.href for ln in parsed.feed.links if ln.rel == "self"]
    assert self_links == [f"{SITE}/feeds/tags/sleep.xml"]


def test_tag_feed_time_is_its_own_newest_entry() -> None:
    """A tag feed's updated time comes from its own entries only."""
    root = xml(feeds.build_atom(make_config(), sample_articles(), NOW, tag="grief"))
    assert root.findtext(f"{ATOM}updated") == "2026-01-12T14:30:00+00:00"


def test_site_tags_groups_spellings() -> None:
    """Tags that differ in case share one slug, named by the most used spelling."""
    assert feeds.site_tags(sample_articles()[:4]) == {
        "anxiety": "Anxiety",
        "grief": "grief",
        "habits": "habits",
        "sleep": "sleep",
    }


def test_tag_slug() -> None:
    """Tag slugs are lower-case ASCII words joined by hyphens."""
    assert feeds.tag_slug("Sleep & Rest") == "sleep-rest"
    assert feeds.tag_slug("Café Société") == "cafe-societe"


def test_tag_without_latin_letters_gets_a_stable_ascii_slug() -> None:
    """A tag in another script (or of punctuation only) still names a feed, the same each build."""
    assert re.fullmatch(r"t-[0-9a-f]{10}", feeds.tag_slug("睡眠"))
    assert feeds.tag_slug("睡眠") == feeds.tag_slug(" 睡眠 ") != feeds.tag_slug("不安")
    assert feeds.tag_slug("ΥΠΝΟΣ") == feeds.tag_slug("υπνος")  # letter case still does not matter
    assert feeds.feed_path("atom", "!!!").startswith("feeds/tags/t-")


def test_hostile_title_is_escaped() -> None:
    """Markup in a title is text: escaped in XML, never a live element."""
    hostile = replace(sample_articles()[0], title='<script>alert("x")</script> & <b>bold</b>')
    for build in (feeds.build_rss, feeds.build_atom):
        data = build(make_config(), [hostile], NOW)
        assert b"<script" not in data
        assert b"&lt;script&gt;" in data
        parsed = feedparser.parse(data)
        assert parsed.bozo == 0
        assert "alert" in parsed.entries[0].title
    doc = json.loads(feeds.build_json(make_config(), [hostile], NOW))
    assert doc["items"][0]["title"] == hostile.title


def test_control_characters_cannot_break_the_xml() -> None:
    """Characters XML cannot carry are dropped instead of failing the build."""
    odd = replace(sample_articles()[0], title="Bell\x07 and form\x0cfeed", summary="nul\x00 here")
    for build in (feeds.build_rss, feeds.build_atom):
        parsed = feedparser.parse(build(make_config(), [odd], NOW))
        assert parsed.bozo == 0
        assert parsed.entries[0].title == "Bell and formfeed"


def test_lead_image_in_content_once() -> None:
    """The lead image tops the content, unless the body already shows it."""
    article = sample_articles()[0]
    assert feeds.content_html(article).startswith(
        f'<figure><img src="{SITE}/images/night.jpg" alt="A window at night"></figure>'
    )
    inline = replace(article, html=f'<p><img src="{SITE}/images/night.jpg" alt=""></p>')
    assert feeds.content_html(inline) == inline.html


def test_json_feed_structure() -> None:
    """JSON Feed 1.1 with hubs, authors, language and complete items."""
    doc = json.loads(feeds.build_json(make_config(), sample_articles(), NOW))
    assert doc["version"] == "https://jsonfeed.org/version/1.1"
    assert doc["feed_url"] == f"{SITE}/feeds/feed.json"
    assert doc["home_page_url"] == f"{SITE}/"
    assert doc["language"] == "en"
    assert doc["authors"] == [{"name": "Dana Reyes, LCSW", "url": f"{SITE}/"}]
    assert doc["hubs"] == [
        {"type": "WebSub", "url": "https://hub.example.com/"},
        {"type": "WebSub", "url": "https://hub2.example.net/"},
    ]
    first, second = doc["items"][:2]
    assert set(first) == {
        "id",
        "url",
        "title",
        "content_html",
        "summary",
        "image",
        "date_published",
        "date_modified",
        "authors",
        "tags",
    }
    assert first["image"] == f"{SITE}/images/night.jpg"
    assert first["tags"] == ["Sleep", "Anxiety"]
    assert second["authors"] == [{"name": "Sam Ortiz, PhD"}]
    assert "image" not in second


def test_empty_feed_is_valid_and_stable() -> None:
    """With nothing published the feeds are still valid and do not change between builds."""
    for build in (feeds.build_rss, feeds.build_atom):
        data = build(make_config(), [], NOW)
        assert feedparser.parse(data).bozo == 0
        assert data == build(make_config(), [], NOW + timedelta(hours=1))


def test_atom_always_has_an_author() -> None:
    """Without any author configured the publication's name is the Atom author."""
    config = make_config(**{"publication.author": '""'})
    anonymous = [replace(a, author="") for a in sample_articles()]
    root = xml(feeds.build_atom(config, anonymous, NOW))
    assert root.findtext(f"{ATOM}author/{ATOM}name") == "Harbor Notes"
    assert root.findtext(f"{ATOM}entry/{ATOM}author/{ATOM}name") == "Harbor Notes"


def test_every_uri_is_absolute() -> None:
    """Links, ids and image URLs are absolute URIs."""
    config = make_config(**{"publication.logo": '"/logo.png"'})
    root = xml(feeds.build_atom(config, sample_articles(), NOW))
    uris = [e.get("href") or "" for e in root.iter(f"{ATOM}link")]
    uris += [e.text or "" for tag in ("id", "logo", "icon") for e in root.iter(f"{ATOM}{tag}")]
    uris += [e.get("url") or "" for e in root.iter("{http://search.yahoo.com/mrss/}thumbnail")]
    assert f"{SITE}/logo.png" in uris
    assert all(re.match(r"^(https://|tag:)", u) for u in uris), uris


# The W3C Feed Validation Service's rules (tests/feed_rules.py says which)

FEED_NAMES = {"rss": "rss.xml", "atom": "atom.xml", "json": "feed.json"}


def all_problems(config: Config, articles: list[Article], *, tag: str | None = None) -> list[str]:
    return [
        problem
        for kind, build in feeds.BUILDERS.items()
        for problem in feed_problems(FEED_NAMES[kind], build(config, articles, NOW, tag=tag))
    ]


@pytest.mark.parametrize("name", sorted(p.name for p in GOLDEN.iterdir()))
def test_golden_feeds_obey_the_validator_rules(name: str) -> None:
    """Every reviewed golden feed passes the validator's checks."""
    assert feed_problems(name, (GOLDEN / name).read_bytes()) == []


def test_feeds_obey_the_validator_rules() -> None:
    """Main, tag, logo and hub-less variants all pass the validator's checks."""
    assert all_problems(make_config(), sample_articles()) == []
    assert all_problems(make_config(), sample_articles(), tag="Anxiety") == []
    logo = make_config(**{"publication.logo": '"/logo.png"', "feeds.hubs": "[]", "publication.email": '""'})
    assert all_problems(logo, sample_articles()) == []


def test_empty_feeds_obey_the_validator_rules() -> None:
    """With nothing published every feed is still valid, with a plausible fixed date."""
    assert all_problems(make_config(), []) == []
    channel = xml(feeds.build_rss(make_config(), [], NOW))[0]
    assert channel.findtext("lastBuildDate") == "Sat, 01 Jan 2000 00:00:00 +0000"


def test_the_rules_catch_broken_feeds() -> None:
    """The validator stand-in is not vacuous: it finds each kind of mistake it claims to."""
    rss = feeds.build_rss(make_config(), sample_articles(), NOW).decode()
    broken = (
        rss.replace("<guid isPermaLink=\"false\">tag:notes.example.org,2026-01-12:/grief-and-rest</guid>", "")
        .replace("Mon, 05 Jan 2026", "Tue, 05 Jan 2026")
        .replace("/images/night.jpg\"/>", "/images/night light.jpg\"/>")
        .replace("<language>en</language>", "<language>en_US</language>")
    )
    found = " | ".join(feed_problems("rss.xml", broken.encode()))
    for expected in ("missing guid", "wrong day of the week", "character ' '", "invalid language"):
        assert expected in found
    atom = feeds.build_atom(make_config(), sample_articles(), NOW).decode()
    twice = atom.replace("2026-01-12:/grief-and-rest</id>", "2026-01-20:/night-waking</id>")
    assert "appears 2 times" in " ".join(feed_problems("atom.xml", twice.encode()))
    script = atom.replace("&lt;h2&gt;About small-steps", "&lt;script&gt;x&lt;/script&gt;&lt;h2&gt;About")
    assert "unsafe <script>" in " ".join(feed_problems("atom.xml", script.encode()))
    styled = atom.replace("&lt;h2&gt;About small-steps", "&lt;h2 style=\"background:url(x)\"&gt;About")
    assert "dangerous style" in " ".join(feed_problems("atom.xml", styled.encode()))
    relative = atom.replace("https://notes.example.org/images/night.jpg\" alt", "/images/night.jpg\" alt")
    assert "relative URL '/images/night.jpg'" in " ".join(feed_problems("atom.xml", relative.encode()))


HOSTILE_FRONT = """\
title: "<script>alert('t')</script> & \\"quotes\\" — 🎉 مرحبا بالعالم \\u0007 \\ud800 end"
date: 2026-01-24 09:00
summary: "<img src=x onerror=alert(1)> & <b>bold</b>"
tags: ["<script>", "C++", "C#", "睡眠", "Sleep & Rest", "sleep-rest", "!!!"]
image: /images/my photo.jpg
image_alt: "a \\"lamp\\" <b>"
"""

HOSTILE_BODY = """\
Hello <script>alert(1)</script><img src="a b.png" onerror="x"> [link](<a b.html>)
<a href="javascript:alert(1)">js</a> <iframe src="https://evil.example/"></iframe>
"""


def hostile_article(config: Config, title_repeat: int = 1) -> Article:
    front = HOSTILE_FRONT.replace("end", "very long title " * title_repeat)
    return parse_article(f"---\n{front}---\n\n{HOSTILE_BODY}", source="content/hostile.md", config=config)


def test_hostile_article_gives_valid_feeds() -> None:
    """Markup, quotes, emoji, RTL, control characters, a long title and a spaced image URL
    all pass through parsing into feeds that the validator accepts."""
    config = make_config()
    hostile = hostile_article(config, title_repeat=300)
    articles = [hostile, *sample_articles()]
    assert all_problems(config, articles) == []
    for tag in hostile.tags:
        assert all_problems(config, articles, tag=tag) == []
    parsed = feedparser.parse(feeds.build_atom(config, articles, NOW))
    assert parsed.bozo == 0
    title = "<script>alert('t')</script> & \"quotes\" — 🎉 مرحبا بالعالم very long title very"
    assert parsed.entries[0].title.startswith(title)


def test_rss_description_is_the_plain_summary_escaped() -> None:
    """RSS readers render <description> as HTML, so a summary's markup stays text there."""
    config = make_config()
    hostile = replace(sample_articles()[0], summary="<img src=x onerror=alert(1)> & <b>bold</b>")
    item = xml(feeds.build_rss(config, [hostile], NOW))[0].find("item")
    assert item is not None
    assert item.findtext("description") == "&lt;img src=x onerror=alert(1)&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"
    atom = xml(feeds.build_atom(config, [hostile], NOW))
    assert atom.findtext(f"{ATOM}entry/{ATOM}summary") == hostile.summary
    assert json.loads(feeds.build_json(config, [hostile], NOW))["items"][0]["summary"] == hostile.summary


def test_language_must_be_a_language_tag() -> None:
    """A locale name instead of a language tag is refused with the fix."""
    config = make_config(**{"publication.language": '"en_US"'})
    for build in feeds.BUILDERS.values():
        with pytest.raises(ConfigError, match=r'\[publication\] language: \'en_US\'.*write "en-US"'):
            build(config, sample_articles(), NOW)
    no_language = make_config(**{"publication.language": '""'})
    assert all_problems(no_language, sample_articles()) == []
    assert b"xml:lang" not in feeds.build_atom(no_language, sample_articles(), NOW)


def test_email_must_be_an_address() -> None:
    """publication.email with a name or no @ is refused, naming the key."""
    for value in ('"Dana <dana@example.org>"', '"dana at example.org"'):
        config = make_config(**{"publication.email": value})
        with pytest.raises(ConfigError, match=r"\[publication\] email"):
            feeds.build_rss(config, sample_articles(), NOW)


def test_feed_id_is_canonical() -> None:
    """An upper-case host or a default port in the site URL does not make a non-canonical id."""
    config = make_config(**{"publication.url": '"HTTPS://Notes.Example.org:443/"'})
    root = xml(feeds.build_atom(config, sample_articles(), NOW))
    assert root.findtext(f"{ATOM}id") == "https://notes.example.org/feeds/atom.xml"
    assert all_problems(config, sample_articles()) == []


def test_internationalised_site_gives_ascii_uris(tmp_path: Path) -> None:
    """A site on an IDN host: feed links, ids and logo are ASCII URIs."""
    config = make_config(**{"publication.url": '"https://bücher.example/"', "publication.logo": '"/logo é.png"'})
    article = parse_article("---\ntitle: T\ndate: 2026-01-02\n---\n\nBody.\n", source="t.md", config=config)
    assert all_problems(config, [article]) == []
    doc = json.loads(feeds.build_json(config, [article], NOW))
    assert doc["feed_url"] == "https://xn--bcher-kva.example/feeds/feed.json"
    assert doc["icon"] == "https://xn--bcher-kva.example/logo%20%C3%A9.png"


def test_duplicate_ids_are_refused() -> None:
    """Two entries with one id would collapse into one in readers: the build says which."""
    twin = replace(sample_articles()[1], id=sample_articles()[0].id, source="content/twin.md")
    for build in feeds.BUILDERS.values():
        with pytest.raises(BuildError, match=r"content/twin.md and .* have the same id"):
            build(make_config(), [sample_articles()[0], twin], NOW)


def test_tag_collisions() -> None:
    """Tags spelled differently (not only in case) that share a feed are listed."""
    articles = [
        make_article("a", 1, tags=("C++", "Sleep")),
        make_article("b", 2, tags=("C#", "sleep", "睡眠")),
    ]
    assert feeds.tag_collisions(articles) == [("c", ("C#", "C++"))]


def test_characters_xml_cannot_carry_are_dropped() -> None:
    """A lone surrogate or U+FFFE from elsewhere than content/ cannot break a feed."""
    odd = replace(sample_articles()[0], title="a\ud800b\ufffec", summary="s\udfff")
    for kind in ("rss", "atom"):
        data = feeds.BUILDERS[kind](make_config(), [odd], NOW)
        assert feedparser.parse(data).entries[0].title == "abc"
    doc = json.loads(feeds.build_json(make_config(), [odd], NOW))
    assert doc["items"][0]["title"] == "a?b\ufffec"


def test_author_written_with_an_address_is_split_into_name_and_email() -> None:
    """"Name <email>" is a name and an email in every feed, never an email inside <name>."""
    config = make_config()
    entries = [make_article("by-email", 3, author="Sam Ortiz <sam@example.org>")]
    atom = ElementTree.fromstring(feeds.build_atom(config, entries, NOW))  # noqa: S314  (our own output)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    author = atom.find("a:entry/a:author", ns)
    assert author is not None
    assert (author.findtext("a:name", namespaces=ns), author.findtext("a:email", namespaces=ns)) == (
        "Sam Ortiz", "sam@example.org"
    )
    rss = feeds.build_rss(config, entries, NOW)
    assert b"<dc:creator>Sam Ortiz</dc:creator>" in rss
    assert b"<author>sam@example.org (Sam Ortiz)</author>" in rss
    item = json.loads(feeds.build_json(config, entries, NOW))["items"][0]
    assert item["authors"] == [{"name": "Sam Ortiz", "url": "mailto:sam@example.org"}]
    assert feed_problems("rss.xml", rss) == []
    assert feed_problems("atom.xml", feeds.build_atom(config, entries, NOW)) == []


def test_publication_author_with_an_address_is_split_too() -> None:
    """The feed-level author takes the name part of publication.author."""
    config = make_config(**{"publication.author": '"Dana Reyes <dana@example.org>"'})
    feed = json.loads(feeds.build_json(config, [make_article("one", 3, author="")], NOW))
    assert feed["authors"][0]["name"] == "Dana Reyes"
    assert feed["items"][0]["authors"] == [{"name": "Dana Reyes"}]
