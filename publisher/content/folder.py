"""The content folder: which files are articles, read without following a link out of it.

`load_articles` and `scan_articles` are the edges that read the folder; a file that is a
link, or that leaves the publication's folders, is refused with `link_refusal`'s reason.
os.scandir, not Path.rglob: a build lists thousands of files.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from stat import S_ISREG

from publisher.config import Config
from publisher.errors import ContentError
from publisher.models import Article

__all__ = [
    "ArticleReader",
    "article_files",
    "content_files",
    "decode_article",
    "link_refusal",
    "load_articles",
    "read_article",
    "read_content",
    "scan_articles",
]


def content_files(folder: Path) -> list[tuple[Path, str]]:
    """Every file under `folder` with its relative POSIX path, sorted, leaving out those
    with a part starting with "." or "_" (editor files, notes).

    A symbolic link (to a file or a folder, inside the folder or out of it) is listed as
    it is, never entered: reading it through `read_content` is refused, and so is copying
    it (`link_refusal` says why). os.scandir, not Path.rglob: a build lists thousands of
    files, and scandir tells a link from a folder without a call of its own.
    """
    return [(Path(path), "/".join(parts)) for parts, path in _walk(folder)]


def _walk(folder: Path) -> list[tuple[tuple[str, ...], str]]:
    """`content_files` as (the parts of each relative path, the path as a string), sorted."""
    found: list[tuple[tuple[str, ...], str]] = []
    pending: list[tuple[str, tuple[str, ...]]] = [(os.fspath(folder), ())]
    while pending:
        top, parts = pending.pop()
        try:
            with os.scandir(top) as entries:
                listed = [(entry.name, entry.path, entry.is_dir(follow_symlinks=False)) for entry in entries]
        except OSError:
            continue  # a folder that cannot be listed has nothing to publish (as os.walk has it)
        for name, path, is_folder in listed:
            if name.startswith((".", "_")):
                continue
            if is_folder:
                pending.append((path, (*parts, name)))
            else:
                found.append(((*parts, name), path))
    found.sort(key=lambda item: item[0])
    return found


def link_refusal(path: Path, shown: str, config: Config) -> ContentError:
    """The error for a symbolic link at `path` (named `shown`) in the content folder.

    Every link is refused, even one that stays inside the folder: telling the two apart
    at every read would race with whoever changes the link, and a link out of it would
    publish whatever it points at (the database, a key, any file on the machine).
    """
    folder = config.path_of("build.content")
    name = _shown_folder(config, folder)
    try:
        target = str(path.readlink())
        resolved = path.resolve()
    except (OSError, RuntimeError):  # gone since, or a loop
        target, resolved = "?", None
    kind = "folder" if resolved is not None and resolved.is_dir() else "file"
    if resolved is None or not resolved.exists():
        where = f"to {target}, which does not exist"
    elif resolved == folder or folder in resolved.parents:
        where = f"to a {kind} inside {name}/ ({target}); even such a link is refused, since a link's target can change"
    else:
        where = f"to a {kind} outside {name}/ ({target}), which the build would publish to anyone"
    return ContentError(
        f"{shown} is a symbolic link {where}: publisher follows no links in the content "
        f"folder, so replace it with the {kind} itself"
    )


def _shown_folder(config: Config, folder: Path) -> str:
    """The content folder as the author knows it: relative to the publication folder."""
    root = config.root.resolve()
    return folder.relative_to(root).as_posix() if root in folder.parents else str(folder)


def read_content(path: Path, source: str, config: Config) -> bytes:
    """A file of the content folder, never through a symbolic link (`link_refusal`) and
    only if it is a regular file (a FIFO would hang the build); ContentError otherwise."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP or path.is_symlink():
            raise link_refusal(path, source, config) from exc
        raise ContentError(f"{source}: cannot be read: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as handle:
        if not S_ISREG(os.fstat(fd).st_mode):
            raise ContentError(f"{source}: is not a regular file; an article or image is a plain file")
        try:
            return handle.read()
        except OSError as exc:
            raise ContentError(f"{source}: cannot be read: {exc.strerror or exc}") from exc


def load_articles(
    config: Config, *, reader: ArticleReader | None = None, files: Sequence[tuple[Path, str]] | None = None
) -> list[Article]:
    """Every article under `build.content`, newest first, drafts and future ones included.

    Files and folders whose names start with "." or "_" are skipped (editor files, notes).
    The first problem found is raised; `scan_articles` collects them all.
    """
    articles, errors = scan_articles(config, reader=reader, files=files)
    if errors:
        raise errors[0]
    return articles


ArticleReader = Callable[[Path, str], Article]
"""Reads one article file (its path, and its name as errors show it) into an `Article`,
raising ContentError: `read_article`, or a cache in front of it."""


def read_article(path: Path, source: str, config: Config) -> Article:
    """One article file read and parsed; every problem a ContentError naming it."""
    from publisher.content.articles import parse_article  # YAML and Markdown: only when a file is parsed

    return parse_article(decode_article(read_content(path, source, config), source), source=source, config=config)


def decode_article(data: bytes, source: str) -> str:
    """An article file's bytes as text: UTF-8, or a ContentError saying where it is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContentError(f"{source}: is not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc


def article_files(config: Config) -> list[tuple[Path, str]]:
    """Every article file under `build.content`, in order, with its name as errors show it
    (relative to the publication folder). A missing content folder is raised."""
    folder = config.path_of("build.content")
    if not folder.is_dir():
        raise ContentError(
            f"{folder}: no such folder; create it, or set build.content in config.toml to "
            "the folder holding your articles"
        )
    root = f"{config.root.resolve()}{os.sep}"
    # Strings until the end: a build lists thousands of articles, and each path made and
    # turned back into a string would cost more than its listing.
    return [
        (Path(full), full[len(root) :] if full.startswith(root) else full)
        for parts, full in _walk(folder)
        if parts[-1].endswith(".md")
    ]


def scan_articles(
    config: Config, *, reader: ArticleReader | None = None, files: Sequence[tuple[Path, str]] | None = None
) -> tuple[list[Article], list[ContentError]]:
    """The articles that parse, newest first, and the problem of every file that does not.

    For `publisher check`, which reports every broken file at once. A missing content
    folder is raised, since there is nothing to scan. `reader` reads each file (a build
    passes its cache's, which parses only what changed); `files` are `article_files`, when
    the caller has them already.
    """
    read: ArticleReader = reader or (lambda path, source: read_article(path, source, config))
    articles: list[Article] = []
    errors: list[ContentError] = []
    owners: dict[str, str] = {}
    for path, source in article_files(config) if files is None else files:
        try:
            article = read(path, source)
        except ContentError as exc:
            errors.append(exc)
            continue
        if article.slug in owners:
            errors.append(
                ContentError(
                    f"{source}: slug {article.slug!r} is already used by {owners[article.slug]}; "
                    "give one of them its own 'slug:' in the front matter"
                )
            )
            continue
        owners[article.slug] = source
        articles.append(article)
    articles.sort(key=lambda a: a.slug)
    articles.sort(key=lambda a: a.date, reverse=True)
    return articles, errors
