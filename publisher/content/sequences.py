"""Sequence files: a welcome and the mails that follow it, written as articles.

A sequence is a folder under `sequences.folder` (beside content/, so nothing in it is
ever published on the site or in feeds); its name is the folder's. Each Markdown file in
it is a step, named by its file name without `.md`, written like any article, with one
more front matter key:

    ---
    title: Welcome
    delay: 0          # 0 (at once), 3d, 12h, 90m: counted from the event that started it
    ---

A `date` is not needed (a step has none; the article parser is given a fixed one). An
optional `sequence.toml` in the folder says what starts it:

    trigger = "confirmed"           # a reader became active (the default)
    trigger = "topic"               # a reader joined `topic = "sleep"` (a tag or a chosen topic)
    trigger = "imported"            # a reader was imported with `--sequence NAME`, or
                                    # by any import carrying `tag = "..."` when given
    segment = "new in Europe"       # optional: only readers the saved segment holds when
                                    # they would enter are enrolled

Steps go in order of delay (then name). `parse_step` and `parse_settings` are pure; the
edges `load_sequences` and `load_sequence` read the folder, never through a link, and
raise ContentError naming the file and line of the first problem.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import tomllib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from publisher.config import Config
from publisher.content.articles import parse_article
from publisher.content.folder import decode_article, read_content
from publisher.errors import ContentError, NotFound
from publisher.models import Article

__all__ = [
    "NAME_RE",
    "TRIGGERS",
    "Sequence",
    "Step",
    "load_sequence",
    "load_sequences",
    "parse_delay",
    "parse_settings",
    "parse_step",
    "read_step_text",
    "sequence_names",
    "write_step_text",
]

TRIGGERS = ("confirmed", "topic", "imported")
SETTINGS_FILE = "sequence.toml"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
_DELAY_RE = re.compile(r"^\s*(\d{1,4})\s*([dhm]?)\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "": "days"}
_MAX_DELAY = timedelta(days=3650)
_NO_DATE = "date: 2000-01-01 00:00\n"
"""Given to the article parser for a step without a date: a step is never published."""


@dataclass(frozen=True, slots=True)
class Step:
    """One mail of a sequence: an article, and how long after the start it goes."""

    name: str
    delay: timedelta
    article: Article
    source: str
    digest: str
    """A hash of the file's text: a changed text is a new version of the step."""

    @property
    def by_day(self) -> bool:
        """Counted in whole days: it goes at the reader's send hour on that day."""
        return self.delay >= timedelta(days=1) and self.delay % timedelta(days=1) == timedelta(0)

    @property
    def delay_text(self) -> str:
        """The delay as the author wrote it, roughly: "at once", "day 3", "12 h"."""
        if not self.delay:
            return "at once"
        if self.by_day:
            return f"day {self.delay.days}"
        minutes = int(self.delay.total_seconds() // 60)
        return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"


@dataclass(frozen=True, slots=True)
class Sequence:
    name: str
    trigger: str
    topic: str = ""
    """For "topic": the tag or topic whose joining starts it; for "imported": the tag an
    imported reader must carry ("" for every imported reader)."""
    steps: tuple[Step, ...] = ()
    segment: str = ""
    """A saved segment's name: only readers it holds as they would enter are enrolled."""

    @property
    def steps_key(self) -> str:
        """Names and delays of the steps: a change means the readers' next steps move."""
        text = "|".join(f"{s.name}:{int(s.delay.total_seconds())}" for s in self.steps)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise NotFound(f"sequence {self.name!r} has no step {name!r}; its steps: "
                       + ", ".join(s.name for s in self.steps))


def parse_delay(raw: object, source: str, line: int) -> timedelta:
    """`0`, `3d`, `12h`, `90m` (a bare number is days) as a timedelta; ContentError otherwise."""
    match = _DELAY_RE.match(str(raw)) if isinstance(raw, (int, str)) and not isinstance(raw, bool) else None
    if match is None:
        raise ContentError(f"{source}:{line}: delay {raw!r} is not a delay; write 0 (at once), 3d, 12h or 90m")
    delay = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if delay > _MAX_DELAY:
        raise ContentError(f"{source}:{line}: delay {raw!r} is more than ten years; write a shorter one")
    return delay


def parse_step(text: str, *, name: str, source: str, config: Config) -> Step:
    """A step file's text as a Step. Pure. The `delay` line is taken out of the front
    matter before the article parser reads the rest, so its checks apply unchanged."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        raise ContentError(f"{source}:1: a step starts with front matter between '---' lines (title, delay)")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].rstrip() == "---")
    except StopIteration as exc:
        raise ContentError(f"{source}:1: front matter is not closed; add a '---' line after it") from exc
    delay: timedelta | None = None
    kept: list[str] = []
    has_date = False
    for number, line in enumerate(lines[1:end], start=2):
        key, _, value = line.partition(":")
        if key.strip() == "delay" and not line.startswith((" ", "\t")):
            delay = parse_delay(value.split("#")[0].strip().strip("'\""), source, number)
            kept.append("")  # keep line numbers of later errors true
            continue
        has_date = has_date or (key.strip() == "date" and not line.startswith((" ", "\t")))
        kept.append(line)
    if delay is None:
        raise ContentError(f"{source}:1: front matter has no delay; add a line like 'delay: 3d' (0 for at once)")
    if not has_date:
        kept.append(_NO_DATE.rstrip("\n"))
    rebuilt = "\n".join(["---", *kept, *lines[end:]])
    article = parse_article(rebuilt, source=source, config=config)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return Step(name=name, delay=delay, article=article, source=source, digest=digest)


def parse_settings(text: str, *, source: str) -> tuple[str, str, str]:
    """A sequence.toml's (trigger, topic, segment); ContentError naming the key otherwise."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ContentError(f"{source}: is not TOML: {exc}") from exc
    unknown = sorted(set(data) - {"trigger", "topic", "tag", "segment"})
    if unknown:
        raise ContentError(f"{source}: unknown key {unknown[0]!r}; the keys are trigger, topic, tag and segment")
    trigger = data.get("trigger", "confirmed")
    if trigger not in TRIGGERS:
        raise ContentError(f"{source}: trigger {trigger!r} is not one of {', '.join(TRIGGERS)}")
    topic = data.get("topic", data.get("tag", ""))
    if not isinstance(topic, str):
        raise ContentError(f"{source}: topic must be text, such as topic = \"sleep\"")
    topic = " ".join(topic.split()).lower()
    if trigger == "topic" and not topic:
        raise ContentError(f"{source}: trigger \"topic\" needs the topic, such as topic = \"sleep\"")
    segment = data.get("segment", "")
    if not isinstance(segment, str):
        raise ContentError(f"{source}: segment must be a saved segment's name, such as segment = \"new in Europe\"")
    return str(trigger), topic, " ".join(segment.split())


def _shown(config: Config, path: Path) -> str:
    root = config.root.resolve()
    resolved = path.resolve()
    return resolved.relative_to(root).as_posix() if root in resolved.parents else str(path)


def load_sequence(config: Config, name: str) -> Sequence:
    """One sequence folder read; NotFound when there is none of that name."""
    folder = config.path_of("sequences.folder")
    if not NAME_RE.match(name) or not (folder / name).is_dir() or (folder / name).is_symlink():
        known = ", ".join(s for s in sequence_names(folder)) or "none yet"
        raise NotFound(f"no sequence {name!r} in {_shown(config, folder)}/ (sequences: {known})")
    where = folder / name
    trigger, topic, segment = "confirmed", "", ""
    settings = where / SETTINGS_FILE
    if settings.exists() or settings.is_symlink():
        shown = _shown(config, settings)
        text = decode_article(read_content(settings, shown, config), shown)
        trigger, topic, segment = parse_settings(text, source=shown)
    steps = []
    for path in sorted(where.iterdir()):
        if path.suffix != ".md" or path.name.startswith((".", "_")):
            continue
        shown = _shown(config, path)
        if not NAME_RE.match(path.stem):
            raise ContentError(f"{shown}: a step's file name is lower-case letters, digits, - and _ (e.g. day-3.md)")
        text = decode_article(read_content(path, shown, config), shown)
        steps.append(parse_step(text, name=path.stem, source=shown, config=config))
    steps.sort(key=lambda s: (s.delay, s.name))
    return Sequence(name=name, trigger=trigger, topic=topic, steps=tuple(steps), segment=segment)


def sequence_names(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(
        p.name for p in folder.iterdir()
        if p.is_dir() and not p.is_symlink() and not p.name.startswith((".", "_")) and NAME_RE.match(p.name)
    )


def load_sequences(config: Config) -> list[Sequence]:
    """Every sequence, by name; none when the folder does not exist."""
    return [load_sequence(config, name) for name in sequence_names(config.path_of("sequences.folder"))]


def read_step_text(config: Config, path: Path) -> str:
    """A step file's text, never through a link."""
    shown = _shown(config, path)
    return decode_article(read_content(path, shown, config), shown)


def write_step_text(folder: Path, file_name: str, text: str) -> None:
    """Write a step file whole or not at all: a temporary file beside it, then a rename.
    The folder is made if needed; a link in its place is refused."""
    if folder.is_symlink() or folder.parent.is_symlink():
        raise ContentError(f"{folder}: is a link; a sequence's folder must be a real folder")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / file_name
    if target.is_symlink():
        raise ContentError(f"{target}: is a link; replace it with the step file itself")
    fd, name = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
    temp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text if text.endswith("\n") else text + "\n")
        temp.replace(target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
