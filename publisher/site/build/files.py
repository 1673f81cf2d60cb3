"""The output's files: where a build goes, its manifest, and what may be replaced or removed.

`output_folder` refuses an output that would publish private files; the manifest records
every file a build wrote with its hash, so that only those are ever replaced or removed.
Nothing here follows a link out of the output: a path is checked inside it, component by
component, before anything is read or removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from stat import S_ISDIR, S_ISLNK, S_ISREG

from publisher.config import Config, sqlite_path
from publisher.errors import BuildError
from publisher.site import build_cache
from publisher.site.build import standby

if sys.platform != "win32":
    import fcntl

__all__ = ["MANIFEST", "builds_folder", "manifest_files", "output_folder"]


_SECRET_FILE_NAME = ".publisher-secret"  # noqa: S105  (a file name: `publisher.mail.tokens`', not loaded here)

MANIFEST = ".publisher-manifest.json"
"""Every file the last build wrote, relative to the output folder, with its SHA-256."""


def output_folder(config: Config) -> Path:
    """`build.output` as an absolute path whose last part is not resolved (it is the link
    that switches builds), once it is known not to expose the publication's own files.

    Raises BuildError when the output is, or contains, the filesystem root, the
    publication folder, the content or template folders, the database (or the journal
    files SQLite keeps beside it), the outbox, the DKIM keys, the build cache or the
    generated secret: everything in the output may be served, and the output path itself
    is replaced by a link at every build.
    """
    raw = config.root.resolve() / str(config["build.output"])
    normal = Path(os.path.normpath(raw))
    output = normal.parent.resolve() / normal.name if normal.name else normal
    protected: list[tuple[str, Path]] = [
        ("the filesystem root", Path(output.anchor)),
        ("the publication folder (config.toml)", config.root.resolve()),
        ("the content folder [build] content", config.path_of("build.content")),
        ("the template folder [build] templates", config.path_of("build.templates")),
        ("the outbox [delivery.maildir] path", config.path_of("delivery.maildir.path")),
    ]
    for key in ("private_key_file", "ed25519_key_file"):
        if str(config[f"delivery.dkim.{key}"]).strip():
            protected.append((f"the DKIM key [delivery.dkim] {key}", config.path_of(f"delivery.dkim.{key}")))
    database = sqlite_path(config.store_url)
    if database is not None:
        # Its journal, WAL and shared-memory files too: SQLite makes them beside it at any time.
        place = (config.root / database).resolve()
        for suffix in ("", "-journal", "-wal", "-shm"):
            protected.append(("the database [store] url", place.with_name(place.name + suffix)))
    root = config.root.resolve()
    protected.append(("the build cache (.publisher-cache)", root / build_cache.CACHE_FOLDER))
    protected.append(("the generated secret (.publisher-secret)", root / _SECRET_FILE_NAME))
    for candidate in dict.fromkeys((output, output.resolve())):
        for name, path in protected:
            if candidate == path or candidate in path.parents:
                raise BuildError(
                    f"config.toml: [build] output = {config['build.output']!r} is {candidate}, which "
                    f"{'is' if candidate == path else 'contains'} {name}; everything in the output "
                    "may be served to anyone, so give it a folder of its own, e.g. output = \"public\""
                )
    return output


def builds_folder(output: Path) -> Path:
    """Where the builds behind `output` are staged and kept: `.<name>.builds` beside it."""
    return output.with_name(f".{output.name}.builds")


def manifest_files(root: Path) -> frozenset[str]:
    """The files the build served from `root` wrote (empty without a readable manifest)."""
    files, _note = _read_manifest(root)
    return frozenset(files)


def _check_output(output: Path) -> None:
    """Refuse an output the build would have to replace without having made it: a file, or
    a link that is not the build's own (to a build in the builds folder beside it)."""
    if output.is_symlink():
        target = PurePosixPath(os.readlink(output))  # noqa: PTH115
        ours = len(target.parts) == 2 and target.parts[0] == builds_folder(output).name
        if not ours:
            raise BuildError(
                f"cannot write to {output}: it is a link to {target}, which publisher did not make, and a "
                "build replaces the output with a link of its own; remove the link (and point your web "
                "server at the output instead), or set [build] output to the folder itself"
            )
        if not output.exists():
            raise BuildError(f"cannot write to {output}: it is a broken link; remove it and build again")
    if output.exists() and not output.is_dir():
        raise BuildError(f"cannot write to {output}: it is a file, not a folder; set [build] output to a folder")


