"""A build of the same articles in the same order plans only the archive pages an edit can
change: the others are recorded, and what they are is what a full plan would give."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_build_cache import assert_same_as_cold, incremental, publication, text

from publisher import content
from publisher.config import Config, load_config
from publisher.errors import BuildError
from publisher.models import Article
from publisher.site import archive, outputs
from publisher.site.build import planning
from publisher.site.build_cache import PlanSnapshot, RenderRecord

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def plan(config: Config, articles: list[Article], previous: PlanSnapshot | None = None) -> outputs.SitePlan:
    return planning._plan_site(config, articles, NOW, outputs.InMemory(), previous=previous)


def keys(site: outputs.SitePlan) -> dict[str, str]:
    return {path: item.key for item in site.outputs() for path in item.paths}


def recorded(site: outputs.SitePlan) -> list[str]:
    return [path for item in site.items if isinstance(item, outputs.Recorded) for path in item.paths]


def edited(articles: list[Article], number: int, kind: str, step: int) -> list[Article]:
    """`articles` with the one at `number` changed: its text only, or also what lists show."""
    changed = list(articles)
    article = changed[number % len(changed)]
    if kind == "body":
        article = replace(article, html=f"{article.html}<p>Edit {step}.</p>")
    elif kind == "title":
        article = replace(article, title=f"Title {step}")
    else:
        article = replace(article, summary=f"Summary {step}.")
    changed[number % len(changed)] = article
    return changed


EDITS = st.lists(
    st.tuples(st.sampled_from(["body", "title", "summary"]), st.integers(min_value=0, max_value=11)),
    min_size=1,
    max_size=3,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=EDITS)
def test_the_pages_left_unplanned_keep_the_keys_a_full_plan_gives(tmp_path: Path, edits: list[tuple[str, int]]) -> None:
    """Every page an edit leaves unplanned has the key it had, and every planned one the
    key a full plan gives it: the shortcut plans the pages whose inputs changed."""
    path = tmp_path / "config.toml"
    if not path.exists():
        publication(tmp_path)
    config = load_config(path, env={})
    articles = content.load_articles(config)
    before = plan(config, articles)
    for step, (kind, number) in enumerate(edits):
        articles = edited(articles, number, kind, step)
    after = plan(config, articles, before.snapshot)
    full = plan(config, articles)
    assert recorded(after), "an edit of the same articles leaves pages unplanned"
    assert sorted(after.paths()) == sorted(full.paths())
    assert [item for item in after.items if isinstance(item, str)] == [i for i in full.items if isinstance(i, str)]
    assert all(keys(full)[path] == key for path, key in keys(after).items())
    assert all(keys(before)[path] == keys(full)[path] for path in recorded(after))
    assert after.snapshot == full.snapshot


def test_a_body_edit_plans_the_page_and_the_lists_showing_it(tmp_path: Path) -> None:
    """A new paragraph plans the article's page and its list pages, not its neighbours'."""
    config = load_config(publication(tmp_path), env={})
    articles = content.load_articles(config)
    before = plan(config, articles)
    # Newest first, 4 a page: a05 is on page 2 of the index, and its tag "habits" lists
    # a11, a08, a05, a02 on one page.
    after = plan(config, edited(articles, 6, "body", 0), before.snapshot)
    archive = {path for item in after.outputs() if item.stage == "archive pages" for path in item.paths}
    assert [a.slug for a in articles][6] == "a05"
    assert archive == {"a05/index.html", "page/2/index.html", "tags/habits/index.html"}


def test_a_new_title_plans_the_neighbours_sitemap_and_search(tmp_path: Path) -> None:
    """What lists show changed: the neighbours' pages, the sitemap and the search index too."""
    config = load_config(publication(tmp_path), env={})
    articles = content.load_articles(config)
    after = plan(config, edited(articles, 6, "title", 0), plan(config, articles).snapshot)
    archive = {path for item in after.outputs() if item.stage == "archive pages" for path in item.paths}
    assert archive == {
        "a04/index.html",
        "a05/index.html",
        "a06/index.html",
        "page/2/index.html",
        "tags/habits/index.html",
        "sitemap.xml",
        "search.json",
    }


