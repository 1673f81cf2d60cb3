"""The standby build: the site's second tree, brought up to date by what changed, then switched in.

The output link points at one of two build folders, the live one; the other, the standby,
is the build served before it. The two differ only by the files the live build wrote or
removed, which the record (`.standby.json` in the builds folder) lists. A small build
therefore needs no copy of the site: it makes the standby equal to the live build (links
the live build's changed files into it, removes what the live build removed), writes its
own changes there, and switches the link to it in one rename; the tree it leaves becomes
the standby, and the record now lists this build's changes. One edit of a site of
thousands of files touches a few files, not thousands.

What keeps readers safe:

- The standby is never served while it is written, and the switch is one rename of the
  link, as for a full build: a reader sees one whole build or the next.
- A standby swapped out less than `GRACE` seconds ago may still be read by someone who
  resolved the link just before the switch: it is rewritten only once that moment has
  passed (the build waits out the rest). Files are replaced, never written through, so
  a file a reader holds open keeps its bytes.
- Before the standby is touched the record is removed, and every file written into the
  standby is named first in the journal (`.standby-journal` in the builds folder). A
  build killed at any moment leaves the live build served; the next build finds no
  record, so it takes the full path (a copy of the live build, as before), and clears
  the half-written standby by its manifest and the journal, never a file of the author's.
- A record that is missing, unreadable, or names other folders than the ones there are
  is not trusted: the build takes the full path, which leaves a fresh record behind.

Files the author put in the live build by hand (not in its manifest) are carried into the
standby before the switch, as the full path carries them: the live build's names are
walked (a directory listing, no file is read), and the record keeps them so that one the
author removed since is removed from the standby too.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISDIR
from typing import TypeGuard

__all__ = ["GRACE", "JOURNAL", "RECORD", "Standby"]

RECORD = ".standby.json"
"""The record of the standby build, in the builds folder (never served)."""
JOURNAL = ".standby-journal"
"""Files written into the standby by a build under way: its first line names the standby."""
GRACE = 0.5
"""Seconds after its switch before a tree a reader may still be reading is written again."""
_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Standby:
    """The two trees behind the output link, and how they differ."""

    live: str
    """The build folder the link pointed at when the record was written."""
    standby: str
    """The other build folder: the live one but for `changed`."""
    changed: tuple[str, ...]
    """Files the live build wrote or removed (relative paths): the two trees differ by these."""
    extras: tuple[str, ...]
    """Files not of publisher's (the author's own) carried into both trees."""
    swapped: int
    """When the standby stopped being served (`time.time_ns`); 0 if it never was."""

    @staticmethod
    def load(builds: Path, live: Path) -> Standby | None:
        """The record, if it describes `live` and a standby folder that exists; None otherwise."""
        try:
            found = json.loads((builds / RECORD).read_bytes())
        except (OSError, ValueError, RecursionError):
            return None
        if not isinstance(found, dict) or found.get("format") != _FORMAT:
            return None
        names, changed, extras, swapped = (
            found.get("trees"), found.get("changed"), found.get("extras"), found.get("swapped")
        )
        if not (
            isinstance(names, list) and len(names) == 2 and all(isinstance(name, str) for name in names)
            and _strings(changed) and _strings(extras) and type(swapped) is int
        ):
            return None
        if names[0] != live.name or live.parent != builds or not _our_folder(builds, names[1]):
            return None
        return Standby(names[0], names[1], tuple(changed), tuple(extras), swapped)

    def save(self, builds: Path) -> None:
        """Write the record whole (a temp file renamed), or not at all."""
        data = json.dumps(
            {
                "format": _FORMAT, "trees": [self.live, self.standby], "changed": list(self.changed),
                "extras": list(self.extras), "swapped": self.swapped,
            },
            separators=(",", ":"),
        ).encode("utf-8", "surrogatepass")
        temp = builds / f"{RECORD}.tmp"
        with contextlib.suppress(OSError):
            temp.write_bytes(data)
            temp.replace(builds / RECORD)

    def wait(self) -> None:
        """Return once no reader can still be reading the standby through the old link."""
        if self.swapped:
            left = GRACE - (time.time_ns() - self.swapped) / 1e9
            if left > 0:
                time.sleep(min(left, GRACE))


def forget(builds: Path) -> None:
    """Remove the record: from now on the standby is not trusted (see the module's docstring)."""
    with contextlib.suppress(FileNotFoundError):
        (builds / RECORD).unlink()


def _strings(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _our_folder(builds: Path, name: str) -> bool:
    if not name.startswith("v") or "/" in name or name in (".", ".."):
        return False
    try:
        return (builds / name).is_dir() and not (builds / name).is_symlink()
    except OSError:
        return False


class Journal:
    """The files written into a standby by the build under way, one line each, appended as
    they are written: a build killed half way leaves them named (see `journaled`)."""

    def __init__(self, builds: Path, standby: Path) -> None:
        self.path = builds / JOURNAL
        self.handle = self.path.open("w", encoding="utf-8", errors="surrogatepass")
        self.named: set[str] = set()
        self._line(standby.name)

    def name(self, rels: Iterable[str]) -> None:
        for rel in rels:
            if rel not in self.named:
                self.named.add(rel)
                self._line(rel)

    def _line(self, text: str) -> None:
        # Written through at once: a kill -9 loses nothing the kernel has been given.
        self.handle.write(text + "\n")
        self.handle.flush()

    def close(self, *, remove: bool) -> None:
        self.handle.close()
        if remove:
            self.path.unlink(missing_ok=True)


def journaled(builds: Path) -> tuple[str, frozenset[str]]:
    """The build folder the journal is of, and the files it names as written into it
    (("", empty) when there is no journal)."""
    try:
        lines = (builds / JOURNAL).read_text(encoding="utf-8", errors="surrogatepass").splitlines()
    except OSError:
        return "", frozenset()
    return (lines[0], frozenset(lines[1:])) if lines else ("", frozenset())


def listing(top: str) -> dict[str, int]:
    """Every file and link under the folder `top` by its relative path, with its inode as
    the listing gives it (no file is looked at: one call per folder, not per file)."""
    found: dict[str, int] = {}
    pending = [(top, "")]
    while pending:
        folder, prefix = pending.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append((entry.path, prefix + entry.name + "/"))
                    else:
                        found[prefix + entry.name] = entry.inode()
        except OSError:
            continue  # gone or unreadable: nothing of it to carry
    return found


def authors_files(names: Iterable[str], ours: Collection[str], manifest: str) -> list[str]:
    """The files among `names` that no build wrote (not in `ours`, not the manifest, not a
    killed build's temp file): the author's own, carried from build to build."""
    return sorted(
        rel for rel in names
        if rel not in ours and rel != manifest
        and not (rel.rpartition("/")[2].startswith(".") and rel.endswith(".tmp"))
    )


def same_file(first: str, second: str) -> bool:
    """Whether the two paths are one file (a hard link), or links with one target."""
    try:
        one, two = os.lstat(first), os.lstat(second)
    except OSError:
        return False
    if (one.st_dev, one.st_ino) == (two.st_dev, two.st_ino):
        return True
    return os.path.islink(first) and os.path.islink(second) and os.readlink(first) == os.readlink(second)  # noqa: PTH114, PTH115


def carry(source: str, target: str) -> None:
    """Make `target` the file `source` is (a hard link, a copy of a link, or a copy where
    the file system refuses links), replacing whatever file stands there."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(target)  # noqa: PTH108
    try:
        _carry(source, target)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)  # noqa: PTH103, PTH120
        _carry(source, target)


def _carry(source: str, target: str) -> None:
    if os.path.islink(source):  # noqa: PTH114
        os.symlink(os.readlink(source), target)  # noqa: PTH115, PTH211
        return
    try:
        os.link(source, target, follow_symlinks=False)
    except FileNotFoundError:
        raise
    except OSError:
        import shutil

        shutil.copy2(source, target)


def folders_only(top: str, rel: str) -> bool:
    """Whether every folder on the way from `top` to `rel` is a folder, not a link or a file
    (or is still missing): nothing is written or removed through a link."""
    parts = rel.split("/")
    path = top
    for part in parts[:-1]:
        path = f"{path}/{part}"
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return True
        if not S_ISDIR(mode):
            return False
    return True


def drop(top: str, rel: str) -> None:
    """Remove the file or link `rel` of the standby (never a folder), and the folders it
    leaves empty."""
    path = f"{top}/{rel}"
    try:
        if S_ISDIR(os.lstat(path).st_mode):
            return
        os.unlink(path)  # noqa: PTH108
    except FileNotFoundError:
        return
    parts = rel.split("/")[:-1]
    while parts:
        try:
            os.rmdir(f"{top}/{'/'.join(parts)}")  # noqa: PTH106
        except OSError:
            return
        parts.pop()


def as_record(live: str, standby: str, changed: Iterable[str], extras: Iterable[str], swapped: int) -> Standby:
    return Standby(live, standby, tuple(sorted(set(changed))), tuple(sorted(set(extras))), swapped)
