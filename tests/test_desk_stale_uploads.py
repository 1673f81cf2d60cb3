"""Uploads a killed desk left in the temporary folder are removed when a desk starts again."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from web_support import make_publication

from publisher.web import create_app
from publisher.web.desk.waiting import STALE_AFTER, remove_stale, upload_folder

PREFIX = "publisher-moving-"


@pytest.fixture
def temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)
    return folder


def left_by_an_ended_process(temporary: Path) -> Path:
    """An upload's folder with its file, made by a process that has ended since."""
    made = subprocess.run(
        [sys.executable, "-c", f"from publisher.web.desk.waiting import upload_folder; "
                               f"f = upload_folder({PREFIX!r}); (f / 'export.zip').write_bytes(b'PK'); print(f)"],
        env={**os.environ, "TMPDIR": str(temporary)}, capture_output=True, text=True, check=True,
    )
    folder = Path(made.stdout.strip())
    assert folder.parent == temporary and (folder / "export.zip").exists()
    return folder


def test_a_folder_whose_process_ended_is_removed(temporary: Path) -> None:
    """The process that held the upload is gone: its folder goes."""
    folder = left_by_an_ended_process(temporary)
    assert remove_stale(PREFIX) == [folder] and not folder.exists()


def test_a_folder_of_a_running_desk_is_kept(temporary: Path) -> None:
    """An upload waiting in a live process (this one) stays until it is old."""
    folder = upload_folder(PREFIX)
    assert remove_stale(PREFIX) == [] and folder.is_dir()
    assert remove_stale(PREFIX, now=time.time() + STALE_AFTER + 60) == [folder]


def test_a_link_with_the_name_is_never_followed(temporary: Path, tmp_path: Path) -> None:
    """A symbolic link named like an upload folder is left alone, and so is what it points at."""
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("keep")
    (temporary / f"{PREFIX}999999-x").symlink_to(precious)
    assert remove_stale(PREFIX, now=time.time() + STALE_AFTER + 60) == []
    assert (precious / "keep.txt").read_text() == "keep"


def test_a_desk_starting_removes_what_a_killed_one_left(temporary: Path, tmp_path: Path) -> None:
    """create_app (the desk starting) removes the upload a killed server left behind."""
    folder = left_by_an_ended_process(temporary)
    (tmp_path / "desk").mkdir()
    create_app(make_publication(tmp_path / "desk"))
    assert not folder.exists()
