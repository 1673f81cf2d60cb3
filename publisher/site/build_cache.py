"""What one build remembers for the next, in `.publisher-cache/` beside config.toml.

Two things, so that a rebuild does the work of what changed and nothing else:

- Parsed articles. An article file is parsed again only when its bytes, its name, the
  settings that parsing reads (zone, site URL, default author) or the code that parses
  (publisher and its Markdown, YAML and sanitising libraries) change: the key is a
  SHA-256 of all of them. The index (`articles.json`) keeps each article without its
  HTML, which waits in `html/<key>.html` until a page or feed needs it, so a build holds
  the metadata of every article and the text of only the few it is rendering. A file
  whose name, size, modification and change times and inode are as the last build saw
  them (`files.json`) is not even read: its key stands (the change time moves on every
  write and cannot be set back, as git's index relies on).
- Rendered outputs (`renders-<output>.json`): for each file of the build being served,
  the key of everything its bytes were made from (see `publisher.site.outputs`), its hash,
  its size, mtime and inode, and the warnings its rendering gave. A file whose key is
  unchanged and which is still as the build left it is not rendered again. Beside them,
  what that build's archive was planned from (`PlanSnapshot`), so that the next build of
  the same articles in the same order plans only the pages an edit can change.
- The template graph (`templates.json`): the names each template's text refers to
  (extends, includes, imports), by the SHA-256 of the text, so that a build follows the
  graph (`publisher.site.outputs`) without Jinja parsing a template it has seen before; a
  template whose text changed has another hash, and is parsed again.
- Feeds that `publisher check` found well formed (`feeds-checked.json`), by the hash of
  their bytes: a check reads with feedparser only the feeds that changed.

The index and `files.json` are written whole only now and then: while fewer than
`CHANGES_MOST` of their entries changed since, only the changes are written, beside them
(`articles-changes.json`, `files-changes.json`), naming the file they change by its size,
times and inode, so one edit does not write the entries of thousands of articles again.

Everything here is a hint, never the truth: an entry that is missing, unreadable, from
another format or another version of the code is ignored and the work is done again,
so deleting the folder is always safe. Files are written to a temporary name and renamed,
so a build killed half way, or two builds at once, leave whole files; the worst a race
can do is make the next build parse or render again. The folder holds drafts, so it is
kept out of the output folder (and out of git: `publisher init` ignores it).

A cache never executes. Its files are JSON, read into plain values and checked field by
field (no pickle: whoever could write one would run code as the publisher). The folder
is created 0700 whatever the umask, its files 0600; a folder that is a link, belongs to
another user or is writable by group or others is not used at all (a warning names it),
since anyone who can write there could put words in the author's articles.

The one folder of code, Jinja's compiled templates (`compiled/`), is read only from files
of this user that no one else may write, and keyed by the code and the template text
(`publisher.site.compiled_templates`).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import importlib
import itertools
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, tzinfo
from pathlib import Path
from stat import S_ISDIR, S_ISREG
from typing import Any, NamedTuple
from warnings import catch_warnings, simplefilter

from publisher import content
from publisher.config import Config
from publisher.errors import ContentError
from publisher.models import Article

__all__ = [
    "CACHE_FOLDER",
    "ArticleCache",
    "PlanSnapshot",
    "RenderRecord",
    "Rendered",
    "TemplateRefs",
    "code_fingerprint",
    "remember_well_formed",
    "usable_folder",
    "well_formed_feeds",
]


CACHE_FOLDER = ".publisher-cache"
"""The cache's folder in the publication folder (the folder of config.toml)."""

_FORMAT = 3
"""Bumped whenever what the cache stores changes shape: older entries are then ignored."""

PARALLEL_FROM = 200
"""Articles to parse from which `ArticleCache.warm` starts worker processes."""
_MISSES = 16
"""Changed files among those the last build saw from which `read` stops looking at them
one by one and the rest are looked at at once (`ArticleCache.warm`)."""

_LIBRARIES = (
    "markdown-it-py",
    "mdit-py-plugins",
    "nh3",
    "pyyaml",
    "python-slugify",
    "jinja2",
    "feedgen",
    "premailer",
    "babel",
    "lxml",
    "markupsafe",
)
"""Libraries whose version changes what an article parses or renders to."""

_PARSE_SETTINGS = ("publication.timezone", "publication.url", "publication.author")
"""The settings `content.parse_article` reads."""


def _digest(*parts: bytes | str) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
        hasher.update(len(data).to_bytes(8, "big"))
        hasher.update(data)
    return hasher.hexdigest()


_CODE: list[str] = []


