"""Our own export (`publisher export`), read back: the round trip. Pure but for the zip.

The archive's layout, which `publisher.services.export` writes and README.txt inside it
describes:

    manifest.json       format "publisher-export", its version, when, and the counts
    content/...         the content folder as it was: articles (.md) and pictures, byte for byte
    templates/...       the template overrides, if any
    subscribers.csv     every reader: status, tags, zone, created_at, confirmed_at, source, consent
    reader_choices.csv  each reader's choices (every article or the digest, topics) and link key
    issues.csv          each issue with its delivery counts, and its snapshot in issues/<id>.html|.txt
    deliveries.csv      each reader's copy of each issue: state, when sent, its Message-ID key
    events.csv          what happened to each reader: joined, confirmed, left, bounced, complained
    redirects.csv       old address -> new, when the publication has redirects
    settings.toml       config.toml (secrets are never in it)

`open_archive` checks the zip before anything reads it: every member name relative,
inside the archive (no `..`, no drive, no backslash), no hidden file under content/ or
templates/, the whole no larger than MAX_UNPACKED and no member that inflates more than
MAX_RATIO times (a zip bomb). Every refusal names the archive and the member.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import IO

from publisher.errors import InvalidRequest

__all__ = [
    "CHOICE_COLUMNS",
    "DELIVERY_COLUMNS",
    "EVENT_COLUMNS",
    "FORMAT",
    "FORMAT_VERSION",
    "ISSUE_COLUMNS",
    "MANIFEST",
    "MAX_RATIO",
    "MAX_UNPACKED",
    "REDIRECT_COLUMNS",
    "ArchiveFile",
    "ExportArchive",
    "ExportedChoice",
    "ExportedDelivery",
    "ExportedEvent",
    "ExportedIssue",
    "ExportedRedirect",
    "open_archive",
    "restore_cell",
]

FORMAT = "publisher-export"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PARTS = ("content", "templates")
MAX_UNPACKED = 8 * 1024**3
"""The most an archive may hold unpacked (8 GiB): beyond it, it is refused as a bomb."""
MAX_RATIO = 200
"""A member larger than a megabyte that inflates more than this many times is refused."""
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_LINK_KEY = re.compile(r"[A-Za-z0-9_-]{8,32}")

ISSUE_COLUMNS = (
    "issue", "key", "kind", "article", "subject", "tag", "topics", "status", "created_at", "sent_at",
    "finished_at", "recipients", "accepted", "deferred", "failed", "bounced", "complaints", "unsubscribed",
    "skipped", "html_file", "text_file",
)
REDIRECT_COLUMNS = ("old_path", "target", "source")
CHOICE_COLUMNS = ("email", "frequency", "topics", "link_key")
EVENT_COLUMNS = ("email", "kind", "provider", "detail", "created_at", "issue", "event_key")
DELIVERY_COLUMNS = ("issue", "email", "name", "state", "attempts", "sent_at", "message_key", "uncertain", "detail")


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    """A file of the content or templates folder, as carried."""

    part: str
    path: str
    """Relative to its folder, POSIX."""
    member: str
    size: int


@dataclass(frozen=True, slots=True)
class ExportedIssue:
    line: int
    number: int
    """Its id in the publication it left: deliveries.csv refers to it by this."""
    key: str
    kind: str
    slug: str
    subject: str
    tag: str | None
    topics: str
    status: str
    created_at: datetime
    sent_at: datetime | None
    finished_at: datetime | None
    html: str
    text: str


@dataclass(frozen=True, slots=True)
class ExportedDelivery:
    line: int
    issue: int
    email: str
    name: str
    state: str
    attempts: int
    sent_at: datetime | None
    message_key: str
    uncertain: bool
    detail: str


@dataclass(frozen=True, slots=True)
class ExportedChoice:
    line: int
    email: str
    frequency: str
    topics: str | None
    link_key: str


@dataclass(frozen=True, slots=True)
class ExportedEvent:
    line: int
    email: str
    kind: str
    provider: str
    detail: str
    created_at: datetime
    issue: int | None
    event_key: str | None


@dataclass(frozen=True, slots=True)
class ExportedRedirect:
    line: int
    old_path: str
    target: str
    source: str


def restore_cell(cell: str) -> str:
    """A cell as it was before the export kept a spreadsheet from running it as a formula."""
    if len(cell) > 1 and cell[0] == "'" and cell[1:].startswith(_FORMULA_STARTS):
        return cell[1:]
    return cell


def _moment(value: str, where: str) -> datetime | None:
    value = value.strip()
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{where}: {value!r} is not a date and time (expected ISO 8601)") from None


def _number(value: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidRequest(f"{where}: {value!r} is not a whole number") from None


class ExportArchive:
    """An opened export: its manifest, its files and its tables. Close it when done."""

    def __init__(self, path: Path, archive: zipfile.ZipFile, manifest: dict[str, object]) -> None:
        self.path = path
        self.label = path.name
        self._zip = archive
        self.manifest = manifest
        self._names = {info.filename for info in archive.infolist()}

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> ExportArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def has(self, member: str) -> bool:
        return member in self._names

    def files(self, part: str) -> list[ArchiveFile]:
        """The files of `part` (content or templates), in name order."""
        prefix = part + "/"
        return [
            ArchiveFile(part=part, path=info.filename[len(prefix):], member=info.filename, size=info.file_size)
            for info in sorted(self._zip.infolist(), key=lambda i: i.filename)
            if info.filename.startswith(prefix) and not info.is_dir()
        ]

    def open(self, member: str) -> IO[bytes]:
        return self._zip.open(member)

    def read(self, member: str) -> bytes:
        try:
            return self._zip.read(member)
        except (zipfile.BadZipFile, OSError) as exc:
            raise InvalidRequest(f"{self.label}: {member} cannot be read ({exc}); export again") from exc

    def lines(self, member: str) -> Iterator[str]:
        """A CSV member's lines, streamed (for the subscriber import)."""
        with self._zip.open(member) as raw:
            yield from io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")

    def _rows(self, member: str, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
        if not self.has(member):
            return
        reader = csv.reader(self.lines(member))
        header = next(reader, None)
        missing = [c for c in columns if header is None or c not in header]
        if missing:
            raise InvalidRequest(f"{self.label}: {member} lacks the column(s) {', '.join(missing)}")
        assert header is not None
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            yield reader.line_num, {name: restore_cell(cell) for name, cell in zip(header, row, strict=False)}

    def issues(self) -> list[ExportedIssue]:
        """issues.csv with each issue's snapshot; an issue whose row is broken is refused by line."""
        found: list[ExportedIssue] = []
        for line, cells in self._rows("issues.csv", ISSUE_COLUMNS):
            where = f"{self.label}: issues.csv line {line}"
            html_file, text_file = cells["html_file"], cells["text_file"]
            for name in (html_file, text_file):
                if name and not self.has(name):
                    raise InvalidRequest(f"{where}: names {name}, which the archive does not hold")
            created = _moment(cells["created_at"], where)
            if created is None:
                raise InvalidRequest(f"{where}: created_at is empty")
            found.append(ExportedIssue(
                line=line, number=_number(cells["issue"], where), key=cells["key"], kind=cells["kind"],
                slug=cells["article"], subject=cells["subject"], tag=cells["tag"] or None, topics=cells["topics"],
                status=cells["status"], created_at=created, sent_at=_moment(cells["sent_at"], where),
                finished_at=_moment(cells["finished_at"], where),
                html=self.read(html_file).decode("utf-8") if html_file else "",
                text=self.read(text_file).decode("utf-8") if text_file else "",
            ))
        return found

    def redirects(self) -> list[ExportedRedirect]:
        """redirects.csv (none when the archive has no such file)."""
        return [
            ExportedRedirect(line=line, old_path=cells["old_path"], target=cells["target"],
                             source=cells["source"] or "publisher")
            for line, cells in self._rows("redirects.csv", REDIRECT_COLUMNS)
        ]

    def choices(self) -> Iterator[ExportedChoice]:
        """reader_choices.csv, streamed; a frequency other than every or digest is refused by line."""
        for line, cells in self._rows("reader_choices.csv", CHOICE_COLUMNS):
            frequency = cells["frequency"].strip() or "every"
            if frequency not in ("every", "digest"):
                raise InvalidRequest(
                    f"{self.label}: reader_choices.csv line {line}: frequency {frequency!r} is not every or digest"
                )
            key = cells["link_key"].strip()
            if key and not _LINK_KEY.fullmatch(key):
                raise InvalidRequest(f"{self.label}: reader_choices.csv line {line}: link_key is not a link key")
            topics = cells["topics"].strip()
            yield ExportedChoice(line=line, email=cells["email"].strip().lower(), frequency=frequency,
                                 topics=topics or None, link_key=key)

    def events(self) -> Iterator[ExportedEvent]:
        """events.csv, streamed."""
        for line, cells in self._rows("events.csv", EVENT_COLUMNS):
            where = f"{self.label}: events.csv line {line}"
            created = _moment(cells["created_at"], where)
            if created is None:
                raise InvalidRequest(f"{where}: created_at is empty")
            issue = cells["issue"].strip()
            yield ExportedEvent(
                line=line, email=cells["email"].strip().lower(), kind=cells["kind"].strip(),
                provider=cells["provider"], detail=cells["detail"], created_at=created,
                issue=_number(issue, where) if issue else None, event_key=cells["event_key"] or None,
            )

    def deliveries(self) -> Iterator[ExportedDelivery]:
        """deliveries.csv, streamed."""
        for line, cells in self._rows("deliveries.csv", DELIVERY_COLUMNS):
            where = f"{self.label}: deliveries.csv line {line}"
            yield ExportedDelivery(
                line=line, issue=_number(cells["issue"], where), email=cells["email"].strip().lower(),
                name=cells["name"], state=cells["state"], attempts=_number(cells["attempts"] or "0", where),
                sent_at=_moment(cells["sent_at"], where), message_key=cells["message_key"],
                uncertain=cells["uncertain"].strip().lower() == "true", detail=cells["detail"],
            )


def _check_name(label: str, name: str) -> None:
    path = PurePosixPath(name)
    if (
        not name or "\\" in name or "\x00" in name or path.is_absolute() or ".." in path.parts
        or (path.parts and ":" in path.parts[0])
    ):
        raise InvalidRequest(f"{label}: the member {name!r} leads out of the archive; refused, nothing was written")
    if path.parts and path.parts[0] in PARTS and any(p.startswith(".") for p in path.parts[1:]):
        raise InvalidRequest(f"{label}: the member {name!r} is a hidden file; refused, nothing was written")


def open_archive(path: Path) -> ExportArchive:
    """Open and check an export written by `publisher export`.

    Raises InvalidRequest, naming the file and the member, for anything that is not such
    an export or that could write outside its folder or fill the disk.
    """
    label = path.name
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise InvalidRequest(f"{path}: no such file") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidRequest(f"{label}: not a zip archive ({exc}); give the file `publisher export` wrote") from exc
    try:
        total = 0
        for info in archive.infolist():
            _check_name(label, info.filename)
            if info.external_attr >> 16 & 0o170000 == 0o120000:
                raise InvalidRequest(f"{label}: the member {info.filename!r} is a symbolic link; refused")
            total += info.file_size
            if info.file_size > 1024**2 and info.file_size > MAX_RATIO * max(info.compress_size, 1):
                raise InvalidRequest(
                    f"{label}: the member {info.filename!r} would inflate {info.file_size:,} bytes from "
                    f"{info.compress_size:,} (a zip bomb?); refused, nothing was written"
                )
        if total > MAX_UNPACKED:
            raise InvalidRequest(f"{label}: would unpack to {total:,} bytes, more than {MAX_UNPACKED:,}; refused")
        if MANIFEST not in archive.namelist():
            raise InvalidRequest(
                f"{label}: has no {MANIFEST}, so it is not an export of publisher; choose the service it came from"
            )
        try:
            manifest = json.loads(archive.read(MANIFEST))
        except (ValueError, zipfile.BadZipFile) as exc:
            raise InvalidRequest(f"{label}: {MANIFEST} cannot be read ({exc})") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise InvalidRequest(f"{label}: {MANIFEST} does not say format \"{FORMAT}\"; not an export of publisher")
        version = manifest.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise InvalidRequest(
                f"{label}: written by a newer publisher (format {version}); upgrade publisher to read it"
            )
    except BaseException:
        archive.close()
        raise
    return ExportArchive(path, archive, manifest)
