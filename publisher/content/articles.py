"""One article file into an `Article`: front matter, Markdown rendered and sanitised, slug and id. Pure.

`parse_article` takes the text and returns the value, or raises ContentError naming the
file and line. An article's id is its host, its first date and its slug, so that an
edit never makes it a new entry in anyone's feed reader. New drafts are made here too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import PurePath
from typing import Any
from urllib.parse import urljoin, urlsplit

import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.footnote import footnote_plugin

from publisher.config import Config
from publisher.content import media
from publisher.content.figures import figure_plugin
from publisher.content.front_matter import (
    _CONTROL_RE,
    _DATE_PREFIX_RE,
    _SLUG_RE,
    _SURROGATE_RE,
    FIRST_YEAR,
    LAST_YEAR,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    RESERVED_SLUGS,
    SUMMARY_LENGTH,
    _FrontMatter,
    _kind,
    _plain,
    _raw,
    _read_front_matter,
    _split,
    slugify,
)
from publisher.content.sanitize import clean_html, to_uri
from publisher.errors import ContentError
from publisher.models import Article
from publisher.numbers import plain_int

__all__ = [
    "SUBJECT_METRICS",
    "SubjectTestSettings",
    "article_id",
    "draft_file_name",
    "new_draft_text",
    "parse_article",
    "subject_test_in",
    "wait_of",
]

SUBJECT_METRICS = ("clicks", "opens")
_WAIT_RE = re.compile(r"^\s*(\d+)\s*(m|min|h|d)\s*$", re.IGNORECASE)
_WAIT_UNITS = {"m": 60, "min": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, slots=True)
class SubjectTestSettings:
    """A subject test written in an article's front matter, checked (None: the default).

        subjects: ["Sleep", "Why night shifts steal sleep"]
        subject_sample: 20       # percent of readers who try the subjects
        subject_wait: 4h         # then the winner goes to the rest
        subject_by: clicks       # or opens
    """

    subjects: tuple[str, ...]
    sample: int | None = None
    wait: timedelta | None = None
    by: str | None = None


def wait_of(text: str) -> timedelta:
    """"30m", "4h", "2d": how long a subject test's sample has; ValueError says what to write."""
    match = _WAIT_RE.match(text or "")
    if not match:
        raise ValueError(f"wait {text!r} is not a duration: give minutes, hours or days, such as 30m, 4h or 1d")
    seconds = int(match.group(1)) * _WAIT_UNITS[match.group(2).lower()]
    if seconds < 600 or seconds > 14 * 86400:
        raise ValueError(f"wait {text!r} must be between 10 minutes and 14 days: readers need time to open")
    return timedelta(seconds=seconds)


# html stays on (the commonmark preset's default) because authors embed figures and the
# like; the sanitiser decides what survives. No typographer: an author's quotes stay theirs.
# A lone picture with a title in quotes is a captioned figure (figures.py).
_MARKDOWN = (
    MarkdownIt("commonmark", {"typographer": False, "linkify": False, "breaks": True})
    .enable("table")
    .use(footnote_plugin)
    .use(figure_plugin)
)


def _inline_text(children: Sequence[Token] | None) -> str:
    parts: list[str] = []
    for child in children or ():
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return "".join(parts)


def _first_paragraph(tokens: Sequence[Token]) -> str:
    """Text of the first top-level paragraph that has any (an image alone does not count).

    An article without one (only headings, lists or quotes) gets its first text of any
    kind instead, so that every feed entry has a summary to show.
    """
    for index, token in enumerate(tokens[:-1]):
        if token.type == "paragraph_open" and token.level == 0:
            text = _plain(_inline_text(tokens[index + 1].children))
            if text:
                return text
    for token in tokens:
        if token.type == "inline":
            text = _plain(_inline_text(token.children))
            if text:
                return text
    return ""


