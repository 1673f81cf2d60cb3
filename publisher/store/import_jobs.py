"""Import jobs: a bulk import started by one request and read back by others.

The import itself is one transaction (`subscriber_import`), so a job that dies half-way
imported nothing; its row here says what became of it. Progress while it runs is kept
by the process running it, not written here: the import holds the write lock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, insert, select, update

from publisher.errors import NotFound
from publisher.store.schema import import_jobs
from publisher.store.subscriber_csv import ImportReport, Rejected

__all__ = ["KEPT_REJECTIONS", "JobRow", "create", "fail", "finish", "get"]

KEPT_REJECTIONS = 1000
"""Rejected rows listed per job; the count covers them all."""


@dataclass(frozen=True, slots=True)
class JobRow:
    id: int
    state: str
    format: str
    rows_read: int
    imported: int
    updated: int
    kept: int
    rejected_count: int
    unchanged: int
    """With imported, updated, kept and rejected_count: every row read, each once."""
    rejected: tuple[Rejected, ...]
    detail: str
    created_at: datetime
    finished_at: datetime | None


def create(engine: Engine, *, format: str, now: datetime) -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
                insert(import_jobs)
                .values(state="running", format=format, rows_read=0, imported=0, updated=0, kept=0,
                        unchanged=0, rejected_count=0, rejected="[]", detail="", created_at=now)
                .returning(import_jobs.c.id)
            ).scalar_one()
        )


def finish(engine: Engine, job_id: int, report: ImportReport, *, rows_read: int, now: datetime) -> None:
    listed = [{"row": r.line, "reason": r.reason} for r in report.rejected[:KEPT_REJECTIONS]]
    with engine.begin() as conn:
        conn.execute(
            update(import_jobs)
            .where(import_jobs.c.id == job_id)
            .values(state="done", rows_read=rows_read, imported=report.imported, updated=report.updated,
                    kept=report.kept, unchanged=report.unchanged, rejected_count=len(report.rejected),
                    rejected=json.dumps(listed), finished_at=now)
        )


def fail(engine: Engine, job_id: int, detail: str, *, now: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(import_jobs).where(import_jobs.c.id == job_id).values(state="failed", detail=detail, finished_at=now)
        )


def get(engine: Engine, job_id: int) -> JobRow:
    with engine.connect() as conn:
        row = conn.execute(select(import_jobs).where(import_jobs.c.id == job_id)).first()
    if row is None:
        raise NotFound(f"no import job {job_id}")
    return JobRow(
        id=row.id, state=row.state, format=row.format, rows_read=row.rows_read, imported=row.imported,
        updated=row.updated, kept=row.kept, unchanged=row.unchanged, rejected_count=row.rejected_count,
        rejected=tuple(Rejected(item["row"], item["reason"]) for item in json.loads(row.rejected)),
        detail=row.detail, created_at=row.created_at, finished_at=row.finished_at,
    )
