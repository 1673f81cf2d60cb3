"""The site's templates compiled by one build and loaded by the next, never stale or foreign."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import pytest

from publisher.site import build_cache
from publisher.site.build_cache import CACHE_FOLDER
from publisher.site.compiled_templates import FOLDER
from tests.test_build_cache import assert_same_as_cold, incremental, publication, text


def compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the templates Jinja compiles from here on."""
    names: list[str] = []
    real = jinja2.Environment.compile

    def counted(self: jinja2.Environment, source: Any, name: str | None = None, *args: Any, **kw: Any) -> Any:
        names.append(str(name))
        return real(self, source, name, *args, **kw)

    monkeypatch.setattr(jinja2.Environment, "compile", counted)
    return names


def edit(root: Path, number: int, body: str) -> None:
    (root / "content" / f"a{number:02d}.md").write_text(text(number, body=body), encoding="utf-8")


def compiled_files(root: Path) -> list[Path]:
    return sorted((root / CACHE_FOLDER / FOLDER).glob("*.jinja"))


def test_an_edit_compiles_no_template_the_last_build_compiled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After an edit, the pages render with the code the last build compiled."""
    path = publication(tmp_path, previews=0)
    incremental(path)
    edit(tmp_path, 5, "Rewritten body.")
    names = compiles(monkeypatch)
    report, _cache = incremental(path)
    assert "a05/index.html" in report.written
    assert names == []
    assert_same_as_cold(path)


def test_an_edited_template_alone_is_compiled_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An override whose text changed is compiled afresh and its new text shipped; the rest load."""
    path = publication(tmp_path, previews=0)
    overrides = tmp_path / "templates" / "web"
    overrides.mkdir(parents=True)
    base = (Path(__file__).resolve().parent.parent / "templates" / "web" / "base.html").read_text(encoding="utf-8")
    (overrides / "base.html").write_text(base.replace("</body>", "<p>first footer</p></body>"), encoding="utf-8")
    incremental(path)
    (overrides / "base.html").write_text(base.replace("</body>", "<p>second footer</p></body>"), encoding="utf-8")
    names = compiles(monkeypatch)
    incremental(path)
    assert names == ["web/base.html"]
    page = (tmp_path / "public" / "a05" / "index.html").read_text(encoding="utf-8")
    assert "second footer" in page and "first footer" not in page
    assert_same_as_cold(path)


def test_code_of_another_publisher_is_neither_loaded_nor_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another fingerprint (another publisher, Python or Jinja) compiles again and clears the old files."""
    path = publication(tmp_path, previews=0)
    incremental(path)
    old = compiled_files(tmp_path)
    assert old
    monkeypatch.setattr(build_cache, "code_fingerprint", lambda: "another version of the code")
    edit(tmp_path, 5, "Rewritten body.")
    names = compiles(monkeypatch)
    incremental(path)
    assert "web/article.html" in names
    new = compiled_files(tmp_path)
    assert new and not set(old) & set(new)


def test_a_file_others_may_write_is_not_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiled code writable by group or others, or a link, is compiled again instead of run."""
    path = publication(tmp_path, previews=0)
    incremental(path)
    names = compiles(monkeypatch)
    edit(tmp_path, 5, "Rewritten once.")
    incremental(path)
    assert names == []  # as the build left them, they are loaded
    found = compiled_files(tmp_path)
    for file in found[::2]:
        file.chmod(0o620)
    for file in found[1::2]:
        target = tmp_path / f"{file.name}.elsewhere"
        file.rename(target)
        file.symlink_to(target)
    edit(tmp_path, 5, "Rewritten twice.")
    incremental(path)
    assert "web/article.html" in names
    assert_same_as_cold(path)


def test_a_folder_others_may_write_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the compiled templates' folder is writable by others, its code is not loaded."""
    path = publication(tmp_path, previews=0)
    incremental(path)
    names = compiles(monkeypatch)
    edit(tmp_path, 5, "Rewritten once.")
    incremental(path)
    assert names == []  # a folder of this user alone is used
    (tmp_path / CACHE_FOLDER / FOLDER).chmod(0o777)
    edit(tmp_path, 5, "Rewritten twice.")
    incremental(path)
    assert "web/article.html" in names
    assert_same_as_cold(path)
