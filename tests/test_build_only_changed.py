"""Builds and checks that do only the work that changed: an edit, a template, a setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_build_cache import NOW, Counter, assert_same_as_cold, incremental, publication, text

from publisher.config import load_config
from publisher.services import site as site_service

EDITED = {"a05/index.html", "page/2/index.html", "tags/habits/index.html", "search.json", "feeds/tags/habits.xml"}
"""What editing a05's body changes (see test_build_cache's test of an edit)."""


def test_check_after_one_edit_renders_only_what_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`publisher check` after editing one article renders the pages a build would, not the site."""
    path = publication(tmp_path)
    incremental(path)
    (tmp_path / "content" / "a05.md").write_text(text(5, body="Rewritten body."), encoding="utf-8")
    counter = Counter(monkeypatch)
    found = site_service.check_site(load_config(path, env={}), NOW)
    assert not found.errors
    assert sorted(counter.pages) == sorted(["a04", "a05", "a06", "page/2/index.html", "tags/habits/index.html"])
    assert counter.feeds == 1 and counter.previews == []
    assert found.report is not None and set(found.report.written) == EDITED


def test_check_says_what_the_build_then_writes(tmp_path: Path) -> None:
    """What check says a build would write is what the build writes; the served site is untouched."""
    path = publication(tmp_path)
    incremental(path)
    (tmp_path / "content" / "a05.md").write_text(text(5, body="Rewritten body."), encoding="utf-8")
    (tmp_path / "content" / "a03.md").unlink()
    before = sorted(p.name for p in (tmp_path / ".public.builds").iterdir())
    found = site_service.check_site(load_config(path, env={}), NOW)
    assert sorted(p.name for p in (tmp_path / ".public.builds").iterdir()) == before
    report, _cache = incremental(path)
    assert found.report is not None
    assert (found.report.written, found.report.removed) == (report.written, report.removed)
    assert found.files == len(report.written) + len(report.unchanged)
    assert_same_as_cold(path)
