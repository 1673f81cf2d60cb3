"""`publisher subscribers ...` through click's runner: output, files and exit codes."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from publisher.cli import cli
from publisher.cli import subscribers as cli_subscribers

ROOT = Path(__file__).resolve().parent.parent

CONFIG = """
[publication]
title = "Harbor Light Notes"
url = "https://notes.example.org/"

[newsletter]
from = "Dana Reyes <notes@example.org>"

[store]
url = "sqlite:///publisher.db"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), "subscribers", *args])


def test_add_then_count_prints_active_first(config: Path) -> None:
    """count's first line is the number of active subscribers."""
    assert run(config, "add", "Dana@Example.org", "--name", "Dana").exit_code == 0
    assert run(config, "add", "sam@example.org", "--tag", "Weekly").exit_code == 0
    result = run(config, "count")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == "2 active"
    assert "0 unsubscribed" in lines
    assert "1 active tagged weekly" in lines


def test_add_reports_added_then_updated(config: Path) -> None:
    """The first add says added, a second one for the same address says updated."""
    assert run(config, "add", "dana@example.org").output == "added dana@example.org (active)\n"
    again = run(config, "add", "DANA@example.org", "--timezone", "Europe/Berlin")
    assert again.output == "updated dana@example.org (active)\n"


def test_add_invalid_address_exits_1_with_the_reason(config: Path) -> None:
    """A bad address is a problem the message explains: exit code 1."""
    result = run(config, "add", "bob@")
    assert result.exit_code == 1
    assert "'bob@' is not a valid address" in result.stderr


def test_add_without_an_address_is_a_usage_error(config: Path) -> None:
    """A missing argument is click's usage error: exit code 2."""
    assert run(config, "add").exit_code == 2


def test_remove_unsubscribes_and_add_refuses_without_resubscribe(config: Path) -> None:
    """remove keeps the address off the list; --resubscribe is needed to bring it back."""
    run(config, "add", "dana@example.org")
    removed = run(config, "remove", "dana@example.org")
    assert (removed.exit_code, removed.output) == (0, "unsubscribed dana@example.org\n")
    assert run(config, "count").output.splitlines()[:3] == ["0 active", "0 pending", "1 unsubscribed"]
    refused = run(config, "add", "dana@example.org")
    assert refused.exit_code == 1
    assert "--resubscribe" in refused.stderr
    assert run(config, "add", "dana@example.org", "--resubscribe").exit_code == 0


def test_remove_purge_erases(config: Path) -> None:
    """--purge deletes the address entirely."""
    run(config, "add", "dana@example.org")
    assert run(config, "remove", "dana@example.org", "--purge").output == "erased dana@example.org\n"
    assert run(config, "count").output.splitlines()[:3] == ["0 active", "0 pending", "0 unsubscribed"]


def test_remove_unknown_address_exits_1(config: Path) -> None:
    """Removing someone who is not there is reported, not ignored."""
    result = run(config, "remove", "nobody@example.org")
    assert result.exit_code == 1
    assert "no subscriber with address nobody@example.org" in result.stderr


def test_list_prints_tab_separated_lines_into_a_pipe(config: Path) -> None:
    """Outside a terminal, list streams one tab-separated line per subscriber."""
    run(config, "add", "a@example.org", "--name", "Ana", "--tag", "x")
    run(config, "add", "b@example.org", "--pending")
    result = run(config, "list", "--status", "active")
    assert result.exit_code == 0
    [line] = result.output.splitlines()
    fields = line.split("\t")
    assert fields[:5] == ["a@example.org", "Ana", "active", "x", ""]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", fields[5])


