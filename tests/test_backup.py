"""`publisher backup` and `publisher restore`: a whole publication out and back, a backup
taken during a send that, restored, mails every reader exactly once, and every archive
a restore must refuse before it writes anything."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import tomlkit
from aiosmtpd.smtp import SMTP, Envelope, Session
from click.testing import CliRunner, Result
from pg_server import fresh_database, postgres_server
from store_support import POSTGRES_ENV
from test_exactly_once import SLUG, CountingHandler, Publication

from publisher.cli import cli
from publisher.config import load_config
from publisher.errors import BuildError, ConfigError, Conflict, InvalidRequest
from publisher.schedule import jobs, scheduler
from publisher.services import backup as service
from publisher.services import backup_archive as archives
from publisher.store import backup as store_backup
from publisher.store import open_store
from publisher.store.schema import deliveries, subscribers

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def sample(folder: Path) -> Path:
    """The repository's sample publication, five readers imported and one issue sent."""
    folder.mkdir()
    shutil.copy(ROOT / "config.toml", folder / "config.toml")
    shutil.copytree(ROOT / "content", folder / "content")
    (folder / "templates").mkdir()
    (folder / "templates" / "footer.txt").write_text("our own footer\n")
    config = str(folder / "config.toml")
    assert run("--config", config, "subscribers", "import", str(ROOT / "demo" / "subscribers.csv")).exit_code == 0
    assert run("--config", config, "send", "talking-to-teens-about-stress", "--yes").exit_code == 0
    return folder / "config.toml"


