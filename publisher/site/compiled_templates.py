"""Templates compiled by one build, kept for the next: `.publisher-cache/compiled/`.

Jinja compiles a template's text to Python code before it can render it; the few pages
an edit renders spend most of their time there. `CompiledTemplates` keeps that code
(Jinja's own bytecode cache format: marshalled code objects) beside the build cache.

Unlike the rest of the build cache this is code, run when it is read. It is trusted for
the reason the cache's JSON is, held to the stricter bar that code needs:

- The folder is `build_cache.usable_folder`'s: made 0700, and not used at all when it is
  a link, belongs to another user or is writable by group or others. Only the
  publisher's own user (or root) can put a file there, and either could run code as
  the publisher anyway.
- Each file is opened without following a link and checked on the open descriptor: a
  regular file of this user, writable by no one else, or it is not read. A folder
  swapped after it was checked still cannot hand over a file someone else wrote.

Code from another template text, another Python or Jinja, or another publisher is never
used: each file is named by the SHA-256 of `build_cache.code_fingerprint()` (publisher's
own files, the Python version, the versions of Jinja and the other libraries), of the
environment's options that change what is compiled, and of Jinja's key for the template
(its name and file). Inside, Jinja's header (its format, Python's major and minor
version) and the SHA-1 of the template's text are checked again before the code is
loaded, so an edited template is compiled afresh. Files are written to a temporary name
and renamed, so a reader sees a whole file or none; anything unreadable is compiled again.
Files of other code go when a build first writes this code's: deleting the folder is
always safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from stat import S_ISREG

import jinja2
from jinja2.bccache import Bucket

from publisher.config import Config
from publisher.site import build_cache

__all__ = ["FOLDER", "CompiledTemplates"]

FOLDER = "compiled"
"""The folder inside the build cache."""

_SUFFIX = ".jinja"


class CompiledTemplates(jinja2.BytecodeCache):
    """Jinja's bytecode cache for the site's pages, in the build cache folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._fingerprint = ""
        self._pruned = False

    @classmethod
    def for_config(cls, config: Config) -> CompiledTemplates | None:
        """The cache of the publication's build cache; None when that folder may not be used."""
        parent = config.root.resolve() / build_cache.CACHE_FOLDER
        folder = parent / FOLDER
        if not (build_cache.usable_folder(parent) and build_cache.usable_folder(folder)):
            return None
        return cls(folder)

    def _path(self, bucket: Bucket) -> Path:
        if not self._fingerprint:
            self._fingerprint = _options_digest(bucket.environment)
        name = hashlib.sha256(f"{self._fingerprint}\0{bucket.key}".encode()).hexdigest()
        return self.folder / f"{self._fingerprint[:16]}-{name[:32]}{_SUFFIX}"

    def load_bytecode(self, bucket: Bucket) -> None:
        try:
            handle = os.open(self._path(bucket), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return  # not compiled yet
        with os.fdopen(handle, "rb") as file:
            found = os.fstat(file.fileno())
            if not _trusted(found):
                return
            bucket.load_bytecode(file)

    def dump_bytecode(self, bucket: Bucket) -> None:
        path = self._path(bucket)
        self._prune()
        try:
            handle, temp = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
        except OSError:
            return  # a full or read-only disk: the next build compiles again
        try:
            with os.fdopen(handle, "wb") as file:
                bucket.write_bytecode(file)
            Path(temp).replace(path)
        except OSError:
            with contextlib.suppress(OSError):
                Path(temp).unlink()

    def _prune(self) -> None:
        """Remove the code of other fingerprints (older publishers), once a process."""
        if self._pruned:
            return
        self._pruned = True
        mine = self._fingerprint[:16] + "-"
        try:
            with os.scandir(self.folder) as found:
                stale = [Path(e.path) for e in found if e.name.endswith(_SUFFIX) and not e.name.startswith(mine)]
        except OSError:
            return
        for path in stale:
            with contextlib.suppress(OSError):
                path.unlink()


def _trusted(found: os.stat_result) -> bool:
    """A regular file of this user that no one else may write."""
    if not S_ISREG(found.st_mode) or found.st_mode & 0o022:
        return False
    return not hasattr(os, "geteuid") or found.st_uid == os.geteuid()


def _options_digest(environment: jinja2.Environment) -> str:
    """The code and the options of `environment` that decide what a template compiles to."""
    options = (
        environment.block_start_string,
        environment.block_end_string,
        environment.variable_start_string,
        environment.variable_end_string,
        environment.comment_start_string,
        environment.comment_end_string,
        environment.line_statement_prefix,
        environment.line_comment_prefix,
        environment.trim_blocks,
        environment.lstrip_blocks,
        environment.newline_sequence,
        environment.keep_trailing_newline,
        environment.optimized,
        environment.is_async,
        getattr(environment, "newstyle_gettext", None),
        sorted(environment.extensions),
        sorted((k, repr(v)) for k, v in environment.policies.items() if isinstance(v, (str, bool, int))),
    )
    return hashlib.sha256(f"{build_cache.code_fingerprint()}\0{jinja2.__version__}\0{options!r}".encode()).hexdigest()
