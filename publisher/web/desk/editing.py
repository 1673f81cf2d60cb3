"""The editor's form and an article file, both ways.

The form shows the front matter keys an author needs as fields (the lead image and its
description among them) and the Markdown body as text; saving writes the file back with
those keys changed and every other key (send_at, author, ...) kept as it was. A field
the form did not post at all (an older page, another client) keeps the file's value;
a field posted empty removes its key. The file's text is the truth: the fingerprint of the
text the editor opened travels with the form, so a file changed on disk meanwhile is
noticed instead of overwritten (`services.articles.write_article(expected=...)`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import yaml

from publisher.errors import ContentError

__all__ = ["EditorFields", "parse_fields", "read_form", "to_text"]

_FENCE = re.compile(r"\A---[ \t]*\r?\n(.*?)^---[ \t]*\r?\n?", re.DOTALL | re.MULTILINE)
FIELDS = ("title", "slug", "date", "tags", "summary", "draft", "image", "image_alt")


@dataclass(frozen=True, slots=True)
class EditorFields:
    title: str
    slug: str
    date: str
    tags: str
    """Comma-separated, as typed."""
    summary: str
    draft: bool
    body: str
    image: str | None = ""
    """The lead image: a path (media/harbor.jpg) or an http(s) URL; None keeps the file's."""
    image_alt: str | None = ""
    """What the lead image shows, for readers who cannot see it; None keeps the file's."""


def _split(text: str) -> tuple[dict[str, Any], str]:
    found = _FENCE.match(text)
    if not found:
        return {}, text
    try:
        front = yaml.safe_load(found.group(1)) or {}
    except yaml.YAMLError as exc:
        raise ContentError(f"the front matter is not valid YAML: {exc}") from exc
    if not isinstance(front, dict):
        raise ContentError("the front matter must be keys and values (title: ..., date: ...)")
    return front, text[found.end():].lstrip("\n")


def _text(value: Any) -> str:
    """A front matter value as the form shows it; a date keeps its offset, if it had one."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return value.isoformat(sep=" ", timespec="minutes")
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def parse_fields(text: str) -> EditorFields:
    """The form's fields for an article file's text."""
    front, body = _split(text)
    tags = front.get("tags") or []
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",")]
    return EditorFields(
        title=_text(front.get("title")),
        slug=_text(front.get("slug")),
        date=_text(front.get("date")),
        tags=", ".join(str(t) for t in tags if str(t).strip()),
        summary=_text(front.get("summary")),
        draft=bool(front.get("draft", False)),
        body=body,
        image=_text(front.get("image")),
        image_alt=_text(front.get("image_alt")),
    )


def read_form(form: Mapping[str, str]) -> EditorFields:
    """The fields as the editor's form posted them (the save, the preview and autosaves)."""
    return EditorFields(
        title=form.get("title", ""), slug=form.get("slug", ""), date=form.get("date", ""),
        tags=form.get("tags", ""), summary=form.get("summary", ""), draft=form.get("draft") == "on",
        body=form.get("body", ""), image=form.get("image"), image_alt=form.get("image_alt"),
    )


def to_text(fields: EditorFields, original: str = "") -> str:
    """The article file for `fields`, keeping the other front matter keys of `original`."""
    front, _ = _split(original) if original else ({}, "")
    kept = {"image": fields.image is None, "image_alt": fields.image_alt is None}
    front = {k: v for k, v in front.items() if k not in FIELDS or kept.get(k)}
    ordered: dict[str, Any] = {"title": fields.title.strip()}
    if fields.date.strip():
        ordered["date"] = fields.date.strip()
    if fields.slug.strip():
        ordered["slug"] = fields.slug.strip()
    ordered["tags"] = [t.strip() for t in fields.tags.split(",") if t.strip()]
    if fields.summary.strip():
        ordered["summary"] = " ".join(fields.summary.split())
    if fields.image and fields.image.strip():
        ordered["image"] = fields.image.strip()
    if fields.image_alt and fields.image_alt.strip():
        ordered["image_alt"] = " ".join(fields.image_alt.split())
    ordered.update(front)
    if fields.draft:
        ordered["draft"] = True
    header = yaml.safe_dump(ordered, allow_unicode=True, sort_keys=False, width=1_000_000)
    body = fields.body.replace("\r\n", "\n").strip("\n")
    return f"---\n{header}---\n\n{body}\n"
