"""Article files (YAML front matter + Markdown) into `Article` values.

`parse_article` is pure: text in, `Article` out, every problem a `ContentError` naming the
file and line. `load_articles` is the edge that reads the content folder. Drafts and
articles dated in the future are returned too; callers filter with `Article.is_public`.

A file looks like this (`date` without a zone means the publication's zone)::

    ---
    title: Sleep and the anxious mind
    date: 2026-02-10 07:30
    tags: [sleep, anxiety]
    ---

    Markdown body: CommonMark, tables, footnotes. Raw HTML is sanitised.

An article has at most `MAX_TAGS` tags of at most `MAX_TAG_LENGTH` characters each (each
tag is a feed of its own, and every feed entry lists them all). Dates lie between the
years `FIRST_YEAR` and `LAST_YEAR`, and a `YYYY-MM-DD-` file name must name a real day.
"""

from __future__ import annotations

import difflib
import errno
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from pathlib import Path, PurePath
from stat import S_ISREG
from typing import Any
from urllib.parse import urljoin, urlsplit

import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.footnote import footnote_plugin
from slugify import slugify as _slugify

from publisher import media
from publisher.config import Config
from publisher.errors import ContentError
from publisher.models import Article
from publisher.sanitize import clean_html, to_uri

__all__ = [
    "FIRST_YEAR",
    "FRONT_MATTER_KEYS",
    "LAST_YEAR",
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "RESERVED_SLUGS",
    "ArticleReader",
    "article_files",
    "content_files",
    "decode_article",
    "draft_file_name",
    "link_refusal",
    "load_articles",
    "new_draft_text",
    "parse_article",
    "read_article",
    "read_content",
    "scan_articles",
    "slugify",
]

FRONT_MATTER_KEYS = (
    "title", "date", "updated", "author", "summary", "tags", "image", "image_alt", "slug",
    "draft", "send_at",
)

RESERVED_SLUGS = frozenset({
    # folders `publisher build` writes
    "feeds", "newsletters", "tags", "page", "assets",
    # the app's routes (publisher.web.app), which answer before any page of the site
    "desk", "api", "manage", "subscribe", "confirm", "unsubscribe", "webhooks", "healthz",
    # names a site or its server commonly keeps for themselves
    "static", "media", "search",
})
"""Slugs that would collide with folders `publisher build` writes or with the app's routes,
or that a web server in front of the site commonly keeps for itself (a test holds this
list to the app's routes and the build's folders)."""

SUMMARY_LENGTH = 200
MAX_TAGS = 20
MAX_TAG_LENGTH = 50
FIRST_YEAR = 1900
LAST_YEAR = 2199
"""Dates outside these years are typing slips (0001-01-01), not publication dates."""

# html stays on (the commonmark preset's default) because authors embed figures and the
# like; the sanitiser decides what survives. No typographer: an author's quotes stay theirs.
_MARKDOWN = (
    MarkdownIt("commonmark", {"typographer": False, "linkify": False, "breaks": True})
    .enable("table")
    .use(footnote_plugin)
)

_OPEN_FENCE = "---"
_CLOSING_FENCE_RE = re.compile(r"^---[ \t]*$", re.MULTILINE)
# Control characters and line separators, and what UTF-8 and XML cannot carry at all:
# lone surrogates (a YAML "\ud800" escape makes one) and the two noncharacters.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")
_SURROGATE_RE = re.compile(r"[\ud800-\udfff]")
_SLUG_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_DATE_PREFIX_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:-|$)")
_DATE_SHAPE_RE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ].*)?")
_DATE_HINT = "2026-11-02 or 2026-11-02 09:30"
# Apostrophes vanish rather than split a word ("don't" is "dont"); "&" is a word.
_SLUG_REPLACEMENTS = (("'", ""), ("’", ""), ("‘", ""), ("`", ""), ("&", " and "))
_FIRST_LINE = 2
"""File line of the front matter's first line: the opening `---` is line 1."""


def slugify(title: str) -> str:
    """The URL-safe form of a title: lower-case ASCII words joined by hyphens, 80 at most.

    Other scripts are transliterated (python-slugify with text-unidecode): "Привет мир"
    is "privet-mir", "睡眠与焦虑" is "shui-mian-yu-jiao-lu", so titles in any language get
    readable, distinct addresses. Returns "" when nothing is left (emoji only); callers
    then ask the author for a `slug:`.
    """
    return str(_slugify(title, max_length=80, word_boundary=True, replacements=_SLUG_REPLACEMENTS))


def _plain(value: str) -> str:
    """One line of text: control characters and line breaks become single spaces.

    Titles, authors and summaries end up in mail headers and feed elements, where a stray
    CR or LF would split a header.
    """
    return " ".join(_CONTROL_RE.sub(" ", value).split())


