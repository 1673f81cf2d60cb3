"""Move in from another service: its export in, as articles, redirects and readers.

Three steps, each one door for the CLI and the desk:

`open_export(path)` reads a zip, a folder or one file into an `ExportFiles`, in memory.
A zip is checked whole before anything is read out of it: a member whose name climbs
out (`../`), is absolute or is a symbolic link, more than `MAX_MEMBERS` members, more than
`MAX_TOTAL` bytes once uncompressed, or a member that would grow more than `MAX_RATIO`
times (a zip bomb) refuses the export, naming the member. Reading stops at the size a
member declared, so a header that lies cannot get more.

`plan(config, db, source, files)` says what would happen, writing nothing: each article
created, unchanged (moved in before) or refused (with the record and the reason), the
redirects, and the readers' counts. Its totals add up to the records read.

`apply(config, db, plan, now=...)` does it. Each article is keyed by its id on the other
service, written into its file (a comment at the end of the body, `<!-- moved in:
ghost:5f3a (mailed there) -->`, which the build and the newsletter never show; "not mailed
there" for a post the other service never mailed; files moved in before that was kept say
neither): a file that carries the key is that article, moved in before, and is left as it
is. `moved_in` reads the comment back, so that a send here asks before mailing an article
to readers that service mailed it to already. So running a migration twice
changes nothing, and one killed half-way resumes where it stopped: each file is written
whole (a temporary file, then a rename), after its article has been recorded as noticed,
so that no policy mails what the other service already sent; its redirects follow, and a
rerun adds those a kill cut off. Pictures are fetched through the SSRF-safe fetcher into
the media folder and the body points at them; a picture that cannot be fetched (a private
address, a dead link) stays a remote link, and the article says so in its notes.
"""

from __future__ import annotations

import importlib
import os
import re
import stat
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Engine

from publisher.config import Config
from publisher.content import RESERVED_SLUGS, parse_article
from publisher.content.exports import ExportFiles, buttondown, ghost, listmonk, substack, wordpress
from publisher.content.exports.articles import ArticleBatch, ExportedArticle
from publisher.content.fetch import fetch
from publisher.content.folder_lock import content_lock
from publisher.content.importer import slugs_in_use
from publisher.errors import ContentError, InvalidRequest, PublisherError, SourceError
from publisher.models import Article
from publisher.store import publishing
from publisher.store import redirects as redirect_store

__all__ = [
    "MAX_MEMBERS",
    "MAX_RATIO",
    "MAX_TOTAL",
    "SOURCES",
    "ArticleStep",
    "MovedIn",
    "Plan",
    "RedirectCounts",
    "apply",
    "moved_in",
    "open_export",
    "plan",
]

MAX_MEMBERS = 100_000
MAX_TOTAL = 2 * 1024**3
"""Bytes an export may hold once uncompressed (a large WordPress site with its pictures)."""
MAX_RATIO = 200
"""How many times a member may grow when uncompressed (text compresses 5 to 20 times)."""
_RATIO_FLOOR = 1024 * 1024
"""Members smaller than this are never judged by their ratio."""

ArticleReader = Callable[..., ArticleBatch]
SOURCES: dict[str, ArticleReader | None] = {
    "substack": substack.read_articles,
    "ghost": ghost.read_articles,
    "wordpress": wordpress.read_articles,
    "buttondown": buttondown.read_articles,
    "mailchimp": None,
    "listmonk": listmonk.read_articles,
}
"""Each service, and its article reader (None: the export holds readers only)."""

_EXPECTED = {
    "substack": "posts.csv and posts/, or the email list CSV",
    "ghost": "the JSON export, or the members CSV",
    "wordpress": "a WXR .xml file",
    "buttondown": "emails.csv, or the subscribers CSV",
    "mailchimp": "the audience's CSV files",
    "listmonk": "the subscribers CSV, the campaigns' JSON (GET /api/campaigns) or a pg_dump .sql",
}
_KEY_RE = re.compile(
    r"^<!-- moved in: (?P<key>[a-z]+:[^\s>]+)(?: \((?P<mailed>mailed|not mailed) there\))? -->[ \t]*$", re.MULTILINE
)
_FENCE_RE = re.compile(r"^ {0,3}(```|~~~).*?(?:^ {0,3}\1[^\n]*$|\Z)", re.MULTILINE | re.DOTALL)