def test_list_draws_a_table_on_a_terminal(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal, list shows a rich table with a header."""
    monkeypatch.setattr(cli_subscribers, "_stdout_is_terminal", lambda: True)
    run(config, "add", "a@example.org", "--tag", "clinicians")
    run(config, "add", "b@example.org")
    result = run(config, "list", "--tag", "clinicians")
    assert result.exit_code == 0
    assert "email" in result.output.splitlines()[0]
    assert "a@example.org" in result.output
    assert "b@example.org" not in result.output


def test_list_rejects_an_unknown_status(config: Path) -> None:
    """--status takes only the five statuses: exit code 2 otherwise."""
    assert run(config, "list", "--status", "happy").exit_code == 2


def test_import_prints_counts_and_each_rejected_line(config: Path, tmp_path: Path) -> None:
    """import reports imported, updated and rejected, and every rejected row by line."""
    run(config, "add", "old@example.org")
    path = tmp_path / "list.csv"
    path.write_text(
        "Email Address,First Name,Last Name,TAGS\n"
        "ana@example.org,Ana,Ruiz,\n"
        "bob@,Bob,,\n"
        "old@example.org,Olive,,\n",
        encoding="utf-8",
    )
    result = run(config, "import", str(path), "--tag", "imported")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == f"{path}: read as a Mailchimp export"
    assert "imported 1 (1 active)" in lines
    assert "updated 1" in lines
    assert "rejected 1" in lines
    assert lines[-1].startswith("line 3: 'bob@' is not a valid address: ")


def test_import_pending_keeps_them_pending(config: Path, tmp_path: Path) -> None:
    """--pending imports new addresses as pending."""
    path = tmp_path / "list.csv"
    path.write_text("email\nana@example.org\n", encoding="utf-8")
    assert run(config, "import", str(path), "--pending").exit_code == 0
    assert run(config, "count").output.splitlines()[:2] == ["0 active", "1 pending"]


def test_import_of_a_missing_file_is_a_usage_error(config: Path, tmp_path: Path) -> None:
    """A FILE that does not exist is rejected by click: exit code 2."""
    assert run(config, "import", str(tmp_path / "missing.csv")).exit_code == 2


def test_import_without_an_email_column_exits_1(config: Path, tmp_path: Path) -> None:
    """A CSV with no address column is explained and nothing is imported."""
    path = tmp_path / "list.csv"
    path.write_text("name\nAna\n", encoding="utf-8")
    result = run(config, "import", str(path))
    assert result.exit_code == 1
    assert "no address column" in result.stderr


def test_demo_subscribers_import_cleanly(config: Path) -> None:
    """The README demo's fictional subscribers all import as active."""
    result = run(config, "import", str(ROOT / "demo" / "subscribers.csv"))
    assert result.exit_code == 0
    assert "rejected 0" in result.output
    assert run(config, "count").output.splitlines()[0] == "5 active"


def test_export_to_stdout_neutralises_formulas(config: Path) -> None:
    """export writes CSV to standard output, formulas defused."""
    run(config, "add", "a@example.org", "--name", "=cmd|' /C calc'!A0")
    result = run(config, "export")
    assert result.exit_code == 0
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["email", "name", "status", "tags", "timezone", "created_at", "confirmed_at", "source",
                       "opted_in_at", "consent_text"]
    assert rows[1][:3] == ["a@example.org", "'=cmd|' /C calc'!A0", "active"]


def test_export_to_a_file_writes_it_whole(config: Path, tmp_path: Path) -> None:
    """export FILE writes the file (via a temporary file) and says how many rows."""
    run(config, "add", "a@example.org")
    run(config, "add", "b@example.org")
    target = tmp_path / "out.csv"
    result = run(config, "export", str(target), "--status", "active")
    assert result.exit_code == 0
    assert "exported 2 subscribers" in result.stderr
    assert len(target.read_text(encoding="utf-8").splitlines()) == 3
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.csv")] == []


@pytest.mark.parametrize("codec", ["latin-1", "cp1252", "utf-16"])
def test_import_reads_the_encoding_the_file_was_saved_in(config: Path, tmp_path: Path, codec: str) -> None:
    """A list saved by a spreadsheet in Latin-1, Windows-1252 or UTF-16 keeps its accents."""
    path = tmp_path / "list.csv"
    path.write_bytes("email,name\r\nj@example.org,José Müller\r\nz@example.org,Zoë Ørsted\r\n".encode(codec))
    result = run(config, "import", str(path))
    assert result.exit_code == 0, result.output
    listed = run(config, "list").output
    assert "José Müller" in listed and "Zoë Ørsted" in listed


def test_import_of_a_binary_file_says_so_in_one_line(config: Path, tmp_path: Path) -> None:
    """A workbook or other binary file is refused with one line, and nothing is imported."""
    path = tmp_path / "list.xlsx"
    path.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 20)
    result = run(config, "import", str(path))
    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    assert "not a CSV file but a zip archive or an Excel workbook" in result.output


def test_import_twice_reports_unchanged(config: Path, tmp_path: Path) -> None:
    """Re-importing the same file says unchanged, not updated."""
    path = tmp_path / "list.csv"
    path.write_text("email,name\na@example.org,Ann\n", encoding="utf-8")
    run(config, "import", str(path))
    lines = run(config, "import", str(path)).output.splitlines()
    assert "updated 0" in lines and "unchanged 1" in lines


def test_a_long_import_shows_progress_on_a_terminal(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal a big file gets a progress bar; off one, only the summary."""
    from rich.console import Console

    path = tmp_path / "big.csv"
    path.write_text("email,name\n" + "".join(f"reader{i}@example.org,Reader Number {i}\n" for i in range(8000)))
    assert path.stat().st_size >= cli_subscribers.PROGRESS_BYTES
    screen = io.StringIO()
    monkeypatch.setattr(cli_subscribers, "_progress_console", lambda: Console(file=screen, force_terminal=True))
    result = run(config, "import", str(path))
    assert result.exit_code == 0, result.output
    assert "importing big.csv" in screen.getvalue()
    assert "imported 8000" in result.output
    assert "importing" not in result.output
