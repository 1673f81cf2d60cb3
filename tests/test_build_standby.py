"""A small build brings the standby build up to date and switches to it: no copy of the
site, one whole build served at every moment, kill -9 at any step, the record doubted."""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from test_build import NOW, article, articles, publication
from test_build_switch import _build_problems, kept_builds, served_files, whole_build_problems

from publisher.config import Config
from publisher.models import Article
from publisher.site import build
from publisher.site.build import standby, writing
from publisher.site.build_cache import RenderRecord


@pytest.fixture(autouse=True)
def _no_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Builds here follow each other within the grace; one test sets it back."""
    monkeypatch.setattr(standby, "GRACE", 0.0)


def generation(number: int) -> list[Article]:
    """The sample articles as of one generation: one edited, one added and the last one's
    removed, so a build writes, adds and removes."""
    found = [
        replace(a, html=f"<p>Generation {number}.</p>\n") if a.slug == "night-waking" else a for a in articles()
    ]
    return [*found, article(f"new-{number}", 1 + number % 9, tags=(f"t{number}",))]


def expected(config: Config, found: list[Article]) -> dict[str, bytes]:
    return dict(build.render_site(config, found, NOW).files)


def served(public: Path) -> dict[str, bytes]:
    return {rel: data for rel, data in served_files(public).items() if rel != build.MANIFEST}


class Calls:
    """Counts calls of the full path's copy of the served build and of its clearing."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.copies = 0
        self.clears = 0
        real_copy, real_clear = writing._link_tree, build.files._clear_build

        def copy(source: Path, target: Path) -> None:
            self.copies += 1
            real_copy(source, target)

        def clear(old: Path, new: Path, journaled: Any = ()) -> list[str]:
            self.clears += 1
            return real_clear(old, new, journaled)

        monkeypatch.setattr(writing, "_link_tree", copy)
        monkeypatch.setattr(build.files, "_clear_build", clear)


def test_a_small_build_writes_into_the_standby_and_switches_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the first build, an edit neither copies the site nor clears a build: the
    standby becomes the served build, and the build it replaces is left as it was."""
    config = publication(tmp_path)
    build.build_site(config, generation(0), NOW)
    public = tmp_path / "public"
    first, before = public.resolve(), served_files(public)
    calls = Calls(monkeypatch)
    report = build.build_site(config, generation(1), NOW)
    assert report.written and report.removed
    assert (calls.copies, calls.clears) == (0, 0)
    assert public.resolve() != first and served_files(first) == before
    assert served(public) == expected(config, generation(1))
    assert kept_builds(tmp_path / ".public.builds") == [public.resolve().name, "standby"]


def test_edits_in_turn_each_serve_what_a_first_build_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each small build makes the standby equal to the served build before adding its own
    changes: after several, the site is byte for byte a first build's, with its manifest."""
    config = publication(tmp_path)
    build.build_site(config, generation(0), NOW)
    calls = Calls(monkeypatch)
    public = tmp_path / "public"
    for number in range(1, 4):
        build.build_site(config, generation(number), NOW)
        assert served(public) == expected(config, generation(number))
        assert whole_build_problems(public) == []
    assert (calls.copies, calls.clears) == (0, 0)


def test_unchanged_files_keep_their_inode_and_mtime_across_switches(tmp_path: Path) -> None:
    """A file no edit changed is one file in every build: its mtime, and a server's ETag, stay."""
    config = publication(tmp_path)
    sites = [expected(config, generation(number)) for number in range(3)]
    same = sorted(rel for rel, data in sites[0].items() if all(site.get(rel) == data for site in sites))
    assert len(same) > 5
    public = tmp_path / "public"
    build.build_site(config, generation(0), NOW)
    before = {rel: ((public / rel).stat().st_ino, (public / rel).stat().st_mtime_ns) for rel in same}
    for number in (1, 2):
        build.build_site(config, generation(number), NOW)
        assert {rel: ((public / rel).stat().st_ino, (public / rel).stat().st_mtime_ns) for rel in same} == before


def test_a_file_a_reader_holds_open_keeps_its_bytes(tmp_path: Path) -> None:
    """A reader's open file is never written through, even once its build is the standby
    being brought up to date."""
    config = publication(tmp_path)
    build.build_site(config, generation(0), NOW)
    with (tmp_path / "public" / "night-waking" / "index.html").open("rb") as handle:
        for number in range(1, 4):
            build.build_site(config, generation(number), NOW)
        assert b"Generation 0." in handle.read()
    assert b"Generation 3." in (tmp_path / "public" / "night-waking" / "index.html").read_bytes()


