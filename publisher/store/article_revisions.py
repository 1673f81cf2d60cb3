"""Article revisions: the text of an article as it was, kept per article, newest first.

A revision is the whole file (front matter and body) at one moment, with who wrote it,
when, and how it came: an `autosave` while the author typed, or `saved` when the article
file was written. Rows never touch the article file. An article is keyed by its slug; an
article not yet saved by `new:<draft key>` until `rekey` moves its rows to the slug.
Which rows to keep is the service's rule (`services.revisions`); this module only stores,
lists and deletes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, delete, desc, func, insert, select, update

from publisher.store.engine import begin_write
from publisher.store.schema import article_revisions

__all__ = ["Revision", "RevisionInfo", "add", "delete_ids", "drafts", "get", "latest", "listing", "rekey"]

_INFO = (
    article_revisions.c.id, article_revisions.c.article, article_revisions.c.kind,
    article_revisions.c.author, article_revisions.c.fingerprint, article_revisions.c.words,
    article_revisions.c.created_at,
)


@dataclass(frozen=True, slots=True)
class RevisionInfo:
    """A revision without its text: what a list shows."""

    id: int
    article: str
    kind: str
    author: str
    fingerprint: str
    words: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Revision:
    info: RevisionInfo
    text: str


def _info(row: object) -> RevisionInfo:
    return RevisionInfo(
        id=row.id, article=row.article, kind=row.kind, author=row.author,  # type: ignore[attr-defined]
        fingerprint=row.fingerprint, words=row.words, created_at=row.created_at,  # type: ignore[attr-defined]
    )


def add(
    engine: Engine, article: str, *, kind: str, author: str, text: str, fingerprint: str, words: int,
    now: datetime,
) -> int:
    with begin_write(engine) as conn:
        result = conn.execute(
            insert(article_revisions).values(
                article=article, kind=kind, author=author[:320], text=text, fingerprint=fingerprint,
                words=words, created_at=now,
            )
        )
        (key,) = result.inserted_primary_key or (0,)
    return int(key)


def listing(engine: Engine, article: str) -> list[RevisionInfo]:
    """The article's revisions, newest first (the service keeps them few)."""
    query = (
        select(*_INFO).where(article_revisions.c.article == article)
        .order_by(desc(article_revisions.c.created_at), desc(article_revisions.c.id))
    )
    with engine.connect() as conn:
        return [_info(row) for row in conn.execute(query)]


def latest(engine: Engine, article: str) -> Revision | None:
    query = (
        select(*_INFO, article_revisions.c.text).where(article_revisions.c.article == article)
        .order_by(desc(article_revisions.c.created_at), desc(article_revisions.c.id)).limit(1)
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else Revision(_info(row), row.text)


def get(engine: Engine, revision_id: int) -> Revision | None:
    query = select(*_INFO, article_revisions.c.text).where(article_revisions.c.id == revision_id)
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else Revision(_info(row), row.text)


def drafts(engine: Engine, limit: int = 20) -> list[RevisionInfo]:
    """The newest revision of each article not saved yet (keys `new:...`), newest first."""
    newest = (
        select(func.max(article_revisions.c.id).label("id"))
        .where(article_revisions.c.article.like("new:%"))
        .group_by(article_revisions.c.article)
        .subquery()
    )
    query = (
        select(*_INFO).join(newest, newest.c.id == article_revisions.c.id)
        .order_by(desc(article_revisions.c.created_at)).limit(limit)
    )
    with engine.connect() as conn:
        return [_info(row) for row in conn.execute(query)]


def delete_ids(engine: Engine, ids: Iterable[int]) -> int:
    chosen = list(ids)
    if not chosen:
        return 0
    with begin_write(engine) as conn:
        return conn.execute(delete(article_revisions).where(article_revisions.c.id.in_(chosen))).rowcount


def rekey(engine: Engine, old: str, new: str) -> int:
    """Move every revision of `old` to `new` (a draft's autosaves to the slug it was saved as)."""
    with begin_write(engine) as conn:
        return conn.execute(
            update(article_revisions).where(article_revisions.c.article == old).values(article=new)
        ).rowcount
