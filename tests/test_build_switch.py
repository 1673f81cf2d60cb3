"""The served site switches from one whole build to the next, and the output never holds
the publication's own files: builds beside the output, one rename, refusals, kill -9."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_build import NOW, articles, cli_publication, publication
from web_support import AppClient, make_publication, publish_manifest

from publisher.cli import cli
from publisher.config import load_config
from publisher.errors import BuildError
from publisher.site import build
from publisher.site.build import standby
from publisher.web.app import create_app


def served_files(public: Path) -> dict[str, bytes]:
    return {p.relative_to(public).as_posix(): p.read_bytes() for p in sorted(public.rglob("*")) if p.is_file()}


def whole_build_problems(public: Path) -> list[str]:
    """What makes the served folder something other than one whole build: a file the
    manifest lists with other bytes or not at all, a temp file, a file it does not list.

    The folder is read through the link as it stood when the look began. A build that
    switches, and prunes the build before it, while the look is under way is not a torn
    site (a reader that started on the old build finished on it), so the look is taken
    again on the new one."""
    for _ in range(20):
        target = public.resolve()
        try:
            problems = _build_problems(target)
        except FileNotFoundError:
            problems = None  # pruned under the look
        if public.resolve() == target and problems is not None:
            return problems
    raise AssertionError("the served build changed under every one of 20 looks")


def _build_problems(root: Path) -> list[str]:
    manifest = json.loads((root / build.MANIFEST).read_text())["files"]
    files = served_files(root)
    problems = [f"missing {rel}" for rel in manifest if rel not in files]
    for rel, data in files.items():
        if rel == build.MANIFEST:
            continue
        if rel not in manifest:
            problems.append(f"not in the manifest: {rel}")
        elif manifest[rel] != "sha256:" + hashlib.sha256(data).hexdigest():
            problems.append(f"other bytes than the manifest says: {rel}")
    return problems


def kept_builds(builds: Path) -> list[str]:
    """What the builds folder holds after a build: the served build, then "standby" for
    the standby its record names (and nothing else: no stage, no journal)."""
    record = json.loads((builds / standby.RECORD).read_text())
    names = sorted(p.name for p in builds.iterdir() if p.name not in (".lock", standby.RECORD))
    labels = ["standby" if name == record["trees"][1] else name for name in names]
    return sorted(labels, key=lambda label: label == "standby")


def test_output_is_a_link_switched_to_each_new_build(tmp_path: Path) -> None:
    """The output is a link to the newest build; the build before it stays as the standby,
    unchanged, and no other build is kept."""
    config = publication(tmp_path)
    build.build_site(config, articles(), NOW)
    public = tmp_path / "public"
    first = public.resolve()
    before = served_files(public)
    assert public.is_symlink() and first.parent == tmp_path / ".public.builds"
    edited = [replace(a, html="<p>Edited.</p>\n") if a.slug == "night-waking" else a for a in articles()]
    build.build_site(config, edited, NOW)
    second = public.resolve()
    assert second != first and served_files(first) == before
    assert b"Edited." in (public / "night-waking" / "index.html").read_bytes()
    builds = sorted(p.name for p in (tmp_path / ".public.builds").iterdir())
    assert builds == sorted([".lock", standby.RECORD, first.name, second.name])
    assert whole_build_problems(public) == []


def test_unchanged_build_switches_nothing(tmp_path: Path) -> None:
    """A rebuild with nothing new keeps the same build in place."""
    config = publication(tmp_path)
    build.build_site(config, articles(), NOW)
    before = (tmp_path / "public").resolve()
    assert build.build_site(config, articles(), NOW).written == ()
    assert (tmp_path / "public").resolve() == before


def test_failed_build_leaves_the_served_site_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build that dies halfway through writing leaves the old site served, whole, and no
    temp file in it; the next build cleans up what the dead one staged."""
    config = publication(tmp_path)
    build.build_site(config, articles(), NOW)
    public = tmp_path / "public"
    before = served_files(public)
    real_write = build.writing._write_atomic
    calls: list[Path] = []

    def dying_write(path: Path, data: bytes) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_write(path, data)

    monkeypatch.setattr(build.writing, "_write_atomic", dying_write)
    edited = [replace(a, html=f"<p>New {a.slug}.</p>\n") for a in articles()]
    with pytest.raises(KeyboardInterrupt):
        build.build_site(config, edited, NOW)
    monkeypatch.undo()
    assert served_files(public) == before
    assert not [p for p in public.rglob("*") if p.name.endswith(".tmp")]
    build.build_site(config, edited, NOW)
    assert whole_build_problems(public) == []
    assert kept_builds(tmp_path / ".public.builds") == [public.resolve().name, "standby"]


