"""publisher migrate listmonk: campaigns from the API's JSON or a database dump, never sent again."""

from __future__ import annotations

import asyncio
import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from publisher.cli import cli
from publisher.config import Config, load_config
from publisher.content.exports import ExportFiles, listmonk, pg_dump
from publisher.errors import SourceError
from publisher.services import migration
from publisher.store import open_store, publishing

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
LISTMONK = Path(__file__).parent / "data" / "exports" / "listmonk"
WELCOME = "2024-03-05-welcome-to-harbor-notes.md"


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        textwrap.dedent(
            """
            [publication]
            title = "Harbor Notes"
            url = "https://notes.example.org/"
            timezone = "UTC"
            author = "Dana Reyes"
            postal_address = "1 Wharf Street, Portland, ME"
            [newsletter]
            from = "Notes <notes@example.org>"
            [store]
            url = "sqlite:///publisher.db"
            [fetch]
            timeout = 3.0
            """
        ),
        encoding="utf-8",
    )
    return path


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load_config(write_config(tmp_path), env={})


def migrate(config: Config, path: Path) -> migration.Plan:
    db = open_store(config.store_url)
    planned = migration.plan(config, db, "listmonk", migration.open_export(path))
    return migration.apply(config, db, planned, now=NOW)


def text_of(config: Config, name: str) -> str:
    return (config.path_of("build.content") / name).read_text(encoding="utf-8")


def dump(text: str) -> ExportFiles:
    return ExportFiles("listmonk.sql", {"listmonk.sql": textwrap.dedent(text).encode()})


def test_api_pages_move_in_every_campaign_once(config: Config) -> None:
    """Two overlapping pages of GET /api/campaigns: six campaigns in, the one without a date refused."""
    done = migrate(config, LISTMONK / "api")
    assert (done.count("created"), done.count("refused"), done.records) == (6, 1, 7)
    assert done.refused[0][0] == "campaigns-page-2.json: data.results[4]"
    assert "no date" in done.refused[0][1]


def test_finished_campaign_is_published_and_marked_mailed_to_its_lists(config: Config) -> None:
    """A finished campaign is public, never mailed again, and its notes name the lists it went to."""
    done = migrate(config, LISTMONK / "api")
    text = text_of(config, "2024-03-12-spring-tides.md")
    assert "draft: true" not in text and "tags: [tides]" in text and "author: Dana Reyes" in text
    step = next(s for s in done.articles if s.key.endswith("0002"))
    assert "mailed by listmonk to Weekly, Members on 2024-03-12" in step.notes[0]
    seen = publishing.seen_ids(open_store(config.store_url))
    from publisher import content

    articles = {a.slug: a for a in content.load_articles(config)}
    assert {articles[s].id for s in ("spring-tides", "welcome-to-harbor-notes", "a-note-for-members")} <= seen


def test_drafts_and_scheduled_campaigns_become_drafts_that_no_policy_mails(config: Config) -> None:
    """A draft and a scheduled campaign are drafts here, and are not recorded as mailed."""
    done = migrate(config, LISTMONK / "api")
    assert "draft: true" in text_of(config, "2024-04-01-fog-season.md")
    assert "draft: true" in text_of(config, "2024-07-01-the-lighthouse-keeper.md")
    step = next(s for s in done.articles if s.key.endswith("0005"))
    assert "was scheduled in listmonk for 2024-07-01 09:00 UTC" in step.notes[0]


def test_a_cancelled_campaign_that_went_out_in_part_is_never_mailed_again(config: Config) -> None:
    """Cancelled after 40 of 120 copies: a draft, recorded as mailed, and the note says so."""
    done = migrate(config, LISTMONK / "api")
    step = next(s for s in done.articles if s.key.endswith("0006"))
    assert "listmonk cancelled it after 40 of 120 copies to Weekly" in step.notes[0]
    assert "draft: true" in text_of(config, "2024-04-10-storm-warning.md")
    from publisher import content

    storm = next(a for a in content.load_articles(config) if a.slug == "storm-warning")
    assert storm.id in publishing.seen_ids(open_store(config.store_url))


