"""The edge of a build: a new build staged beside the served one, then switched in one step.

Unchanged files are hard links to the served build's (their mtime and ETag survive), the
rest are written into the stage one by one; the output link is then renamed onto the new
build, so a reader sees the old site or the new one, never half of each. A build killed
at any moment leaves the served site as it was and no temp file inside it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from pathlib import Path

from publisher.config import Config
from publisher.errors import BuildError
from publisher.models import Article, BuildReport
from publisher.site import archive, outputs
from publisher.site.build import standby
from publisher.site.build.files import (
    MANIFEST,
    _builds_lock,
    _check_output,
    _digest,
    _inside,
    _link_tree,
    _manifest_bytes,
    _obstacle,
    _prune,
    _read_manifest,
    _refuse_obstacles,
    _remove,
    _same_bytes,
    _served,
    _stale,
    _unwritable,
    builds_folder,
    output_folder,
)
from publisher.site.build.planning import Progress, Site, _plan_site, _render_all, _render_many, _stages
from publisher.site.build.standby import Journal, Standby
from publisher.site.build_cache import ArticleCache, PlanSnapshot, Rendered, RenderRecord, TemplateRefs
from publisher.site.compiled_templates import CompiledTemplates

__all__ = ["Checked", "build_site", "check_build", "write_site"]


_FILE_MODE = 0o644


def build_site(
    config: Config,
    articles: Sequence[Article],
    now: datetime,
    *,
    write: bool = True,
    progress: Progress | None = None,
    cache: ArticleCache | None = None,
    workers: bool = False,
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
    return _build(output, config, partial(_planned, config, articles, now, bodies), progress, workers=workers)


_Planner = Callable[[PlanSnapshot | None], outputs.SitePlan]
"""Plans the site, given what the served build's archive was planned from (or None)."""


def _planned(
    config: Config, articles: Sequence[Article], now: datetime, bodies: outputs.Bodies, previous: PlanSnapshot | None
) -> outputs.SitePlan:
    """The plan, following the template graph the last build kept, which keeps it in turn;
    its pages render with the templates the last build compiled."""
    refs = TemplateRefs.load(config)
    compiled = CompiledTemplates.for_config(config)
    plan = _plan_site(config, articles, now, bodies, refs, previous, compiled)
    refs.save(config)
    return plan


def _plan_with(writer: _Writer, planner: _Planner) -> tuple[outputs.SitePlan, dict[int, Mapping[str, Rendered] | None]]:
    """The plan, and each output's and recorded item's files as the served build has them
    (None: to render). Planned from the served build's snapshot when its record has one;
    should a file it leaves unplanned not be as the build left it, everything is planned."""
    previous = writer.record.plan if writer.record is not None else None
    while True:
        plan = planner(previous)
        kept: dict[int, Mapping[str, Rendered] | None] = {}
        for item in plan.items:
            if isinstance(item, outputs.Output):
                kept[id(item)] = writer.kept(item)
            elif isinstance(item, outputs.Recorded):
                found = writer.recorded(item)
                if found is None:
                    break  # changed by hand, or not in the record: render what it needs
                kept[id(item)] = found
        else:
            return plan, kept
        assert previous is not None  # only a snapshot leaves pages unplanned
        previous = None


@dataclass(frozen=True, slots=True)
class Checked:
    """What a build would do (`check_build`), nothing written."""

    report: BuildReport
    files: int
    """Files the site has."""
    feeds: Mapping[str, str]
    """Every feed of the site by its path, with the SHA-256 (hex) of its bytes: rendered
    now, or as the served build's record vouches for them (not read again)."""
    rendered: Mapping[str, bytes]
    """The bytes of the feeds rendered now; the others are in the served build (`feed_bytes`)."""
    root: Path

    def feed_bytes(self, rel: str) -> bytes:
        """A feed's bytes: rendered now, or read from the served build."""
        found = self.rendered.get(rel)
        return found if found is not None else (self.root / rel).read_bytes()


