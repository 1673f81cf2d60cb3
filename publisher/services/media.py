"""Picture actions: store an upload, list the pictures, say who uses one, delete one.

Pictures live in `<build.content>/media/` (`publisher.content.media.FOLDER`), so the build copies
them to the site at `/media/` like any file beside the articles; the Markdown refers to
them as `/media/<name>`. There is no index and no database row: the folder is the truth,
and each name says which picture and what size it is (`publisher.content.media`).

Storing is atomic per file: each is written to a hidden temporary file in the folder
(names starting with "." are never listed, copied or served), flushed, then renamed into
place, narrowest first and the main (widest) file last. On any error the temporary files
and the widths already renamed are removed, so a failed or interrupted upload leaves
nothing behind (only a crash of the machine between two renames could leave narrower
widths alone; storing the picture again completes them). Storing the same picture again
changes nothing.

Deleting is refused while an article (drafts included, its body or its lead image)
refers to any width of the picture, naming the articles. It holds the content folder's
write lock (`content.folder_lock.content_lock`), as saves do, so a save that starts using
the picture cannot slip in between the check and the removal.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from publisher import content
from publisher.config import Config
from publisher.content import media
from publisher.content.folder_lock import content_lock
from publisher.content.media import MAX_BYTES, MediaName, parse_name
from publisher.errors import Conflict, ContentError, InvalidRequest, NotFound, PublisherError

__all__ = [
    "MAX_BYTES",
    "PER_PAGE",
    "ArticleRef",
    "MediaItem",
    "MediaPage",
    "StoredImage",
    "delete_image",
    "list_media",
    "media_folder",
    "parse_name",
    "read_media_file",
    "store_image",
    "usage",
]

PER_PAGE = 60
_NAME_LINE_RE = re.compile(f"^{media.NAME_RE.pattern}$", re.MULTILINE)
_REFERENCE_RE = re.compile(
    rf"{media.FOLDER}/([0-9a-f]{{{media.HASH_LENGTH}}})-[0-9]{{1,5}}x[0-9]{{1,5}}\.(?:jpg|png|gif)"
)


@dataclass(frozen=True, slots=True)
class StoredImage:
    """An upload as stored: its main file's name, the path Markdown uses, its size."""

    name: str
    url: str
    markdown: str
    width: int
    height: int

    @classmethod
    def of(cls, main: MediaName) -> StoredImage:
        url = f"/{media.FOLDER}/{main.name}"
        return cls(main.name, url, f"![]({url})", main.width, main.height)


@dataclass(frozen=True, slots=True)
class ArticleRef:
    """An article that uses a picture: enough to name it and link to its editor."""

    slug: str
    title: str
    source: str


@dataclass(frozen=True, slots=True)
class MediaItem:
    image: StoredImage
    thumbnail: str
    """The narrowest stored width's file name."""
    size: int
    """Bytes of the main file."""
    modified: datetime
    used_by: tuple[ArticleRef, ...]


@dataclass(frozen=True, slots=True)
class MediaPage:
    items: tuple[MediaItem, ...]
    page: int
    pages: int
    total: int


def media_folder(config: Config) -> Path:
    return config.path_of("build.content") / media.FOLDER


def store_image(config: Config, data: bytes) -> StoredImage:
    """Check and re-encode the picture `data` (`media.process_image`), then store its files.

    InvalidRequest, saying why, for a refused picture; nothing is stored then.
    """
    processed = media.process_image(data)
    folder = media_folder(config)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PublisherError(f"cannot create {folder}: {exc.strerror or exc}") from exc
    _inside_content(config, folder)
    written: list[Path] = []
    placed: list[Path] = []
    try:
        for name, blob in processed.files:
            written.append(_temp_file(folder, name, blob))
        for temp, (name, _blob) in zip(written, processed.files, strict=True):
            target = folder / name
            fresh = not target.exists()
            temp.replace(target)
            if fresh:
                placed.append(target)
    except BaseException as exc:
        for path in placed:  # the narrower widths of a picture whose main file never came
            path.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise PublisherError(f"cannot write into {folder}: {exc.strerror or exc}; nothing was stored") from exc
        raise
    finally:
        for temp in written:
            temp.unlink(missing_ok=True)
    return StoredImage.of(processed.main)


def _temp_file(folder: Path, name: str, blob: bytes) -> Path:
    handle = tempfile.NamedTemporaryFile(dir=folder, prefix=f".{name}.", delete=False)  # noqa: SIM115
    path = Path(handle.name)
    try:
        with handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        path.chmod(0o644)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _inside_content(config: Config, folder: Path) -> None:
    """The media folder must be a real folder inside the content folder, not a link out."""
    root = config.path_of("build.content").resolve()
    if folder.is_symlink() or folder.resolve().parent != root:
        raise InvalidRequest(f"{folder} is a link to another place; make it a plain folder inside {root}")


def _mains(folder: Path) -> dict[str, tuple[MediaName, os.stat_result]]:
    """The main (widest) file of every picture in `folder`, by hash, with its stat.

    One listing and one regular expression over all the names (a folder of 5,000
    pictures holds 15,000 files), then one stat per picture, not per file.
    """
    try:
        with os.scandir(folder) as entries:
            names = [entry.name for entry in entries]
    except FileNotFoundError:
        return {}
    best: dict[str, tuple[int, str]] = {}
    for found in _NAME_LINE_RE.finditer("\n".join(names)):
        key, width = found["hash"], int(found["width"])
        if key not in best or width > best[key][0]:
            best[key] = (width, found.group(0))
    mains: dict[str, tuple[MediaName, os.stat_result]] = {}
    for key, (_width, name) in best.items():
        try:
            info = os.stat(os.path.join(folder, name), follow_symlinks=False)  # noqa: PTH116, PTH118 - no Path per file
        except OSError:
            continue
        parsed = media.parse_name(name)
        if parsed is not None and stat.S_ISREG(info.st_mode):
            mains[key] = (parsed, info)
    return mains


