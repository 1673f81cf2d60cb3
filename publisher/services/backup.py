"""Backups of a whole publication, and putting one back: `publisher backup`, `publisher
restore`, and the daemon's scheduled backups (the archive's format and its checks are
`backup_archive`'s).

A backup is written under a temporary name in the destination folder and renamed when
whole, so an archive that carries its final name (`publisher-backup-YYYYMMDD-HHMMSS.tar.gz`,
the time in UTC) is always complete. The database is copied consistently while the daemon
and senders write (SQLite's online backup API, `pg_dump`). Archives hold every
subscriber's address: they are created 0600 in a folder of mode 0700, and a destination
inside the content, template or site folder is refused (the build would publish it).

Secrets stay out. The environment's secrets (PUBLISHER_SECRET, provider keys) were never
files; the files beside config.toml that hold secrets (the demo's `.publisher-secret`, the
desk's secrets file, the DKIM keys) are left out too, and each backup names them, so that
the author keeps them elsewhere (a password manager) and copies them to a restored server.
Nothing else beside config.toml comes along: `public/` is rebuilt by `publisher build`,
and the outbox and the build cache are not the publication's.

A restore checks the whole archive before it writes anything (`verify_archive`), and goes
only into an empty or new folder and, for PostgreSQL, a database without tables. Files
are unpacked into a temporary folder beside the target and moved into it when all are
whole; config.toml is pointed at where the database and folders now are (comments kept).

Exactly once across a restore: the ledger comes back as it was at the backup's instant.
Rows recorded sent by then are never sent again. Rows that were in flight (claimed, their
answer not yet recorded) may or may not have reached the provider: the restore puts them
back in the queue marked uncertain, as recovery after a crash does, and reports how many.
The scheduler's stored wake-ups are dropped (they name the old folder); the daemon arms
them again from the schedules table at its start. A send that went on after the backup on
the old server is not known to the copy: restore the newest archive, and only once the
old server has stopped sending.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from publisher.config import Config, parse_config, sqlite_path
from publisher.errors import BuildError, ConfigError, Conflict, InvalidRequest
from publisher.services import backup_archive as archives
from publisher.store import backup as store_backup
from publisher.store import ledger, open_store

__all__ = [
    "ARCHIVE_PATTERN",
    "FORMAT_VERSION",
    "Backup",
    "Restored",
    "create_backup",
    "list_backups",
    "prune_backups",
    "restore_backup",
    "scheduled_backup",
    "summary_of",
    "to_prune",
    "verify_archive",
]

ARCHIVE_PATTERN = archives.ARCHIVE_PATTERN
"""An archive's name; the time in it is UTC. `publisher doctor` finds the newest by it."""
FORMAT_VERSION = archives.FORMAT_VERSION
to_prune = archives.to_prune
verify_archive = archives.verify_archive


@dataclass(frozen=True, slots=True)
class Backup:
    """One archive written."""

    path: Path
    size: int
    files: int
    store: str
    seconds: float
    left_out: tuple[str, ...] = ()
    ledger: dict[str, int] = field(default_factory=dict)
    """Ledger rows per state in the archive's copy (SQLite; empty for PostgreSQL)."""
    pruned: tuple[Path, ...] = ()


@dataclass(frozen=True, slots=True)
class Restored:
    """A publication put back from an archive."""

    folder: Path
    files: int
    store: str
    store_url: str
    created_at: str
    released: int
    """Ledger rows in flight at the backup's instant, queued again and marked uncertain."""
    ledger: dict[str, int]
    config_changes: tuple[str, ...] = ()
    left_out: tuple[str, ...] = ()


# -- writing an archive ----------------------------------------------------------------------