def test_template_expressions_are_handled(config: Config) -> None:
    """TrackLink becomes the plain URL, the unsubscribe link goes, and the removed expressions are named."""
    done = migrate(config, LISTMONK / "api")
    text = text_of(config, WELCOME)
    assert "[tide tables](https://example.org/tides)" in text
    assert "[old charts](https://example.org/charts)" in text
    assert "{{" not in text and "TrackLink" not in text and "Unsubscribe" not in text and "·" not in text
    assert "### Hi!" in text
    step = next(s for s in done.articles if s.key.endswith("0001"))
    removed = next(n for n in step.notes if n.startswith("listmonk template expressions removed"))
    for name in ("the UnsubscribeURL link", "the MessageURL link", ".Subscriber.FirstName", "TrackView"):
        assert name in removed


def test_markdown_campaign_keeps_its_conditional_text_and_says_so(config: Config) -> None:
    """`{{ if }} ... {{ end }}` goes, its text stays, and the note says it is kept for every reader."""
    done = migrate(config, LISTMONK / "api")
    text = text_of(config, "2024-03-12-spring-tides.md")
    assert "Portland readers: the lowest water is on Friday." in text and "Hello," in text
    assert "[the chart](https://example.org/chart)" in text and "it's the moon's pull" in text
    step = next(s for s in done.articles if s.key.endswith("0002"))
    assert any("{{ if }}, {{ end }} (the text inside is kept for every reader)" in n for n in step.notes)


def test_archive_slugs_answer_301_from_the_app(config: Config) -> None:
    """/archive/<slug> and /archive/<uuid> of an archived campaign lead to the article."""
    from publisher.web.app import create_app

    migrate(config, LISTMONK / "api")
    app = create_app(config, provider_factory=lambda c: None)  # type: ignore[arg-type,return-value]

    async def ask(paths: list[str]) -> list[tuple[int, str]]:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            answers = [await client.get(path) for path in paths]
        return [(r.status_code, r.headers.get("location", "")) for r in answers]

    paths = ["/archive/welcome-to-harbor-notes", "/archive/6c1b0d9e-0000-4000-8000-000000000001",
             "/archive/spring-tides"]
    assert asyncio.run(ask(paths)) == [(301, "/welcome-to-harbor-notes/"), (301, "/welcome-to-harbor-notes/"),
                                       (301, "/spring-tides/")]


def test_copy_and_insert_dumps_read_as_the_api_does() -> None:
    """The same campaigns from pg_dump's COPY, from --inserts and from the API become the same articles."""
    def articles(path: Path) -> dict[str, object]:
        batch = listmonk.read_articles(migration.open_export(path))
        return {a.key: (a.article, a.old_paths, a.draft, a.emailed, a.notes) for a in batch.articles}

    copied = articles(LISTMONK / "dump" / "listmonk.copy.sql")
    inserted = articles(LISTMONK / "dump" / "listmonk.inserts.sql")
    api = articles(LISTMONK / "api")
    assert len(copied) == 3 and copied == inserted
    assert all(copied[key] == api[key] for key in copied)


def test_a_dump_folder_reads_each_campaign_once(config: Config) -> None:
    """The COPY and the INSERT dump side by side: three articles, three redirects made, not six."""
    done = migrate(config, LISTMONK / "dump")
    assert (done.count("created"), done.records, done.redirects.created) == (3, 3, 4)


def test_running_twice_changes_nothing(config: Config) -> None:
    """A second run finds every campaign moved in already."""
    migrate(config, LISTMONK / "api")
    before = {p.name: p.read_bytes() for p in config.path_of("build.content").glob("*.md")}
    again = migrate(config, LISTMONK / "api")
    assert (again.count("created"), again.count("unchanged"), again.redirects.created) == (0, 6, 0)
    assert {p.name: p.read_bytes() for p in config.path_of("build.content").glob("*.md")} == before