def _prune(builds: Path, version: Path, *, keep: str = "") -> list[str]:
    """Remove the builds other than `version` and the standby `keep`, and what killed
    builds left; warnings.

    Only what a build made goes: its stages (`tmp-*`), its links (`link-*`), and in an
    old build the files its manifest lists and those carried into `version` (the same
    file, hard-linked). Anything else in an old build was made there while it was served
    (a file the author or another program wrote into the output, a database's journal):
    it is left where it is, with its build folder, and named in a warning. Other names
    in the builds folder are not publisher's and are left alone. A standby a killed build
    was bringing up holds files its manifest does not list yet: its journal names them.
    """
    notes: list[str] = []
    journal, journaled = standby.journaled(builds)
    for old in builds.iterdir():
        name = old.name
        if old == version or name in (".lock", keep) or old.is_symlink() != name.startswith("link-"):
            continue
        if name.startswith("link-"):
            old.unlink(missing_ok=True)
        elif name.startswith("tmp-") and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)  # a stage of a killed build: links and new files
        elif name.startswith("v") and old.is_dir():
            left = _clear_build(old, version, journaled if name == journal else ())
            if left:
                shown = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
                notes.append(
                    f"kept {builds.name}/{name}: it holds files publisher did not write ({shown}), made "
                    "there while it was the site; move them where they belong, then remove the folder"
                )
    if not journal or not (builds / journal).is_dir():
        (builds / standby.JOURNAL).unlink(missing_ok=True)  # its folder is gone: nothing to name
    return notes


def _clear_build(old: Path, new: Path, journaled: Iterable[str] = ()) -> list[str]:
    """Remove from the old build `old` what a build wrote (see `_prune`); the others' paths.

    os calls on strings: an old build of thousands of files is cleared at a full build's switch.
    """
    listed, _note = _read_manifest(old)
    written = {*listed, *journaled}
    top, fresh = os.fspath(old), os.fspath(new)
    device = os.lstat(top).st_dev
    left: list[str] = []

    def carried(entry: os.DirEntry[str], rel: str) -> bool:
        try:
            twin = os.lstat(os.path.join(fresh, rel))  # noqa: PTH118
        except OSError:
            return False
        if entry.is_symlink():
            return S_ISLNK(twin.st_mode) and os.readlink(entry.path) == os.readlink(os.path.join(fresh, rel))  # noqa: PTH115, PTH118
        return twin.st_dev == device and twin.st_ino == entry.inode()

    def clear(folder: str, prefix: str) -> None:
        try:
            with os.scandir(folder) as found:
                entries = list(found)
        except OSError:
            return
        for entry in entries:
            rel = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                if entry.stat(follow_symlinks=False).st_dev != device:
                    left.append(rel + "/")  # another file system mounted here: never ours
                    continue
                clear(entry.path, rel + "/")
                continue
            ours = (
                rel in written or rel == MANIFEST
                or (entry.name.startswith(".") and entry.name.endswith(".tmp"))  # a killed build's
                or carried(entry, rel)
            )
            if not ours:
                left.append(rel)
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)  # noqa: PTH108
        with contextlib.suppress(OSError):
            os.rmdir(folder)  # noqa: PTH106  (empty unless something was kept)

    clear(top, "")
    return left