def create_backup(config: Config, *, now: datetime, to: Path | None = None) -> Backup:
    """Write one consistent archive of the publication; returns where and what.

    `to` is a folder (the archive gets its usual name there) or a file ending in
    `.tar.gz`; None means `backup.folder`. Raises BuildError when the archive cannot be
    written (nothing is left under its name), StoreError or ConfigError for the database.
    """
    started = time.monotonic()
    dest = _destination(config, to, now)
    _refuse_published(config, dest)
    folder = dest.parent
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise BuildError(f"cannot create the backup folder {folder}: {exc.strerror or exc}") from exc
    if dest.exists():
        raise Conflict(f"{dest} exists already; an archive is never replaced. Wait a second and run again.")
    config_file = config.path or config.root / "config.toml"
    kind = store_backup.store_kind(config.store_url)
    parts = _parts(config, kind)
    left_out = _left_out(config)
    try:
        work = Path(tempfile.mkdtemp(prefix=".publisher-backup-", dir=folder))
    except OSError as exc:
        raise BuildError(f"cannot write into the backup folder {folder}: {exc.strerror or exc}") from exc
    partial = work / f"{dest.name}.partial"
    try:
        if kind == "sqlite" and not Path(_sqlite_file(config.store_url)).exists():
            open_store(config.store_url).dispose()  # a publication that never opened its database
        dumped = store_backup.dump_database(config.store_url, work / "database")
        counts = store_backup.ledger_counts_of_file(dumped.path) if kind == "sqlite" else {}
        entries: list[archives.FileEntry] = []
        folders: list[str] = []
        skipped: list[str] = []
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6) as tar:
            entries.append(archives.add_file(tar, parts["config"], config_file, now))
            for role in ("content", "templates"):
                source = config.path_of(f"build.{role}")
                if source.is_dir():
                    archives.add_folder(tar, parts[role], source, now, entries, folders, skipped, avoid=folder)
            entries.append(archives.add_file(tar, parts["database"], dumped.path, now, private=True))
            manifest = archives.Manifest(
                format_version=archives.FORMAT_VERSION,
                publisher_version=archives.publisher_version(),
                created_at=now.astimezone(UTC).isoformat(timespec="seconds"),
                store=kind,
                schema_revision=dumped.revision,
                parts=parts,
                files=tuple(entries),
                folders=tuple(folders),
                left_out=tuple([*left_out, *skipped]),
            )
            archives.add_bytes(tar, archives.MANIFEST, manifest.to_json(), now)
            raw.flush()
            os.fsync(raw.fileno())
        partial.rename(dest)
        _sync_folder(folder)
    except OSError as exc:
        raise BuildError(
            f"the backup could not be written to {dest}: {exc.strerror or exc}; nothing was left under "
            "that name. Free some space or choose another place (--to, or [backup] folder)."
        ) from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Backup(
        path=dest, size=dest.stat().st_size, files=len(entries), store=kind,
        seconds=time.monotonic() - started, left_out=manifest.left_out, ledger=counts,
    )


def scheduled_backup(config: Config, *, now: datetime) -> Backup:
    """The daemon's backup: one archive in `backup.folder`, then only the newest
    `backup.keep` archives kept there."""
    made = create_backup(config, now=now)
    pruned = prune_backups(made.path.parent, int(config["backup.keep"]))
    return Backup(
        path=made.path, size=made.size, files=made.files, store=made.store, seconds=made.seconds,
        left_out=made.left_out, ledger=made.ledger, pruned=tuple(pruned),
    )


def list_backups(folder: Path) -> list[Path]:
    """The archives in `folder` by name, oldest first (only names of the archive pattern)."""
    try:
        names = [p.name for p in folder.iterdir() if p.is_file() and not p.is_symlink()]
    except FileNotFoundError:
        return []
    return [folder / name for name in sorted(names) if archives.ARCHIVE_PATTERN.fullmatch(name)]


