"""A build after one edit does the work of that edit: each article file looked at once,
the site's tags gathered in one pass."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_build_cache import NOW, Counter, assert_same_as_cold, incremental, publication, text

from publisher import content
from publisher.config import load_config
from publisher.models import Article
from publisher.site import build_cache, feeds
from publisher.site.build_cache import ArticleCache


def warm_build(path: Path) -> ArticleCache:
    """The articles read as `publisher build` reads them (looked at by `warm`, then `read`)."""
    config = load_config(path, env={})
    cache = ArticleCache(config)
    try:
        files = content.article_files(config)
        cache.warm(files)
        content.load_articles(config, reader=cache.read, files=files)
    finally:
        cache.save()
    return cache


def test_one_edit_looks_at_each_article_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After one edit, every article file's stat is taken once, not once by `warm` and again by `read`."""
    path = publication(tmp_path)
    warm_build(path)
    (tmp_path / "content" / "a05.md").write_text(text(5, body="Edited."), encoding="utf-8")
    looks: list[str] = []
    real = os.lstat

    def lstat(name: str | os.PathLike[str], *args: object, **kwargs: object) -> os.stat_result:
        if os.fspath(name).endswith(".md"):
            looks.append(os.path.basename(os.fspath(name)))
        return real(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "lstat", lstat)
    cache = warm_build(path)
    assert cache.parsed == 1
    assert sorted(looks) == [f"a{number:02d}.md" for number in range(12)]


def test_many_changed_files_are_looked_at_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past a few changed files, the rest are looked at together, so that the workers can parse them."""
    monkeypatch.setattr(build_cache, "_MISSES", 3)
    path = publication(tmp_path)
    warm_build(path)
    for number in range(12):
        (tmp_path / "content" / f"a{number:02d}.md").write_text(text(number, body=f"Now {number}."), encoding="utf-8")
    looked: list[int] = []
    real = ArticleCache._look

    def look(self: ArticleCache, files: list[tuple[Path, str]], least: int) -> None:
        looked.append(len(files))
        real(self, files, least)

    monkeypatch.setattr(ArticleCache, "_look", look)
    cache = warm_build(path)
    assert looked == [0, 9]  # nothing new at first; the nine after the third change at once
    assert cache.parsed == 12
    config = load_config(path, env={})
    assert [a.title for a in content.load_articles(config, reader=cache.read)] == [
        a.title for a in content.load_articles(config)
    ]


TAG_NAMES = st.sampled_from(["Sleep", "sleep", "Sleep & Rest", "sleep-rest", "C++", "C#", "睡眠", "grief", "!!"])


@given(st.lists(st.lists(TAG_NAMES, max_size=4), max_size=12))
def test_the_tag_index_is_the_three_passes_in_one(tag_lists: list[list[str]]) -> None:
    """`tag_index` gives what `tagged_articles`, `site_tags` and `tag_collisions` give."""
    articles = [
        Article(slug=f"a{n}", title="t", date=NOW, html="", id=f"i{n}", url=f"u{n}", tags=tuple(tags))
        for n, tags in enumerate(tag_lists)
    ]
    index = feeds.tag_index(articles)
    assert index.tagged == feeds.tagged_articles(articles)
    assert list(index.names.items()) == list(feeds.site_tags(articles).items())
    assert index.collisions == feeds.tag_collisions(articles)


def test_one_edit_writes_only_the_changes_of_the_index(tmp_path: Path) -> None:
    """After one edit the article index and the files' record stay as they were; their changes go beside them."""
    path = publication(tmp_path)
    warm_build(path)
    cache_folder = tmp_path / build_cache.CACHE_FOLDER
    before = {name: (cache_folder / name).stat().st_ino for name in ("articles.json", "files.json")}
    (tmp_path / "content" / "a05.md").write_text(text(5, body="Edited."), encoding="utf-8")
    assert warm_build(path).parsed == 1
    assert {name: (cache_folder / name).stat().st_ino for name in before} == before
    assert (cache_folder / "articles-changes.json").stat().st_size < (cache_folder / "articles.json").stat().st_size
    assert warm_build(path).parsed == 0


