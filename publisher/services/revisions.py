"""Article revisions: what the author wrote, kept while typing and at each save.

The desk's editor autosaves every few seconds while the text changes, and every save of
the article file is a revision too. Revisions live in the store, never in content/: an
autosave does not write the article file and never touches what is published.

Keys. An article's revisions are keyed by its slug. A new article has no slug until its
first save, so its editor carries a random draft key and autosaves under `new:<key>`;
the first save moves those revisions to the slug (`adopt`). A draft never saved stays
listed under its key (`unsaved_drafts`), so a closed tab loses nothing.

Bounds (`to_prune`, pure): revisions of the last day keep the newest autosave of each
ten minutes, older ones the newest autosave of each day; at most `KEEP_AUTOSAVES`
autosaves and `KEEP_SAVED` saved versions per article, the newest. An autosave whose
text equals the article's newest revision is not stored again.

Restoring is the editor's business: a revision's text goes back into the editor as
unsaved changes, and the author's Save writes it through the normal save path with its
check that nobody changed the file meanwhile.
"""

from __future__ import annotations

import difflib
import hashlib
import html
import math
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from publisher.errors import InvalidRequest, NotFound
from publisher.store import article_revisions as store
from publisher.store.article_revisions import Revision, RevisionInfo

__all__ = [
    "KINDS",
    "DiffRow",
    "Revision",
    "RevisionInfo",
    "adopt",
    "article_key",
    "count_words",
    "get_revision",
    "list_revisions",
    "new_draft_key",
    "reading_minutes",
    "record",
    "side_by_side",
    "to_prune",
    "unsaved_drafts",
]

KINDS = ("autosave", "saved")
KEEP_AUTOSAVES = 40
KEEP_SAVED = 50
RECENT = timedelta(days=1)
RECENT_STEP = timedelta(minutes=10)
MAX_TEXT = 1_000_000
"""Characters: a revision larger than this is refused (a book, not an article)."""
WORDS_PER_MINUTE = 230

_DRAFT_KEY = re.compile(r"[A-Za-z0-9_-]{8,64}")
_FRONT = re.compile(r"\A---[ \t]*\r?\n.*?^---[ \t]*$", re.DOTALL | re.MULTILINE)
_LINK_TARGET = re.compile(r"\]\([^)]*\)")
# HTML in the text (a paste from a word processor brings plenty): comments, the content of
# script/style/xml blocks and every tag with its attributes are markup, not words.
_MARKUP = re.compile(
    r"<!--.*?(?:-->|\Z)|<(script|style|xml)\b[^>]*>.*?(?:</\1\s*>|\Z)"
    r"|<[!?][^<>]*>|</?[A-Za-z][\w:.-]*(?:\s(?:[^<>\"']|\"[^\"]*\"|'[^']*')*)?/?>",
    re.DOTALL | re.IGNORECASE,
)
# A word starts with a letter or digit; the editor's script counts with the same rule.
_WORD = re.compile(r"[^\W_][\w'’-]*")


def new_draft_key() -> str:
    return secrets.token_urlsafe(12)


def article_key(slug: str | None, draft_key: str = "") -> str:
    """Where an article's revisions are kept: its slug, or `new:<draft key>` before it has one."""
    if slug:
        return slug
    if not _DRAFT_KEY.fullmatch(draft_key):
        raise InvalidRequest(
            "draft_key must be 8 to 64 letters, digits, '-' or '_' (the editor sends it); reload the editor"
        )
    return f"new:{draft_key}"


def count_words(text: str) -> int:
    """Words in an article's body: front matter, link addresses and HTML markup (tags,
    attributes, comments, styles) left out; an entity such as `&nbsp;` is its character."""
    body = html.unescape(_MARKUP.sub(" ", _FRONT.sub("", text, count=1)))
    return len(_WORD.findall(_LINK_TARGET.sub("]", body)))


def reading_minutes(words: int) -> int:
    """Minutes to read `words` at an unhurried pace; 0 for an empty text."""
    return math.ceil(words / WORDS_PER_MINUTE) if words else 0