def check_build(
    config: Config, articles: Sequence[Article], now: datetime, *, cache: ArticleCache | None = None
) -> Checked:
    """`build_site` without writing: what a build would write, keep and remove, and its warnings.

    Like a build it renders only the outputs whose key the served build's record lacks
    (an edited article's page and the lists showing it), compares those with the served
    files, and takes the rest, with their warnings, from the record: a check after one
    edit costs what the build would. Everything that would stop a build (a file of the
    author's in the way) is raised all the same.
    """
    output = output_folder(config)
    _check_output(output)
    bodies: outputs.Bodies = cache if cache is not None else outputs.InMemory()
    writer = _Writer(output, config, outputs.base_key(config), dry=True)
    plan, kept = _plan_with(writer, partial(_planned, config, articles, now, bodies))
    warnings: list[str] = []
    feeds: dict[str, str] = {}
    made: dict[str, bytes] = {}
    for item in plan.items:
        if isinstance(item, str):
            warnings.append(item)
            continue
        known = kept[id(item)]
        if isinstance(item, outputs.Recorded):
            assert known is not None
            warnings.extend(writer.keep_recorded(known))
            feeds.update((rel, known[rel].digest.removeprefix("sha256:")) for rel in item.paths if _is_feed(rel))
            continue
        if known is not None:
            warnings.extend(writer.keep(item, known))
            feeds.update((rel, known[rel].digest.removeprefix("sha256:")) for rel in item.paths if _is_feed(rel))
            continue
        rendered = item.render()
        for rel, data in rendered[0].items():
            if _is_feed(rel):
                made[rel] = data
                feeds[rel] = hashlib.sha256(data).hexdigest()
        warnings.extend(writer.add(item, rendered))
    return Checked(writer.report(warnings), len(writer.hashes), feeds, made, writer.root)


def _is_feed(rel: str) -> bool:
    return rel.startswith("feeds/") and rel.endswith((".xml", ".json"))


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


def _build(
    output: Path, config: Config, planner: _Planner, progress: Progress | None, *, workers: bool = False
) -> BuildReport:
    """`write_site` for a plan: renders only the outputs whose key changed since the served
    build, and writes each file into the new build as soon as it is rendered, so a build
    holds one page at a time, never the whole site."""
    _check_output(output)
    with _builds_lock(output):
        writer = _Writer(output, config, outputs.base_key(config))
        try:
            plan, kept = _plan_with(writer, planner)
            writer.snapshot = plan.snapshot
            tell = _stages(plan, progress)
            todo = [item for item in plan.outputs() if kept[id(item)] is None]
            renders = _render_many(todo, workers=workers)
            warnings: list[str] = []
            for item in plan.items:
                if isinstance(item, str):
                    warnings.append(item)
                    continue
                known = kept[id(item)]
                if isinstance(item, outputs.Recorded):
                    assert known is not None
                    warnings.extend(writer.keep_recorded(known))
                    continue
                tell(item)
                warnings.extend(writer.keep(item, known) if known is not None else writer.add(item, next(renders)))
            if progress is not None:
                progress("writing", 0, len(writer.hashes))
            return writer.finish(warnings)
        except BaseException:
            writer.discard()
            raise


class _Doubt(Exception):
    """The standby is not as its record says: the build takes the full path instead."""


