"""The static site: feeds, archive pages and newsletter previews, written to `build.output`.

Two halves. `render_site` is pure: articles in, a mapping of relative path to bytes out
(apart from reading templates and the content folder's other files: images and the like
beside the articles, which the site carries at the same path, `content/images/a.png` as
`images/a.png`).
`write_site` is the edge, and the site it serves switches from one whole build to the
next in one step. Each build is staged in a folder of its own beside the output, under
`.<output>.builds/`: the files that did not change are hard links to the served build's
(so their mtime, and every web server's ETag, survive a rebuild), the rest are written
there. Then the output path, a symbolic link, is renamed onto the new build: a reader,
a web server or a CDN sees the old site or the new one, never half of each, and a build
killed at any moment leaves the served site as it was and no temp file inside it. The
previous builds are removed after the switch. An output that is still a plain folder
(from an older publisher, or made by hand) becomes the first of these builds.

`build_site` is the two at once, and incremental: the site is planned as outputs, each
with a key of what it is made from (`publisher.site.outputs`), and an output whose key the
served build's record (`publisher.site.build_cache.RenderRecord`) has, with its files still
as that build left them, is not rendered again; the others are rendered and written
into the stage one by one, so a build holds one page at a time, never the whole site.
Hundreds to render (a first build, a new template) go to forked worker processes when
the caller allows it. Rendering every output gives exactly what `render_site` returns.

An output folder shared with the author's own files is safe: the manifest records every
file a build wrote with its hash, and only those are ever replaced or removed; the
author's other files are carried into each new build. A file of the author's in the
way of a new page stops the build before anything is written; a stale file the author
has edited since is kept. `publisher serve` answers only for the files in the manifest.

Nothing is removed or replaced that a build did not make. Nothing is written or
removed through a link inside the output (a folder of it that is a link stops the
build), and the output path must be the build's own link or a plain folder: a link the
author made is refused, not replaced. An old build goes file by file, only what a build
wrote or carried into the new one: a file made in it while it was served (a program
writing into the output, a database's journal) is kept, with its folder, and a warning
names it.

The output must be a folder of its own: `output_folder` refuses one that is, or
contains, the publication folder, the content or template folders, the database and
its journal files, the outbox, the DKIM keys, the build cache or the generated secret,
since anything in it may end up on the web. The content folder's files are copied as
they are, never through a symbolic link (`content.link_refusal`).

Newsletter previews cost a Jinja and premailer run each (tens of milliseconds), so only
the newest `build.previews` articles get one: that is where an author looks before a
send, and a back catalogue of a thousand articles still builds in seconds. An article
too long to be a newsletter at all gets no preview, only a warning: rendering one costs
about ten seconds a megabyte, and Gmail would show the first hundred kilobytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path, PurePosixPath
from stat import S_ISDIR, S_ISLNK, S_ISREG
from types import MappingProxyType
from urllib.parse import urlsplit
from warnings import catch_warnings, simplefilter

from publisher import content
from publisher.config import Config, sqlite_path
from publisher.errors import BuildError
from publisher.mail import newsletter, tokens
from publisher.models import Article, BuildReport
from publisher.site import archive, build_cache, outputs
from publisher.site.build_cache import ArticleCache, Rendered, RenderRecord

if sys.platform != "win32":
    import fcntl

__all__ = [
    "MANIFEST",
    "PREVIEW_MANAGE",
    "PREVIEW_MAX_HTML",
    "PREVIEW_UNSUBSCRIBE",
    "Site",
    "build_site",
    "builds_folder",
    "manifest_files",
    "newsletter_preview",
    "output_folder",
    "preview_refusal",
    "render_site",
    "write_site",
]

MANIFEST = ".publisher-manifest.json"
"""Every file the last build wrote, relative to the output folder, with its SHA-256."""

PREVIEW_UNSUBSCRIBE = "/unsubscribe/preview"
"""Path (under the app's public URL) of the visible placeholder unsubscribe link in previews."""
PREVIEW_MANAGE = "/manage/preview"
"""The same for the "manage your subscription" link."""

PREVIEW_MAX_HTML = 500_000
"""Characters of article HTML past which no newsletter preview is rendered (see above)."""

_FILE_MODE = 0o644
_SLUG = re.compile(r"^[^/\\.\s][^/\\\s]*$")
_RESERVED = frozenset({"feeds", "newsletters", *archive.ARCHIVE_FOLDERS, *archive.ARCHIVE_FILES})


@dataclass(frozen=True, slots=True)
class Site:
    """Everything one build produces, not yet written."""

    files: Mapping[str, bytes]
    """Relative POSIX path under the output folder -> exact bytes."""
    warnings: tuple[str, ...] = field(default_factory=tuple)


Progress = Callable[[str, int, int], None]
"""Told (stage, done, total) as a build goes: a terminal shows it, nothing else needs to."""


def build_site(
    config: Config, articles: Sequence[Article], now: datetime, *, write: bool = True,
    progress: Progress | None = None, cache: ArticleCache | None = None, workers: bool = False,
) -> BuildReport:
    """Render what changed and write it; `write=False` renders and compares only.

    `cache` is the one the articles were read through (`ArticleCache.read`): they come
    without their HTML, which it gives back to the few pages that need it. `workers`
    lets hundreds of outputs be rendered by forked processes (`publisher build` does; a
    long-running process with threads of its own, the daemon, renders in place).
    """
    output = output_folder(config)
    bodies: outputs.Bodies = cache if cache is not None else outputs.InMemory()
    if not write:
        site = _render_all(config, _plan_site(config, articles, now, bodies), progress)
        return write_site(output, site, write=False)
    return _build(output, config, _plan_site(config, articles, now, bodies), progress, workers=workers)


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
    protected.append(("the generated secret (.publisher-secret)", root / tokens.SECRET_FILE_NAME))
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


def render_site(
    config: Config, articles: Sequence[Article], now: datetime, *, progress: Progress | None = None
) -> Site:
    """Every output file of the publication as bytes. Pure apart from reading templates and images."""
    return _render_all(config, _plan_site(config, articles, now, outputs.InMemory()), progress)


def _plan_site(config: Config, articles: Sequence[Article], now: datetime, bodies: outputs.Bodies) -> outputs.SitePlan:
    public = sorted((a for a in articles if a.is_public(now)), key=lambda a: (a.date, a.slug), reverse=True)
    _check_slugs(public)

    def preview(article: Article) -> tuple[dict[str, bytes], tuple[str, ...]]:
        html, eml, notes = newsletter_preview(config, article)
        return {f"newsletters/{article.slug}.html": html, f"newsletters/{article.slug}.eml": eml}, notes

    return outputs.plan_site(
        config, public, now, bodies, preview=preview, refuse=preview_refusal, assets=_asset_files(config)
    )


def _render_all(config: Config, plan: outputs.SitePlan, progress: Progress | None) -> Site:
    files: dict[str, bytes] = {}
    warnings: list[str] = []
    tell = _stages(plan, progress)
    for item in plan.items:
        if isinstance(item, str):
            warnings.append(item)
            continue
        tell(item)
        rendered, notes = item.render()
        files.update(rendered)
        warnings.extend(notes)
    # One line per distinct problem: a missing postal address is one warning, not twenty.
    return Site(files=files, warnings=tuple(dict.fromkeys(warnings)))


def _stages(plan: outputs.SitePlan, progress: Progress | None) -> Callable[[outputs.Output], None]:
    """Tells `progress` of each stage as it starts (with the number of articles), and of
    each newsletter preview."""
    if progress is None:
        return lambda output: None
    articles = plan.articles
    previews = sum(1 for output in plan.outputs() if output.stage == "newsletter previews")
    seen: dict[str, int] = {}

    def tell(output: outputs.Output) -> None:
        done = seen.get(output.stage)
        if output.stage == "newsletter previews":
            seen[output.stage] = (done if done is not None else -1) + 1
            progress(output.stage, seen[output.stage], previews)
        elif done is None:
            seen[output.stage] = 0
            progress(output.stage, 0, articles)

    return tell


ARTICLE_SUFFIXES = (".md", ".markdown")


def _asset_files(config: Config) -> list[tuple[str, Path]]:
    """The content folder's files that are not articles (images, PDFs), by relative path.

    Names starting with "." or "_" are skipped, as articles' are. A missing content
    folder has none. A symbolic link stops the build (`content.link_refusal`): copied, it
    would publish whatever it points at.
    """
    folder = config.path_of("build.content")
    if not folder.is_dir():
        return []
    shown = f"{config['build.content']}".rstrip("/")
    found: list[tuple[str, Path]] = []
    for path, relative in content.content_files(folder):
        if path.name.endswith(ARTICLE_SUFFIXES):
            continue
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            continue  # gone since the folder was listed
        if S_ISLNK(mode):
            raise content.link_refusal(path, f"{shown}/{relative}", config)
        if S_ISREG(mode):
            found.append((relative, path))
    return found


def preview_refusal(article: Article) -> str:
    """Why the article gets no newsletter preview (it is far too long for one); "" if it does."""
    size = len(article.html)
    if size <= PREVIEW_MAX_HTML:
        return ""
    return (
        f"{article.source or article.url}: no newsletter preview: the article's HTML is "
        f"{size // 1024:,} KB, and mail clients clip a newsletter after about 100 KB; send "
        "its summary with a link to the archive page instead"
    )


def newsletter_preview(config: Config, article: Article) -> tuple[bytes, bytes, tuple[str, ...]]:
    """The article's newsletter as a browser page and as a complete .eml, plus warnings.

    The reader is a placeholder whose unsubscribe link visibly says "preview". It is
    rendered and dated as of the article's last modification, not the clock, and never
    DKIM-signed, so an unchanged article's preview keeps its bytes from build to build.
    """
    issue = newsletter.issue_for_article(config, article)
    rendered = newsletter.render_issue(config, issue, article.modified)
    template = newsletter.MessageTemplate.from_rendered(_without_dkim(config), rendered)
    host = urlsplit(config.site_url).hostname or "localhost"
    reader = newsletter.Recipient(
        delivery_id=None,
        email=f"reader@{host}",
        name="Preview Reader",
        unsubscribe_url=config.public_url + PREVIEW_UNSUBSCRIBE,
        manage_url=config.public_url + PREVIEW_MANAGE,
        message_id=f"<preview.{article.slug}@{host}>",
    )
    html, _text = template.parts(reader)
    eml = template.message_bytes(reader, article.modified)
    return _local_images(config, html).encode("utf-8"), eml, tuple(rendered.warnings)


def _local_images(config: Config, html: str) -> str:
    """The preview page with the site's own images by relative path.

    The page sits in newsletters/ of the build, beside the images the build copied, so it
    shows them opened from disk or served from anywhere, before the site is online (the
    .eml, like every sent copy, keeps the absolute addresses a mail client needs).
    """
    own = f'src="{config.site_url}/'
    return html.replace(own, 'src="../') if own in html else html


def _without_dkim(config: Config) -> Config:
    """The config with DKIM signing off, for previews.

    A DKIM-signed message published on the web could be replayed by anyone as genuine
    mail from the author's domain, and its signature's timestamp would change the bytes
    on every build.
    """
    if not str(config["delivery.dkim.domain"]).strip():
        return config
    return replace(config, values=MappingProxyType({**config.values, "delivery.dkim.domain": ""}))


def _check_slugs(articles: Iterable[Article]) -> None:
    """Refuse slugs that would escape the output folder or collide with another article,
    and ids that two articles share (feed readers would drop one of them)."""
    seen: dict[str, Article] = {}
    ids: dict[str, Article] = {}
    for article in articles:
        if not _SLUG.match(article.slug) or article.slug in _RESERVED:
            raise BuildError(
                f"{article.source or article.title}: slug {article.slug!r} cannot name a folder "
                f"(no slashes, spaces or leading dot; not {', '.join(sorted(_RESERVED))}); "
                "set another `slug:` in the front matter"
            )
        other = seen.get(article.slug)
        if other is not None:
            raise BuildError(
                f"{article.source}: slug {article.slug!r} is already used by {other.source}; "
                "give one of them another `slug:` in its front matter"
            )
        seen[article.slug] = article
        twin = ids.setdefault(article.id, article)
        if twin is not article:
            raise BuildError(
                f"{article.source}: id {article.id!r} is already used by {twin.source}; "
                "give one of them another `slug:` in its front matter"
            )


def write_site(output: Path, site: Site, *, write: bool = True) -> BuildReport:
    """Write what changed, keep what did not, remove what an earlier build left behind.

    With `write=False` nothing is touched, but everything that would stop a build (a
    file of the author's in the way) is raised all the same, so `publisher check` finds it.
    `output` is the path from `output_folder`; the builds folder beside it is the only
    other place written.
    """
    _check_output(output)
    if not write:
        return _plan(output, site).report
    with _builds_lock(output):
        plan = _plan(output, site)
        notes = _publish(output, plan, site) if plan.changes else []
    if notes:
        return replace(plan.report, warnings=tuple(dict.fromkeys((*plan.report.warnings, *notes))))
    return plan.report


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


def _build(
    output: Path, config: Config, plan: outputs.SitePlan, progress: Progress | None, *, workers: bool = False
) -> BuildReport:
    """`write_site` for a plan: renders only the outputs whose key changed since the served
    build, and writes each file into the new build as soon as it is rendered, so a build
    holds one page at a time, never the whole site."""
    _check_output(output)
    with _builds_lock(output):
        writer = _Writer(output, config, plan.environment)
        try:
            tell = _stages(plan, progress)
            kept = {id(item): writer.kept(item) for item in plan.outputs()}
            todo = [item for item in plan.outputs() if kept[id(item)] is None]
            renders = _render_many(todo, workers=workers)
            warnings: list[str] = []
            for item in plan.items:
                if isinstance(item, str):
                    warnings.append(item)
                    continue
                tell(item)
                known = kept[id(item)]
                warnings.extend(writer.keep(item, known) if known is not None else writer.add(item, next(renders)))
            if progress is not None:
                progress("writing", 0, len(writer.hashes))
            return writer.finish(warnings)
        except BaseException:
            writer.discard()
            raise


PARALLEL_RENDER = 400
"""Outputs to render from which a build renders them in worker processes (a cold build)."""

_RENDERING: list[Sequence[outputs.Output]] = []


def _render_many(todo: Sequence[outputs.Output], *, workers: bool) -> Iterator[outputs.Rendered]:
    """Each output of `todo` rendered, in order.

    Hundreds of them (a first build, a new template) are rendered by forked worker
    processes, one per core: they inherit the plan, so only the results cross back, and
    this process writes them in order as they come. The newsletter previews (premailer,
    a tenth of a second each) go first and one by one, so that no worker is left with
    them at the end while the others wait. Fewer outputs, or where fork is not the way
    to start processes (only Linux is sure), render here.
    """
    count = os.cpu_count() or 1
    if not workers or len(todo) < PARALLEL_RENDER or count < 2 or not sys.platform.startswith("linux"):
        yield from (item.render() for item in todo)
        return
    heavy = [n for n, item in enumerate(todo) if item.stage == "newsletter previews"]
    light = [n for n, item in enumerate(todo) if item.stage != "newsletter previews"]
    size = max(1, min(32, len(light) // (count * 8)))
    chunks = [[n] for n in heavy] + [light[start : start + size] for start in range(0, len(light), size)]
    _RENDERING.append(todo)
    try:
        with ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("fork")) as pool:
            pending: dict[int, Future[dict[int, outputs.Rendered]]] = {}
            with catch_warnings():
                # Python 3.12 warns of fork in a process with threads (a terminal's progress
                # line is one); the workers only render, touching no lock those threads hold.
                simplefilter("ignore", DeprecationWarning)
                for chunk in chunks:
                    future = pool.submit(_render_chunk, chunk)
                    pending.update(dict.fromkeys(chunk, future))
            try:
                for number in range(len(todo)):
                    yield pending.pop(number).result()[number]
            except BaseException:
                pool.shutdown(cancel_futures=True)  # a page failed, or the build stops: no more
                raise
    finally:
        _RENDERING.pop()


def _render_chunk(numbers: list[int]) -> dict[int, outputs.Rendered]:
    """In a forked worker: some outputs of the plan being built, by their place in it."""
    return {number: _RENDERING[-1][number].render() for number in numbers}


class _Writer:
    """One build in the making: what it renders goes straight into a stage folder, a
    hard-linked copy of the served build made when the first file differs."""

    def __init__(self, output: Path, config: Config, environment: str) -> None:
        self.output = output
        self.config = config
        self.environment = environment
        self.current = _served(output)
        self.root = self.current or output
        self.previous, self.manifest_note = _read_manifest(self.root) if self.current else ({}, "")
        self.record = (
            RenderRecord.load(config, output, environment, self.current.name)
            if self.current is not None and output.is_symlink()
            else None
        )
        self.hashes: dict[str, str] = {}
        self.files: dict[str, Rendered] = {}
        self.notes: dict[str, tuple[str, ...]] = {}
        self.written: list[str] = []
        self.unchanged: list[str] = []
        self.obstacles: list[str] = []
        self.hints: list[str] = []
        self.stage: Path | None = None
        self.rendered = 0
        """Outputs rendered (the others were known unchanged from the record)."""

    def keep(self, item: outputs.Output, kept: Mapping[str, Rendered]) -> tuple[str, ...]:
        """`item` as the served build has it (see `kept`); its warnings."""
        for rel, known in kept.items():
            self.hashes[rel] = known.digest
            self.files[rel] = known
            self.unchanged.append(rel)
        notes = self.record.notes[item.key] if self.record is not None else ()
        self.notes[item.key] = notes
        return notes

    def add(self, item: outputs.Output, rendered: outputs.Rendered) -> tuple[str, ...]:
        """`item` as rendered now; its warnings."""
        self.rendered += 1
        files, notes = rendered
        self.notes[item.key] = notes
        for rel, data in files.items():
            self._put(rel, data, item.key)
        return notes

    def kept(self, item: outputs.Output) -> dict[str, Rendered] | None:
        """`item`'s files in the served build, if they were rendered from the same key and
        are still as that build left them; None when it must be rendered."""
        if self.record is None or item.key not in self.record.notes:
            return None
        kept = {}
        for rel in item.paths:
            known = self.record.files.get(rel)
            if known is None or known.key != item.key or self.previous.get(rel) != known.digest:
                return None
            try:
                # A string path: thousands of files are looked at in every build.
                stat = os.lstat(f"{self.root}/{rel}")
            except OSError:
                return None
            if stat.st_size != known.size or stat.st_mtime_ns != known.mtime_ns:
                return None  # changed by hand since: render it again
            kept[rel] = known
        return kept

    def _put(self, rel: str, data: bytes, key: str) -> None:
        path = _inside(self.root, rel)
        digest = _digest(data)
        self.hashes[rel] = digest
        if _same_bytes(path, data):
            self.unchanged.append(rel)
            stat = path.stat()
            self.files[rel] = Rendered(key, digest, stat.st_size, stat.st_mtime_ns)
            return
        self.written.append(rel)
        obstacle = _obstacle(self.root, path, owned=rel in self.previous)
        if obstacle:
            self.obstacles.append(f"{self.output / rel}: {obstacle}")
            if rel in archive.FROM_TEMPLATES:
                self.hints.append(
                    f"; a {rel} of your own goes in the templates folder ([build] templates) as "
                    f"{archive.FROM_TEMPLATES[rel]}, from which the build writes it"
                )
            return
        if self.obstacles:
            return  # the build stops: nothing more is worth writing
        target = _inside(self._stage(), rel)
        _write_atomic(target, data)
        self.files[rel] = Rendered(key, digest, len(data), target.stat().st_mtime_ns)

    def _stage(self) -> Path:
        if self.stage is None:
            builds = builds_folder(self.output)
            locked = _unwritable([self.output, builds / "stage"])
            if locked:
                raise BuildError(
                    f"cannot write in {', '.join(locked)}: permission denied, so nothing was written; "
                    "check that [build] output points to a folder you can write"
                )
            try:
                self.stage = Path(tempfile.mkdtemp(dir=builds, prefix="tmp-"))
                self.stage.chmod(0o755)
                if self.current is not None:
                    _link_tree(self.current, self.stage)
            except OSError as exc:
                raise BuildError(
                    f"cannot write {self.output}: {exc.strerror or exc}; check that [build] output points to a "
                    "folder you can write"
                ) from exc
        return self.stage

    def discard(self) -> None:
        if self.stage is not None:
            shutil.rmtree(self.stage, ignore_errors=True)
            self.stage = None

    def finish(self, warnings: list[str]) -> BuildReport:
        _refuse_obstacles(self.obstacles, self.hints)
        removed, kept = _stale(self.root, self.previous, self.hashes)
        manifest = _manifest_bytes(self.hashes)
        changes = (
            bool(self.written or removed)
            or self.current is None
            or not self.output.is_symlink()
            or not _same_bytes(self.current / MANIFEST, manifest)
        )
        build = self.current
        if changes:
            stage = self._stage()
            for rel in removed:
                _remove(stage, rel)
            _write_atomic(stage / MANIFEST, manifest)
            build = builds_folder(self.output) / f"v{time.time_ns():020d}"
            try:
                stage.rename(build)
                self.stage = None
                _switch(self.output, build)
            except OSError as exc:
                raise BuildError(
                    f"cannot write {self.output}: {exc.strerror or exc}; check that [build] output points to a "
                    "folder you can write"
                ) from exc
            warnings = [*warnings, *_prune(builds_folder(self.output), build)]
        if build is not None and (changes or self.rendered):
            RenderRecord(build.name, self.files, self.notes).save(self.config, self.output, self.environment)
        notes = [
            *warnings,
            *([self.manifest_note] if self.manifest_note else []),
            *(
                f"kept {rel}: publisher wrote it, but it was changed since; remove it if it is no longer wanted"
                for rel in kept
            ),
        ]
        return BuildReport(
            written=tuple(sorted(self.written)),
            unchanged=tuple(sorted(self.unchanged)),
            warnings=tuple(dict.fromkeys(notes)),
            removed=tuple(removed),
        )


def _prune(builds: Path, version: Path) -> list[str]:
    """Remove the builds before `version`, and what killed builds left; warnings.

    Only what a build made goes: its stages (`tmp-*`), its links (`link-*`), and in an
    old build the files its manifest lists and those carried into `version` (the same
    file, hard-linked). Anything else in an old build was made there while it was served
    (a file the author or another program wrote into the output, a database's journal):
    it is left where it is, with its build folder, and named in a warning. Other names
    in the builds folder are not publisher's and are left alone.
    """
    notes: list[str] = []
    for old in builds.iterdir():
        name = old.name
        if old == version or name == ".lock" or old.is_symlink() != name.startswith("link-"):
            continue
        if name.startswith("link-"):
            old.unlink(missing_ok=True)
        elif name.startswith("tmp-") and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)  # a stage of a killed build: links and new files
        elif name.startswith("v") and old.is_dir():
            left = _clear_build(old, version)
            if left:
                shown = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
                notes.append(
                    f"kept {builds.name}/{name}: it holds files publisher did not write ({shown}), made "
                    "there while it was the site; move them where they belong, then remove the folder"
                )
    return notes


def _clear_build(old: Path, new: Path) -> list[str]:
    """Remove from the old build `old` what a build wrote (see `_prune`); the others' paths.

    os calls on strings: an old build of thousands of files is cleared at every switch.
    """
    written, _note = _read_manifest(old)
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


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a build changes relative to the build being served."""

    current: Path | None
    """The served build's folder (None before the first build)."""
    written: tuple[str, ...]
    removed: tuple[str, ...]
    manifest: bytes
    changes: bool
    report: BuildReport


def _plan(output: Path, site: Site) -> _Plan:
    current = _served(output)
    root = current or output
    targets = {rel: _inside(root, rel) for rel in site.files}
    previous, manifest_note = _read_manifest(root) if current else ({}, "")
    hashes = {rel: _digest(data) for rel, data in site.files.items()}
    written: list[str] = []
    unchanged: list[str] = []
    obstacles: list[str] = []
    hints: list[str] = []
    for rel in sorted(site.files):
        path = targets[rel]
        if _same_bytes(path, site.files[rel]):
            unchanged.append(rel)
            continue
        written.append(rel)
        obstacle = _obstacle(root, path, owned=rel in previous)
        if obstacle:
            obstacles.append(f"{output / rel}: {obstacle}")
            if rel in archive.FROM_TEMPLATES:
                hints.append(
                    f"; a {rel} of your own goes in the templates folder ([build] templates) as "
                    f"{archive.FROM_TEMPLATES[rel]}, from which the build writes it"
                )
    _refuse_obstacles(obstacles, hints)
    removed, kept = _stale(root, previous, site.files)
    manifest = _manifest_bytes(hashes)
    changes = (
        bool(written or removed)
        or current is None
        or not output.is_symlink()  # a plain folder, or a switch cut short: link a build
        or not _same_bytes(current / MANIFEST, manifest)
    )
    # Builds are staged in a new folder of ours: only the folders holding the output link
    # and the builds need to be writable.
    locked = _unwritable([output, builds_folder(output) / "stage"]) if changes else []
    if locked:
        raise BuildError(
            f"cannot write in {', '.join(locked)}: permission denied, so nothing was written; "
            "check that [build] output points to a folder you can write"
        )
    warnings = [
        *site.warnings,
        *([manifest_note] if manifest_note else []),
        *(
            f"kept {rel}: publisher wrote it, but it was changed since; remove it if it is no longer wanted"
            for rel in kept
        ),
    ]
    report = BuildReport(
        written=tuple(written),
        unchanged=tuple(unchanged),
        warnings=tuple(warnings),
        removed=tuple(removed),
    )
    return _Plan(current, tuple(written), tuple(removed), manifest, changes, report)


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


def _publish(output: Path, plan: _Plan, site: Site) -> list[str]:
    """Stage the new build beside the served one, switch the output link to it, prune; the
    pruning's warnings."""
    builds = builds_folder(output)
    stage = Path(tempfile.mkdtemp(dir=builds, prefix="tmp-"))
    try:
        stage.chmod(0o755)
        if plan.current is not None:
            _link_tree(plan.current, stage)
        for rel in plan.written:
            _write_atomic(_inside(stage, rel), site.files[rel])
        for rel in plan.removed:
            _remove(stage, rel)
        _write_atomic(stage / MANIFEST, plan.manifest)
        version = builds / f"v{time.time_ns():020d}"
        stage.rename(version)
        stage = version
        _switch(output, version)
    except OSError as exc:
        shutil.rmtree(stage, ignore_errors=True)
        raise BuildError(
            f"cannot write {output}: {exc.strerror or exc}; check that [build] output points to a folder you can write"
        ) from exc
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return _prune(builds, version)


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


def _switch(output: Path, version: Path) -> None:
    """Point `output` at `version` in one rename; a plain folder in its place moves aside first."""
    builds = version.parent
    link = builds / f"link-{version.name}"
    link.unlink(missing_ok=True)
    link.symlink_to(f"{builds.name}/{version.name}")
    if output.is_dir() and not output.is_symlink():
        # A plain folder cannot be replaced in one step: it becomes a build of its own
        # (and the newest, should the rename below never happen).
        output.rename(builds / f"v{int(version.name[1:]) - 1:020d}-plain")
    link.rename(output)


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
    return (json.dumps({"files": dict(sorted(hashes.items()))}, indent=1) + "\n").encode("utf-8")


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


def _write_atomic(path: Path, data: bytes) -> None:
    """Write a file of a stage folder, which no reader sees before the build switches to it
    whole: so readers see the old file or the new one, never half of one.

    The file is replaced, never written through: it may be a hard link to the served
    build's. os calls, not pathlib: a first build writes thousands of files.
    """
    name = os.fspath(path)
    try:
        try:
            mode = os.stat(name).st_mode & 0o777  # noqa: PTH116
            os.unlink(name)  # noqa: PTH108
        except FileNotFoundError:
            mode = _FILE_MODE
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(name, flags, mode)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(name), exist_ok=True)  # noqa: PTH103, PTH120
            fd = os.open(name, flags, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(name, mode)  # noqa: PTH101  (whatever the umask)
    except OSError as exc:
        raise BuildError(
            f"cannot write {path}: {exc.strerror or exc}; check that [build] output points to a folder you can write"
        ) from exc


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
