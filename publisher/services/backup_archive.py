"""The backup archive's format: what a `publisher backup` archive holds, how its members
are written, and every check a restore makes before it writes anything.

An archive is one tar.gz. Its members are plain files and folders at relative paths:
config.toml, the content folder, the template overrides, the database (an SQLite file
or a `pg_dump` custom-format file) and, last, `manifest.json`: the format version, the
publisher version, when and from which store it was made, which member is which part,
and every file with its size and SHA-256 (hashed as it was written, from the same read).

`verify_archive` reads an archive to its end and checks it: a truncated or damaged one
does not read; one of a format above `FORMAT_VERSION`, or whose database carries a schema
revision this publisher does not know, was made by a newer publisher; a member at an
absolute path, one with a `..`, a link or a device could leave the target folder; a file
missing, added or changed does not match the manifest. Each is an InvalidRequest that
names the archive and says that nothing was written. `unpack` writes the members under a
folder, checking each checksum again as it writes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO

from publisher.errors import InvalidRequest
from publisher.store import backup as store_backup

__all__ = [
    "ARCHIVE_PATTERN",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "FileEntry",
    "Manifest",
    "add_bytes",
    "add_file",
    "add_folder",
    "archive_name",
    "member_text",
    "members",
    "open_archive",
    "publisher_version",
    "read_member",
    "safe_name",
    "to_prune",
    "unpack",
    "verify_archive",
]

FORMAT = "publisher-backup"
FORMAT_VERSION = 1
"""Raised when the archive's layout changes; a restore refuses any version above its own."""
MANIFEST = "manifest.json"
ARCHIVE_PATTERN = re.compile(r"publisher-backup-(\d{8})-(\d{6})\.tar\.gz")
"""An archive's name; the time in it is UTC. `publisher doctor` finds the newest by it."""
_CHUNK = 1 << 20
_DAMAGED = (tarfile.TarError, EOFError, OSError, zlib.error)
"""What reading a truncated or damaged tar.gz raises (gzip.BadGzipFile is an OSError)."""
_MAX_MANIFEST = 64 << 20