def tree(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


def ledger_rows(url: str) -> dict[str, tuple[str, bool]]:
    db = open_store(url)
    try:
        with db.connect() as conn:
            return {r.email: (r.state, r.uncertain) for r in conn.execute(sa.select(deliveries))}
    finally:
        db.dispose()


@pytest.fixture
def made(tmp_path: Path) -> tuple[Path, Path]:
    """A sample publication and one archive of it: (config.toml, archive)."""
    config = sample(tmp_path / "pub")
    result = run("--config", str(config), "backup")
    assert result.exit_code == 0, result.output
    (archive,) = (tmp_path / "pub" / "backups").iterdir()
    return config, archive


# -- the round trip --------------------------------------------------------------------------


def test_a_restored_publication_passes_check_and_holds_the_same_readers_and_ledger(
    tmp_path: Path, made: tuple[Path, Path]
) -> None:
    """Backup, restore into a new folder: same articles, templates, readers and ledger; `check` passes."""
    config, archive = made
    result = run("restore", str(archive), "--into", str(tmp_path / "again"))
    assert result.exit_code == 0, result.output
    assert "ledger: sent 5" in result.output
    again = tmp_path / "again"
    assert run("--config", str(again / "config.toml"), "check").exit_code == 0
    old, new = tree(config.parent), tree(again)
    for part in ("config.toml", "templates/footer.txt", *[k for k in old if k.startswith("content/")]):
        assert new[part] == old[part], part
    assert ledger_rows(f"sqlite:///{again / 'publisher.db'}") == ledger_rows(
        f"sqlite:///{config.parent / 'publisher.db'}"
    )
    status = run("--config", str(again / "config.toml"), "subscribers", "count")
    assert status.output.split()[0] == "5"


def test_sending_again_from_a_restored_copy_sends_nothing_twice(
    tmp_path: Path, made: tuple[Path, Path]
) -> None:
    """The ledger comes back: the issue already sent adds no recipient in the restored copy."""
    _config, archive = made
    again = tmp_path / "again"
    assert run("restore", str(archive), "--into", str(again)).exit_code == 0
    result = run("--config", str(again / "config.toml"), "send", "talking-to-teens-about-stress", "--yes")
    assert "0 new recipient(s) queued" in result.output
    assert not (again / "outbox").exists() or not list((again / "outbox" / "new").iterdir())


def test_the_archive_is_private_named_by_the_time_and_carries_a_manifest(made: tuple[Path, Path]) -> None:
    """0600, publisher-backup-YYYYMMDD-HHMMSS.tar.gz, a manifest listing every file with its checksum."""
    _config, archive = made
    assert service.ARCHIVE_PATTERN.fullmatch(archive.name)
    assert archive.stat().st_mode & 0o777 == 0o600
    assert archive.parent.stat().st_mode & 0o077 == 0
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        names = {m.name for m in tar.getmembers() if m.isfile()}
    assert manifest["format_version"] == service.FORMAT_VERSION
    assert manifest["store"] == "sqlite"
    assert {f["path"] for f in manifest["files"]} == names - {"manifest.json"}
    assert {"config.toml", "publisher.db", "templates/footer.txt"} <= names


def test_secrets_beside_config_stay_out_and_are_named(tmp_path: Path, made: tuple[Path, Path]) -> None:
    """The demo's .publisher-secret, the desk's secrets file and the DKIM key are not in the
    archive, in no member's bytes either; the backup names each."""
    config, _archive = made
    folder = config.parent
    assert (folder / ".publisher-secret").exists()
    (folder / ".publisher-secrets").write_text("PUBLISHER_POSTMARK_TOKEN=token-that-must-stay-home\n")
    (folder / "dkim.pem").write_text("-----BEGIN PRIVATE KEY-----\nkey-that-must-stay-home\n")
    dkim = '[delivery.dkim]\ndomain = "example.org"\nselector = "s"\nprivate_key_file = "dkim.pem"\n#'
    config.write_text(config.read_text().replace("# [delivery.dkim]", dkim))
    result = run("--config", str(config), "backup", "--to", str(tmp_path / "elsewhere"))
    assert result.exit_code == 0, result.output
    (archive,) = (tmp_path / "elsewhere").iterdir()
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            data = tar.extractfile(member).read() if member.isfile() else b""  # type: ignore[union-attr]
            assert b"must-stay-home" not in data, member.name
            assert "secret" not in member.name and "dkim" not in member.name
    assert "not in the archive" in result.output
    for name in (".publisher-secret", ".publisher-secrets", "dkim.pem ([delivery.dkim] private_key_file)"):
        assert f"  {name}\n" in result.output


def test_a_sqlite_file_outside_the_folder_comes_back_beside_config(tmp_path: Path) -> None:
    """A database kept elsewhere is restored into the new folder, and config.toml points at it."""
    config = sample(tmp_path / "pub")
    (tmp_path / "data").mkdir()
    import sqlite3

    with sqlite3.connect(config.parent / "publisher.db") as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.move(config.parent / "publisher.db", tmp_path / "data" / "news.db")
    text = config.read_text().replace('url = "sqlite:///publisher.db"', f'url = "sqlite:///{tmp_path}/data/news.db"')
    config.write_text(text)
    made = service.create_backup(load_config(config), now=NOW, to=tmp_path / "archives")
    result = run("restore", str(made.path), "--into", str(tmp_path / "again"))
    assert result.exit_code == 0, result.output
    assert "config.toml now says [store] url = 'sqlite:///publisher.db'" in result.output
    assert "# The sample publication." in (tmp_path / "again" / "config.toml").read_text()  # comments kept
    restored = load_config(tmp_path / "again" / "config.toml")
    assert restored.store_url == f"sqlite:///{tmp_path / 'again' / 'publisher.db'}"


# -- a backup during a send ------------------------------------------------------------------


class HoldingHandler(CountingHandler):
    """Counts copies; while `hold` is set, every DATA waits, and is refused uncounted once
    `refuse_held` is set (the sender was killed meanwhile: its copies never arrived)."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = False
        self.refuse_held = False
        self.held = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.hold:
            with self.lock:
                self.held += 1
            while self.hold:
                await asyncio.sleep(0.01)
            if self.refuse_held:
                return "451 4.3.0 the sender went away"
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def holding_smtp() -> Iterator[tuple[HoldingHandler, int]]:
    import socket

    from aiosmtpd.controller import Controller

    handler = HoldingHandler()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        handler.hold = False
        controller.stop()


def counts(url: str) -> dict[str, int]:
    rows = ledger_rows(url).values()
    found: dict[str, int] = {}
    for state, uncertain in rows:
        found[state] = found.get(state, 0) + 1
        found["uncertain"] = found.get("uncertain", 0) + int(uncertain)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_backup_taken_during_a_send_restored_elsewhere_mails_every_reader_exactly_once(
    tmp_path: Path, holding_smtp: tuple[HoldingHandler, int], backend: str, request: pytest.FixtureRequest
) -> None:
    """Back up midway through a 600-reader send, lose the server, restore, resume: one copy each."""
    server, port = holding_smtp
    readers = 600
    old_url = f"sqlite:///{tmp_path / 'old' / 'publisher.db'}"
    new_url = f"sqlite:///{tmp_path / 'new' / 'publisher.db'}"
    restore_args: list[str] = []
    if backend == "postgresql":
        server_url = request.getfixturevalue("postgres_url")
        old_url = fresh_database(server_url, "publisher_send_old")
        new_url = fresh_database(server_url, "publisher_send_new")
        restore_args = ["--store-url", new_url]
    (tmp_path / "old").mkdir()
    pub = Publication(tmp_path / "old", port, readers=readers, store_url=None if backend == "sqlite" else old_url,
                      rate=400.0, burst=20)
    try:
        sender = pub.start("send", SLUG, "--yes")
        deadline = time.monotonic() + 60
        while server.total < readers // 3:
            assert sender.poll() is None and time.monotonic() < deadline, pub.logs()
            time.sleep(0.002)
        # The provider stops answering; every accepted copy is recorded before the backup.
        server.hold = True
        while counts(old_url).get("sent", 0) < server.total:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        backup = subprocess.run(
            pub.command("backup", "--to", str(tmp_path / "archives")), env=pub.env, cwd=pub.root,
            capture_output=True, text=True, timeout=60,
        )
        assert backup.returncode == 0, backup.stderr
        assert sender.poll() is None, "the send finished before the backup: nothing was in flight"
        sender.send_signal(signal.SIGKILL)  # the old server is gone
        sender.wait()
        server.refuse_held = True
        server.hold = False
        before = counts(old_url)
        delivered_before = server.total
    finally:
        pub.db.dispose()

    (archive,) = (tmp_path / "archives").iterdir()
    new = tmp_path / "new"
    restored = subprocess.run(
        pub.command("restore", str(archive), "--into", str(new), *restore_args), env=pub.env, cwd=tmp_path,
        capture_output=True, text=True, timeout=60,
    )
    assert restored.returncode == 0, restored.stderr
    in_flight = before.get("sending", 0)
    assert in_flight > 0
    assert f"{in_flight} message(s) were in flight when the backup was taken" in restored.stdout
    env = {**pub.env, "PUBLISHER_CONFIG": str(new / "config.toml")}
    resumed = subprocess.run(pub.command("send", "--resume"), env=env, cwd=new, capture_output=True, text=True,
                             timeout=120)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = counts(new_url)
    print(f"\n{backend}: ledger at the backup: {before}; copies accepted before it: {delivered_before}; "
          f"after restore and resume: {after}; copies in all: {server.total}")

    assert set(server.copies) == {pub.address(n) for n in range(readers)}, "somebody was missed"
    assert max(server.copies.values()) == 1, "somebody got two copies"
    assert after == {"sent": readers, "uncertain": in_flight}
    assert before["sent"] == delivered_before


def test_a_backup_while_a_send_writes_is_a_whole_database(
    tmp_path: Path, holding_smtp: tuple[HoldingHandler, int]
) -> None:
    """Taken while the sender commits all along, the copy opens whole, each row in one state."""
    server, port = holding_smtp
    (tmp_path / "old").mkdir()
    pub = Publication(tmp_path / "old", port, readers=400, rate=300.0, burst=10)
    sender = pub.start("send", SLUG, "--yes")
    deadline = time.monotonic() + 60
    while server.total < 50:
        assert sender.poll() is None and time.monotonic() < deadline, pub.logs()
        time.sleep(0.002)
    made = service.create_backup(load_config(tmp_path / "old" / "config.toml"), now=NOW, to=tmp_path / "a")
    assert sender.poll() is None, "the send finished before the backup"
    assert sender.wait(timeout=60) == 0
    assert 0 < made.ledger.get("sent", 0) < 400 and sum(v for k, v in made.ledger.items() if k != "uncertain") == 400
    done = service.restore_backup(made.path, tmp_path / "new", now=NOW)
    assert sum(v for k, v in done.ledger.items() if k != "uncertain") == 400
    import sqlite3

    with sqlite3.connect(tmp_path / "new" / "publisher.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# -- archives a restore refuses, writing nothing -----------------------------------------------


def _rewrite(archive: Path, dest: Path, change: dict[str, bytes | None], extra: list[tarfile.TarInfo] = ()) -> Path:  # type: ignore[assignment]
    """A copy of `archive` with members replaced (bytes) or removed (None), plus `extra` members."""
    with tarfile.open(archive) as src, tarfile.open(dest, "w:gz") as out:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if member.name in change:
                data = change[member.name]
                if data is None:
                    continue
                member.size = len(data)
            out.addfile(member, io.BytesIO(data) if data is not None else None)
        for info in extra:
            out.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return dest


def _refused(archive: Path, into: Path, *words: str) -> None:
    result = CliRunner().invoke(cli, ["restore", str(archive), "--into", str(into)])
    assert result.exit_code == 1, result.output
    for word in words:
        assert word in result.output, result.output
    assert "Traceback" not in result.output
    assert not into.exists() or not list(into.iterdir()), "something was written"
    assert not list(into.parent.glob(f".{into.name}.restoring-*")), "a staging folder was left"


def test_a_truncated_archive_is_refused_before_anything_is_written(tmp_path: Path, made: tuple[Path, Path]) -> None:
    """An archive cut short (a copy that stopped halfway) is refused as truncated."""
    _config, archive = made
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size * 2 // 3])
    _refused(cut, tmp_path / "target", "truncated or damaged")


def test_an_archive_from_a_newer_publisher_is_refused(tmp_path: Path, made: tuple[Path, Path]) -> None:
    """A manifest of a format above this publisher's is refused, naming both versions."""
    _config, archive = made
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    manifest["format_version"] = service.FORMAT_VERSION + 1
    manifest["publisher_version"] = "99.0"
    newer = _rewrite(archive, tmp_path / "newer.tar.gz", {"manifest.json": json.dumps(manifest).encode()})
    _refused(newer, tmp_path / "target", "made by publisher 99.0", f"format {service.FORMAT_VERSION + 1}",
             "Upgrade publisher")


def test_a_file_changed_inside_the_archive_is_refused(tmp_path: Path, made: tuple[Path, Path]) -> None:
    """A file whose checksum differs from the manifest's is named as damaged."""
    _config, archive = made
    bad = _rewrite(archive, tmp_path / "bad.tar.gz", {"config.toml": b"[publication]\ntitle = 'Evil'\n"})
    _refused(bad, tmp_path / "target", "config.toml is damaged")


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = 1 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    ("member", "words"),
    [
        (_member("../escaped.txt"), "leads out of the target folder"),
        (_member("content/../../escaped.txt"), "leads out of the target folder"),
        (_member("/var/escaped.txt"), "absolute"),
        (_member("content/link", tarfile.SYMTYPE, "/etc/passwd"), "a link or a special file"),
        (_member("content/hard", tarfile.LNKTYPE, "config.toml"), "a link or a special file"),
    ],
    ids=["dotdot", "dotdot-inside", "absolute", "symlink", "hardlink"],
)
def test_a_member_that_could_leave_the_target_is_refused(
    tmp_path: Path, made: tuple[Path, Path], member: tarfile.TarInfo, words: str
) -> None:
    """`..`, absolute paths and links are refused before anything is written."""
    _config, archive = made
    bad = _rewrite(archive, tmp_path / "bad.tar.gz", {}, [member])
    _refused(bad, tmp_path / "target", words)
    assert not (tmp_path / "escaped.txt").exists()


