"""Property-based fuzzing of subscriber CSVs: encodings, quoting, delimiters, line ends,
truncation and sizes. `subscribers import` must end with a message (exit 0 or 1), never
a traceback.
"""

from __future__ import annotations

import csv
import io

import pytest
from click.testing import CliRunner
from fuzz_support import FUZZ_SCALE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz_inputs import CONFIG, TEXT

from publisher.cli import cli
from publisher.store import open_store, subscribers


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples * FUZZ_SCALE,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )

CSV_CELLS = st.one_of(
    TEXT,
    st.emails().map(str),
    st.sampled_from(["a@example.org", "A@EXAMPLE.ORG", "bob@münchen.de", "=cmd|' /C calc'!A0", "@SUM(1)", "+1",
                     "x" * 400 + "@example.org", "", "\"", "subscribed", "unsubscribed", "cleaned", "Europe/Paris",
                     "Mars/Olympus"]),
)
HEADERS = st.lists(
    st.sampled_from(["email", "Email Address", "E-mail", "name", "First Name", "Last Name", "tags", "status",
                     "Subscribed", "timezone", "created_at", "", "email", "note"]),
    min_size=1, max_size=6,
)


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    header = draw(HEADERS)
    rows = draw(st.lists(st.lists(CSV_CELLS, min_size=0, max_size=len(header) + 2), max_size=8))
    buffer = io.StringIO()
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]))
    writer = csv.writer(buffer, quoting=quoting, delimiter=draw(st.sampled_from([",", ";", "\t"])))
    writer.writerow(header)
    for row in rows * draw(st.sampled_from([1, 1, 1, 400])):  # now and then a long file
        writer.writerow(row)
    text = buffer.getvalue()
    if draw(st.booleans()):
        text = text.replace("\r\n", draw(st.sampled_from(["\n", "\r", "\r\n"])))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252", "latin-1", "mac-roman"]))
    data = text.encode(encoding, "replace")
    if draw(st.booleans()):
        cut = draw(st.integers(min_value=0, max_value=len(data)))
        data = data[:cut] + draw(st.binary(max_size=30))
    return data


@fuzz(60)
@given(data=csv_files())
def test_subscriber_csv_imports_or_explains(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    """Any CSV in any encoding: `subscribers import` exits 0 or 1 with a message, never a
    traceback; a refused file imports nobody."""
    root = tmp_path_factory.mktemp("csv")
    (root / "config.toml").write_text(CONFIG, encoding="utf-8")
    (root / "list.csv").write_bytes(data)
    result = CliRunner().invoke(
        cli, ["--config", str(root / "config.toml"), "subscribers", "import", str(root / "list.csv")],
        env={"PUBLISHER_SECRET": "s" * 40},
    )
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 1:
        engine = open_store(f"sqlite:///{root / 'publisher.db'}")
        assert sum(subscribers.counts(engine).values()) == 0
        engine.dispose()