def test_a_dump_s_subscribers_move_in_with_their_lists_and_status(config: Config) -> None:
    """A dump's subscribers: lists become topics, blocklisted and unsubscribed from every list stay off the list."""
    from publisher.models import SubscriberStatus as S
    from publisher.store import subscribers as subscriber_store

    done = migrate(config, LISTMONK / "dump" / "listmonk.copy.sql")
    assert (done.readers.created, len(done.readers.refused)) == (4, 0)
    assert "readers read from listmonk.copy.sql (its subscribers)" in done.notes
    db = open_store(config.store_url)
    found = {email: subscriber_store.find(db, email) for email in
             ("wes@example.org", "xia@example.org", "lia@example.org", "max@example.org")}
    assert found["lia@example.org"].status is S.ACTIVE and set(found["lia@example.org"].tags) == {"weekly", "members"}
    assert found["xia@example.org"].status is S.UNSUBSCRIBED and found["xia@example.org"].name == "Xia O'Neill"
    assert found["max@example.org"].status is S.UNSUBSCRIBED


def test_copy_and_insert_dumps_give_the_same_readers() -> None:
    """pg_dump's COPY and --inserts of the same database: the same subscribers, named by their row."""
    from publisher.content.exports.readers import read_readers

    def readers(name: str) -> list[tuple[object, ...]]:
        batch = read_readers("listmonk", migration.open_export(LISTMONK / "dump" / name))
        return [(r.email, r.name, r.status, r.tags, r.created_at, r.record.split(": ", 1)[1]) for r in batch.readers]

    assert readers("listmonk.copy.sql") == readers("listmonk.inserts.sql")
    assert readers("listmonk.copy.sql")[0][-1] == "subscribers row 1"


def test_dump_statements_are_read_never_run() -> None:
    """Statements around the data (a DROP, a COPY FROM PROGRAM) are passed over; only rows are read."""
    tables = pg_dump.read_tables(
        textwrap.dedent(
            """\
            DROP TABLE public.campaigns;
            COPY public.subscribers (id, email) FROM PROGRAM 'rm -rf /';
            COPY public.campaign_lists (id, campaign_id, list_id, list_name) FROM stdin;
            1\t1\t\\N\tOld list\\twith a tab
            \\.
            """
        ),
        {"campaign_lists": ("id", "campaign_id", "list_id", "list_name")},
        where="dump.sql",
    )
    assert tables == {"campaign_lists": [{"id": "1", "campaign_id": "1", "list_id": None,
                                          "list_name": "Old list\twith a tab"}]}


def test_a_copy_without_its_end_names_the_line() -> None:
    """A COPY block cut off (no `\\.`) is refused, naming the COPY's line."""
    files = dump(
        """\
        SET client_encoding = 'UTF8';
        COPY public.campaign_lists (id, campaign_id, list_id, list_name) FROM stdin;
        1\t1\t1\tWeekly
        """
    )
    with pytest.raises(SourceError, match=r"listmonk\.sql: line 2: the COPY of campaign_lists never ends"):
        listmonk.read_articles(files)


def test_a_copy_row_with_missing_fields_names_the_line() -> None:
    """A row with fewer fields than the COPY names is refused with its line."""
    files = dump(
        """\
        COPY public.campaign_lists (id, campaign_id, list_id, list_name) FROM stdin;
        1\t1\t1\tWeekly
        2\t1
        \\.
        """
    )
    with pytest.raises(SourceError, match=r"line 3: a campaign_lists row with 2 fields, but the COPY on line 1"):
        listmonk.read_articles(files)