def test_plain_output_folder_becomes_the_first_build(tmp_path: Path) -> None:
    """A public/ folder from an older publisher is carried over, the author's files with it,
    and its temp files left by a killed build are not."""
    config = publication(tmp_path)
    public = tmp_path / "public"
    public.mkdir()
    (public / "humans.txt").write_text("User-agent: *\n")
    (public / ".index.html.abc123.tmp").write_text("")
    build.build_site(config, articles(), NOW)
    assert public.is_symlink()
    assert (public / "humans.txt").read_text() == "User-agent: *\n"
    assert not (public / ".index.html.abc123.tmp").exists()
    assert (public / "index.html").is_file()


def test_switch_cut_short_after_moving_a_plain_folder_recovers(tmp_path: Path) -> None:
    """Killed between moving the plain folder aside and linking the new build, the next
    build starts from the newest build and links it."""
    config = publication(tmp_path)
    build.build_site(config, articles(), NOW)
    public = tmp_path / "public"
    (public / "humans.txt").write_text("User-agent: *\n")
    public.unlink()  # the state between the two renames
    report = build.build_site(config, articles(), NOW)
    assert report.written == ()
    assert public.is_symlink()
    assert (public / "humans.txt").read_text() == "User-agent: *\n"


@pytest.mark.parametrize(
    ("output", "names"),
    [
        (".", "the publication folder"),
        ("..", "contains the publication folder"),
        ("/", "the filesystem root"),
        ("content", "the content folder"),
        ("templates", "the template folder"),
        ("outbox", "the outbox"),
        ("data", "the database"),
    ],
)
def test_output_exposing_the_publication_is_refused(tmp_path: Path, output: str, names: str) -> None:
    """An output that is or holds the publication's own files is refused by build, check
    and serve, with the key named; nothing is written."""
    root = tmp_path / "pub"
    config_path = cli_publication(root)
    text = config_path.read_text().replace("[build]\n", f"[build]\noutput = {json.dumps(output)}\n")
    text += '\n[store]\nurl = "sqlite:///data/publisher.db"\n'
    config_path.write_text(text)
    before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    for verb in ("check", "build"):
        result = CliRunner().invoke(cli, ["--config", str(config_path), verb])
        assert result.exit_code == 1, result.output
        assert "[build] output" in result.output and names in result.output
    with pytest.raises(BuildError, match=r"\[build\] output"):
        create_app(load_config(config_path, env={"PUBLISHER_SECRET": "x" * 32}))
    result = CliRunner().invoke(cli, ["--config", str(config_path), "serve"], env={"PUBLISHER_SECRET": "x" * 32})
    assert result.exit_code == 1 and "[build] output" in result.output
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == before