@pytest.mark.parametrize(
    "record",
    [
        b"{",
        b"[]",
        b'{"format": 1, "trees": ["v1", "v2"], "changed": [], "extras": [], "swapped": 0}',
        b'{"format": 1, "trees": ["LIVE", "../elsewhere"], "changed": [], "extras": [], "swapped": 0}',
        b'{"format": 1, "trees": ["LIVE", "STANDBY"], "changed": "all", "extras": [], "swapped": 0}',
        b'{"format": 1, "trees": ["LIVE", "STANDBY"], "changed": ["../../x"], "extras": [], "swapped": 0}',
        b'{"format": 1, "trees": ["LIVE", "STANDBY"], "changed": ["index.html/x"], "extras": [], "swapped": 0}',
    ],
    ids=["truncated", "not-a-record", "other-builds", "outside", "wrong-type", "escaping-path", "through-a-file"],
)
def test_a_doubtful_standby_record_falls_back_to_a_full_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, record: bytes
) -> None:
    """A record that is garbage, names other folders, or lists what cannot be a file of the
    site is not trusted: the build copies the served build as before, serves the right
    site, and leaves a record it can trust."""
    config = publication(tmp_path)
    build.build_site(config, generation(0), NOW)
    build.build_site(config, generation(1), NOW)
    builds = tmp_path / ".public.builds"
    trees = json.loads((builds / standby.RECORD).read_text())["trees"]
    text = record.replace(b"LIVE", trees[0].encode()).replace(b"STANDBY", trees[1].encode())
    (builds / standby.RECORD).write_bytes(text)
    calls = Calls(monkeypatch)
    build.build_site(config, generation(2), NOW)
    assert calls.copies == 1
    public = tmp_path / "public"
    assert served(public) == expected(config, generation(2))
    assert kept_builds(builds) == [public.resolve().name, "standby"]
    assert not (builds / standby.JOURNAL).exists()
    calls.copies = 0
    build.build_site(config, generation(3), NOW)
    assert calls.copies == 0 and served(public) == expected(config, generation(3))


def test_the_authors_own_file_is_carried_and_so_is_its_removal(tmp_path: Path) -> None:
    """A file the author put into the served build stays served after small builds, and
    once the author removes it, it does not come back from the standby."""
    config = publication(tmp_path)
    build.build_site(config, generation(0), NOW)
    public = tmp_path / "public"
    (public / "humans.txt").write_text("Dana\n")
    (public / "night-waking" / "notes.txt").write_text("mine\n")
    for number in (1, 2, 3):
        build.build_site(config, generation(number), NOW)
        assert (public / "humans.txt").read_text() == "Dana\n"
        assert (public / "night-waking" / "notes.txt").read_text() == "mine\n"
    (public / "humans.txt").unlink()
    for number in (4, 5, 6):
        build.build_site(config, generation(number), NOW)
        assert not (public / "humans.txt").exists()
        assert (public / "night-waking" / "notes.txt").read_text() == "mine\n"


def test_a_page_replaced_by_hand_stays_rendered_again(tmp_path: Path) -> None:
    """A page of the build replaced by hand is rendered again, and the builds after do not
    bring the hand-made one back from the standby."""
    config = publication(tmp_path)
    build.build_site(config, generation(0), NOW)
    build.build_site(config, generation(1), NOW)
    page = tmp_path / "public" / "small-steps" / "index.html"
    page.unlink()
    page.write_bytes(b"scribbled")
    for number in (2, 3, 4):
        build.build_site(config, generation(number), NOW)
        assert page.read_bytes() == expected(config, generation(number))["small-steps/index.html"]