def _markers(text: str) -> Iterator[re.Match[str]]:
    """The "moved in" comments of an article file: each on a line of its own, as moving in
    writes it, and outside fenced code, so an article that quotes one is not taken for a
    moved-in post."""
    return _KEY_RE.finditer(_FENCE_RE.sub("", text))
_NAMES = {
    "substack": "Substack", "ghost": "Ghost", "wordpress": "WordPress", "buttondown": "Buttondown",
    "mailchimp": "Mailchimp", "listmonk": "listmonk",
}


@dataclass(frozen=True, slots=True)
class MovedIn:
    """What an article file says of where it was moved in from."""

    key: str
    """Its id on the other service, with the service: "ghost:5f3a"."""
    mailed: bool | None
    """True: mailed to that service's list. None: moved in before this was recorded (a
    published post from a service that mails may have been mailed). False: never mailed
    there (a draft, or a WordPress post)."""

    @property
    def service(self) -> str:
        """The other service's name as the author knows it: "Ghost"."""
        name = self.key.partition(":")[0]
        return _NAMES.get(name, name)


def moved_in(text: str, *, draft: bool = False) -> MovedIn | None:
    """Where the article file `text` was moved in from (None: written here). Pure.

    `draft` is whether the file is a draft now. An older file, whose comment does not say
    whether it was mailed, is unknown (None) when it is published and came from a service
    that mails; a draft, or a WordPress post, was not mailed.
    """
    found = next(_markers(text), None)
    if found is None:
        return None
    key, said = found.group("key", "mailed")
    if said is not None:
        return MovedIn(key, said == "mailed")
    if key.startswith("wordpress:") or draft:
        return MovedIn(key, False)
    return MovedIn(key, None)


def _refuse(label: str, member: str, why: str) -> SourceError:
    return SourceError(f"{label}: member {member!r} {why}; the export was refused and nothing was read")


def _check_zip(label: str, infos: list[zipfile.ZipInfo]) -> None:
    if len(infos) > MAX_MEMBERS:
        raise SourceError(f"{label}: holds {len(infos):,} files, more than {MAX_MEMBERS:,}; refused")
    total = 0
    for info in infos:
        name = info.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
            raise _refuse(label, name, "has a path that climbs out of the export")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise _refuse(label, name, "is a symbolic link")
        total += info.file_size
        if total > MAX_TOTAL:
            raise _refuse(label, name, f"takes the export past {MAX_TOTAL:,} bytes uncompressed")
        if info.file_size > _RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise _refuse(
                label, name,
                f"would grow from {info.compress_size:,} to {info.file_size:,} bytes (a zip bomb)",
            )


def _read_zip(label: str, archive: zipfile.ZipFile) -> dict[str, bytes]:
    infos = archive.infolist()
    _check_zip(label, infos)
    members: dict[str, bytes] = {}
    for info in infos:
        if info.is_dir() or PurePosixPath(info.filename).name.startswith(".") or "__MACOSX" in info.filename:
            continue
        with archive.open(info) as handle:
            data = handle.read(info.file_size + 1)
        if len(data) > info.file_size:
            raise _refuse(label, info.filename, "holds more than its header says")
        name = info.filename.replace("\\", "/")
        if name.lower().endswith(".zip"):  # an export of exports (Substack's inside a download)
            members.update({f"{name[:-4]}/{k}": v for k, v in _nested(label, name, data).items()})
            continue
        members[name] = data
    return members


def _nested(label: str, name: str, data: bytes) -> dict[str, bytes]:
    import io

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as inner:
            return _read_zip(f"{label}: {name}", inner)
    except zipfile.BadZipFile as exc:
        raise SourceError(f"{label}: {name} is not a readable zip ({exc})") from exc