def test_a_string_that_never_closes_names_the_line() -> None:
    """An INSERT whose string runs off the end of the file is refused with the line it starts on."""
    files = dump(
        """\
        SET client_encoding = 'UTF8';

        INSERT INTO public.campaign_lists VALUES (1, 1, 1, 'Weekly);
        """
    )
    with pytest.raises(SourceError, match=r"listmonk\.sql: line 3: a string that never closes"):
        listmonk.read_articles(files)


def test_an_insert_of_another_schema_says_how_to_dump_it() -> None:
    """An INSERT without column names and with a column count of another listmonk version names the line."""
    files = dump("INSERT INTO public.campaigns VALUES (1, 'abc', 'name');\n")
    with pytest.raises(SourceError, match=r"line 1: a campaigns row with 3 values, but 28 columns "
                                          r"\(dump it with --column-inserts, or as COPY\)"):
        listmonk.read_articles(files)


def test_column_inserts_with_casts_and_several_rows_are_read() -> None:
    """`--column-inserts` with several rows a statement and `::type` casts reads each row."""
    tables = pg_dump.read_tables(
        "INSERT INTO public.campaign_lists (id, campaign_id, list_id, list_name) VALUES\n"
        "  (1, 1, NULL, 'It''s weekly'::text),\n  (2, 1, 2, E'Two\\nlines');\n",
        {"campaign_lists": ("id", "campaign_id", "list_id", "list_name")}, where="dump.sql",
    )
    assert [r["list_name"] for r in tables["campaign_lists"]] == ["It's weekly", "Two\nlines"]
    assert tables["campaign_lists"][0]["list_id"] is None


def test_array_literals_read_quoted_items() -> None:
    """PostgreSQL arrays: plain, quoted with commas and quotes inside, NULL, empty."""
    assert pg_dump.array('{intro,"two words","a, b","say \\"hi\\"",NULL}') == [
        "intro", "two words", "a, b", 'say "hi"']
    assert pg_dump.array("{}") == [] and pg_dump.array(None) == []


def test_subscribers_json_is_not_taken_for_campaigns() -> None:
    """GET /api/subscribers saved by mistake is refused, saying what to save instead."""
    answer = {"data": {"results": [{"id": 1, "uuid": "u", "email": "a@example.org", "status": "enabled"}]}}
    files = ExportFiles("subscribers.json", {"subscribers.json": json.dumps(answer).encode()})
    with pytest.raises(SourceError, match=r"subscribers\.json: its results have no subject"):
        listmonk.read_articles(files)


def test_cli_dry_run_counts_campaigns_and_readers(tmp_path: Path) -> None:
    """`publisher migrate listmonk FOLDER --dry-run`: campaigns and subscribers counted, nothing written."""
    config_path = write_config(tmp_path)
    result = CliRunner().invoke(cli, ["--config", str(config_path), "migrate", "listmonk", str(LISTMONK),
                                      "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "articles: 7 read: 6 would be created, 0 updated, 0 unchanged (moved in before), 0 skipped, " \
           "1 refused" in result.output
    assert "redirects: 4 would be created" in result.output
    assert "readers: 6 would be created, 0 updated, 0 unchanged, 6 skipped, 1 refused" in result.output
    assert not (tmp_path / "content").exists() or not list((tmp_path / "content").glob("*.md"))


def test_cli_names_a_malformed_dump(tmp_path: Path) -> None:
    """A dump cut off mid-COPY is one line naming the file and the line, exit 1, nothing written."""
    config_path = write_config(tmp_path)
    bad = tmp_path / "listmonk.sql"
    whole = (LISTMONK / "dump" / "listmonk.copy.sql").read_text(encoding="utf-8")
    bad.write_text(whole[: whole.index("COPY public.campaign_lists")] + "COPY public.campaign_lists "
                   "(id, campaign_id, list_id, list_name) FROM stdin;\n1\t1\t1\tWeekly\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config_path), "migrate", "listmonk", str(bad)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "listmonk.sql: line" in result.output and "never ends" in result.output
    assert not (tmp_path / "content").exists() or not list((tmp_path / "content").glob("*.md"))
