"""Moving out: `publisher export` and the desk's Export.

An export is everything the publication owns in open formats, in one zip, for leaving:
the content folder byte for byte (articles as Markdown with front matter, pictures), the
template overrides, every subscriber as CSV with their status and consent (and their own
choices, with the key their links carry), each issue
with its delivery counts (and the copy it sent), each reader's copy of each issue, the
redirects, and config.toml as settings.toml. README.txt inside says what each file is.
A backup (`publisher backup`) is for restoring this server; an export is for any tool.

Secrets are never in it: they are not in config.toml; the files beside it that hold them
(the desk's secrets file, DKIM keys) and the environment's (PUBLISHER_SECRET, the
provider's key) are named in README.txt for the author to carry by hand.

The zip holds every reader's address: it is written under a hidden temporary name in
its folder, mode 0600, and renamed when whole; a destination inside the content,
template or site folder is refused (the build would publish it).

Each part is read in its own transaction while the daemon may go on writing: an export
taken during a send can show a copy in deliveries.csv that issues.csv does not count yet.
`publisher backup` is the one consistent copy of an instant. Reading an export back is
`services.export_import`'s.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import tempfile
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import Engine

from publisher.config import Config
from publisher.content.exports import publisher_export as reader
from publisher.errors import BuildError, Conflict, InvalidRequest
from publisher.services import backup as backups
from publisher.services import stats
from publisher.store import export_rows
from publisher.store import redirects as redirect_store
from publisher.store import subscribers as subscriber_store
from publisher.store.subscriber_csv import neutralize

__all__ = [
    "EXPORT_PATTERN",
    "Exported",
    "create_export",
    "default_name",
    "write_export",
]

EXPORT_PATTERN = "publisher-export-{:%Y%m%d-%H%M%S}.zip"


@dataclass(frozen=True, slots=True)
class Exported:
    """One export written: where, how big, and what it holds."""

    path: Path
    size: int
    articles: int
    media: int
    templates: int
    subscribers: int
    issues: int
    deliveries: int
    events: int
    redirects: int
    seconds: float
    left_out: tuple[str, ...] = ()


def default_name(now: datetime) -> str:
    return EXPORT_PATTERN.format(now.astimezone(UTC))


def _files(folder: Path) -> Iterator[tuple[str, Path]]:
    """A folder's files, relative POSIX names, in order: no hidden file, no link followed."""
    if not folder.is_dir():
        return
    for here, dirs, names in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (Path(here) / d).is_symlink())
        for name in sorted(names):
            path = Path(here) / name
            if name.startswith(".") or path.is_symlink() or not path.is_file():
                continue
            yield path.relative_to(folder).as_posix(), path