def open_export(path: str | Path) -> ExportFiles:
    """The files of the export at `path`: a zip, a folder or a single file (see the module)."""
    place = Path(path)
    label = str(path)
    if place.is_symlink():
        raise SourceError(f"{label}: is a symbolic link; name the export itself")
    if place.is_dir():
        members: dict[str, bytes] = {}
        total = 0
        for root, dirs, names in os.walk(place):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for entry in sorted(names):
                file = Path(root) / entry
                relative = file.relative_to(place).as_posix()
                if entry.startswith("."):
                    continue
                if file.is_symlink():
                    raise _refuse(label, relative, "is a symbolic link")
                total += file.stat().st_size
                if total > MAX_TOTAL:
                    raise _refuse(label, relative, f"takes the export past {MAX_TOTAL:,} bytes")
                members[relative] = file.read_bytes()
                if len(members) > MAX_MEMBERS:
                    raise SourceError(f"{label}: holds more than {MAX_MEMBERS:,} files; refused")
        return ExportFiles(label, members)
    try:
        if zipfile.is_zipfile(place):
            with zipfile.ZipFile(place) as archive:
                return ExportFiles(label, _read_zip(label, archive))
        if place.stat().st_size > MAX_TOTAL:
            raise SourceError(f"{label}: is larger than {MAX_TOTAL:,} bytes; refused")
        return ExportFiles(label, {place.name: place.read_bytes()})
    except zipfile.BadZipFile as exc:
        raise SourceError(f"{label}: is not a readable zip ({exc}); download the export again") from exc
    except OSError as exc:
        raise SourceError(f"{label}: cannot be read: {exc.strerror or exc}") from exc


@dataclass(frozen=True, slots=True)
class ArticleStep:
    """What happens to one article: created, unchanged or refused."""

    key: str
    title: str
    action: str
    detail: str = ""
    """The file (created, unchanged) or the reason (refused)."""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RedirectCounts:
    created: int = 0
    unchanged: int = 0
    skipped: int = 0
    """Old addresses that are the new one already, or of drafts (no page to lead to)."""

    @property
    def total(self) -> int:
        return self.created + self.unchanged + self.skipped


@dataclass(frozen=True, slots=True)
class Plan:
    """What a migration would do (from `plan`) or did (from `apply`)."""

    source: str
    label: str
    articles: tuple[ArticleStep, ...] = ()
    refused: tuple[tuple[str, str], ...] = ()
    """Records no article could be made of: (record, reason)."""
    redirects: RedirectCounts = RedirectCounts()
    images: int = 0
    """Remote pictures to fetch (plan) or fetched (apply)."""
    readers: Any = None
    """The readers' Counts (`publisher.services.reader_migration`); None when not read."""
    notes: tuple[str, ...] = ()
    batch: ArticleBatch = field(default_factory=ArticleBatch, repr=False)
    reader_batch: Any = field(default=None, repr=False)
    applied: bool = False

    def count(self, action: str) -> int:
        if action == "refused":
            return len(self.refused) + sum(1 for s in self.articles if s.action == "refused")
        return sum(1 for step in self.articles if step.action == action)

    @property
    def records(self) -> int:
        """Article records read: created + updated + unchanged + skipped + refused."""
        return len(self.batch.articles) + len(self.batch.refused)


def _readers_modules() -> tuple[ModuleType, ModuleType] | None:
    """The readers' half, when it is installed in this publisher."""
    try:
        parsers = importlib.import_module("publisher.content.exports.readers")
        service = importlib.import_module("publisher.services.reader_migration")
    except ImportError:
        return None
    return parsers, service


def _keys_in_content(config: Config) -> dict[str, Path]:
    folder = config.path_of("build.content")
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.rglob("*.md")):
        if any(part.startswith((".", "_")) for part in path.relative_to(folder).parts):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for match in _markers(text):
            found.setdefault(match.group("key"), path)
    return found


def _shown(config: Config, path: Path) -> str:
    try:
        return str(path.relative_to(config.root.resolve()))
    except ValueError:
        return str(path)


def _free_slug(base: str, taken: Mapping[str, Path] | set[str]) -> str:
    for number in range(1, 1000):
        slug = base if number == 1 else f"{base}-{number}"
        if slug not in taken and slug not in RESERVED_SLUGS:
            return slug
    raise SourceError(f"no free slug for {base!r}; tidy up content/")