@dataclass(frozen=True, slots=True)
class _Entry:
    value: Any
    node: yaml.Node
    line: int


class _FrontMatter:
    """The parsed front matter, remembering each key's file line for error messages."""

    def __init__(self, source: str, entries: dict[str, _Entry]) -> None:
        self.source = source
        self.entries = entries

    def error(self, key: str | None, message: str) -> ContentError:
        line = self.entries[key].line if key in self.entries else 1
        return ContentError(f"{self.source}:{line}: {message}")

    def present(self, key: str) -> bool:
        return key in self.entries and self.entries[key].value is not None

    def text(self, key: str) -> str | None:
        """A text value as written: `title: 1984` or `title: yes` stay "1984" and "yes"."""
        if not self.present(key):
            return None
        entry = self.entries[key]
        if isinstance(entry.value, str):
            return entry.value
        if isinstance(entry.node, yaml.ScalarNode):
            return str(entry.node.value)
        raise self.error(key, f"{key} must be text, got a {_kind(entry.value)}; put it in quotes")

    def when(self, key: str, tz: tzinfo) -> datetime | None:
        if not self.present(key):
            return None
        entry = self.entries[key]
        shown = entry.value if isinstance(entry.value, str) else _raw(entry)
        try:
            parsed = _to_datetime(entry.value, tz)
        except OverflowError:  # a zone's offset pushed it past year 1 or 9999
            parsed = None
        except ValueError as exc:
            raise self.error(key, _bad_date(key, shown, exc)) from exc
        if parsed is None:
            raise self.error(key, f"{key} must look like {_DATE_HINT}, got {shown!r}")
        if not FIRST_YEAR <= parsed.year <= LAST_YEAR:
            raise self.error(
                key, f"{key} {shown!r} cannot be right: dates lie between {FIRST_YEAR} and {LAST_YEAR}"
            )
        return parsed


def _bad_date(key: str, shown: str, exc: ValueError) -> str:
    """A date of the right shape that names no real moment: say which part is wrong."""
    if "isoformat" in str(exc):
        return f"{key} must look like {_DATE_HINT}, got {shown!r}"
    return f"{key} {shown!r} is not a real date or time: {exc}; write it like {_DATE_HINT}"


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def _raw(entry: _Entry) -> str:
    return str(entry.node.value) if isinstance(entry.node, yaml.ScalarNode) else _kind(entry.value)


def _to_datetime(value: Any, tz: tzinfo) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and _DATE_SHAPE_RE.fullmatch(value.strip()):
        # Raises ValueError for a month 13 or an hour 25: the caller says which.
        moment = datetime.fromisoformat(value.strip())
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(tz)


def _split(text: str, source: str) -> tuple[str, str]:
    """The front matter's text and the Markdown body."""
    first_end = text.find("\n")
    first = text if first_end < 0 else text[:first_end]
    if first.rstrip(" \t") != _OPEN_FENCE:
        raise ContentError(
            f"{source}:1: an article starts with a line '---', then its front matter "
            f"(title:, date:, ...), then another '---'; the first line is {first[:60]!r}"
        )
    closing = _CLOSING_FENCE_RE.search(text, first_end + 1) if first_end >= 0 else None
    if closing is None:
        raise ContentError(
            f"{source}:1: the front matter opened here is never closed; add a line '---' "
            "after its last key"
        )
    return text[first_end + 1 : closing.start()], text[closing.end() :]


def _yaml_error(exc: yaml.YAMLError, source: str, front: str) -> ContentError:
    line, problem = _yaml_problem(exc)
    position = getattr(exc, "position", None)  # a ReaderError: a character YAML refuses
    marked = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if marked is None and isinstance(position, int):
        line = front.count("\n", 0, position) + _FIRST_LINE
    return ContentError(
        f"{source}:{line}: front matter is not valid YAML: {problem}. Write one "
        "'key: value' per line; put values containing ': ' or '#' in quotes"
    )


_FAST_LOADER: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None) if yaml.__with_libyaml__ else None
"""libyaml's loader, about ten times faster than the pure one, where PyYAML was built with it."""


class _Refused(Exception):
    """libyaml refused the front matter: the pure loader reads it again to word the error."""


def _read_front_matter(front: str, source: str) -> _FrontMatter:
    """The front matter's keys, values and lines.

    libyaml reads valid YAML into the same nodes, marks and values as the pure loader, but
    words its errors and places some of their marks differently. So it reads first, and
    text it refuses is read again by the pure loader, whose error the author gets: one
    wording and one line number, with or without libyaml.
    """
    if _FAST_LOADER is not None:
        try:
            return _front_matter(_FAST_LOADER, front, source)
        except _Refused:
            pass
    return _front_matter(yaml.SafeLoader, front, source)