def _shorten(text: str, limit: int = SUMMARY_LENGTH) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit + 1]
    cut = cut.rsplit(" ", 1)[0] if " " in cut else text[:limit]
    return cut.rstrip(" ,;:.-–—") + "…"


def _tags(front: _FrontMatter) -> tuple[str, ...]:
    if not front.present("tags"):
        return ()
    entry = front.entries["tags"]
    raw: list[str]
    if isinstance(entry.value, list) and isinstance(entry.node, yaml.SequenceNode):
        raw = []
        for item_node, item in zip(entry.node.value, entry.value, strict=True):
            if isinstance(item, str):
                raw.append(item)
            elif isinstance(item_node, yaml.ScalarNode) and item is not None:
                raw.append(str(item_node.value))
            elif item is not None:
                raise front.error("tags", f"tags must be words, got a {_kind(item)} in the list")
    elif isinstance(entry.node, yaml.ScalarNode):
        raw = (entry.value if isinstance(entry.value, str) else str(entry.node.value)).split(",")
    else:
        raise front.error("tags", "tags must be a list like [sleep, anxiety] or 'sleep, anxiety'")
    tags: dict[str, str] = {}
    for item in raw:
        tag = _plain(item)
        if len(tag) > MAX_TAG_LENGTH:
            raise front.error(
                "tags", f"tag {tag[:30]!r}… is {len(tag)} characters long; a tag has at most {MAX_TAG_LENGTH}"
            )
        if tag:
            tags.setdefault(tag.casefold(), tag)
    if len(tags) > MAX_TAGS:
        raise front.error(
            "tags", f"{len(tags)} tags; an article has at most {MAX_TAGS}: keep the ones readers would follow"
        )
    return tuple(tags.values())


def _slug(front: _FrontMatter, title: str, source: str) -> str:
    """`slug:` if given, else the file name without its date, else the title.

    The file name comes before the title so that retitling an article never moves its
    address or changes its id.
    """
    given = front.text("slug")
    if given is not None:
        slug = given.strip()
        if not _SLUG_RE.fullmatch(slug):
            suggestion = slugify(slug)
            hint = f"; try {suggestion!r}" if suggestion else ""
            raise front.error(
                "slug", f"slug must be lower-case letters, digits and single hyphens, got {given!r}{hint}"
            )
        where = "slug"
    else:
        name = PurePath(source).name
        stem = name.rsplit(".", 1)[0] if name.endswith((".md", ".markdown")) else ""
        slug = slugify(_DATE_PREFIX_RE.sub("", stem)) or slugify(title)
        if not slug:
            raise front.error(
                "title",
                "cannot make a web address from this title; add a line like "
                "'slug: my-article' to the front matter",
            )
        where = "title"
    if slug in RESERVED_SLUGS:
        raise front.error(
            where,
            f"slug {slug!r} is reserved (the site uses /{slug}/); add a different 'slug:' "
            "to the front matter",
        )
    return slug


def _image(front: _FrontMatter, base_url: str, site: str) -> str | None:
    value = front.text("image")
    if value is None or not value.strip():
        return None
    stored = media.site_url_of(value, site)  # `media/<name>` means the site's, not the page's
    if stored is not None:
        return stored
    # A path with spaces or accents is fine to write; the URL feeds carry is encoded.
    url = "" if _CONTROL_RE.search(value.strip()) else to_uri(urljoin(base_url, value.strip()))
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise front.error(
            "image", f"image must be an http(s) URL or a path like /images/harbor.jpg, got {value!r}"
        )
    return url


def _draft(front: _FrontMatter) -> bool:
    if not front.present("draft"):
        return False
    value = front.entries["draft"].value
    if not isinstance(value, bool):
        raise front.error("draft", f"draft must be true or false, got {_raw(front.entries['draft'])!r}")
    return value


