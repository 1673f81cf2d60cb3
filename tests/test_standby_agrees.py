"""The standby path and the full path agree: whatever happened to the served build since,
a small build serves what a cold build of the same content would."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_build import NOW, publication
from test_build_standby import expected, generation, served

from publisher.site import build
from publisher.site.build import standby


@pytest.fixture(autouse=True)
def _no_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(standby, "GRACE", 0.0)


def test_a_page_changed_by_hand_in_place_is_rendered_again(tmp_path: Path) -> None:
    """A served page written over in place (same file, same inode, as an editor or `>>`
    does) is rendered again by the next build, as the full path does, not kept."""
    config = publication(tmp_path)
    build.build_site(config, generation(0), NOW)
    build.build_site(config, generation(1), NOW)
    page = tmp_path / "public" / "grief-and-rest" / "index.html"
    inode = page.stat().st_ino
    with page.open("r+b") as handle:
        handle.write(b"<!-- scribbled -->")
    assert page.stat().st_ino == inode
    build.build_site(config, generation(2), NOW)
    assert served(tmp_path / "public") == expected(config, generation(2))