def _served(output: Path) -> Path | None:
    """The folder of the build being served: the link's target, a plain folder left by an
    older publisher, or, when a switch from such a folder was cut short, the newest build."""
    if output.is_dir():
        return output.resolve()
    if output.is_symlink() or output.exists():
        return None
    builds = builds_folder(output)
    try:
        done = [p for p in builds.iterdir() if p.name.startswith("v") and p.is_dir()]
    except OSError:
        return None
    return max(done, key=lambda p: p.name) if done else None


@contextlib.contextmanager
def _builds_lock(output: Path) -> Iterator[None]:
    """One build at a time per output: the next waits, so no build prunes another's stage."""
    builds = builds_folder(output)
    try:
        builds.mkdir(mode=0o755, exist_ok=True)
        if not S_ISDIR(os.lstat(builds).st_mode):
            raise BuildError(
                f"cannot build into {builds}: it is a link or a file, not the folder publisher keeps its "
                "builds in (every build there may be removed); remove it and build again"
            )
        handle = (builds / ".lock").open("a")
    except OSError as exc:
        raise BuildError(
            f"cannot write in {builds}: {exc.strerror or exc}; check that the folder holding "
            "[build] output is one you can write"
        ) from exc
    with handle:
        if sys.platform != "win32":
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _link_tree(source: Path, target: Path) -> None:
    """Hard-link every file of `source` into the empty folder `target` (a copy where the
    filesystem refuses a link), so that unchanged files keep their inode and mtime."""
    _link_folder(os.fspath(source), os.fspath(target))


def _link_folder(source: str, target: str) -> None:
    # os and str paths, not pathlib: a site of thousands of pages is linked at every build,
    # and pathlib's objects cost more than the links themselves.
    with os.scandir(source) as entries:
        for entry in entries:
            here = os.path.join(target, entry.name)  # noqa: PTH118
            if entry.is_symlink():
                os.symlink(os.readlink(entry.path), here)  # noqa: PTH115, PTH211
            elif entry.is_dir(follow_symlinks=False):
                os.mkdir(here, 0o755)  # noqa: PTH102
                _link_folder(entry.path, here)
            elif entry.name.startswith(".") and entry.name.endswith(".tmp"):
                continue  # a temp file an older publisher's killed build left behind
            else:
                try:
                    os.link(entry.path, here, follow_symlinks=False)
                except OSError:
                    shutil.copy2(entry.path, here)


def _refuse_obstacles(obstacles: Sequence[str], hints: Sequence[str]) -> None:
    """Stop the build, writing nothing, when files not of publisher's stand where it writes."""
    if obstacles:
        shown = [*obstacles[:10], *([f"… and {len(obstacles) - 10} more"] if len(obstacles) > 10 else [])]
        raise BuildError(
            "these files are in the way and were not written by publisher, so nothing was "
            "written: " + "; ".join(shown) + ". Move them out of the output folder (or set "
            "[build] output to a folder of its own), or change the article's `slug:`" + "".join(hints)
        )


def _stale(root: Path, previous: Mapping[str, str | None], now: Iterable[str]) -> tuple[list[str], list[str]]:
    """Files the last build wrote and this one does not: (to remove, to keep because someone
    changed them since)."""
    removed: list[str] = []
    kept: list[str] = []
    for rel in sorted(rel for rel in set(previous) - set(now) if _inside_or_none(root, rel)):
        path = root / rel
        if not _plain_file(root, rel):
            continue  # gone, or reached through a link: never removed
        recorded = previous[rel]
        if recorded is None or _file_digest(path) == recorded:
            removed.append(rel)
        else:
            kept.append(rel)
    return removed, kept


def _unwritable(paths: Iterable[Path]) -> list[str]:
    """Folders (or the nearest existing ancestors of missing ones) the build could not
    create files in: found before writing, so a build is never left half done by them."""
    locked: set[str] = set()
    for folder in {path.parent for path in paths}:
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not os.access(existing, os.W_OK | os.X_OK):
            locked.add(str(existing))
    return sorted(locked)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _file_digest(path: Path) -> str | None:
    try:
        return _digest(path.read_bytes())
    except OSError:
        return None