def _first_date(source: str, published: datetime) -> date:
    """The day an article's id is minted from: the file name's date, else its `date:`.

    `publisher new` names files YYYY-MM-DD-slug.md on the day it starts them, and that
    name stays when the author later corrects `date:`, moves a scheduled article or
    changes the publication's time zone. The id must stay too: feed readers would show
    the article again, and the daemon would mail it again, as a new one.
    """
    match = _DATE_PREFIX_RE.match(PurePath(source).name)
    if match:
        day = match.group(0).rstrip("-")
        try:
            named = date.fromisoformat(day)
        except ValueError:
            named = None
        if named is None or not FIRST_YEAR <= named.year <= LAST_YEAR:
            raise ContentError(
                f"{source}: the file name's date {day} is not a real day; rename the file "
                "(YYYY-MM-DD-slug.md, the day it was started)"
            )
        return named
    return published.date()


def article_id(host: str, first_date: date, slug: str) -> str:
    """RFC 4151 tag URI: stays the same when the article is edited or retitled.

    `host` is ASCII (an internationalised host in its IDNA form): a tag URI allows no other.
    """
    return f"tag:{host},{first_date.isoformat()}:/{slug}"


def parse_article(text: str, *, source: str, config: Config) -> Article:
    """Parse one article file's text. Pure: `source` only names the file in errors.

    Linear in the size of the text, so a multi-megabyte article is fine.
    """
    text = text.removeprefix("\ufeff")
    if not text.isascii():
        # Text decoded leniently elsewhere (an import) may carry lone surrogates, which
        # no UTF-8 page, feed or mail can hold.
        text = _SURROGATE_RE.sub("\ufffd", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    front_text, body = _split(text, source)
    front = _read_front_matter(front_text, source)
    tz = config.tz

    raw_title = front.text("title")
    if raw_title is None:
        raise ContentError(
            f"{source}:1: front matter has no title; add a line like 'title: My article'"
        )
    title = _plain(raw_title)
    if not title:
        raise front.error("title", "title is empty; give the article a title")

    published = front.when("date", tz)
    if published is None:
        raise ContentError(
            f"{source}:1: front matter has no date; add a line like 'date: 2026-11-02 09:30'"
        )
    updated = front.when("updated", tz)
    if updated is not None and updated < published:
        raise front.error(
            "updated", "updated is before date; updated is when the article was last revised"
        )

    slug = _slug(front, title, source)
    site = to_uri(config.site_url)
    url = f"{site}/{slug}/"
    env: dict[str, Any] = {}
    tokens = _MARKDOWN.parse(body, env)
    html = clean_html(_MARKDOWN.renderer.render(tokens, _MARKDOWN.options, env), base_url=url)
    # Pictures from the media folder get their sizes and widths here, once per article.
    html = media.fit_images(html, site)

    summary_text = front.text("summary")
    summary = _plain(summary_text) if summary_text is not None else _shorten(_first_paragraph(tokens))
    author_text = front.text("author")
    author = _plain(author_text if author_text is not None else str(config["publication.author"]))
    host = urlsplit(site).hostname or site
    _subject_test(front)  # checked now, with its line; read again when the issue is sent

    return Article(
        slug=slug,
        title=title,
        date=published,
        html=html,
        id=article_id(host, _first_date(source, published), slug),
        url=url,
        author=author,
        summary=summary,
        updated=updated,
        tags=_tags(front),
        image=_image(front, url, site),
        image_alt=_plain(front.text("image_alt") or ""),
        draft=_draft(front),
        send_at=front.when("send_at", tz),
        source=source,
    )


def _subject_test(front: _FrontMatter) -> SubjectTestSettings | None:
    """`subjects:` and its companions, checked; each error names its key and line."""
    extras = [key for key in ("subject_sample", "subject_wait", "subject_by") if front.present(key)]
    if not front.present("subjects"):
        if extras:
            raise front.error(extras[0], f"{extras[0]} goes with subjects: add a line like "
                                         '\'subjects: ["Sleep", "Why night shifts steal sleep"]\'')
        return None
    entry = front.entries["subjects"]
    example = 'subjects: ["Sleep", "Why night shifts steal sleep"]'
    if not isinstance(entry.value, list):
        raise front.error("subjects", f"subjects must be a list of two to four subjects, like {example}")
    subjects: list[str] = []
    for item in entry.value:
        if isinstance(item, (dict, list)) or item is None:
            raise front.error("subjects", f"subjects must be texts, got a {_kind(item)} in the list; write {example}")
        subject = _plain(str(item))
        if not subject:
            raise front.error("subjects", "a subject in subjects is empty; write each one out")
        subjects.append(subject)
    if not 2 <= len(subjects) <= 4:
        raise front.error("subjects", f"subjects: give two to four subjects, not {len(subjects)}")
    if len({s.casefold() for s in subjects}) != len(subjects):
        raise front.error("subjects", "two of the subjects are the same; make each one different")
    sample = None
    if front.present("subject_sample"):
        raw = front.entries["subject_sample"].value
        text = str(raw).strip().removesuffix("%").strip() if not isinstance(raw, bool) else ""
        if not 1 <= (plain_int(text) or 0) <= 100:
            raise front.error("subject_sample", f"subject_sample must be a percentage from 1 to 100, such as 20; "
                                                f"got {_raw(front.entries['subject_sample'])!r}")
        sample = int(text)
    wait = None
    if front.present("subject_wait"):
        try:
            wait = wait_of(str(front.entries["subject_wait"].value))
        except ValueError as exc:
            raise front.error("subject_wait", f"subject_{exc}") from exc
    by = None
    if front.present("subject_by"):
        by = str(front.entries["subject_by"].value).strip().lower()
        if by not in SUBJECT_METRICS:
            raise front.error("subject_by", f"subject_by must be clicks or opens, not {by!r}")
    return SubjectTestSettings(tuple(subjects), sample, wait, by)


def subject_test_in(text: str, *, source: str) -> SubjectTestSettings | None:
    """The subject test an article file's front matter asks for, or None. Pure, like `parse_article`."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    front_text, _ = _split(text, source)
    return _subject_test(_read_front_matter(front_text, source))


def _draft_slug(title: str, now: datetime) -> str:
    return slugify(_plain(title)) or f"article-{now:%Y%m%d-%H%M}"


def draft_file_name(title: str, now: datetime, config: Config) -> str:
    """`YYYY-MM-DD-slug.md` for a new article, the date in the publication's zone."""
    return f"{now.astimezone(config.tz):%Y-%m-%d}-{_draft_slug(title, now)}.md"


def new_draft_text(title: str, now: datetime, config: Config) -> str:
    """The text of a new draft: front matter that parses as is, and a body to replace."""
    clean = _plain(title)
    if not clean:
        raise ContentError("a new article needs a title, e.g. publisher new \"Sleep and anxiety\"")
    local = now.astimezone(config.tz)

    def line(key: str, value: str) -> str:
        return yaml.safe_dump({key: value}, allow_unicode=True, width=1_000_000)

    return (
        "---\n"
        + line("title", clean)
        + f"date: {local:%Y-%m-%d %H:%M}\n"
        + line("author", _plain(str(config["publication.author"])))
        + f"slug: {_draft_slug(clean, now)}\n"
        + "tags: []\n"
        + "# summary: one or two sentences for feeds and the email preview\n"
        + "# image: /images/cover.jpg\n"
        + "# image_alt: what the image shows\n"
        + f"# send_at: {local:%Y-%m-%d} 09:00   # mail it then (`publisher serve` sends it); or `publisher schedule`\n"
        + "draft: true\n"
        + "---\n\n"
        + "The first paragraph becomes the summary in feeds and the email preview.\n\n"
        + "## A section heading\n\n"
        + "Write here. Remove `draft: true` above when the article is ready.\n\n"
        + "## References\n\n"
        + "1. Author, A. (2026). Title of the work. *Journal*, 1(2), 3–4.\n"
    )
