"""What an import would do, before anything is written: the desk's upload preview.

The same reading and the same checks as the import itself (`subscriber_import`), so
the preview's rejected rows are exactly the ones the import will reject; then one
look-up per page of addresses tells which are new and which the list already has. The
file is read once, streamed; only the counts, the rejections and a few sample rows are
kept.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, select

from publisher.errors import SubscriberError
from publisher.store.schema import subscribers
from publisher.store.subscriber_csv import Rejected, read_export
from publisher.store.subscriber_import import checked_chunks
from publisher.store.subscribers import clean_tags

__all__ = ["ImportPreview", "decode_upload", "preview_import"]

SAMPLE = 5


@dataclass(frozen=True, slots=True)
class ImportPreview:
    platform: str
    encoding: str
    columns: tuple[str, ...]
    valid: int
    new: int
    existing: int
    rejected: tuple[Rejected, ...]
    sample: tuple[tuple[str, str, str, str], ...]
    """A few rows as they would be imported: address, name, status, tags."""


def decode_upload(data: bytes, *, origin: str) -> tuple[str, str]:
    """The text of an uploaded CSV and the encoding it was read with.

    UTF-8 (with or without the byte-order mark spreadsheets add) is read as is; anything
    else is refused with the fix, rather than guessed at and imported with broken names.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        encoding, data = "UTF-8 with byte-order mark", data[3:]
    else:
        encoding = "UTF-8"
    try:
        return data.decode("utf-8"), encoding
    except UnicodeDecodeError as exc:
        raise SubscriberError(
            f"{origin}: not UTF-8 text (byte {exc.start + 1} cannot be read); nothing was imported. "
            "Save the file as \"CSV UTF-8\" from your spreadsheet and upload it again."
        ) from exc


def preview_import(
    engine: Engine, lines: Iterable[str], *, origin: str, encoding: str = "UTF-8",
    pending: bool = False, tags: Iterable[str] = (),
) -> ImportPreview:
    """Count, check and sample the rows of a CSV export without writing anything."""
    extra = clean_tags(tags)
    lines = list(lines)
    header = next(csv.reader(io.StringIO(next((line for line in lines if line.strip()), ""))), [])
    platform, rows = read_export(lines, origin=origin)
    rejected: list[Rejected] = []
    valid = new = existing = 0
    sample: list[tuple[str, str, str, str]] = []
    for _size, good in checked_chunks(rows, extra, pending, rejected):
        for checked in good[: max(0, SAMPLE - len(sample))]:
            sample.append((checked.email, checked.name, checked.status.value, ", ".join(checked.tags)))
        if good:
            with engine.connect() as conn:
                known = set(
                    conn.execute(
                        select(subscribers.c.email).where(subscribers.c.email.in_([g.email for g in good]))
                    ).scalars()
                )
            existing += sum(1 for g in good if g.email in known)
            new += sum(1 for g in good if g.email not in known)
            valid += len(good)
    return ImportPreview(
        platform=platform, encoding=encoding, columns=tuple(header), valid=valid, new=new,
        existing=existing, rejected=tuple(rejected), sample=tuple(sample),
    )