def test_a_standby_swapped_out_a_moment_ago_waits_for_the_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build served until a moment ago may still be read by someone who resolved the
    link just before the switch: it is written again only once the grace has passed."""
    monkeypatch.setattr(standby, "GRACE", 0.4)
    config = publication(tmp_path)
    build.build_site(config, generation(0), NOW)
    build.build_site(config, generation(1), NOW)
    swapped = json.loads((tmp_path / ".public.builds" / standby.RECORD).read_text())["swapped"]
    touched: list[int] = []
    real_forget = standby.forget

    def forget(builds: Path) -> None:
        touched.append(time.time_ns())
        real_forget(builds)

    monkeypatch.setattr(standby, "forget", forget)
    build.build_site(config, generation(2), NOW)
    assert touched and touched[0] - swapped >= 0.4e9
    assert served(tmp_path / "public") == expected(config, generation(2))


STEPS: list[tuple[Any, str]] = [
    (standby, "forget"),
    (standby, "carry"),
    (standby, "drop"),
    (standby.Journal, "_line"),
    (writing, "_write_atomic"),
    (writing, "_switch"),
    (standby.Standby, "save"),
    (standby.Journal, "close"),
    (writing, "_prune"),
    (RenderRecord, "save"),
]
"""Every step of a small build that changes a file: a kill before each of them is tried."""


def build_killed_at(config: Config, found: list[Article], step: tuple[Any, str], call: int) -> bool:
    """Run the build in a forked child that kills itself (SIGKILL) as it reaches the
    `call`-th call of `step`; whether it was killed (False: the build never got there)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns to the test
        try:
            owner, name = step
            real = getattr(owner, name)
            count = [0]

            def step_then(*args: Any, **kwargs: Any) -> Any:
                count[0] += 1
                if count[0] == call:
                    os.kill(os.getpid(), signal.SIGKILL)
                return real(*args, **kwargs)

            setattr(owner, name, step_then)
            build.build_site(config, found, NOW)
        finally:
            os._exit(0)
    _pid, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


@pytest.mark.timeout(60)
def test_kill_9_at_each_step_of_a_small_build_leaves_one_whole_build(tmp_path: Path) -> None:
    """Killed before any step of a small build (and before the second of those it repeats),
    the served site is one whole build, the old or the new; the next build serves the new
    one whole and leaves the served build and its standby only."""
    config = publication(tmp_path)
    build.build_site(config, generation(0), NOW)
    build.build_site(config, generation(1), NOW)
    public = tmp_path / "public"
    builds = tmp_path / ".public.builds"
    sites = {number: expected(config, generation(number)) for number in (1, 2)}
    number, kills = 1, set()
    for step in STEPS:
        for call in (1, 2) if step[1] in ("carry", "_line", "_write_atomic") else (1,):
            old, new = sites[number], sites[3 - number]
            if build_killed_at(config, generation(3 - number), step, call):
                kills.add(step[1])
            assert _build_problems(public.resolve()) == []
            assert served(public) in (old, new), f"{step[1]} {call}"
            number = 3 - number
            if not build.build_site(config, generation(number), NOW).written:
                # Killed after the switch, before the record: a build with changes leaves one.
                for again in (3 - number, number):
                    build.build_site(config, generation(again), NOW)
            assert served(public) == new
            assert kept_builds(builds) == [public.resolve().name, "standby"], f"{step[1]} {call}"
            assert not (builds / standby.JOURNAL).exists()
    assert kills == {name for _owner, name in STEPS}


def test_a_build_with_nothing_to_write_clears_what_a_killed_build_left(tmp_path: Path) -> None:
    """Killed after its switch and record, before clearing the other builds, a build leaves
    a third one behind: the next build clears it even when it has nothing to write."""
    config = publication(tmp_path)
    build.build_site(config, generation(0), NOW)
    build.build_site(config, generation(1), NOW)
    builds = tmp_path / ".public.builds"
    (builds / standby.RECORD).write_bytes(b"{")  # the full path, which clears the old standby
    assert build_killed_at(config, generation(2), (writing, "_prune"), 1)
    public = tmp_path / "public"
    assert served(public) == expected(config, generation(2))
    assert len([p for p in builds.iterdir() if p.name.startswith("v")]) == 3
    assert build.build_site(config, generation(2), NOW).written == ()
    assert kept_builds(builds) == [public.resolve().name, "standby"]


def test_a_half_written_standby_is_cleared_by_its_journal_after_more_kills(tmp_path: Path) -> None:
    """A standby killed half-written, then a full build killed before clearing it: the next
    small build clears it by its journal first, with no file of it taken for the author's."""
    config = publication(tmp_path)
    build.build_site(config, generation(0), NOW)
    build.build_site(config, generation(1), NOW)
    assert build_killed_at(config, generation(2), (writing, "_write_atomic"), 2)
    assert build_killed_at(config, generation(3), (writing, "_prune"), 1)
    builds = tmp_path / ".public.builds"
    assert len([p for p in builds.iterdir() if p.name.startswith("v")]) == 3
    report = build.build_site(config, generation(4), NOW)
    assert not [warning for warning in report.warnings if "did not write" in warning]
    public = tmp_path / "public"
    assert served(public) == expected(config, generation(4))
    assert kept_builds(builds) == [public.resolve().name, "standby"]