def test_a_folder_that_is_not_empty_is_refused_and_named(tmp_path: Path, made: tuple[Path, Path]) -> None:
    """A target holding anything is refused by name; its files stay as they were."""
    _config, archive = made
    target = tmp_path / "target"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["restore", str(archive), "--into", str(target)])
    assert result.exit_code == 1
    assert f"{target} is not empty (notes.txt)" in result.output
    assert [p.name for p in target.iterdir()] == ["notes.txt"]


def test_restore_without_into_goes_into_the_current_folder_only_when_empty(
    tmp_path: Path, made: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`publisher restore ARCHIVE` in an empty folder restores there; in the publication itself it refuses."""
    config, archive = made
    monkeypatch.chdir(config.parent)
    assert CliRunner().invoke(cli, ["restore", str(archive)]).exit_code == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    result = CliRunner().invoke(cli, ["restore", str(archive)])
    assert result.exit_code == 0, result.output
    assert (empty / "config.toml").exists() and (empty / "publisher.db").exists()


def test_restore_check_reads_the_whole_archive_and_writes_nothing(tmp_path: Path, made: tuple[Path, Path]) -> None:
    """`restore --check` says a sound archive is whole and refuses a damaged one, writing nothing."""
    _config, archive = made
    result = run("restore", str(archive), "--check", "--into", str(tmp_path / "target"))
    assert result.exit_code == 0 and "whole; " in result.output
    bad = _rewrite(archive, tmp_path / "bad.tar.gz", {"config.toml": b"changed"})
    assert CliRunner().invoke(cli, ["restore", str(bad), "--check"]).exit_code == 1
    assert not (tmp_path / "target").exists()


def test_a_database_from_a_newer_publisher_is_refused(tmp_path: Path, made: tuple[Path, Path]) -> None:
    """A schema revision this publisher does not know is refused before anything is written."""
    _config, archive = made
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    manifest["schema_revision"] = "9999_from_the_future"
    newer = _rewrite(archive, tmp_path / "newer.tar.gz", {"manifest.json": json.dumps(manifest).encode()})
    _refused(newer, tmp_path / "target", "schema revision '9999_from_the_future'", "Upgrade publisher")


def test_the_database_member_is_private_for_plain_tar_too(made: tuple[Path, Path]) -> None:
    """Unpacked with tar, the database comes out 0600."""
    _config, archive = made
    with tarfile.open(archive) as tar:
        assert tar.getmember("publisher.db").mode == 0o600


def test_a_publication_that_never_opened_its_database_is_backed_up(tmp_path: Path) -> None:
    """A fresh folder (config and articles, no database yet) gives an archive that restores."""
    folder = tmp_path / "fresh"
    folder.mkdir()
    shutil.copy(ROOT / "config.toml", folder / "config.toml")
    shutil.copytree(ROOT / "content", folder / "content")
    made = service.create_backup(load_config(folder / "config.toml"), now=NOW)
    done = service.restore_backup(made.path, tmp_path / "again", now=NOW)
    assert done.ledger == {"uncertain": 0}


def test_not_an_archive_at_all_is_told(tmp_path: Path) -> None:
    """A file that is no tar.gz gets a message, not a traceback."""
    junk = tmp_path / "junk.tar.gz"
    junk.write_text("hello")
    _refused(junk, tmp_path / "target", "not a publisher backup")


# -- writing -----------------------------------------------------------------------------------


def test_a_failed_write_leaves_no_archive_under_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk that fills up halfway: BuildError, no archive, no temporary file left."""
    config = load_config(sample(tmp_path / "pub"))
    real = archives.add_file
    calls = {"n": 0}

    def full(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(archives, "add_file", full)
    with pytest.raises(BuildError, match="No space left on device"):
        service.create_backup(config, now=NOW)
    assert list((tmp_path / "pub" / "backups").iterdir()) == []


def test_a_backup_folder_inside_the_published_site_is_refused(tmp_path: Path) -> None:
    """--to inside public/ (served to anyone) is refused with the folder named."""
    config = load_config(sample(tmp_path / "pub"))
    with pytest.raises(InvalidRequest, match="may not lie inside the site folder"):
        service.create_backup(config, now=NOW, to=tmp_path / "pub" / "public" / "b")


def test_a_backup_folder_inside_content_is_a_config_error(tmp_path: Path) -> None:
    """[backup] folder inside content/ would be published: `load_config` names the key."""
    config = sample(tmp_path / "pub")
    config.write_text(config.read_text() + '\n[backup]\nfolder = "content/backups"\n')
    with pytest.raises(ConfigError, match=r"\[backup\] folder puts the backups"):
        load_config(config)


def test_an_existing_archive_is_never_replaced(tmp_path: Path) -> None:
    """Two backups in the same second: the second is a Conflict and the first stays whole."""
    config = load_config(sample(tmp_path / "pub"))
    first = service.create_backup(config, now=NOW)
    before = first.path.read_bytes()
    with pytest.raises(Conflict, match="exists already"):
        service.create_backup(config, now=NOW)
    assert first.path.read_bytes() == before


# -- scheduled backups -------------------------------------------------------------------------


def test_retention_keeps_the_newest_archives_and_nothing_else_is_touched(tmp_path: Path) -> None:
    """With backup.keep = 2, four scheduled backups leave the newest two; other files stay."""
    config_path = sample(tmp_path / "pub")
    config_path.write_text(config_path.read_text() + "\n[backup]\nkeep = 2\n")
    config = load_config(config_path)
    folder = tmp_path / "pub" / "backups"
    folder.mkdir(mode=0o700)
    (folder / "notes.txt").write_text("mine")
    made = [service.scheduled_backup(config, now=NOW + timedelta(days=n)) for n in range(4)]
    assert sorted(p.name for p in folder.iterdir()) == sorted(["notes.txt", made[2].path.name, made[3].path.name])
    assert made[3].pruned == (made[1].path,)


def test_the_daemon_runs_backups_on_the_configured_cron_line(tmp_path: Path) -> None:
    """backup.schedule registers a cron job whose run writes an archive into backup.folder."""
    config_path = sample(tmp_path / "pub")
    config_path.write_text(config_path.read_text() + '\n[backup]\nschedule = "30 3 * * *"\n')
    config = load_config(config_path)
    rt = jobs.Runtime(config=config, db=open_store(config.store_url), clock=lambda: NOW)
    sched = scheduler.create_scheduler(rt)
    jobs.register(str(config_path), rt)
    try:
        scheduler.start_daemon_jobs(sched, str(config_path), rt)
        sched.start(paused=True)
        job = sched.get_job("backup")
        assert job is not None and str(job.trigger).startswith("cron[")
        written = jobs.backup(str(config_path))
        assert written is not None and Path(written).parent == tmp_path / "pub" / "backups"
    finally:
        sched.shutdown(wait=False)
        with jobs._RUNTIMES_LOCK:
            jobs._RUNTIMES.pop(str(config_path), None)


@pytest.mark.parametrize(("line", "words"), [
    ("61 * * * *", "is not a cron line"),
    ("0 0 30 2 *", "never fires"),
    ("30 3 * * sun#1", "names a weekday with #, which the scheduler reads as every such weekday"),
])
def test_a_backup_cron_line_that_cannot_run_stops_the_daemon_with_the_key(
    tmp_path: Path, line: str, words: str
) -> None:
    """A wrong line, and one that never comes round (30 February), are ConfigErrors naming [backup] schedule."""
    config_path = sample(tmp_path / "pub")
    config_path.write_text(config_path.read_text() + f'\n[backup]\nschedule = "{line}"\n')
    config = load_config(config_path)
    rt = jobs.Runtime(config=config, db=open_store(config.store_url), clock=lambda: NOW)
    sched = scheduler.create_scheduler(rt)
    with pytest.raises(ConfigError, match=rf"\[backup\] schedule '{re.escape(line)}' {words}"):
        scheduler.start_daemon_jobs(sched, str(config_path), rt)


def test_the_scheduler_s_stored_wake_ups_stay_behind(tmp_path: Path) -> None:
    """Stored jobs name the old folder's config: the restored database has none (the daemon adds its own)."""
    config_path = sample(tmp_path / "pub")
    config = load_config(config_path)
    db = open_store(config.store_url)
    rt = jobs.Runtime(config=config, db=db, clock=lambda: NOW)
    sched = scheduler.create_scheduler(rt)
    scheduler.start_daemon_jobs(sched, str(config_path), rt)
    sched.start(paused=True)
    sched.shutdown(wait=False)
    assert store_backup.SCHEDULER_JOBS == scheduler.JOB_TABLE
    with db.connect() as conn:
        assert conn.execute(sa.text(f"SELECT count(*) FROM {scheduler.JOB_TABLE}")).scalar_one() > 0
    made = service.create_backup(config, now=NOW)
    service.restore_backup(made.path, tmp_path / "again", now=NOW)
    again = open_store(f"sqlite:///{tmp_path / 'again' / 'publisher.db'}")
    with again.connect() as conn:
        assert conn.execute(sa.text(f"SELECT count(*) FROM {scheduler.JOB_TABLE}")).scalar_one() == 0


def test_the_prune_rule_sorts_by_the_time_in_the_name() -> None:
    """Only archive names count, oldest first out."""
    names = ["publisher-backup-20260102-000000.tar.gz", "x.tar.gz", "publisher-backup-20251231-235959.tar.gz",
             "publisher-backup-20260103-000000.tar.gz"]
    assert service.to_prune(names, 2) == ["publisher-backup-20251231-235959.tar.gz"]
    assert service.to_prune(names, 5) == []


# -- PostgreSQL --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    configured = os.environ.get(POSTGRES_ENV)
    if configured:
        yield configured
        return
    with postgres_server() as url:
        yield url


def test_a_postgresql_publication_comes_back_into_an_empty_database(tmp_path: Path, postgres_url: str) -> None:
    """pg_dump out, pg_restore into a new empty database: the same readers and ledger; a
    database with tables is refused first."""
    source = fresh_database(postgres_url, "publisher_backup_source")
    config = sample_on(tmp_path / "pub", source)
    made = service.create_backup(load_config(config), now=NOW, to=tmp_path / "archives")
    assert made.store == "postgresql"
    target = fresh_database(postgres_url, "publisher_backup_target")
    with pytest.raises(Conflict, match="is not empty"):
        service.restore_backup(made.path, tmp_path / "refused", now=NOW, store_url=source)
    assert not (tmp_path / "refused").exists()
    done = service.restore_backup(made.path, tmp_path / "again", now=NOW, store_url=target)
    assert done.ledger.get("sent") == 5
    assert load_config(tmp_path / "again" / "config.toml").store_url == target
    db = open_store(target)
    try:
        with db.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(subscribers)).scalar_one() == 5
    finally:
        db.dispose()
    import sys

    check = subprocess.run([sys.executable, "-m", "publisher", "--config", str(tmp_path / "again" / "config.toml"),
                            "check"], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr


def sample_on(folder: Path, url: str) -> Path:
    """The sample publication on PostgreSQL, set up by `publisher` processes (whose
    connections end with them)."""
    import sys

    folder.mkdir()
    text = (ROOT / "config.toml").read_text().replace('url = "sqlite:///publisher.db"', f'url = "{url}"')
    (folder / "config.toml").write_text(text)
    shutil.copytree(ROOT / "content", folder / "content")
    config = str(folder / "config.toml")
    for args in (["subscribers", "import", str(ROOT / "demo" / "subscribers.csv")],
                 ["send", "talking-to-teens-about-stress", "--yes"]):
        done = subprocess.run([sys.executable, "-m", "publisher", "--config", config, *args], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    return folder / "config.toml"


def test_a_missing_pg_dump_is_named_with_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without PostgreSQL's tools on PATH, the backup says which one and how to get it, and writes nothing."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match=r"pg_dump is not installed .* apt install postgresql-client"):
        store_backup.dump_database("postgresql+psycopg://publisher@127.0.0.1:1/news", tmp_path / "dump")
    assert not (tmp_path / "dump").exists()


@pytest.mark.parametrize("line", ["0 8 * * mon#1", "0 8 * * 61", "not a line"])
def test_a_digest_line_the_scheduler_would_misread_stops_the_daemon_with_the_key(tmp_path: Path, line: str) -> None:
    """"mon#1" would send the digest every Monday, not the first: the daemon refuses it (and
    any line it cannot read) as Settings does, naming [schedule] digest and what to write."""
    config_path = sample(tmp_path / "pub")
    document = tomlkit.parse(config_path.read_text())
    document["schedule"]["digest"] = line  # type: ignore[index]
    config_path.write_text(tomlkit.dumps(document))
    config = load_config(config_path)
    rt = jobs.Runtime(config=config, db=open_store(config.store_url), clock=lambda: NOW)
    sched = scheduler.create_scheduler(rt)
    with pytest.raises(ConfigError, match=rf"\[schedule\] digest '{re.escape(line)}' .*(write|\#)"):
        scheduler.start_daemon_jobs(sched, str(config_path), rt)
    assert sched.get_job("digest") is None
