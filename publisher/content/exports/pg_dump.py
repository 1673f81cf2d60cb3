"""The data of a PostgreSQL plain-text dump, read as data: never executed. Pure.

`pg_dump --data-only` writes each table as a `COPY public.t (a, b) FROM stdin;` line,
then one row a line (tab-separated, `\\N` for NULL, backslash escapes), then `\\.`;
with `--inserts` (or `--column-inserts`) it writes `INSERT INTO public.t [(a, b)] VALUES
(...), ...;` statements, whose strings may span lines. `read_tables(text, wanted)` reads
the rows of the `wanted` tables in either form, and passes over every other statement
(SET, SELECT setval, CREATE ...) without looking into it. An INSERT without its column
names takes them from `wanted` (the table's columns in order, as its schema creates them).

Values come back as text as PostgreSQL writes them (`t`/`f`, `{a,"b c"}` for an array,
JSON as text) or None; `array` reads an array literal. A row this module cannot read
(a COPY block without its `\\.`, a row with too few or too many fields, a string that
never closes, a value it does not know) raises SourceError naming the line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from publisher.errors import SourceError

__all__ = ["Row", "array", "read_tables"]

Row = dict[str, str | None]

_COPY_RE = re.compile(r'^COPY\s+(?P<table>[\w."]+)\s*(?:\((?P<cols>[^)]*)\))?\s+FROM\s+stdin;\s*$', re.IGNORECASE)
_INSERT_RE = re.compile(r'INSERT\s+INTO\s+(?P<table>[\w."]+)\s*(?:\((?P<cols>[^)]*)\))?\s*VALUES\s*', re.IGNORECASE)
_WORD_RE = re.compile(r"(?:NULL|DEFAULT|true|false|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![\w])", re.IGNORECASE)
_CAST_RE = re.compile(r'::[\w ."]+?(?:\(\d+(?:,\s*\d+)?\))?(?:\[\])*(?=\s*[,)])')
_COPY_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_COPY_ESCAPE_RE = re.compile(r"\\(?:([0-7]{1,3})|x([0-9A-Fa-f]{1,2})|(.))", re.DOTALL)


def _bare(name: str) -> str:
    """`public.campaigns`, `"public"."campaigns"` -> `campaigns`."""
    return name.replace('"', "").rsplit(".", 1)[-1].lower()


def _columns(text: str | None) -> list[str] | None:
    return [c.strip().strip('"') for c in text.split(",")] if text else None


def _copy_value(field: str) -> str | None:
    if field == "\\N":
        return None

    def unescape(match: re.Match[str]) -> str:
        octal, hexa, char = match.groups()
        if octal:
            return chr(int(octal, 8))
        if hexa:
            return chr(int(hexa, 16))
        return _COPY_ESCAPES.get(char, char)

    return _COPY_ESCAPE_RE.sub(unescape, field) if "\\" in field else field


def read_tables(text: str, wanted: Mapping[str, Sequence[str]], *, where: str) -> dict[str, list[Row]]:
    """The rows of each table in `wanted` (bare name -> its columns in order) in the dump `text`.

    `where` names the file in messages ("dump.sql"). Tables the dump does not hold come
    back empty.
    """
    tables: dict[str, list[Row]] = {name: [] for name in wanted}
    lines = text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    index = 0
    while index < len(lines):
        line = lines[index]
        copy = _COPY_RE.match(line)
        if copy is not None:
            index = _read_copy(lines, index, copy, wanted, tables, where)
            continue
        stripped = line.lstrip()
        if stripped[:6].upper() == "INSERT":
            offset = starts[index] + len(line) - len(stripped)
            end = _read_insert(text, offset, wanted, tables, where)
            while index < len(lines) and starts[index + 1] <= end:
                index += 1
            index += 1  # what follows the ';' on its line is never a row
            continue
        index += 1
    return tables


def _read_copy(
    lines: list[str], index: int, copy: re.Match[str], wanted: Mapping[str, Sequence[str]],
    tables: dict[str, list[Row]], where: str,
) -> int:
    """Read one COPY block starting at `index`; the index after its `\\.`."""
    table = _bare(copy["table"])
    columns = _columns(copy["cols"]) or list(wanted.get(table, ()))
    keep = table in wanted
    row_index = index + 1
    while row_index < len(lines):
        line = lines[row_index]
        if line == "\\.":
            return row_index + 1
        if row_index == len(lines) - 1 and not line:
            break  # the end of the file, after its last newline
        if keep:
            fields = line.split("\t")
            if len(fields) != len(columns):
                raise SourceError(
                    f"{where}: line {row_index + 1}: a {table} row with {len(fields)} fields, but the COPY "
                    f"on line {index + 1} names {len(columns)} columns; is the dump whole?"
                )
            tables[table].append(dict(zip(columns, (_copy_value(f) for f in fields), strict=True)))
        row_index += 1
    raise SourceError(f"{where}: line {index + 1}: the COPY of {table} never ends (no \\. line); is the dump whole?")


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _read_insert(
    text: str, offset: int, wanted: Mapping[str, Sequence[str]], tables: dict[str, list[Row]], where: str,
) -> int:
    """Read one INSERT statement at `offset`; the offset after its `;`."""
    head = _INSERT_RE.match(text, offset)
    if head is None:
        raise SourceError(f"{where}: line {_line_of(text, offset)}: an INSERT this reader cannot follow")
    table = _bare(head["table"])
    named = _columns(head["cols"])
    pos = head.end()
    while True:
        tuple_line = _line_of(text, pos)
        values, pos = _values(text, pos, where)
        if table in wanted:
            columns = named or list(wanted[table])
            if len(values) != len(columns):
                how = "" if named else " (dump it with --column-inserts, or as COPY)"
                raise SourceError(
                    f"{where}: line {tuple_line}: a {table} row with {len(values)} values, "
                    f"but {len(columns)} columns{how}"
                )
            tables[table].append(dict(zip(columns, values, strict=True)))
        pos = _skip_space(text, pos)
        if text.startswith(",", pos):
            pos = _skip_space(text, pos + 1)
            continue
        if text.startswith(";", pos):
            return pos + 1
        raise SourceError(f"{where}: line {_line_of(text, pos)}: the INSERT into {table} does not end with ';'")


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _values(text: str, pos: int, where: str) -> tuple[list[str | None], int]:
    """One `( ... )` of values at `pos`; the values and the offset after `)`."""
    if not text.startswith("(", pos):
        raise SourceError(f"{where}: line {_line_of(text, pos)}: expected '(' before an INSERT's values")
    pos += 1
    values: list[str | None] = []
    while True:
        pos = _skip_space(text, pos)
        value, pos = _value(text, pos, where)
        values.append(value)
        cast = _CAST_RE.match(text, pos)
        if cast is not None:
            pos = cast.end()
        pos = _skip_space(text, pos)
        if text.startswith(",", pos):
            pos += 1
            continue
        if text.startswith(")", pos):
            return values, pos + 1
        raise SourceError(f"{where}: line {_line_of(text, pos)}: expected ',' or ')' between an INSERT's values")


def _value(text: str, pos: int, where: str) -> tuple[str | None, int]:
    if text.startswith(("E'", "e'"), pos):
        return _escaped_string(text, pos + 1, where)
    if text.startswith("'", pos):
        return _string(text, pos, where)
    word = _WORD_RE.match(text, pos)
    if word is None:
        shown = text[pos:pos + 20].split("\n", 1)[0]
        raise SourceError(f"{where}: line {_line_of(text, pos)}: {shown!r} is not a value this reader knows")
    found = word.group(0)
    lowered = found.lower()
    if lowered in ("null", "default"):
        return None, word.end()
    if lowered in ("true", "false"):
        return lowered[0], word.end()
    return found, word.end()


def _string(text: str, pos: int, where: str) -> tuple[str, int]:
    """A standard SQL string at `pos` (its opening quote): `''` is one quote."""
    parts: list[str] = []
    start = pos + 1
    while True:
        close = text.find("'", start)
        if close < 0:
            raise SourceError(f"{where}: line {_line_of(text, pos)}: a string that never closes")
        parts.append(text[start:close])
        if text.startswith("''", close):
            parts.append("'")
            start = close + 2
            continue
        return "".join(parts), close + 1


def _escaped_string(text: str, pos: int, where: str) -> tuple[str, int]:
    """An E'...' string at `pos` (its opening quote): backslash escapes, and `''`."""
    out: list[str] = []
    index = pos + 1
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            following = text[index + 1]
            out.append(_COPY_ESCAPES.get(following, following))
            index += 2
            continue
        if char == "'":
            if text.startswith("''", index):
                out.append("'")
                index += 2
                continue
            return "".join(out), index + 1
        out.append(char)
        index += 1
    raise SourceError(f"{where}: line {_line_of(text, pos)}: a string that never closes")


def array(value: str | None) -> list[str]:
    """A PostgreSQL array literal (`{a,"b c",NULL}`) as its items; [] for NULL or `{}`."""
    if not value or value in ("{}", "[]"):
        return []
    body = value.strip()
    if not (body.startswith("{") and body.endswith("}")):
        return [body]
    items: list[str] = []
    current: list[str] = []
    quoted = was_quoted = False
    index = 1
    while index < len(body) - 1:
        char = body[index]
        if quoted:
            if char == "\\" and index + 1 < len(body) - 1:
                current.append(body[index + 1])
                index += 2
                continue
            if char == '"':
                quoted = False
            else:
                current.append(char)
        elif char == '"':
            quoted = was_quoted = True
        elif char == ",":
            item = "".join(current)
            if was_quoted or item != "NULL":
                items.append(item)
            current, was_quoted = [], False
        else:
            current.append(char)
        index += 1
    item = "".join(current)
    if was_quoted or (item and item != "NULL"):
        items.append(item)
    return items