def _fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def to_prune(revisions: Sequence[RevisionInfo], now: datetime) -> list[int]:
    """The ids to delete so that one article's revisions stay within the bounds above."""
    drop: list[int] = []
    seen: set[tuple[str, int]] = set()
    autosaves = saved = 0
    for rev in sorted(revisions, key=lambda r: (r.created_at, r.id), reverse=True):
        if rev.kind == "saved":
            saved += 1
            if saved > KEEP_SAVED:
                drop.append(rev.id)
            continue
        age = now - rev.created_at
        step = RECENT_STEP if age < RECENT else timedelta(days=1)
        bucket = ("recent" if age < RECENT else "old", int(rev.created_at.timestamp() // step.total_seconds()))
        if bucket in seen:
            drop.append(rev.id)
            continue
        seen.add(bucket)
        autosaves += 1
        if autosaves > KEEP_AUTOSAVES:
            drop.append(rev.id)
    return drop


def record(
    db: Engine, article: str, *, kind: str, author: str, text: str, now: datetime
) -> RevisionInfo | None:
    """Keep `text` as a revision of `article`; None when an autosave would repeat the newest.

    InvalidRequest for an unknown kind or a text over `MAX_TEXT` characters.
    """
    if kind not in KINDS:
        raise InvalidRequest(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if len(text) > MAX_TEXT:
        raise InvalidRequest(f"the text is longer than {MAX_TEXT:,} characters; split the article")
    fingerprint = _fingerprint(text)
    newest = store.latest(db, article)
    repeated = newest is not None and newest.info.fingerprint == fingerprint
    if repeated and (kind == "autosave" or (newest is not None and newest.info.kind == "saved")):
        return None
    words = count_words(text)
    key = store.add(db, article, kind=kind, author=author, text=text, fingerprint=fingerprint, words=words, now=now)
    store.delete_ids(db, to_prune(store.listing(db, article), now))
    return RevisionInfo(
        id=key, article=article, kind=kind, author=author, fingerprint=fingerprint, words=words, created_at=now
    )


def adopt(db: Engine, draft_key: str, slug: str) -> int:
    """A new article's first save: its draft's revisions become the slug's. Returns how many."""
    if not _DRAFT_KEY.fullmatch(draft_key):
        return 0
    return store.rekey(db, f"new:{draft_key}", slug)


def list_revisions(db: Engine, article: str) -> list[RevisionInfo]:
    return store.listing(db, article)


def get_revision(db: Engine, revision_id: int) -> Revision:
    found = store.get(db, revision_id)
    if found is None:
        raise NotFound(f"no revision {revision_id}: it may have been merged into a later one")
    return found


def unsaved_drafts(db: Engine) -> list[RevisionInfo]:
    """The newest autosave of each new article never saved, newest first."""
    return store.drafts(db)


@dataclass(frozen=True, slots=True)
class DiffRow:
    """One row of a side-by-side comparison; a number is None where that side has no line."""

    change: str
    """same, changed, removed (only on the left) or added (only on the right)."""
    left_number: int | None
    left: str
    right_number: int | None
    right: str


def side_by_side(old: str, new: str, *, context: int | None = None) -> list[DiffRow]:
    """`old` and `new` line by line, aligned (difflib); with `context`, unchanged runs are
    cut to that many lines around each change."""
    a, b = old.splitlines(), new.splitlines()
    rows: list[DiffRow] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    groups = [matcher.get_opcodes()] if context is None else list(matcher.get_grouped_opcodes(context))
    for group in groups:
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                pairs = zip(range(i1, i2), range(j1, j2), strict=True)
                rows.extend(DiffRow("same", i + 1, a[i], j + 1, b[j]) for i, j in pairs)
                continue
            left, right = list(range(i1, i2)), list(range(j1, j2))
            for n in range(max(len(left), len(right))):
                i = left[n] if n < len(left) else None
                j = right[n] if n < len(right) else None
                change = "changed" if i is not None and j is not None else ("removed" if j is None else "added")
                rows.append(DiffRow(
                    change,
                    None if i is None else i + 1, "" if i is None else a[i],
                    None if j is None else j + 1, "" if j is None else b[j],
                ))
    return rows
