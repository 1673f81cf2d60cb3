"""Files that hold subscriber data are private whatever the umask: the database (and its
-wal and -shm), the outbox and exports."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from publisher.cli import cli
from publisher.delivery.maildir import MaildirProvider
from publisher.store import open_store, subscribers

CONFIG = """\
[publication]
title = "Private"
url = "https://example.org/"

[newsletter]
from = "P <p@example.org>"
"""


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask there is: nothing is masked."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_database_and_its_wal_are_0600(tmp_path: Path, open_umask: None) -> None:
    """A new SQLite database, its -wal and -shm are readable by their owner only."""
    db = tmp_path / "publisher.db"
    engine = open_store(f"sqlite:///{db}")
    subscribers.add(engine, "ann@example.org", now=datetime.now(UTC))
    with engine.connect() as conn:  # a reader holds the WAL open
        conn.exec_driver_sql("SELECT 1")
        wal, shm = tmp_path / "publisher.db-wal", tmp_path / "publisher.db-shm"
        assert wal.exists() and shm.exists()
        assert (mode(db), mode(wal), mode(shm)) == (0o600, 0o600, 0o600)
    engine.dispose()


def test_world_readable_database_is_made_private(tmp_path: Path, open_umask: None) -> None:
    """A database left readable by others (an older publisher, a copy) loses that on open."""
    db = tmp_path / "publisher.db"
    open_store(f"sqlite:///{db}").dispose()
    db.chmod(0o644)
    open_store(f"sqlite:///{db}").dispose()
    assert mode(db) == 0o600


def test_outbox_and_its_folders_are_0700(tmp_path: Path, open_umask: None) -> None:
    """The Maildir outbox and every folder in it are the owner's only."""
    outbox = tmp_path / "outbox"
    MaildirProvider(outbox)
    assert [mode(p) for p in (outbox, outbox / "new", outbox / "tmp", outbox / "cur")] == [0o700] * 4


def test_export_is_0600(tmp_path: Path, open_umask: None) -> None:
    """`subscribers export FILE` writes a file only its owner can read."""
    (tmp_path / "config.toml").write_text(CONFIG)
    engine = open_store(f"sqlite:///{tmp_path / 'publisher.db'}")
    subscribers.add(engine, "ann@example.org", now=datetime.now(UTC))
    engine.dispose()
    result = CliRunner().invoke(
        cli, ["--config", str(tmp_path / "config.toml"), "subscribers", "export", str(tmp_path / "list.csv")]
    )
    assert result.exit_code == 0, result.output
    assert mode(tmp_path / "list.csv") == 0o600