def _article_files(config: Config) -> list[tuple[Path, str]]:
    """The article files (`content.article_files`), without walking the media folder."""
    folder = config.path_of("build.content")
    root = f"{config.root.resolve()}{os.sep}"
    found: list[tuple[Path, str]] = []
    pending = [folder]
    while pending:
        here = pending.pop()
        try:
            with os.scandir(here) as entries:
                listed = [(e.name, e.path, e.is_dir(follow_symlinks=False)) for e in entries]
        except OSError:
            continue
        for name, path, is_folder in listed:
            if name.startswith((".", "_")) or (here == folder and name == media.FOLDER):
                continue
            if is_folder:
                pending.append(Path(path))
            elif name.endswith(".md"):
                full = str(path)
                found.append((Path(path), full[len(root):] if full.startswith(root) else full))
    return sorted(found, key=lambda item: item[1])


def usage(config: Config, hashes: Iterable[str] | None = None) -> dict[str, tuple[ArticleRef, ...]]:
    """The articles (drafts too) whose text refers to each picture, by picture hash.

    Read from the files' text, so a reference anywhere counts: body, lead image, a link.
    Only files that refer to some picture are parsed, to name them. With `hashes`, only
    those pictures are looked for.
    """
    wanted = set(hashes) if hashes is not None else None
    found: dict[str, list[ArticleRef]] = {}
    for path, source in _article_files(config):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        keys = {m.group(1) for m in _REFERENCE_RE.finditer(text)}
        if wanted is not None:
            keys &= wanted
        if not keys:
            continue
        try:
            article = content.parse_article(text, source=source, config=config)
            ref = ArticleRef(article.slug, article.title, source)
        except ContentError:
            ref = ArticleRef("", Path(source).name, source)
        for key in keys:
            found.setdefault(key, []).append(ref)
    return {key: tuple(refs) for key, refs in found.items()}


def list_media(config: Config, *, page: int = 1, per_page: int = PER_PAGE) -> MediaPage:
    """One page of the pictures, newest first, each with the articles that use it."""
    if page < 1:
        raise InvalidRequest(f"page must be 1 or more, got {page}")
    if not 1 <= per_page <= 500:
        raise InvalidRequest(f"per_page must be between 1 and 500, got {per_page}")
    mains = _mains(media_folder(config))
    ordered = sorted(mains.values(), key=lambda item: (-item[1].st_mtime_ns, item[0].name))
    total = len(ordered)
    pages = max(1, -(-total // per_page))
    shown = ordered[(page - 1) * per_page : page * per_page]
    used = usage(config, [name.hash for name, _info in shown]) if shown else {}
    items = tuple(
        MediaItem(
            image=StoredImage.of(name),
            thumbnail=media.variants(name)[0].name,
            size=info.st_size,
            modified=datetime.fromtimestamp(info.st_mtime, UTC),
            used_by=used.get(name.hash, ()),
        )
        for name, info in shown
    )
    return MediaPage(items=items, page=page, pages=pages, total=total)


def delete_image(config: Config, name: str) -> list[str]:
    """Remove every width of the picture whose file is `name`; the names removed.

    Conflict, naming them, while an article refers to it; NotFound for no such picture.
    """
    parsed = media.parse_name(name)
    if parsed is None:
        raise NotFound(f"{name!r} is not a picture's name; pick one on the Media page")
    folder = media_folder(config)
    with content_lock(config.path_of("build.content")):
        users = usage(config, [parsed.hash]).get(parsed.hash, ())
        if users:
            named = ", ".join(f"“{ref.title}” ({ref.source})" for ref in users[:10])
            more = f" and {len(users) - 10} more" if len(users) > 10 else ""
            raise Conflict(
                f"the picture {name} is used by {named}{more}; remove it from "
                f"{'that article' if len(users) == 1 else 'those articles'} first. Nothing was deleted"
            )
        try:
            doomed = [p for p in folder.iterdir() if p.name.startswith(parsed.hash + "-")
                      and media.parse_name(p.name) is not None]
        except OSError:
            doomed = []
        if not doomed:
            raise NotFound(f"no picture {name} in {folder}")
        for path in doomed:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return sorted(p.name for p in doomed)


def read_media_file(config: Config, name: str) -> tuple[bytes, str]:
    """A stored picture's bytes and media type, for the desk's previews.

    Only names a picture can have are looked up (never a path), in the media folder
    only, and a symbolic link is refused: NotFound for anything else.
    """
    parsed = media.parse_name(name)
    if parsed is None:
        raise NotFound(f"no picture named {name!r}")
    folder = media_folder(config)
    try:
        _inside_content(config, folder)
        fd = os.open(folder / parsed.name, os.O_RDONLY | os.O_NOFOLLOW)
    except (OSError, InvalidRequest) as exc:
        raise NotFound(f"no picture named {name!r}") from exc
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise NotFound(f"no picture named {name!r}")
        data = handle.read()
    kind = {"jpg": "image/jpeg", "png": "image/png", "gif": "image/gif"}[parsed.ext]
    return data, kind