def prune_backups(folder: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` archives in `folder`; returns the deleted paths.
    Files of any other name are never touched."""
    gone: list[Path] = []
    for name in archives.to_prune([p.name for p in list_backups(folder)], keep):
        path = folder / name
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise BuildError(f"cannot delete the old backup {path}: {exc.strerror or exc}") from exc
        gone.append(path)
    return gone


def _destination(config: Config, to: Path | None, now: datetime) -> Path:
    name = archives.archive_name(now)
    if to is None:
        return (config.root / str(config["backup.folder"])).absolute() / name
    to = to.expanduser().absolute()
    if to.is_dir():
        return to / name
    if to.name.endswith(".tar.gz"):
        return to
    if to.exists():
        raise InvalidRequest(f"--to {to}: a file that is not a .tar.gz archive; name a folder or a new .tar.gz file")
    return to / name


def _refuse_published(config: Config, dest: Path) -> None:
    for key, what in (
        ("build.content", "the content folder, whose files are published"),
        ("build.output", "the site folder, which is served to anyone"),
        ("build.templates", "the template folder, which is backed up itself"),
    ):
        folder = config.path_of(key)
        if folder in dest.resolve().parents:
            raise InvalidRequest(
                f"{dest}: a backup holds every subscriber's address and may not lie inside {what} "
                f"({folder}). Choose a folder outside it ([backup] folder, or --to)."
            )


def _relative_inside(root: Path, path: Path) -> str | None:
    try:
        relative = path.resolve().relative_to(root.resolve())
    except ValueError:
        return None
    text = relative.as_posix()
    return None if text in ("", ".") else text


def _parts(config: Config, kind: str) -> dict[str, str]:
    """Where each part lies in the archive: where it lies under config.toml's folder, or,
    for a part kept elsewhere, under its usual name (a restore then points the key there)."""
    parts = {"config": "config.toml"}
    for role in ("content", "templates"):
        parts[role] = _relative_inside(config.root, config.path_of(f"build.{role}")) or role
    if kind == "sqlite":
        database = sqlite_path(str(config["store.url"])) or "publisher.db"
        parts["database"] = _relative_inside(config.root, config.root / database) or "publisher.db"
    else:
        parts["database"] = "database.pgdump"
    # Parts nested in one another would mix their files: give them their usual names.
    taken = [parts["content"], parts["templates"]]
    if taken[0] == taken[1] or taken[1].startswith(taken[0] + "/") or taken[0].startswith(taken[1] + "/"):
        parts["content"], parts["templates"] = "content", "templates"
    if any(parts["database"].startswith(p + "/") for p in (parts["content"], parts["templates"])):
        parts["database"] = "publisher.db" if kind == "sqlite" else "database.pgdump"
    return parts


def _left_out(config: Config) -> list[str]:
    """The secret files beside config.toml a backup does not carry, named for the author."""
    found: list[str] = []
    for key in ("delivery.dkim.private_key_file", "delivery.dkim.ed25519_key_file"):
        value = str(config[key]).strip()
        if value:
            found.append(f"{value} ([delivery.dkim] {key.rsplit('.', 1)[1]})")
    try:
        beside = sorted(p.name for p in config.root.iterdir() if "secret" in p.name.lower() and p.is_file())
    except OSError:
        beside = []
    found.extend(beside)
    return found


def _sync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- restoring -------------------------------------------------------------------------------


def restore_backup(
    archive: Path, into: Path, *, now: datetime, store_url: str | None = None,
    env: dict[str, str] | None = None,
) -> Restored:
    """Put the publication in `archive` back into the empty folder `into` (created when
    missing) and its database; every check comes before the first write.

    `store_url` names the database to restore into (for PostgreSQL; an SQLite URL puts
    the file there); by default the archived config's own store, or, for SQLite, the
    file beside the restored config.toml. config.toml is updated to point at where
    things now are, and says so in `config_changes`.
    """
    into = into.expanduser().absolute()
    _refuse_non_empty(into)
    manifest = archives.verify_archive(archive)
    config_text = archives.member_text(archive, manifest.parts["config"])
    target_url, changes = _target_store(manifest, config_text, into, store_url, env or {})
    if manifest.store == "postgresql":
        _check_postgres_target(target_url)
    elif Path(_sqlite_file(target_url)).exists():
        raise Conflict(f"{_sqlite_file(target_url)} exists already: restore into an empty place; nothing was written")
    new_text, config_changes = _pointed(config_text, manifest, changes)
    try:
        parse_config(new_text, root=into, origin=str(into / "config.toml"), env=env or {})
    except ConfigError as exc:
        raise InvalidRequest(f"{archive}: its config.toml is not usable here: {exc}; nothing was written") from exc
    try:
        into.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{into.name}.restoring-", dir=into.parent))
    except OSError as exc:
        raise BuildError(f"cannot write beside {into}: {exc.strerror or exc}; nothing was written") from exc
    created = not into.exists()
    try:
        archives.unpack(archive, manifest, staging)
        if config_changes:
            _write_text(staging / manifest.parts["config"], new_text)
        dump = staging / manifest.parts["database"]
        if manifest.store == "postgresql":
            store_backup.restore_postgresql(dump, target_url)
            dump.unlink()
        else:
            sqlite_target = Path(_sqlite_file(target_url))
            inside = _relative_inside(into, sqlite_target)
            if inside != manifest.parts["database"]:
                sqlite_target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(dump), str(sqlite_target))
        if created:
            into.mkdir(parents=True)
        for entry in sorted(staging.iterdir()):
            entry.rename(into / entry.name)
    except OSError as exc:
        raise BuildError(f"the restore into {into} could not be written: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    released, counts = _settle_ledger(target_url, now)
    return Restored(
        folder=into, files=len(manifest.files), store=manifest.store, store_url=target_url,
        created_at=manifest.created_at, released=released, ledger=counts,
        config_changes=tuple(config_changes), left_out=manifest.left_out,
    )


def _refuse_non_empty(into: Path) -> None:
    if into.exists() and not into.is_dir():
        raise Conflict(f"{into} is a file: restore into an empty folder (or a new one); nothing was written")
    if into.is_dir():
        present = sorted(p.name for p in into.iterdir())
        if present:
            shown = ", ".join(present[:3]) + (", ..." if len(present) > 3 else "")
            raise Conflict(
                f"{into} is not empty ({shown}): a restore goes into an empty folder, so that nothing of "
                "yours is replaced. Name a new folder with --into; nothing was written."
            )


def _sqlite_file(url: str) -> str:
    from sqlalchemy.engine import make_url

    return str(make_url(url).database or "")


def _target_store(
    manifest: archives.Manifest, config_text: str, into: Path, store_url: str | None, env: dict[str, str]
) -> tuple[str, dict[str, str]]:
    """The database to restore into, and the config.toml values that must point at it."""
    if store_url:
        kind = store_backup.store_kind(store_url)
        if kind != manifest.store:
            raise InvalidRequest(
                f"--store-url names a {kind} database, but the archive holds a {manifest.store} one: "
                f"restore onto {manifest.store}; nothing was written"
            )
        if kind == "sqlite":
            path = Path(_sqlite_file(store_url))
            path = path if path.is_absolute() else into / path
            return f"sqlite:///{path}", {"store.url": f"sqlite:///{path}"}
        return store_url, {"store.url": store_url}
    if manifest.store == "sqlite":
        database = manifest.parts["database"]
        url = f"sqlite:///{database}"
        written = _config_value(config_text, "store.url")
        return f"sqlite:///{into / database}", ({} if written == url else {"store.url": url})
    written = _config_value(config_text, "store.url")
    if not written:
        raise InvalidRequest("the archive's config.toml names no PostgreSQL database: pass --store-url")
    return str(written), {}


def _config_value(text: str, key: str) -> Any:
    import tomllib

    try:
        data: Any = tomllib.loads(text.removeprefix("\ufeff"))
    except tomllib.TOMLDecodeError:
        return None
    for part in key.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _pointed(text: str, manifest: archives.Manifest, changes: dict[str, str]) -> tuple[str, list[str]]:
    """config.toml with the keys that must follow the restored files changed (comments kept)."""
    wanted = dict(changes)
    for role in ("content", "templates"):
        where = manifest.parts.get(role)
        written = _config_value(text, f"build.{role}") or role
        if where and PurePosixPath(str(written)).as_posix() != where:
            wanted[f"build.{role}"] = where
    if not wanted:
        return text, []
    import tomlkit

    document = tomlkit.parse(text)
    for key, value in wanted.items():
        table: Any = document
        *sections, name = key.split(".")
        for section in sections:
            if section not in table:
                table[section] = tomlkit.table()
            table = table[section]
        table[name] = value
    shown = [f"[{k.rsplit('.', 1)[0]}] {k.rsplit('.', 1)[1]} = {_hidden(v)!r}" for k, v in wanted.items()]
    return tomlkit.dumps(document), shown


def _hidden(url: str) -> str:
    if "://" in url and "@" in url:
        from sqlalchemy.engine import make_url

        try:
            return make_url(url).render_as_string(hide_password=True)
        except Exception:  # only for display: any URL it cannot parse is shown as written
            return url
    return url


def _check_postgres_target(url: str) -> None:
    tables = store_backup.tables_in(url)
    if tables:
        from sqlalchemy.engine import make_url

        where = make_url(url).render_as_string(hide_password=True)
        raise Conflict(
            f"the database {where} is not empty ({', '.join(tables[:3])}{', ...' if len(tables) > 3 else ''}): "
            "a restore goes into an empty database. Create a new one and pass it with --store-url; "
            "nothing was written."
        )
    if shutil.which("pg_restore") is None:
        raise ConfigError(
            "pg_restore is not installed (or not on PATH): a PostgreSQL backup is restored with PostgreSQL's "
            "own tools. Install them (Debian: apt install postgresql-client); nothing was written."
        )


def _write_text(path: Path, text: str) -> None:
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(text, encoding="utf-8")
    temp.replace(path)


def _settle_ledger(url: str, now: datetime) -> tuple[int, dict[str, int]]:
    """Rows in flight at the backup's instant go back to the queue, uncertain: no process
    sends from this copy yet, so every claim in it belongs to a sender that is gone."""
    db = open_store(url)
    try:
        released = ledger.recover(db, now=now + timedelta(seconds=1), lease=timedelta(0)).count
        store_backup.drop_scheduler_jobs(db)
        counts = store_backup.ledger_counts(db)
    finally:
        db.dispose()
    return released, counts


def summary_of(counts: dict[str, int], order: Sequence[str] = ("sent", "sending", "queued", "retry",
                                                              "failed", "skipped", "uncertain")) -> str:
    """"sent 120, queued 80" for ledger counts, in a fixed order, zeros left out."""
    shown = [f"{state} {counts[state]:,}" for state in order if counts.get(state)]
    return ", ".join(shown) if shown else "no ledger rows"