@pytest.mark.parametrize(
    ("change", "shortcut"),
    [
        ("body", True),
        ("retitle", True),
        ("change tag", False),
        ("move date", False),
        ("delete", False),
        ("new", False),
        ("template", False),
    ],
)
def test_each_kind_of_edit_builds_what_a_cold_build_does(tmp_path: Path, change: str, shortcut: bool) -> None:
    """Same articles in the same order: pages recorded; anything else: everything planned;
    either way the site is a cold build's."""
    path = publication(tmp_path)
    incremental(path)
    articles = tmp_path / "content"
    if change == "body":
        (articles / "a05.md").write_text(text(5, body="Rewritten body."), encoding="utf-8")
    elif change == "retitle":
        (articles / "a05.md").write_text(text(5, title="A new title"), encoding="utf-8")
    elif change == "change tag":
        (articles / "a05.md").write_text(text(5, tags=("winter",)), encoding="utf-8")
    elif change == "move date":
        # From page 2 of the index to the last place, on page 3.
        (articles / "a05.md").write_text(text(5).replace("2026-01-06", "2025-12-20"), encoding="utf-8")
    elif change == "delete":
        (articles / "a05.md").unlink()
    elif change == "new":
        (articles / "a20.md").write_text(text(20), encoding="utf-8")
    else:
        (tmp_path / "templates" / "web").mkdir(parents=True)
        shipped = outputs.default_templates_dir() / "web" / "article.html"
        (tmp_path / "templates" / "web" / "article.html").write_text(
            shipped.read_text().replace("<article", "<article data-edited"), encoding="utf-8"
        )
    planned: list[outputs.SitePlan] = []
    real = planning._plan_site

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        planned.append(real(*args, **kwargs))
        return planned[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("publisher.site.build.writing._plan_site", spy)
        report, _cache = incremental(path)
    assert report.written or report.removed
    assert (len(planned), bool(recorded(planned[-1]))) == (1, shortcut)
    assert_same_as_cold(path)


def test_a_recorded_page_changed_by_hand_plans_everything(tmp_path: Path) -> None:
    """A page left unplanned whose file was changed in place sends the build back to a full
    plan, which renders that page again."""
    path = publication(tmp_path)
    incremental(path)
    page = tmp_path / "public" / "a09" / "index.html"
    shipped = page.read_bytes()
    with page.open("r+b") as handle:  # in place: the same inode
        handle.write(b"<!-- by hand -->")
    (tmp_path / "content" / "a05.md").write_text(text(5, body="Rewritten body."), encoding="utf-8")
    report, _cache = incremental(path)
    assert "a09/index.html" in report.written
    assert page.read_bytes() == shipped
    assert_same_as_cold(path)


def test_a_record_without_a_snapshot_plans_everything_and_keeps_one(tmp_path: Path) -> None:
    """A record from before snapshots (or a damaged one) costs one full plan, no wrong page."""
    path = publication(tmp_path)
    incremental(path)
    config = load_config(path, env={})
    output = tmp_path / "public"
    current = output.resolve().name
    record = RenderRecord.load(config, output, outputs.base_key(config), current)
    assert record is not None and record.plan is not None
    replace(record, plan=None).save(config, output, outputs.base_key(config))
    (tmp_path / "content" / "a05.md").write_text(text(5, body="Rewritten body."), encoding="utf-8")
    incremental(path)
    assert_same_as_cold(path)
    again = RenderRecord.load(config, output, outputs.base_key(config), output.resolve().name)
    assert again is not None and again.plan is not None


def test_the_same_slugs_are_not_checked_again_but_a_shared_id_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slugs a build accepted, in the same order, are not matched again; an edit giving an
    article another's id is refused all the same, in the words of the full check."""
    config = load_config(publication(tmp_path), env={})
    articles = content.load_articles(config)
    before = plan(config, articles)
    matched: list[str] = []
    real = planning._SLUG

    class Counted:
        def match(self, slug: str) -> object:
            matched.append(slug)
            return real.match(slug)

    monkeypatch.setattr(planning, "_SLUG", Counted())
    plan(config, edited(articles, 6, "body", 0), before.snapshot)
    assert matched == []
    twin = list(articles)
    twin[6] = replace(twin[6], id=twin[5].id)
    with pytest.raises(BuildError) as shortcut:
        plan(config, twin, before.snapshot)
    with pytest.raises(BuildError) as full:
        plan(config, twin)
    assert str(shortcut.value) == str(full.value)
    assert "already used by" in str(full.value)


@pytest.mark.parametrize("kind", ["body", "title"])
def test_a_sitemap_in_parts_is_planned_or_recorded_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Past the sitemap's limit its parts and index are named without planning them, and an
    edit plans them exactly when a full plan gives them new keys."""
    monkeypatch.setattr(archive, "SITEMAP_LIMIT", 5)
    config = load_config(publication(tmp_path), env={})
    articles = content.load_articles(config)
    before = plan(config, articles)
    parts = sorted(path for path in before.paths() if path.startswith("sitemap"))
    assert parts == ["sitemap.xml", *(f"sitemaps/sitemap-{number}.xml" for number in range(1, 5))]
    after = plan(config, edited(articles, 6, kind, 0), before.snapshot)
    full = plan(config, edited(articles, 6, kind, 0))
    assert sorted(after.paths()) == sorted(full.paths())
    assert all(keys(full)[path] == key for path, key in keys(after).items())
    assert all(keys(before)[path] == keys(full)[path] for path in recorded(after))
    assert set(parts) & set(keys(after)) == (set(parts) if kind == "title" else set())
