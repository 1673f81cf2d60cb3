"""Property-based fuzzing of what authors type: article files (front matter and
Markdown) and config.toml values.

The property for each: a clear error of the project's own kind, or success; never a
traceback, and never past the per-example deadline. Example counts are bounded so the
suite stays fast in CI; HYPOTHESIS_PROFILE=deep (see conftest) runs many more.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fuzz_support import FUZZ_SCALE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher.config import SETTINGS, SOURCE_KEYS, parse_config
from publisher.content import FRONT_MATTER_KEYS, parse_article
from publisher.errors import ConfigError, ContentError
from publisher.site import build, feeds

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ROOT = Path("/publication")

CONFIG = """\
[publication]
title = "Fuzz Notes"
url = "https://notes.example.org/"
timezone = "America/New_York"

[newsletter]
from = "Fuzz <fuzz@example.org>"
"""
BASE = parse_config(CONFIG, root=ROOT, env={})

# Text that trips parsers: YAML and Markdown punctuation, control characters, line and
# paragraph separators, surrogate-looking escapes, right-to-left marks, long runs.
TRICKY = st.sampled_from([
    "---", "...", ":", ": ", "- ", "#", "*", "_", "`", "```", "~~~", "[", "]", "(", ")", "<", ">", "&",
    "{", "}", "|", "!", "\\", "\"", "'", "\n", "\r", "\r\n", "\t", "\x00", "\x0b", "\x1b", "\x7f",
    "\u2028", "\u2029", "\u202e", "\ufeff", "\ufffe", "\\ud800", "&#0;", "&#xD800;", "<script>",
    "<!--", "-->", "<![CDATA[", "]]>", "[^1]", "[^1]: x", "| a | b |\n|---|---|", "    code", "> ",
    "1. ", "![a](javascript:alert(1))", "[x](data:text/html,hi)", "<a href='//evil'>", "*" * 60,
    "[" * 200, "> " * 100, "2026-02-30", "0001-01-01", "9999-12-31 23:59", "yes", "null", "~",
    "!!python/object:os.system", "&anchor", "*anchor", "<<: *anchor", "? ", "%YAML 1.1", "title", "tags", "date",
])
TEXT = st.lists(st.one_of(TRICKY, st.text(max_size=20)), max_size=12).map("".join)
VALUES = st.one_of(
    TEXT,
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.lists(TEXT, max_size=5).map(lambda items: "[" + ", ".join(items) + "]"),
    st.dates().map(str),
    st.datetimes().map(lambda d: d.isoformat(sep=" ")),
)
KEYS = st.one_of(st.sampled_from(FRONT_MATTER_KEYS), TEXT)
FRONT = st.lists(st.tuples(KEYS, VALUES), max_size=8).map(lambda pairs: "".join(f"{k}: {v}\n" for k, v in pairs))
GOOD = "title: A title\ndate: 2026-01-05 09:30\n"

def fuzz(examples: int) -> settings:
    """`examples` generated inputs (times FUZZ_SCALE under the deep profile), no database
    of past failures in the repository, derandomised so CI runs are repeatable."""
    return settings(
        max_examples=examples * FUZZ_SCALE,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


def _article_or_error(text: str, source: str) -> None:
    try:
        article = parse_article(text, source=source, config=BASE)
    except ContentError as exc:
        assert str(exc).startswith(source), exc
        return
    # What parses must also go through the feeds and pages without a crash.
    site = build.render_site(BASE, [article], NOW)
    assert feeds.feed_path("atom") in site.files


@fuzz(150)
@given(
    front=FRONT, body=TEXT, good=st.booleans(),
    name=st.sampled_from(["post.md", "2026-02-30-x.md", "2026-01-05-y.md"]),
)
def test_article_files_parse_or_explain(front: str, body: str, good: bool, name: str) -> None:
    """Any front matter and Markdown: an Article that builds, or a ContentError naming the file."""
    text = f"---\n{GOOD if good else ''}{front}---\n\n{body}\n"
    _article_or_error(text, f"content/{name}")


@fuzz(60)
@given(raw=st.binary(max_size=400))
def test_article_bytes_parse_or_explain(raw: bytes) -> None:
    """Arbitrary bytes, decoded as load_articles decodes them, never crash the parser."""
    text = raw.decode("utf-8", "surrogateescape")
    _article_or_error(f"---\n{GOOD}---\n{text}", "content/raw.md")
    _article_or_error(text, "content/raw.md")


NUMERIC = [s for s in (*SETTINGS, *SOURCE_KEYS) if s.kind in ("int", "float")]
TOML_VALUES = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda f: {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(
        repr(f), repr(f))),
    st.booleans().map(lambda b: "true" if b else "false"),
    TEXT.map(lambda t: '"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"'),
    st.sampled_from(['"https://[x/"', '"https://h:99999/"', '"x@y.z\\r\\nBcc: a@b.c"', "[1, 2]", '["a", 1]', "{}",
                     '"Mars/Olympus"', '"../../etc"', '"/"', '"."']),
)


@fuzz(200)
@given(
    pairs=st.lists(st.tuples(st.sampled_from([*SETTINGS, *SOURCE_KEYS]), TOML_VALUES), min_size=1, max_size=4),
    bom=st.booleans(),
)
def test_config_values_parse_or_explain(pairs: list[tuple[object, str]], bom: bool) -> None:
    """Any value for any key: a Config whose numbers are in range, or a ConfigError."""
    text = CONFIG
    sources = ""
    for setting, value in pairs:
        key = setting.key  # type: ignore[attr-defined]
        if key.startswith("sources[]."):
            name = key.removeprefix("sources[].")
            sources += f'\n[[sources]]\nurl = "https://blog.example.org/feed"\n{name} = {value}\n'
            continue
        section, _, name = key.rpartition(".")
        text += f"\n[{section}]\n{name} = {value}\n"
    text += sources
    try:
        config = parse_config(("\ufeff" if bom else "") + text, root=ROOT, env={})
    except ConfigError:
        return
    for setting in NUMERIC:
        if setting.key in config.values:
            low, high = setting.range  # type: ignore[misc]
            assert low <= config[setting.key] <= high, setting.key