def _text(config: Config, item: ExportedArticle) -> str:
    text = item.article.text(config)
    if item.draft:
        text = text.replace("\n---\n", "\ndraft: true\n---\n", 1)
    mailed = "mailed there" if item.emailed else "not mailed there"
    return text.rstrip("\n") + f"\n\n<!-- moved in: {item.key} ({mailed}) -->\n"


def plan(config: Config, db: Engine, source: str, files: ExportFiles, *, site: str = "") -> Plan:
    """What `apply` would do with the export `files` of `source`; nothing is written.

    `site` is the publication's old address, for links and pictures the export gives as
    paths. InvalidRequest for a service publisher does not know.
    """
    if source not in SOURCES:
        raise InvalidRequest(f"cannot move in from {source!r}: choose one of {', '.join(SOURCES)}")
    reader = SOURCES[source]
    # Without the old address, paths in the export are taken as this site's (Ghost's /slug/ links are).
    batch = reader(files, site=site or config.site_url) if reader is not None else ArticleBatch()
    notes: list[str] = []
    reader_batch = readers = None
    modules = _readers_modules()
    if modules is None:
        notes.append("readers are not moved in by this publisher: articles only")
    else:
        parsers, service = modules
        reader_batch = parsers.read_readers(source, files)
        readers = service.plan_readers(db, reader_batch)
        if reader_batch.files:
            notes.append("readers read from " + ", ".join(reader_batch.files))
    if not batch.articles and not batch.refused and not getattr(reader_batch, "rows", 0):
        raise SourceError(
            f"{files.label}: holds nothing a {source} export has ({_EXPECTED[source]}); is it the right file?"
        )
    if reader is None and not batch.articles:
        notes.append(f"a {source} export holds readers only: no articles to move in")
    known = _keys_in_content(config)
    taken: set[str] = set(slugs_in_use(config))
    steps: list[ArticleStep] = []
    pairs: list[tuple[str, str]] = []
    skipped_redirects = 0
    images = 0
    for item in batch.articles:
        try:
            if item.key in known:
                parsed = parse_article(known[item.key].read_text(encoding="utf-8"), source=str(known[item.key]),
                                       config=config)
                steps.append(ArticleStep(item.key, item.article.title, "unchanged", _shown(config, known[item.key])))
            else:
                slug = _free_slug(item.article.slug, taken)
                candidate = replace(item, article=item.article.with_slug(slug))
                parsed = parse_article(_text(config, candidate), source=item.record, config=config)
                taken.add(slug)
                images += len(item.images)
                file = config.path_of("build.content") / candidate.article.file_name(config)
                steps.append(ArticleStep(item.key, item.article.title, "created", _shown(config, file), item.notes))
        except (ContentError, OSError, UnicodeDecodeError) as exc:
            steps.append(ArticleStep(item.key, item.article.title, "refused", f"{item.record}: {exc}"))
            continue
        target = urlsplit(parsed.url).path
        for old in item.old_paths:
            if item.draft or parsed.draft or redirect_store.normal_path(old) == redirect_store.normal_path(target):
                skipped_redirects += 1
            else:
                pairs.append((old, target))
    existing = redirect_store.recorded(db, (redirect_store.normal_path(old) for old, _ in pairs))
    fresh = {redirect_store.normal_path(old) for old, _ in pairs} - existing
    counts = RedirectCounts(
        created=len(fresh), unchanged=len(pairs) - len(fresh), skipped=skipped_redirects,
    )
    return Plan(
        source=source, label=files.label, articles=tuple(steps), refused=tuple(batch.refused), redirects=counts,
        images=images, readers=readers, notes=tuple(notes), batch=batch, reader_batch=reader_batch,
    )


