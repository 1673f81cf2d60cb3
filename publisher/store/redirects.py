"""Old addresses of moved-in articles and where they lead now.

An old path is kept in one form (`normal_path`): no trailing slash, percent-escapes
left as they came, and a query only when it is the key WordPress uses
(`/?p=12`, `/?page_id=3`). So `/p/slug`, `/p/slug/` and `/p/slug?utm_source=x` find the
same row. Adding a path that is there already changes nothing: a migration run twice, or
resumed after a kill, never duplicates a row or moves an old address to a second page.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import sqlalchemy as sa

from publisher.numbers import plain_int
from publisher.store.schema import redirects

__all__ = [
    "KEY_QUERIES", "Redirect", "add", "all_redirects", "for_build", "lookup", "normal_path", "recorded", "site_files",
]

KEY_QUERIES = ("p", "page_id", "attachment_id")
"""Query parameters that name a page by themselves (WordPress's plain links)."""


@dataclass(frozen=True, slots=True)
class Redirect:
    old_path: str
    target: str
    source: str


def normal_path(path: str, query: str = "") -> str:
    """`path` (and the key of `query`, if it has one) as the table keeps it; "" if unusable."""
    if "://" in path:
        parts = urlsplit(path)
        path, query = parts.path, parts.query or query
    elif "?" in path:
        path, query = path.split("?", 1)
    if not path.startswith("/"):
        path = "/" + path
    path = path.rstrip("/") or "/"
    keys = [(k, v) for k, v in parse_qsl(query) if k in KEY_QUERIES and plain_int(v) is not None]
    if keys:
        key, value = keys[0]
        return f"{path}?{key}={value}"
    if any(ch in path for ch in "\r\n\t ") or len(path) > 500:
        return ""
    return path


def add(db: sa.Engine, pairs: Iterable[tuple[str, str]], *, source: str, now: datetime) -> int:
    """Record each (old path, target path); a path already recorded is left as it is.

    Returns how many rows were added.
    """
    added = 0
    with db.begin() as conn:
        for old, target in pairs:
            old_path = normal_path(old)
            if not old_path:
                continue
            if conn.execute(sa.select(redirects.c.id).where(redirects.c.old_path == old_path)).first():
                continue
            try:
                with conn.begin_nested():
                    conn.execute(
                        redirects.insert().values(old_path=old_path, target=target, source=source, created_at=now)
                    )
                added += 1
            except sa.exc.IntegrityError:
                continue  # another process recorded it between the look and the insert
    return added


def recorded(db: sa.Engine, paths: Iterable[str]) -> set[str]:
    """Which of `paths` (as `normal_path` gives them) are recorded."""
    wanted = sorted({p for p in paths if p})
    found: set[str] = set()
    with db.connect() as conn:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            query = sa.select(redirects.c.old_path).where(redirects.c.old_path.in_(chunk))
            found.update(str(row[0]) for row in conn.execute(query))
    return found


def lookup(db: sa.Engine, path: str, query: str = "") -> str | None:
    """The target of the old address `path`?`query`, or None."""
    old_path = normal_path(path, query)
    if not old_path:
        return None
    with db.connect() as conn:
        target = conn.execute(sa.select(redirects.c.target).where(redirects.c.old_path == old_path)).scalar()
    return str(target) if target is not None else None


def all_redirects(db: sa.Engine) -> list[Redirect]:
    """Every redirect, by old path."""
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(redirects.c.old_path, redirects.c.target, redirects.c.source).order_by(redirects.c.old_path)
        ).all()
    return [Redirect(str(r[0]), str(r[1]), str(r[2])) for r in rows]


def for_build(url: str) -> list[Redirect]:
    """Every redirect, for a build: none when the database does not exist yet, or is from
    before redirects (a build never creates or migrates the database)."""
    from publisher.config import sqlite_path

    file = sqlite_path(url)
    if file is not None and (file == ":memory:" or not Path(file).is_file()):
        return []
    engine = sa.create_engine(url)
    try:
        return all_redirects(engine)
    except sa.exc.SQLAlchemyError:
        return []
    finally:
        engine.dispose()


def site_files(found: Iterable[Redirect], taken: Iterable[str]) -> dict[str, bytes]:
    """`_redirects` (Netlify and Cloudflare Pages) and a page per old path that sends a
    browser on (meta refresh, canonical link), for a host that serves files only. A path a
    page of the build has already is left to it. Pure."""
    busy = set(taken)
    lines: list[str] = []
    files: dict[str, bytes] = {}
    for item in found:
        path, _, query = item.old_path.partition("?")
        if query:
            lines.append(f"{path} {query} {item.target} 301")  # Netlify's query match
            continue
        lines.append(f"{path} {item.target} 301")
        if path != "/":
            lines.append(f"{path}/ {item.target} 301")
            page = path.strip("/") + "/index.html"
            if page not in busy:
                target = html.escape(item.target, quote=True)
                files[page] = (
                    '<!doctype html>\n<html lang="en"><meta charset="utf-8">'
                    f'<title>Moved</title><link rel="canonical" href="{target}">'
                    f'<meta http-equiv="refresh" content="0; url={target}">'
                    f'<p>This page has moved to <a href="{target}">{target}</a>.</p>\n'
                ).encode()
    if lines and "_redirects" not in busy:
        files["_redirects"] = ("\n".join(lines) + "\n").encode()
    return files
