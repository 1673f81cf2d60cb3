"""The newest schema revision, read from the revision files without alembic or SQLAlchemy.

Opening a database at the newest revision should cost one small query, and a glance at
it (store/glance.py) none of SQLAlchemy's import time: both compare the database's
`alembic_version` with the revision files' own `revision`/`down_revision` lines. Anything
unexpected in those files gives None, and the caller asks alembic instead.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

__all__ = ["MIGRATIONS", "head_on_disk"]

MIGRATIONS = Path(__file__).with_name("migrations")

_REVISION_LINE = re.compile(r"""^(down_revision|revision)\s*(?::[^=]+)?=\s*(?:"([^"]*)"|'([^']*)'|None)""", re.M)


@functools.cache
def head_on_disk() -> str | None:
    """The single newest revision named in the revision files, or None when unsure."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = {m.group(1): m.group(2) or m.group(3) for m in _REVISION_LINE.finditer(path.read_text("utf-8"))}
        if "revision" not in found:
            return None
        revisions.add(found["revision"])
        if found.get("down_revision"):
            parents.add(found["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None