def _fetch_images(
    config: Config, item: ExportedArticle, cache: dict[str, str | None]
) -> tuple[ExportedArticle, list[str]]:
    """The article with each remote picture stored in the media folder; notes for those kept remote."""
    from publisher.services.media import store_image

    notes: list[str] = []
    body = item.article.body
    image = item.article.image
    for url in item.images:
        if url not in cache:
            try:
                result = fetch(url, config=config, accept="image/webp,image/png,image/jpeg,image/gif,*/*;q=0.5")
                cache[url] = store_image(config, result.body).url
            except (SourceError, InvalidRequest) as exc:
                cache[url] = None
                notes.append(f"picture {url} kept as a remote link: {exc}")
        local = cache[url]
        if local is None:
            continue
        body = body.replace(f"({url})", f"({local})").replace(f'({url} "', f'({local} "')
        if image == url:
            image = local
    article = replace(item.article, body=body, image=image)
    return replace(item, article=article), notes


def _write_whole(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.moving")
    with temporary.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)


def _place(config: Config, db: Engine, item: ExportedArticle, *, now: datetime) -> tuple[Path, Article] | None:
    """Write one article (None when a file with its key appeared meanwhile)."""
    folder = config.path_of("build.content")
    with content_lock(folder):
        if item.key in _keys_in_content(config):
            return None
        slug = _free_slug(item.article.slug, slugs_in_use(config))
        item = replace(item, article=item.article.with_slug(slug))
        path = folder / item.article.file_name(config)
        text = _text(config, item)
        try:
            parsed = parse_article(text, source=_shown(config, path), config=config)
        except ContentError as exc:
            raise SourceError(f"{item.record}: the article does not parse ({exc}); nothing was written") from exc
        if not item.draft or item.emailed:
            # Noticed before the file lands: no policy ever mails what was sent there already.
            publishing.mark_seen(db, article_id=parsed.id, slug=parsed.slug, origin=item.key,
                                 handled="backlog", now=now)
        folder.mkdir(parents=True, exist_ok=True)
        _write_whole(path, text)
    return path, parsed


def apply(config: Config, db: Engine, plan: Plan, *, now: datetime) -> Plan:
    """Do what `plan` says (looking again: what another run did since is not done twice)."""
    known = _keys_in_content(config)
    steps: list[ArticleStep] = []
    created = unchanged = skipped = 0
    images = 0
    cache: dict[str, str | None] = {}
    for item in plan.batch.articles:
        planned = next((s for s in plan.articles if s.key == item.key), None)
        if planned is not None and planned.action == "refused":
            steps.append(planned)
            continue
        path = known.get(item.key)
        if path is None:
            fetched, picture_notes = _fetch_images(config, item, cache)
            images += sum(1 for url in item.images if cache.get(url))
            try:
                placed = _place(config, db, fetched, now=now)
            except PublisherError as exc:
                steps.append(ArticleStep(item.key, item.article.title, "refused", str(exc)))
                continue
            if placed is None:
                path = _keys_in_content(config)[item.key]
            else:
                path, _ = placed
                steps.append(ArticleStep(item.key, item.article.title, "created", _shown(config, path),
                                         (*item.notes, *picture_notes)))
        if path is not None and (not steps or steps[-1].key != item.key):
            steps.append(ArticleStep(item.key, item.article.title, "unchanged", _shown(config, path)))
        article = parse_article(path.read_text(encoding="utf-8"), source=str(path), config=config)
        if not item.draft or item.emailed:
            publishing.mark_seen(db, article_id=article.id, slug=article.slug, origin=item.key,
                                 handled="backlog", now=now)
        target = urlsplit(article.url).path
        pairs = [
            (old, target) for old in item.old_paths
            if not item.draft and not article.draft
            and redirect_store.normal_path(old) != redirect_store.normal_path(target)
        ]
        skipped += len(item.old_paths) - len(pairs)
        added = redirect_store.add(db, pairs, source=plan.source, now=now)
        created += added
        unchanged += len(pairs) - added
    readers = plan.readers
    modules = _readers_modules()
    if modules is not None and plan.reader_batch is not None:
        readers = modules[1].apply_readers(db, plan.reader_batch, now=now)
    return replace(
        plan, articles=tuple(steps), redirects=RedirectCounts(created, unchanged, skipped), images=images,
        readers=readers, applied=True,
    )