def code_fingerprint() -> str:
    """The code that parses and renders: publisher's own files (name, size, mtime, so that
    an edited checkout counts), the Python version and the versions of the libraries."""
    if _CODE:
        return _CODE[0]
    package = os.fspath(Path(__file__).resolve().parent.parent)
    parts: list[str] = [str(_FORMAT), sys.version]
    # Strings and scandir, not pathlib: a few hundred files are looked at in every build.
    pending = [(package, "")]
    while pending:
        folder, prefix = pending.pop()
        with os.scandir(folder) as found:
            entries = sorted(found, key=lambda entry: entry.name)
        files = [e for e in entries if not e.is_dir() and not e.name.endswith((".pyc", ".pyo"))]
        for entry in files:
            stat = entry.stat()
            parts.append(f"{prefix}{entry.name}:{stat.st_size}:{stat.st_mtime_ns}")
        folders = [e for e in entries if e.is_dir() and e.name != "__pycache__"]
        pending.extend((e.path, f"{prefix}{e.name}/") for e in reversed(folders))
    parts.extend(f"{library}=={_version(library)}" for library in _LIBRARIES)
    _CODE.append(_digest(*parts))
    return _CODE[0]


_INSTALLED: list[dict[str, str]] = []


def _version(library: str) -> str:
    """The installed version of `library` ("absent" if none), as `importlib.metadata` gives it.

    Read from the names of the `.dist-info` folders on sys.path, the first of a name
    winning as it does for the import system: one listing of each folder, where
    `importlib.metadata` (a fiftieth of a second to load) opens each library's metadata.
    A library installed another way (an .egg-info) is asked of `importlib.metadata`.
    """
    if not _INSTALLED:
        found: dict[str, str] = {}
        for entry in sys.path:
            try:
                with os.scandir(entry or ".") as listed:
                    names = [item.name for item in listed if item.name.endswith(".dist-info")]
            except OSError:
                continue
            for name in names:
                project, _dash, version = name[: -len(".dist-info")].partition("-")
                if version and "-" not in version:
                    found.setdefault(_project(project), version)
        _INSTALLED.append(found)
    known = _INSTALLED[0].get(_project(library))
    if known is not None:
        return known
    from importlib import metadata

    try:
        return metadata.version(library)
    except metadata.PackageNotFoundError:
        return "absent"


def _project(name: str) -> str:
    """A project's name as PEP 503 normalises it, with "_" for "-" as dist-info folders have it."""
    return re.sub(r"[-_.]+", "_", name).lower()


_WARNED: set[str] = set()


def usable_folder(folder: Path) -> bool:
    """Whether the cache may read and write `folder`, created 0700 if missing.

    False, with one logged warning a process, when it is a link or not a folder, belongs
    to another user, or is writable by group or others: whoever can write there could put
    words in the articles a build publishes, so its entries are not trusted.
    """
    try:
        folder.mkdir(mode=0o700)
        folder.chmod(0o700)  # whatever the umask
    except FileExistsError:
        pass
    except OSError:
        return False  # cannot be made here: builds simply do all the work
    try:
        found = os.lstat(folder)
    except OSError:
        return False
    problem = ""
    if not S_ISDIR(found.st_mode):
        problem = "it is a link or a file, not a folder"
    elif hasattr(os, "geteuid") and found.st_uid != os.geteuid():
        problem = f"it belongs to another user (uid {found.st_uid})"
    elif found.st_mode & 0o022:
        problem = f"it is writable by group or others (mode {found.st_mode & 0o777:04o})"
    if problem:
        if str(folder) not in _WARNED:
            _WARNED.add(str(folder))
            import logging  # for this warning alone: a build that logs nothing never loads it

            logging.getLogger(__name__).warning(
                "not using the build cache %s: %s, so anyone could plant entries in it; remove the "
                "folder (builds recreate it, mode 0700) or make it yours alone (chmod 700)",
                folder,
                problem,
            )
        return False
    return True


def _load(path: Path, kind: str, fingerprint: str) -> Any:
    """The payload of a cache file written by `_save` with the same kind and fingerprint;
    None for anything else (missing, truncated, garbage, another format or version).
    JSON: reading it builds plain values and runs nothing."""
    try:
        with path.open("rb") as handle:
            found = json.loads(handle.read())
    except (OSError, ValueError, RecursionError):  # a cache that cannot be read is a miss
        return None
    if not isinstance(found, dict) or found.get("head") != [kind, _FORMAT, fingerprint]:
        return None
    return found.get("payload")