def _csv_text(rows: Iterable[Iterable[object]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([neutralize("" if cell is None else str(cell)) for cell in row])
    return out.getvalue().encode("utf-8")


def _member(archive: zipfile.ZipFile, name: str) -> io.TextIOWrapper:
    """A text member written as it streams (closing it closes the member)."""
    return io.TextIOWrapper(archive.open(name, "w"), encoding="utf-8", newline="")


def _when(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def write_export(config: Config, db: Engine, out: BinaryIO, *, now: datetime) -> Exported:
    """Write the whole export as a zip into `out` (a file opened for writing); the counts.

    The path and size of the result are the caller's to fill in.
    """
    started = time.monotonic()
    counts = {"articles": 0, "media": 0, "templates": 0, "subscribers": 0, "issues": 0, "deliveries": 0,
              "events": 0, "redirects": 0}
    left_out = tuple(backups._left_out(config))  # the secret files beside config.toml, as a backup names them
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        content_folder = config.path_of("build.content")
        for name, path in _files(content_folder):
            archive.write(path, f"content/{name}")
            counts["articles" if name.endswith(".md") else "media"] += 1
        templates = config.path_of("build.templates")
        if templates != content_folder:
            for name, path in _files(templates):
                archive.write(path, f"templates/{name}")
                counts["templates"] += 1
        with _member(archive, "subscribers.csv") as text:
            counts["subscribers"] = subscriber_store.export_csv(db, text)
        with _member(archive, "reader_choices.csv") as text:
            writer = csv.writer(text, lineterminator="\r\n")
            writer.writerow(reader.CHOICE_COLUMNS)
            for choice in export_rows.iter_choices(db):
                writer.writerow([neutralize(cell) for cell in (
                    choice.email, choice.frequency, choice.topics or "", choice.link_key,
                )])
        issues = export_rows.list_issues(db)
        status_lines = stats.issue_status(db) if issues else []
        figures = {c.issue_id: c for c in stats.issues_counts(db, status_lines)}
        status = {line.issue_id: line for line in status_lines}
        lines: list[list[object]] = [list(reader.ISSUE_COLUMNS)]
        for issue in issues:
            html_file, text_file = f"issues/{issue.id}.html", f"issues/{issue.id}.txt"
            archive.writestr(html_file, issue.html)
            archive.writestr(text_file, issue.text)
            got, line = figures[issue.id], status[issue.id]
            lines.append([
                issue.id, issue.key, issue.kind, issue.slug, issue.subject, issue.tag or "", issue.topics,
                issue.status, _when(issue.created_at), _when(issue.enqueued_at), _when(issue.finished_at),
                line.total, got.sent, got.deferred, got.failed, got.bounced, got.complained, got.unsubscribed,
                line.skipped, html_file, text_file,
            ])
        archive.writestr("issues.csv", _csv_text(lines))
        counts["issues"] = len(issues)
        with _member(archive, "deliveries.csv") as text:
            writer = csv.writer(text, lineterminator="\r\n")
            writer.writerow(reader.DELIVERY_COLUMNS)
            for row in export_rows.iter_deliveries(db):
                writer.writerow([neutralize(str(cell)) for cell in (
                    row.issue_id, row.email, row.name, row.state, row.attempts, _when(row.sent_at),
                    row.message_key, "true" if row.uncertain else "false", row.detail,
                )])
                counts["deliveries"] += 1
        with _member(archive, "events.csv") as text:
            writer = csv.writer(text, lineterminator="\r\n")
            writer.writerow(reader.EVENT_COLUMNS)
            for event in export_rows.iter_events(db):
                writer.writerow([neutralize(cell) for cell in (
                    event.email, event.kind, event.provider, event.detail, _when(event.created_at),
                    "" if event.issue_id is None else str(event.issue_id), event.event_key or "",
                )])
                counts["events"] += 1
        moved = redirect_store.all_redirects(db)
        archive.writestr("redirects.csv", _csv_text(
            [list(reader.REDIRECT_COLUMNS), *([r.old_path, r.target, r.source] for r in moved)]
        ))
        counts["redirects"] = len(moved)
        config_file = config.path or config.root / "config.toml"
        if config_file.is_file():
            archive.write(config_file, "settings.toml")
        archive.writestr("README.txt", _readme(config, now, counts, left_out))
        archive.writestr(reader.MANIFEST, json.dumps({
            "format": reader.FORMAT, "format_version": reader.FORMAT_VERSION,
            "created_at": now.astimezone(UTC).isoformat(timespec="seconds"),
            "publication": str(config["publication.title"]), "counts": counts,
        }, indent=2) + "\n")
    return Exported(path=Path(), size=0, seconds=time.monotonic() - started, left_out=left_out, **counts)


def _readme(config: Config, now: datetime, counts: dict[str, int], left_out: tuple[str, ...]) -> str:
    secrets = "\n".join(f"  - {item}" for item in left_out) or "  - (no file of secrets beside config.toml)"
    title, when = config["publication.title"], f"{now.astimezone(UTC):%Y-%m-%d %H:%M}"
    return f"""{title}: everything this publication owns, exported {when} UTC by publisher,
in open formats. Any tool may read it; `publisher migrate publisher FILE.zip`
reads it back into a new publication (made with `publisher init`).

This archive holds every reader's address. Keep it private and delete copies you no longer need.

content/          The articles ({counts["articles"]}) as Markdown files with YAML front matter, exactly as
                  they were in the content folder, and the pictures and other files beside them
                  ({counts["media"]}), in the same folders, so every link between them still works.
templates/        Your template overrides ({counts["templates"]}), by file name, if you had any.
subscribers.csv   Every reader ({counts["subscribers"]}), one a line: email, name, status (active, pending,
                  unsubscribed, bounced, complained), tags, timezone, created_at (when they joined),
                  confirmed_at (when they confirmed), source (where they signed up), opted_in_at and
                  consent_text (when they opted in and what the service they came from recorded
                  about it). An unsubscribed, bounced or complained reader must never be mailed again.
reader_choices.csv  What each reader chose on their own page: frequency (every article, or the
                  digest only) and topics (the tags they want; empty: every topic), and link_key,
                  the key their unsubscribe and manage links carry (with PUBLISHER_SECRET, it keeps
                  the links in mail already sent working for the same person).
issues.csv        Each newsletter sent or prepared ({counts["issues"]}): the article, subject, when sending began
                  (sent_at) and ended, and what became of its copies: recipients, accepted (by the mail
                  provider), deferred, failed, bounced, complaints, unsubscribed (left by a link in it),
                  skipped. html_file and text_file name the message as it was sent (issues/).
deliveries.csv    Each reader's copy of each issue ({counts["deliveries"]}): issue (the number in issues.csv), email,
                  state (sent, failed, skipped, or still queued), attempts, sent_at, message_key (the
                  left part of its Message-ID), uncertain (may have gone out twice after a crash).
events.csv        What happened to each reader ({counts["events"]}), oldest first: kind (subscribe, confirm,
                  unsubscribe, bounce, complaint), provider and detail (what the mail provider said),
                  created_at, and issue (the number in issues.csv it answers, if any).
redirects.csv     Old addresses of articles moved in from another service ({counts["redirects"]}), where each
                  leads now (a path on this site), and the service it came from.
settings.toml     The publication's config.toml. It holds no secrets.
manifest.json     What this archive is (format {reader.FORMAT} {reader.FORMAT_VERSION}), when it was made, the counts.

Dates and times are ISO 8601 with their offset (UTC). Files are UTF-8; CSV cells that a
spreadsheet would run as a formula (starting with = + - @) begin with an apostrophe.

Not in this archive, on purpose: secrets. Carry these by hand (a password manager):
  - PUBLISHER_SECRET, from the environment: with it, unsubscribe links in mail already sent
    keep working on the new server
  - the mail provider's key or password, from the environment (PUBLISHER_SMTP_PASSWORD,
    PUBLISHER_POSTMARK_TOKEN, ...)
{secrets}
"""


def create_export(config: Config, db: Engine, *, now: datetime, to: Path | None = None) -> Exported:
    """Write the export to `to` (a .zip file, or a folder for the usual name; default: the
    publication's folder). Never replaces a file; nothing is left under the name on error."""
    dest = _destination(config, to, now)
    if dest.exists():
        raise Conflict(f"{dest} exists already; an export is never replaced. Remove it or choose another name (--to).")
    try:
        fd, temp = tempfile.mkstemp(prefix=".publisher-export-", suffix=".partial", dir=dest.parent)
    except OSError as exc:
        raise BuildError(f"cannot write into {dest.parent}: {exc.strerror or exc}") from exc
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            made = write_export(config, db, out, now=now)
            out.flush()
            os.fsync(out.fileno())
        if dest.exists():
            raise Conflict(f"{dest} appeared while the export was written; it was left alone")
        Path(temp).rename(dest)
    except OSError as exc:
        raise BuildError(
            f"the export could not be written to {dest}: {exc.strerror or exc}; nothing was left under that name"
        ) from exc
    finally:
        Path(temp).unlink(missing_ok=True)
    return dataclasses.replace(made, path=dest, size=dest.stat().st_size)


def _destination(config: Config, to: Path | None, now: datetime) -> Path:
    if to is None:
        dest = config.root / default_name(now)
    elif to.is_dir():
        dest = to / default_name(now)
    elif to.suffix.lower() != ".zip":
        raise InvalidRequest(f"--to {to}: an export is a .zip file; name it FILE.zip or give a folder")
    else:
        dest = to
    dest = dest.resolve()
    if not dest.parent.is_dir():
        raise InvalidRequest(f"--to {to}: the folder {dest.parent} does not exist; create it first")
    for key, what in (
        ("build.content", "the content folder, whose files are published"),
        ("build.output", "the site folder, which is served to anyone"),
        ("build.templates", "the template folder"),
    ):
        folder = config.path_of(key)
        if folder == dest.parent or folder in dest.parents:
            raise InvalidRequest(
                f"{dest}: an export holds every subscriber's address and may not lie inside {what} ({folder}); "
                "choose another place (--to)"
            )
    return dest
