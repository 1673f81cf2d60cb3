"""Our own export (`publisher export`) read back into a publication: `publisher migrate
publisher FILE.zip` and the desk's Move in.

`plan_import` and `apply_import` go into an existing publication, usually a new one made
by `publisher init`, kind by kind:

- files (articles, pictures, templates): written where they are not yet; a file there
  with the same bytes is skipped, one with other bytes is refused and never replaced.
  Each article is recorded as noticed before its file lands, so no policy mails it as new;
- subscribers: the ordinary CSV import (status and consent kept; an unsubscribed,
  bounced or complained reader stays off the list), then their own choices (every
  article or the digest, topics) and their links' key, so the unsubscribe links in mail
  sent before the move keep reaching the same person (with the same PUBLISHER_SECRET);
- issues with their copies, one transaction per issue: sending an imported article again
  reaches only readers who never had it. An issue is known by its article's id as this
  publication names it (the host is part of it). Copies still waiting when the export
  was made come back as skipped: this publication does not send them (the old server may
  have);
- events (joined, confirmed, left, bounced, complained), each with the issue it answered,
  so each issue's figures and each reader's history come back; the redirects;
- settings: what the publication is and says (`CARRIED`), checked whole by config.toml's
  rules before config.toml changes; never the address, folders, database or provider.

The plan writes nothing and gives the counts the apply will: per kind, created + updated +
skipped + refused = read. An apply stopped half-way (a kill) and run again adds only what
is missing; run twice, it changes nothing.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import Engine

from publisher import content
from publisher.config import SETTINGS, Config, parse_config
from publisher.content.exports import publisher_export as reader
from publisher.content.folder_lock import content_lock
from publisher.errors import BuildError, ConfigError, Conflict, ContentError, InvalidRequest
from publisher.services.settings import write_atomically
from publisher.services.settings_text import edit_text
from publisher.store import export_rows, publishing
from publisher.store import redirects as redirect_store
from publisher.store import subscribers as subscriber_store
from publisher.store.import_preview import preview_import

__all__ = ["KindCounts", "MoveIn", "apply_import", "plan_import"]

_ENDED = frozenset({"sent", "failed", "skipped"})
SETTINGS_BY_KEY = {setting.key: setting for setting in SETTINGS}


@dataclass(frozen=True, slots=True)
class KindCounts:
    """What an import does (or would do) with one kind of record."""

    kind: str
    created: int = 0
    updated: int = 0
    skipped: int = 0
    refused: int = 0
    reasons: tuple[str, ...] = ()
    """Each refused record, with the file and record it came from, and why."""

    @property
    def read(self) -> int:
        return self.created + self.updated + self.skipped + self.refused


@dataclass(frozen=True, slots=True)
class MoveIn:
    """A plan (nothing written) or what an apply did, kind by kind."""

    label: str
    applied: bool
    kinds: tuple[KindCounts, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def of(self, kind: str) -> KindCounts:
        return next(k for k in self.kinds if k.kind == kind)


def plan_import(config: Config, db: Engine, path: Path, *, now: datetime) -> MoveIn:
    """What `apply_import` would do with the export at `path`; writes nothing."""
    return _import(config, db, path, now=now, write=False)


def apply_import(config: Config, db: Engine, path: Path, *, now: datetime) -> MoveIn:
    """Bring our own export at `path` into this publication (see the module's docstring)."""
    return _import(config, db, path, now=now, write=True)


def _import(config: Config, db: Engine, path: Path, *, now: datetime, write: bool) -> MoveIn:
    with reader.open_archive(path) as archive:
        kinds: list[KindCounts] = []
        folders = {"content": config.path_of("build.content"), "templates": config.path_of("build.templates")}
        notice = _noticer(config, db, now=now)
        with content_lock(folders["content"]):
            for kind, part, test in (
                ("articles", "content", lambda n: n.endswith(".md")),
                ("media", "content", lambda n: not n.endswith(".md")),
                ("templates", "templates", lambda n: True),
            ):
                chosen = [f for f in archive.files(part) if test(f.path)]
                kinds.append(_files_into(archive, chosen, folders[part], kind, write=write, before=notice))
        kinds.append(_subscribers(archive, db, now=now, write=write))
        kinds.append(_choices(archive, db, write=write))
        issue_counts, delivery_counts, issue_ids, waiting = _ledger(config, archive, db, now=now, write=write)
        kinds.extend((issue_counts, delivery_counts, _events(archive, db, issue_ids, write=write)))
        kinds.append(_redirects(archive, db, now=now, write=write))
        settings, notes = _settings(config, archive, write=write)
        kinds.append(settings)
        if waiting:
            notes = [_waiting_note(waiting), *notes]
    return MoveIn(label=path.name, applied=write, kinds=tuple(kinds), notes=tuple(notes))


def _files_into(
    archive: reader.ExportArchive, files: list[reader.ArchiveFile], folder: Path, kind: str, *, write: bool,
    before: Callable[[Path, bytes], None] = lambda _target, _data: None,
) -> KindCounts:
    """Each file written where it is not yet; `before` hears each one first (an article is
    noticed before it lands, so that no policy ever mails it as new)."""
    created = skipped = 0
    refused: list[str] = []
    for item in files:
        target = folder / item.path
        try:
            inside = target.resolve().is_relative_to(folder.resolve())
        except OSError:
            inside = False
        if not inside:
            refused.append(f"{archive.label}: {item.member}: leads out of the folder {folder}")
            continue
        if target.exists():
            same = target.is_file() and target.stat().st_size == item.size
            if same and target.read_bytes() == archive.read(item.member):
                skipped += 1
            else:
                refused.append(
                    f"{archive.label}: {item.member}: {target} is here already with other content; "
                    "it was left alone (move it away and import again to bring this one)"
                )
            continue
        created += 1
        if write:
            if kind == "articles":
                before(target, archive.read(item.member))
            _write_new(target, archive, item.member)
    return KindCounts(kind=kind, created=created, skipped=skipped, refused=len(refused), reasons=tuple(refused))


def _write_new(target: Path, archive: reader.ExportArchive, member: str) -> None:
    """Write one file under a hidden name beside it, then link it into place (never replacing)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".import-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, archive.open(member) as source:
            while chunk := source.read(1 << 20):
                out.write(chunk)
        Path(temp).chmod(0o644)
        try:
            os.link(temp, target)
        except FileExistsError:
            raise Conflict(f"{target} appeared while the import ran; it was left alone. Import again.") from None
        except OSError:  # a file system without hard links: rename, after one more look
            if target.exists():
                raise Conflict(f"{target} appeared while the import ran; it was left alone. Import again.") from None
            Path(temp).rename(target)
    except OSError as exc:
        raise BuildError(f"cannot write {target}: {exc.strerror or exc}") from exc
    finally:
        Path(temp).unlink(missing_ok=True)


def _subscribers(archive: reader.ExportArchive, db: Engine, *, now: datetime, write: bool) -> KindCounts:
    if not archive.has("subscribers.csv"):
        return KindCounts(kind="subscribers")
    origin = f"{archive.label}: subscribers.csv"
    try:
        if not write:
            preview = preview_import(db, archive.lines("subscribers.csv"), origin=origin)
            reasons = tuple(f"{origin} {r}" for r in preview.rejected)
            return KindCounts(kind="subscribers", created=preview.new, skipped=preview.existing,
                              refused=len(reasons), reasons=reasons)
        report = subscriber_store.import_csv(db, archive.lines("subscribers.csv"), now=now, origin=origin)
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"{origin}: not UTF-8 text; export the publication again") from exc
    reasons = tuple(f"{origin} {r}" for r in report.rejected)
    return KindCounts(kind="subscribers", created=report.imported, updated=report.updated,
                      skipped=report.unchanged + report.kept, refused=len(reasons), reasons=reasons)


def _choices(archive: reader.ExportArchive, db: Engine, *, write: bool) -> KindCounts:
    """Readers' own choices and link keys, a thousand at a time, after the readers."""
    updated = unchanged = 0
    refused: list[str] = []
    batch: list[export_rows.Choice] = []

    def flush() -> None:
        nonlocal updated, unchanged
        done = export_rows.put_choices(db, batch, write=write)
        updated, unchanged = updated + done.updated, unchanged + done.unchanged
        refused.extend(f"{archive.label}: reader_choices.csv line {w}" for w in done.refused)
        if write:
            refused.extend(
                f"{archive.label}: reader_choices.csv line {c.line}: {c.email} is not a subscriber here "
                "(see why subscribers.csv refused it)" for c in done.missing
            )
        else:  # a reader the plan will create takes their choices
            updated += len(done.missing)
        batch.clear()

    for choice in archive.choices():
        batch.append(export_rows.Choice(email=choice.email, frequency=choice.frequency, topics=choice.topics,
                                        link_key=choice.link_key, line=choice.line))
        if len(batch) >= 1000:
            flush()
    if batch:
        flush()
    return KindCounts(kind="reader choices", updated=updated, skipped=unchanged, refused=len(refused),
                      reasons=tuple(refused))


def _events(
    archive: reader.ExportArchive, db: Engine, issue_ids: dict[int, int | None], *, write: bool
) -> KindCounts:
    """Readers' history, each event answering the issue it answered there (by its id here)."""
    added = seen = 0
    refused: list[str] = []
    batch: list[export_rows.EventRow] = []

    def flush() -> None:
        nonlocal added, seen
        more, had = export_rows.put_events(db, batch, write=write)
        added, seen = added + more, seen + had
        batch.clear()

    for event in archive.events():
        if event.issue is not None and event.issue not in issue_ids:
            refused.append(f"{archive.label}: events.csv line {event.line}: issue {event.issue} is not in issues.csv")
            continue
        batch.append(export_rows.EventRow(
            email=event.email, kind=event.kind, provider=event.provider, detail=event.detail,
            created_at=event.created_at, issue_id=issue_ids[event.issue] if event.issue is not None else None,
            event_key=event.event_key,
        ))
        if len(batch) >= 2000:
            flush()
    flush()
    return KindCounts(kind="events", created=added, skipped=seen, refused=len(refused), reasons=tuple(refused))


def _redirects(archive: reader.ExportArchive, db: Engine, *, now: datetime, write: bool) -> KindCounts:
    found = archive.redirects()
    paths = {r.old_path: redirect_store.normal_path(r.old_path) for r in found}
    here = redirect_store.recorded(db, paths.values())
    refused = tuple(
        f"{archive.label}: redirects.csv line {r.line}: {r.old_path!r} is not a path on a site" for r in found
        if not paths[r.old_path]
    )
    fresh = [r for r in found if paths[r.old_path] and paths[r.old_path] not in here]
    if write:
        for source in sorted({r.source for r in fresh}):
            redirect_store.add(db, [(r.old_path, r.target) for r in fresh if r.source == source],
                               source=source, now=now)
    return KindCounts(kind="redirects", created=len(fresh), skipped=len(found) - len(fresh) - len(refused),
                      refused=len(refused), reasons=refused)


def _rekeyed(key: str, host: str) -> str:
    """An article issue's key as this publication names the article: the host is part of
    an article's id, so a publication moved to a new address knows its old issues by it."""
    if key.startswith("tag:") and "," in key:
        return f"tag:{host},{key.split(',', 1)[1]}"
    return key


def _ledger(
    config: Config, archive: reader.ExportArchive, db: Engine, *, now: datetime, write: bool
) -> tuple[KindCounts, KindCounts, dict[int, int | None], dict[str, int]]:
    """Each issue with its copies, one transaction per issue (deliveries.csv lists them
    issue by issue, so one issue's copies are in memory at a time); each issue's id here
    by its number in the export (None in a plan, for one not here yet); and how many
    copies of each issue (by subject) were still waiting when the export was made."""
    host = urlsplit(config.site_url).hostname or config.site_url
    issues = {issue.number: issue for issue in archive.issues()}
    created: dict[int, bool] = {}
    ids: dict[int, int | None] = {}
    added = seen = 0
    refused: list[str] = []
    waiting: dict[str, int] = {}

    def put(number: int, copies: list[export_rows.DeliveryRow]) -> None:
        nonlocal added, seen
        issue = issues[number]
        done = export_rows.put_issue(db, export_rows.IssueRow(
            id=0, key=_rekeyed(issue.key, host), kind=issue.kind, slug=issue.slug, subject=issue.subject,
            html=issue.html, text=issue.text, tag=issue.tag,
            status="done" if issue.status in ("done", "sending") else issue.status, topics=issue.topics,
            created_at=issue.created_at, enqueued_at=issue.sent_at,
            finished_at=issue.finished_at or (issue.sent_at and now),
        ), copies, now=now, write=write)
        created.setdefault(number, done.created)
        ids[number] = done.issue_id
        added, seen = added + done.added, seen + done.seen

    group: list[export_rows.DeliveryRow] = []
    current: int | None = None
    for row in archive.deliveries():
        if row.issue not in issues:
            refused.append(f"{archive.label}: deliveries.csv line {row.line}: issue {row.issue} is not in issues.csv")
            continue
        if row.issue != current:
            if current is not None:
                put(current, group)
            current, group = row.issue, []
        state, detail = row.state, row.detail
        if state not in _ENDED:
            subject = issues[row.issue].subject or f"issue {row.issue}"
            waiting[subject] = waiting.get(subject, 0) + 1
            state = "skipped"
            detail = "waiting when the publication was exported; not sent from here"
        group.append(export_rows.DeliveryRow(
            issue_id=0, email=row.email, name=row.name, state=state, attempts=row.attempts, sent_at=row.sent_at,
            message_key=row.message_key, uncertain=row.uncertain, detail=detail,
        ))
    if current is not None:
        put(current, group)
    for number in issues:
        if number not in created:
            put(number, [])
    made = sum(created.values())
    return (
        KindCounts(kind="issues", created=made, skipped=len(created) - made),
        KindCounts(kind="deliveries", created=added, skipped=seen, refused=len(refused), reasons=tuple(refused)),
        ids,
        waiting,
    )


def _waiting_note(waiting: dict[str, int]) -> str:
    total = sum(waiting.values())
    which = "; ".join(f"{subject!r}: {count}" for subject, count in waiting.items())
    return (
        f"{total} {'copy was' if total == 1 else 'copies were'} still waiting to be sent when the publication "
        f"was exported ({which}): they come back as skipped and are never sent from here, since the old "
        "server may have sent them; send from the old server first if they should still go"
    )


def _noticer(config: Config, db: Engine, *, now: datetime) -> Callable[[Path, bytes], None]:
    """Records an imported article as noticed before its file lands: it is old news here."""

    def notice(target: Path, data: bytes) -> None:
        try:
            source = target.resolve().relative_to(config.root.resolve()).as_posix()
        except ValueError:
            source = str(target)
        try:
            article = content.parse_article(data.decode("utf-8"), source=source, config=config)
        except (ContentError, UnicodeDecodeError):
            return  # never published as it is: `publisher check` names it
        publishing.mark_seen(db, article_id=article.id, slug=article.slug, origin=source, handled="backlog", now=now)

    return notice


CARRIED = ("publication.", "feeds.", "newsletter.", "schedule.", "subscribe.", "build.previews", "build.per_page",
           "build.search")
"""The settings an export brings back: what the publication is and says, not where this
server keeps its files, its database or its mail provider (set those for the new place)."""
_NOT_CARRIED = frozenset({"publication.url"})
"""The address stays the new publication's own (`publisher init` asked for it)."""


def _carried(key: str) -> bool:
    setting = SETTINGS_BY_KEY.get(key)
    return (
        setting is not None and setting.kind != "path" and key not in _NOT_CARRIED
        and any(key == prefix or (prefix.endswith(".") and key.startswith(prefix)) for prefix in CARRIED)
    )


def _same(a: object, b: object) -> bool:
    return (tuple(a) if isinstance(a, list) else a) == (tuple(b) if isinstance(b, list) else b)


def _settings(config: Config, archive: reader.ExportArchive, *, write: bool) -> tuple[KindCounts, list[str]]:
    """settings.toml's carried keys into config.toml, comments and order kept; checked
    whole first, by the same rules as every config.toml: a problem changes nothing."""
    notes = ["the mail provider, the folders, the database and the server's address are not brought: "
             "they are this server's own (settings.toml in the archive has the old ones)"]
    if not archive.has("settings.toml"):
        return KindCounts(kind="settings"), notes
    where = f"{archive.label}: settings.toml"
    try:
        old = tomllib.loads(archive.read("settings.toml").decode("utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        reason = f"{where}: cannot be read ({exc}); no setting was brought"
        return KindCounts(kind="settings", refused=1, reasons=(reason,)), notes
    values = {key: value for key, value in _flat(old).items() if _carried(key)}
    changed = {key: value for key, value in values.items() if not _same(value, config[key])}
    if not changed:
        return KindCounts(kind="settings", skipped=len(values)), notes
    config_path = config.path or config.root / "config.toml"
    text = config_path.read_text(encoding="utf-8-sig")
    new_text = edit_text(text, changed)
    try:
        parse_config(new_text, root=config.root, origin=config_path.name, env=config.env)
    except ConfigError as exc:
        reasons = tuple(f"{where}: {problem}" for problem in (exc.problems or (str(exc),)))
        return KindCounts(kind="settings", skipped=len(values) - len(changed), refused=len(changed),
                          reasons=reasons), notes
    if write:
        write_atomically(config_path, new_text)
    return KindCounts(kind="settings", updated=len(changed), skipped=len(values) - len(changed)), notes


def _flat(table: dict[str, object], prefix: str = "") -> dict[str, object]:
    found: dict[str, object] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            found.update(_flat(value, f"{prefix}{key}."))
        else:
            found[f"{prefix}{key}"] = value
    return found