class _Map(NamedTuple):
    """A cache file of entries by name, as `_load_map` found it."""

    entries: dict[str, Any]
    """Its entries, with the changes written beside it applied."""
    base: dict[str, Any]
    """The entries of the file itself."""
    token: str
    """The file's size, times and inode: the changes beside it name the file they change."""


_NO_MAP = _Map({}, {}, "")

CHANGES_MOST = 64
"""Entries changed since a map file was written whole, past which (or past a sixteenth of
its entries, if more) it is written whole again (`_save_map`); below, only the changes
are written, beside it."""


def _changes_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}-changes.json")


def _load_map(path: Path, kind: str, fingerprint: str) -> _Map:
    """A file `_save_map` wrote: its entries (a dict), with the changes beside it applied
    when they name this very file; `_NO_MAP` for anything else, as `_load` has it."""
    try:
        with path.open("rb") as handle:
            seen = os.fstat(handle.fileno())
            found = json.loads(handle.read())
    except (OSError, ValueError, RecursionError):
        return _NO_MAP
    if not isinstance(found, dict) or found.get("head") != [kind, _FORMAT, fingerprint]:
        return _NO_MAP
    base = found.get("payload")
    if not isinstance(base, dict):
        return _NO_MAP
    token = f"{seen.st_size}:{seen.st_mtime_ns}:{seen.st_ctime_ns}:{seen.st_ino}"
    changes = _load(_changes_path(path), f"{kind} changes", f"{fingerprint}\0{token}")
    if not isinstance(changes, dict) or not isinstance(changes.get("set"), dict) or not _strings(changes.get("gone")):
        return _Map(base, base, token)  # none, or of another file: the file alone
    entries = dict(base)
    for name in changes["gone"]:
        entries.pop(name, None)
    entries.update(changes["set"])
    return _Map(entries, base, token)