def test_static_handler_serves_only_the_manifest(tmp_path: Path) -> None:
    """A database, a config, a subscriber CSV or any file the build did not write is 404,
    even inside the output folder; a manifest that lists such a file does not help."""
    config = make_publication(tmp_path)
    public = config.root / "public"
    for name in ("publisher.db", "publisher.db-wal", "config.toml", "subscribers.csv", "notes.txt"):
        (public / name).write_text("alice@example.org\n")
    client = AppClient(create_app(config))
    assert client.get("/feeds/rss.xml").status_code == 200
    for name in ("publisher.db", "publisher.db-wal", "config.toml", "subscribers.csv", "notes.txt"):
        assert client.get(f"/{name}").status_code == 404
    publish_manifest(public)  # a tampered manifest
    assert client.get("/notes.txt").status_code == 200
    for name in ("publisher.db", "publisher.db-wal", "config.toml", "subscribers.csv"):
        response = client.get(f"/{name}")
        assert response.status_code == 404
        assert b"alice@" not in response.content


def test_static_handler_follows_the_switch(tmp_path: Path) -> None:
    """A running server answers from the new build as soon as it is switched in, and a
    page the new build no longer has is 404 at once."""
    config = publication(tmp_path)
    build.build_site(config, articles(), NOW)
    app = create_app(replace(config, env={"PUBLISHER_SECRET": "x" * 32}))
    client = AppClient(app)
    assert client.get("/small-steps/").status_code == 200
    edited = [replace(a, html="<p>Edited.</p>\n") if a.slug == "night-waking" else a for a in articles()[:2]]
    build.build_site(config, edited, NOW)
    assert b"Edited." in client.get("/night-waking/").content
    assert client.get("/small-steps/").status_code == 404


CRASH_ARTICLE = """---
title: Note {n}
date: 2025-{month:02d}-{day:02d}
tags: [t{tag}, shared]
---
Body of note {n}, generation {{generation}}.
"""


@pytest.mark.timeout(240)
def test_kill_9_during_build_always_leaves_one_whole_build(tmp_path: Path) -> None:
    """`publisher build` killed with SIGKILL at random moments: the served folder is at
    every moment one whole build (each file as its manifest says, none missing, no temp
    file), all of one generation."""
    root = tmp_path / "pub"
    config_path = cli_publication(root)
    content = root / "content"
    for path in content.iterdir():
        path.unlink()
    for n in range(120):
        text = CRASH_ARTICLE.format(n=n, month=n % 12 + 1, day=n % 28 + 1, tag=n % 10)
        (content / f"note-{n:03d}.md").write_text(text)

    def write_generation(generation: int) -> None:
        for path in sorted(content.iterdir()):
            text = path.read_text()
            head, _, _ = text.rpartition("generation ")
            path.write_text(f"{head}generation {generation}.\n")

    command = [sys.executable, "-m", "publisher", "--config", str(config_path), "build"]
    write_generation(0)
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    public = root / "public"
    rng = random.Random(9)
    kills = 0

    def signature() -> tuple[int, int]:
        stat = (public / "feeds" / "atom.xml").stat()  # the first file a build changes
        return stat.st_ino, stat.st_mtime_ns

    for generation in range(1, 7):
        write_generation(generation)
        # Half the runs die at a random moment, half the instant the served folder changes.
        at_change = generation % 2 == 1
        before = signature()
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            delay = rng.uniform(0.3, 3.0)
            while process.poll() is None:
                if at_change and signature() != before:
                    break
                if not at_change and time.monotonic() - started > delay:
                    break
                if not at_change:
                    assert whole_build_problems(public) == []
                time.sleep(0.001 if at_change else 0.01)
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                kills += 1
        finally:
            if process.poll() is None:  # a failed look above: never leave the build running
                process.kill()
            process.wait(timeout=30)
        assert whole_build_problems(public) == []
        pages = [p.read_text() for p in public.glob("note-*/index.html")]
        generations = {page.split("generation ")[1].split(".")[0] for page in pages}
        assert len(pages) == 120 and len(generations) == 1, generations
    assert kills >= 1
    result = subprocess.run(command, check=True, capture_output=True, timeout=120)
    assert result.returncode == 0
    assert whole_build_problems(public) == []
    assert "generation 6." in (public / "note-000" / "index.html").read_text()
    assert kept_builds(root / ".public.builds") == [public.resolve().name, "standby"]
