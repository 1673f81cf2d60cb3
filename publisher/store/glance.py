"""`publisher status` at a glance: the per-issue counts read with the standard library alone.

Opening the store properly costs SQLAlchemy's import (about a quarter of a second), far
more than the question. For a SQLite store already at the newest schema revision this
module answers `ledger.status(db)` with `sqlite3` and one read-only query of the counts
the database keeps per issue and state (`issue_counts`, migration 0031). Anything else
(PostgreSQL, a missing file, an older or newer schema, any SQLite error) gives None, and
the caller opens the store as usual, which migrates, explains and reports errors. A test
holds both answers equal on the same ledger.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from publisher.models import IssueStatus
from publisher.store.revisions import head_on_disk

__all__ = ["complaint_figures", "hooks_failing", "issue_lines"]

_PREFIX = "sqlite:///"

_COUNTS = """
SELECT i.id, i.key, i.slug, i.subject, i.status, i.created_at,
       COALESCE(SUM(CASE WHEN c.state = 'queued' THEN c.number END), 0),
       COALESCE(SUM(CASE WHEN c.state = 'sending' THEN c.number END), 0),
       COALESCE(SUM(CASE WHEN c.state = 'sent' THEN c.number END), 0),
       COALESCE(SUM(CASE WHEN c.state = 'retry' THEN c.number END), 0),
       COALESCE(SUM(CASE WHEN c.state = 'failed' THEN c.number END), 0),
       COALESCE(SUM(CASE WHEN c.state = 'skipped' THEN c.number END), 0),
       COALESCE(SUM(CASE WHEN c.state = 'uncertain' THEN c.number END), 0)
FROM (SELECT * FROM issues ORDER BY id DESC LIMIT ?) AS i
LEFT JOIN issue_counts AS c ON c.issue_id = i.id
GROUP BY i.id
ORDER BY i.id DESC
"""


def _path(url: str) -> Path | None:
    if not url.startswith(_PREFIX) or "?" in url:
        return None
    path = Path(url[len(_PREFIX):])
    return path if path.is_absolute() and path.is_file() else None


def _moment(value: object) -> datetime:
    moment = datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def issue_lines(url: str, *, limit: int = -1) -> list[IssueStatus] | None:
    """Counts per issue, newest first, as `ledger.status`; None when only the store can say."""
    path = _path(url)
    head = head_on_disk()
    if path is None or head is None:
        return None
    try:
        with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)) as conn:
            stamped = [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]
            if stamped != [head]:
                return None
            rows = conn.execute(_COUNTS, (limit,)).fetchall()
    except (sqlite3.Error, ValueError):
        return None
    try:
        return [
            IssueStatus(
                issue_id=int(row[0]), key=row[1], slug=row[2], subject=row[3], status=row[4],
                created_at=_moment(row[5]), queued=int(row[6]), sending=int(row[7]), sent=int(row[8]),
                retrying=int(row[9]), failed=int(row[10]), skipped=int(row[11]), uncertain=int(row[12]),
            )
            for row in rows
        ]
    except (TypeError, ValueError):
        return None


def hooks_failing(url: str) -> bool | None:
    """Whether a webhook message waits on a retry (`status` then asks the store which
    endpoints fail); None when only the store can say."""
    path = _path(url)
    if path is None:
        return None
    try:
        with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)) as conn:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM webhook_messages WHERE state IN ('pending', 'expired') "
                "AND attempts > 0 AND last_error != '')"
            ).fetchone()
    except sqlite3.Error:
        return None
    return bool(row[0])


def complaint_figures(url: str, *, since: datetime, until: datetime) -> tuple[int, int] | None:
    """(copies accepted, readers who complained) in [since, until), as `store.stats.accepted_and_complaints`
    counts them; None when only the store can say."""
    path = _path(url)
    if path is None:
        return None
    bounds = tuple(moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") for moment in (since, until))
    minutes = tuple(moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M") for moment in (since, until))
    try:
        with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)) as conn:
            (accepted,) = conn.execute(
                "SELECT COALESCE(SUM(number), 0) FROM sent_minutes WHERE minute >= ? AND minute <= ?", minutes
            ).fetchone()
            (complained,) = conn.execute(
                "SELECT COUNT(DISTINCT email) FROM events WHERE kind = 'complaint' AND created_at >= ? "
                "AND created_at < ?", bounds
            ).fetchone()
    except sqlite3.Error:
        return None
    return int(accepted), int(complained)