def _save_map(path: Path, kind: str, fingerprint: str, entries: Mapping[str, Any], found: _Map) -> None:
    """Keep `entries`: only what changed since `found`'s file was written whole, beside it,
    while that is at most `CHANGES_MOST` entries or a sixteenth of the file's (one edit
    writes a few kilobytes, not the entries of thousands of articles); else the whole
    file, its changes removed.

    Either file is written whole or not at all, and the changes name the file they change
    (its size, times and inode), so a file written whole since, or by another build,
    is never read with changes meant for another.
    """
    base = found.base
    if found.token:
        changed = {name: value for name, value in entries.items() if base.get(name) != value}
        gone = [name for name in base if name not in entries]
        if len(changed) + len(gone) <= max(CHANGES_MOST, len(base) // 16):
            payload = {"set": changed, "gone": gone}
            _save(_changes_path(path), f"{kind} changes", f"{fingerprint}\0{found.token}", payload)
            return
    _save(path, kind, fingerprint, dict(entries))
    with contextlib.suppress(OSError):
        _changes_path(path).unlink(missing_ok=True)


def _save(path: Path, kind: str, fingerprint: str, payload: Any) -> None:
    """Write whole or not at all; a cache that cannot be written only costs the next build time."""
    data = json.dumps({"head": [kind, _FORMAT, fingerprint], "payload": payload}, separators=(",", ":"))
    _write_bytes(path, data.encode("ascii"))


def _write_text(path: Path, text: str) -> None:
    _write_bytes(path, text.encode("utf-8", "surrogatepass"))


def _write_bytes(path: Path, data: bytes) -> None:
    with contextlib.suppress(OSError):
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            Path(temp).replace(path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise


def _html_folder(folder: Path) -> bool:
    """The cache's `html/` made (0700) and fit for use, like the cache's own folder."""
    return usable_folder(folder / "html")


_FIELDS = tuple(field.name for field in fields(Article))
_MOMENTS = frozenset({"date", "updated", "send_at"})
_OPTIONAL = frozenset({"updated", "send_at", "image"})


class _Entry(NamedTuple):
    """One parsed article in the index (a plain tuple: thousands load in milliseconds)."""

    values: tuple[Any, ...]
    """The article's fields in order, `html` left empty."""
    html_digest: str
    about: str
    """The hash of the article without its HTML (see `publisher.site.outputs.Bodies.about`)."""

    @property
    def article(self) -> Article:
        return Article(*self.values)

    def as_json(self) -> list[Any]:
        values = [
            value.isoformat() if isinstance(value, datetime) else list(value) if isinstance(value, tuple) else value
            for value in self.values
        ]
        return [values, self.html_digest, self.about]

    @classmethod
    def from_json(cls, found: Any, tz: tzinfo) -> _Entry | None:
        """The entry `as_json` gave, each field checked for its type; None if any is wrong.

        The fields' JSON types are checked in one look against every shape an entry may
        have (`_SHAPES`): thousands of entries load at every build.
        """
        if type(found) is not list or len(found) != 3:
            return None
        raw, html_digest, about = found
        if type(raw) is not list or type(html_digest) is not str or type(about) is not str:
            return None
        if tuple(map(type, raw)) not in _SHAPES:
            return None
        values = list(raw)
        tags = raw[_TAGS_AT]
        if tags and set(map(type, tags)) != {str}:
            return None
        values[_TAGS_AT] = tuple(tags)
        for position in _MOMENTS_AT:
            value = raw[position]
            if value is None:
                continue
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                return None
            if moment.tzinfo is None:
                return None
            values[position] = moment.astimezone(tz)  # the zone parsing gave it, by name
        return cls(tuple(values), html_digest, about)


def _shapes() -> frozenset[tuple[type, ...]]:
    """The JSON types an entry's fields may have: text, a list of tags, a flag, and null
    for the optional ones."""
    kinds: list[tuple[type, ...]] = []
    for name in _FIELDS:
        kind: tuple[type, ...] = (list,) if name == "tags" else (bool,) if name == "draft" else (str,)
        kinds.append((*kind, type(None)) if name in _OPTIONAL else kind)
    return frozenset(itertools.product(*kinds))


_SHAPES = _shapes()
_TAGS_AT = _FIELDS.index("tags")
_MOMENTS_AT = tuple(position for position, name in enumerate(_FIELDS) if name in _MOMENTS)


class ArticleCache:
    """Parsed articles by the key of their file's bytes, the parse settings and the code.

    `read` is a `content.ArticleReader`: it returns the article *without its HTML*
    (`html` is ""); `full` gives it back whole. `key` is the article's key, which
    `publisher.site.outputs` builds its own keys from. `save` writes the index of the
    articles read this time (dropping those of deleted or edited files) and removes
    their orphaned HTML.
    """

    def __init__(self, config: Config, folder: Path | None = None) -> None:
        self.config = config
        self.folder = folder or config.root.resolve() / CACHE_FOLDER
        self.fingerprint = _digest(code_fingerprint(), *(f"{key}={config[key]!r}" for key in _PARSE_SETTINGS))
        self.usable = usable_folder(self.folder) and _html_folder(self.folder)
        """False when the folder is not the publisher's alone: nothing is read from or written to it."""
        self._raw: dict[str, Any] = {}
        self._articles = _NO_MAP
        """`articles.json` as loaded (its changes are written against it)."""
        self._files_map = _NO_MAP
        """`files.json` as loaded."""
        self._index: dict[str, _Entry] = self._load_index() if self.usable else {}
        self._loaded = set(self._index)
        self._seen: dict[str, _Entry] = {}
        self._keys: dict[tuple[str, str], str] = {}
        self._paths: dict[str, Path] = {}
        self._failed: dict[str, ContentError] = {}
        self._looked: dict[str, tuple[str, int, int]] = {}
        self._deferred: dict[str, tuple[str, str]] = {}
        """Files the last build saw, as it saw them (key, `_stat_of`), left for `read` to look at."""
        self._files: Sequence[tuple[Path, str]] = ()
        self._least = PARALLEL_FROM
        self._misses = 0
        self._stats: dict[str, tuple[str, str]] = {}
        self._remembered: dict[str, tuple[str, str]] | None = None
        """`files.json` as `warm` found it (compared with `_stats` on saving, not read twice)."""
        """Article files `warm` looked at: path -> (key, `_stat_of`), kept for the next build."""
        self.parsed = 0
        """Articles parsed (not found in the cache) since this cache was opened."""

    def warm(self, files: Sequence[tuple[Path, str]], *, least: int = PARALLEL_FROM) -> None:
        """Parse the files among `files` (path, source) that the cache does not know in
        worker processes, one per core, so that `read` finds them ready: a first build of
        thousands of articles parses on every core.

        A file the last build saw (`files.json`) is not looked at here but by `read`, once:
        a build after one edit looks at each file once, not twice, and a file saved at any
        moment before `read` is read as saved. Should more than `_MISSES` of those turn out
        changed (a checkout of another branch), the rest are looked at here after all, so
        that hundreds to parse still go to the workers.

        Fewer than `least` files are left to `read`, as is everything where fork is not
        how processes start (only Linux is sure of it) or a worker fails: the workers are
        forked from this process, so they share its config and code and need no pickling
        of either, and nothing is lost when they cannot be had.
        """
        remembered = self._remembered = self._load_stats() if self.usable else {}
        fresh: list[tuple[Path, str]] = []
        for path, source in files:
            name = str(path)
            known = remembered.get(name)
            if known is not None and known[0] in self._index:
                self._deferred[name] = known
            else:
                fresh.append((path, source))
        self._files = files
        self._least = least
        self._misses = 0
        self._look(fresh, least)

    def _look(self, files: Sequence[tuple[Path, str]], least: int) -> None:
        """`warm`'s look at `files`: each one's key (its bytes read unless its stat is as the
        last build saw it), and those the cache does not know parsed by the workers."""
        todo: list[tuple[str, str, str]] = []
        remembered = self._remembered or {}
        for path, source in files:
            name = str(path)
            known = remembered.get(name)
            if known is not None and known[0] in self._index:
                try:
                    now = os.lstat(name)
                except OSError:
                    now = None
                if now is not None and S_ISREG(now.st_mode) and _stat_of(source, now) == known[1]:
                    # As the last build saw it (size, times, inode): its key stands, unread.
                    self._looked[name] = (known[0], now.st_size, now.st_mtime_ns)
                    self._stats[name] = known
                    continue
            try:
                data, seen = _read_plain(path)
            except OSError:
                continue  # `read` says why (a link, a FIFO, a file it cannot read)
            key = _digest(self.fingerprint, source, data)
            # `read` trusts this key while the file's size and mtime stay: one read a build.
            self._looked[name] = (key, seen.st_size, seen.st_mtime_ns)
            self._stats[name] = (key, _stat_of(source, seen))
            if key not in self._index:
                todo.append((key, source, name))
        count = os.cpu_count() or 1
        if count < 2 or len(todo) < max(least, 2) or not sys.platform.startswith("linux"):
            return
        # Loaded only for hundreds of files to parse (a first build), not for one edit.
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        # The parser (YAML, Markdown) is loaded here, before the fork, so that the workers
        # share it rather than each loading its own.
        importlib.import_module("publisher.content.articles")
        _WORKER.append(self)
        try:
            with (
                frozen_for_fork(),
                ProcessPoolExecutor(
                    count, mp_context=multiprocessing.get_context("fork"), initializer=gc.enable
                ) as pool,
                catch_warnings(),
            ):
                # Python 3.12 warns of fork in a process with threads (a terminal's progress
                # line is one); the workers only parse, touching no lock those threads hold.
                simplefilter("ignore", DeprecationWarning)
                done = pool.map(_parse_in_worker, todo, chunksize=max(1, min(64, len(todo) // (count * 4))))
                for (key, _source, _path), found in zip(todo, done, strict=True):
                    if isinstance(found, ContentError):
                        self._failed[key] = found
                    elif found is not None:
                        self._index[key] = found
                    self.parsed += found is not None
        except BrokenProcessPool:
            pass  # `read` parses what is missing
        finally:
            _WORKER.pop()

    def read(self, path: Path, source: str) -> Article:
        data: bytes | None = None
        key = self._known_key(path, source)
        if key is None:
            try:
                data, seen = _read_plain(path)
            except OSError:
                data, seen = content.read_content(path, source, self.config), None  # which words the error
            key = _digest(self.fingerprint, source, data)
            if seen is not None:
                self._stats[str(path)] = (key, _stat_of(source, seen))
        failed = self._failed.get(key)
        if failed is not None:
            raise failed
        entry = self._index.get(key)
        article = None
        if isinstance(entry, _Entry):
            try:  # not contextlib.suppress: thousands of articles are read at every build
                article = entry.article
            except TypeError:  # a damaged entry: parse the file again
                article = None
        if entry is None or article is None:
            if data is None:  # known by `warm` only: read it now, as it is now
                self._looked.pop(str(path), None)
                return self.read(path, source)
            entry, whole = self._parse(key, data, source)
            article = replace(whole, html="")
        self._seen[key] = entry
        self._keys[(article.source, article.slug)] = key
        self._paths[key] = path
        return article

    def _known_key(self, path: Path, source: str) -> str | None:
        """The key of `path` without reading it: as `warm` found it, if the file still has
        the size and mtime it had; or as the last build saw it, looked at now (see `warm`)."""
        name = str(path)
        deferred = self._deferred.pop(name, None)
        if deferred is not None:
            try:
                now = os.lstat(name)
            except OSError:
                return None
            if S_ISREG(now.st_mode) and _stat_of(source, now) == deferred[1]:
                self._stats[name] = deferred
                return deferred[0]
            self._misses += 1
            if self._misses == _MISSES:
                # Many changed files: the rest are looked at as `warm` once did, parsed by workers.
                self._look([(p, s) for p, s in self._files if str(p) in self._deferred], self._least)
                self._deferred.clear()
            return None
        looked = self._looked.get(name)
        if looked is None:
            return None
        try:
            now = os.lstat(name)
        except OSError:
            return None
        return looked[0] if (now.st_size, now.st_mtime_ns) == looked[1:] else None

    def _parse(self, key: str, data: bytes, source: str) -> tuple[_Entry, Article]:
        self.parsed += 1
        return _parse(self.config, self.folder if self.usable else None, key, data, source)

    def _load_index(self) -> dict[str, _Entry]:
        self._articles = _load_map(self.folder / "articles.json", "articles", self.fingerprint)
        tz = self.config.tz
        index: dict[str, _Entry] = {}
        for key, raw in self._articles.entries.items():
            entry = _Entry.from_json(raw, tz)
            if entry is not None:  # a damaged entry is a miss: its file is parsed again
                index[key] = entry
                self._raw[key] = raw  # written back as it came when the index is saved
        return index

    def key(self, article: Article) -> str:
        """The key of an article this cache read (KeyError for any other)."""
        return self._keys[(article.source, article.slug)]

    def about(self, article: Article) -> str:
        return self._seen[self.key(article)].about

    def full(self, article: Article) -> Article:
        """The article as `content.parse_article` gives it, HTML included.

        The HTML comes from the cache; when its file is gone or damaged the article file
        is parsed again (it must still be the same bytes: the key says so).
        """
        key = self.key(article)
        entry = self._seen[key]
        html = None
        if self.usable:
            try:
                html = (self.folder / "html" / f"{key}.html").read_bytes().decode("utf-8", "surrogatepass")
            except (OSError, UnicodeDecodeError):
                html = None
        if html is not None and _digest(html) == entry.html_digest:
            return replace(article, html=html)
        path = self._paths[key]
        data = content.read_content(path, article.source, self.config)
        if _digest(self.fingerprint, article.source, data) != key:
            raise ContentError(f"{article.source}: changed while the site was being built; build again")
        return self._parse(key, data, article.source)[1]

    def _load_stats(self) -> dict[str, tuple[str, str]]:
        self._files_map = _load_map(self.folder / "files.json", "files", self.fingerprint)
        return {
            path: (item[0], item[1])
            for path, item in self._files_map.entries.items()
            if isinstance(item, list) and len(item) == 2 and all(isinstance(part, str) for part in item)
        }

    def save(self) -> None:
        """Keep the articles read this time, and the HTML of those only; and what each file
        looked like, so that the next build reads only the files that changed since."""
        if self.usable and self._stats:
            previous = self._remembered if self._remembered is not None else self._load_stats()
            if previous != self._stats:
                payload = {path: list(item) for path, item in self._stats.items()}
                _save_map(self.folder / "files.json", "files", self.fingerprint, payload, self._files_map)
        if not self.usable or self._seen.keys() == self._loaded:
            return
        payload = {key: self._raw.get(key) or entry.as_json() for key, entry in self._seen.items()}
        _save_map(self.folder / "articles.json", "articles", self.fingerprint, payload, self._articles)
        if self._loaded:
            # The HTML of the articles read last time and not this time (edited or gone):
            # every other file of html/ belongs to an article of this build or of none.
            for key in self._loaded - self._seen.keys():
                with contextlib.suppress(OSError):
                    (self.folder / "html" / f"{key}.html").unlink(missing_ok=True)
        else:
            self._prune(f"{key}.html" for key in self._seen)
        for old in ("articles.pickle", *(p.name for p in self.folder.glob("renders-*.pickle"))):
            # An older publisher's pickles: never read again, and better gone.
            with contextlib.suppress(OSError):
                (self.folder / old).unlink(missing_ok=True)

    def _prune(self, wanted: Iterable[str]) -> None:
        keep = set(wanted)
        with contextlib.suppress(OSError):  # another build pruning at once, or no folder yet
            for item in os.scandir(self.folder / "html"):
                if item.name not in keep and not item.name.startswith("."):
                    Path(item.path).unlink(missing_ok=True)


def _parse(config: Config, folder: Path | None, key: str, data: bytes, source: str) -> tuple[_Entry, Article]:
    """Parse an article file's bytes; its HTML goes to the cache's folder (if it has a usable
    one), the rest in the entry."""
    article = content.parse_article(content.decode_article(data, source), source=source, config=config)
    if folder is not None:
        _write_text(folder / "html" / f"{key}.html", article.html)
    bare = replace(article, html="")
    values = tuple(getattr(bare, name) for name in _FIELDS)
    return _Entry(values, _digest(article.html), _digest(repr(bare))), article


_WORKER: list[ArticleCache] = []


@contextlib.contextmanager
def frozen_for_fork() -> Iterator[None]:
    """This process's objects out of the cycle collector's reach while forked workers run.

    A worker's collector would otherwise walk every object it inherited, writing to each
    and so copying every page of them: two workers would hold two more copies of the
    build's index and plan (a hundred megabytes at 5,000 articles), not share them.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _stat_of(source: str, seen: os.stat_result) -> str:
    """A file as `stat` tells it: its name, size, modification and change times and inode.

    The change time moves on every write, rename or chmod and cannot be set back (unlike
    the modification time, which `touch` can), so a file with the same five is taken to
    hold the same bytes, as git's index and make take it.
    """
    return f"{source}\0{seen.st_size}\0{seen.st_mtime_ns}\0{seen.st_ctime_ns}\0{seen.st_ino}\0{seen.st_dev}"


def _read_plain(path: Path) -> tuple[bytes, os.stat_result]:
    """A regular file's bytes and its stat, never through a link (OSError for anything else:
    `content.read_content` words the error)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as handle:
        seen = os.fstat(fd)
        if not S_ISREG(seen.st_mode):
            raise OSError(f"{path} is not a regular file")
        return handle.read(), seen


def _parse_in_worker(job: tuple[str, str, str]) -> _Entry | ContentError | None:
    """In a forked worker: one article's entry (its HTML written), its problem, or None
    when the file changed since it was looked at (`read` will see the new bytes)."""
    cache = _WORKER[-1]
    key, source, path = job
    try:
        data, _seen = _read_plain(Path(path))
    except OSError:
        return None
    if _digest(cache.fingerprint, source, data) != key:
        return None
    try:
        return _parse(cache.config, cache.folder if cache.usable else None, key, data, source)[0]
    except ContentError as exc:
        return exc


class Rendered(NamedTuple):
    """One file of a served build as the build that wrote it left it."""

    key: str
    digest: str
    size: int
    mtime_ns: int
    inode: int
    """As the folder's listing gives it: a file replaced by hand since has another."""


_RENDERED_SHAPE = (str, str, int, int, int)
"""The JSON types of a `Rendered`'s fields."""


class PlanSnapshot(NamedTuple):
    """What a build's archive pages were planned from (`publisher.site.outputs.plan_site`):
    enough for the next build to tell which pages an edit can change.

    Plain strings, compared with the next build's own: nothing in them is trusted beyond
    telling which articles differ, and a snapshot unlike the next build's in `context`
    or `sequence` is not used at all.
    """

    context: str
    """A hash of every kind of archive page's settings, templates and code."""
    sequence: str
    """A hash of the public articles' slugs and tags, in the site's order."""
    keys: str
    """Each public article's key (`Bodies.key`), in that order, one a line."""
    abouts: str
    """Each one's key without its HTML (`Bodies.about`), the same way."""


@dataclass(frozen=True, slots=True)
class RenderRecord:
    """The served build's files by what they were rendered from, and each render's warnings.

    `build` names the build folder the record describes: a record of any other build is
    not used.
    """

    build: str
    files: Mapping[str, Rendered]
    notes: Mapping[str, tuple[str, ...]]
    """Output key -> the warnings rendering it gave (given again when it is not rendered);
    kept only for the few outputs that gave any, the others have none."""
    plan: PlanSnapshot | None = None
    """What the build's archive was planned from (None: unknown, the next build plans it all)."""
    found: _Map = field(default=_NO_MAP, compare=False)
    """The file the record was loaded from, against which a record made from it saves its changes."""

    @staticmethod
    def path(config: Config, output: Path) -> Path:
        name = hashlib.sha256(str(output).encode("utf-8", "surrogatepass")).hexdigest()[:16]
        return config.root.resolve() / CACHE_FOLDER / f"renders-{name}.json"

    @classmethod
    def load(cls, config: Config, output: Path, fingerprint: str, build: str) -> RenderRecord | None:
        """The record of `build`, None for any other, or one with an entry not as `save`
        writes it. Its entries are one map ("build", "f/<file>", "n/<output key>"), so that
        a build after one edit writes the few that changed (`_save_map`)."""
        path = cls.path(config, output)
        if not usable_folder(path.parent):
            return None
        found = _load_map(path, "renders", fingerprint)
        if found.entries.get("build") != build:
            return None
        record_files: dict[str, Rendered] = {}
        record_notes: dict[str, tuple[str, ...]] = {}
        plan: PlanSnapshot | None = None
        for name, item in found.entries.items():
            kind, rel = name[:2], name[2:]
            if kind == "f/":
                # One look at the types of the five fields: thousands of files at every build.
                if type(item) is not list or tuple(map(type, item)) != _RENDERED_SHAPE:
                    return None
                record_files[rel] = Rendered(*item)
            elif kind == "n/":
                if type(item) is not list or (item and set(map(type, item)) != {str}):
                    return None
                record_notes[rel] = tuple(item)
            elif name == "plan":
                if type(item) is not list or len(item) != len(PlanSnapshot._fields) or set(map(type, item)) != {str}:
                    return None
                plan = PlanSnapshot(*item)
            elif name != "build":
                return None
        return cls(build, record_files, record_notes, plan, found)

    def save(self, config: Config, output: Path, fingerprint: str) -> None:
        """Keep the record: the entries that changed since the one it was loaded as
        (`found`), or all of them."""
        path = self.path(config, output)
        if usable_folder(path.parent):
            entries: dict[str, Any] = {"build": self.build}
            entries.update((f"f/{rel}", list(item)) for rel, item in self.files.items())
            # Thousands of outputs gave no warning: only those that did are written.
            entries.update((f"n/{key}", list(said)) for key, said in self.notes.items() if said)
            if self.plan is not None:
                entries["plan"] = list(self.plan)
            _save_map(path, "renders", fingerprint, entries, self.found)


class TemplateRefs:
    """The templates each template text names, by the SHA-256 (hex) of the text; None for a
    text that names one by a variable (the graph cannot be followed past it).

    Plain data about a text, checked against it by its hash: an entry is only ever found
    for the very text it was made from. `save` keeps the entries this build looked up.
    """

    def __init__(self, found: Mapping[str, tuple[str, ...] | None] | None = None) -> None:
        self._loaded = dict(found or {})
        self._used: dict[str, tuple[str, ...] | None] = {}

    def find(self, digest: str) -> tuple[bool, tuple[str, ...] | None]:
        """(whether the text of this digest is known, the names it refers to)."""
        if digest in self._used:
            return True, self._used[digest]
        if digest in self._loaded:
            refs = self._used[digest] = self._loaded[digest]
            return True, refs
        return False, None

    def keep(self, digest: str, refs: tuple[str, ...] | None) -> None:
        """What parsing the text of `digest` found."""
        self._used[digest] = refs

    @staticmethod
    def path(config: Config) -> Path:
        return config.root.resolve() / CACHE_FOLDER / "templates.json"

    @classmethod
    def load(cls, config: Config) -> TemplateRefs:
        """The graph the last build kept, each entry checked (one that is not a list of
        names or null is left out, and its template parsed again)."""
        path = cls.path(config)
        if not usable_folder(path.parent):
            return cls()
        found = _load(path, "templates", code_fingerprint())
        if not isinstance(found, dict):
            return cls()
        return cls(
            {
                digest: None if refs is None else tuple(refs)
                for digest, refs in found.items()
                if refs is None or _strings(refs)
            }
        )

    def save(self, config: Config) -> None:
        """Keep the entries this build looked up (and no others), if they differ from the file."""
        if self._used == self._loaded:
            return
        path = self.path(config)
        if usable_folder(path.parent):
            payload = {digest: None if refs is None else list(refs) for digest, refs in sorted(self._used.items())}
            _save(path, "templates", code_fingerprint(), payload)
            self._loaded = dict(self._used)


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(type(item) is str for item in value)


def _feeds_path(config: Config) -> Path:
    return config.root.resolve() / CACHE_FOLDER / "feeds-checked.json"


def _feeds_fingerprint() -> str:
    return _digest(code_fingerprint(), f"feedparser=={_version('feedparser')}")


def well_formed_feeds(config: Config) -> frozenset[str]:
    """SHA-256 digests of feeds that `publisher check` found well formed (feedparser takes
    most of a check to read a site's feeds: a feed whose bytes it read before is not read again)."""
    path = _feeds_path(config)
    if not usable_folder(path.parent):
        return frozenset()
    found = _load(path, "feeds", _feeds_fingerprint())
    if not isinstance(found, list) or not all(isinstance(digest, str) for digest in found):
        return frozenset()
    return frozenset(found)


def remember_well_formed(config: Config, digests: Iterable[str]) -> None:
    """Keep `digests` (the site's feeds as they are now, all well formed) for the next check."""
    path = _feeds_path(config)
    if usable_folder(path.parent):
        _save(path, "feeds", _feeds_fingerprint(), sorted(set(digests)))