@dataclass(frozen=True, slots=True)
class FileEntry:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Manifest:
    """What an archive says it holds."""

    format_version: int
    publisher_version: str
    created_at: str
    store: str
    """"sqlite" or "postgresql"."""
    schema_revision: str | None
    parts: dict[str, str]
    """Role -> path in the archive: config, content, templates, database."""
    files: tuple[FileEntry, ...]
    folders: tuple[str, ...] = ()
    left_out: tuple[str, ...] = ()

    def to_json(self) -> bytes:
        data = {
            "format": FORMAT,
            "format_version": self.format_version,
            "publisher_version": self.publisher_version,
            "created_at": self.created_at,
            "store": self.store,
            "schema_revision": self.schema_revision,
            "parts": self.parts,
            "folders": list(self.folders),
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files],
            "left_out": list(self.left_out),
        }
        return (json.dumps(data, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def archive_name(now: datetime) -> str:
    """`publisher-backup-YYYYMMDD-HHMMSS.tar.gz` for `now`, in UTC."""
    return f"publisher-backup-{now.astimezone(UTC):%Y%m%d-%H%M%S}.tar.gz"


def to_prune(names: Iterable[str], keep: int) -> list[str]:
    """The archive names to delete so that the newest `keep` remain (other names untouched)."""
    ours = sorted(name for name in names if ARCHIVE_PATTERN.fullmatch(name))
    return ours[: max(0, len(ours) - max(keep, 0))]


def _tarinfo(name: str, size: int, now: datetime, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.mtime = int(now.timestamp())
    return info


class _Hashing(io.RawIOBase):
    """Reads through to a file, hashing what passes."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.digest.update(data)
        return data


def add_file(tar: tarfile.TarFile, name: str, source: Path, now: datetime, *, private: bool = False) -> FileEntry:
    """One file as a member (0600 when `private`, for whoever unpacks it with tar), hashed
    as it is read. The size is the open file's: one replaced by a rename meanwhile is read
    whole, as it was."""
    with source.open("rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        hashing = _Hashing(stream)
        tar.addfile(_tarinfo(name, size, now, 0o600 if private else 0o644), hashing)
    return FileEntry(name, size, hashing.digest.hexdigest())


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes, now: datetime) -> None:
    tar.addfile(_tarinfo(name, len(data), now), io.BytesIO(data))


def add_folder(
    tar: tarfile.TarFile, name: str, source: Path, now: datetime,
    entries: list[FileEntry], folders: list[str], skipped: list[str], *, avoid: Path,
) -> None:
    """A folder's files and subfolders, links not followed (they are named as left out)."""
    avoid = avoid.resolve()
    for here, subfolders, files in os.walk(source):
        base = Path(here)
        if base.resolve() == avoid or avoid in base.resolve().parents:
            subfolders[:] = []
            continue
        relative = base.relative_to(source).as_posix()
        prefix = name if relative == "." else f"{name}/{relative}"
        folders.append(prefix)
        info = _tarinfo(prefix, 0, now, 0o755)
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        for sub in sorted(subfolders):
            if (base / sub).is_symlink():
                skipped.append(f"{prefix}/{sub} (a link: links are not followed)")
        subfolders[:] = sorted(s for s in subfolders if not (base / s).is_symlink())
        for file in sorted(files):
            path = base / file
            if path.is_symlink() or not path.is_file():
                skipped.append(f"{prefix}/{file} (a link or special file: not followed)")
                continue
            try:
                entries.append(add_file(tar, f"{prefix}/{file}", path, now))
            except FileNotFoundError:
                continue  # deleted while the backup ran: it is simply not in this one


def publisher_version() -> str:
    from publisher import __version__

    return str(__version__)


def safe_name(name: str, archive: Path) -> str:
    """The member name as a plain relative path; InvalidRequest for one that could escape."""
    if not name or "\\" in name or "\x00" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise InvalidRequest(f"{archive}: refused: it holds a file at an absolute or odd path ({name!r}); "
                             "nothing was written")
    parts = PurePosixPath(name).parts
    if any(part in ("..", "") for part in parts):
        raise InvalidRequest(f"{archive}: refused: the path {name!r} leads out of the target folder; "
                             "nothing was written")
    return "/".join(p for p in parts if p != ".")


def open_archive(archive: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(archive, mode="r:gz")
    except FileNotFoundError as exc:
        raise InvalidRequest(f"{archive}: no such file") from exc
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InvalidRequest(
            f"{archive}: not a publisher backup (not a readable tar.gz archive: {exc}); nothing was written"
        ) from exc


def members(tar: tarfile.TarFile, archive: Path) -> Iterator[tuple[tarfile.TarInfo, str]]:
    try:
        for member in tar:
            name = safe_name(member.name, archive)
            if not (member.isfile() or member.isdir()):
                raise InvalidRequest(
                    f"{archive}: refused: {name!r} is a link or a special file, which a backup never "
                    "holds; nothing was written"
                )
            yield member, name
    except _DAMAGED as exc:
        raise InvalidRequest(_truncated(archive, exc)) from exc


def _truncated(archive: Path, exc: BaseException) -> str:
    return (f"{archive}: the archive is truncated or damaged ({exc}); nothing was written. "
            "Copy it again from where it was made, or take an older one.")


def read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, archive: Path, sink: IO[bytes] | None) -> str:
    """Read a member to its end (into `sink` if given); its SHA-256. A failed write to
    `sink` (a full disk) is the OSError it is; a failed read is a damaged archive."""
    digest = hashlib.sha256()
    stream = tar.extractfile(member)
    assert stream is not None
    while True:
        try:
            chunk = stream.read(_CHUNK)
        except _DAMAGED as exc:
            raise InvalidRequest(_truncated(archive, exc)) from exc
        if not chunk:
            return digest.hexdigest()
        digest.update(chunk)
        if sink is not None:
            sink.write(chunk)


def _parse_manifest(data: bytes, archive: Path) -> Manifest:
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"{archive}: its {MANIFEST} is not valid JSON ({exc}); nothing was written") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise InvalidRequest(f"{archive}: not a publisher backup (its {MANIFEST} says so); nothing was written")
    version = raw.get("format_version")
    made_by = raw.get("publisher_version", "?")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidRequest(f"{archive}: its {MANIFEST} has no usable format_version; nothing was written")
    if version > FORMAT_VERSION:
        raise InvalidRequest(
            f"{archive}: made by publisher {made_by} in backup format {version}; this publisher "
            f"({publisher_version()}) reads format {FORMAT_VERSION} and older. Upgrade publisher "
            "(pip install --upgrade publisher) and restore again; nothing was written."
        )
    try:
        files = tuple(
            FileEntry(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in raw["files"]
        )
        parts = {str(k): str(v) for k, v in raw["parts"].items()}
        manifest = Manifest(
            format_version=version, publisher_version=str(made_by), created_at=str(raw["created_at"]),
            store=str(raw["store"]), schema_revision=raw.get("schema_revision"),
            parts=parts, files=files, folders=tuple(str(f) for f in raw.get("folders", ())),
            left_out=tuple(str(x) for x in raw.get("left_out", ())),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidRequest(f"{archive}: its {MANIFEST} is incomplete ({exc!r}); nothing was written") from exc
    if manifest.store not in ("sqlite", "postgresql") or not {"config", "database"} <= set(parts):
        raise InvalidRequest(f"{archive}: its {MANIFEST} names no config or database; nothing was written")
    for path in [*parts.values(), *(f.path for f in files), *manifest.folders]:
        safe_name(path, archive)
    return manifest


def verify_archive(archive: Path) -> Manifest:
    """Read the whole archive and check it against its manifest; writes nothing.

    InvalidRequest for a truncated or damaged archive, one of a newer format, a member
    at a path that could leave the target, a link, or a file missing, added or changed.
    """
    seen: dict[str, tuple[int, str]] = {}
    folders: set[str] = set()
    manifest_bytes: bytes | None = None
    with open_archive(archive) as tar:
        for member, name in members(tar, archive):
            if name in seen or name in folders or (name == MANIFEST and manifest_bytes is not None):
                raise InvalidRequest(f"{archive}: refused: {name!r} appears twice; nothing was written")
            if member.isdir():
                folders.add(name)
                continue
            if name == MANIFEST:
                if member.size > _MAX_MANIFEST:
                    raise InvalidRequest(f"{archive}: its {MANIFEST} is too large; nothing was written")
                sink = io.BytesIO()
                read_member(tar, member, archive, sink)
                manifest_bytes = sink.getvalue()
                continue
            seen[name] = (member.size, read_member(tar, member, archive, None))
    if manifest_bytes is None:
        raise InvalidRequest(
            f"{archive}: no {MANIFEST} in it: the archive is truncated, or not a publisher backup; "
            "nothing was written"
        )
    manifest = _parse_manifest(manifest_bytes, archive)
    listed = {f.path: f for f in manifest.files}
    for path, entry in listed.items():
        if path not in seen:
            raise InvalidRequest(f"{archive}: {path} is listed in its manifest but missing; nothing was written")
        size, digest = seen[path]
        if size != entry.size or digest != entry.sha256:
            raise InvalidRequest(
                f"{archive}: {path} is damaged (its checksum does not match the manifest); nothing was written. "
                "Copy the archive again from where it was made, or take an older one."
            )
    extra = sorted(set(seen) - set(listed))
    if extra:
        raise InvalidRequest(f"{archive}: {extra[0]} is not in its manifest; refused, nothing was written")
    for role in ("config", "database"):
        if manifest.parts[role] not in listed:
            raise InvalidRequest(f"{archive}: its {role} file is missing; nothing was written")
    revision = manifest.schema_revision
    if revision and not store_backup.known_revision(str(revision)):
        raise InvalidRequest(
            f"{archive}: its database has schema revision {revision!r}, which this publisher ({publisher_version()}) "
            "does not know: it was made by a newer publisher. Upgrade publisher and restore again; "
            "nothing was written."
        )
    return manifest


def member_text(archive: Path, name: str) -> str:
    with open_archive(archive) as tar:
        for member, member_name in members(tar, archive):
            if member_name == name and member.isfile():
                sink = io.BytesIO()
                read_member(tar, member, archive, sink)
                try:
                    return sink.getvalue().decode("utf-8-sig")
                except UnicodeDecodeError as exc:
                    raise InvalidRequest(f"{archive}: its {name} is not UTF-8 text; nothing was written") from exc
    raise InvalidRequest(f"{archive}: its {name} is missing; nothing was written")  # pragma: no cover


def unpack(archive: Path, manifest: Manifest, staging: Path) -> None:
    """Write every member under `staging`, checking each checksum again as it is written."""
    listed = {f.path: f for f in manifest.files}
    with open_archive(archive) as tar:
        for member, name in members(tar, archive):
            if name == MANIFEST:
                continue
            target = staging / name
            if member.isdir():
                target.mkdir(mode=0o755, parents=True, exist_ok=True)
                continue
            target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            private = name == manifest.parts["database"]
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
            with os.fdopen(fd, "wb") as sink:
                digest = read_member(tar, member, archive, sink)
            if digest != listed[name].sha256:
                raise InvalidRequest(f"{archive}: {name} changed while it was restored; nothing was kept")
