"""An article file's front matter: the YAML between the fences, read into checked values.

Every problem is a ContentError naming the file and line and what to write instead; the
limits (`MAX_TAGS` tags of at most `MAX_TAG_LENGTH` characters, years `FIRST_YEAR` to
`LAST_YEAR`) are the ones every door enforces. libyaml's loader is used where PyYAML has
it, with the same values and messages as the pure one.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Any

import yaml
from slugify import slugify as _slugify

from publisher.errors import ContentError

__all__ = [
    "FIRST_YEAR",
    "FRONT_MATTER_KEYS",
    "LAST_YEAR",
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "RESERVED_SLUGS",
    "SUMMARY_LENGTH",
    "slugify",
]


FRONT_MATTER_KEYS = (
    "title", "date", "updated", "author", "summary", "tags", "image", "image_alt", "slug",
    "draft", "send_at", "subjects", "subject_sample", "subject_wait", "subject_by",
)
RESERVED_SLUGS = frozenset({
    # folders `publisher build` writes
    "feeds", "newsletters", "tags", "page", "assets", "sitemaps",
    # the app's routes (publisher.web.app), which answer before any page of the site
    "desk", "api", "manage", "subscribe", "confirm", "unsubscribe", "webhooks", "healthz",
    "subscribe.json", "subscribe.js", "o", "c",
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