def test_many_changes_write_the_index_whole_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past `CHANGES_MOST` changed entries the index is written whole and its changes file goes."""
    monkeypatch.setattr(build_cache, "CHANGES_MOST", 2)
    path = publication(tmp_path)
    warm_build(path)
    cache_folder = tmp_path / build_cache.CACHE_FOLDER
    (tmp_path / "content" / "a01.md").write_text(text(1, body="Edited."), encoding="utf-8")
    warm_build(path)  # one entry gone, one new: two changes
    assert (cache_folder / "articles-changes.json").exists()
    (tmp_path / "content" / "a02.md").write_text(text(2, body="Edited."), encoding="utf-8")
    warm_build(path)
    assert not (cache_folder / "articles-changes.json").exists()
    assert warm_build(path).parsed == 0


def test_changes_of_another_index_file_are_not_applied(tmp_path: Path) -> None:
    """Changes written against an index that has been written whole since are ignored, not merged."""
    path = publication(tmp_path)
    warm_build(path)
    cache_folder = tmp_path / build_cache.CACHE_FOLDER
    (tmp_path / "content" / "a05.md").write_text(text(5, body="Edited."), encoding="utf-8")
    warm_build(path)
    changes = (cache_folder / "articles-changes.json").read_bytes()
    index = cache_folder / "articles.json"
    index.write_bytes(index.read_bytes())  # the same entries, another file: the changes name the old one
    (cache_folder / "articles-changes.json").write_bytes(changes)
    assert warm_build(path).parsed == 1  # the edited file's entry was in the changes: parsed again


def test_one_edit_writes_only_the_changes_of_the_render_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After one edit the record of rendered files stays, its changes beside it; the next build renders nothing."""
    path = publication(tmp_path)
    incremental(path)
    [record] = (tmp_path / build_cache.CACHE_FOLDER).glob("renders-*.json")
    inode = record.stat().st_ino
    (tmp_path / "content" / "a05.md").write_text(text(5, body="Edited."), encoding="utf-8")
    assert incremental(path)[0].written
    assert record.stat().st_ino == inode
    counter = Counter(monkeypatch)
    assert not incremental(path)[0].written
    assert (counter.pages, counter.feeds, counter.previews) == ([], 0, [])
    assert_same_as_cold(path)


def test_a_big_file_takes_changes_up_to_a_sixteenth_of_its_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file of 64 entries keeps 4 changes beside it, not written whole, and reads back with them."""
    monkeypatch.setattr(build_cache, "CHANGES_MOST", 2)
    path = tmp_path / "map.json"
    base = {f"e{number}": number for number in range(64)}
    build_cache._save_map(path, "test", "code", base, build_cache._NO_MAP)
    whole = path.read_bytes()
    changed = {**base, "e1": -1, "e2": -2, "e3": -3, "e4": -4}
    build_cache._save_map(path, "test", "code", changed, build_cache._load_map(path, "test", "code"))
    assert path.read_bytes() == whole
    assert build_cache._load_map(path, "test", "code").entries == changed


def test_the_render_record_keeps_only_the_warnings_outputs_gave(tmp_path: Path) -> None:
    """The record holds warnings for the one output that gave any (not an empty list for each
    of the others), and a build that keeps that output still tells its warning."""
    path = publication(tmp_path)
    path.write_text(path.read_text().replace('postal_address = "120 Wharf Street, Portland, ME 04101, USA"\n', ""))
    first, _cache = incremental(path)
    [record] = (tmp_path / build_cache.CACHE_FOLDER).glob("renders-*.json")
    entries = json.loads(record.read_bytes())["payload"]
    assert [name[:2] for name in entries].count("n/") == 1
    (tmp_path / "content" / "a05.md").write_text(text(5, body="Edited."), encoding="utf-8")
    again, _cache = incremental(path)
    assert again.written and "a05/index.html" in again.written
    assert [w for w in again.warnings if "postal_address" in w] == [w for w in first.warnings if "postal_address" in w]
    assert len([w for w in first.warnings if "postal_address" in w]) == 1
    assert_same_as_cold(path)