def _front_matter(kind: type[yaml.SafeLoader], front: str, source: str) -> _FrontMatter:
    fast = kind is not yaml.SafeLoader
    try:
        loader = kind(front)  # the pure loader reads the text at once: control characters fail here
    except yaml.YAMLError as exc:
        if fast:
            raise _Refused from exc
        raise _yaml_error(exc, source, front) from exc
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as exc:
            if fast:
                raise _Refused from exc
            raise _yaml_error(exc, source, front) from exc
        if node is None:
            return _FrontMatter(source, {})
        if not isinstance(node, yaml.MappingNode):
            what = "a list" if isinstance(node, yaml.SequenceNode) else "plain text"
            raise ContentError(
                f"{source}:{node.start_mark.line + _FIRST_LINE}: front matter must be "
                f"'key: value' lines (title:, date:, ...), got {what}"
            )
        entries: dict[str, _Entry] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + _FIRST_LINE
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            if key not in FRONT_MATTER_KEYS:
                guess = difflib.get_close_matches(key, FRONT_MATTER_KEYS, n=1, cutoff=0.6)
                hint = (
                    f"did you mean {guess[0]!r}?" if guess
                    else "known keys are " + ", ".join(FRONT_MATTER_KEYS)
                )
                raise ContentError(f"{source}:{line}: unknown front matter key {key!r}; {hint}")
            if key in entries:
                raise ContentError(
                    f"{source}:{line}: {key} is set twice (first on line {entries[key].line}); "
                    "keep one"
                )
            try:
                value = loader.construct_object(value_node, deep=True)
            except (yaml.YAMLError, ValueError, OverflowError) as exc:
                if fast and isinstance(exc, yaml.YAMLError):
                    raise _Refused from exc  # its marks print without the pure loader's snippet
                shown = value_node.value if isinstance(value_node, yaml.ScalarNode) else key
                if key in ("date", "updated", "send_at"):
                    message = (
                        _bad_date(key, str(shown), exc) if isinstance(exc, ValueError)
                        else f"{key} must look like {_DATE_HINT}, got {shown!r}"
                    )
                else:
                    message = f"{key} cannot be read: {exc}"
                raise ContentError(f"{source}:{line}: {message}") from exc
            entries[key] = _Entry(value, value_node, line)
        return _FrontMatter(source, entries)
    finally:
        loader.dispose()


def _yaml_problem(exc: yaml.YAMLError) -> tuple[int, str]:
    """One file line and one phrase for a YAML error.

    PyYAML gives two marks: where a token began (an opening quote, a bracket) and where the
    parser gave up, often the end of the front matter. The author needs the first for an
    unclosed token ("while scanning ..."), the second for everything else.
    """
    problem_mark = getattr(exc, "problem_mark", None)
    context_mark = getattr(exc, "context_mark", None)
    context = str(getattr(exc, "context", None) or "")
    problem = str(getattr(exc, "problem", None) or str(exc).splitlines()[0])
    mark = problem_mark or context_mark
    if context_mark is not None and (context.startswith("while scanning") or problem_mark is None):
        mark = context_mark
        problem = f"{context.removeprefix('while scanning ')} never ends ({problem})"
    elif context_mark is not None and context.startswith("while parsing a flow"):
        # `tags: [a, b` with no `]`: the list opened here swallows the next lines.
        mark = context_mark
        problem = f"the {context.removeprefix('while parsing a ')} opened here is not closed ({problem})"
    line = mark.line + _FIRST_LINE if mark is not None else _FIRST_LINE
    return line, problem


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


def content_files(folder: Path) -> list[tuple[Path, str]]:
    """Every file under `folder` with its relative POSIX path, sorted, leaving out those
    with a part starting with "." or "_" (editor files, notes).

    A symbolic link (to a file or a folder, inside the folder or out of it) is listed as
    it is, never entered: reading it through `read_content` is refused, and so is copying
    it (`link_refusal` says why). os.scandir, not Path.rglob: a build lists thousands of
    files, and scandir tells a link from a folder without a call of its own.
    """
    found: list[tuple[tuple[str, ...], Path, str]] = []
    pending: list[tuple[str, tuple[str, ...]]] = [(os.fspath(folder), ())]
    while pending:
        top, parts = pending.pop()
        try:
            with os.scandir(top) as entries:
                listed = [(entry.name, entry.path, entry.is_dir(follow_symlinks=False)) for entry in entries]
        except OSError:
            continue  # a folder that cannot be listed has nothing to publish (as os.walk has it)
        for name, path, is_folder in listed:
            if name.startswith((".", "_")):
                continue
            if is_folder:
                pending.append((path, (*parts, name)))
            else:
                found.append(((*parts, name), Path(path), "/".join((*parts, name))))
    found.sort(key=lambda item: item[0])
    return [(path, relative) for _parts, path, relative in found]


def link_refusal(path: Path, shown: str, config: Config) -> ContentError:
    """The error for a symbolic link at `path` (named `shown`) in the content folder.

    Every link is refused, even one that stays inside the folder: telling the two apart
    at every read would race with whoever changes the link, and a link out of it would
    publish whatever it points at (the database, a key, any file on the machine).
    """
    folder = config.path_of("build.content")
    name = _shown_folder(config, folder)
    try:
        target = str(path.readlink())
        resolved = path.resolve()
    except (OSError, RuntimeError):  # gone since, or a loop
        target, resolved = "?", None
    kind = "folder" if resolved is not None and resolved.is_dir() else "file"
    if resolved is None or not resolved.exists():
        where = f"to {target}, which does not exist"
    elif resolved == folder or folder in resolved.parents:
        where = f"to a {kind} inside {name}/ ({target}); even such a link is refused, since a link's target can change"
    else:
        where = f"to a {kind} outside {name}/ ({target}), which the build would publish to anyone"
    return ContentError(
        f"{shown} is a symbolic link {where}: publisher follows no links in the content "
        f"folder, so replace it with the {kind} itself"
    )


def _shown_folder(config: Config, folder: Path) -> str:
    """The content folder as the author knows it: relative to the publication folder."""
    root = config.root.resolve()
    return folder.relative_to(root).as_posix() if root in folder.parents else str(folder)


def read_content(path: Path, source: str, config: Config) -> bytes:
    """A file of the content folder, never through a symbolic link (`link_refusal`) and
    only if it is a regular file (a FIFO would hang the build); ContentError otherwise."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP or path.is_symlink():
            raise link_refusal(path, source, config) from exc
        raise ContentError(f"{source}: cannot be read: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as handle:
        if not S_ISREG(os.fstat(fd).st_mode):
            raise ContentError(f"{source}: is not a regular file; an article or image is a plain file")
        try:
            return handle.read()
        except OSError as exc:
            raise ContentError(f"{source}: cannot be read: {exc.strerror or exc}") from exc


def load_articles(
    config: Config, *, reader: ArticleReader | None = None, files: Sequence[tuple[Path, str]] | None = None
) -> list[Article]:
    """Every article under `build.content`, newest first, drafts and future ones included.

    Files and folders whose names start with "." or "_" are skipped (editor files, notes).
    The first problem found is raised; `scan_articles` collects them all.
    """
    articles, errors = scan_articles(config, reader=reader, files=files)
    if errors:
        raise errors[0]
    return articles


ArticleReader = Callable[[Path, str], Article]
"""Reads one article file (its path, and its name as errors show it) into an `Article`,
raising ContentError: `read_article`, or a cache in front of it."""


def read_article(path: Path, source: str, config: Config) -> Article:
    """One article file read and parsed; every problem a ContentError naming it."""
    return parse_article(decode_article(read_content(path, source, config), source), source=source, config=config)


def decode_article(data: bytes, source: str) -> str:
    """An article file's bytes as text: UTF-8, or a ContentError saying where it is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContentError(f"{source}: is not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc


def article_files(config: Config) -> list[tuple[Path, str]]:
    """Every article file under `build.content`, in order, with its name as errors show it
    (relative to the publication folder). A missing content folder is raised."""
    folder = config.path_of("build.content")
    if not folder.is_dir():
        raise ContentError(
            f"{folder}: no such folder; create it, or set build.content in config.toml to "
            "the folder holding your articles"
        )
    root = f"{config.root.resolve()}{os.sep}"
    found = []
    for path, _relative in content_files(folder):
        if path.name.endswith(".md"):
            full = str(path)
            found.append((path, full[len(root) :] if full.startswith(root) else full))
    return found


def scan_articles(
    config: Config, *, reader: ArticleReader | None = None, files: Sequence[tuple[Path, str]] | None = None
) -> tuple[list[Article], list[ContentError]]:
    """The articles that parse, newest first, and the problem of every file that does not.

    For `publisher check`, which reports every broken file at once. A missing content
    folder is raised, since there is nothing to scan. `reader` reads each file (a build
    passes its cache's, which parses only what changed); `files` are `article_files`, when
    the caller has them already.
    """
    read: ArticleReader = reader or (lambda path, source: read_article(path, source, config))
    articles: list[Article] = []
    errors: list[ContentError] = []
    owners: dict[str, str] = {}
    for path, source in article_files(config) if files is None else files:
        try:
            article = read(path, source)
        except ContentError as exc:
            errors.append(exc)
            continue
        if article.slug in owners:
            errors.append(
                ContentError(
                    f"{source}: slug {article.slug!r} is already used by {owners[article.slug]}; "
                    "give one of them its own 'slug:' in the front matter"
                )
            )
            continue
        owners[article.slug] = source
        articles.append(article)
    articles.sort(key=lambda a: a.slug)
    articles.sort(key=lambda a: a.date, reverse=True)
    return articles, errors


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