def _manifest_bytes(hashes: Mapping[str, str | None]) -> bytes:
    """`json.dumps({"files": sorted hashes}, indent=1)` and a newline, byte for byte, by the
    C string encoder (json's indenting encoder is pure Python: a tenth of a second a build)."""
    if not hashes:
        return b'{\n "files": {}\n}\n'
    quote = json.encoder.encode_basestring_ascii
    lines = ",\n".join(
        [f"  {quote(rel)}: {'null' if digest is None else quote(digest)}" for rel, digest in sorted(hashes.items())]
    )
    return f'{{\n "files": {{\n{lines}\n }}\n}}\n'.encode()


def _obstacle(root: Path, path: Path, *, owned: bool) -> str:
    """Why `path` cannot be written without harming something that is not ours; "" if it can.

    Each folder on the way down from `root` must be a folder, not a link to one: written
    through a link, the file would land, or replace one, outside the output.
    """
    # os calls on strings, not pathlib: a first build asks this of thousands of files.
    top, name = os.fspath(root), os.fspath(path)
    parts = os.path.relpath(name, top).split(os.sep)  # noqa: PTH206
    for depth in range(1, len(parts)):
        try:
            folder = os.lstat(os.path.join(top, *parts[:depth]))  # noqa: PTH118
        except (FileNotFoundError, NotADirectoryError):
            return ""  # the rest is made by the build
        if S_ISLNK(folder.st_mode):
            return f"{parts[depth - 1]} is a link, where the build needs a folder of its own"
        if not S_ISDIR(folder.st_mode):
            return f"{parts[depth - 1]} is a file where the build needs a folder"
    try:
        found = os.lstat(name)
    except (FileNotFoundError, NotADirectoryError):
        return ""
    if S_ISLNK(found.st_mode) or not S_ISREG(found.st_mode):
        return "is a folder or a link, not a file the build wrote"
    return "" if owned else "exists and was not written by publisher"


def _plain_file(root: Path, rel: str) -> bool:
    """Whether `rel` under `root` is a regular file reached through folders only, no link."""
    path = root
    parts = PurePosixPath(rel).parts
    for depth, part in enumerate(parts, start=1):
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            return False
        if not (S_ISREG(mode) if depth == len(parts) else S_ISDIR(mode)):
            return False
    return True


def _inside_or_none(root: Path, rel: str) -> Path | None:
    try:
        return _inside(root, rel)
    except BuildError:
        return None


def _inside(root: Path, rel: str) -> Path:
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise BuildError(f"refusing to write {rel!r}: it is outside the output folder {root}")
    return root.joinpath(*pure.parts)


def _read_manifest(root: Path) -> tuple[dict[str, str | None], str]:
    """The files the last build wrote, each with its hash (None from an older manifest)."""
    path = root / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, ""
    except (OSError, ValueError) as exc:
        return {}, f"{path}: unreadable ({exc}); stale files of removed articles are kept"
    files = data.get("files") if isinstance(data, dict) else None
    if isinstance(files, list) and all(isinstance(f, str) for f in files):
        return dict.fromkeys(files), ""
    if isinstance(files, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        return dict(files), ""
    return {}, f"{path}: not a publisher manifest; stale files of removed articles are kept"


def _same_bytes(path: Path, data: bytes) -> bool:
    try:
        if path.stat().st_size != len(data):
            return False
        return path.read_bytes() == data
    except OSError:
        return False


def _remove(root: Path, rel: str) -> None:
    """Remove a stale file and any folders it leaves empty (never `root` itself, nor
    anything reached through a link)."""
    path = root / rel
    if not _plain_file(root, rel):
        return
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise BuildError(f"cannot remove stale {path}: {exc.strerror or exc}") from exc
    parent = path.parent
    while parent != root and root in parent.parents:
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent
