"""Bulk imports as jobs: started by one call, run in a thread, read back with progress.

A job imports a CSV export (any format `publisher subscribers import` reads) or a list
of records ({"email", "name", "tags", "timezone", "status"}), with the same checks and in
one transaction, so a job that fails imported nothing. Rejected rows are reported with
their number: the CSV line, or the record's position (from 1) in the list. A finished
job's summary adds up: imported + updated + unchanged + kept + rejected = rows read.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from publisher.errors import InvalidRequest, PublisherError
from publisher.store import import_jobs
from publisher.store.import_jobs import JobRow
from publisher.store.import_preview import decode_upload, preview_import
from publisher.store.subscriber_csv import STATUS_WORDS, Rejected, SourceRow
from publisher.store.subscriber_import import import_records, import_rows

__all__ = ["MAX_RECORDS", "JobRow", "decode_upload", "get_import", "preview_import", "start_import"]

log = logging.getLogger(__name__)

MAX_RECORDS = 1_000_000
_RUNNING: dict[int, int] = {}
"""Jobs this process is running, with the records read so far."""
_LOCK = threading.Lock()


def _records(items: Sequence[Mapping[str, Any]]) -> Iterator[SourceRow | Rejected]:
    for number, item in enumerate(items, start=1):
        status_word = str(item.get("status") or "active").strip().lower()
        status = STATUS_WORDS.get(status_word)
        if status is None:
            yield Rejected(number, f"status {status_word!r} is not one of active, pending, unsubscribed, bounced")
            continue
        tags = item.get("tags") or ()
        yield SourceRow(
            line=number,
            email=str(item.get("email") or ""),
            name=str(item.get("name") or ""),
            tags=tuple(str(t) for t in tags),
            timezone=(str(item["timezone"]) if item.get("timezone") else None),
            status=status,
        )


def start_import(
    db: Engine,
    *,
    now: datetime,
    csv_text: str | None = None,
    records: Sequence[Mapping[str, Any]] | None = None,
    pending: bool = False,
    tags: Sequence[str] = (),
    origin: str = "api",
    wait: bool = False,
) -> JobRow:
    """Start importing `csv_text` or `records` (exactly one); returns the job as it starts.

    The import runs in a thread of this process (or before returning, with `wait`).
    """
    if (csv_text is None) == (records is None):
        raise InvalidRequest("give either csv or subscribers to import, not both")
    if records is not None and len(records) > MAX_RECORDS:
        raise InvalidRequest(f"at most {MAX_RECORDS:,} records per import; split the list")
    job_id = import_jobs.create(db, format="csv" if csv_text is not None else "json", now=now)
    with _LOCK:
        _RUNNING[job_id] = 0

    def progress(read: int) -> None:
        with _LOCK:
            _RUNNING[job_id] = read

    def run() -> None:
        try:
            if csv_text is not None:
                report = import_rows(db, io.StringIO(csv_text, newline=""), now=now, origin=origin,
                                     pending=pending, tags=tags, progress=progress)
            else:
                assert records is not None
                report = import_records(db, _records(records), platform="JSON", now=now, origin=origin,
                                        pending=pending, tags=tags, progress=progress)
            import_jobs.finish(db, job_id, report, rows_read=report.rows_read, now=now)
        except PublisherError as exc:
            import_jobs.fail(db, job_id, str(exc), now=now)
        except Exception as exc:  # the job must end in a state, whatever happened
            log.exception("import job %s failed", job_id)
            import_jobs.fail(db, job_id, f"{type(exc).__name__}: {exc}; nothing was imported", now=now)
        finally:
            with _LOCK:
                _RUNNING.pop(job_id, None)

    if wait:
        run()
    else:
        threading.Thread(target=run, name=f"import-{job_id}", daemon=True).start()
    return get_import(db, job_id)


def get_import(db: Engine, job_id: int) -> JobRow:
    """The job as stored, with the running count of records read while it runs.

    A job still marked running that no process runs was cut off by a restart: nothing of
    it was imported (one transaction), and it is reported as failed.
    """
    job = import_jobs.get(db, job_id)
    if job.state != "running":
        return job
    with _LOCK:
        read = _RUNNING.get(job_id)
    if read is None:
        job = import_jobs.get(db, job_id)  # it may have finished between the two looks
        if job.state == "running":
            return replace(job, state="failed", detail="the server stopped during the import; nothing was imported")
        return job
    return replace(job, rows_read=read)
