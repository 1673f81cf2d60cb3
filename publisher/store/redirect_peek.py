"""Whether an SQLite store may hold a redirect, asked with the standard library's sqlite3
in a few milliseconds: a build of a publication with no moved-in article (most of them)
then loads none of SQLAlchemy, a tenth of a second of every build."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

__all__ = ["TABLE", "may_have_redirects"]

TABLE = "redirects"
"""`publisher.store.schema.redirects`'s name (a test holds them together)."""


def may_have_redirects(file: str) -> bool:
    """False only when the database `file` certainly has no redirect: its table is empty,
    or not there yet (a database from before redirects). Any other answer, an error
    included, is True, and the build asks the store as usual."""
    try:
        with closing(sqlite3.connect(f"{Path(file).resolve().as_uri()}?mode=ro", uri=True, timeout=5)) as db:
            return db.execute(f"SELECT 1 FROM {TABLE} LIMIT 1").fetchone() is not None
    except sqlite3.OperationalError as exc:
        return not str(exc).startswith("no such table")
    except (sqlite3.Error, OSError, ValueError):
        return True
