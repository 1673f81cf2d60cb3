"""Watching content/: saved files are noticed from events, once they have settled."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from publisher.content.watch import settle, watch_content


def test_settle_waits_for_a_file_still_being_written(tmp_path: Path) -> None:
    """settle returns only after the writer's last write, not at its first."""
    path = tmp_path / "post.md"
    path.write_text("---\n")
    finished = threading.Event()

    def write_slowly() -> None:
        with path.open("a") as handle:
            for n in range(6):
                handle.write(f"line {n}\n")
                handle.flush()
                time.sleep(0.05)
        finished.set()

    writer = threading.Thread(target=write_slowly)
    writer.start()
    assert settle([path], quiet=0.15, limit=10.0)
    assert finished.is_set()
    writer.join()


def test_settle_gives_up_on_a_file_that_never_settles(tmp_path: Path) -> None:
    """A file that keeps changing past the limit is reported as unsettled, not waited on forever."""
    path = tmp_path / "busy.md"
    stop = threading.Event()

    def keep_writing() -> None:
        n = 0
        while not stop.is_set():
            path.write_text(f"{n}\n" * (n % 7 + 1))
            n += 1
            time.sleep(0.01)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        assert not settle([path], quiet=0.1, limit=0.5)
    finally:
        stop.set()
        writer.join()


def test_settle_accepts_a_deleted_file(tmp_path: Path) -> None:
    """A file removed after the event has settled too (as gone)."""
    assert settle([tmp_path / "gone.md"], quiet=0.01, limit=1.0)


@pytest.fixture(params=[False, True], ids=["events", "polling"])
def watching(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, list[float], threading.Event]]:
    """watch_content on tmp_path/content in a thread; yields (folder, call times, called)."""
    if request.param:
        monkeypatch.setenv("WATCHFILES_FORCE_POLLING", "1")
    folder = tmp_path / "content"
    folder.mkdir()
    stop = threading.Event()
    calls: list[float] = []
    called = threading.Event()

    def on_change() -> None:
        calls.append(time.monotonic())
        called.set()

    thread = threading.Thread(target=watch_content, args=(folder, on_change, stop), kwargs={"quiet": 0.05})
    thread.start()
    time.sleep(0.5)  # let the watcher take its first look before anything changes
    try:
        yield folder, calls, called
    finally:
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the watcher did not stop"


def test_a_saved_file_calls_back(watching: tuple[Path, list[float], threading.Event]) -> None:
    """Saving a file under content/ runs the callback, by events or by the polling fallback."""
    folder, _, called = watching
    (folder / "2026-11-27-fresh.md").write_text("---\ntitle: Fresh\n---\n\nWords.\n")
    assert called.wait(30), "the change was never noticed"


def test_a_callback_error_does_not_stop_the_watch(tmp_path: Path) -> None:
    """A failing callback is logged; the next change is still noticed."""
    folder = tmp_path / "content"
    folder.mkdir()
    stop = threading.Event()
    calls: list[int] = []
    second = threading.Event()

    def on_change() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bad article")
        second.set()

    thread = threading.Thread(target=watch_content, args=(folder, on_change, stop), kwargs={"quiet": 0.05})
    thread.start()
    try:
        time.sleep(0.5)
        (folder / "a.md").write_text("one")
        deadline = time.monotonic() + 30
        while not calls and time.monotonic() < deadline:
            time.sleep(0.05)
        (folder / "b.md").write_text("two")
        assert second.wait(30), "the watch stopped after a failing callback"
    finally:
        stop.set()
        thread.join(timeout=10)


def test_a_missing_folder_is_not_watched(tmp_path: Path) -> None:
    """No content/ folder: the watcher returns at once instead of failing the daemon."""
    watch_content(tmp_path / "nope", lambda: None, threading.Event())