class _Writer:
    """One build in the making: what it renders goes straight into a stage folder, made
    when the first file differs. That is the standby build brought up to date
    (`publisher.site.build.standby`) when its record is trusted, else a hard-linked copy of
    the served build (the full path)."""

    def __init__(self, output: Path, config: Config, environment: str, *, dry: bool = False) -> None:
        self.output = output
        self.dry = dry
        """Compare only: nothing is staged or written (`check_build`)."""
        self.config = config
        self.environment = environment
        self.current = _served(output)
        self.root = self.current or output
        self.root_name = os.fspath(self.root)
        self.previous, self.manifest_note = _read_manifest(self.root) if self.current else ({}, "")
        linked = self.current is not None and output.is_symlink()
        self.record = (
            RenderRecord.load(config, output, environment, self.current.name)
            if self.current is not None and linked
            else None
        )
        self.builds = builds_folder(output)
        self.standby = Standby.load(self.builds, self.current) if self.current is not None and linked else None
        """The standby's record when it is trusted: the build then brings the standby up to date."""
        self.journal: Journal | None = None
        self.seen: dict[str, int] = {}
        """The served build's files and links by their inode, as its folders list them (no
        file is read): with a standby, how the build finds the author's own files to carry."""
        self.extras: list[str] = []
        """The author's own files in the served build, carried into the next."""
        if self.standby is not None and self.current is not None and not dry:
            # A check looks at each file as a full build does (one stat a file costs less
            # than listing every folder, and it carries no file of the author's).
            self.seen = standby.listing(os.fspath(self.current))
            self.extras = standby.authors_files(self.seen, self.previous, MANIFEST)
        self.hashes: dict[str, str] = {}
        self.files: dict[str, Rendered] = {}
        self.notes: dict[str, tuple[str, ...]] = {}
        self.written: list[str] = []
        self.unchanged: list[str] = []
        self.obstacles: list[str] = []
        self.hints: list[str] = []
        self.stage: Path | None = None
        self.pruned: list[str] = []
        """Warnings of clearing what killed builds left, before the standby was brought up."""
        self.rendered = 0
        """Outputs rendered (the others were known unchanged from the record)."""
        self.snapshot: PlanSnapshot | None = None
        """What this build's archive was planned from, kept with its record."""

    def keep(self, item: outputs.Output, kept: Mapping[str, Rendered]) -> tuple[str, ...]:
        """`item` as the served build has it (see `kept`); its warnings."""
        for rel, known in kept.items():
            self.hashes[rel] = known.digest
            self.files[rel] = known
            self.unchanged.append(rel)
        notes = self.record.notes.get(item.key, ()) if self.record is not None else ()
        self.notes[item.key] = notes
        return notes

    def keep_recorded(self, kept: Mapping[str, Rendered]) -> list[str]:
        """Recorded files as the served build has them (see `recorded`); their warnings."""
        said: list[str] = []
        notes = self.record.notes if self.record is not None else {}
        for rel, known in kept.items():
            # One file an output: an archive page (never a preview's two).
            self.hashes[rel] = known.digest
            self.files[rel] = known
            self.unchanged.append(rel)
            self.notes[known.key] = notes.get(known.key, ())
            said.extend(self.notes[known.key])
        return said

    def recorded(self, item: outputs.Recorded) -> dict[str, Rendered] | None:
        """The files of `item` in the served build, each still as that build left it (see
        `kept`); None when one is not, or the record does not name it."""
        record = self.record
        if record is None:
            return None
        files, previous, root = record.files, self.previous, self.root_name
        linked = self.standby is not None and not self.dry
        lstat = os.lstat
        kept = {}
        for rel in item.paths:
            known = files.get(rel)
            if known is None or previous.get(rel) != known.digest:
                return None
            try:
                stat = lstat(f"{root}/{rel}")
            except OSError:
                return None
            if stat.st_size != known.size or stat.st_mtime_ns != known.mtime_ns:
                return None
            if linked and stat.st_ino != known.inode:
                return None
            kept[rel] = known
        return kept

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
        record = self.record
        if record is None:
            return None
        # Strings and locals: thousands of files are looked at in every build.
        files, previous, root = record.files, self.previous, self.root_name
        linked = self.standby is not None and not self.dry
        kept = {}
        for rel in item.paths:
            known = files.get(rel)
            if known is None or known.key != item.key or previous.get(rel) != known.digest:
                return None
            try:
                stat = os.lstat(f"{root}/{rel}")
            except OSError:
                return None
            if stat.st_size != known.size or stat.st_mtime_ns != known.mtime_ns:
                return None  # changed by hand since, in place or not: render it again
            # With a trusted standby record, the file must also be the one the build left
            # (its inode): the standby is brought up to date by linking that file.
            if linked and stat.st_ino != known.inode:
                return None  # replaced by hand since: render it again
            kept[rel] = known
        return kept

    def _put(self, rel: str, data: bytes, key: str) -> None:
        path = _inside(self.root, rel)
        digest = _digest(data)
        self.hashes[rel] = digest
        if _same_bytes(path, data):
            self.unchanged.append(rel)
            stat = path.stat()
            self.files[rel] = Rendered(key, digest, stat.st_size, stat.st_mtime_ns, stat.st_ino)
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
        if self.dry:
            self.files[rel] = Rendered(key, digest, len(data), 0, 0)
            return
        target = _inside(self._stage(), rel)
        if self.journal is not None:
            self.journal.name((rel,))
        _write_atomic(target, data)
        stat = target.stat()
        self.files[rel] = Rendered(key, digest, len(data), stat.st_mtime_ns, stat.st_ino)

    def _stage(self) -> Path:
        if self.stage is not None:
            return self.stage
        builds = self.builds
        locked = _unwritable([self.output, builds / "stage"])
        if locked:
            raise BuildError(
                f"cannot write in {', '.join(locked)}: permission denied, so nothing was written; "
                "check that [build] output points to a folder you can write"
            )
        if self.standby is not None:
            try:
                self.stage = self._bring_up(self.standby)
            except _Doubt:
                # The full path; the standby is cleared, by its journal, after the switch.
                self.standby = None
                if self.journal is not None:
                    self.journal.close(remove=False)
                    self.journal = None
        if self.stage is None:
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

    def _bring_up(self, record: Standby) -> Path:
        """The standby made equal to the served build, ready for this build's changes.

        The record goes first and every file put in the standby is journaled before it is
        written, so a build killed here leaves a standby the next build clears, never serves.
        """
        assert self.current is not None
        # What killed builds left (a build, a stage, and the journal naming a half-written
        # one) goes first: the journal is about to be reused for this standby.
        self.pruned = _prune(self.builds, self.current, keep=record.standby)
        record.wait()
        standby.forget(self.builds)
        folder = self.builds / record.standby
        self.journal = Journal(self.builds, folder)
        live, target = os.fspath(self.current), os.fspath(folder)
        extras = self.extras
        gone = [rel for rel in record.extras if rel not in set(extras)]
        self.journal.name(rel for rel in (*record.changed, *extras) if rel in self.previous or rel in extras)
        try:
            for rel in (*record.changed, *gone, *extras):
                _inside(folder, rel)  # a record naming a path out of the output is not ours
                if not standby.folders_only(target, rel):
                    raise _Doubt(rel)  # a link or a file where a folder should be: not as recorded
                if rel in self.previous or rel in extras:
                    if not standby.same_file(f"{live}/{rel}", f"{target}/{rel}"):
                        standby.carry(f"{live}/{rel}", f"{target}/{rel}")
                else:
                    standby.drop(target, rel)
        except BuildError as exc:
            raise _Doubt(str(exc)) from exc
        except OSError as exc:
            raise BuildError(
                f"cannot write {self.output}: {exc.strerror or exc}; check that [build] output points to a "
                "folder you can write"
            ) from exc
        return folder

    def discard(self) -> None:
        if self.journal is not None:
            # The standby, half brought up: left for the next build to clear by the journal.
            self.journal.close(remove=False)
            self.journal = None
            self.stage = None
        if self.stage is not None:
            shutil.rmtree(self.stage, ignore_errors=True)
            self.stage = None

    def report(self, warnings: list[str]) -> BuildReport:
        """What `finish` would report, nothing written (a dry writer's end)."""
        _refuse_obstacles(self.obstacles, self.hints)
        removed, kept = _stale(self.root, self.previous, self.hashes)
        return self._report(warnings, removed, kept)

    def _report(self, warnings: list[str], removed: list[str], kept: list[str]) -> BuildReport:
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
            if self.journal is not None and self.current is not None:
                # A stale file the author changed stays, as the author's (the full path's
                # copy of the served build keeps it the same way).
                for rel in kept:
                    standby.carry(f"{self.current}/{rel}", f"{stage}/{rel}")
            _write_atomic(stage / MANIFEST, manifest)
            build = self.builds / f"v{time.time_ns():020d}"
            try:
                stage.rename(build)
                self.stage = None
                _switch(self.output, build)
            except OSError as exc:
                raise BuildError(
                    f"cannot write {self.output}: {exc.strerror or exc}; check that [build] output points to a "
                    "folder you can write"
                ) from exc
            after = self._next_standby(build, [*self.written, *removed], kept)
            if self.journal is not None:
                self.journal.close(remove=True)
                self.journal = None
            warnings = [*warnings, *self.pruned, *_prune(self.builds, build, keep=after.standby if after else "")]
        elif build is not None and build.parent == self.builds:
            # Nothing to switch, but a build killed after its switch may have left a third
            # build or a stage behind: a look at the builds folder's few names clears them.
            warnings = [*warnings, *_prune(self.builds, build, keep=self.standby.standby if self.standby else "")]
        planned_anew = self.record is not None and self.record.plan != self.snapshot
        if build is not None and (changes or self.rendered or planned_anew):
            made = RenderRecord(build.name, self.files, self.notes)
            if self.record is not None:
                # Made from the served build's record: only what changed is written (`RenderRecord.save`).
                made = replace(self.record, build=build.name, files=self.files, notes=self.notes, plan=self.snapshot)
            else:
                made = replace(made, plan=self.snapshot)
            made.save(self.config, self.output, self.environment)
        return self._report(warnings, removed, kept)

    def _next_standby(self, build: Path, changed: list[str], kept: list[str]) -> Standby | None:
        """Record the standby for the next build, just switched from `build`'s side: the
        build served until now, or a copy of `build` after a first build. None when there
        is none to keep (an older publisher's plain folder was served)."""
        now = time.time_ns()
        if self.current is None or self.current.parent != self.builds:
            if self.current is not None:
                return None
            # A first build: its copy is the standby (never served, so no reader to wait for).
            copy = self.builds / f"v{int(build.name[1:]) - 1:020d}"
            temp = Path(tempfile.mkdtemp(dir=self.builds, prefix="tmp-"))
            try:
                temp.chmod(0o755)
                _link_tree(build, temp)
                temp.rename(copy)
            except OSError:
                shutil.rmtree(temp, ignore_errors=True)
                return None  # the next build takes the full path
            record = standby.as_record(build.name, copy.name, (), (), 0)
        elif self.journal is not None:
            record = standby.as_record(build.name, self.current.name, changed, [*self.extras, *kept], now)
        else:
            extras = standby.authors_files(standby.listing(os.fspath(build)), self.hashes, MANIFEST)
            record = standby.as_record(build.name, self.current.name, changed, extras, now)
        record.save(self.builds)
        return record


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
